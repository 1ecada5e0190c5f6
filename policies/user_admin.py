"""Users as the admin API changes them: the fields an admin sets apply at once, except roles that confer
watching, raw-view or admin rights, which become a grant waiting for a second admin (policies.role_grants)
while `grants_need_second_admin` is on; separation of duties is checked on the roles the person would
hold (policies.duties). Every change commits with its access-log entry."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from policies import files
from policies.contract import Conflict, NotFound, Principal
from policies.duties import check_roles, needing_second_admin
from policies.models import User
from policies.role_grants import RoleGrants, log_conferred
from policies.schemas import UserIn, UserOut


def user_out(user: User, pending_roles: Sequence[str] = ()) -> UserOut:
    return UserOut(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        roles=sorted(r.name for r in user.roles),
        active=user.active,
        oidc_subject=user.oidc_subject,
        has_password=user.password_hash is not None,
        pending_roles=sorted(pending_roles),
    )


def save_user(ctx: Any, who: Principal, item: UserIn, create: bool) -> UserOut:
    """Create (`create`) or change a user as `who` asks. Raises PolicyError (Conflict: exists, or duties
    that must not meet; NotFound) or files.PolicyFileError (unknown roles, a bad password)."""
    st = ctx.settings
    with ctx.db.session() as s:
        user = s.scalar(select(User).where(User.username == item.username))
        if create and user is not None:
            raise Conflict(f"user {item.username!r} exists")
        if not create and user is None:
            raise NotFound(f"unknown user {item.username!r}")
        files.check_references(files.LoadedPolicy(files.PolicyDocument(users=[item])), s)
        pending: list[str] = []
        given: list[str] = []
        if "roles" in item.model_fields_set:
            held = {r.name for r in user.roles} if user is not None else set()
            check_roles(s, set(item.roles), st.allow_conflicting_duties, item.username)
            given = needing_second_admin(s, set(item.roles) - held)
            if given and st.grants_need_second_admin:
                pending, given = given, []
                item = item.model_copy(update={"roles": sorted(set(item.roles) - set(pending))})
        change = files.upsert(s, "users", item, hasher=ctx.auth.hash_password, only_set=True, env=False)
        if change is not None:
            files.log_changes(ctx.audit, who.username, who.roles, [change], source="api", session=s)
        user = s.scalar(select(User).where(User.username == item.username))
        assert user is not None
        if pending:
            RoleGrants(ctx.db, ctx.audit, st).request(s, who, user, pending)
        if given:
            log_conferred(ctx.audit, s, who.username, who.roles, user, given, source="api",
                          second_admin=False)
        return user_out(user, pending)
