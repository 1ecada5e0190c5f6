"""Fixtures of the cluster's tests: the control plane's PostgreSQL server (one per test session) and a fresh
database per test, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine

from relay.cluster.store import LeaseStore
from tests.app.conftest import clip, rtsp_url  # noqa: F401  (fixtures: the real RTSP camera)
from tests.policies.conftest import make_pg_database, postgres_server  # noqa: F401  (fixtures)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'cluster.db'}"
    else:
        url = request.getfixturevalue("make_pg_database")()
    eng = create_engine(url)
    LeaseStore(eng, "setup").create_tables()
    yield eng
    eng.dispose()
