"""Fan-out of one rendition's encoded packets to its viewers, on the event loop.

Each viewer has a bounded queue. A viewer that falls behind loses its queue and waits for the next keyframe
(which it asks for): it never holds up the encoder or the other viewers. A new viewer starts on a keyframe
requested when it first pulls a packet, so joining takes about a frame interval rather than a GOP."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Callable

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from relay import metrics

log = logging.getLogger("relay.hub")


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
        self._on_close: list[Callable[[Subscription], None]] = []
        self.track = PacketTrack(self)

    def request_keyframe(self) -> None:
        """Ask the shared encoder for an IDR (PLI/FIR from this viewer); rate-limited by the encoder."""
        if not self.closed:
            self.hub.request_keyframe()

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

    def _offer(self, packet: av.Packet) -> None:
        if self._waiting_keyframe:
            if not packet.is_keyframe:
                return
            self._waiting_keyframe = False
        if len(self._queue) >= self.max_queue:
            # Behind by a whole queue: what is queued is stale. Start over at the next keyframe.
            self._queue.clear()
            self.drops += 1
            metrics.VIEWER_DROPS.labels(self.camera_id, self.hub.rendition).inc()
            if not packet.is_keyframe:
                self._waiting_keyframe = True
                self.hub.request_keyframe()
                return
        self._queue.append(packet)
        self._ready.set()

    async def next_packet(self) -> av.Packet:
        if not self._started:
            # The viewer starts now (a peer connection may take a while to connect after subscribing):
            # whatever queued meanwhile is stale, so start it on a fresh IDR.
            self._started = True
            self._queue.clear()
            self._waiting_keyframe = True
            self.request_keyframe()
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

    def __init__(self, camera_id: str, rendition: str, codec: str, request_keyframe: Callable[[], None], *,
                 max_queue: int = 30) -> None:
        self.camera_id = camera_id
        self.rendition = rendition
        self.codec = codec
        self.max_queue = max_queue
        self._request_keyframe = request_keyframe
        self._subscribers: list[Subscription] = []
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
        return sub  # its first recv asks for the IDR it starts on

    def request_keyframe(self) -> None:
        metrics.KEYFRAME_REQUESTS.labels(self.camera_id, self.rendition).inc()
        with contextlib.suppress(Exception):
            self._request_keyframe()

    def publish(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            self.packets_published += 1
            for sub in list(self._subscribers):
                sub._offer(packet)

    def close(self) -> None:
        self.closed = True
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
