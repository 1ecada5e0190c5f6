"""From the policy database to the engine's plain facts, and the engine asked with them: the roles a
person still holds, a camera's and the enabled rules' facts, the raw-view grant on file. Shared by view
sessions, raw views and camera listing, so each asks `decide()` the same way."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from policies import engine
from policies.contract import Decision
from policies.models import Camera, Purpose, RawViewRequest, Role, Rule, User, as_utc
from policies.settings import PolicySettings


def rule_facts(rule: Rule) -> engine.RuleFacts:
    return engine.RuleFacts(
        id=rule.id,
        roles=frozenset(rule.roles),
        purposes=frozenset(rule.purposes),
        camera_ids=frozenset(rule.camera_ids),
        districts=frozenset(rule.districts),
        tags=frozenset(rule.tags),
        modes=frozenset(rule.modes),
        time_windows=tuple(engine.TimeWindow.parse(w) for w in rule.time_windows),
        max_session_s=rule.max_session_s,
        enabled=rule.enabled,
    )


def camera_facts(cam: Camera) -> engine.CameraFacts:
    return engine.CameraFacts(
        id=cam.id,
        purposes=frozenset(cam.purposes),
        district=cam.district,
        tags=frozenset(cam.tags),
        enabled=cam.enabled,
    )


def enabled_rules(s: Session) -> list[engine.RuleFacts]:
    return [rule_facts(r) for r in s.scalars(select(Rule).where(Rule.enabled.is_(True)))]


def held_roles(user: User | None, claimed: Iterable[str]) -> list[Role]:
    """Roles held now: those the principal claims that the user still holds in the database."""
    if user is None:
        return []
    claimed = set(claimed)
    return sorted((r for r in user.roles if r.name in claimed), key=lambda r: r.name)


class Decider:
    """Asks `engine.decide` with facts read in the caller's unit of work, on the service's clock (read
    through `now`, so a clock swapped on the service applies here too) and in the policy's time zone."""

    def __init__(self, settings: PolicySettings, now: Callable[[], dt.datetime]) -> None:
        self.settings = settings
        self.now = now
        self.tz = ZoneInfo(settings.timezone)

    def decide(
        self,
        s: Session,
        user: User | None,
        roles: list[Role],
        camera_id: str,
        purpose_id: str,
        mode: str,
        case_ref: str | None,
        grant: RawViewRequest | None,
        new_session: bool,
    ) -> Decision:
        cam = s.get(Camera, camera_id)
        purpose = s.get(Purpose, purpose_id)
        return engine.decide(
            engine.Request(
                roles=[engine.RoleFacts(r.name, r.can_view) for r in roles],
                camera=camera_facts(cam) if cam else None,
                camera_id=camera_id,
                purpose=engine.PurposeFacts(purpose.id, purpose.allows_raw) if purpose else None,
                purpose_id=purpose_id,
                mode=mode,
                now=self.now(),
                tz=self.tz,
                rules=enabled_rules(s),
                user_active=user is not None and user.active,
                case_ref=case_ref,
                raw_grant=self.grant(grant),
                new_session=new_session,
            )
        )

    def grant(self, req: RawViewRequest | None) -> engine.RawGrant | None:
        if req is None:
            return None
        expires = as_utc(req.expires_at) if req.expires_at else None
        use_by = (
            as_utc(req.decided_at) + dt.timedelta(minutes=self.settings.approval_window_minutes)
            if req.decided_at and req.status == "approved"
            else None
        )
        return engine.RawGrant(id=req.id, status=req.status, expires_at=expires, use_by=use_by)

    def find_grant(
        self, s: Session, user_id: int, camera_id: str, purpose: str, case_ref: str | None
    ) -> RawViewRequest | None:
        """The user's request for exactly this camera, purpose and case: an approved one if any."""
        if not case_ref:
            return None
        found = list(
            s.scalars(
                select(RawViewRequest)
                .where(
                    RawViewRequest.requester_id == user_id,
                    RawViewRequest.camera_id == camera_id,
                    RawViewRequest.purpose == purpose,
                    RawViewRequest.case_ref == case_ref,
                )
                .order_by(RawViewRequest.requested_at.desc())
            )
        )
        now = self.now()
        usable = [r for r in found if r.status == "approved" and r.expires_at and as_utc(r.expires_at) > now]
        return (usable or found or [None])[0]
