"""Background jobs of the service, started and cancelled with the app: follow admin changes to the camera
list (the admin API belongs to policies and tells the relay nothing: the relay watches the list), and keep
the access log within its retention period.

Both do blocking database work, so it runs in threads; a failed round is logged and tried again later,
never taking the service down."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Protocol

log = logging.getLogger("relay.housekeeping")

RETENTION_RETRY_S = 3600.0  # after a failed retention run (database down), try again within the hour


class Retention(Protocol):
    retention_days: int

    def apply_retention(self) -> int: ...


async def follow_cameras(sync: Callable[[], Awaitable[None]], fingerprint: Callable[[], Hashable],
                         interval_s: float) -> None:
    """Every `interval_s`, read `fingerprint()` (a cheap summary of the camera list) in a thread and call
    `sync()` when it changed: new keepalive cameras connect, disabled or deleted ones stop, changed
    sources or masks restart. The first round always syncs, so a change made while the app started is
    not missed."""
    last: Hashable | None = None
    while True:
        try:
            current = await asyncio.to_thread(fingerprint)
            if current != last:
                await sync()
                last = current
        except Exception as exc:  # the database may be away for a while; keep the cameras as they are
            log.warning("camera list not re-read: %s", type(exc).__name__)
        await asyncio.sleep(interval_s)


async def keep_retention(audit: Retention, every_s: float) -> None:
    """Apply the access log's retention now and then every `every_s` (daily), logging what went."""
    while True:
        delay = every_s
        try:
            removed = await asyncio.to_thread(audit.apply_retention)
        except Exception as exc:
            # The type only: database errors may carry connection details.
            log.error("access-log retention failed (%s); trying again later", type(exc).__name__)
            delay = min(every_s, RETENTION_RETRY_S)
        else:
            log.info("access-log retention: removed %d entries older than %d days", removed,
                     audit.retention_days)
        await asyncio.sleep(delay)


async def cancel(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel background jobs and wait for them to unwind."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
