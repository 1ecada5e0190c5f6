"""The auditor API over HTTP: only auditors get in (refusals logged), queries filter and page, exports
stream CSV/JSON as attachments, verify reports tampering, statistics count views and denials, and every
use of the API is itself in the log."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from policies.audit.api import router as audit_router
from policies.auth import router as auth_router
from policies.context import PolicyContext
from policies.models import Role, User

PASSWORD = "a long enough password"


def user_token(ctx: PolicyContext, username: str, roles: list[str]) -> str:
    with ctx.db.session() as s:
        s.add(User(username=username, password_hash=ctx.auth.hash_password(PASSWORD),
                   roles=list(s.scalars(select(Role).where(Role.name.in_(roles))))))
    return ctx.auth.login(username, PASSWORD)


@pytest.fixture
def client(context: PolicyContext) -> Iterator[TestClient]:
    app = FastAPI()
    app.state.policies = context
    app.include_router(auth_router)
    app.include_router(audit_router)
    log = context.audit
    for i in range(6):
        cam = f"cam-{i % 2}"
        log.append("view.request", actor="alice", roles=["dashboard_viewer"], camera_id=cam,
                   purpose="traffic_management", mode="anonymized", decision="allow", reason="rule city")
        log.append("view.start", actor="alice", roles=["dashboard_viewer"], camera_id=cam,
                   purpose="traffic_management", mode="anonymized", details={"session_id": f"s{i}"})
    log.append("view.request", actor="bob", roles=["police_operator"], camera_id="cam-1",
               purpose="criminal_investigation", mode="raw", decision="deny",
               reason="no approved raw request")
    with TestClient(app) as c:
        yield c


@pytest.fixture
def auditor(context: PolicyContext) -> dict[str, str]:
    return {"Authorization": f"Bearer {user_token(context, 'audrey', ['auditor'])}"}


def test_only_auditors_get_in(client: TestClient, context: PolicyContext) -> None:
    token = user_token(context, "victor", ["dashboard_viewer", "policy_admin"])
    viewer = {"Authorization": f"Bearer {token}"}
    for path in ("/api/audit/entries", "/api/audit/export", "/api/audit/verify", "/api/audit/stats"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers=viewer).status_code == 403
    refusals = context.audit.query(kind="auth", decision="deny")
    assert len(refusals) == 8
    assert {e.details["path"] for e in refusals} == {"/api/audit/entries", "/api/audit/export",
                                                       "/api/audit/verify", "/api/audit/stats"}
    assert {e.actor for e in refusals} == {"anonymous", "victor"}


def test_query_filters_and_pages(client: TestClient, auditor: dict[str, str], context: PolicyContext) -> None:
    resp = client.get("/api/audit/entries", params={"actor": "alice", "camera_id": "cam-1", "limit": 2},
                      headers=auditor)
    assert resp.status_code == 200
    body = resp.json()
    assert body["total"] == 6 and body["limit"] == 2 and len(body["entries"]) == 2
    page2 = client.get("/api/audit/entries", params={"actor": "alice", "camera_id": "cam-1", "limit": 2,
                                                     "offset": 2}, headers=auditor).json()
    seqs = [e["seq"] for e in body["entries"] + page2["entries"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == 4
    denied = client.get("/api/audit/entries", params={"decision": "deny", "kind": "view"}, headers=auditor)
    (entry,) = denied.json()["entries"]
    assert (entry["actor"], entry["reason"], entry["mode"]) == ("bob", "no approved raw request", "raw")
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    later = client.get("/api/audit/entries", params={"since": tomorrow}, headers=auditor).json()
    assert later["total"] == 0
    # Without an offset a time is Taipei's: "now in UTC" written plainly is 8 hours ago there.
    plain_utc_now = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat()
    assert client.get("/api/audit/entries", params={"until": plain_utc_now, "actor": "alice"},
                      headers=auditor).json()["total"] == 0
    assert client.get("/api/audit/entries", params={"since": plain_utc_now, "actor": "alice"},
                      headers=auditor).json()["total"] == 12
    assert client.get("/api/audit/entries", params={"limit": 5000}, headers=auditor).status_code == 422
    assert client.get("/api/audit/entries", params={"decision": "maybe"}, headers=auditor).status_code == 422
    # Who looked at the evidence, and with which filters, is evidence too.
    access = context.audit.query(kind="audit.access")
    assert [e.actor for e in access] == ["audrey"] * 6
    assert access[0].details["filters"] == {"actor": "alice", "camera_id": "cam-1"}


def test_export_csv_and_json(client: TestClient, auditor: dict[str, str]) -> None:
    resp = client.get("/api/audit/export", params={"format": "csv", "kind": "view.start"}, headers=auditor)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/csv")
    disposition = resp.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="access-log-') and disposition.endswith('.csv"')
    *rows, trailer = csv.DictReader(io.StringIO(resp.text))
    assert trailer["seq"] == "trailer" and json.loads(trailer["details"])["count"] == 6
    assert len(rows) == 6 and {r["kind"] for r in rows} == {"view.start"}
    assert [json.loads(r["details"])["session_id"] for r in rows] == [f"s{i}" for i in range(6)]
    assert all(len(r["hash"]) == 64 for r in rows)

    resp = client.get("/api/audit/export", params={"format": "json", "actor": "bob"}, headers=auditor)
    assert resp.headers["content-disposition"].endswith('.json"')
    only, end = resp.json()
    assert end["trailer"]["filters"] == {"actor": "bob"}
    assert only["purpose"] == "criminal_investigation" and only["decision"] == "deny"
    assert client.get("/api/audit/export", params={"format": "xml"}, headers=auditor).status_code == 422


def test_verify_endpoint(client: TestClient, auditor: dict[str, str], context: PolicyContext) -> None:
    body = client.get("/api/audit/verify", headers=auditor).json()
    assert body["ok"] is True and body["problems"] == [] and body["checked"] > 13
    with context.db.engine.begin() as conn:
        seq = conn.execute(text("SELECT MIN(seq) FROM audit_log WHERE actor = 'bob'")).scalar_one()
        conn.execute(text("UPDATE audit_log SET decision = 'allow' WHERE seq = :s"), {"s": seq})
    body = client.get("/api/audit/verify", headers=auditor).json()
    assert body["ok"] is False
    assert body["problems"] == [f"seq {seq}: edited (content does not match its hash)"]


def test_statistics(client: TestClient, auditor: dict[str, str], context: PolicyContext) -> None:
    body = client.get("/api/audit/stats", headers=auditor).json()
    assert body["timezone"] == "Asia/Taipei"

    def month(entry: Any) -> str:  # the entry's own time in Taipei: the fixture may have run last month
        return str(entry.ts.astimezone(ZoneInfo("Asia/Taipei")).strftime("%Y-%m"))

    starts = context.audit.query(kind="view.start", actor="alice")
    assert Counter(e.camera_id for e in starts) == {"cam-0": 3, "cam-1": 3}
    views = Counter((month(e), e.camera_id) for e in starts)
    assert body["views"] == [{"month": m, "camera_id": cam, "purpose": "traffic_management",
                              "mode": "anonymized", "count": n} for (m, cam), n in sorted(views.items())]
    (denial,) = context.audit.query(kind="view.request", decision="deny")
    assert body["denials"] == [{"month": month(denial), "kind": "view.request", "camera_id": "cam-1",
                                "purpose": "criminal_investigation", "count": 1}]
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=40)).isoformat()
    assert client.get("/api/audit/stats", params={"since": later}, headers=auditor).json()["views"] == []
