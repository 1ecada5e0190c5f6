"""Refused requests do not flood the access log: repeats from one client are counted in one entry per
window (the first written at once), the counts add up to every refusal, and the chain still verifies."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from policies.auth import require
from policies.context import PolicyContext
from policies.contract import Principal
from tests.policies.conftest import add_user


@pytest.fixture
def client(context: PolicyContext) -> Iterator[TestClient]:
    app = FastAPI()
    app.state.policies = context

    @app.get("/api/things/{thing}")
    def thing(thing: str, who: Principal = Depends(require("admin"))) -> dict[str, str]:  # noqa: B008
        return {"thing": thing}

    with TestClient(app) as c:
        yield c


def refusals(context: PolicyContext) -> list:
    return context.audit.query(kind="auth", decision="deny", limit=10_000)


def test_a_flood_of_refusals_is_a_handful_of_entries(client: TestClient, context: PolicyContext) -> None:
    for i in range(200):
        assert client.get(f"/api/things/t{i}").status_code == 401
    # The first is in the log at once; the 199 after it are counted.
    (first,) = refusals(context)
    assert first.details["count"] == 1 and first.details["route"] == "/api/things/{thing}"
    assert first.reason == "no token" and first.details["path"] == "/api/things/t0"
    context.audit.refusals.flush()  # shutdown writes what the open windows counted
    entries = refusals(context)
    assert len(entries) == 2
    assert sum(e.details["count"] for e in entries) == 200
    repeated = entries[-1]
    assert repeated.details["repeated"] and repeated.details["client"] == "testclient"
    assert repeated.details["paths"] == [f"/api/things/t{i}" for i in range(1, 6)]
    assert context.audit.verify().ok


def test_windows_end_by_themselves_and_keep_kinds_apart(client: TestClient, context: PolicyContext) -> None:
    context.audit.refusals.window_s = 4.0
    add_user(context, "vera", ["dashboard_viewer"])
    viewer = {"Authorization": f"Bearer {_token(context)}"}
    for _ in range(10):
        assert client.get("/api/things/a").status_code == 401
        assert client.get("/api/things/a", headers={"Authorization": "Bearer nonsense"}).status_code == 401
        assert client.get("/api/things/a", headers=viewer).status_code == 403
    assert len(refusals(context)) == 3  # one per kind and reason, at once
    deadline = time.monotonic() + 10
    while len(refusals(context)) < 6:  # the window's end writes the counts, with no request needed
        assert time.monotonic() < deadline, [e.details for e in refusals(context)]
        time.sleep(0.05)
    entries = refusals(context)
    by = {}
    for e in entries:
        by.setdefault((e.kind, e.reason), []).append(e.details["count"])
    assert by == {("auth.refused", "no token"): [1, 9], ("auth.refused", "malformed token"): [1, 9],
                  ("auth.forbidden", "missing permission: admin"): [1, 9]}
    assert context.audit.verify().ok


def _token(context: PolicyContext) -> str:
    from policies.models import User

    with context.db.session() as s:
        user = s.query(User).filter_by(username="vera").one()
        return context.auth.issue_token(user.id)
