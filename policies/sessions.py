"""View sessions: authorize a view, open it, re-check it while it runs, close it. Each decision and
session event is logged in the same transaction as what it records."""

from __future__ import annotations

import secrets

from sqlalchemy import select, update

from policies import engine
from policies.audit import AuditLog
from policies.contract import Decision, Forbidden, Mode, Principal
from policies.db import Database
from policies.facts import Decider, held_roles
from policies.models import Camera, Purpose, RawViewRequest, Role, User, UserRole, ViewSession, as_utc
from policies.rule_cache import RuleCache


class ViewSessions:
    def __init__(self, db: Database, audit: AuditLog, decider: Decider, rules: RuleCache) -> None:
        self.db = db
        self.audit = audit
        self.decider = decider
        self.rules = rules

    def authorize_view(
        self,
        principal: Principal,
        camera_id: str,
        purpose: str,
        mode: Mode = "anonymized",
        case_ref: str | None = None,
        client: str = "",
    ) -> Decision:
        with self.db.session() as s:
            user = s.get(User, principal.user_id)
            roles = held_roles(user, principal.roles)
            grant = (
                self.decider.find_grant(s, principal.user_id, camera_id, purpose, case_ref)
                if mode == "raw"
                else None
            )
            decision = self.decider.decide(
                s, user, roles, camera_id, purpose, mode, case_ref, grant, new_session=True
            )
            # Logged in the same transaction as what it records: evidence and effect commit together.
            self.audit.append_in(
                s,
                "view.request",
                actor=principal.username,
                roles=[r.name for r in roles],
                camera_id=camera_id[:64],
                purpose=purpose[:64],
                mode=str(mode)[:16],
                decision="allow" if decision.allowed else "deny",
                reason=decision.reason,
                details={
                    "client": client,
                    "case_ref": case_ref,
                    "rule_id": decision.rule_id,
                    "raw_request_id": decision.raw_request_id,
                    "expires_at": decision.expires_at.isoformat() if decision.expires_at else None,
                },
            )
        return decision

    def open_session(
        self,
        principal: Principal,
        camera_id: str,
        purpose: str,
        decision: Decision,
        client: str = "",
        replica: str = "",
    ) -> str:
        if not decision.allowed or decision.expires_at is None:
            raise Forbidden(f"no session without an allowing decision: {decision.reason}")
        session_id = secrets.token_urlsafe(18)
        now = self.decider.now()
        details = {
            "session_id": session_id,
            "client": client,
            "rule_id": decision.rule_id,
            "expires_at": decision.expires_at.isoformat(),
            **({"replica": replica} if replica else {}),
        }
        entry = {
            "actor": principal.username,
            "roles": principal.roles,
            "camera_id": camera_id,
            "purpose": purpose,
            "mode": decision.mode,
            "decision": "allow",
            "reason": decision.reason,
        }
        with self.db.session() as s:
            s.add(
                ViewSession(
                    id=session_id,
                    user_id=principal.user_id,
                    camera_id=camera_id,
                    purpose=purpose,
                    mode=decision.mode,
                    rule_id=decision.rule_id,
                    raw_request_id=decision.raw_request_id,
                    started_at=now,
                    expires_at=decision.expires_at,
                    client=client[:200],
                    roles=list(principal.roles),
                    replica=replica[:64],
                )
            )
            self.audit.append_in(s, "view.start", **entry, details=details)
            if decision.mode == "raw":
                raw_details = {**details, "raw_request_id": decision.raw_request_id}
                self.audit.append_in(s, "raw.use", **entry, details=raw_details)
        return session_id

    def check_session(self, session_id: str) -> Decision:
        """Re-decide a running session (the relay asks every second per viewer): the session, its user,
        the roles that user holds, camera, purpose and raw grant come in one query; rules from the cache.
        Expiry, revocation, a disabled user or camera, a removed role or rule all end it."""
        stmt = (
            select(
                ViewSession,
                User.active,
                Camera.id.label("camera"),
                Camera.purposes,
                Camera.district,
                Camera.tags,
                Camera.enabled,
                Purpose.id.label("purpose"),
                Purpose.allows_raw,
                RawViewRequest,
                Role.name.label("role"),
                Role.can_view,
            )
            .outerjoin(User, User.id == ViewSession.user_id)
            .outerjoin(Camera, Camera.id == ViewSession.camera_id)
            .outerjoin(Purpose, Purpose.id == ViewSession.purpose)
            .outerjoin(RawViewRequest, RawViewRequest.id == ViewSession.raw_request_id)
            .outerjoin(UserRole, UserRole.user_id == ViewSession.user_id)
            .outerjoin(Role, Role.name == UserRole.role_name)
            .where(ViewSession.id == session_id)
        )
        with self.db.session() as s:
            rows = s.execute(stmt).all()
            if not rows:
                return Decision(allowed=False, mode="anonymized", reason="unknown session")
            first = rows[0]
            vs: ViewSession = first.ViewSession
            mode: Mode = "raw" if vs.mode == "raw" else "anonymized"
            if vs.ended_at is not None:
                return Decision(allowed=False, mode=mode, reason=f"session ended: {vs.end_reason}")
            expires = as_utc(vs.expires_at)
            now = self.decider.now()
            if now >= expires:
                return Decision(allowed=False, mode=mode, reason="session expired")
            rules = self.rules.get(s)
        grant: RawViewRequest | None = first.RawViewRequest
        claimed = set(vs.roles)
        # Roles held now: those the session was granted under that the user still holds.
        roles = sorted({(r.role, r.can_view) for r in rows if r.role is not None and r.role in claimed})
        d = engine.decide(
            engine.Request(
                roles=[engine.RoleFacts(name, bool(can_view)) for name, can_view in roles],
                camera=engine.CameraFacts(
                    id=first.camera,
                    purposes=frozenset(first.purposes or ()),
                    district=first.district or "",
                    tags=frozenset(first.tags or ()),
                    enabled=bool(first.enabled),
                )
                if first.camera is not None
                else None,
                camera_id=vs.camera_id,
                purpose=engine.PurposeFacts(first.purpose, bool(first.allows_raw))
                if first.purpose is not None
                else None,
                purpose_id=vs.purpose,
                mode=mode,
                now=now,
                tz=self.decider.tz,
                rules=rules,
                user_active=bool(first.active),
                case_ref=grant.case_ref if grant else None,
                raw_grant=self.decider.grant(grant),
                new_session=False,
            )
        )
        if not d.allowed:
            return d
        new_expiry = min(expires, d.expires_at) if d.expires_at else expires
        return Decision(
            allowed=True,
            mode=d.mode,
            reason=d.reason,
            rule_id=d.rule_id,
            expires_at=new_expiry,
            raw_request_id=d.raw_request_id,
        )

    def open_on(self, replica: str) -> list[str]:
        """Ids of the sessions still open that `replica` runs (or ran, if it died without closing them)."""
        with self.db.session() as s:
            open_ = (ViewSession.replica == replica, ViewSession.ended_at.is_(None))
            return list(s.scalars(select(ViewSession.id).where(*open_).order_by(ViewSession.started_at)))

    def close_session(self, session_id: str, reason: str) -> None:
        now = self.decider.now()
        with self.db.session() as s:
            # Conditional update: of two concurrent closes exactly one ends the session and logs it.
            ended = s.execute(
                update(ViewSession)
                .where(ViewSession.id == session_id, ViewSession.ended_at.is_(None))
                .values(ended_at=now, end_reason=reason[:200])
            )
            if ended.rowcount != 1:
                return  # unknown, or closed already: closing twice is harmless and logged once
            vs = s.get(ViewSession, session_id)
            assert vs is not None
            user = s.get(User, vs.user_id)
            self.audit.append_in(
                s,
                "view.end",
                actor=user.username if user else str(vs.user_id),
                reason=reason,
                camera_id=vs.camera_id,
                purpose=vs.purpose,
                mode=vs.mode,
                roles=list(vs.roles),
                details={
                    "session_id": session_id,
                    "duration_s": round((now - as_utc(vs.started_at)).total_seconds(), 3),
                    "raw_request_id": vs.raw_request_id,
                },
            )
