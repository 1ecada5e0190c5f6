"""Fixtures of the service tests: a real RTSP camera (GStreamer) looping a generated clip with real faces,
the real relay app on uvicorn in a background thread on a free loopback port, over SQLite seeded with the
shipped default policy, and one user per role."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
import uvicorn

from policies import files
from policies.context import PolicyContext, build_context
from policies.defaults import load_defaults
from relay.config import RelaySettings, load_settings
from relay.demo import write_demo_clip
from relay.sample_camera import RtspServer
from relay.samples import Walker
from tests.app.faces import FaceProbe

WIDTH, HEIGHT, FPS = 640, 360, 25
# Two faces big enough for the realtime profile at 640x360, walking across the street.
# They walk side by side and never cross: these tests check what the relay delivers; crossings, entries
# and people who stop are the engine's, measured in benchmarks/privacy_video.py.
WALKERS = (Walker(height=80, y=150, x0=40, speed=4.0), Walker(height=56, y=262, x0=340, speed=4.0))
CAMERA = "cam-test"
PASSWORD = "correct horse battery staple"
USERS = {"viewer": "dashboard_viewer", "operator": "police_operator", "investigator": "police_investigator",
         "investigator2": "police_investigator", "approver": "raw_approver", "admin": "policy_admin",
         "auditor": "auditor"}
# The camera is approved for every default purpose except disaster response (a hard limit to test).
CAMERA_PURPOSES = ["public_safety", "social_order", "crime_prevention", "criminal_investigation",
                   "traffic_management"]
METRICS_TOKEN = "scrape-token-for-tests-0123456789"


def bound_socket() -> socket.socket:
    """A listening-ready TCP socket on a free loopback port, for a server to serve on: the port is never
    released between being found and being used. Its protocol is named (IPPROTO_TCP): asyncio turns Nagle's
    algorithm off only on sockets that say they are TCP, and a server whose replies leave in two writes
    (headers, then body) would otherwise stall 40 ms on a reused connection, waiting on a delayed ACK."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def write_clip(path: Path, seconds: float = 4.0) -> None:
    """The test camera's clip: the demo's (H.264 Annex B, IDR every second, forth then back) at 640x360."""
    write_demo_clip(path, width=WIDTH, height=HEIGHT, fps=FPS, seconds=seconds, walkers=WALKERS)


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "street.h264"
    write_clip(path)
    return path


@pytest.fixture(scope="session")
def faces() -> FaceProbe:
    return FaceProbe(WALKERS)


@pytest.fixture(scope="session")
def rtsp_url(clip: Path) -> Iterator[str]:
    """A real RTSP camera: the package's sample camera (gst-rtsp-server) looping the clip at 25 fps."""
    with RtspServer(clip, path="/street", fps=FPS) as camera:
        yield camera.url


def seed(ctx: PolicyContext, tmp: Path, source_url: str) -> None:
    load_defaults(ctx, actor="tests")
    policy = tmp / "policy.yaml"
    os.environ["CCTV_TEST_PASSWORD"] = PASSWORD
    users = "\n".join(f"  - {{username: {u}, roles: [{r}], password: '${{CCTV_TEST_PASSWORD}}'}}"
                      for u, r in USERS.items())
    policy.write_text(
        "version: 1\ncameras:\n"
        f"  - id: {CAMERA}\n    name: Test street\n    district: Xinyi\n"
        f"    purposes: [{', '.join(CAMERA_PURPOSES)}]\n"
        f"    source_url: '{source_url}'\n"
        "  - id: cam-disabled\n    name: Disabled camera\n    purposes: [public_safety]\n    enabled: false\n"
        f"users:\n{users}\n"
    )
    files.apply(ctx.db, ctx.audit, files.load(policy), actor="tests", hasher=ctx.auth.hash_password)


