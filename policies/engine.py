"""The decision: may these roles watch this camera, for this purpose, in this mode, now — and why.

Pure: plain data in, a Decision out; no database, no clock, no logging (the service does those).
Deny by default: an allow names the rule that granted it; a deny names the first missing condition,
checked from the hardest limit (user, camera, purpose) to the softest (time window, raw approval)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from policies.contract import Decision, Mode

MODES: tuple[Mode, ...] = ("anonymized", "raw")
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True, slots=True)
class RoleFacts:
    name: str
    can_view: bool = False


@dataclass(frozen=True, slots=True)
class PurposeFacts:
    id: str
    allows_raw: bool = False


@dataclass(frozen=True, slots=True)
class CameraFacts:
    id: str
    purposes: frozenset[str]  # approved purposes: a hard limit no rule can widen
    district: str = ""
    tags: frozenset[str] = frozenset()
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Local-time window. `days` are the days the window starts on (Mon=0); end <= start crosses midnight;
    end "24:00" is midnight at the end of the day."""

    days: frozenset[int]
    start: dt.time
    end: dt.time | None  # None: 24:00

    @classmethod
    def parse(cls, raw: dict) -> TimeWindow:
        days = raw.get("days")
        return cls(
            days=frozenset(range(7) if days is None else days),
            start=parse_hhmm(raw.get("start", "00:00")) or dt.time(0),
            end=parse_hhmm(raw.get("end", "24:00")),
        )

    def active_until(self, local: dt.datetime) -> dt.datetime | None:
        """When this window ends, if `local` (an aware local time) falls inside it; else None."""
        day = local.date()
        for start_day in (day, day - dt.timedelta(days=1)):  # a window may have started yesterday
            if start_day.weekday() not in self.days:
                continue
            begin = dt.datetime.combine(start_day, self.start, local.tzinfo)
            if self.end is None:
                end = dt.datetime.combine(start_day + dt.timedelta(days=1), dt.time(0), local.tzinfo)
            else:
                end_day = start_day if self.end > self.start else start_day + dt.timedelta(days=1)
                end = dt.datetime.combine(end_day, self.end, local.tzinfo)
            if begin <= local < end:
                return end
        return None

    def describe(self) -> str:
        days = ",".join(DAY_NAMES[d] for d in sorted(self.days)) if len(self.days) < 7 else "daily"
        end = "24:00" if self.end is None else self.end.strftime("%H:%M")
        return f"{days} {self.start.strftime('%H:%M')}-{end}"


def parse_hhmm(value: str) -> dt.time | None:
    """'HH:MM' -> time; '24:00' -> None (end of day). Raises ValueError on anything else."""
    hh, sep, mm = value.partition(":")
    if not sep or not (hh.isdigit() and mm.isdigit()) or len(mm) != 2:
        raise ValueError(f"time {value!r} is not HH:MM")
    h, m = int(hh), int(mm)
    if (h, m) == (24, 0):
        return None
    if not (0 <= h < 24 and 0 <= m < 60):
        raise ValueError(f"time {value!r} is out of range")
    return dt.time(h, m)


@dataclass(frozen=True, slots=True)
class RuleFacts:
    id: str
    roles: frozenset[str]
    purposes: frozenset[str]
    camera_ids: frozenset[str] = frozenset()
    districts: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    modes: frozenset[str] = frozenset({"anonymized"})
    time_windows: tuple[TimeWindow, ...] = ()
    max_session_s: int = 8 * 3600
    enabled: bool = True

    def matches_camera(self, cam: CameraFacts) -> bool:
        return (
            "*" in self.camera_ids
            or cam.id in self.camera_ids
            or (bool(cam.district) and cam.district in self.districts)
            or bool(cam.tags & self.tags)
        )

    def window_end(self, local: dt.datetime) -> tuple[bool, dt.datetime | None]:
        """(inside a window now, when the window ends; None = no windows, always on)."""
        if not self.time_windows:
            return True, None
        ends = [e for w in self.time_windows if (e := w.active_until(local)) is not None]
        return (True, max(ends)) if ends else (False, None)


@dataclass(frozen=True, slots=True)
class RawGrant:
    """The raw-view request on file for this user + camera + purpose + case reference."""

    id: str
    status: str  # pending | approved | denied | revoked | expired
    expires_at: dt.datetime | None = None  # end of the approved raw period
    use_by: dt.datetime | None = None  # a new raw session must start before this


