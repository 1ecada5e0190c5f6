"""Camera leases on SQLite and PostgreSQL: claims, epochs as fencing tokens, renewal, release, racing
claims, and the keeper's fencing when renewals fail or a lease is taken over."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import threading
import time

import pytest
from sqlalchemy import Engine, update

from relay.cluster.leases import LeaseKeeper, NotClaimed
from relay.cluster.placement import Elsewhere, Here, Nowhere, Placement
from relay.cluster.store import LeaseStore, leases, replicas


def expire(engine: Engine, camera_id: str) -> None:
    """As if the owner stopped renewing long ago."""
    with engine.begin() as conn:
        conn.execute(update(leases).where(leases.c.camera_id == camera_id)
                     .values(expires_at=leases.c.claimed_at))


def test_claim_is_exclusive_until_expiry_and_epochs_grow(engine: Engine) -> None:
    a, b = LeaseStore(engine, "relay-a"), LeaseStore(engine, "relay-b")
    assert a.claim("cam-1", 5) == 1
    assert b.claim("cam-1", 5) is None
    assert a.lease("cam-1").owner == "relay-a"
    assert a.renew([("cam-1", 1)], 5, advertise="/r/relay-a", state="serving", max_cameras=None) == {"cam-1"}
    expire(engine, "cam-1")
    assert b.claim("cam-1", 5) == 2  # taken over: a newer epoch
    # The former owner can neither renew nor free the lease it lost (fencing by epoch).
    assert a.renew([("cam-1", 1)], 5, advertise="", state="serving", max_cameras=None) == set()
    assert not a.release("cam-1", 1)
    assert b.holders() == [("cam-1", "relay-b", 2)]
    assert b.release("cam-1", 2)
    assert a.claim("cam-1", 5) == 3  # freed: claimable at once, the epoch still grows
    assert a.release_all() == 1 and a.holders() == []


def test_racing_claims_exactly_one_wins(engine: Engine) -> None:
    stores = [LeaseStore(engine, f"relay-{i}") for i in range(4)]
    for round_ in range(5):
        camera = f"cam-race-{round_}"
        start: threading.Barrier = threading.Barrier(len(stores))
        results: dict[str, int | None] = {}

        def claim(store: LeaseStore, camera: str = camera, start: threading.Barrier = start,
                  results: dict[str, int | None] = results) -> None:
            start.wait()
            for _ in range(20):  # SQLite: a writer that finds the database locked tries again
                try:
                    results[store.me] = store.claim(camera, 5)
                    return
                except Exception as exc:
                    if "locked" not in str(exc):
                        raise
                    time.sleep(0.01)

        threads = [threading.Thread(target=claim, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        winners = [me for me, epoch in results.items() if epoch is not None]
        assert len(results) == len(stores) and len(winners) == 1, results
        assert stores[0].lease(camera).owner == winners[0]


def keeper(engine: Engine, me: str, **kw: object) -> LeaseKeeper:
    params = {"ttl_s": 2.0, "renew_s": 0.2, "max_cameras": None, "advertise": f"/r/{me}", **kw}
    return LeaseKeeper(LeaseStore(engine, me), **params)  # type: ignore[arg-type]


async def test_keeper_capacity_renewal_and_loss(engine: Engine) -> None:
    a, b = keeper(engine, "relay-a", max_cameras=1), keeper(engine, "relay-b")
    lost: list[str] = []

    async def on_lost(camera_id: str) -> None:
        lost.append(camera_id)

    a.on_lost = on_lost
    await a.acquire("cam-1")
    with pytest.raises(NotClaimed, match="maximum of 1"):
        await a.acquire("cam-2")  # full: claims no more
    with pytest.raises(NotClaimed, match="another relay"):
        await b.acquire("cam-1")
    await a.renew_once()
    assert a.held["cam-1"].epoch == 1 and not lost
    expire(engine, "cam-1")
    await b.acquire("cam-1")  # b takes it over ...
    await a.renew_once()  # ... and a learns it at its next renewal
    await asyncio.sleep(0)
    assert lost == ["cam-1"] and "cam-1" not in a.held
    await b.release("cam-1")
    await a.acquire("cam-2")  # room again


class Unreachable(LeaseStore):
    def renew(self, *args: object, **kw: object) -> set[str]:
        raise ConnectionError("database unreachable")


async def test_fence_stops_a_camera_before_its_lease_can_expire(engine: Engine) -> None:
    k = LeaseKeeper(Unreachable(engine, "relay-a"), ttl_s=1.2, renew_s=0.2, max_cameras=None, advertise="")
    lost: list[tuple[str, float]] = []
    claimed = time.monotonic()

    async def on_lost(camera_id: str) -> None:
        lost.append((camera_id, time.monotonic() - claimed))

    k.on_lost = on_lost
    await k.acquire("cam-1")
    tasks = [asyncio.create_task(k.run()), asyncio.create_task(k.fence())]
    try:
        for _ in range(40):
            await asyncio.sleep(0.1)
            if lost:
                break
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    # Stopped within the lease's lifetime, before the database would let another relay claim it.
    assert lost and lost[0][0] == "cam-1" and lost[0][1] < 1.2, lost
    assert LeaseStore(engine, "relay-b").lease("cam-1").expires_in_s > -0.5


async def test_placement(engine: Engine) -> None:
    a, b, c = (keeper(engine, me, max_cameras=1) for me in ("relay-a", "relay-b", "relay-c"))
    for k in (a, b, c):
        await k.renew_once()  # registered, beating
    place_a = Placement(a.store, a)
    assert isinstance(await place_a.place("cam-1"), Here)
    await b.acquire("cam-1")
    assert await place_a.place("cam-1") == Elsewhere("relay-b", "/r/relay-b")
    await a.acquire("cam-2")
    await b.renew_once()
    # a is full and b holds its maximum: c has room.
    assert await place_a.place("cam-3") == Elsewhere("relay-c", "/r/relay-c")
    await c.acquire("cam-3")
    await c.renew_once()
    nowhere = await place_a.place("cam-4")
    assert isinstance(nowhere, Nowhere) and nowhere.retry_after_s >= 1
    # b goes silent (killed): its camera is handed over once its lease runs out, not sent to b.
    with engine.begin() as conn:
        conn.execute(update(replicas).where(replicas.c.replica_id == "relay-b")
                     .values(heartbeat_at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC)))
    await a.release("cam-2")
    started = time.monotonic()
    assert isinstance(await place_a.place("cam-1"), Here)
    assert time.monotonic() - started < a.ttl_s + 1


class FailingStore:
    """A database that refuses at once: renewals end in the same instant a cancel may land."""

    me = "relay-a"

    def renew(self, *args: object, **kwargs: object) -> set[str]:
        raise ConnectionError("database unreachable")


async def test_keeper_stops_when_cancelled_as_a_renewal_fails() -> None:
    # A cancel that lands as a renewal finishes must still stop the loop (shutdown, lost leadership);
    # otherwise the replica never exits. Cancels are sprinkled over many renewal rounds.
    rng = random.Random(7)
    for _ in range(150):
        k = LeaseKeeper(FailingStore(), ttl_s=1.2, renew_s=0.0, max_cameras=None,  # type: ignore[arg-type]
                        advertise="")
        task = asyncio.create_task(k.run())
        await asyncio.sleep(rng.random() * 0.01)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=2)
        assert done, "the renewal loop swallowed its cancellation"
