"""Columns added to existing tables after a database was first created.

There is no migration framework: `Database.create_all` creates missing tables (SQLAlchemy `create_all`
never alters an existing one) and then calls `upgrade`, which adds each later column that is missing, with
a safe value for the rows already there. Idempotent; runs at every start.

| column | since | existing rows get |
| --- | --- | --- |
| `users.uid` (unique) | identity that is never reused | a fresh random uid each |
| `users.token_epoch` | tokens end when credentials change | 0 (older tokens lack it: they end) |"""

from __future__ import annotations

from sqlalchemy import Engine, inspect, text

from policies.models import new_uid


def upgrade(engine: Engine) -> None:
    """Add the columns named above where a table predates them."""
    inspector = inspect(engine)
    if "users" not in inspector.get_table_names():
        return
    columns = {c["name"] for c in inspector.get_columns("users")}
    pg = engine.dialect.name == "postgresql"
    maybe = "IF NOT EXISTS " if pg else ""  # two processes starting at once on PostgreSQL
    with engine.begin() as conn:
        if "token_epoch" not in columns:
            conn.execute(text(f"ALTER TABLE users ADD COLUMN {maybe}token_epoch INTEGER NOT NULL DEFAULT 0"))
        if "uid" not in columns:
            conn.execute(text(f"ALTER TABLE users ADD COLUMN {maybe}uid VARCHAR(32)"))
            ids = list(conn.execute(text("SELECT id FROM users WHERE uid IS NULL")).scalars())
            for user_id in ids:
                conn.execute(text("UPDATE users SET uid = :uid WHERE id = :id"),
                             {"uid": new_uid(), "id": user_id})
            conn.execute(text("CREATE UNIQUE INDEX IF NOT EXISTS uq_users_uid ON users (uid)"))
