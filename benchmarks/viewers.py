"""Cost of viewers: the relay's CPU (process CPU time per wall second) and the frame rate each viewer gets,
for 1, 2, 5, 10, 20, 50 viewers of one 720p25 camera, anonymized.

Two relays side by side, both pulling the same RTSP camera through the same engine (decode once,
anonymize once):
- shared encode: `cctv-relay serve` as deployed: one H.264 encode per camera, the same packets to every
  viewer;
- per-viewer encode: the usual aiortc relay, handing decoded frames to each viewer's own encoder (a small
  server in this file, `--per-viewer-server`).
Viewers are aiortc peers in this process that count received frames without decoding them, so the
relay's CPU is what is measured (it runs in its own process)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import httpx
from fastapi import Request, Response  # module level: the baseline server's routes resolve these names

from benchmarks.join import (
    REPO,
    RelayUnderTest,
    close_viewer,
    count_frames_without_decoding,
    open_viewer,
    rtsp_camera,
    sample_clip,
)

# (name, relay, camera size, viewer counts). The viewers run in this process on the same two cores: 50
# viewers at 720p (~12,000 RTP packets/s to receive in Python) starve them before the relay, so many viewers
# are also measured on a 360p camera (a quarter of the packets).
RUNS = (("shared", "relay", (1280, 720), (1, 2, 5, 10, 20)),
        ("per_viewer", "baseline", (1280, 720), (1, 2, 5, 10)),
        ("shared_360p", "relay", (640, 360), (1, 5, 10, 20, 50)))
HEALTHY_FPS = 20.0  # per-viewer cost is fitted over steps where viewers still got >= this
WINDOW_S = 6.0


class PerViewerRelay(RelayUnderTest):
    """The per-viewer-encode baseline server in its own process (same camera, same engine)."""

    def __enter__(self) -> PerViewerRelay:
        def start(port: int) -> None:
            cmd = [sys.executable, "-m", "benchmarks.viewers", "--per-viewer-server", "--port", str(port),
                   "--source", self.source_url]
            self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        self.launch(start, lambda: "per-viewer relay did not start")
        self.token = "-"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop_process()


async def measure(relay: RelayUnderTest, counts: tuple[int, ...],
                  min_fps: float = 3.0) -> list[dict[str, Any]]:
    rows = []
    gate = asyncio.Semaphore(5)  # join a few at a time, as dashboards opening do
    async with httpx.AsyncClient(base_url=relay.base_url, timeout=60) as client:
        # One viewer to start the camera; it stays for every step so the camera never reconnects.
        first = await open_viewer(relay, client)
        await asyncio.wait_for(first.got_first.wait(), 60)
        await asyncio.sleep(3)
        viewers = [first]
        for n in counts:
            async def join() -> Any:
                async with gate:
                    return await open_viewer(relay, client)

            viewers += await asyncio.gather(*(join() for _ in range(n - len(viewers))))
            await asyncio.wait_for(asyncio.gather(*(v.got_first.wait() for v in viewers)), 60)
            await asyncio.sleep(2.0)
            cpu0, own0, t0 = relay.cpu_seconds(), _own_cpu(), time.perf_counter()
            f0 = [v.frames for v in viewers]
            await asyncio.sleep(WINDOW_S)
            cpu1, own1, t1 = relay.cpu_seconds(), _own_cpu(), time.perf_counter()
            fps = [(v.frames - a) / (t1 - t0) for v, a in zip(viewers, f0, strict=True)]
            row = {"viewers": n, "cpu_cores": (cpu1 - cpu0) / (t1 - t0), "fps_median": statistics.median(fps),
                   "fps_min": min(fps), "viewers_process_cpu_cores": (own1 - own0) / (t1 - t0)}
            rows.append(row)
            print(f"  {n:3d} viewers: relay CPU {row['cpu_cores'] * 100:5.1f} % of a core, "
                  f"fps median {row['fps_median']:.1f} min {row['fps_min']:.1f} "
                  f"(viewers' own CPU {row['viewers_process_cpu_cores'] * 100:.0f} %)", flush=True)
            if row["fps_median"] < min_fps:
                break  # saturated: more viewers only measure the collapse
        await asyncio.gather(*(close_viewer(relay, client, v) for v in viewers), return_exceptions=True)
    return rows


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def per_extra_viewer(rows: list[dict[str, Any]]) -> float | None:
    """Least-squares slope of CPU (cores) over viewer count, over the steps where every viewer still got
    its frames (past that, CPU flattens because less is delivered): the cost of one more viewer."""
    rows = [r for r in rows if r["fps_min"] >= HEALTHY_FPS]
    if len(rows) < 2:
        return None
    xs = [r["viewers"] for r in rows]
    ys = [r["cpu_cores"] for r in rows]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def main() -> int:
    from benchmarks.common import machine_info, write_results

    count_frames_without_decoding()
    load_before = os.getloadavg()
    results: dict[str, list[dict[str, Any]]] = {}
    for name, kind, (width, height), counts in RUNS:
        clip = sample_clip(width, height)
        how = "cctv-relay serve (one encode)" if kind == "relay" else "aiortc encodes per viewer"
        print(f"{name}: {how}, {width}x{height}", flush=True)
        with rtsp_camera(clip) as url:
            server = RelayUnderTest(url, linger_s=30) if kind == "relay" else PerViewerRelay(url)
            with server as relay:
                results[name] = asyncio.run(measure(relay, counts))
    slopes = {k: per_extra_viewer(v) for k, v in results.items()}
    result = {
        "what": "relay process CPU (cores = CPU seconds per second) and per-viewer delivered fps, 25 fps "
                "RTSP camera (720p; 360p for many viewers), anonymized, viewers = aiortc peers counting "
                "frames without decoding",
        "runs": {name: {"relay": kind, "size": f"{w}x{h}"} for name, kind, (w, h), _ in RUNS},
        "target_per_extra_viewer_pct_core": 2.0,
        "per_extra_viewer_pct_core": {k: (None if s is None else s * 100) for k, s in slopes.items()},
        "rows": results, "window_s": WINDOW_S, "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(), "machine": machine_info(),
        "note": "viewers run in the measuring process on the same 2 cores as the relay, beside other work: "
                "noisy; the per-viewer run stops once viewers get under 3 fps",
    }
    write_results("viewers", result, _plot(results))
    for k, s in slopes.items():
        print(f"{k}: {'n/a' if s is None else f'{s * 100:.2f}'} % of a core per extra viewer")
    return 0


def _plot(results: dict[str, list[dict[str, Any]]]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    labels = {"shared": "shared encode, 720p", "per_viewer": "per-viewer encode, 720p",
              "shared_360p": "shared encode, 360p"}
    for key, rows in results.items():
        xs = [r["viewers"] for r in rows]
        ax1.plot(xs, [r["cpu_cores"] * 100 for r in rows], marker="o", label=labels[key])
        ax2.plot(xs, [r["fps_median"] for r in rows], marker="o", label=labels[key])
    ax1.set_xlabel("viewers")
    ax1.set_ylabel("relay CPU (% of one core)")
    ax1.set_xscale("log")
    ax2.set_xlabel("viewers")
    ax2.set_ylabel("fps per viewer (median)")
    ax2.set_xscale("log")
    ax2.axhline(25, color="grey", linestyle=":", label="camera 25 fps")
    for ax in (ax1, ax2):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle("One camera, many viewers")
    fig.tight_layout()
    return fig


# -- the per-viewer-encode baseline server ---------------------------------------------------------


def per_viewer_server(port: int, source_url: str) -> None:
    """Decode and anonymize once (the same engine as the relay), then give every viewer its own aiortc
    track of decoded frames: aiortc encodes each viewer's stream separately."""
    import av
    import uvicorn
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamTrack
    from fastapi import FastAPI

    from blur import Anonymizer
    from relay.sources import Source

    tracks: set[Any] = set()
    peers: dict[str, Any] = {}
    clock = fractions.Fraction(1, 90000)
    state: dict[str, Any] = {}

    class FrameTrack(MediaStreamTrack):
        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self.queue: asyncio.Queue[av.VideoFrame] = asyncio.Queue(maxsize=2)

        async def recv(self) -> av.VideoFrame:
            return await self.queue.get()

    def broadcast(frame: av.VideoFrame) -> None:
        for track in list(tracks):
            if track.queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    track.queue.get_nowait()  # drop the oldest: never grow latency
            track.queue.put_nowait(frame)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> Any:
        loop = asyncio.get_running_loop()
        anonymizer = Anonymizer(profile="realtime", mode="pixelate", live=True)
        t0 = time.monotonic()

        def on_frame(frame: av.VideoFrame, arrival: float) -> None:
            out, _ = anonymizer.process(frame)
            out.pts, out.time_base = int((arrival - t0) * 90000), clock
            loop.call_soon_threadsafe(broadcast, out)

        source = Source(source_url, on_frame, label="baseline")
        source.start()
        state["source"] = source
        yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/whep/{camera_id}", status_code=201)
    async def offer(camera_id: str, request: Request) -> Response:
        pc = RTCPeerConnection()
        track = FrameTrack()
        tracks.add(track)
        pc.addTrack(track)
        sdp = (await request.body()).decode()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        sid = str(len(peers) + 1)
        peers[sid] = (pc, track)
        return Response(pc.localDescription.sdp, status_code=201, media_type="application/sdp",
                        headers={"Location": f"/whep/{camera_id}/sessions/{sid}"})

    @app.delete("/whep/{camera_id}/sessions/{sid}")
    async def end(camera_id: str, sid: str) -> Response:
        pc, track = peers.pop(sid, (None, None))
        if pc is not None:
            tracks.discard(track)
            await pc.close()
        return Response(status_code=200)

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-viewer-server", action="store_true")
    ap.add_argument("--port", type=int)
    ap.add_argument("--source")
    cli = ap.parse_args()
    if cli.per_viewer_server:
        per_viewer_server(cli.port, cli.source)
        sys.exit(0)
    sys.exit(main())
