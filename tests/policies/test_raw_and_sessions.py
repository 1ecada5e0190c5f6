"""Raw-view dual control and running sessions, through the PolicyService on SQLite and PostgreSQL:
self-approval, non-approvers, stale and expired approvals, revocation stopping a running stream, and
everything of it in the access log."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select

from policies.context import PolicyContext
from policies.contract import Conflict, Forbidden, NotFound, PolicyError, Principal
from policies.db import Database
from policies.files import LoadedPolicy, PolicyDocument, apply, delete
from policies.models import AuditEntry, Camera, Rule, User
from policies.schemas import CameraIn
from tests.policies.conftest import Clock

CASE = "TPD-2026-0042"
CI = "criminal_investigation"


@pytest.fixture
def camera(context: PolicyContext) -> str:
    cam = CameraIn(
        id="cam-ximen",
        name="Ximen exit 6",
        district="Wanhua",
        purposes=["public_safety", CI],
        source_url="rtsp://10.1.2.3/live",
        source_username="viewer",
        source_password="${CAM_XIMEN_PASSWORD}",
    )
    apply(context.db, context.audit, LoadedPolicy(PolicyDocument(cameras=[cam])), actor="test")
    return cam.id


def entries(ctx: PolicyContext, kind: str) -> list[AuditEntry]:
    with ctx.db.session() as s:
        return list(s.scalars(select(AuditEntry).where(AuditEntry.kind == kind).order_by(AuditEntry.seq)))


def test_dual_control_happy_path_and_revocation(
    context: PolicyContext, people: dict[str, Principal], camera: str, clock: Clock
) -> None:
    svc, inv = context.service, people["police_investigator"]
    req = svc.request_raw(inv, camera, CI, CASE, "suspect seen at exit 6")
    assert req["status"] == "pending" and req["requester"] == inv.username
    d = svc.authorize_view(inv, camera, CI, "raw", case_ref=CASE)
    assert not d.allowed and d.reason == f"raw-view request {req['id']} awaits approval"

    clock.advance(minutes=3)
    approved = svc.approve_raw(people["raw_approver"], req["id"], minutes=20)
    assert approved["status"] == "approved" and approved["approver"] == "raw.approver"
    assert (approved["expires_at"] - clock.now).total_seconds() == 20 * 60
    assert (approved["use_by"] - clock.now).total_seconds() == context.settings.approval_window_minutes * 60

    # The approval is for this case only.
    assert not svc.authorize_view(inv, camera, CI, "raw", case_ref="OTHER-1").allowed
    assert svc.authorize_view(inv, camera, CI, "raw").reason == "raw view needs a case reference"
    d = svc.authorize_view(inv, camera, CI, "raw", case_ref=CASE, client="10.0.0.9")
    assert d.allowed and d.mode == "raw" and d.raw_request_id == req["id"]
    assert d.expires_at is not None and (d.expires_at - clock.now).total_seconds() == 20 * 60
    sid = svc.open_session(inv, camera, CI, d, client="10.0.0.9")
    clock.advance(minutes=5)
    assert svc.check_session(sid).allowed

    svc.revoke_raw(people["second_approver"], req["id"], "case closed")
    check = svc.check_session(sid)
    assert not check.allowed and check.reason == f"raw-view request {req['id']} was revoked"
    svc.close_session(sid, check.reason)
    svc.close_session(sid, "again")  # idempotent
    assert not svc.authorize_view(inv, camera, CI, "raw", case_ref=CASE).allowed

    kinds = [
        e.kind
        for e in entries(context, "raw.request")
        + entries(context, "raw.approve")
        + entries(context, "raw.use")
        + entries(context, "raw.revoke")
    ]
    assert kinds == ["raw.request", "raw.approve", "raw.use", "raw.revoke"]
    (end,) = entries(context, "view.end")
    assert end.mode == "raw" and end.reason.endswith("was revoked")
    assert end.details["duration_s"] == pytest.approx(300)
    (use,) = entries(context, "raw.use")
    assert use.details["raw_request_id"] == req["id"] and use.details["client"] == "10.0.0.9"


def test_approval_needs_a_second_person_with_the_right(
    context: PolicyContext, people: dict[str, Principal], camera: str, clock: Clock
) -> None:
    svc = context.service
    both = people["investigator_approver"]
    req = svc.request_raw(both, camera, CI, CASE)
    with pytest.raises(Forbidden, match="someone other than the requester"):
        svc.approve_raw(both, req["id"])
    for not_approver in ("police_operator", "policy_admin", "police_investigator", "auditor"):
        with pytest.raises(Forbidden, match="approve_raw"):
            svc.approve_raw(people[not_approver], req["id"])
    with pytest.raises(NotFound):
        svc.approve_raw(people["raw_approver"], "raw-nope")
    with pytest.raises(PolicyError, match="minutes: must be between 1 and 30"):
        svc.approve_raw(people["raw_approver"], req["id"], minutes=31)
    assert svc.get_raw(both, req["id"])["status"] == "pending"
    refusals = [e for e in entries(context, "raw.approve") if e.decision == "deny"]
    assert len(refusals) == 7 and refusals[0].actor == both.username
    svc.approve_raw(people["raw_approver"], req["id"])
    with pytest.raises(Conflict, match="is approved, not pending"):
        svc.approve_raw(people["second_approver"], req["id"])
    assert svc.authorize_view(both, camera, CI, "raw", case_ref=CASE).allowed


def test_stale_requests_and_expired_approvals_are_refused(
    context: PolicyContext, people: dict[str, Principal], camera: str, clock: Clock
) -> None:
    svc, inv, boss = context.service, people["police_investigator"], people["raw_approver"]
    window = context.settings.approval_window_minutes
    stale = svc.request_raw(inv, camera, CI, CASE)
    clock.advance(minutes=window + 1)
    with pytest.raises(Conflict, match=f"not approved within {window} minutes"):
        svc.approve_raw(boss, stale["id"])

    # Approved, then not used within the window: no new session, although the raw period still runs.
    unused = svc.request_raw(inv, camera, CI, "CASE-B")
    svc.approve_raw(boss, unused["id"], minutes=30)
    clock.advance(minutes=window + 1)
    d = svc.authorize_view(inv, camera, CI, "raw", case_ref="CASE-B")
    assert not d.allowed and d.reason == f"raw-view approval {unused['id']} was not used in time"

    # Approved for 5 minutes and used at once: the running session stops when the approval ends.
    short = svc.request_raw(inv, camera, CI, "CASE-C")
    svc.approve_raw(boss, short["id"], minutes=5)
    d = svc.authorize_view(inv, camera, CI, "raw", case_ref="CASE-C")
    sid = svc.open_session(inv, camera, CI, d)
    clock.advance(minutes=4, seconds=59)
    assert svc.check_session(sid).allowed
    clock.advance(seconds=1)
    assert svc.check_session(sid).reason == "session expired"
    d = svc.authorize_view(inv, camera, CI, "raw", case_ref="CASE-C")
    assert not d.allowed and "expired" in d.reason
    assert svc.get_raw(inv, short["id"])["status"] == "expired"

    denied = svc.request_raw(inv, camera, CI, "CASE-D")
    svc.deny_raw(boss, denied["id"], "not proportionate")
    d = svc.authorize_view(inv, camera, CI, "raw", case_ref="CASE-D")
    assert d.reason == f"raw-view request {denied['id']} was denied"
    assert entries(context, "raw.deny")[-1].reason == "not proportionate"


def test_running_sessions_follow_the_policy(
    context: PolicyContext, people: dict[str, Principal], camera: str, clock: Clock
) -> None:
    svc, op = context.service, people["police_operator"]

    def session() -> str:
        d = svc.authorize_view(op, camera, "public_safety")
        assert d.allowed and d.rule_id == "police-anonymized"
        return svc.open_session(op, camera, "public_safety", d)

    sid = session()
    assert svc.check_session(sid).allowed
    with context.db.session() as s:
        s.get(Camera, camera).enabled = False  # type: ignore[union-attr]
    assert svc.check_session(sid).reason == f"camera {camera} disabled"
    with context.db.session() as s:
        s.get(Camera, camera).enabled = True  # type: ignore[union-attr]
    assert svc.check_session(sid).allowed

    with context.db.session() as s:
        s.get(User, op.user_id).active = False  # type: ignore[union-attr]
    assert svc.check_session(sid).reason == "user disabled"
    with context.db.session() as s:
        s.get(User, op.user_id).active = True  # type: ignore[union-attr]

    with context.db.session() as s:
        user = s.get(User, op.user_id)
        assert user is not None
        user.roles = []  # role taken away: the claim in the session no longer counts
    assert "may not view video" in svc.check_session(sid).reason

    other = people["dashboard_viewer"]
    d = svc.authorize_view(other, camera, "public_safety")
    sid2 = svc.open_session(other, camera, "public_safety", d)
    with context.db.session() as s:
        delete(s, "rules", "city-ops-anonymized")
    assert svc.check_session(sid2).reason.startswith("no rule grants role dashboard_viewer")

    inv = people["police_investigator"]
    d = svc.authorize_view(inv, camera, "public_safety")
    sid3 = svc.open_session(inv, camera, "public_safety", d)
    clock.advance(hours=8)
    assert svc.check_session(sid3).reason == "session expired"
    svc.close_session(sid3, "expired")
    assert svc.check_session(sid3).reason == "session ended: expired"
    assert svc.check_session("nope").reason == "unknown session"
    with pytest.raises(Forbidden):
        svc.open_session(inv, camera, "public_safety", svc.authorize_view(inv, camera, "social_order", "raw"))


def test_camera_runtime_resolves_secrets_only_for_the_relay(
    context: PolicyContext, people: dict[str, Principal], camera: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = context.service
    monkeypatch.delenv("CAM_XIMEN_PASSWORD", raising=False)
    unresolved = svc.camera_runtime(camera)
    assert unresolved is not None and not unresolved.enabled and unresolved.source_url == ""
    assert unresolved.redacted_url == "(unavailable: environment variable CAM_XIMEN_PASSWORD is not set)"
    # Even a reference stored behind the schema's back resolves only camera variables.
    with context.db.session() as s:
        s.get(Camera, camera).source_url = "rtsp://evil.example/${CCTV_TOKEN_SECRET}"  # type: ignore[union-attr]
    monkeypatch.setenv("CCTV_TOKEN_SECRET", "do-not-leak")
    blocked = svc.camera_runtime(camera)
    assert blocked is not None and not blocked.enabled and "do-not-leak" not in repr(blocked)
    with context.db.session() as s:
        s.get(Camera, camera).source_url = "rtsp://10.1.2.3/live"  # type: ignore[union-attr]
    monkeypatch.setenv("CAM_XIMEN_PASSWORD", "s3cr:t/pw")
    rt = svc.camera_runtime(camera)
    assert rt is not None
    assert rt.source_url == "rtsp://viewer:s3cr%3At%2Fpw@10.1.2.3/live"
    assert rt.redacted_url == "rtsp://***@10.1.2.3/live"  # the user name is not shown either
    assert svc.camera_runtime("nope") is None
    listed = svc.cameras_for(people["police_investigator"])
    assert [c["id"] for c in listed] == [camera]
    assert listed[0]["purposes"] == ["public_safety", CI] and listed[0]["raw_purposes"] == [CI]
    assert "source_url" not in listed[0] and "s3cr" not in repr(listed)
    assert svc.cameras_for(people["auditor"]) == []
    assert [c["purposes"] for c in svc.cameras_for(people["dashboard_viewer"])] == [["public_safety"]]


def test_running_session_check_is_one_query_and_notices_rule_changes_elsewhere(
    context: PolicyContext, people: dict[str, Principal], camera: str, clock: Clock
) -> None:
    svc, op = context.service, people["police_operator"]
    d = svc.authorize_view(op, camera, "public_safety")
    sid = svc.open_session(op, camera, "public_safety", d)
    ticks = [0.0]
    svc.rules.clock = lambda: ticks[0]
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(context.db.engine, "before_cursor_execute", count)
    try:
        assert svc.check_session(sid).allowed  # cold: the session's facts, then the rules
        assert len(statements) == 2
        for _ in range(3):
            assert svc.check_session(sid).allowed
        assert len(statements) == 5  # warm: one query per check
    finally:
        event.remove(context.db.engine, "before_cursor_execute", count)

    # Another worker (its own connection pool, no shared memory) disables the rule: seen once the
    # cached rules are older than their time to live.
    other = Database(context.db.url)
    with other.session() as s:
        s.get(Rule, "police-anonymized").enabled = False  # type: ignore[union-attr]
    other.dispose()
    assert svc.check_session(sid).allowed
    ticks[0] += svc.rules.ttl_s
    assert svc.check_session(sid).reason.startswith("no rule grants role police_operator")
    # A change committed here is seen at once.
    with context.db.session() as s:
        s.get(Rule, "police-anonymized").enabled = True  # type: ignore[union-attr]
    assert svc.check_session(sid).allowed
