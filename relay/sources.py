"""Camera ingest: pull RTSP (TCP or UDP), HTTP MJPEG, HLS or a looped local file with PyAV, decode on a
thread of its own, and hand every decoded frame to a callback.

Flaky cameras are the normal case: a source reconnects with capped exponential backoff (with jitter), treats
"no frame for `stall_s`" as a dead connection, notices frozen streams (identical frames for `frozen_s`), and
reports it all through `health()`. Nothing escapes the thread: a camera that is down shows as down.

Camera URLs carry credentials. They are used to open the stream and nowhere else: logs and health show the
text the caller hands in as `shown` (the service layer's redacted URL: policies.credentials.redact_url, the
one redaction there is), and error texts from FFmpeg are rebuilt from their kind and the system's error
text, never from the exception's message (which names the URL).
RTSP over UDP is asked for with a `#transport=udp` fragment (the fragment is never sent to the camera)."""

from __future__ import annotations

import contextlib
import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import av
import av.error
import numpy as np

from relay import metrics
from relay.health import RateMeter, SourceHealth, State

log = logging.getLogger("relay.sources")

SCHEMES = ("rtsp", "rtsps", "http", "https", "file")


class SourceError(Exception):
    """A camera that cannot be opened or read; the message is one line, free of secrets."""


@dataclass(frozen=True, slots=True)
class SourceOptions:
    open_timeout_s: float = 5.0
    stall_s: float = 5.0  # no frame for this long: the connection is dead, reconnect
    frozen_s: float | None = 10.0  # identical frames for this long: frozen camera, reconnect (None: never)
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 15.0
    loop_files: bool = True


@dataclass(frozen=True, slots=True)
class OpenPlan:
    """How PyAV opens one URL: what to pass to av.open, whether to loop it (local files) and whether to
    pace it at its frame rate (files, and HLS, which arrives a segment at a time)."""

    target: str
    format: str | None
    options: dict[str, str]
    is_file: bool
    paced: bool = False


def plan_open(url: str) -> OpenPlan:
    """Check the URL and pick low-latency open options. Raises SourceError for URLs we cannot pull."""
    if not url or not url.strip():
        raise SourceError("no source URL configured")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("", "file") or len(scheme) == 1:  # plain paths, including C:\ on Windows
        path = Path(parts.path if scheme == "file" else url)
        if not path.is_file():
            raise SourceError(f"no such file: {path.name or path}")
        return OpenPlan(str(path), None, {}, True, paced=True)
    if scheme not in SCHEMES:
        raise SourceError(f"unsupported scheme {scheme!r} (use {', '.join(SCHEMES)})")
    if not parts.hostname:
        raise SourceError("URL has no host")
    try:  # FFmpeg reports an unresolvable host as a bare I/O error; ask first to say what is wrong
        socket.getaddrinfo(parts.hostname, None)
    except (socket.gaierror, UnicodeError):
        raise SourceError(f"cannot resolve host {parts.hostname!r}") from None
    # Probe little: a stock open on RTSP took seconds, these options open in ~0.1 s. Not `fflags=nobuffer`:
    # it throws away the packets read while probing, which are the first slices of the first keyframe, so a
    # multi-slice camera decoded torn until its next keyframe; keeping them costs no time.
    options = {"probesize": "32768", "analyzeduration": "0", "flags": "low_delay"}
    target = urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))
    fmt = None
    if scheme.startswith("rtsp"):
        fragment = dict(parse_qsl(parts.fragment))
        transport = fragment.get("transport", "tcp").lower()
        if transport not in ("tcp", "udp"):
            raise SourceError(f"unsupported RTSP transport {transport!r} (use tcp or udp)")
        options["rtsp_transport"] = transport
        if transport == "udp":
            options["reorder_queue_size"] = "16"
    elif parts.path.lower().endswith(".m3u8"):
        fmt = "hls"
        # Playlists need a bit of probing to find their variant and codec.
        options.update({"probesize": "500000", "analyzeduration": "500000"})
    return OpenPlan(target, fmt, options, False, paced=fmt == "hls")


