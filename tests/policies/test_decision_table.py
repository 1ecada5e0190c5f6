"""The shipped default policy as a decision table: every role × purpose × mode × camera, through the
PolicyService on SQLite and PostgreSQL. Expectations are written from what the policy means:

- city operations (dashboard_viewer) watch anonymized video for city purposes only;
- police operators add crime prevention; investigators add criminal investigation;
- approvers, policy admins and auditors watch nothing by those roles;
- raw view only for criminal investigation, only for investigators, only with an approved request;
- a camera's approved purposes and its enabled flag are hard limits no rule can lift."""

from __future__ import annotations

from sqlalchemy import func, select

from policies.context import PolicyContext
from policies.contract import Principal
from policies.files import LoadedPolicy, PolicyDocument, apply
from policies.models import AuditEntry
from policies.schemas import CameraIn
from tests.policies.conftest import ROLE_NAMES, Clock

ALL_PURPOSES = (
    "public_safety",
    "social_order",
    "crime_prevention",
    "criminal_investigation",
    "traffic_management",
    "disaster_response",
)
CITY = {"public_safety", "social_order", "traffic_management", "disaster_response"}
POLICE = CITY | {"crime_prevention"}
ANONYMIZED_FOR = {
    "dashboard_viewer": CITY,
    "police_operator": POLICE,
    "police_investigator": POLICE | {"criminal_investigation"},
    "raw_approver": set(),
    "policy_admin": set(),
    "auditor": set(),
}
NON_VIEWERS = {"raw_approver", "policy_admin", "auditor"}
CAMERA_PURPOSES = {
    "cam-city": set(ALL_PURPOSES),
    "cam-traffic": {"traffic_management", "disaster_response"},
    "cam-off": set(ALL_PURPOSES),  # disabled
}
CASE = "TPD-2026-0117"


def expected(role: str, cam: str, purpose: str, mode: str) -> tuple[bool, str]:
    """(allowed, the rule id or a fragment of the deny reason), checked in the engine's order."""
    if cam == "cam-off":
        return False, "camera cam-off disabled"
    if purpose not in CAMERA_PURPOSES[cam]:
        return False, f"camera {cam} not approved for purpose {purpose}"
    if mode == "raw" and purpose != "criminal_investigation":
        return False, f"purpose {purpose} does not allow raw view"
    if role in NON_VIEWERS:
        return False, f"role {role} may not view video"
    if purpose not in ANONYMIZED_FOR[role]:
        return False, f"no rule grants role {role} purpose {purpose} on camera {cam}"
    if mode == "raw":
        # Only investigators reach here, and the investigator holds an approved request for cam-city only.
        assert role == "police_investigator" and cam == "cam-city"
        return True, "investigation"
    if purpose == "criminal_investigation":
        return True, "investigation"
    return True, "city-ops-anonymized" if role == "dashboard_viewer" else "police-anonymized"


def test_every_cell_of_the_default_policy(
    context: PolicyContext, people: dict[str, Principal], clock: Clock
) -> None:
    cams = [
        CameraIn(
            id="cam-city", name="Taipei Main Station", district="Zhongzheng", purposes=list(ALL_PURPOSES)
        ),
        CameraIn(
            id="cam-traffic",
            name="Civic Blvd",
            district="Da'an",
            purposes=["traffic_management", "disaster_response"],
        ),
        CameraIn(id="cam-off", name="Retired", purposes=list(ALL_PURPOSES), enabled=False),
    ]
    apply(context.db, context.audit, LoadedPolicy(PolicyDocument(cameras=cams)), actor="test")
    svc = context.service
    req = svc.request_raw(
        people["police_investigator"], "cam-city", "criminal_investigation", CASE, "robbery"
    )
    svc.approve_raw(people["raw_approver"], req["id"])

    with context.db.session() as s:
        before = s.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.kind == "view.request")
        )
    cells = 0
    for role in ROLE_NAMES:
        for cam in CAMERA_PURPOSES:
            for purpose in ALL_PURPOSES:
                for mode in ("anonymized", "raw"):
                    d = svc.authorize_view(people[role], cam, purpose, mode, case_ref=CASE)  # type: ignore[arg-type]
                    allowed, why = expected(role, cam, purpose, mode)
                    cell = (role, cam, purpose, mode, d.reason)
                    assert d.allowed is allowed, cell
                    assert d.mode == mode, cell
                    if allowed:
                        assert d.rule_id == why, cell
                        assert d.expires_at is not None and d.expires_at > clock.now, cell
                        assert (d.raw_request_id == req["id"]) is (mode == "raw"), cell
                    else:
                        assert why in d.reason, cell
                        assert d.rule_id is None and d.expires_at is None, cell
                    cells += 1
    assert cells == 6 * 3 * 6 * 2
    with context.db.session() as s:
        logged = list(
            s.scalars(select(AuditEntry).where(AuditEntry.kind == "view.request").order_by(AuditEntry.seq))
        )
    assert len(logged) - before == cells  # every decision, denials included, is in the access log
    assert sum(e.decision == "allow" for e in logged) == sum(
        expected(r, c, p, m)[0]
        for r in ROLE_NAMES
        for c in CAMERA_PURPOSES
        for p in ALL_PURPOSES
        for m in ("anonymized", "raw")
    )


def test_raw_request_is_refused_where_the_policy_would_never_allow_raw(
    context: PolicyContext, people: dict[str, Principal], clock: Clock
) -> None:
    apply(
        context.db,
        context.audit,
        LoadedPolicy(
            PolicyDocument(
                cameras=[CameraIn(id="cam-traffic", name="Civic Blvd", purposes=["traffic_management"])]
            )
        ),
        actor="test",
    )
    from policies.contract import Forbidden, NotFound

    svc = context.service
    for who, cam, purpose, fragment, err in [
        ("police_operator", "cam-traffic", "traffic_management", "request_raw", Forbidden),
        ("police_investigator", "cam-traffic", "traffic_management", "does not allow raw", Forbidden),
        (
            "police_investigator",
            "cam-traffic",
            "criminal_investigation",
            "not approved for purpose",
            Forbidden,
        ),
        ("police_investigator", "cam-nowhere", "criminal_investigation", "unknown camera", NotFound),
    ]:
        try:
            svc.request_raw(people[who], cam, purpose, CASE)
        except err as exc:
            assert fragment in str(exc), (who, cam, purpose, str(exc))
        else:
            raise AssertionError(f"{who} could request raw on {cam} for {purpose}")
