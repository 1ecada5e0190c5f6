"""What a login attempt may cost: who may try a password now (`LoginThrottle`) and how many argon2 checks
run at once (`HashSlots`).

Throttling is per client address *and* account, so a stranger cannot lock a person out:
- one client failing on one account: after `free` failures it waits 1, 2, 4 ... s (at most `max_wait_s`)
  before its next try on that account; other clients, the owner's included, are not slowed;
- one client failing across many accounts (spraying names): `client_max` failures in `window_s` and that
  client is refused for every name until the oldest failure leaves the window;
- one account failing from many clients (a botnet): `account_max` failures in `account_window_s` (high and
  short) refuse it for that window to every client that has not signed in to it successfully before.
A refused attempt checks no password and is not counted as a failure. State is in memory, per process,
bounded in size; a success clears the client's failures on that account."""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

_MAX_KEYS = 100_000  # each table forgets its oldest keys beyond this (memory stays bounded under a flood)


class Busy(Exception):
    """Every password-check slot is taken and the queue is full or the wait ran out."""


class HashSlots:
    """At most `slots` argon2 computations at once (each takes tens of MiB and a core for ~0.1-0.5 s);
    at most `queue` more wait, each at most `wait_s`; beyond that `Busy` at once instead of queueing."""

    def __init__(self, slots: int = 0, queue: int = 16, wait_s: float = 2.0) -> None:
        self.slots = slots if slots > 0 else max(2, os.cpu_count() or 2)
        self.queue = queue
        self.wait_s = wait_s
        self._sem = threading.BoundedSemaphore(self.slots)
        self._lock = threading.Lock()
        self._waiting = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        if not self._sem.acquire(blocking=False):
            with self._lock:
                if self._waiting >= self.queue:
                    raise Busy("too many password checks at once")
                self._waiting += 1
            try:
                got = self._sem.acquire(timeout=self.wait_s)
            finally:
                with self._lock:
                    self._waiting -= 1
            if not got:
                raise Busy("too many password checks at once")
        try:
            yield
        finally:
            self._sem.release()


@dataclass(frozen=True)
class ThrottleLimits:
    free: int = 5  # failures of one client on one account before it has to wait
    max_wait_s: float = 900.0  # the longest such wait
    client_max: int = 20  # failures of one client across all accounts within window_s
    window_s: float = 900.0
    account_max: int = 50  # failures on one account from all clients within account_window_s
    account_window_s: float = 60.0


class _Table(OrderedDict[str | tuple[str, str], deque[float]]):
    """Failure times per key, oldest-touched key first; at most _MAX_KEYS keys, `maxlen` times each."""

    def __init__(self, horizon_s: float, maxlen: int) -> None:
        super().__init__()
        self.horizon_s = horizon_s
        self.maxlen = maxlen

    def touch(self, key: str | tuple[str, str]) -> deque[float]:
        times = self.setdefault(key, deque(maxlen=self.maxlen))
        self.move_to_end(key)
        while len(self) > _MAX_KEYS:
            self.popitem(last=False)
        return times

    def recent(self, key: str | tuple[str, str], now: float) -> deque[float]:
        times = self.get(key) or deque()
        while times and times[0] < now - self.horizon_s:
            times.popleft()
        return times

    def expire(self, now: float) -> None:
        # Oldest-touched first: stop at the first key that still has a failure inside the horizon.
        while self:
            key = next(iter(self))
            if self.recent(key, now):
                break
            del self[key]


class LoginThrottle:
    def __init__(self, limits: ThrottleLimits | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = lim = limits or ThrottleLimits()
        self.clock = clock
        self._lock = threading.Lock()
        most = max(lim.free + 32, lim.client_max, lim.account_max)
        self._pairs = _Table(lim.window_s, most)  # (account, client) -> failure times
        self._clients = _Table(lim.window_s, most)  # client -> failure times, any account
        self._accounts = _Table(lim.account_window_s, most)  # account -> failure times, any client
        self._trusted: OrderedDict[tuple[str, str], None] = OrderedDict()  # (account, client) that signed in

    def retry_after(self, account: str, client: str) -> float | None:
        """Seconds before `client` may try a password for `account`; None: it may now."""
        lim, now = self.limits, self.clock()
        with self._lock:
            for table in (self._pairs, self._clients, self._accounts):
                table.expire(now)
            waits = [0.0]
            pair = self._pairs.recent((account, client), now)
            if len(pair) >= lim.free:
                waits.append(pair[-1] + min(lim.max_wait_s, 2.0 ** (len(pair) - lim.free)) - now)
            spray = self._clients.recent(client, now)
            if len(spray) >= lim.client_max:
                waits.append(spray[-lim.client_max] + lim.window_s - now)
            hits = self._accounts.recent(account, now)
            if len(hits) >= lim.account_max and (account, client) not in self._trusted:
                waits.append(hits[-lim.account_max] + lim.account_window_s - now)
            wait = max(waits)
            return wait if wait > 0 else None

    def failed(self, account: str, client: str) -> None:
        now = self.clock()
        with self._lock:
            self._pairs.touch((account, client)).append(now)
            self._clients.touch(client).append(now)
            self._accounts.touch(account).append(now)

    def succeeded(self, account: str, client: str) -> None:
        with self._lock:
            self._pairs.pop((account, client), None)
            self._trusted[(account, client)] = None
            self._trusted.move_to_end((account, client))
            while len(self._trusted) > _MAX_KEYS:
                self._trusted.popitem(last=False)
