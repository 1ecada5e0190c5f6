"""Separation of duties: the rights roles confer, which rights must not meet in one person, and which
grants need a second admin.

- Administering users and policy (`admin`) must not meet watching or raw-view rights (`view`,
  `request_raw`, `approve_raw`) in one person, nor may requesting raw view meet approving it, unless the
  setting `allow_conflicting_duties` says so. Checked wherever roles are given: the admin API, grant
  approvals, policy import, the command line, a role's rights being widened, and single sign-on.
- Giving someone a role that confers `view`, `request_raw`, `approve_raw` or `admin` is a grant: through
  the admin API it waits for a second admin (policies.role_grants) while `grants_need_second_admin` is on."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from policies.contract import Conflict
from policies.models import Role, User

PERMISSIONS = {"view": "can_view", "request_raw": "can_request_raw", "approve_raw": "can_approve_raw",
               "admin": "can_admin", "audit": "can_audit"}
# Rights whose grant needs a second admin: watching, the raw-view duties, and administering (an admin able
# to make other admins alone could make a second account to approve their own grants).
GRANTED_WITH_SECOND_ADMIN = frozenset({"view", "request_raw", "approve_raw", "admin"})
# (rights, rights, why) pairs that must not meet in one person.
CONFLICTS = (
    (frozenset({"admin"}), frozenset({"view", "request_raw", "approve_raw"}),
     "administering users and policy must not meet watching or approving in one person"),
    (frozenset({"request_raw"}), frozenset({"approve_raw"}),
     "requesting raw view and approving it must not meet in one person"),
)


def rights_of(roles: Iterable[Any]) -> set[str]:
    return {right for role in roles for right, flag in PERMISSIONS.items() if getattr(role, flag)}


def roles_named(session: Session, names: Collection[str]) -> list[Role]:
    return list(session.scalars(select(Role).where(Role.name.in_(names)))) if names else []


def conflict(roles: Iterable[Any]) -> str | None:
    """Why these roles may not be held together, naming the roles and rights; None if they may."""
    roles = list(roles)
    for left, right, why in CONFLICTS:
        a = [_named(r, left) for r in roles if rights_of([r]) & left]
        b = [_named(r, right) for r in roles if rights_of([r]) & right]
        if a and b:
            return f"{why}: {', '.join(a)} with {', '.join(b)}"
    return None


def _named(role: Any, rights: Collection[str]) -> str:
    return f"{role.name} ({', '.join(sorted(rights_of([role]) & set(rights)))})"


def check_roles(session: Session, names: Collection[str], allow: bool, who: str) -> None:
    """Raise Conflict (409) if one person holding all of `names` would hold rights that must not meet."""
    if allow:
        return
    if why := conflict(roles_named(session, names)):
        raise Conflict(f"user {who!r}: {why} (separation of duties)")


def needing_second_admin(session: Session, names: Collection[str]) -> list[str]:
    """Those of `names` whose grant needs a second admin."""
    return sorted(r.name for r in roles_named(session, names) if rights_of([r]) & GRANTED_WITH_SECOND_ADMIN)


def check_role_change(session: Session, name: str, new_flags: dict[str, bool], *, allow_conflicts: bool,
                      second_admin: bool) -> None:
    """A role's rights about to change to `new_flags` (can_view, ...): refuse (409) if a holder would then
    hold conflicting rights, or if it would grant rights needing a second admin to people who hold it."""
    role = session.get(Role, name)
    if role is None:
        return
    holders = [u for u in session.scalars(select(User)) if any(r.name == name for r in u.roles)]
    flags = {flag: bool(new_flags.get(flag, getattr(role, flag))) for flag in PERMISSIONS.values()}
    after: Any = SimpleNamespace(name=name, **flags)
    added = (rights_of([after]) - rights_of([role])) & GRANTED_WITH_SECOND_ADMIN
    if added and holders and second_admin:
        raise Conflict(f"role {name!r} is held by {len(holders)} user(s): giving it "
                       f"{', '.join(sorted(added))} would grant that without a second admin; "
                       "make a new role and grant it instead")
    if not allow_conflicts:
        for user in holders:
            if why := conflict([*(r for r in user.roles if r.name != name), after]):
                raise Conflict(f"role {name!r}: user {user.username!r}: {why} (separation of duties)")