def describe_error(exc: BaseException) -> str:
    """One line for health and logs: what went wrong, without the URL or its secrets."""
    if isinstance(exc, SourceError):
        return " ".join(str(exc).split())  # our own messages: a host or file name at most
    if isinstance(exc, av.error.HTTPUnauthorizedError):
        return "unauthorized: the camera refused the credentials"
    if isinstance(exc, av.error.HTTPForbiddenError):
        return "forbidden by the camera"
    if isinstance(exc, av.error.HTTPNotFoundError):
        return "not found on the camera (check the stream path)"
    if isinstance(exc, av.error.ExitError | TimeoutError):
        return "timed out waiting for the camera"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, av.error.InvalidDataError):
        return "the camera sent data that is not a video stream"
    reason = getattr(exc, "strerror", None)  # FFmpeg's and the system's text, without the file name
    lowered = f"{reason or ''} {exc}".lower()  # looked at, never shown
    if "name or service not known" in lowered or "resolve" in lowered or "nodename" in lowered:
        return "cannot resolve the camera's host name"
    if "refused" in lowered:
        return "connection refused"
    if "401" in lowered or "unauthorized" in lowered:
        return "unauthorized: the camera refused the credentials"
    return " ".join(f"{type(exc).__name__}: {reason}".split()) if reason else type(exc).__name__


class _Reconnect(Exception):
    """Internal: drop the connection and open again (stall, frozen stream)."""


def _thumbnail(frame: av.VideoFrame) -> np.ndarray:
    # Every 8th sample of the luma plane: enough to tell a frozen picture from a live one, at little cost.
    plane = frame.planes[0]
    luma = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
    return luma[::8, ::8].astype(np.int16)


def _same_picture(a: np.ndarray | None, b: np.ndarray) -> bool:
    # Re-encoding a frozen picture wobbles by a few levels; anything live moves some samples by more.
    return a is not None and a.shape == b.shape and int(np.abs(a - b).max()) <= _FROZEN_TOLERANCE


_FROZEN_TOLERANCE = 8


