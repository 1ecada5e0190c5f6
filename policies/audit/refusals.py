"""Refused requests, aggregated: one access-log entry per (client, kind, actor, reason, route) and window
with a count, so that a client hammering the relay without a valid token leaves evidence, not a flood.

The first refusal of a window is written at once (a single probe shows immediately, count 1); the ones
that repeat it within `window_s` are counted and written as one entry when the window ends (count n,
first and last time, a few of the paths), by a flusher thread, or at `flush()` (shutdown). A window
holds no request data beyond those few paths; at most `max_windows` are open, beyond which the client is
counted as "(many clients)"."""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)

_SAMPLE_PATHS = 5


class _Appends(Protocol):
    def append(self, kind: str, *, actor: str, roles: Sequence[str] = (), decision: str | None = None,
               reason: str = "", details: dict[str, Any] | None = None) -> Any: ...


@dataclass
class _Window:
    ends: float  # monotonic
    roles: tuple[str, ...]
    base: dict[str, Any]  # client, method, route, status
    repeats: int = 0
    first_at: str | None = None
    last_at: str | None = None
    paths: list[str] = field(default_factory=list)


def _now_text() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Refusals:
    def __init__(self, log: _Appends, window_s: float = 60.0, max_windows: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log = log
        self.window_s = window_s
        self.max_windows = max_windows
        self._clock = clock
        self._open: dict[tuple[Any, ...], _Window] = {}
        self._cond = threading.Condition()
        self._flusher: threading.Thread | None = None
        self._closed = False

    def record(self, kind: str, *, actor: str, roles: Sequence[str] = (), reason: str,
               client: str, method: str, path: str, route: str | None, status: int,
               details: dict[str, Any] | None = None) -> None:
        """A refused request: written now if it opens a window, else counted in its window."""
        if self.window_s <= 0:
            self._write_first(kind, actor, roles, reason, client, method, path, route, status, details)
            return
        route = route or path
        now = self._clock()
        with self._cond:
            if len(self._open) >= self.max_windows:
                client = "(many clients)"
            key = (client, kind, actor, reason, method, route)
            window = self._open.get(key)
            if window is not None and window.ends > now:
                window.repeats += 1
                window.first_at = window.first_at or _now_text()
                window.last_at = _now_text()
                if path not in window.paths and len(window.paths) < _SAMPLE_PATHS:
                    window.paths.append(path)
                return
            expired = self._open.pop(key, None)
            base = {"client": client, "method": method, "route": route, "status": status}
            self._open[key] = _Window(ends=now + self.window_s, roles=tuple(roles), base=base)
            self._start_flusher()
            self._cond.notify()
        if expired is not None:
            self._write_window(key, expired)
        self._write_first(kind, actor, roles, reason, client, method, path, route, status, details)

    def _write_first(self, kind: str, actor: str, roles: Sequence[str], reason: str, client: str,
                     method: str, path: str, route: str | None, status: int,
                     details: dict[str, Any] | None) -> None:
        self.log.append(kind, actor=actor, roles=roles, decision="deny", reason=reason, details={
            **(details or {}), "method": method, "path": path, "client": client, "status": status,
            "route": route or path, "count": 1, "window_s": self.window_s})

    def _write_window(self, key: tuple[Any, ...], window: _Window) -> None:
        if not window.repeats:
            return
        _client, kind, actor, reason, _method, _route = key
        self.log.append(kind, actor=actor, roles=window.roles, decision="deny", reason=reason, details={
            **window.base, "count": window.repeats, "window_s": self.window_s, "repeated": True,
            "first_at": window.first_at, "last_at": window.last_at, "paths": window.paths})

    def _due(self, everything: bool) -> list[tuple[tuple[Any, ...], _Window]]:
        now = self._clock()
        keys = [k for k, w in self._open.items() if everything or w.ends <= now]
        return [(k, self._open.pop(k)) for k in keys]

    def flush(self, everything: bool = True) -> int:
        """Write the windows that ended (all of them by default: shutdown); how many entries it wrote."""
        with self._cond:
            due = self._due(everything)
        written = 0
        for key, window in due:
            try:
                self._write_window(key, window)
                written += bool(window.repeats)
            except Exception as exc:  # the database is away: the counts are lost, the reason is logged
                log.warning("refusals: %d repeated %s could not be logged (%s)", window.repeats, key[1],
                            type(exc).__name__)
        return written

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self.flush()

    def _start_flusher(self) -> None:
        if self._flusher is None:
            self._flusher = threading.Thread(target=self._run, name="audit-refusals", daemon=True)
            self._flusher.start()
            atexit.register(self.close)

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._closed:
                    return
                ends = min((w.ends for w in self._open.values()), default=None)
                wait = None if ends is None else max(0.0, ends - self._clock())
                if wait is None or wait > 0:
                    self._cond.wait(wait)
                    continue
            with contextlib.suppress(Exception):
                self.flush(everything=False)
