"""`/readyz`, what a Kubernetes readiness probe asks: 200 while this replica takes viewers; 503 while it
drains, and while the database has not answered a lease renewal within the lease TTL (such a replica can
neither claim nor keep cameras)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from sqlalchemy import create_engine
from starlette.applications import Starlette

from relay.cluster.leases import LeaseKeeper
from relay.cluster.routing import ReplicaPrefix
from relay.cluster.store import LeaseStore


class Switchable(LeaseStore):
    down = False

    def renew(self, *args: object, **kw: object) -> set[str]:
        if self.down:
            raise ConnectionError("database unreachable")
        return super().renew(*args, **kw)  # type: ignore[arg-type]


async def readyz(app: ReplicaPrefix) -> tuple[int, str]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://relay") as client:
        r = await client.get("/readyz")
        return r.status_code, r.json()["status"]


async def test_readyz_follows_draining_and_the_database(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'cluster.db'}")
    store = Switchable(engine, "relay-0")
    store.create_tables()
    keeper = LeaseKeeper(store, ttl_s=1.0, renew_s=0.2, max_cameras=None, advertise="/r/relay-0")
    app = ReplicaPrefix(Starlette(), "relay-0", lambda: keeper.draining, keeper.database_ok)
    try:
        assert await readyz(app) == (503, "database unreachable")  # no renewal answered yet
        task = asyncio.create_task(keeper.run())
        for _ in range(50):
            if keeper.database_ok():
                break
            await asyncio.sleep(0.05)
        assert await readyz(app) == (200, "ready")
        store.down = True
        await asyncio.sleep(1.5)  # past the TTL with every renewal failing
        assert await readyz(app) == (503, "database unreachable")
        store.down = False
        await asyncio.sleep(0.5)
        assert await readyz(app) == (200, "ready")
        keeper.draining = True
        assert await readyz(app) == (503, "draining")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        engine.dispose()
