"""Serving with a drain: the first SIGTERM drains this replica (the app's `app.state.drain`, set by its
lifespan) while it still answers HTTP, and only then lets uvicorn shut down. SIGINT, or a second signal,
stops at once as before. Kubernetes' grace period (30 s by default) bounds the whole."""

from __future__ import annotations

import asyncio
import logging
import signal
from types import FrameType
from typing import Any

import uvicorn

log = logging.getLogger("relay.cluster")


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: Any) -> None:
        super().__init__(config)
        self._app = app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining = False
        self._task: asyncio.Task[None] | None = None

    async def serve(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        drain = getattr(self._app.state, "drain", None)
        if sig != signal.SIGTERM or self._draining or drain is None or self._loop is None:
            super().handle_exit(sig, frame)
            return
        self._draining = True
        log.info("SIGTERM: draining before shutting down")

        def start() -> None:
            self._task = asyncio.get_running_loop().create_task(self._drain_then_exit(drain, sig, frame))

        self._loop.call_soon_threadsafe(start)  # wakes the loop; the handler itself runs between bytecodes

    async def _drain_then_exit(self, drain: Any, sig: int, frame: FrameType | None) -> None:
        try:
            await drain()
        except Exception:
            log.exception("drain failed; shutting down anyway")
        super().handle_exit(sig, frame)


def serve(app: Any, *, host: str, port: int, proxy_headers: bool) -> None:
    """`uvicorn.run(app, ...)`, draining on SIGTERM."""
    config = uvicorn.Config(app, host=host, port=port, log_level="info", proxy_headers=proxy_headers)
    DrainingServer(config, app).run()
