"""Columns added to existing tables since a database was created.

There is no migration framework: `Database.create_all` creates missing tables (SQLAlchemy's `create_all`
never alters an existing one) and then calls `upgrade`, which adds each later column that is missing, with
a value that the rows already there take. Additive only, never a rename or a drop; idempotent; runs at
every start.

| column | since | existing rows get |
| --- | --- | --- |
| `purposes.labels`, `roles.labels` | display names by language | `{}` (the plain `label` is shown) |
| `view_sessions.replica` | several relays on one database | `''` |
| `users.token_epoch` | tokens end when credentials change | 0 (older tokens lack it: they end) |
| `users.uid` (unique) | an identity that is never reused | a fresh random uid each |
| `cameras.silhouettes` | grey or coloured moving people, per camera | `'grey'` (as before) |"""

from __future__ import annotations

from sqlalchemy import Connection, Engine, inspect, text

from policies.models import new_uid

# (table, column, SQL type, default as an SQL literal)
ADDED_COLUMNS = (
    ("purposes", "labels", "JSON", "'{}'"),
    ("roles", "labels", "JSON", "'{}'"),
    ("view_sessions", "replica", "VARCHAR(64)", "''"),
    ("users", "token_epoch", "INTEGER", "0"),
    ("cameras", "silhouettes", "VARCHAR(16)", "'grey'"),
)


def upgrade(engine: Engine) -> list[str]:
    """Add the columns named above where a table predates them; the `table.column` names added."""
    added: list[str] = []
    inspector = inspect(engine)
    tables = set(inspector.get_table_names())
    # Two processes starting at once on PostgreSQL must not both fail on the same ALTER.
    maybe = "IF NOT EXISTS " if engine.dialect.name == "postgresql" else ""
    with engine.begin() as conn:
        for table, column, sql_type, default in ADDED_COLUMNS:
            if table not in tables or column in {c["name"] for c in inspector.get_columns(table)}:
                continue
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {maybe}{column} {sql_type} NOT NULL "
                              f"DEFAULT {default}"))
            added.append(f"{table}.{column}")
        if "users" in tables and "uid" not in {c["name"] for c in inspector.get_columns("users")}:
            _add_uids(conn, maybe)
            added.append("users.uid")
    return added


def _add_uids(conn: Connection, maybe: str) -> None:
    conn.execute(text(f"ALTER TABLE users ADD COLUMN {maybe}uid VARCHAR(32)"))
    for user_id in list(conn.execute(text("SELECT id FROM users WHERE uid IS NULL")).scalars()):
        conn.execute(text("UPDATE users SET uid = :uid WHERE id = :id"), {"uid": new_uid(), "id": user_id})
    conn.execute(text("CREATE UNIQUE INDEX IF NOT EXISTS uq_users_uid ON users (uid)"))
