"""Dashboard in Chromium: (1) 16 tiles playing at once: frames each tile decodes and shows per second
(getVideoPlaybackQuality and requestVideoFrameCallback) and the CPU the browser spends on them; (2) the map
with 5,000 cameras: time from sign-in until the markers are drawn, and until the page answers input
(a search typed into the filter, a pan of the map), with the main thread's long tasks.

The relay runs in this process (uvicorn in a thread) in front of a real RTSP camera (GStreamer looping the
demo clip); the 16 tiles are 16 cameras on that one source. What is measured is the browser, so the
server's face masking is swapped for a pass-through here (`--mask` keeps the real engine): sixteen
detectors would need more cores than the browser does and would measure the engine, which
benchmarks/cost.py and cameras.py already do. For the map the camera list is answered by the page's
network layer (Playwright routing) with 5,000 synthetic cameras around Taipei, so no database of that size
is needed; everything else is the real dashboard.

`python -m benchmarks.dashboard [--seconds 20] [--width 640 --height 360 --fps 25] [--mask]`"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.common import machine_info, write_results
from benchmarks.join import rtsp_camera, sample_clip
from tests.app.conftest import bound_socket, served

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--allow-loopback-in-peer-connection",
        "--disable-features=WebRtcHideLocalIpsWithMdns", "--autoplay-policy=no-user-gesture-required"]
USER, PASSWORD = "bench", "bench-password-0123"
TILES = 16
MAP_CAMERAS = 5000


class PassThrough:
    """Stands in for the engine (see the module's doc): the frame as it came."""

    def process(self, frame: Any) -> tuple[Any, None]:
        return frame, None

    def close(self) -> None:
        pass


@contextmanager
def relay(source_url: str, tmp: Path, mask: bool) -> Iterator[str]:
    import relay.cameras
    from policies import files
    from policies.context import build_context
    from policies.defaults import load_defaults
    from relay.app import create_app
    from relay.config import load_settings

    if not mask:
        relay.cameras.default_anonymizer = lambda camera: PassThrough()  # type: ignore[assignment]
    sock = bound_socket()  # bound here, so no other process can take the port before the relay does
    port = int(sock.getsockname()[1])
    settings = load_settings(database_url=f"sqlite:///{tmp / 'bench.db'}", token_secret="b" * 40,
                             host="127.0.0.1", port=port, linger_s=2.0,
                             # one user watches all 16 tiles: above the per-user cap's default of 8
                             max_sessions_per_user=TILES)
    ctx = build_context(settings)
    load_defaults(ctx, actor="bench")
    cams = "".join(f"  - {{id: tile-{i:02d}, name: Tile {i:02d}, district: Xinyi, purposes: [public_safety], "
                   f"latitude: {25.03 + i * 0.002}, longitude: {121.56 + (i % 4) * 0.003}, "
                   f"source_url: '{source_url}'}}\n" for i in range(TILES))
    os.environ["CCTV_BENCH_PASSWORD"] = PASSWORD
    (tmp / "policy.yaml").write_text(
        f"version: 1\ncameras:\n{cams}users:\n  - {{username: {USER}, roles: [police_operator], "
        "password: '${CCTV_BENCH_PASSWORD}'}\n")
    files.apply(ctx.db, ctx.audit, files.load(tmp / "policy.yaml"), actor="bench",
                hasher=ctx.auth.hash_password)
    try:
        with served(create_app(settings, context=ctx), sock):
            yield f"http://127.0.0.1:{port}"
    finally:
        ctx.db.dispose()


def _tree_cpu(marker: str) -> float:
    """CPU seconds of the Chromium whose command line holds `marker`, with all its descendants."""
    procs: dict[int, tuple[int, float, str]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        procs[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick, cmd)
    roots = {pid for pid, (_, _, cmd) in procs.items() if marker in cmd and "--type=" not in cmd}
    total, frontier = 0.0, set(roots)
    seen: set[int] = set()
    while frontier:
        pid = frontier.pop()
        if pid in seen or pid not in procs:
            continue
        seen.add(pid)
        total += procs[pid][1]
        frontier |= {p for p, (ppid, _, _) in procs.items() if ppid == pid}
    return total


FRAME_COUNTER = """() => {
  window.__frames = {};
  for (const v of document.querySelectorAll('#grid .tile video')) {
    const id = v.closest('.tile').dataset.camera;
    window.__frames[id] = 0;
    const tick = () => { window.__frames[id] += 1; v.requestVideoFrameCallback(tick); };
    v.requestVideoFrameCallback(tick);
  }
}"""
QUALITY = """() => Object.fromEntries([...document.querySelectorAll('#grid .tile video')].map(v => {
  const q = v.getVideoPlaybackQuality();
  return [v.closest('.tile').dataset.camera, { total: q.totalVideoFrames, dropped: q.droppedVideoFrames,
                                              w: v.videoWidth, h: v.videoHeight }];
}))"""


def sixteen_tiles(base_url: str, seconds: float, profile: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True,
                                                    args=ARGS, locale="en-US",
                                                    viewport={"width": 1920, "height": 1080})
        try:
            page = ctx.pages[0] if ctx.pages else ctx.new_page()  # the window's own tab, in front
            page.goto(base_url + "/")
            page.fill("#username", USER)
            page.fill("#password", PASSWORD)
            page.click("#sign-in button[type=submit]")
            page.wait_for_selector('#cameras li.camera[data-camera="tile-00"]', timeout=30_000)
            page.click('.layout-sizes .size[data-size="16"]')
            t0 = time.monotonic()
            for i in range(TILES):
                page.click(f'#cameras li.camera[data-camera="tile-{i:02d}"] .play')
            for i in range(TILES):
                page.wait_for_selector(f'.tile[data-camera="tile-{i:02d}"][data-state="playing"]',
                                       timeout=120_000)
            all_playing_s = time.monotonic() - t0
            time.sleep(3)  # settle
            page.evaluate(FRAME_COUNTER)
            q0, cpu0, w0 = page.evaluate(QUALITY), _tree_cpu(str(profile)), time.monotonic()
            time.sleep(seconds)
            q1, cpu1, w1 = page.evaluate(QUALITY), _tree_cpu(str(profile)), time.monotonic()
            shown = page.evaluate("window.__frames")
            wall = w1 - w0
            tiles = {cam: {"decoded_fps": (q1[cam]["total"] - q0[cam]["total"]) / wall,
                           "dropped_fps": (q1[cam]["dropped"] - q0[cam]["dropped"]) / wall,
                           "presented_fps": shown.get(cam, 0) / wall,
                           "size": f'{q1[cam]["w"]}x{q1[cam]["h"]}'} for cam in sorted(q1)}
            return {"tiles": tiles, "window_s": wall, "all_playing_s": all_playing_s,
                    "browser_cpu_cores": (cpu1 - cpu0) / wall}
        finally:
            ctx.close()


def synthetic_cameras(n: int) -> list[dict[str, Any]]:
    rng = random.Random(7)
    districts = ["Xinyi", "Da'an", "Zhongshan", "Wanhua", "Songshan", "Neihu", "Shilin", "Beitou", "Wenshan",
                 "Nangang", "Datong", "Zhongzheng"]
    return [{"id": f"map-{i:05d}", "name": f"Camera {i:05d}", "district": districts[i % len(districts)],
             "address": f"{i} Test Rd", "agency": "Taipei City Police Department",
             "tags": ["mrt"] if i % 7 else [], "signage": True,
             "latitude": 24.98 + rng.random() * 0.15, "longitude": 121.45 + rng.random() * 0.17,
             "purposes": ["public_safety"], "raw_purposes": [],
             "health": {"state": "idle", "connected": False}}
            for i in range(n)]


LONG_TASKS = """() => { window.__long = []; new PerformanceObserver(l => { for (const e of l.getEntries())
  window.__long.push([e.startTime, e.duration]); }).observe({ type: "longtask", buffered: true }); }"""
INPUT_LATENCY = """async ([kind, value]) => {
  const frame = () => new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
  const t0 = performance.now();
  if (kind === "search") {
    const s = document.querySelector('#search'); s.value = value; s.dispatchEvent(new Event('input'));
  } else {
    const el = document.querySelector('#map');
    el.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowRight', keyCode: 39, bubbles: true }));
  }
  await frame();
  return performance.now() - t0;
}"""


def map_5000(base_url: str, profile: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    body = json.dumps({"cameras": synthetic_cameras(MAP_CAMERAS)})
    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True,
                                                    args=ARGS, locale="en-US",
                                                    viewport={"width": 1920, "height": 1080})
        try:
            page = ctx.pages[0] if ctx.pages else ctx.new_page()  # the window's own tab, in front
            page.route("**/api/live/cameras", lambda route: route.fulfill(
                status=200, content_type="application/json", body=body))
            page.goto(base_url + "/")
            page.evaluate(LONG_TASKS)
            page.fill("#username", USER)
            page.fill("#password", PASSWORD)
            t0 = time.monotonic()
            page.click("#sign-in button[type=submit]")
            page.wait_for_selector(f'#map[data-markers="{MAP_CAMERAS}"]', state="attached", timeout=120_000)
            markers_s = time.monotonic() - t0
            first_input_ms = page.evaluate(INPUT_LATENCY, ["search", "Camera 0001"])
            responsive_s = time.monotonic() - t0
            searches = [page.evaluate(INPUT_LATENCY, ["search", q]) for q in ("Xinyi", "Camera 04", "")]
            pans = [page.evaluate(INPUT_LATENCY, ["pan", ""]) for _ in range(5)]
            long_tasks = page.evaluate("window.__long")
            return {"cameras": MAP_CAMERAS, "renderer": "canvas", "sign_in_to_markers_s": markers_s,
                    "sign_in_to_first_input_handled_s": responsive_s, "first_input_ms": first_input_ms,
                    "search_filter_ms": searches, "map_pan_ms": pans,
                    "long_tasks": {"count": len(long_tasks), "total_ms": sum(d for _, d in long_tasks),
                                   "longest_ms": max((d for _, d in long_tasks), default=0.0)}}
        finally:
            ctx.close()


def _plot(tiles: dict[str, Any], fps: int) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(tiles["tiles"])
    fig, ax = plt.subplots(figsize=(10, 4))
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], [tiles["tiles"][n]["decoded_fps"] for n in names], 0.4, label="decoded fps")
    ax.bar([i + 0.2 for i in x], [tiles["tiles"][n]["presented_fps"] for n in names], 0.4,
           label="presented fps")
    ax.axhline(fps, color="grey", linestyle="--", label=f"source {fps} fps")
    ax.set_xticks(list(x), [n.removeprefix("tile-") for n in names])
    ax.set_xlabel("tile")
    ax.set_ylabel("frames per second")
    ax.set_title(f"16 tiles in Chromium: browser CPU {tiles['browser_cpu_cores'] * 100:.0f} % of a core")
    ax.legend(loc="lower right")
    return fig


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--mask", action="store_true", help="keep the real masking engine on every camera")
    parser.add_argument("--only", choices=("tiles", "map"), help="run one of the two parts")
    args = parser.parse_args()
    clip = sample_clip(args.width, args.height)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp_, rtsp_camera(clip, fps=args.fps) as url:
        tmp = Path(tmp_)
        with relay(url, tmp, args.mask) as base:
            # The map first: on a loaded 2-core machine the sixteen pipelines' tail (linger, peer
            # watchdog) would otherwise still be running while the map is timed.
            big_map = map_5000(base, tmp / "profile-map") if args.only != "tiles" else None
            tiles = sixteen_tiles(base, args.seconds, tmp / "profile-tiles") if args.only != "map" else None
    if tiles is None:
        print(json.dumps(big_map, indent=1))
        return 0
    decoded = [t["decoded_fps"] for t in tiles["tiles"].values()]
    result = {
        "benchmark": "dashboard", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "setup": {"tiles": TILES,
                  "source": f"{args.width}x{args.height} @ {args.fps} fps H.264, one RTSP camera",
                  "server_masking": "real engine" if args.mask else "pass-through (browser measured)",
                  "chromium": "Debian /usr/bin/chromium, headless, software decoding (--disable-gpu)",
                  "load_average_before": load_before, "load_average_after": os.getloadavg()},
        "sixteen_tiles": {**tiles, "decoded_fps_min": min(decoded),
                          "decoded_fps_mean": sum(decoded) / len(decoded)},
        "map": big_map, "machine": machine_info(),
    }
    write_results("dashboard", result, _plot(tiles, args.fps))
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1, default=float)[:3000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