@dataclass(frozen=True, slots=True)
class Request:
    roles: Sequence[RoleFacts]
    camera: CameraFacts | None
    camera_id: str
    purpose: PurposeFacts | None
    purpose_id: str
    mode: str
    now: dt.datetime  # aware
    tz: ZoneInfo
    rules: Sequence[RuleFacts] = ()
    user_active: bool = True
    case_ref: str | None = None
    raw_grant: RawGrant | None = None
    new_session: bool = True  # False when re-checking a running session


def _names(names: Iterable[str]) -> str:
    return ",".join(sorted(names)) or "(none)"


def decide(req: Request) -> Decision:
    mode: Mode = req.mode if req.mode in MODES else "anonymized"  # type: ignore[assignment]

    def deny(reason: str) -> Decision:
        return Decision(allowed=False, mode=mode, reason=reason)

    if req.mode not in MODES:
        return deny(f"unknown mode {req.mode!r}")
    if not req.user_active:
        return deny("user disabled")
    cam, purpose = req.camera, req.purpose
    if cam is None:
        return deny(f"unknown camera {req.camera_id!r}")
    if not cam.enabled:
        return deny(f"camera {cam.id} disabled")
    if purpose is None:
        return deny(f"unknown purpose {req.purpose_id!r}")
    if purpose.id not in cam.purposes:
        return deny(f"camera {cam.id} not approved for purpose {purpose.id}")
    if mode == "raw" and not purpose.allows_raw:
        return deny(f"purpose {purpose.id} does not allow raw view")
    viewing = {r.name for r in req.roles if r.can_view}
    if not viewing:
        return deny(f"role {_names(r.name for r in req.roles)} may not view video")

    matching = [
        r
        for r in req.rules
        if r.enabled and r.roles & viewing and purpose.id in r.purposes and r.matches_camera(cam)
    ]
    if not matching:
        return deny(f"no rule grants role {_names(viewing)} purpose {purpose.id} on camera {cam.id}")
    matching = [r for r in matching if mode in r.modes]
    if not matching:
        return deny(
            f"no rule grants mode {mode} to role {_names(viewing)} for purpose {purpose.id} "
            f"on camera {cam.id}"
        )
    local = req.now.astimezone(req.tz)
    open_now: list[tuple[RuleFacts, dt.datetime]] = []
    for rule in matching:
        inside, window_end = rule.window_end(local)
        if inside:
            limit = req.now + dt.timedelta(seconds=rule.max_session_s)
            open_now.append((rule, min(limit, window_end) if window_end else limit))
    if not open_now:
        windows = "; ".join(f"{r.id}: " + ", ".join(w.describe() for w in r.time_windows) for r in matching)
        return deny(f"outside time window ({windows}; now {local:%a %H:%M} {req.tz.key})")
    # The rule that lets the viewer watch longest; ties broken by id so the answer is stable.
    rule, expires = max(sorted(open_now, key=lambda x: x[0].id), key=lambda x: x[1])

    if mode == "raw":
        if not (req.case_ref or "").strip():
            return deny("raw view needs a case reference")
        grant = req.raw_grant
        if grant is None:
            return deny(
                f"no approved raw-view request for camera {cam.id}, purpose {purpose.id}, case {req.case_ref}"
            )
        if grant.status != "approved":
            state = {
                "pending": "awaits approval",
                "denied": "was denied",
                "revoked": "was revoked",
                "expired": "expired",
            }.get(grant.status, grant.status)
            return deny(f"raw-view request {grant.id} {state}")
        if grant.expires_at is None or req.now >= grant.expires_at:
            return deny(f"raw-view approval {grant.id} expired")
        if req.new_session and grant.use_by is not None and req.now >= grant.use_by:
            return deny(f"raw-view approval {grant.id} was not used in time")
        return Decision(
            allowed=True,
            mode="raw",
            rule_id=rule.id,
            reason=f"allowed by rule {rule.id} and raw request {grant.id}",
            expires_at=min(expires, grant.expires_at),
            raw_request_id=grant.id,
        )
    return Decision(
        allowed=True, mode=mode, reason=f"allowed by rule {rule.id}", rule_id=rule.id, expires_at=expires
    )
