"""The running viewer sessions of this process and their watchdog.

A session is opened (and logged) by the policy service before any media flows; here it runs: its peer
connection, its subscription to the camera's hub, and a watchdog that re-checks it every
`session_check_s`. It ends — once, with its reason logged by the policy service — when its decision
expires or is revoked, when it cannot be re-checked `MAX_CHECK_FAILURES` times in a row (a raw one: at the
first), when the peer
never connects or goes away, when its camera's pipeline stops under it, or when the viewer or an admin
ends it. Why recent sessions ended is kept for their viewers (the WHEP session resource answers 410)."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from dataclasses import dataclass, field

from aiortc import RTCPeerConnection

from policies.contract import Principal
from policies.service import PolicyService
from relay.hub import Subscription
from relay.quotas import SessionQuota, Slot

log = logging.getLogger("relay.sessions")

CONNECT_TIMEOUT_S = 30.0  # a peer that never completes ICE/DTLS is dropped
MAX_CHECK_FAILURES = 3  # consecutive failed re-checks (database down) before the session is closed
RAW_MAX_CHECK_FAILURES = 1  # unmasked video stops at the first re-check that cannot be made
ENDED_KEPT = 1000  # why sessions ended, for this many recent ones


@dataclass
class ViewerSession:
    id: str
    camera_id: str
    principal: Principal
    purpose: str
    mode: str
    pc: RTCPeerConnection
    subscription: Subscription
    etag: str
    opened: float = field(default_factory=time.monotonic)
    watchdog: asyncio.Task[None] | None = None
    connected: bool = False
    feed_ended: bool = False  # the camera's pipeline stopped under it: _end_fed_out closes it
    end_reason: str | None = None
    slot: Slot | None = None  # its place in the session quota, given back when it ends


class SessionRegistry:
    """The running viewer sessions of this process, each with its watchdog."""

    def __init__(self, policy: PolicyService, check_every_s: float,
                 quota: SessionQuota | None = None) -> None:
        self.policy = policy
        self.check_every_s = check_every_s
        self.quota = quota or SessionQuota(per_user=8, per_camera=50)
        self.running: dict[str, ViewerSession] = {}
        # Why recent sessions ended and whose they were: session id -> (user id, reason).
        self.ended: collections.OrderedDict[str, tuple[int, str]] = collections.OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()

    def holds(self, slot: object) -> bool:
        """Whether a running session holds this quota slot."""
        return any(session.slot is slot for session in self.running.values())

    def add(self, session: ViewerSession) -> None:
        self.running[session.id] = session

        @session.pc.on("connectionstatechange")
        async def _on_state() -> None:
            state = session.pc.connectionState
            if state == "connected":
                session.connected = True
            elif state in ("failed", "closed") and not session.feed_ended:
                await self.close(session.id, f"peer connection {state}")

        session.watchdog = asyncio.create_task(self._watch(session), name=f"session-watchdog-{session.id}")
        session.subscription.on_close(lambda _sub: self._feed_ended(session))
        if session.subscription.closed:  # the camera stopped while the answer was negotiated
            self._feed_ended(session)

    def _feed_ended(self, session: ViewerSession) -> None:
        # The camera's pipeline stopped under a running session (disabled, deleted, or its source or
        # masks changed): end the session now rather than leave the viewer on a dead track.
        if not session.subscription.hub.closed:
            return  # the viewer's side ended the feed (peer gone, sender stopped): the peer handlers say so
        if session.id in self.running and not session.feed_ended:
            # The connection closes with the feed (relay.webrtc); the session's end says why, not that.
            session.feed_ended = True
            task = asyncio.get_running_loop().create_task(self._end_fed_out(session))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _end_fed_out(self, session: ViewerSession) -> None:
        reason = "the camera's stream stopped (the camera was changed or removed); open it again"
        with contextlib.suppress(Exception):  # the policy's reason is better, if it has one
            decision = await asyncio.to_thread(self.policy.check_session, session.id)
            if not decision.allowed:
                reason = f"authorization ended: {decision.reason}"
        await self.close(session.id, reason)

    async def _watch(self, session: ViewerSession) -> None:
        failures = 0
        while session.id in self.running:
            await asyncio.sleep(self.check_every_s)
            if session.id not in self.running:
                return
            if not session.connected and time.monotonic() - session.opened > CONNECT_TIMEOUT_S:
                await self.close(session.id, "peer never connected")
                return
            try:
                decision = await asyncio.to_thread(self.policy.check_session, session.id)
                failures = 0
            except Exception as exc:  # fail closed: a session that cannot be re-checked does not run on
                failures += 1
                log.warning("session %s: re-check failed (%s)", session.id, type(exc).__name__)
                if failures >= (RAW_MAX_CHECK_FAILURES if session.mode == "raw" else MAX_CHECK_FAILURES):
                    await self.close(session.id, "authorization could not be re-checked")
                    return
                continue
            if not decision.allowed:
                await self.close(session.id, f"authorization ended: {decision.reason}")
                return

    async def close(self, session_id: str, reason: str) -> bool:
        """End a session once: stop its media, then log its end. False when it was not running."""
        session = self.running.pop(session_id, None)
        if session is None:
            return False
        session.end_reason = reason
        self.ended[session_id] = (session.principal.user_id, reason)
        while len(self.ended) > ENDED_KEPT:
            self.ended.popitem(last=False)
        log.info("session %s on %s ended: %s", session_id, session.camera_id, reason)
        try:
            if session.watchdog is not None and session.watchdog is not asyncio.current_task():
                session.watchdog.cancel()
            session.subscription.close()
            with contextlib.suppress(Exception):
                await session.pc.close()
        finally:
            if session.slot is not None:
                session.slot.release()
            try:
                await asyncio.to_thread(self.policy.close_session, session_id, reason)
            except Exception as exc:  # the database is away: the media has stopped all the same
                log.error("session %s: its end (%s) could not be recorded: %s", session_id, reason,
                          type(exc).__name__)
        return True

    async def close_all(self, reason: str) -> None:
        closing = [self.close(sid, reason) for sid in list(self.running)]
        await asyncio.gather(*closing, return_exceptions=True)
