"""One camera's live pipeline: source → anonymizer → shared encoder → hub (→ viewers' peer connections).

Threads: the source decodes on its own thread; a mask thread runs the anonymizer (which detects on a
thread of its own); each rendition encodes on its own thread; hubs live on the event loop and get packets
through `call_soon_threadsafe`. Between stages are two-frame slots that drop the OLDEST frame when the next
stage falls behind: latency never grows, drops are counted.

Fail closed: if the anonymizer raises, the frame leaves as a flat grey picture (counted as failsafe), never
as the decoded original. The raw rendition (unanonymized) exists only while a raw subscriber does: a second
encoder fed before the anonymizer, torn down when its last subscriber leaves."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import av
import numpy as np

from relay import metrics
from relay.encoder import SharedEncoder
from relay.health import CameraHealth, RateMeter
from relay.hub import Hub, Subscription
from relay.sources import Source, SourceOptions

log = logging.getLogger("relay.pipeline")


class FrameAnonymizer(Protocol):
    """What the pipeline needs of blur.Anonymizer."""

    def process(self, frame: av.VideoFrame) -> tuple[av.VideoFrame, Any]: ...

    def close(self) -> None: ...


class CameraLike(Protocol):
    id: str
    name: str
    source_url: str
    redacted_url: str
    privacy_masks: Sequence[Sequence[tuple[float, float]]]
    keepalive: bool


class FrameSlot:
    """A tiny bounded queue between threads that drops the oldest item when full."""

    def __init__(self, capacity: int = 2) -> None:
        self._items: collections.deque[tuple[av.VideoFrame, float]] = collections.deque()
        self._capacity = capacity
        self._cond = threading.Condition()
        self._poked = False
        self.dropped = 0

    def put(self, item: tuple[av.VideoFrame, float]) -> bool:
        """Queue `item`; False if an older frame had to be dropped for it."""
        with self._cond:
            dropped = len(self._items) >= self._capacity
            if dropped:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify()
            return not dropped

    def get(self, timeout: float) -> tuple[av.VideoFrame, float] | None:
        """The oldest item; None after `timeout`, or at once when poked with nothing queued."""
        with self._cond:
            if not self._items and not self._poked:
                self._cond.wait(timeout)
            self._poked = False
            return self._items.popleft() if self._items else None

    def poke(self) -> None:
        """Wake the consumer waiting in get() (it gets None if nothing is queued)."""
        with self._cond:
            self._poked = True
            self._cond.notify()

    def clear(self) -> None:
        with self._cond:
            self._items.clear()


REPEAT_WITHIN_S = 0.5  # a joining viewer's IDR re-encodes the last frame sent if it is at most this old


class _Rendition:
    """An encoder on a thread of its own (so masking and encoding overlap on two cores) and its hub.

    A joining viewer's IDR is the last frame this rendition encoded, encoded again at once as an IDR (stamped
    one tick after it: the same picture), rather than the next frame out of the anonymizer, which may be a
    detection round away. It is a frame already sent, anonymized (or masked whole) like any other: nothing
    leaves that had not left already."""

    def __init__(self, camera_id: str, name: str, codec: str, fps: int) -> None:
        self.camera_id = camera_id
        self.name = name
        self.encoder = SharedEncoder(codec, fps=fps)
        self.hub = Hub(camera_id, name, codec, self.request_keyframe)
        self._last: tuple[av.VideoFrame, float] | None = None  # encode thread only
        self.repeats = 0
        self.fps_out = RateMeter()
        self.slot = FrameSlot(2)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name=f"encode-{self.camera_id}-{self.name}",
                                        daemon=True)
        self._thread.start()

    def feed(self, frame: av.VideoFrame, arrival: float) -> None:
        if not self.slot.put((frame, arrival)):
            metrics.FRAMES_DROPPED.labels(self.camera_id).inc()

    def request_keyframe(self, *, joining: bool = False) -> None:
        """The hub's keyframe hook (any thread): a joining viewer's IDR wakes the encode thread for it."""
        self.encoder.request_keyframe(joining=joining)
        if joining:
            self.slot.poke()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.slot.clear()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _repeat(self) -> tuple[av.VideoFrame, float] | None:
        """The last frame again, when a joining viewer waits for its IDR and that frame is recent."""
        last = self._last
        if last is None or not self.encoder.joining_pending or time.monotonic() - last[1] > REPEAT_WITHIN_S:
            return None
        return last

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self.slot.get(timeout=0.5)
            if self._stop.is_set():
                continue
            repeat = item is None
            if repeat:
                item = self._repeat()
            if item is None:
                continue
            frame, arrival = item
            try:
                packets = self.encoder.encode(frame, arrival)  # a repeat: pts one tick after the original
            except Exception:  # one bad frame must not end the camera
                log.exception("camera %s: encoding failed", self.camera_id)
                continue
            if repeat:
                self.repeats += 1
            else:
                self._last = item
                self.fps_out.tick()
                metrics.FRAMES_OUT.labels(self.camera_id, self.name).inc()
            if packets and self._loop is not None:
                with contextlib.suppress(RuntimeError):  # loop closed during shutdown
                    self._loop.call_soon_threadsafe(self.hub.publish, packets)


def masked_frame(width: int, height: int) -> av.VideoFrame:
    """A flat mid-grey yuv420p frame: what leaves when the anonymizer cannot vouch for a frame."""
    frame = av.VideoFrame(width, height, "yuv420p")
    for plane in frame.planes:
        np.frombuffer(plane, np.uint8)[:] = 128
    return frame


class Pipeline:
    """Pull one camera, anonymize, encode once, fan out. Start and subscribe on the event loop."""

    def __init__(self, camera: CameraLike, anonymizer: FrameAnonymizer, *, codec: str = "h264", fps: int = 25,
                 source_options: SourceOptions | None = None) -> None:
        self.camera = camera
        self.camera_id = camera.id
        self.anonymizer = anonymizer  # public: tests swap its detector to inject faults
        self.codec = codec
        self.fps = fps
        self._source_options = source_options
        self._anon = _Rendition(camera.id, "anonymized", codec, fps)
        self._raw: _Rendition | None = None
        self._slot = FrameSlot(2)
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._source: Source | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_idle: list[Callable[[Pipeline], None]] = []
        self.failsafe_frames = 0
        self.anonymizer_errors = 0
        self.started = False
        self.stopped = False
        self._masked: av.VideoFrame | None = None
        # Stills asked for (consoles' camera pictures): each gets the next anonymized frame, as RGB.
        self._stills: list[asyncio.Future[tuple[np.ndarray, bool]]] = []
        self._stills_lock = threading.Lock()
        self._anon.hub.on_empty(lambda _hub: self._hub_emptied())

    # -- lifecycle (event loop) -------------------------------------------------------------------------

    def start(self) -> None:
        if self.started:
            return
        self.started = True
        self._loop = asyncio.get_running_loop()
        self._anon.start(self._loop)
        self._worker = threading.Thread(target=self._work, name=f"mask-{self.camera_id}", daemon=True)
        self._worker.start()
        self._source = Source(self.camera.source_url, self._on_frame, label=self.camera_id,
                              shown=self.camera.redacted_url, options=self._source_options)
        self._source.start()

    async def stop(self) -> None:
        """Disconnect from the camera, end every subscription, release the engine."""
        if self.stopped:
            return
        self.stopped = True
        self._stop.set()
        source, worker, raw = self._source, self._worker, self._raw

        def join() -> None:
            if source is not None:
                source.stop()
            if worker is not None:
                worker.join(5)
            self._anon.stop()
            if raw is not None:
                raw.stop()
            with contextlib.suppress(Exception):
                self.anonymizer.close()

        await asyncio.to_thread(join)
        self._anon.hub.close()
        if self._raw is not None:
            self._raw.hub.close()
            self._raw = None

    def on_idle(self, callback: Callable[[Pipeline], None]) -> None:
        """Called on the loop when the last viewer (anonymized or raw) leaves."""
        self._on_idle.append(callback)

    # -- viewers (event loop) ---------------------------------------------------------------------------

    def subscribe(self, *, raw: bool = False) -> Subscription:
        if self.stopped:
            raise RuntimeError("pipeline stopped")
        if not raw:
            return self._anon.hub.subscribe()
        if self._raw is None:
            rendition = _Rendition(self.camera_id, "raw", self.codec, self.fps)
            rendition.hub.on_empty(self._raw_emptied)
            if self._loop is not None:
                rendition.start(self._loop)
            self._raw = rendition
            log.info("camera %s: raw rendition started", self.camera_id)
        return self._raw.hub.subscribe()

    def next_still(self) -> asyncio.Future[tuple[np.ndarray, bool]]:
        """The next frame that leaves the anonymizer (RGB, and whether it failed closed), as the viewers get
        it: never a frame from before the anonymizer. Frames are anonymized only while the anonymized
        rendition has a subscriber, so the caller holds one until the future is done."""
        future: asyncio.Future[tuple[np.ndarray, bool]] = asyncio.get_running_loop().create_future()
        with self._stills_lock:
            self._stills.append(future)
        return future

    @property
    def viewers(self) -> int:
        return self._anon.hub.subscribers

    @property
    def raw_viewers(self) -> int:
        return self._raw.hub.subscribers if self._raw is not None else 0

    @property
    def has_raw_rendition(self) -> bool:
        return self._raw is not None

    @property
    def encoder(self) -> SharedEncoder:
        return self._anon.encoder

    @property
    def raw_encoder(self) -> SharedEncoder | None:
        return self._raw.encoder if self._raw is not None else None

    def _raw_emptied(self, hub: Hub) -> None:
        if self._raw is not None and self._raw.hub is hub:
            rendition, self._raw = self._raw, None  # nothing raw is fed or encoded from here on
            rendition.stop(timeout=0)
            log.info("camera %s: raw rendition stopped", self.camera_id)
        self._hub_emptied()

    def _hub_emptied(self) -> None:
        if self.viewers == 0 and self.raw_viewers == 0:
            for callback in self._on_idle:
                try:
                    callback(self)
                except Exception:
                    log.exception("idle callback failed")

    # -- health -----------------------------------------------------------------------------------------

    def health(self) -> CameraHealth:
        cam = self.camera
        base = CameraHealth.idle(cam.id, cam.name, cam.redacted_url, bool(cam.keepalive))
        if self._source is None:
            return base
        src = self._source.health()
        return CameraHealth(
            camera_id=cam.id, name=cam.name, source=self._source.redacted_url, keepalive=bool(cam.keepalive),
            state=src.state, connected=src.connected, fps_in=src.fps_in, fps_out=self._anon.fps_out.rate(),
            last_frame_age_s=src.last_frame_age_s, reconnects=src.reconnects, failures=src.failures,
            failsafe_frames=self.failsafe_frames, dropped_frames=self._slot.dropped + self._anon.slot.dropped,
            viewers=self.viewers,
            raw_viewers=self.raw_viewers, last_error=src.last_error, frozen=src.frozen, width=src.width,
            height=src.height)

    # -- threads ----------------------------------------------------------------------------------------

    def _on_frame(self, frame: av.VideoFrame, arrival: float) -> None:  # source thread
        raw = self._raw
        if raw is not None and raw.hub.subscribers:
            raw.feed(frame, arrival)  # before the anonymizer, by definition
        if self._anon.hub.subscribers == 0:
            return  # a keepalive camera nobody watches: stay connected, spend nothing on masking
        if not self._slot.put((frame, arrival)):
            metrics.FRAMES_DROPPED.labels(self.camera_id).inc()

    def _work(self) -> None:  # worker thread
        while not self._stop.is_set():
            item = self._slot.get(timeout=0.5)
            if item is None:
                continue
            frame, arrival = item
            try:
                self._step(frame, arrival)
            except Exception:  # a failure on one frame must not end the camera
                log.exception("camera %s: frame processing failed", self.camera_id)

    def _step(self, frame: av.VideoFrame, arrival: float) -> None:
        try:
            out, report = self.anonymizer.process(frame)
            failsafe = bool(getattr(report, "failsafe", False))
        except Exception as exc:
            self.anonymizer_errors += 1
            if self.anonymizer_errors == 1 or self.anonymizer_errors % 250 == 0:
                log.error("camera %s: anonymizer failed (%s); frames leave fully masked",
                          self.camera_id, type(exc).__name__)
            masked = self._masked
            if masked is None or (masked.width, masked.height) != (frame.width, frame.height):
                self._masked = masked = masked_frame(frame.width, frame.height)
            out, failsafe = masked, True
        if failsafe:
            self.failsafe_frames += 1
            metrics.FAILSAFE_FRAMES.labels(self.camera_id).inc()
        if self._stills:
            self._hand_still(out, failsafe)
        self._anon.feed(out, arrival)

    def _hand_still(self, out: av.VideoFrame, failsafe: bool) -> None:  # worker thread
        with self._stills_lock:
            waiting, self._stills = self._stills, []
        loop = self._loop
        if loop is None:
            return
        picture = out.to_ndarray(format="rgb24")  # a copy: the encoder may reuse the frame's buffers

        def settle() -> None:
            for future in waiting:
                if not future.done():
                    future.set_result((picture, failsafe))

        loop.call_soon_threadsafe(settle)
