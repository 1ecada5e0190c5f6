"""Fan-out of one rendition's encoded packets to its viewers, on the event loop.

Each viewer has a bounded queue. A viewer that falls behind loses its queue and waits for the next keyframe
(which it asks for): it never holds up the encoder or the other viewers.

A new viewer starts on a keyframe that is the newest frame, never on a backlog: frames queued while it
connected would reach it in one burst, stamped for times already past, which a browser's jitter buffer
takes for network delay and keeps as added latency. Its IDR is asked for when its ICE connects
(`prepare`: the DTLS handshake is still to come) or else at its first pull, and is forced at the encoder's
next frame (only PLIs are rate-limited there). When the newest frame the hub has seen is a keyframe under
FRESH_START_S old (the GOP's, or another viewer's), the viewer starts on it without asking."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from relay import metrics

log = logging.getLogger("relay.hub")

FRESH_START_S = 0.3  # a viewer starts on a keyframe at most this old, or waits this long for one asked


class Subscription:
    """One viewer's feed of shared packets. `track` is what a peer connection sends."""

    def __init__(self, hub: Hub, max_queue: int) -> None:
        self.hub = hub
        self.camera_id = hub.camera_id
        self.raw = hub.rendition == "raw"
        self.codec = hub.codec
        self.max_queue = max_queue
        self.packets_sent = 0
        self.drops = 0  # times the queue overflowed and was discarded
        self.closed = False
        self._queue: collections.deque[av.Packet] = collections.deque()
        self._ready = asyncio.Event()
        self._waiting_keyframe = True
        self._started = False
        self._start_at = -1e9  # when the keyframe at the head of the queue reached the hub (hub.clock)
        self._asked_at = -1e9  # when the keyframe it starts on was last asked for
        self._on_close: list[Callable[[Subscription], None]] = []
        self.track = PacketTrack(self)

    def request_keyframe(self) -> None:
        """Ask the shared encoder for an IDR (PLI/FIR from this viewer); rate-limited by the encoder."""
        if not self.closed:
            self.hub.request_keyframe()

    def prepare(self) -> None:
        """The viewer is about to start (its ICE connected; DTLS follows): ask for the IDR it starts on
        now, and keep only what comes from it on."""
        if self._started or self.closed:
            return
        self._queue.clear()
        self._waiting_keyframe = True
        self._request_start()

    def _request_start(self) -> None:
        """The IDR this viewer starts on: at the encoder's next frame, not rate-limited like PLIs (a viewer
        whose IDR went stale while it connected would otherwise wait out the interval)."""
        if not self.closed:
            self._asked_at = self.hub.clock()
            self.hub.request_keyframe(joining=True)

    def on_close(self, callback: Callable[[Subscription], None]) -> None:
        self._on_close.append(callback)

    def close(self) -> None:
        """Leave the hub. Idempotent; the track's recv() then ends with MediaStreamError."""
        if self.closed:
            return
        self.closed = True
        self._queue.clear()
        self._ready.set()
        self.hub._remove(self)
        for callback in self._on_close:
            try:
                callback(self)
            except Exception:
                log.exception("subscription close callback failed")
        if self.track.readyState != "ended":
            self.track.stop()

    def _offer(self, packet: av.Packet, at: float) -> None:
        if len(self._queue) >= self.max_queue:
            # Behind by a whole queue: what is queued is stale. Start over at the next keyframe.
            self._queue.clear()
            self._waiting_keyframe = True
            if self._started:  # (before its first pull, the viewer is still connecting: no drop yet)
                self.drops += 1
                metrics.VIEWER_DROPS.labels(self.camera_id, self.hub.rendition).inc()
                if not packet.is_keyframe:
                    self.request_keyframe()
        if self._waiting_keyframe:
            if not packet.is_keyframe:
                return
            self._waiting_keyframe = False
            self._start_at = at
        self._queue.append(packet)
        self._ready.set()

    def _seed(self, keyframe: av.Packet, at: float) -> None:
        """Start on the keyframe the hub holds (the newest frame)."""
        self._queue.append(keyframe)
        self._waiting_keyframe = False
        self._start_at = at
        self._ready.set()

    async def next_packet(self) -> av.Packet:
        if not self._started:
            # The viewer starts now (its peer connection connected): on a keyframe that is the newest frame,
            # or on the one asked for moments ago, still to come; never on a backlog (see the module).
            self._started = True
            now = self.hub.clock()
            if self._queue:
                ready = (len(self._queue) == 1 and self._queue[0].is_keyframe
                         and now - self._start_at <= FRESH_START_S)
            else:
                ready = now - self._asked_at <= FRESH_START_S
            if not ready:
                self._queue.clear()
                self._waiting_keyframe = True
                self._request_start()
        while not self._queue:
            if self.closed:
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        if self.closed:
            raise MediaStreamError
        self.packets_sent += 1
        return self._queue.popleft()

    @property
    def queued(self) -> int:
        return len(self._queue)


