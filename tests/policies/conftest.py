"""Fixtures of the control plane's tests: a real PostgreSQL server for the session, a fresh database per
test on SQLite and on PostgreSQL, and a PolicyContext seeded with the default policy."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from policies.context import PolicyContext
from policies.contract import Principal
from policies.db import Database
from policies.models import Role, User
from policies.settings import PolicySettings


def _pg_bin() -> Path:
    """Debian's PostgreSQL binaries (15 on bookworm; the newest installed version otherwise)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


PG_BIN = _pg_bin()


@dataclass
class PostgresServer:
    socket_dir: str  # the server listens only on a unix socket in this private directory
    port: int
    user: str

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://{self.user}@/{dbname}?host={self.socket_dir}&port={self.port}"


def _as_postgres(cmd: list[str]) -> list[str]:
    # initdb refuses to run as root: drop to the postgres account when we are root.
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL 15 cluster reached only through a unix socket in its own temp dir. No TCP
    port: a port found free and released could be taken (e.g. as another connection's ephemeral port)
    before the server binds it, and concurrent test runs would compete for ports."""
    root = Path(tempfile.mkdtemp(prefix="cctv-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", 5432  # the port only names the socket file in this directory
    superuser = "postgres" if os.geteuid() == 0 else os.environ.get("USER", "postgres")
    subprocess.run(
        _as_postgres(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(data),
                "-U",
                superuser,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        ),
        check=True,
        capture_output=True,
    )
    # Durability is pointless for a throwaway cluster; turning it off keeps the suite quick.
    opts = (
        f"-p {port} -k {root} -c listen_addresses='' -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off"
    )
    subprocess.run(
        _as_postgres(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                opts,
                "-l",
                str(root / "log"),
                "-w",
                "-t",
                "60",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    try:
        yield PostgresServer(str(root), port, superuser)
    finally:
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


_db_counter = itertools.count(1)


@pytest.fixture
def make_pg_database(postgres_server: PostgresServer) -> Iterator[Callable[[], str]]:
    """Creates fresh, empty PostgreSQL databases; drops them after the test. Returns their URLs."""
    admin = create_engine(postgres_server.url("postgres"), isolation_level="AUTOCOMMIT")
    created: list[str] = []

    def make() -> str:
        name = f"t_{os.getpid()}_{next(_db_counter)}"
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        created.append(name)
        return postgres_server.url(name)

    yield make
    with admin.connect() as c:
        for name in created:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a fresh, empty database of each kind (no tables yet)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cctv.db'}"
    return request.getfixturevalue("make_pg_database")()


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A fresh Database with every table created, on SQLite and on PostgreSQL."""
    database = Database(db_url)
    database.create_all()
    yield database
    database.dispose()


@pytest.fixture
def settings(db: Database) -> PolicySettings:
    return PolicySettings(database_url=db.url, token_secret="test-token-secret-0123456789abcdef")


@pytest.fixture
def context(settings: PolicySettings, db: Database) -> PolicyContext:
    """A PolicyContext on the test's database, seeded with the shipped default policy."""
    from policies.context import build_context
    from policies.defaults import load_defaults

    ctx = build_context(settings, db=db)
    load_defaults(ctx)
    return ctx


class Clock:
    """A settable clock for the policy service (time windows, expiry) — no sleeping in tests."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += dt.timedelta(**kw)


@pytest.fixture
def clock(context: PolicyContext) -> Clock:
    # Tuesday 2026-03-03 10:00 in Taipei (02:00 UTC).
    c = Clock(dt.datetime(2026, 3, 3, 2, 0, tzinfo=dt.UTC))
    context.service.clock = c
    return c


ROLE_NAMES = (
    "dashboard_viewer",
    "police_operator",
    "police_investigator",
    "raw_approver",
    "policy_admin",
    "auditor",
)


def add_user(ctx: PolicyContext, username: str, roles: Sequence[str]) -> Principal:
    with ctx.db.session() as s:
        user = User(username=username, roles=list(s.scalars(select(Role).where(Role.name.in_(roles)))))
        s.add(user)
        s.flush()
        return Principal(user.id, username, tuple(sorted(roles)))


@pytest.fixture
def people(context: PolicyContext) -> dict[str, Principal]:
    """One person per default role, plus `second_approver` and `investigator_approver` (holds both roles)."""
    out = {role: add_user(context, role.replace("_", "."), [role]) for role in ROLE_NAMES}
    out["second_approver"] = add_user(context, "second.approver", ["raw_approver"])
    out["investigator_approver"] = add_user(context, "inv.approver", ["police_investigator", "raw_approver"])
    return out
