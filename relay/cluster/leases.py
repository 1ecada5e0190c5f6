"""`LeaseKeeper`: the leases this replica holds, claimed when a camera's pipeline is about to start,
renewed in one statement every `lease_renew_s`, released when the pipeline has stopped.

Fencing: a lease is good here until `sent + ttl - margin`, `sent` being when the last renewal that covered
it was sent (before the database stamped its new expiry), so this replica stops a camera's pipeline
before the database lets anyone else claim it, even when renewals fail because the database is unreachable
or slow. A renewal that comes back without a camera (a newer epoch exists) loses it at once. Either way
`on_lost(camera_id)` stops the pipeline (the camera manager's restart), and its viewers rejoin."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from relay.cluster.store import DRAINING, SERVING, LeaseStore

log = logging.getLogger("relay.cluster")

FENCE_TICK_S = 0.2


class NotClaimed(RuntimeError):
    """This replica may not pull the camera: another holds its lease, or this one is full or draining."""

    def __init__(self, camera_id: str, why: str) -> None:
        super().__init__(f"camera {camera_id!r}: {why}")
        self.camera_id = camera_id
        self.why = why


@dataclass
class Held:
    epoch: int
    good_until: float  # time.monotonic(): past this, the pipeline must have stopped


class LeaseKeeper:
    def __init__(self, store: LeaseStore, *, ttl_s: float, renew_s: float, max_cameras: int | None,
                 advertise: str, margin_s: float | None = None) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.renew_s = renew_s
        self.max_cameras = max_cameras
        self.advertise = advertise
        self.margin_s = margin_s if margin_s is not None else min(1.0, ttl_s / 4)
        self.held: dict[str, Held] = {}
        self._claiming: set[str] = set()
        self.draining = False
        self.on_lost: Callable[[str], Awaitable[None]] | None = None
        self.renewals = 0  # statements sent, for metrics and the benchmark
        self.renewed_at: float | None = None  # time.monotonic() of the last renewal the database answered
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def full(self) -> bool:
        return self.max_cameras is not None and len(self.held) + len(self._claiming) >= self.max_cameras

    def database_ok(self) -> bool:
        """The database answered a renewal within the last lease TTL (what readiness asks: a replica that
        cannot reach it can neither claim nor keep cameras)."""
        return self.renewed_at is not None and time.monotonic() - self.renewed_at <= self.ttl_s

    @property
    def state(self) -> str:
        return DRAINING if self.draining else SERVING

    # -- the camera manager's gate ---------------------------------------------------------------------

    async def acquire(self, camera_id: str) -> None:
        """Hold the camera's lease before its pipeline starts; NotClaimed when this replica may not."""
        if camera_id in self.held:
            return
        if self.draining:
            raise NotClaimed(camera_id, "this relay is draining")
        if self.full:
            raise NotClaimed(camera_id, f"this relay pulls its maximum of {self.max_cameras} cameras")
        self._claiming.add(camera_id)
        try:
            sent = time.monotonic()
            epoch = await asyncio.to_thread(self.store.claim, camera_id, self.ttl_s)
        finally:
            self._claiming.discard(camera_id)
        if epoch is None:
            raise NotClaimed(camera_id, "another relay holds its lease")
        self.held[camera_id] = Held(epoch, sent + self.ttl_s - self.margin_s)
        log.info("camera %s: lease claimed (epoch %d)", camera_id, epoch)

    async def release(self, camera_id: str) -> None:
        """Free the lease once the camera's pipeline has stopped."""
        held = self.held.pop(camera_id, None)
        if held is None:
            return
        try:
            await asyncio.to_thread(self.store.release, camera_id, held.epoch)
            log.info("camera %s: lease released (epoch %d)", camera_id, held.epoch)
        except Exception as exc:  # it expires by itself
            log.warning("camera %s: lease not released (%s); it expires in %g s", camera_id,
                        type(exc).__name__, self.ttl_s)

    # -- renewal and fencing ----------------------------------------------------------------------------

    async def renew_once(self) -> None:
        snapshot = {cid: h.epoch for cid, h in self.held.items()}
        sent = time.monotonic()
        renewed = await asyncio.to_thread(self.store.renew, snapshot.items(), self.ttl_s,
                                          advertise=self.advertise, state=self.state,
                                          max_cameras=self.max_cameras)
        self.renewals += 1
        self.renewed_at = time.monotonic()
        for camera_id, epoch in snapshot.items():
            held = self.held.get(camera_id)
            if held is None or held.epoch != epoch:
                continue  # released or claimed again meanwhile
            if camera_id in renewed:
                held.good_until = max(held.good_until, sent + self.ttl_s - self.margin_s)
            else:
                await self._lose(camera_id, "another relay holds it now")

    async def _lose(self, camera_id: str, why: str) -> None:
        if self.held.pop(camera_id, None) is None:
            return
        log.warning("camera %s: lease lost (%s); stopping its pipeline", camera_id, why)
        if self.on_lost is not None:
            task = asyncio.get_running_loop().create_task(self.on_lost(camera_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def run(self) -> None:
        """Renew every `renew_s` (each renewal also beats this replica's heartbeat)."""
        while True:
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for returns the inner result (or its
                # error) when a cancel lands as the renewal finishes, and this loop would never stop.
                async with asyncio.timeout(self.ttl_s):
                    await self.renew_once()
            except Exception as exc:
                log.warning("lease renewal failed (%s)", type(exc).__name__)
            await asyncio.sleep(self.renew_s)

    async def fence(self) -> None:
        """Stop any camera whose lease may have run out (renewals failing or late)."""
        while True:
            now = time.monotonic()
            for camera_id, held in list(self.held.items()):
                if now >= held.good_until:
                    await self._lose(camera_id, "not renewed in time")
            await asyncio.sleep(FENCE_TICK_S)

    async def release_all(self) -> None:
        self.held.clear()
        with contextlib.suppress(Exception):
            n = await asyncio.to_thread(self.store.release_all)
            log.info("released %d camera leases", n)
