"""The cluster's two tables and every statement run on them; blocking (callers use threads).

    camera_leases   camera_id (key) · owner (replica id, '' when free) · epoch · expires_at · claimed_at
    relay_replicas  replica_id (key) · advertise · state (serving | draining) · max_cameras · started_at ·
                    heartbeat_at

A claim is one `INSERT ... ON CONFLICT (camera_id) DO UPDATE ... WHERE <free, expired or already mine>`:
the row lock of the conflicting row serializes racing claims, so of two replicas claiming one camera exactly
one gets a row back. Each claim bumps `epoch`, the fencing token: renewals and releases name the epoch they
hold, so a replica that lost a lease (and a newer epoch exists) can neither renew nor free it. Rows are never
deleted, so epochs only grow. Times are the database's clock on PostgreSQL (one clock for every replica);
on SQLite (a single relay, one machine) this process's clock.

The tables are the relay's, in the control plane's database (the relay imports no policies for them):
`create_tables()` creates them where missing."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    Integer,
    Interval,
    MetaData,
    String,
    Table,
    and_,
    func,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

metadata = MetaData()

leases = Table(
    "camera_leases", metadata,
    Column("camera_id", String(64), primary_key=True),
    Column("owner", String(64), nullable=False, index=True),
    Column("epoch", BigInteger, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("claimed_at", DateTime(timezone=True), nullable=False),
)

replicas = Table(
    "relay_replicas", metadata,
    Column("replica_id", String(64), primary_key=True),
    Column("advertise", String(300), nullable=False),
    Column("state", String(16), nullable=False),
    Column("max_cameras", Integer, nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
)

SERVING, DRAINING = "serving", "draining"


def as_utc(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes (stored as UTC), PostgreSQL aware ones."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


@dataclass(frozen=True, slots=True)
class LeaseRow:
    camera_id: str
    owner: str  # '' when free
    epoch: int
    expires_in_s: float  # negative once expired
    owner_advertise: str | None  # None: the owner has no replica row (gone)
    owner_state: str | None
    owner_silent_s: float | None  # seconds since the owner's last heartbeat

    def held(self) -> bool:
        return bool(self.owner) and self.expires_in_s > 0


@dataclass(frozen=True, slots=True)
class ReplicaRow:
    replica_id: str
    advertise: str
    state: str
    max_cameras: int | None
    silent_s: float
    cameras: int  # leases it holds now


class LeaseStore:
    def __init__(self, engine: Engine, replica_id: str) -> None:
        self.engine = engine
        self.me = replica_id
        self.pg = engine.dialect.name == "postgresql"
        self._insert = pg_insert if self.pg else sqlite_insert

    def create_tables(self) -> None:
        metadata.create_all(self.engine)

    # -- time -------------------------------------------------------------------------------------------

    def _now(self) -> Any:
        if self.pg:
            return func.statement_timestamp()
        return literal(dt.datetime.now(dt.UTC), DateTime(timezone=True))

    def _later(self, seconds: float) -> Any:
        if self.pg:
            return func.statement_timestamp() + literal(dt.timedelta(seconds=seconds), Interval())
        return literal(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds), DateTime(timezone=True))

    # -- this replica's leases ---------------------------------------------------------------------------

    def claim(self, camera_id: str, ttl_s: float) -> int | None:
        """Claim `camera_id` for this replica: its new epoch, or None when another replica holds it."""
        now, later = self._now(), self._later(ttl_s)
        stmt = self._insert(leases).values(camera_id=camera_id, owner=self.me, epoch=1, expires_at=later,
                                           claimed_at=now)
        stmt = stmt.on_conflict_do_update(
            index_elements=[leases.c.camera_id],
            set_={"owner": self.me, "epoch": leases.c.epoch + 1, "expires_at": later, "claimed_at": now},
            where=or_(leases.c.owner == "", leases.c.owner == self.me, leases.c.expires_at <= now),
        ).returning(leases.c.epoch)
        with self.engine.begin() as conn:
            epoch = conn.execute(stmt).scalar()
        return None if epoch is None else int(epoch)

    def renew(self, held: Iterable[tuple[str, int]], ttl_s: float, *, advertise: str, state: str,
              max_cameras: int | None) -> set[str]:
        """Extend the leases this replica holds (camera, epoch) by `ttl_s` and beat its heart, in one
        transaction; the cameras whose lease (at that epoch) is still this replica's."""
        pairs = list(held)
        renewed: set[str] = set()
        with self.engine.begin() as conn:
            if pairs:
                stmt = (update(leases)
                        .where(leases.c.owner == self.me,
                               tuple_(leases.c.camera_id, leases.c.epoch).in_(pairs))
                        .values(expires_at=self._later(ttl_s))
                        .returning(leases.c.camera_id))
                renewed = set(conn.execute(stmt).scalars())
            self._beat(conn, advertise, state, max_cameras)
        return renewed

    def release(self, camera_id: str, epoch: int) -> bool:
        """Free a lease this replica holds at `epoch` (after its pipeline stopped)."""
        stmt = (update(leases)
                .where(leases.c.camera_id == camera_id, leases.c.owner == self.me, leases.c.epoch == epoch)
                .values(owner="", expires_at=self._now()))
        with self.engine.begin() as conn:
            return conn.execute(stmt).rowcount == 1

    def release_all(self) -> int:
        with self.engine.begin() as conn:
            stmt = update(leases).where(leases.c.owner == self.me).values(owner="", expires_at=self._now())
            return int(conn.execute(stmt).rowcount)

    # -- this replica ---------------------------------------------------------------------------------

    def _beat(self, conn: Any, advertise: str, state: str, max_cameras: int | None) -> None:
        now = self._now()
        stmt = self._insert(replicas).values(replica_id=self.me, advertise=advertise, state=state,
                                             max_cameras=max_cameras, started_at=now, heartbeat_at=now)
        stmt = stmt.on_conflict_do_update(
            index_elements=[replicas.c.replica_id],
            set_={"advertise": advertise, "state": state, "max_cameras": max_cameras, "heartbeat_at": now})
        conn.execute(stmt)

    def register(self, advertise: str, state: str, max_cameras: int | None) -> None:
        with self.engine.begin() as conn:
            self._beat(conn, advertise, state, max_cameras)

    def deregister(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(replicas.delete().where(replicas.c.replica_id == self.me))

    # -- the cluster, as this replica sees it ----------------------------------------------------------

    def lease(self, camera_id: str) -> LeaseRow | None:
        now = self._now().label("now")
        stmt = (select(leases.c.owner, leases.c.epoch, leases.c.expires_at, now, replicas.c.advertise,
                       replicas.c.state, replicas.c.heartbeat_at)
                .select_from(leases.outerjoin(replicas, replicas.c.replica_id == leases.c.owner))
                .where(leases.c.camera_id == camera_id))
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            return None
        t = as_utc(row.now)
        silent = None if row.heartbeat_at is None else (t - as_utc(row.heartbeat_at)).total_seconds()
        return LeaseRow(camera_id, row.owner, int(row.epoch), (as_utc(row.expires_at) - t).total_seconds(),
                        row.advertise, row.state, silent)

    def replicas(self) -> list[ReplicaRow]:
        """Every registered replica with the number of leases it holds now."""
        now = self._now()
        held = (select(leases.c.owner, func.count().label("n"))
                .where(leases.c.owner != "", leases.c.expires_at > now)
                .group_by(leases.c.owner).subquery())
        stmt = (select(replicas, func.coalesce(held.c.n, 0).label("cameras"), now.label("now"))
                .select_from(replicas.outerjoin(held, held.c.owner == replicas.c.replica_id))
                .order_by(replicas.c.replica_id))
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [ReplicaRow(r.replica_id, r.advertise, r.state, r.max_cameras,
                           (as_utc(r.now) - as_utc(r.heartbeat_at)).total_seconds(), int(r.cameras))
                for r in rows]

    def stale(self, silent_s: float) -> list[str]:
        """Replicas (not this one) whose heartbeat stopped more than `silent_s` ago."""
        return [r.replica_id for r in self.replicas() if r.replica_id != self.me and r.silent_s > silent_s]

    def forget(self, replica_id: str, silent_s: float) -> bool:
        """Remove a replica that is still silent (one that came back in between keeps its row)."""
        cutoff = self._later(-silent_s)
        with self.engine.begin() as conn:
            gone = conn.execute(replicas.delete().where(
                and_(replicas.c.replica_id == replica_id, replicas.c.heartbeat_at < cutoff)))
            return gone.rowcount == 1

    def holders(self) -> Sequence[tuple[str, str, int]]:
        """(camera, owner, epoch) of every lease held now, for tests and the cluster page."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(leases.c.camera_id, leases.c.owner, leases.c.epoch)
                                .where(leases.c.owner != "", leases.c.expires_at > self._now())
                                .order_by(leases.c.camera_id)).all()
        return [(r.camera_id, r.owner, int(r.epoch)) for r in rows]
