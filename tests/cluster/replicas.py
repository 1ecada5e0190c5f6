"""Relay replicas as separate processes (`cctv-relay serve`, one port and replica id each, one PostgreSQL
database), a test-side ingress (`/r/{replica}/...` to that replica, anything else to the replica asked),
and aiortc viewers that join through it following 307s as a browser's fetch does."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from aiortc import RTCSessionDescription

from tests.app.conftest import PASSWORD
from tests.app.whep_client import Viewer, offering_viewer

REPO = Path(__file__).resolve().parents[2]
TOKEN_SECRET = "cluster-token-secret-0123456789abcdef"
SIGNING_KEY = "cluster-audit-signing-key-0123456789"


def free_port() -> int:
    # A replica is another process that binds its own port: found free here, it may (rarely) be taken
    # before the replica binds it; start() then fails loudly, naming the port.
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Replica:
    id: str
    port: int
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    repo: Path = REPO  # the checkout whose relay runs (a benchmark may run another revision's)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        out = open(self.log, "ab")  # noqa: SIM115  (the process keeps it)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "relay.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env={**self.env, "PYTHONPATH": str(self.repo)}, stdout=out, stderr=subprocess.STDOUT,
            cwd=self.repo)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"replica {self.id} exited: {self.log.read_text()[-3000:]}"
            try:
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"replica {self.id} did not start on port {self.port}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)


@dataclass
class Cluster:
    replicas: dict[str, Replica]
    database_url: str
    tokens: dict[str, str] = field(default_factory=dict)

    def base_for(self, path: str, via: str) -> str:
        """The ingress: /r/{replica}/... goes to that replica, anything else to `via`."""
        if path.startswith("/r/"):
            return self.replicas[path.split("/")[2]].base
        return self.replicas[via].base

    def token(self, username: str = "operator") -> str:
        if username not in self.tokens:
            for r in self.replicas.values():
                if r.alive():
                    resp = httpx.post(f"{r.base}/api/auth/login",
                                      json={"username": username, "password": PASSWORD}, timeout=20)
                    resp.raise_for_status()
                    self.tokens[username] = resp.json()["access_token"]
                    break
        return self.tokens[username]

    def alive(self) -> list[str]:
        return [rid for rid, r in self.replicas.items() if r.alive()]

    async def post(self, camera_id: str, via: str, sdp: str, *, follow: bool = True,
                   purpose: str = "public_safety") -> tuple[list[httpx.Response], str]:
        """POST an offer to `via`'s /whep/{camera}; follow 307s (method and body kept). All responses."""
        path = f"/whep/{camera_id}?purpose={purpose}"
        headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {self.token()}"}
        responses: list[httpx.Response] = []
        async with httpx.AsyncClient(timeout=30) as client:
            for _ in range(5):
                r = await client.post(self.base_for(path, via) + path, headers=headers, content=sdp)
                responses.append(r)
                if r.status_code != 307 or not follow:
                    break
                path = r.headers["location"]
        return responses, path

    async def join(self, camera_id: str, via: str, *,
                   follow: bool = True) -> tuple[Viewer, list[httpx.Response]]:
        """A viewer joining `camera_id` through `via` (and where it is sent)."""
        pc, sdp, viewer = await offering_viewer()
        responses, _ = await self.post(camera_id, via, sdp, follow=follow)
        last = responses[-1]
        viewer.status, viewer.headers, viewer.text = last.status_code, last.headers, last.text
        if last.status_code != 201:
            await pc.close()
            return viewer, responses
        viewer.pc = pc
        await pc.setRemoteDescription(RTCSessionDescription(sdp=last.text, type="answer"))
        return viewer, responses

    async def rejoin(self, camera_id: str, deadline_s: float) -> tuple[Viewer, int]:
        """What the dashboard does when its picture stops: POST again through any live replica, waiting
        Retry-After on 503, until a session starts. The viewer and the number of POSTs it took."""
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        posts = 0
        while True:
            via = self.alive()[posts % len(self.alive())]
            try:
                viewer, responses = await self.join(camera_id, via)
            except httpx.ConnectError:  # sent to a replica that has just died (an ingress answers 502)
                posts += 1
                assert loop.time() < end
                await asyncio.sleep(0.5)
                continue
            posts += len(responses)
            if viewer.status == 201:
                return viewer, posts
            assert viewer.status == 503 and loop.time() < end, (viewer.status, viewer.text)
            await asyncio.sleep(min(float(viewer.headers.get("retry-after", "1")), 1.0))

    def env(self, replica_id: str, **extra: str) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(REPO), "CCTV_DATABASE_URL": self.database_url,
                "CCTV_TOKEN_SECRET": TOKEN_SECRET, "CCTV_AUDIT_SIGNING_KEY": SIGNING_KEY,
                "CCTV_REPLICA_ID": replica_id, "CCTV_LINGER_S": "2", "CCTV_REPLICA_STALE_S": "6",
                **extra}


async def first_frame(viewer: Viewer, timeout: float) -> bool:
    return len(await viewer.frames(1, timeout=timeout)) == 1


async def stalled(viewer: Viewer, silence_s: float = 1.0, timeout: float = 30.0) -> float:
    """Wait until no frame has come for `silence_s`; when the last one came (loop time)."""
    loop = asyncio.get_running_loop()
    last = loop.time()
    end = last + timeout
    while loop.time() < end:
        try:
            await asyncio.wait_for(viewer.track.recv(), silence_s)
            last = loop.time()
        except Exception:
            return last
    raise AssertionError("the picture never stopped")
