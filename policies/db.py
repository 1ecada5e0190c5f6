"""Database connection: SQLite (WAL) as the embedded default, PostgreSQL for deployments."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from policies.identity import track_credential_changes
from policies.models import Base
from policies.upgrade import upgrade


class Database:
    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            # One connection per thread is fine for SQLite; WAL lets readers run beside the writer.
            engine_kwargs.setdefault("connect_args", {"check_same_thread": False, "timeout": 30})
        else:
            engine_kwargs.setdefault("pool_pre_ping", True)
        self.engine: Engine = create_engine(url, **engine_kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        track_credential_changes(self._sessions)

    def create_all(self) -> None:
        """Create missing tables, then add columns that existing tables lack (policies.upgrade)."""
        Base.metadata.create_all(self.engine)
        upgrade(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: commits on success, rolls back on error."""
        with self._sessions() as s, s.begin():
            yield s

    def on_commit(self, models: tuple[type, ...], callback: Callable[[], None]) -> None:
        """Call `callback` after any unit of work of this database commits a change (ORM add, edit or
        delete) to an instance of one of `models`: how in-process caches learn they are stale."""
        key = ("changed", id(callback))

        def flushed(session: Session, _ctx: Any) -> None:
            touched = (*session.new, *session.dirty, *session.deleted)
            if any(isinstance(obj, models) for obj in touched):
                session.info[key] = True

        def committed(session: Session) -> None:
            if session.info.pop(key, False):
                callback()

        def rolled_back(session: Session, _previous: Any) -> None:
            session.info.pop(key, None)

        event.listen(self._sessions, "after_flush", flushed)
        event.listen(self._sessions, "after_commit", committed)
        event.listen(self._sessions, "after_soft_rollback", rolled_back)

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")  # the access log must survive a crash
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def first_line(exc: BaseException) -> str:
    """The first line of an error, a database error's being the driver's own message (which never
    includes the password of the URL); the error's type name when it says nothing."""
    message = str(getattr(exc, "orig", None) or exc)
    return message.splitlines()[0] if message.strip() else type(exc).__name__
