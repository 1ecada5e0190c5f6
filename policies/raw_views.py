"""Raw view under dual control: an investigator requests (camera, purpose, case, justification), a
different approver approves or denies, admins, approvers or the requester revoke. Each step, refusals
included, is logged; a change commits with its entry, a refusal is logged alone."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from policies.audit import AuditLog
from policies.contract import Conflict, Forbidden, NotFound, PolicyError, Principal
from policies.db import Database
from policies.facts import Decider, held_roles
from policies.models import RawViewRequest, Role, User, as_utc
from policies.settings import PolicySettings


class RawViews:
    def __init__(self, db: Database, audit: AuditLog, decider: Decider, settings: PolicySettings) -> None:
        self.db = db
        self.audit = audit
        self.decider = decider
        self.settings = settings

    def _rights(self, s: Session, principal: Principal) -> tuple[User, list[Role]]:
        user = s.get(User, principal.user_id)
        if user is None or not user.active:
            raise Forbidden("account disabled or removed")
        return user, held_roles(user, principal.roles)

    def _doc(self, s: Session, req: RawViewRequest) -> dict[str, Any]:
        def name(uid: int | None) -> str | None:
            if uid is None:
                return None
            u = s.get(User, uid)
            return u.username if u else str(uid)

        grant = self.decider.grant(req)
        status = req.status
        if status == "approved" and grant and grant.expires_at and self.decider.now() >= grant.expires_at:
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

    def _log(
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
                    expires_at=self.decider.now() + dt.timedelta(days=1),
                )
                d = self.decider.decide(
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
                    requested_at=self.decider.now(),
                )
                s.add(req)
                s.flush()
                doc = self._doc(s, req)
                self._log(
                    "raw.request",
                    principal,
                    doc,
                    "allow",
                    "awaiting approval",
                    session=s,
                    justification=justification,
                )
        except PolicyError as exc:
            self._log(
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

    def _act(
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
                doc = self._doc(s, req)
                reason = change(s, user, roles, req)
                s.flush()
                after = self._doc(s, req)
                self._log(
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
            self._log(kind, actor, doc, "deny", str(exc))
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
            now = self.decider.now()
            if now > as_utc(req.requested_at) + dt.timedelta(minutes=window):
                raise Conflict(f"raw-view request {req.id} expired: not approved within {window} minutes")
            length = limit if minutes is None else minutes
            if not 0 < length <= limit:
                raise PolicyError(f"minutes: must be between 1 and {limit}")
            req.status, req.approver_id, req.decided_at = "approved", user.id, now
            req.expires_at = now + dt.timedelta(minutes=length)
            return f"approved for {length} minutes"

        return self._act("raw.approve", approver, request_id, change)

    def deny_raw(self, approver: Principal, request_id: str, reason: str) -> dict[str, Any]:
        def change(s: Session, user: User, roles: list[Role], req: RawViewRequest) -> str:
            if not any(r.can_approve_raw for r in roles):
                raise Forbidden("your roles do not grant 'approve_raw'")
            if req.status != "pending":
                raise Conflict(f"raw-view request {req.id} is {req.status}, not pending")
            now = self.decider.now()
            req.status, req.approver_id, req.decided_at, req.note = "denied", user.id, now, reason
            return reason

        return self._act("raw.deny", approver, request_id, change)

    def revoke_raw(self, actor: Principal, request_id: str, reason: str) -> dict[str, Any]:
        def change(s: Session, user: User, roles: list[Role], req: RawViewRequest) -> str:
            allowed = any(r.can_admin or r.can_approve_raw for r in roles) or req.requester_id == user.id
            if not allowed:
                raise Forbidden("only an administrator, an approver or the requester may revoke")
            if req.status not in ("pending", "approved"):
                raise Conflict(f"raw-view request {req.id} is {req.status}; nothing to revoke")
            now = self.decider.now()
            req.status, req.revoked_by, req.revoked_at, req.note = "revoked", user.id, now, reason
            return reason

        return self._act("raw.revoke", actor, request_id, change)

    def list_raw(self, principal: Principal, status: str | None = None) -> list[dict[str, Any]]:
        """Approvers and administrators see every request; others their own."""
        with self.db.session() as s:
            user, roles = self._rights(s, principal)
            q = select(RawViewRequest).order_by(RawViewRequest.requested_at.desc())
            if not any(r.can_approve_raw or r.can_admin or r.can_audit for r in roles):
                q = q.where(RawViewRequest.requester_id == user.id)
            docs = [self._doc(s, r) for r in s.scalars(q)]
        return [d for d in docs if status is None or d["status"] == status]

    def get_raw(self, principal: Principal, request_id: str) -> dict[str, Any]:
        for doc in self.list_raw(principal):
            if doc["id"] == request_id:
                return doc
        raise NotFound(f"unknown raw-view request {request_id!r}")
