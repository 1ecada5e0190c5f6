"""The shipped default policy (purposes, roles, rules in policies/defaults/*.yaml): seeded into a fresh
database, never overwriting what administrators have changed since."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from policies import files

if TYPE_CHECKING:
    from policies.context import PolicyContext

DEFAULTS_DIR = Path(__file__).with_name("defaults")


def load_defaults(ctx: PolicyContext, actor: str = "system") -> list[files.Change]:
    """Create the default purposes, roles and rules that are missing; logged as policy changes."""
    loaded = files.load(DEFAULTS_DIR)
    return files.apply(ctx.db, ctx.audit, loaded, actor=actor, create_only=True, source="defaults")
