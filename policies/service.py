"""The one door the relay knocks on: authorize a view, open/close view sessions, re-check them while
they run, and hand the relay a camera's source settings. Every decision and session event is written to
the access log here, so no caller can forget to.

CONTRACT (shared by policies/ and relay/): signatures below are what relay/ calls. Implementation lives
in this module; it uses policies.engine (decisions) and policies.audit (evidence)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["anonymized", "raw"]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated person, as established by policies.auth."""

    user_id: int
    username: str
    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    mode: Mode
    reason: str  # the rule that allowed it, or the missing condition
    rule_id: str | None = None
    expires_at: dt.datetime | None = None
    raw_request_id: str | None = None


@dataclass(frozen=True, slots=True)
class CameraRuntime:
    """What the data plane needs to pull and anonymize a camera. `source_url` carries credentials:
    relay code must never log or show it (use redacted_url)."""

    id: str
    name: str
    source_url: str
    redacted_url: str
    privacy_masks: list[list[tuple[float, float]]] = field(default_factory=list)  # normalized polygons
    keepalive: bool = False
    enabled: bool = True


# The engine builds on the dataclasses above, so it is imported after them.
import dataclasses  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import secrets  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.parse  # noqa: E402
from collections.abc import Callable, Iterable  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402
from zoneinfo import ZoneInfo  # noqa: E402

from sqlalchemy import select, update  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from policies import engine  # noqa: E402
from policies.models import (  # noqa: E402
    Camera,
    Purpose,
    RawViewRequest,
    Role,
    Rule,
    User,
    UserRole,
    ViewSession,
    as_utc,
    utcnow,
)

if TYPE_CHECKING:
    from policies.audit import AuditLog
    from policies.context import PolicySettings
    from policies.db import Database


log = logging.getLogger(__name__)


class PolicyError(Exception):
    """A request the policy refuses or cannot parse; the message is one line, safe to show."""

    status = 400


class NotFound(PolicyError):
    status = 404


class Forbidden(PolicyError):
    status = 403


class Conflict(PolicyError):
    status = 409


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


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***, for logs and screens."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    user = urllib.parse.quote(parts.username or "", safe="")
    netloc = f"{user}:***@{host}" if parts.password is not None else f"{user}@{host}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Camera credentials may only name variables meant for them: a camera URL must not be able to carry
# the relay's own secrets (token key, audit key) to whatever host it points at.
CAMERA_ENV_NAME = re.compile(r"^CAM(ERA)?_[A-Za-z0-9_]+$")


def expand_env(
    value: str | None, allowed: re.Pattern[str] | None = None, environ: dict[str, str] | None = None
) -> str | None:
    """Resolve `${NAME}` references (credentials are kept out of the database and policy files)."""
    if value is None:
        return None
    env = os.environ if environ is None else environ

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if allowed is not None and not allowed.match(name):
            raise PolicyError(
                f"environment variable {name} may not be referenced here (use CAM_* or CAMERA_*)"
            )
        if name not in env:
            raise PolicyError(f"environment variable {name} is not set")
        return env[name]

    return ENV_REF.sub(sub, value)


