"""Join time: from a viewer's WHEP offer to its first decoded frame, p50/p95 over repeated joins.

The relay runs as it does in production (`cctv-relay serve`, its own process) in front of a real RTSP camera
(GStreamer looping a 720p25 clip with faces); viewers are aiortc peers in this process. Warm joins: the
camera is already being watched (another viewer keeps it up), the common case on a dashboard. Cold joins:
nobody watches, so the join also connects the camera and loads the detector.

This module also holds the harness the other relay benchmarks use (RelayUnderTest, open_viewer)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
CAMERA = "bench-cam"
USER, PASSWORD = "bench", "bench-password-0123"
CACHE = Path(tempfile.gettempdir()) / "cctv-relay-bench"


def free_port() -> int:
    """A free loopback port, for a server in another process that cannot be handed a bound socket: someone
    else may take it before that server binds it, so whoever uses it retries on a bind failure
    (`RelayUnderTest.launch`)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))
    return float(ordered[min(rank, len(ordered)) - 1])


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95),
            "mean": statistics.fmean(values), "min": min(values), "max": max(values)}


def sample_clip(width: int = 1280, height: int = 720, seconds: float = 6.0) -> Path:
    """The demo's street clip (faces walking; one slice per frame), cached between runs."""
    from relay.demo import write_demo_clip

    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"street-{width}x{height}-{seconds:g}s.h264"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        write_demo_clip(tmp, width=width, height=height, seconds=seconds)
        tmp.replace(path)
    return path


@contextlib.contextmanager
def rtsp_camera(clip: Path, fps: int = 25) -> Iterator[str]:
    """The relay's sample camera (gst-rtsp-server on a port it picks) looping `clip`; yields its URL."""
    from relay.sample_camera import RtspServer

    with RtspServer(clip, path="/cam", fps=fps) as camera:
        yield camera.url


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class RelayUnderTest:
    """`cctv-relay serve` in its own process, on a fresh SQLite database holding the default policy, one
    camera (`source_url`) and one police operator."""

    source_url: str
    linger_s: float = 10.0
    extra: dict[str, Any] = field(default_factory=dict)
    base_url: str = ""
    token: str = ""
    proc: subprocess.Popen[bytes] | None = None
    repo: Path = REPO  # the checkout whose relay runs (another revision's, to compare under the same load)

    def __enter__(self) -> RelayUnderTest:
        import yaml

        from policies import files
        from policies.context import build_context
        from policies.defaults import load_defaults
        from relay.config import load_settings

        self._tmp = tempfile.TemporaryDirectory(prefix="cctv-bench-")
        tmp = Path(self._tmp.name)
        config = {"database_url": f"sqlite:///{tmp / 'relay.db'}", "token_secret": "b" * 48,
                  "host": "127.0.0.1", "linger_s": self.linger_s, "token_ttl_s": 3600, **self.extra}
        (tmp / "relay.yaml").write_text(yaml.safe_dump(config))  # the port comes with each start
        ctx = build_context(load_settings(tmp / "relay.yaml"))
        load_defaults(ctx, actor="bench")
        os.environ["CCTV_BENCH_PASSWORD"] = PASSWORD
        policy = {"version": 1,
                  "cameras": [{"id": CAMERA, "name": "Bench camera", "purposes": ["public_safety"],
                               "source_url": self.source_url}],
                  "users": [{"username": USER, "roles": ["police_operator"],
                             "password": "${CCTV_BENCH_PASSWORD}"}]}
        (tmp / "policy.yaml").write_text(yaml.safe_dump(policy))
        files.apply(ctx.db, ctx.audit, files.load(tmp / "policy.yaml"), actor="bench",
                    hasher=ctx.auth.hash_password)
        ctx.db.dispose()

        def start(port: int) -> None:
            (tmp / "relay.yaml").write_text(yaml.safe_dump({**config, "port": port}))
            cmd = [sys.executable, "-m", "relay.cli", "serve", "--config", str(tmp / "relay.yaml")]
            with open(tmp / "relay.log", "wb") as log:
                self.proc = subprocess.Popen(cmd, cwd=self.repo, stdout=subprocess.DEVNULL, stderr=log)

        self.launch(start, lambda: f"relay did not start: {(tmp / 'relay.log').read_text()[-2000:]}")
        r = httpx.post(self.base_url + "/api/auth/login", json={"username": USER, "password": PASSWORD})
        r.raise_for_status()
        self.token = r.json()["access_token"]
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_process()
        self._tmp.cleanup()

    def launch(self, start: Callable[[int], None], failure: Callable[[], str], attempts: int = 3) -> None:
        """`start(port)` the server process on a free port and wait until it answers; on a new port again
        if it exited at once (another process took the port between its finding and binding)."""
        for attempt in range(attempts):
            port = free_port()
            start(port)
            self.base_url = f"http://127.0.0.1:{port}"
            try:
                self._wait_ready(failure)
                return
            except RuntimeError:
                assert self.proc is not None
                if self.proc.poll() is None or attempt == attempts - 1:
                    self._stop_process()
                    raise

    def _wait_ready(self, failure: Callable[[], str]) -> None:
        """Poll /healthz until the server answers; `failure()` says why when it exits or takes 60 s."""
        assert self.proc is not None
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base_url + "/healthz", timeout=1).status_code == 200:
                    return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(failure())
            time.sleep(0.2)

    def _stop_process(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        return cpu_seconds(self.proc.pid)

    def health(self) -> dict[str, Any]:
        r = httpx.get(f"{self.base_url}/api/live/cameras/{CAMERA}/health",
                      headers={"Authorization": f"Bearer {self.token}"})
        return dict(r.json())


# -- viewers -----------------------------------------------------------------------------------------

_counting_installed = False


def count_frames_without_decoding() -> None:
    """Make this process's aiortc receivers hand each received (encoded) frame to the track as is,
    without decoding: many viewers cost this process little, so the relay's cost is what is measured."""
    global _counting_installed
    if _counting_installed:
        return
    import aiortc.rtcrtpreceiver as receiver

    def counting_worker(loop: asyncio.AbstractEventLoop, input_q: Any, output_q: asyncio.Queue,
                        decode_error: Any) -> None:
        while True:
            task = input_q.get()
            if task is None:
                asyncio.run_coroutine_threadsafe(output_q.put(None), loop)
                return
            _codec, encoded = task
            asyncio.run_coroutine_threadsafe(output_q.put(encoded), loop)

    receiver.decoder_worker = counting_worker
    _counting_installed = True


@dataclass
class Viewer:
    pc: Any
    location: str
    t_offer: float
    t_first: float | None = None
    frames: int = 0
    task: asyncio.Task[None] | None = None
    got_first: asyncio.Event = field(default_factory=asyncio.Event)


async def open_viewer(relay: RelayUnderTest, client: httpx.AsyncClient, camera: str = CAMERA) -> Viewer:
    """A recvonly aiortc peer joined over WHEP; counts frames as they arrive (decoded or not)."""
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamError

    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    viewer = Viewer(pc, "", time.perf_counter())

    async def consume(track: Any) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                await track.recv()
                if viewer.t_first is None:
                    viewer.t_first = time.perf_counter()
                    viewer.got_first.set()
                viewer.frames += 1

    @pc.on("track")
    def on_track(track: Any) -> None:
        viewer.task = asyncio.ensure_future(consume(track))

    viewer.t_offer = time.perf_counter()
    r = await client.post(f"/whep/{camera}", params={"purpose": "public_safety"},
                          headers={"Content-Type": "application/sdp",
                                   "Authorization": f"Bearer {relay.token}"},
                          content=pc.localDescription.sdp)
    if r.status_code != 201:
        await pc.close()
        raise RuntimeError(f"WHEP refused: {r.status_code} {r.text}")
    viewer.location = r.headers["location"]
    await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
    return viewer


async def close_viewer(relay: RelayUnderTest, client: httpx.AsyncClient, viewer: Viewer) -> None:
    with contextlib.suppress(httpx.HTTPError):
        await client.delete(viewer.location, headers={"Authorization": f"Bearer {relay.token}"})
    if viewer.task is not None:
        viewer.task.cancel()
    await viewer.pc.close()


# -- the join benchmark ------------------------------------------------------------------------------


async def measure_joins(relay: RelayUnderTest, warm: int, cold: int,
                        linger_s: float) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"warm": [], "cold": []}
    async with httpx.AsyncClient(base_url=relay.base_url, timeout=60) as client:
        for _ in range(cold):
            await asyncio.sleep(linger_s + 1.5)  # the camera has been let go: nobody watched for linger_s
            v = await open_viewer(relay, client)
            await asyncio.wait_for(v.got_first.wait(), 60)
            out["cold"].append((v.t_first - v.t_offer) * 1000)  # type: ignore[operator]
            await close_viewer(relay, client, v)
        keeper = await open_viewer(relay, client)  # keeps the camera connected during warm joins
        await asyncio.wait_for(keeper.got_first.wait(), 60)
        for _ in range(warm):
            v = await open_viewer(relay, client)
            await asyncio.wait_for(v.got_first.wait(), 30)
            out["warm"].append((v.t_first - v.t_offer) * 1000)  # type: ignore[operator]
            await close_viewer(relay, client, v)
            await asyncio.sleep(0.3)
        await close_viewer(relay, client, keeper)
    return out