class ShiftableClock:
    """The policy service's clock, which a test may move forward to make decisions expire now."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset


@dataclass
class Relay:
    base_url: str
    app: Any
    ctx: PolicyContext
    settings: RelaySettings
    clock: ShiftableClock
    loop: asyncio.AbstractEventLoop
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, username: str) -> str:
        if username not in self.tokens:
            body = {"username": username, "password": PASSWORD}
            r = httpx.post(f"{self.base_url}/api/auth/login", json=body)
            r.raise_for_status()
            self.tokens[username] = r.json()["access_token"]
        return self.tokens[username]

    def headers(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(username)}"}

    def on_loop(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Run `fn` (sync, or returning an awaitable) on the app's event loop; its result."""

        async def call() -> Any:
            out = fn()
            return await out if asyncio.iscoroutine(out) else out

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout)

    def audit_mark(self) -> int:
        """The seq of the access log's last entry now. The relay is shared by every service test, so a test
        asserts on the entries after its mark (`audit(after=mark)`), not on what earlier tests wrote."""
        log = self.ctx.audit
        log.refusals.flush()  # counts of earlier refusals land before the mark, not after it
        while True:
            count = log.count()
            if count == 0:
                return 0
            last = log.query(limit=1, offset=count - 1)
            if last and not log.query(limit=1, offset=count):  # nothing written in between
                return int(last[0].seq)

    def audit(self, *, after: int | None = None, **filters: Any) -> list[Any]:
        """Access-log entries matching `filters`, oldest first; with `after`, only those past that seq."""
        self.ctx.audit.refusals.flush()  # repeated refusals still being counted are written first
        entries = self.ctx.audit.query(limit=10_000, **filters)
        return entries if after is None else [e for e in entries if e.seq > after]

    def running_sessions(self) -> set[str]:
        """Ids of the viewer sessions the relay runs now."""
        return set(self.app.state.services.sessions.running)

    def wait_session_closed(self, session_id: str, timeout: float = 10.0) -> None:
        """Until the relay has stopped the session and the policy service has recorded its end."""
        from policies.models import ViewSession

        deadline = time.monotonic() + timeout
        while True:
            with self.ctx.db.session() as s:
                vs = s.get(ViewSession, session_id)
                ended = vs is not None and vs.ended_at is not None
            if ended and session_id not in self.running_sessions():
                return
            assert time.monotonic() < deadline, f"session {session_id} still running"
            time.sleep(0.05)


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # runs in a thread
        pass


@dataclass
class Served:
    """An app served by uvicorn in a thread: its event loop, and `stop()` (returns once it has shut down)."""

    loop: asyncio.AbstractEventLoop
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self, timeout: float = 20.0) -> bool:
        self.server.should_exit = True
        self.thread.join(timeout)
        return not self.thread.is_alive()


@contextmanager
def served(app: Any, sock: socket.socket) -> Iterator[Served]:
    """Serve `app` under uvicorn on `sock` (already bound) in a thread, until the block ends."""
    port = int(sock.getsockname()[1])
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    loops: list[asyncio.AbstractEventLoop] = []

    def serve() -> None:
        loop = asyncio.new_event_loop()
        loops.append(loop)
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.serve(sockets=[sock]))

    thread = threading.Thread(target=serve, name="relay-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "relay did not start"
        time.sleep(0.05)
    running = Served(loops[0], server, thread)
    try:
        yield running
    finally:
        running.stop()
        sock.close()


@pytest.fixture(scope="session")
def relay(tmp_path_factory: pytest.TempPathFactory, rtsp_url: str) -> Iterator[Relay]:
    """The relay app under uvicorn on a socket bound here (a free loopback port), shared by the service
    tests."""
    from relay.app import create_app

    tmp = tmp_path_factory.mktemp("relay")
    sock = bound_socket()
    port = int(sock.getsockname()[1])
    settings = load_settings(database_url=f"sqlite:///{tmp / 'relay.db'}", token_secret="t" * 40,
                             host="127.0.0.1", port=port, linger_s=2.0, metrics_token=METRICS_TOKEN,
                             camera_sync_s=0.5)
    ctx = build_context(settings)
    clock = ShiftableClock()
    ctx.service.clock = clock
    seed(ctx, tmp, rtsp_url)
    app = create_app(settings, context=ctx)
    with served(app, sock) as running:
        yield Relay(f"http://127.0.0.1:{port}", app, ctx, settings, clock, running.loop)
    ctx.db.dispose()


@pytest.fixture(autouse=True)
def _reset_clock(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "relay" in request.fixturenames:
        request.getfixturevalue("relay").clock.offset = dt.timedelta()


def as_bgr(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray(format="bgr24")