class PacketTrack(MediaStreamTrack):
    """A video track whose recv() yields the shared encoder's packets: aiortc sends them as they are."""

    kind = "video"

    def __init__(self, subscription: Subscription) -> None:
        super().__init__()
        self.subscription = subscription

    async def recv(self) -> av.Packet:  # type: ignore[override]
        if self.readyState != "live":
            raise MediaStreamError
        return await self.subscription.next_packet()

    def stop(self) -> None:
        super().stop()
        self.subscription.close()


class Hub:
    """Packets of one camera rendition ("anonymized" or "raw") to every subscriber. Loop-thread only."""

    def __init__(self, camera_id: str, rendition: str, codec: str, request_keyframe: Callable[..., None], *,
                 max_queue: int = 30, clock: Callable[[], float] = time.monotonic) -> None:
        self.camera_id = camera_id
        self.rendition = rendition
        self.codec = codec
        self.max_queue = max_queue
        self._request_keyframe = request_keyframe
        self.clock = clock
        self._subscribers: list[Subscription] = []
        self._recent: av.Packet | None = None  # the newest packet, when it is a keyframe
        self._recent_at = -1e9
        self._on_empty: list[Callable[[Hub], None]] = []
        self.packets_published = 0
        self.closed = False  # the rendition stopped: its subscriptions ended from this side, not the viewer's

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def on_empty(self, callback: Callable[[Hub], None]) -> None:
        """Called when the last subscriber leaves (the pipeline tears the raw rendition down, lingers...)."""
        self._on_empty.append(callback)

    def subscribe(self) -> Subscription:
        sub = Subscription(self, self.max_queue)
        self._subscribers.append(sub)
        metrics.VIEWERS.labels(self.camera_id, self.rendition).set(len(self._subscribers))
        if self._recent is not None and self.clock() - self._recent_at <= FRESH_START_S:
            sub._seed(self._recent, self._recent_at)  # the newest frame is a keyframe: start on it
        return sub  # else its IDR is asked for when its ICE connects, or at its first pull

    def request_keyframe(self, *, joining: bool = False) -> None:
        metrics.KEYFRAME_REQUESTS.labels(self.camera_id, self.rendition).inc()
        with contextlib.suppress(Exception):
            if joining:
                self._request_keyframe(joining=True)
            else:
                self._request_keyframe()

    def publish(self, packets: list[av.Packet]) -> None:
        now = self.clock()
        for packet in packets:
            self.packets_published += 1
            self._hold(packet, now)
            for sub in list(self._subscribers):
                sub._offer(packet, now)

    def _hold(self, packet: av.Packet, now: float) -> None:
        if packet.is_keyframe:
            self._recent, self._recent_at = packet, now
        else:
            self._recent = None

    def close(self) -> None:
        self.closed = True
        self._recent = None
        for sub in list(self._subscribers):
            sub.close()

    def _remove(self, sub: Subscription) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)
            metrics.VIEWERS.labels(self.camera_id, self.rendition).set(len(self._subscribers))
            if not self._subscribers:
                for callback in self._on_empty:
                    try:
                        callback(self)
                    except Exception:
                        log.exception("hub empty callback failed")
