"""The real relay app in this process (FastAPI's TestClient), on its own SQLite database seeded like the
service tests' (default policy, one user per role, the test camera), for tests of how it answers requests:
limits, refusals, the access log. No camera is pulled: a subscription is a bare hub's, so WHEP sessions
negotiate and run (until the peer, which never connects, times out) without video."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiortc import RTCPeerConnection
from fastapi.testclient import TestClient
from sqlalchemy import select

from policies.context import PolicyContext, build_context
from policies.models import User
from relay.app import create_app
from relay.cameras import UnknownCamera
from relay.config import load_settings
from relay.hub import Hub, Subscription
from tests.app.conftest import CAMERA, bound_socket, seed, served

__all__ = ["CAMERA", "Local", "local_app", "recvonly_offer", "served_app"]


@dataclass
class Local:
    client: TestClient
    ctx: PolicyContext
    app: Any

    def token(self, username: str) -> str:
        with self.ctx.db.session() as s:
            user_id = s.scalar(select(User.id).where(User.username == username))
        assert user_id is not None, username
        return str(self.ctx.auth.issue_token(user_id))

    def headers(self, username: str, **more: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(username)}", **more}

    def mark(self) -> int:
        self.ctx.audit.refusals.flush()  # counts of earlier refusals land before the mark, not after it
        rows = self.ctx.audit.query(limit=1, offset=max(self.ctx.audit.count() - 1, 0))
        return int(rows[0].seq) if rows else 0

    def audit(self, *, after: int, **filters: Any) -> list[Any]:
        self.ctx.audit.refusals.flush()  # repeated refusals still being counted are written first
        return [e for e in self.ctx.audit.query(limit=10_000, **filters) if e.seq > after]

    def whep(self, username: str, offer: str, *, camera: str = CAMERA, purpose: str = "public_safety",
             **params: str) -> Any:
        return self.client.post(f"/whep/{camera}", params={"purpose": purpose, **params}, content=offer,
                                headers=self.headers(username, **{"Content-Type": "application/sdp"}))

    @property
    def sessions(self) -> Any:
        return self.app.state.services.sessions


def _built(tmp: Path, **settings: Any) -> tuple[PolicyContext, Any]:
    values = {"database_url": f"sqlite:///{tmp / 'relay.db'}", "token_secret": "t" * 40, **settings}
    config = load_settings(**values)
    ctx = build_context(config)
    seed(ctx, tmp, "rtsp://127.0.0.1:9/never-pulled")
    return ctx, create_app(config, context=ctx)


def _no_video(app: Any, ctx: PolicyContext) -> None:
    """Subscriptions to bare hubs, and no camera pipeline ever started (not even for a keepalive camera
    an admin adds), once the app's lifespan has installed its services."""

    async def subscribe(camera_id: str, *, raw: bool = False) -> Subscription:
        runtime = await asyncio.to_thread(ctx.service.camera_runtime, camera_id)
        if runtime is None or not runtime.enabled:
            raise UnknownCamera(camera_id)
        return Hub(camera_id, "raw" if raw else "anonymized", "h264", lambda **_: None).subscribe()

    async def no_pipeline(spec: Any) -> Any:
        raise RuntimeError("these tests pull no camera")

    app.state.services.cameras.subscribe = subscribe
    app.state.services.cameras._ensure = no_pipeline


@contextmanager
def local_app(tmp: Path, **settings: Any) -> Iterator[Local]:
    """The app behind a TestClient (its lifespan runs for the duration)."""
    ctx, app = _built(tmp, **settings)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            _no_video(app, ctx)
            yield Local(client, ctx, app)
    finally:
        ctx.db.dispose()


@contextmanager
def served_app(tmp: Path, **settings: Any) -> Iterator[tuple[str, Local]]:
    """The app under uvicorn on a free loopback port, for clients that speak real HTTP: (base URL, the
    app as `local_app` gives it, whose client is for looking, not for the requests under test)."""
    ctx, app = _built(tmp, **settings)
    sock = bound_socket()
    try:
        with served(app, sock):
            _no_video(app, ctx)
            yield f"http://127.0.0.1:{sock.getsockname()[1]}", Local(TestClient(app), ctx, app)
    finally:
        ctx.db.dispose()


def recvonly_offer(videos: int = 1) -> str:
    """A browser-like WHEP offer (aiortc's): `videos` recvonly video sections."""

    async def make() -> str:
        pc = RTCPeerConnection()
        try:
            for _ in range(videos):
                pc.addTransceiver("video", direction="recvonly")
            await pc.setLocalDescription(await pc.createOffer())
            return str(pc.localDescription.sdp)
        finally:
            await pc.close()

    return asyncio.run(make())