class RuleCache:
    """The enabled rules' facts, shared by the running-session checks (each viewer's every second).
    A commit that changes rules in this process drops them at once; changes made elsewhere (another
    worker, the command line, plain SQL) show within `ttl_s`."""

    def __init__(
        self, db: Database, ttl_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.db = db
        self.ttl_s = ttl_s
        self.clock = clock
        self._facts: list[engine.RuleFacts] | None = None
        self._loaded_at = 0.0
        self._generation = 0
        self._lock = threading.Lock()
        db.on_commit((Rule,), self.invalidate)

    def invalidate(self) -> None:
        with self._lock:
            self._facts = None
            self._generation += 1

    def get(self, s: Session) -> list[engine.RuleFacts]:
        with self._lock:
            if self._facts is not None and self.clock() - self._loaded_at < self.ttl_s:
                return self._facts
            generation = self._generation
        loaded_at = self.clock()
        facts = enabled_rules(s)
        with self._lock:
            if generation == self._generation:  # no change committed while we read: keep them
                self._facts, self._loaded_at = facts, loaded_at
        return facts


def enabled_rules(s: Session) -> list[engine.RuleFacts]:
    return [rule_facts(r) for r in s.scalars(select(Rule).where(Rule.enabled.is_(True)))]


class PolicyService:
    def __init__(
        self,
        db: Database,
        audit: AuditLog,
        settings: PolicySettings,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.db = db
        self.audit = audit
        self.settings = settings
        self.clock = clock
        self.tz = ZoneInfo(settings.timezone)
        self.rules = RuleCache(db)

    # -- facts ---------------------------------------------------------------------------------------

    def _now(self) -> dt.datetime:
        return as_utc(self.clock())

    @staticmethod
    def _roles(s: Session, user: User | None, claimed: Iterable[str]) -> list[Role]:
        """Roles held now: those the principal claims that the user still holds in the database."""
        if user is None:
            return []
        claimed = set(claimed)
        return sorted((r for r in user.roles if r.name in claimed), key=lambda r: r.name)

    def _decide(
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
    ) -> engine.Decision:
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
                now=self._now(),
                tz=self.tz,
                rules=enabled_rules(s),
                user_active=user is not None and user.active,
                case_ref=case_ref,
                raw_grant=self._grant(grant),
                new_session=new_session,
            )
        )

    def _grant(self, req: RawViewRequest | None) -> engine.RawGrant | None:
        if req is None:
            return None
        expires = as_utc(req.expires_at) if req.expires_at else None
        use_by = (
            as_utc(req.decided_at) + dt.timedelta(minutes=self.settings.approval_window_minutes)
            if req.decided_at and req.status == "approved"
            else None
        )
        return engine.RawGrant(id=req.id, status=req.status, expires_at=expires, use_by=use_by)

    def _find_grant(
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
        now = self._now()
        usable = [r for r in found if r.status == "approved" and r.expires_at and as_utc(r.expires_at) > now]
        return (usable or found or [None])[0]

    # -- viewing -------------------------------------------------------------------------------------

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
            roles = self._roles(s, user, principal.roles)
            grant = (
                self._find_grant(s, principal.user_id, camera_id, purpose, case_ref)
                if mode == "raw"
                else None
            )
            decision = self._decide(
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
        self, principal: Principal, camera_id: str, purpose: str, decision: Decision, client: str = ""
    ) -> str:
        if not decision.allowed or decision.expires_at is None:
            raise Forbidden(f"no session without an allowing decision: {decision.reason}")
        session_id = secrets.token_urlsafe(18)
        now = self._now()
        details = {
            "session_id": session_id,
            "client": client,
            "rule_id": decision.rule_id,
            "expires_at": decision.expires_at.isoformat(),
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
            now = self._now()
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
                tz=self.tz,
                rules=rules,
                user_active=bool(first.active),
                case_ref=grant.case_ref if grant else None,
                raw_grant=self._grant(grant),
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

    def close_session(self, session_id: str, reason: str) -> None:
        now = self._now()
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

    def camera_runtime(self, camera_id: str) -> CameraRuntime | None:
        """Source settings with `${ENV}` credentials resolved. A camera whose credentials cannot be
        resolved comes back disabled (and says why in the log) rather than failing the caller."""
        with self.db.session() as s:
            cam = s.get(Camera, camera_id)
            if cam is None:
                return None
            masks = [[(float(x), float(y)) for x, y in poly] for poly in cam.privacy_masks]
            name, keepalive, enabled = cam.name, cam.keepalive, cam.enabled
            raw_url, raw_user, raw_password = cam.source_url, cam.source_username, cam.source_password
        try:
            url = expand_env(raw_url, CAMERA_ENV_NAME) or ""
            user = expand_env(raw_user, CAMERA_ENV_NAME)
            password = expand_env(raw_password, CAMERA_ENV_NAME)
        except PolicyError as exc:
            log.warning("camera %s disabled: %s", camera_id, exc)
            return CameraRuntime(
                id=camera_id,
                name=name,
                source_url="",
                redacted_url=f"(unavailable: {exc})",
                privacy_masks=masks,
                keepalive=keepalive,
                enabled=False,
            )
        if user and "://" in url and "@" not in urllib.parse.urlsplit(url).netloc:
            parts = urllib.parse.urlsplit(url)
            cred = urllib.parse.quote(user, safe="")
            if password:
                cred += ":" + urllib.parse.quote(password, safe="")
            url = urllib.parse.urlunsplit(parts._replace(netloc=f"{cred}@{parts.netloc}"))
        return CameraRuntime(
            id=camera_id,
            name=name,
            source_url=url,
            redacted_url=redact_url(url),
            privacy_masks=masks,
            keepalive=keepalive,
            enabled=enabled,
        )

    def cameras_for(self, principal: Principal) -> list[dict[str, Any]]:
        """Cameras this person may watch now, with the purposes (and raw-capable purposes) open to them."""
        far = self._now() + dt.timedelta(days=1)
        probe = engine.RawGrant(id="-", status="approved", expires_at=far)
        out: list[dict[str, Any]] = []
        with self.db.session() as s:
            user = s.get(User, principal.user_id)
            roles = [engine.RoleFacts(r.name, r.can_view) for r in self._roles(s, user, principal.roles)]
            purposes = {p.id: engine.PurposeFacts(p.id, p.allows_raw) for p in s.scalars(select(Purpose))}
            rules = enabled_rules(s)
            for cam in s.scalars(select(Camera).where(Camera.enabled.is_(True)).order_by(Camera.id)):
                facts = camera_facts(cam)
                allowed, raw = [], []
                for pid in cam.purposes:
                    if pid not in purposes:
                        continue
                    req = engine.Request(
                        roles=roles,
                        camera=facts,
                        camera_id=cam.id,
                        purpose=purposes[pid],
                        purpose_id=pid,
                        mode="anonymized",
                        now=self._now(),
                        tz=self.tz,
                        rules=rules,
                        user_active=bool(user and user.active),
                    )
                    if engine.decide(req).allowed:
                        allowed.append(pid)
                    raw_req = dataclasses.replace(req, mode="raw", case_ref="-", raw_grant=probe)
                    if engine.decide(raw_req).allowed:
                        raw.append(pid)
                if allowed or raw:
                    out.append(
                        {
                            "id": cam.id,
                            "name": cam.name,
                            "latitude": cam.latitude,
                            "longitude": cam.longitude,
                            "address": cam.address,
                            "district": cam.district,
                            "agency": cam.agency,
                            "tags": list(cam.tags),
                            "signage": cam.signage,
                            "purposes": allowed,
                            "raw_purposes": raw,
                        }
                    )
        return out

    # -- raw-view dual control ----------------------------------------------------------------------

    def _rights(self, s: Session, principal: Principal) -> tuple[User, list[Role]]:
        user = s.get(User, principal.user_id)
        if user is None or not user.active:
            raise Forbidden("account disabled or removed")
        return user, self._roles(s, user, principal.roles)

    def _raw_doc(self, s: Session, req: RawViewRequest) -> dict[str, Any]:
        def name(uid: int | None) -> str | None:
            if uid is None:
                return None
            u = s.get(User, uid)
            return u.username if u else str(uid)

        grant = self._grant(req)
        status = req.status
        if status == "approved" and grant and grant.expires_at and self._now() >= grant.expires_at:
            status = "expired"
        return {
            "id": req.id,
            "requester": name(req.requester_id),
            "camera_id": req.camera_id,
            "purpose": req.purpose,
            "case_ref": req.case_ref,
            "justification": req.justification,
            "status": status,
            "requested_at": as_utc(req.requested_at),
            "approver": name(req.approver_id),
            "decided_at": as_utc(req.decided_at) if req.decided_at else None,
            "expires_at": grant.expires_at if grant else None,
            "use_by": grant.use_by if grant else None,
            "revoked_by": name(req.revoked_by),
            "revoked_at": as_utc(req.revoked_at) if req.revoked_at else None,
            "note": req.note,
        }

    def _log_raw(
        self,
        kind: str,
        actor: Principal,
        req: dict[str, Any] | None,
        decision: str,
        reason: str,
        camera_id: str | None = None,
        purpose: str | None = None,
        session: Session | None = None,
        **details: Any,
    ) -> None:
        """Log a raw-view step: inside `session` when it records a change made there (so both commit
        together); alone for a refusal, whose transaction has rolled back."""
        if req is not None:
            camera_id, purpose = req["camera_id"], req["purpose"]
            details = {
                "request_id": req["id"],
                "requester": req["requester"],
                "case_ref": req["case_ref"],
                **details,
            }
        entry: dict[str, Any] = {
            "actor": actor.username,
            "roles": actor.roles,
            "camera_id": camera_id,
            "purpose": purpose,
            "mode": "raw",
            "decision": decision,
            "reason": reason,
            "details": details,
        }
        if session is not None:
            self.audit.append_in(session, kind, **entry)
        else:
            self.audit.append(kind, **entry)

    def request_raw(
        self, principal: Principal, camera_id: str, purpose: str, case_ref: str, justification: str = ""
    ) -> dict[str, Any]:
        case_ref = (case_ref or "").strip()
        try:
            with self.db.session() as s:
                user, roles = self._rights(s, principal)
                if not any(r.can_request_raw for r in roles):
                    raise Forbidden("your roles do not grant 'request_raw'")
                if not case_ref:
                    raise PolicyError("raw view needs a case reference")
                # Would the policy let this person watch raw once approved? Ask the engine with a probe grant.
                probe = RawViewRequest(
                    id="-",
                    requester_id=user.id,
                    camera_id=camera_id,
                    purpose=purpose,
                    case_ref=case_ref,
                    status="approved",
                    expires_at=self._now() + dt.timedelta(days=1),
                )
                d = self._decide(
                    s, user, roles, camera_id, purpose, "raw", case_ref, probe, new_session=False
                )
                if not d.allowed:
                    err = (
                        NotFound if d.reason.startswith(("unknown camera", "unknown purpose")) else Forbidden
                    )
                    raise err(d.reason)
                req = RawViewRequest(
                    id="raw-" + secrets.token_hex(8),
                    requester_id=user.id,
                    camera_id=camera_id,
                    purpose=purpose,
                    case_ref=case_ref[:200],
                    justification=justification,
                    status="pending",
                    requested_at=self._now(),
                )
                s.add(req)
                s.flush()
                doc = self._raw_doc(s, req)
                self._log_raw(
                    "raw.request",
                    principal,
                    doc,
                    "allow",
                    "awaiting approval",
                    session=s,
                    justification=justification,
                )
        except PolicyError as exc:
            self._log_raw(
                "raw.request",
                principal,
                None,
                "deny",
                str(exc),
                camera_id=camera_id[:64],
                purpose=purpose[:64],
                case_ref=case_ref,
            )
            raise
        return doc

    def _decide_request(
        self,
        kind: str,
        actor: Principal,
        request_id: str,
        change: Callable[[Session, User, list[Role], RawViewRequest], str],
    ) -> dict[str, Any]:
        doc: dict[str, Any] | None = None
        try:
            with self.db.session() as s:
                user, roles = self._rights(s, actor)
                # Lock the request before reading it (a no-op update locks the row on PostgreSQL and the
                # database on SQLite), so two approvers cannot both act on the same pending request.
                s.execute(
                    update(RawViewRequest)
                    .where(RawViewRequest.id == request_id)
                    .values(status=RawViewRequest.status)
                    .execution_options(synchronize_session=False)
                )
                req = s.get(RawViewRequest, request_id)
                if req is None:
                    raise NotFound(f"unknown raw-view request {request_id!r}")
                doc = self._raw_doc(s, req)
                reason = change(s, user, roles, req)
                s.flush()
                after = self._raw_doc(s, req)
                self._log_raw(
                    kind,
                    actor,
                    after,
                    "allow",
                    reason,
                    session=s,
                    status=after["status"],
                    expires_at=after["expires_at"].isoformat() if after["expires_at"] else None,
                )
        except PolicyError as exc:
            # A refused or stale action is evidence too (its transaction changed nothing).
            self._log_raw(kind, actor, doc, "deny", str(exc))
            raise
        return after

    def approve_raw(self, approver: Principal, request_id: str, minutes: int | None = None) -> dict[str, Any]:
        limit = self.settings.raw_max_minutes
        window = self.settings.approval_window_minutes

        def change(s: Session, user: User, roles: list[Role], req: RawViewRequest) -> str:
            if not any(r.can_approve_raw for r in roles):
                raise Forbidden("your roles do not grant 'approve_raw'")
            if req.requester_id == user.id:
                raise Forbidden("a raw-view request must be approved by someone other than the requester")
            if req.status != "pending":
                raise Conflict(f"raw-view request {req.id} is {req.status}, not pending")
            now = self._now()
            if now > as_utc(req.requested_at) + dt.timedelta(minutes=window):
                raise Conflict(f"raw-view request {req.id} expired: not approved within {window} minutes")
            length = limit if minutes is None else minutes
            if not 0 < length <= limit:
                raise PolicyError(f"minutes: must be between 1 and {limit}")
            req.status, req.approver_id, req.decided_at = "approved", user.id, now
            req.expires_at = now + dt.timedelta(minutes=length)
            return f"approved for {length} minutes"

        return self._decide_request("raw.approve", approver, request_id, change)

    def deny_raw(self, approver: Principal, request_id: str, reason: str) -> dict[str, Any]:
        def change(s: Session, user: User, roles: list[Role], req: RawViewRequest) -> str:
            if not any(r.can_approve_raw for r in roles):
                raise Forbidden("your roles do not grant 'approve_raw'")
            if req.status != "pending":
                raise Conflict(f"raw-view request {req.id} is {req.status}, not pending")
            req.status, req.approver_id, req.decided_at, req.note = "denied", user.id, self._now(), reason
            return reason

        return self._decide_request("raw.deny", approver, request_id, change)

    def revoke_raw(self, actor: Principal, request_id: str, reason: str) -> dict[str, Any]:
        def change(s: Session, user: User, roles: list[Role], req: RawViewRequest) -> str:
            allowed = any(r.can_admin or r.can_approve_raw for r in roles) or req.requester_id == user.id
            if not allowed:
                raise Forbidden("only an administrator, an approver or the requester may revoke")
            if req.status not in ("pending", "approved"):
                raise Conflict(f"raw-view request {req.id} is {req.status}; nothing to revoke")
            req.status, req.revoked_by, req.revoked_at, req.note = "revoked", user.id, self._now(), reason
            return reason

        return self._decide_request("raw.revoke", actor, request_id, change)

    def list_raw(self, principal: Principal, status: str | None = None) -> list[dict[str, Any]]:
        """Approvers and administrators see every request; others their own."""
        with self.db.session() as s:
            user, roles = self._rights(s, principal)
            q = select(RawViewRequest).order_by(RawViewRequest.requested_at.desc())
            if not any(r.can_approve_raw or r.can_admin or r.can_audit for r in roles):
                q = q.where(RawViewRequest.requester_id == user.id)
            docs = [self._raw_doc(s, r) for r in s.scalars(q)]
        return [d for d in docs if status is None or d["status"] == status]

    def get_raw(self, principal: Principal, request_id: str) -> dict[str, Any]:
        for doc in self.list_raw(principal):
            if doc["id"] == request_id:
                return doc
        raise NotFound(f"unknown raw-view request {request_id!r}")