def main() -> int:
    from benchmarks.common import machine_info, write_results

    warm, cold, linger = 25, 5, 1.0
    clip = sample_clip()
    load_before = os.getloadavg()
    with rtsp_camera(clip) as url, RelayUnderTest(url, linger_s=linger) as relay:
        joins = asyncio.run(measure_joins(relay, warm, cold, linger))
    result = {
        "what": "WHEP offer POSTed -> first decoded frame at an aiortc viewer; 720p25 RTSP camera",
        "method": "cctv-relay serve in its own process; warm: camera already watched by another viewer; "
                  "cold: nobody watching (connects the camera, loads the detector)",
        "target_p95_ms": 400,
        "warm_ms": summary(joins["warm"]), "cold_ms": summary(joins["cold"]),
        "samples_ms": joins, "load_avg_before": load_before, "load_avg_after": os.getloadavg(),
        "machine": machine_info(),
        "note": "shared 2-core machine with other work running: timings are noisy",
    }
    fig = _plot(joins)
    write_results("join", result, fig)
    print(f"join warm p50 {result['warm_ms']['p50']:.0f} ms, p95 {result['warm_ms']['p95']:.0f} ms; "
          f"cold p50 {result['cold_ms']['p50']:.0f} ms, p95 {result['cold_ms']['p95']:.0f} ms")
    return 0


def _plot(joins: dict[str, list[float]]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    ax.boxplot([joins["warm"], joins["cold"]], tick_labels=["warm (camera watched)", "cold (camera idle)"],
               orientation="horizontal")
    ax.axvline(400, color="tab:red", linestyle="--", label="target p95 400 ms")
    ax.set_xlabel("offer -> first frame (ms)")
    ax.set_title("WHEP join time")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    sys.exit(main())
