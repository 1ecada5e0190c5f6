"""Nothing lost: a change and its access-log entry commit together or not at all, and concurrent
viewers, closers and policy changes leave one whole chain (no deadlock, no gap, nothing logged twice),
on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
from sqlalchemy import func, select, text

from policies.context import PolicyContext
from policies.contract import Conflict, Principal
from policies.files import LoadedPolicy, PolicyDocument, apply
from policies.models import AuditEntry, Camera, RawViewRequest, ViewSession
from policies.schemas import CameraIn
from tests.policies.conftest import Clock

CI = "criminal_investigation"


def add_camera(ctx: PolicyContext, cam_id: str, name: str = "Ximen exit 6") -> None:
    cam = CameraIn(id=cam_id, name=name, district="Wanhua", purposes=["public_safety", CI])
    apply(ctx.db, ctx.audit, LoadedPolicy(PolicyDocument(cameras=[cam])), actor="test")


def at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls on threads released together; each one's result, or the exception it raised."""
    start = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "writers stuck"
    return results


def count(ctx: PolicyContext, model: Any, *where: Any) -> int:
    with ctx.db.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where)) or 0


@pytest.fixture
def log_unwritable(context: PolicyContext) -> Iterator[Callable[[], None]]:
    """Makes every access-log write fail (the table is renamed away) until the test ends."""

    def breaks() -> None:
        with context.db.engine.begin() as conn:
            conn.execute(text("ALTER TABLE audit_log RENAME TO audit_log_away"))

    yield breaks
    with context.db.engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_log_away RENAME TO audit_log"))


def test_no_change_without_its_evidence(
    context: PolicyContext,
    people: dict[str, Principal],
    clock: Clock,
    log_unwritable: Callable[[], None],
) -> None:
    svc, op, inv = context.service, people["police_operator"], people["police_investigator"]
    add_camera(context, "cam-1")
    allowed = svc.authorize_view(op, "cam-1", "public_safety")
    open_sid = svc.open_session(op, "cam-1", "public_safety", allowed)
    pending = svc.request_raw(inv, "cam-1", CI, "TPD-1", "suspect")
    entries_before = count(context, AuditEntry)

    log_unwritable()
    with pytest.raises(Exception, match="audit_log"):
        svc.authorize_view(op, "cam-1", "public_safety")
    assert svc.check_session(open_sid).allowed  # reads only: still answers
    with pytest.raises(Exception, match="audit_log"):
        svc.open_session(op, "cam-1", "public_safety", allowed)
    with pytest.raises(Exception, match="audit_log"):
        svc.close_session(open_sid, "viewer left")
    with pytest.raises(Exception, match="audit_log"):
        svc.approve_raw(people["raw_approver"], pending["id"])
    with pytest.raises(Exception, match="audit_log"):
        svc.request_raw(inv, "cam-1", CI, "TPD-2", "another")
    with pytest.raises(Exception, match="audit_log"):
        add_camera(context, "cam-2")

    # Every change was undone with its missing entry.
    assert count(context, ViewSession) == 1
    assert svc.check_session(open_sid).allowed
    with context.db.session() as s:
        assert s.get(RawViewRequest, pending["id"]).status == "pending"  # type: ignore[union-attr]
        assert s.scalar(select(func.count()).select_from(RawViewRequest)) == 1
        assert s.get(Camera, "cam-2") is None
    with context.db.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM audit_log_away")).scalar_one() == entries_before


def test_concurrent_viewers_and_changes_leave_one_whole_chain(
    context: PolicyContext, people: dict[str, Principal]
) -> None:
    svc = context.service
    add_camera(context, "cam-1")
    viewers = [people["police_operator"], people["dashboard_viewer"]]
    rounds = 8

    def watch(who: Principal) -> None:
        for _ in range(rounds):
            d = svc.authorize_view(who, "cam-1", "public_safety", client="10.0.0.7")
            sid = svc.open_session(who, "cam-1", "public_safety", d)
            assert svc.check_session(sid).allowed
            svc.close_session(sid, "viewer left")

    def edit_camera() -> None:
        for n in range(rounds):
            add_camera(context, "cam-1", name=f"Ximen exit 6 ({n})")  # the row sessions refer to

    results = at_once(*(partial(watch, w) for w in viewers), edit_camera)
    assert results == [None] * (len(viewers) + 1)
    for kind in ("view.request", "view.start", "view.end"):
        assert count(context, AuditEntry, AuditEntry.kind == kind) == len(viewers) * rounds
    changes = count(context, AuditEntry, AuditEntry.kind == "policy.change", AuditEntry.camera_id == "cam-1")
    assert changes == rounds + 1
    result = context.audit.verify()
    assert result.ok, result.problems


def test_a_session_closed_twice_at_once_ends_once(
    context: PolicyContext, people: dict[str, Principal]
) -> None:
    svc, op = context.service, people["police_operator"]
    add_camera(context, "cam-1")
    sids = [
        svc.open_session(op, "cam-1", "public_safety", svc.authorize_view(op, "cam-1", "public_safety"))
        for _ in range(4)
    ]
    for sid in sids:
        closes = (partial(svc.close_session, sid, reason) for reason in ("viewer left", "expired"))
        assert at_once(*closes) == [None, None]
    ends = context.audit.query(kind="view.end")
    assert sorted(e.details["session_id"] for e in ends) == sorted(sids)
    assert count(context, ViewSession, ViewSession.ended_at.is_(None)) == 0


def test_two_approvers_at_once_approve_once(
    context: PolicyContext, people: dict[str, Principal], clock: Clock
) -> None:
    svc = context.service
    add_camera(context, "cam-1")
    approvers = [people["raw_approver"], people["second_approver"]]
    for case in ("TPD-1", "TPD-2", "TPD-3"):
        req = svc.request_raw(people["police_investigator"], "cam-1", CI, case, "suspect")
        results = at_once(*(partial(svc.approve_raw, a, req["id"], minutes=10) for a in approvers))
        approved = [r for r in results if isinstance(r, dict)]
        refused = [str(r) for r in results if isinstance(r, Conflict)]
        assert len(approved) == 1 and approved[0]["status"] == "approved"
        assert refused == [f"raw-view request {req['id']} is approved, not pending"]
        granted = context.audit.query(kind="raw.approve", decision="allow")
        assert [e.details["request_id"] for e in granted].count(req["id"]) == 1
