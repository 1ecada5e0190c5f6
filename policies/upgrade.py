"""Columns added to existing tables since a database was created. `create_all` makes new tables only, so a
database from an earlier version gets these columns here, each with a default that existing rows take."""

from __future__ import annotations

from sqlalchemy import Engine, inspect, text

# (table, column, SQL type, default as an SQL literal): additive only, never a rename or a drop.
ADDED_COLUMNS = (
    ("purposes", "labels", "JSON", "'{}'"),
    ("roles", "labels", "JSON", "'{}'"),
    ("view_sessions", "replica", "VARCHAR(64)", "''"),
)


def add_missing_columns(engine: Engine) -> list[str]:
    """Add the columns of ADDED_COLUMNS that an existing table lacks; the `table.column` names added."""
    added: list[str] = []
    inspector = inspect(engine)
    tables = set(inspector.get_table_names())
    with engine.begin() as conn:
        for table, column, sql_type, default in ADDED_COLUMNS:
            if table not in tables:
                continue
            if column in {c["name"] for c in inspector.get_columns(table)}:
                continue
            ddl = f"ALTER TABLE {table} ADD COLUMN {column} {sql_type} NOT NULL DEFAULT {default}"
            conn.execute(text(ddl))
            added.append(f"{table}.{column}")
    return added
