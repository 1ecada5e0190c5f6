"""The pure decision function: time windows in Asia/Taipei, rule selection, precise deny reasons."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from policies.contract import Decision
from policies.engine import (
    CameraFacts,
    PurposeFacts,
    RawGrant,
    Request,
    RoleFacts,
    RuleFacts,
    TimeWindow,
    decide,
    parse_hhmm,
)

TPE = ZoneInfo("Asia/Taipei")
CAM = CameraFacts(
    id="cam-1",
    purposes=frozenset({"traffic_management", "criminal_investigation"}),
    district="Xinyi",
    tags=frozenset({"crossing"}),
)
TRAFFIC = PurposeFacts("traffic_management")
INVESTIGATION = PurposeFacts("criminal_investigation", allows_raw=True)
VIEWER = RoleFacts("dashboard_viewer", can_view=True)


def taipei(y: int, mo: int, d: int, h: int, mi: int = 0) -> dt.datetime:
    return dt.datetime(y, mo, d, h, mi, tzinfo=TPE).astimezone(dt.UTC)


def window(days: list[int], start: str, end: str) -> TimeWindow:
    return TimeWindow.parse({"days": days, "start": start, "end": end})


def ask(
    now: dt.datetime,
    rules: list[RuleFacts],
    *,
    purpose: PurposeFacts = TRAFFIC,
    mode: str = "anonymized",
    roles: tuple[RoleFacts, ...] = (VIEWER,),
    **kw: Any,
) -> Decision:
    return decide(
        Request(
            roles=roles,
            camera=CAM,
            camera_id=CAM.id,
            purpose=purpose,
            purpose_id=purpose.id,
            mode=mode,
            now=now,
            tz=TPE,
            rules=rules,
            **kw,
        )
    )


OFFICE_HOURS = RuleFacts(
    id="office",
    roles=frozenset({"dashboard_viewer"}),
    purposes=frozenset({"traffic_management"}),
    districts=frozenset({"Xinyi"}),
    time_windows=(window([0, 1, 2, 3, 4], "08:00", "18:00"),),
    max_session_s=4 * 3600,
)
NIGHT_SAT = RuleFacts(
    id="night",
    roles=frozenset({"dashboard_viewer"}),
    purposes=frozenset({"traffic_management"}),
    tags=frozenset({"crossing"}),
    time_windows=(window([5], "22:00", "06:00"),),
)


# 2026-03-02 is a Monday.
@pytest.mark.parametrize(
    ("local", "allowed", "rule", "expires_local"),
    [
        ((2026, 3, 2, 8, 0), True, "office", (2026, 3, 2, 12, 0)),  # starts at the window's start; max 4 h
        ((2026, 3, 2, 16, 30), True, "office", (2026, 3, 2, 18, 0)),  # capped by the window's end
        ((2026, 3, 2, 7, 59), False, None, None),
        ((2026, 3, 2, 18, 0), False, None, None),  # end is exclusive
        ((2026, 3, 6, 17, 59), True, "office", (2026, 3, 6, 18, 0)),  # Friday
        ((2026, 3, 7, 10, 0), False, None, None),  # Saturday daytime: neither rule
        ((2026, 3, 7, 23, 0), True, "night", (2026, 3, 8, 6, 0)),  # Saturday night, crosses midnight
        ((2026, 3, 8, 5, 59), True, "night", (2026, 3, 8, 6, 0)),  # Sunday early: window started Saturday
        ((2026, 3, 8, 23, 0), False, None, None),  # Sunday night: the window only starts on Saturdays
        ((2026, 3, 3, 3, 0), False, None, None),  # Tuesday early: no Monday night window
    ],
)
def test_time_windows_in_taipei_local_time(
    local: tuple[int, ...], allowed: bool, rule: str | None, expires_local: tuple[int, ...] | None
) -> None:
    d = ask(taipei(*local), [OFFICE_HOURS, NIGHT_SAT])
    assert d.allowed is allowed, d.reason
    assert d.rule_id == rule
    if expires_local:
        assert d.expires_at == taipei(*expires_local)
    else:
        assert d.reason.startswith("outside time window")
        assert "office: Mon,Tue,Wed,Thu,Fri 08:00-18:00" in d.reason
        assert "Asia/Taipei" in d.reason


def test_utc_midnight_is_taipei_morning() -> None:
    # 00:30 UTC Monday is 08:30 in Taipei: inside office hours although UTC says it is night.
    d = ask(dt.datetime(2026, 3, 2, 0, 30, tzinfo=dt.UTC), [OFFICE_HOURS])
    assert d.allowed and d.rule_id == "office"


def test_deny_by_default_and_hard_limits() -> None:
    now = taipei(2026, 3, 2, 10)
    always = RuleFacts(
        id="always",
        roles=frozenset({"dashboard_viewer"}),
        camera_ids=frozenset({"*"}),
        purposes=frozenset({"traffic_management", "public_safety"}),
    )
    assert ask(now, []).reason == (
        "no rule grants role dashboard_viewer purpose traffic_management on camera cam-1"
    )
    # The rule names public_safety, but the camera is not approved for it: hard limit.
    d = ask(now, [always], purpose=PurposeFacts("public_safety"))
    assert not d.allowed and d.reason == "camera cam-1 not approved for purpose public_safety"
    off = CameraFacts(id="cam-1", purposes=CAM.purposes, enabled=False)
    d = decide(
        Request(
            roles=(VIEWER,),
            camera=off,
            camera_id="cam-1",
            purpose=TRAFFIC,
            purpose_id=TRAFFIC.id,
            mode="anonymized",
            now=now,
            tz=TPE,
            rules=[always],
        )
    )
    assert not d.allowed and d.reason == "camera cam-1 disabled"
    assert ask(now, [always], user_active=False).reason == "user disabled"
    assert ask(now, [always], mode="x-ray").reason == "unknown mode 'x-ray'"
    disabled = RuleFacts(
        id="off", roles=always.roles, camera_ids=always.camera_ids, purposes=always.purposes, enabled=False
    )
    assert not ask(now, [disabled]).allowed
    other_camera = RuleFacts(
        id="other",
        roles=always.roles,
        camera_ids=frozenset({"cam-2"}),
        districts=frozenset({"Wanhua"}),
        tags=frozenset({"park"}),
        purposes=always.purposes,
    )
    assert not ask(now, [other_camera]).allowed
    assert ask(now, [always]).reason == "allowed by rule always"


def test_longest_allowing_rule_wins() -> None:
    now = taipei(2026, 3, 2, 10)
    short = RuleFacts(
        id="a-short",
        roles=frozenset({"dashboard_viewer"}),
        camera_ids=frozenset({"cam-1"}),
        purposes=frozenset({"traffic_management"}),
        max_session_s=600,
    )
    long = RuleFacts(
        id="b-long",
        roles=frozenset({"dashboard_viewer"}),
        tags=frozenset({"crossing"}),
        purposes=frozenset({"traffic_management"}),
        max_session_s=3600,
    )
    d = ask(now, [short, long])
    assert d.rule_id == "b-long" and d.expires_at == now + dt.timedelta(hours=1)


def test_raw_needs_every_condition() -> None:
    now = taipei(2026, 3, 2, 10)
    investigator = RoleFacts("police_investigator", can_view=True)
    raw_rule = RuleFacts(
        id="inv",
        roles=frozenset({"police_investigator"}),
        camera_ids=frozenset({"*"}),
        purposes=frozenset({"criminal_investigation"}),
        modes=frozenset({"anonymized", "raw"}),
    )
    anon_rule = RuleFacts(
        id="anon",
        roles=frozenset({"police_investigator"}),
        camera_ids=frozenset({"*"}),
        purposes=frozenset({"criminal_investigation"}),
    )
    ok = RawGrant(
        id="raw-1",
        status="approved",
        expires_at=now + dt.timedelta(minutes=20),
        use_by=now + dt.timedelta(minutes=5),
    )
    base: dict[str, Any] = {
        "roles": (investigator,),
        "purpose": INVESTIGATION,
        "mode": "raw",
        "case_ref": "C-1",
    }
    d = ask(now, [raw_rule], raw_grant=ok, **base)
    assert d.allowed and d.raw_request_id == "raw-1"
    assert d.expires_at == ok.expires_at  # the approval bounds the session
    cases = [
        ([anon_rule], ok, "C-1", "no rule grants mode raw"),
        ([raw_rule], ok, "", "raw view needs a case reference"),
        ([raw_rule], None, "C-1", "no approved raw-view request"),
        ([raw_rule], RawGrant("raw-1", "pending"), "C-1", "raw-view request raw-1 awaits approval"),
        (
            [raw_rule],
            RawGrant("raw-1", "revoked", ok.expires_at),
            "C-1",
            "raw-view request raw-1 was revoked",
        ),
        ([raw_rule], RawGrant("raw-1", "approved", now), "C-1", "raw-view approval raw-1 expired"),
        ([raw_rule], RawGrant("raw-1", "approved", ok.expires_at, use_by=now), "C-1", "was not used in time"),
    ]
    for rules, grant, case_ref, reason in cases:
        d = ask(now, rules, raw_grant=grant, **{**base, "case_ref": case_ref})
        assert not d.allowed and reason in d.reason, (reason, d.reason)
    # A running session is not cut by the use-by deadline, only by the approval's end.
    late = RawGrant(id="raw-1", status="approved", expires_at=ok.expires_at, use_by=now)
    assert ask(now, [raw_rule], raw_grant=late, new_session=False, **base).allowed
    # A purpose that does not allow raw cannot be unmasked whatever the rules say.
    lenient = RuleFacts(
        id="lenient",
        roles=frozenset({"police_investigator"}),
        camera_ids=frozenset({"*"}),
        purposes=frozenset({"traffic_management"}),
        modes=frozenset({"raw"}),
    )
    d = ask(now, [lenient], raw_grant=ok, **{**base, "purpose": TRAFFIC})
    assert d.reason == "purpose traffic_management does not allow raw view"


def test_parse_hhmm() -> None:
    assert parse_hhmm("07:05") == dt.time(7, 5)
    assert parse_hhmm("24:00") is None
    for bad in ("7", "24:01", "12:60", "ab:cd", "12:5"):
        with pytest.raises(ValueError):
            parse_hhmm(bad)