class Source:
    """One camera's ingest thread. `on_frame(frame, arrival_monotonic)` runs on that thread."""

    def __init__(self, url: str, on_frame: Callable[[av.VideoFrame, float], None], *, label: str = "camera",
                 shown: str = "", options: SourceOptions | None = None,
                 on_state: Callable[[State], None] | None = None) -> None:
        """`shown`: what logs and health may show of the source (a redacted URL); never the URL itself."""
        self._url = url
        self._redacted = shown or "(source not shown)"
        self._on_frame = on_frame
        self._on_state = on_state
        self.label = label
        self.options = options or SourceOptions()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._state: State = "idle"
        self._connected = False
        self._last_frame: float | None = None
        self._reconnects = 0
        self._failures = 0
        self._last_error: str | None = None
        self._frozen = False
        self._size: tuple[int, int] | None = None
        self._fps = RateMeter()
        self._ever_connected = False
        self._pace_last: float | None = None
        self.decode_errors = 0

    @property
    def redacted_url(self) -> str:
        return self._redacted

    def start(self) -> None:
        if self._thread is not None:
            return
        self._set(state="connecting")
        self._thread = threading.Thread(target=self._run, name=f"source-{self.label}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        """Stop pulling. A read stuck on a dead camera ends at its stall timeout; we wait `timeout` at most"""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._set(state="stopped", connected=False)
        metrics.CAMERA_UP.labels(self.label).set(0)

    def health(self) -> SourceHealth:
        with self._lock:
            age = None if self._last_frame is None else round(time.monotonic() - self._last_frame, 3)
            return SourceHealth(state=self._state, connected=self._connected, fps_in=self._fps.rate(),
                                last_frame_age_s=age, reconnects=self._reconnects, failures=self._failures,
                                last_error=self._last_error, frozen=self._frozen,
                                width=self._size[0] if self._size else None,
                                height=self._size[1] if self._size else None)

    # -- the thread -------------------------------------------------------------------------------------

    def _set(self, **changes: object) -> None:
        state = changes.pop("state", None)
        with self._lock:
            for key, value in changes.items():
                setattr(self, f"_{key}", value)
            changed = state is not None and state != self._state
            if state is not None:
                self._state = state  # type: ignore[assignment]
        if changed and self._on_state is not None:
            with contextlib.suppress(Exception):
                self._on_state(state)  # type: ignore[arg-type]

    def _run(self) -> None:
        attempt = 0
        logged: tuple[str, float | None] | None = None
        while not self._stop.is_set():
            delivered = False
            try:
                plan = plan_open(self._url)
                delivered = self._pull(plan)
                if self._stop.is_set():
                    break
                raise SourceError("the camera ended the stream")
            except Exception as exc:  # a camera failure must never leave this thread
                if self._stop.is_set():
                    break
                message = describe_error(exc)
                with self._lock:
                    self._failures += 1
                self._set(state="down", connected=False, last_error=message)
                metrics.SOURCE_FAILURES.labels(self.label).inc()
                metrics.CAMERA_UP.labels(self.label).set(0)
                # A camera that stays down logs once per distinct error, not once per retry.
                repeat = (message, self._last_frame) == logged  # same error, no frame since
                log.log(logging.DEBUG if repeat else logging.WARNING, "camera %s (%s): %s", self.label,
                        self._redacted, message)
                logged = (message, self._last_frame)
            attempt = 0 if delivered else attempt + 1
            delay = min(self.options.backoff_max_s, self.options.backoff_initial_s * 2 ** max(attempt - 1, 0))
            self._stop.wait(delay * random.uniform(0.8, 1.2))

    def _pull(self, plan: OpenPlan) -> bool:
        """Open, decode and deliver until the stream fails or we stop. True if a frame was delivered.
        Files are reopened at their end (seeking fails on raw elementary streams) and paced at their rate."""
        opts = self.options
        delivered = False
        self._pace_last = None
        while not self._stop.is_set():
            container = av.open(plan.target, format=plan.format, options=plan.options,
                                timeout=(opts.open_timeout_s, opts.stall_s))
            try:
                got = self._decode(container, plan, delivered)
            except _Reconnect as exc:
                raise SourceError(str(exc)) from None
            finally:
                with contextlib.suppress(Exception):
                    container.close()
            delivered = delivered or got
            if not (plan.is_file and opts.loop_files and got):
                break
        return delivered

    def _decode(self, container: av.container.InputContainer, plan: OpenPlan, delivered: bool) -> bool:
        opts = self.options
        if not container.streams.video:
            raise SourceError("the source has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"  # frame threading would add a frame of latency per thread
        # Cameras (and RTSP servers) may send each slice of a picture as a packet of its own. Without
        # `chunks` the decoder takes every packet for a whole picture and outputs pictures with the other
        # slices missing (grey, torn); with it, a picture is output once its last slice is in (no added
        # latency when a packet holds a whole picture).
        stream.codec_context.flags2 |= av.codec.context.Flags2.chunks
        period = 1 / float(stream.average_rate or stream.guessed_rate or 25)
        reference: np.ndarray | None = None  # the picture the current run of identical frames started with
        same_since = last_frame_at = time.monotonic()
        got = False
        for packet in container.demux(stream):
            if self._stop.is_set():
                return got
            try:
                decoded = packet.decode()
            except av.error.InvalidDataError:
                # A damaged packet (loss on UDP, a glitching camera): skip it. If nothing decodes any
                # more, the stall check below reconnects.
                self.decode_errors += 1
                decoded = []
            for frame in decoded:
                now = time.monotonic()
                if plan.paced:  # at the stream's frame rate, like a camera, not as fast as it can be read
                    due = now if self._pace_last is None else self._pace_last + period
                    if due > now and self._stop.wait(due - now):
                        return got
                    self._pace_last = due
                    now = time.monotonic()
                last_frame_at = now
                thumb = _thumbnail(frame)
                if not _same_picture(reference, thumb):
                    reference, same_since = thumb, now
                    if self._frozen:
                        self._set(frozen=False, state="live")
                elif opts.frozen_s is not None and now - same_since > opts.frozen_s:
                    self._set(frozen=True, state="frozen")
                    raise _Reconnect(f"frozen: identical frames for {opts.frozen_s:g} s")
                if not (got or delivered):
                    if self._ever_connected:
                        with self._lock:
                            self._reconnects += 1
                        metrics.RECONNECTS.labels(self.label).inc()
                        log.info("camera %s (%s): reconnected", self.label, self._redacted)
                    self._ever_connected = True
                    self._set(state="frozen" if self._frozen else "live", connected=True, last_error=None)
                    metrics.CAMERA_UP.labels(self.label).set(1)
                got = True
                with self._lock:
                    self._last_frame = now
                    self._size = (frame.width, frame.height)
                self._fps.tick(now)
                metrics.FRAMES_IN.labels(self.label).inc()
                self._on_frame(frame, now)
            if time.monotonic() - last_frame_at > opts.stall_s:
                raise _Reconnect(f"stalled: no frame for {opts.stall_s:g} s")
        return got
