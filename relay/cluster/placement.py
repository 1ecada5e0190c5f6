"""Where a viewer of a camera is served: here, by the camera's owner (307), or, when no replica can take
the camera, nowhere for now (503 with Retry-After).

Asked before the policy decision, so a viewer sent elsewhere is decided (and logged) once, by the replica
that serves it. Read-only: the claim itself happens when the pipeline starts (LeaseKeeper.acquire); a
claim lost to a racing replica is answered by asking again (`place` once more)."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

from relay.cluster.leases import LeaseKeeper
from relay.cluster.store import SERVING, LeaseStore, ReplicaRow

WAIT_TICK_S = 0.25


@dataclass(frozen=True, slots=True)
class Here:
    pass


@dataclass(frozen=True, slots=True)
class Elsewhere:
    replica: str
    prefix: str  # the replica's advertised path or URL


@dataclass(frozen=True, slots=True)
class Nowhere:
    retry_after_s: int
    reason: str


Place = Here | Elsewhere | Nowhere


class Placement:
    def __init__(self, store: LeaseStore, keeper: LeaseKeeper) -> None:
        self.store = store
        self.keeper = keeper
        self.me = store.me

    def alive(self, silent_s: float | None) -> bool:
        """A replica is taken to be alive while it missed at most one heartbeat (and beat within a lease's
        lifetime): viewers are not sent to one that has just died."""
        limit = min(self.keeper.ttl_s, 2 * self.keeper.renew_s + 0.5)
        return silent_s is not None and silent_s < limit

    async def place(self, camera_id: str) -> Place:
        if camera_id in self.keeper.held:
            return Here()
        deadline = time.monotonic() + self.keeper.ttl_s + 1.0
        while True:
            lease = await asyncio.to_thread(self.store.lease, camera_id)
            if lease is None or not lease.held() or lease.owner == self.me:
                break
            if lease.owner_state == SERVING and self.alive(lease.owner_silent_s):
                if lease.owner_advertise:
                    return Elsewhere(lease.owner, lease.owner_advertise)
                return Nowhere(max(1, math.ceil(lease.expires_in_s)),
                               f"camera {camera_id!r} is pulled by relay {lease.owner}, which has no address")
            # Its owner is draining or silent (dead?): its lease frees within a lease's lifetime; wait here
            # for it rather than send the viewer to a replica that will not answer.
            if time.monotonic() >= deadline:
                return Nowhere(1, f"camera {camera_id!r} is being handed over between relays")
            await asyncio.sleep(min(WAIT_TICK_S, max(0.05, lease.expires_in_s)))
        if not (self.keeper.full or self.keeper.draining):
            return Here()
        return await self.other_with_room(camera_id)

    async def other_with_room(self, camera_id: str) -> Place:
        rows = await asyncio.to_thread(self.store.replicas)
        room = [r for r in rows if r.replica_id != self.me and r.advertise and r.state == SERVING
                and self.alive(r.silent_s) and _has_room(r)]
        if room:
            best = min(room, key=lambda r: (r.cameras, r.replica_id))
            return Elsewhere(best.replica_id, best.advertise)
        why = "this relay is draining" if self.keeper.draining else "every relay pulls its maximum of cameras"
        return Nowhere(max(1, math.ceil(self.keeper.ttl_s)),
                       f"camera {camera_id!r} cannot be taken now: {why}")


def _has_room(row: ReplicaRow) -> bool:
    return row.max_cameras is None or row.cameras < row.max_cameras
