"""Join time in a browser: headless Chromium joins a watched camera over WHEP, as the dashboard does, and
the time is split where it goes.

Per join (all in the page, `performance.now()`): POST -> answer (the WHEP request, following a 307 when
there is one), answer -> ICE connected, ICE -> DTLS connected, connected -> first frame presented
(`requestVideoFrameCallback`), and the total POST -> first frame. The relay's own `Server-Timing` header
splits its part of POST -> answer (place, authorize, subscribe, session, negotiate).

Warm joins (the camera is already watched: a first viewer in the page keeps it up), one after another with a
pause, closed (DELETE) after each. Three ways in:

- `single`: one `cctv-relay serve` on SQLite, no cluster (benchmarks.join's RelayUnderTest);
- `direct`: two replicas on a private PostgreSQL behind an ingress (a small reverse proxy here, as in
  deploy/), the POST sent to the camera's owner;
- `redirect`: the same, the POST sent to the other replica, which answers 307 to the owner's
  `/r/{replica}/whep/...`; the browser's fetch follows it with the offer.

The camera is the relay's sample RTSP camera (GStreamer) looping a 720p25 street clip, anonymized."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import Postgres, machine_info, write_results
from benchmarks.join import CAMERA as SINGLE_CAMERA
from benchmarks.join import RelayUnderTest, rtsp_camera, sample_clip, summary

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns", "--autoplay-policy=no-user-gesture-required",
]
TARGET_P95_MS = 250
PHASES = ("post_answer", "answer_ice", "ice_connected", "connected_frame", "total")

# One join, the dashboard's way (app.js openTile): offer made, POSTed before gathering, answer applied.
JOIN = """async ({path, token, via, keep}) => {
  const t = {};
  const pc = new RTCPeerConnection();
  pc.addTransceiver("video", { direction: "recvonly" });
  const video = document.createElement("video");
  video.muted = true; video.autoplay = true; video.playsInline = true;
  document.body.append(video);
  const first = new Promise((resolve) => {
    pc.addEventListener("track", (event) => {
      video.srcObject = new MediaStream([event.track]);
      video.play().catch(() => {});
      video.requestVideoFrameCallback(() => { t.frame = performance.now(); resolve(); });
    });
  });
  pc.addEventListener("iceconnectionstatechange", () => {
    if (["connected", "completed"].includes(pc.iceConnectionState) && !t.ice) t.ice = performance.now();
  });
  pc.addEventListener("connectionstatechange", () => {
    if (pc.connectionState === "connected" && !t.connected) t.connected = performance.now();
  });
  const offer = await pc.createOffer();
  t.post = performance.now();
  const response = await fetch(path, { method: "POST", body: offer.sdp,
    headers: { "Content-Type": "application/sdp", "Authorization": "Bearer " + token, "X-Bench-Via": via } });
  const answer = await response.text();
  t.answer = performance.now();
  if (response.status !== 201) { pc.close(); return { status: response.status, detail: answer }; }
  await pc.setLocalDescription(offer);
  await pc.setRemoteDescription({ type: "answer", sdp: answer });
  const timeout = new Promise((resolve) => setTimeout(resolve, 15000));
  await Promise.race([first, timeout]);
  const location = response.headers.get("Location");
  const out = { status: response.status, redirected: response.redirected, location,
                server_timing: response.headers.get("Server-Timing") || "",
                post_answer: t.answer - t.post, answer_ice: (t.ice || NaN) - t.answer,
                ice_connected: (t.connected || NaN) - (t.ice || NaN),
                connected_frame: (t.frame || NaN) - (t.connected || NaN), total: (t.frame || NaN) - t.post };
  if (keep) { (window.__kept = window.__kept || []).push(pc); return out; }
  pc.close();
  video.remove();
  await fetch(location, { method: "DELETE", headers: { "Authorization": "Bearer " + token } });
  return out;
}"""


# -- the ingress ----------------------------------------------------------------------------------------


class Ingress:
    """What deploy/'s ingress does for the browser: `/r/{replica}/...` to that replica, anything else to a
    replica (here the one named by the benchmark's `X-Bench-Via` header, so it can pick owner or not).
    Redirects are passed back to the browser, not followed. A uvicorn server on a thread of its own."""

    def __init__(self, replicas: dict[str, str]) -> None:
        self.replicas = replicas
        self.port = 0

    def _app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import HTMLResponse, Response
        from starlette.routing import Route

        client = httpx.AsyncClient(timeout=30, follow_redirects=False)
        hop = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding"}

        async def page(request: Request) -> Response:
            return HTMLResponse("<!doctype html><title>join</title><body></body>")

        async def forward(request: Request) -> Response:
            path = request.url.path
            if path.startswith("/r/"):
                target = self.replicas[path.split("/")[2]]
            else:
                target = self.replicas[request.headers.get("x-bench-via") or next(iter(self.replicas))]
            headers = {k: v for k, v in request.headers.items() if k.lower() not in hop}
            r = await client.request(request.method, target + path, params=request.url.query or None,
                                     headers=headers, content=await request.body())
            return Response(r.content, status_code=r.status_code,
                            headers={k: v for k, v in r.headers.items() if k.lower() not in hop})

        methods = ["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS"]
        return Starlette(routes=[Route("/bench", page), Route("/{path:path}", forward, methods=methods)])

    @contextlib.contextmanager
    def serving(self) -> Iterator[str]:
        import socket

        import uvicorn

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(self._app(), log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{self.port}"
        finally:
            server.should_exit = True
            thread.join(10)
            sock.close()


# -- the runs -------------------------------------------------------------------------------------------


async def browser_joins(page_url: str, path: str, token: str, via_keep: str, via_joins: str, joins: int,
                        pause_s: float) -> list[dict[str, Any]]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        with tempfile.TemporaryDirectory(prefix="cctv-join-browser-") as profile:
            browser = await pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM,
                                                                  headless=True, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()
                await page.goto(page_url)
                keeper = await page.evaluate(JOIN, {"path": path, "token": token, "via": via_keep,
                                                    "keep": True})
                if keeper.get("status") != 201:
                    raise RuntimeError(f"keeper refused: {keeper}")
                await asyncio.sleep(2.0)
                out = []
                for _ in range(joins):
                    r = await page.evaluate(JOIN, {"path": path, "token": token, "via": via_joins,
                                                   "keep": False})
                    if r.get("status") != 201:
                        raise RuntimeError(f"join refused: {r}")
                    out.append(r)
                    await asyncio.sleep(pause_s)
                return out
            finally:
                await browser.close()


def run_single(url: str, joins: int, pause_s: float) -> list[dict[str, Any]]:
    with RelayUnderTest(url, linger_s=30) as relay:
        path = f"/whep/{SINGLE_CAMERA}?purpose=public_safety"
        page = relay.base_url + "/healthz"
        return asyncio.run(browser_joins(page, path, relay.token, "", "", joins, pause_s))


def run_cluster(url: str, joins: int, pause_s: float) -> dict[str, list[dict[str, Any]]]:
    from policies.context import build_context
    from policies.settings import PolicySettings
    from relay.cluster.store import LeaseStore
    from tests.app.conftest import CAMERA, seed
    from tests.cluster.replicas import SIGNING_KEY, TOKEN_SECRET, Cluster, Replica, free_port

    tmp = Path(tempfile.mkdtemp(prefix="cctv-bench-join-browser-"))
    out: dict[str, list[dict[str, Any]]] = {}
    with Postgres() as pg:
        db = pg.create("relay")
        ctx = build_context(PolicySettings(database_url=db, token_secret=TOKEN_SECRET,
                                           audit_signing_key=SIGNING_KEY))
        seed(ctx, tmp, url)
        LeaseStore(ctx.db.engine, "bench").create_tables()
        ctx.db.dispose()
        c = Cluster({}, db)
        for rid in ("relay-0", "relay-1"):
            c.replicas[rid] = Replica(rid, free_port(), c.env(rid, CCTV_LINGER_S="30"), tmp / f"{rid}.log")
            c.replicas[rid].start()
        try:
            ingress = Ingress({rid: r.base for rid, r in c.replicas.items()})
            with ingress.serving() as base:
                path = f"/whep/{CAMERA}?purpose=public_safety"
                token = c.token()
                # relay-0 is asked first (no owner yet), so it claims the camera and owns it for the run.
                for how, via in (("direct", "relay-0"), ("redirect", "relay-1")):
                    out[how] = asyncio.run(browser_joins(base + "/bench", path, token, "relay-0", via, joins,
                                                         pause_s))
        finally:
            for r in c.replicas.values():
                if r.alive():
                    r.terminate()
                    with contextlib.suppress(Exception):
                        assert r.proc is not None
                        r.proc.wait(20)
    return out


def server_steps(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Median ms of each Server-Timing step over the joins."""
    steps: dict[str, list[float]] = {}
    for row in rows:
        for part in filter(None, (p.strip() for p in row["server_timing"].split(","))):
            name, _, dur = part.partition(";dur=")
            steps.setdefault(name, []).append(float(dur))
    return {name: round(summary(v)["p50"], 1) for name, v in steps.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--joins", type=int, default=20)
    ap.add_argument("--pause", type=float, default=1.0, help="seconds between joins")
    ap.add_argument("--label", default="", help="a name for this run, kept in the JSON (e.g. before/after)")
    ap.add_argument("--only", nargs="*", default=["single", "cluster"])
    ap.add_argument("--out", default="join_browser")
    args = ap.parse_args()
    load_before = os.getloadavg()
    rows: dict[str, list[dict[str, Any]]] = {}
    with rtsp_camera(sample_clip()) as url:
        if "single" in args.only:
            rows["single"] = run_single(url, args.joins, args.pause)
        if "cluster" in args.only:
            rows.update(run_cluster(url, args.joins, args.pause))
    result: dict[str, Any] = {
        "what": "headless Chromium joins a watched 720p25 anonymized camera over WHEP (offer POSTed before "
                "gathering, as the dashboard does); warm joins",
        "label": args.label, "target_p95_ms": TARGET_P95_MS, "joins": args.joins, "pause_s": args.pause,
        "phases_ms": {how: {ph: summary([r[ph] for r in rs if r[ph] == r[ph]]) for ph in PHASES}
                      for how, rs in rows.items()},
        "server_timing_p50_ms": {how: server_steps(rs) for how, rs in rows.items()},
        "samples": rows, "load_avg_before": load_before, "load_avg_after": os.getloadavg(),
        "machine": machine_info(),
        "note": "shared 2-core machine with other work running (see load averages)",
    }
    write_results(args.out, result, _plot(result))
    for how, phases in result["phases_ms"].items():
        print(how, " ".join(f"{ph} p50 {v['p50']:.0f} p95 {v['p95']:.0f}" for ph, v in phases.items()),
              result["server_timing_p50_ms"][how])
    print("load", load_before, os.getloadavg())
    return 0


def _plot(result: dict[str, Any]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ways = list(result["phases_ms"])
    parts = ("post_answer", "answer_ice", "ice_connected", "connected_frame")
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    left = [0.0] * len(ways)
    for part in parts:
        vals = [result["phases_ms"][w][part]["p50"] for w in ways]
        ax.barh(ways, vals, left=left, label=part.replace("_", " -> ", 1) if part != "ice_connected"
                else "ICE -> DTLS connected")
        left = [a + b for a, b in zip(left, vals, strict=True)]
    for i, w in enumerate(ways):
        p95 = result["phases_ms"][w]["total"]["p95"]
        ax.plot([p95], [i], "k|", markersize=18)
        ax.annotate(f"p95 {p95:.0f}", (p95, i), xytext=(4, 6), textcoords="offset points", fontsize=8)
    ax.axvline(TARGET_P95_MS, color="tab:red", linestyle="--", label=f"target p95 {TARGET_P95_MS} ms")
    ax.set_xlabel("ms (bars: medians of each phase; |: p95 of the total)")
    ax.set_title(f"Chromium WHEP warm join {result['label']}".strip())
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    raise SystemExit(main())
