"""Grants waiting for a second admin: an admin giving someone a role that confers watching, raw-view or
admin rights (policies.duties) through the admin API records a pending grant instead; a *different* admin,
who is neither the one who asked nor the one who would receive it, approves or denies it before it expires
(`grant_pending_hours`). Approval re-checks separation of duties against the roles held then.

Access-log kinds: `role.grant.request`, `role.grant` (rights actually conferred: an approval, a grant made
while the second admin is switched off, or the system's own paths, the command line being the break-glass
one), `role.grant.deny`, `role.grant.expire`, `role.grant.refused` (an approval or denial refused)."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from policies.audit import AuditLog
from policies.contract import Conflict, Forbidden, NotFound, PolicyError, Principal
from policies.db import Database
from policies.duties import check_role_change, check_roles, needing_second_admin, rights_of, roles_named
from policies.models import RoleGrant, User, as_utc, utcnow
from policies.settings import PolicySettings

STATES = ("pending", "approved", "denied", "expired", "cancelled")


def grant_doc(g: RoleGrant) -> dict[str, Any]:
    return {"id": g.id, "user": g.username, "roles": list(g.roles), "rights": list(g.rights),
            "state": g.state,
            "requested_by": g.requested_by, "requested_at": as_utc(g.requested_at).isoformat(),
            "expires_at": as_utc(g.expires_at).isoformat(), "decided_by": g.decided_by,
            "decided_at": as_utc(g.decided_at).isoformat() if g.decided_at else None, "note": g.note}


def pending_roles(s: Session, now: dt.datetime) -> dict[str, set[str]]:
    """Roles waiting for a second admin at `now`, by the uid of the person they would go to."""
    pending: dict[str, set[str]] = {}
    for grant in s.scalars(select(RoleGrant).where(RoleGrant.state == "pending")):
        if as_utc(grant.expires_at) > now:
            pending.setdefault(grant.user_uid, set()).update(grant.roles)
    return pending


def log_conferred(audit: AuditLog, session: Session, actor: str, actor_roles: Sequence[str], user: User,
                  roles: Sequence[str], **details: Any) -> None:
    """Log roles actually given that confer rights needing a second admin (`role.grant`)."""
    rights = sorted(rights_of(roles_named(session, roles)))
    audit.append_in(session, "role.grant", actor=actor, roles=actor_roles, decision="allow",
                    reason=f"granted {', '.join(roles)} ({', '.join(rights)}) to {user.username}",
                    details={"user": user.username, "roles": list(roles), "rights": rights, **details})


class RoleGrants:
    def __init__(self, db: Database, audit: AuditLog, settings: PolicySettings,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.db = db
        self.audit = audit
        self.settings = settings
        self.clock = clock

    def request(self, session: Session, who: Principal, user: User, roles: Sequence[str]) -> RoleGrant:
        """Record a pending grant of `roles` to `user`, asked by `who`, in the caller's transaction."""
        asker = session.get(User, who.user_id)
        now = self.clock()
        grant = RoleGrant(id=secrets.token_urlsafe(12), user_uid=user.uid, username=user.username,
                          roles=sorted(roles), rights=sorted(rights_of(roles_named(session, roles))),
                          requested_by_uid=asker.uid if asker else "", requested_by=who.username,
                          requested_at=now,
                          expires_at=now + dt.timedelta(hours=self.settings.grant_pending_hours))
        session.add(grant)
        session.flush()
        self.audit.append_in(session, "role.grant.request", actor=who.username, roles=who.roles,
                             reason=f"asks a second admin to grant {', '.join(grant.roles)} "
                                    f"to {user.username}",
                             details={"grant_id": grant.id, "user": user.username, "roles": grant.roles,
                                      "rights": grant.rights, "expires_at": grant.expires_at.isoformat()})
        return grant

    def list(self, state: str | None = None) -> list[dict[str, Any]]:
        if state is not None and state not in STATES:
            raise PolicyError(f"state must be one of {', '.join(STATES)}")
        with self.db.session() as s:
            self._expire(s)
            stmt = select(RoleGrant).order_by(RoleGrant.requested_at)
            if state is not None:
                stmt = stmt.where(RoleGrant.state == state)
            return [grant_doc(g) for g in s.scalars(stmt)]

    def approve(self, who: Principal, grant_id: str) -> dict[str, Any]:
        with self.db.session() as s:
            self._expire(s)  # its own unit of work: an expiry stays recorded even if this step is refused
        try:
            with self.db.session() as s:
                grant, decider = self._decidable(s, who, grant_id)
                if decider.uid == grant.user_uid:
                    raise Forbidden("an admin may not approve a grant to themself")
                user = s.scalar(select(User).where(User.uid == grant.user_uid))
                if user is None:
                    self._close(s, grant, decider, "cancelled", "the user no longer exists")
                    raise Conflict(f"grant {grant_id}: the user {grant.username!r} no longer exists")
                held = {r.name for r in user.roles}
                check_roles(s, held | set(grant.roles), self.settings.allow_conflicting_duties, user.username)
                self._close(s, grant, decider, "approved", "")
                added = sorted(set(grant.roles) - held)
                user.roles = [*user.roles, *roles_named(s, added)]
                log_conferred(self.audit, s, who.username, who.roles, user, grant.roles, grant_id=grant.id,
                              requested_by=grant.requested_by, approved_by=who.username, second_admin=True)
                return grant_doc(grant)
        except PolicyError as exc:
            self._refused(who, grant_id, "approve", exc)
            raise

    def deny(self, who: Principal, grant_id: str, reason: str) -> dict[str, Any]:
        with self.db.session() as s:
            self._expire(s)  # its own unit of work: an expiry stays recorded even if this step is refused
        try:
            with self.db.session() as s:
                grant, decider = self._decidable(s, who, grant_id)
                self._close(s, grant, decider, "denied", reason)
                self.audit.append_in(s, "role.grant.deny", actor=who.username, roles=who.roles,
                                     decision="deny", reason=reason,
                                     details={"grant_id": grant.id, "user": grant.username,
                                              "roles": grant.roles, "requested_by": grant.requested_by})
                return grant_doc(grant)
        except PolicyError as exc:
            self._refused(who, grant_id, "deny", exc)
            raise

    def _decidable(self, s: Session, who: Principal, grant_id: str) -> tuple[RoleGrant, User]:
        grant = s.get(RoleGrant, grant_id)
        if grant is None:
            raise NotFound(f"unknown role grant {grant_id!r}")
        decider = s.get(User, who.user_id)
        if decider is None:
            raise Forbidden("unknown admin")
        if grant.state != "pending":
            raise Conflict(f"grant {grant_id} is {grant.state}, not pending")
        if decider.uid == grant.requested_by_uid:
            raise Forbidden("a grant needs a second admin: the admin who asked for it may not decide it")
        return grant, decider

    def _close(self, s: Session, grant: RoleGrant, decider: User, state: str, note: str) -> None:
        # Conditional: of two admins deciding at once, exactly one does.
        done = s.execute(update(RoleGrant).where(RoleGrant.id == grant.id, RoleGrant.state == "pending")
                         .values(state=state, decided_by_uid=decider.uid, decided_by=decider.username,
                                 decided_at=self.clock(), note=note[:2000]))
        if done.rowcount != 1:
            raise Conflict(f"grant {grant.id} was decided meanwhile")
        s.refresh(grant)

    def _expire(self, s: Session) -> None:
        now = self.clock()
        for grant in s.scalars(select(RoleGrant).where(RoleGrant.state == "pending")):
            if as_utc(grant.expires_at) <= now:
                grant.state, grant.decided_at, grant.note = "expired", now, "no second admin acted in time"
                self.audit.append_in(s, "role.grant.expire", actor="system", decision="deny",
                                     reason=f"grant of {', '.join(grant.roles)} to {grant.username} expired",
                                     details={"grant_id": grant.id, "user": grant.username,
                                              "roles": grant.roles, "requested_by": grant.requested_by})

    def _refused(self, who: Principal, grant_id: str, step: str, exc: PolicyError) -> None:
        self.audit.append("role.grant.refused", actor=who.username, roles=who.roles, decision="deny",
                          reason=str(exc), details={"grant_id": grant_id[:64], "step": step})


def system_grants(audit: AuditLog, session: Session, changes: Sequence[Any], actor: str, source: str,
                  allow_conflicts: bool) -> None:
    """Policy import, the command line and the demo act as the system (an operator with shell access to
    the relay: the break-glass path): roles they give apply at once, each grant of watching, raw-view or
    admin rights logged as `role.grant` with `break_glass`; separation of duties still holds (Conflict).
    `changes`: policies.files changes made in `session`."""
    for ch in changes:
        if ch.kind == "role" and ch.after is not None:
            check_role_change(session, ch.id, ch.after, allow_conflicts=allow_conflicts, second_admin=False)
        if ch.kind != "user" or ch.after is None:
            continue
        after, before = set(ch.after["roles"]), set(ch.before["roles"] if ch.before else [])
        check_roles(session, after, allow_conflicts, ch.id)
        if given := needing_second_admin(session, after - before):
            user = session.scalar(select(User).where(User.username == ch.id))
            if user is not None:
                log_conferred(audit, session, actor, [], user, given, source=source, break_glass=True,
                              second_admin=False)
