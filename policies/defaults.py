"""The shipped default policy (purposes, roles, rules in policies/defaults/*.yaml): seeded into a fresh
database only, so what administrators changed or deleted since stays changed or deleted."""

from __future__ import annotations

from sqlalchemy import select

from policies import files
from policies.context import PolicyContext
from policies.files import DEFAULTS_DIR
from policies.models import Purpose, Role

__all__ = ["DEFAULTS_DIR", "load_defaults"]


def load_defaults(ctx: PolicyContext, actor: str = "system", force: bool = False) -> list[files.Change]:
    """Create the default purposes, roles and rules in a database that has no policy yet (or, with
    `force`, whichever of them are missing). Logged as policy changes."""
    if not force:
        with ctx.db.session() as s:
            if s.scalar(select(Purpose.id).limit(1)) is not None or s.scalar(select(Role.name).limit(1)):
                return []
    loaded = files.load(DEFAULTS_DIR)
    return files.apply(ctx.db, ctx.audit, loaded, actor=actor, create_only=True, source="defaults")
