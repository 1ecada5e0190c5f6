"""Per-camera health: what the dashboard and operators see about each camera's pipeline.

Holds no secrets: the only source address here is the redacted one, and errors are rebuilt by sources.py."""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

# idle: nobody watches, not pulled; connecting: first open in progress; live: frames arriving;
# down: the source failed and is being retried; frozen: frames arrive but are identical; stopped: shut down.
State = Literal["idle", "connecting", "live", "down", "frozen", "stopped"]


@dataclass(frozen=True, slots=True)
class SourceHealth:
    state: State
    connected: bool
    fps_in: float
    last_frame_age_s: float | None
    reconnects: int  # successful re-opens after a lost or failed connection
    failures: int  # failed opens, stalls, frozen streams, decode errors
    last_error: str | None
    frozen: bool
    width: int | None
    height: int | None


@dataclass(frozen=True, slots=True)
class CameraHealth:
    camera_id: str
    name: str
    source: str  # redacted URL
    keepalive: bool
    state: State
    connected: bool
    fps_in: float
    fps_out: float
    last_frame_age_s: float | None
    reconnects: int
    failures: int
    failsafe_frames: int  # frames the engine masked whole (detector failed or fell behind)
    dropped_frames: int  # frames skipped before encoding because the pipeline fell behind
    viewers: int
    raw_viewers: int
    last_error: str | None
    frozen: bool
    width: int | None
    height: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def idle(cls, camera_id: str, name: str, source: str, keepalive: bool = False) -> CameraHealth:
        return cls(camera_id=camera_id, name=name, source=source, keepalive=keepalive, state="idle",
                   connected=False, fps_in=0.0, fps_out=0.0, last_frame_age_s=None, reconnects=0, failures=0,
                   failsafe_frames=0, dropped_frames=0, viewers=0, raw_viewers=0, last_error=None,
                   frozen=False, width=None, height=None)


class RateMeter:
    """Events per second over a sliding window; safe to tick from one thread and read from another."""

    def __init__(self, window_s: float = 2.0) -> None:
        self._window = window_s
        self._times: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._times.append(now)
            self._trim(now)

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            if len(self._times) < 2:
                return 0.0
            # Events over the span they cover, so a meter that just started does not under-report.
            span = max(now - self._times[0], 1e-3)
            return round(len(self._times) / max(span, self._window / 4), 2)

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self._window:
            self._times.popleft()
