"""`Replica`: this relay process as a member of the cluster — its id and advertised prefix, its leases
(LeaseKeeper), where viewers go (Placement), the sweeper of dead replicas' sessions, and its drain.

The app builds one in its lifespan from its engine and settings; the access-log side (closing sessions) is
handed in as a callable, so this package imports no policies."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine

from relay.cluster.leases import LeaseKeeper, NotClaimed
from relay.cluster.placement import Here, Placement
from relay.cluster.routing import placement_response
from relay.cluster.settings import ClusterSettings
from relay.cluster.store import DRAINING, LeaseStore

log = logging.getLogger("relay.cluster")

# close_sessions_on(replica, reason) -> ids closed (PolicyService.close_sessions_on: logged, once each)
CloseSessionsOn = Callable[[str, str], list[str]]


class Replica:
    def __init__(self, engine: Engine, settings: ClusterSettings, close_sessions_on: CloseSessionsOn) -> None:
        self.id = settings.replica_name()
        self.prefix = settings.advertised()
        self.settings = settings
        self.store = LeaseStore(engine, self.id)
        self.keeper = LeaseKeeper(self.store, ttl_s=settings.lease_ttl_s, renew_s=settings.lease_renew_s,
                                  max_cameras=settings.max_cameras, advertise=self.prefix)
        self.placement = Placement(self.store, self.keeper)
        self._close_sessions_on = close_sessions_on
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def draining(self) -> bool:
        return self.keeper.draining

    def database_ok(self) -> bool:
        return self.keeper.database_ok()

    async def start(self) -> None:
        """Create the tables if needed, close what an earlier life of this replica left open, register,
        then renew, fence and sweep in the background."""
        await asyncio.to_thread(self.store.create_tables)
        left = await asyncio.to_thread(self._close_sessions_on, self.id, f"relay replica {self.id} restarted")
        if left:
            log.info("closed %d sessions left open by an earlier run of %s", len(left), self.id)
        await asyncio.to_thread(self.store.register, self.prefix, self.keeper.state, self.keeper.max_cameras)
        self._tasks = [asyncio.create_task(self.keeper.run(), name="lease-renewal"),
                       asyncio.create_task(self.keeper.fence(), name="lease-fence"),
                       asyncio.create_task(self.sweep(), name="replica-sweeper")]
        log.info("relay replica %s (%s): leases of %g s renewed every %g s, at most %s cameras", self.id,
                 self.prefix or "no prefix", self.keeper.ttl_s, self.keeper.renew_s,
                 self.keeper.max_cameras or "any number of")

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.keeper.release_all()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.store.deregister)

    # -- viewers ------------------------------------------------------------------------------------------

    async def place(self, camera_id: str, camera_path: str, query: str) -> Response | None:
        """None when this replica serves the camera; else the 307 or 503 to answer."""
        place = await self.placement.place(camera_id)
        if isinstance(place, Here):
            return None
        status, detail, headers = placement_response(place, camera_path, query)
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    async def refused(self, exc: NotClaimed, camera_path: str, query: str) -> Response:
        """The claim failed after all (a racing replica won, or this one filled up): where to go now."""
        place = await self.placement.place(exc.camera_id)
        if isinstance(place, Here):  # the winner released it already: let the viewer try again
            place = await self.placement.other_with_room(exc.camera_id)
        if isinstance(place, Here):
            return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "1"})
        status, detail, headers = placement_response(place, camera_path, query)
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)

    # -- dead replicas ----------------------------------------------------------------------------------

    async def sweep(self) -> None:
        """Every few seconds: close (in the access log) the sessions of replicas silent for longer than
        `replica_stale_s`, then forget them. Every replica sweeps; a session is closed and logged once."""
        every = max(1.0, self.settings.replica_stale_s / 4)
        while True:
            await asyncio.sleep(every)
            try:
                await self.sweep_once()
            except Exception as exc:
                log.warning("sweep of silent replicas failed (%s)", type(exc).__name__)

    async def sweep_once(self) -> list[str]:
        silent_s = self.settings.replica_stale_s
        closed: list[str] = []
        for replica in await asyncio.to_thread(self.store.stale, silent_s):
            reason = f"relay replica {replica} stopped (no heartbeat for {silent_s:g} s)"
            ids = await asyncio.to_thread(self._close_sessions_on, replica, reason)
            await asyncio.to_thread(self.store.forget, replica, silent_s)
            log.warning("relay replica %s went silent: closed its %d open sessions", replica, len(ids))
            closed += ids
        return closed

    # -- drain ------------------------------------------------------------------------------------------

    async def drain(self, end_sessions: Callable[[str], Awaitable[None]],
                    stop_cameras: Callable[[], Awaitable[None]]) -> None:
        """SIGTERM: take no new cameras, end this replica's sessions ("relay draining", so dashboards
        rejoin elsewhere), stop its pipelines, free its leases, and keep answering for `drain_grace_s`
        so viewers asking after their session learn why it ended."""
        if self.keeper.draining:
            return
        self.keeper.draining = True
        log.info("relay replica %s draining", self.id)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.store.register, self.prefix, DRAINING, self.keeper.max_cameras)
        await end_sessions("relay draining")
        await stop_cameras()
        await self.keeper.release_all()
        await asyncio.sleep(self.settings.drain_grace_s)
        log.info("relay replica %s drained", self.id)
