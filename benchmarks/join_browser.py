"""Join time in a browser: headless Chromium joins a watched camera over WHEP, as the dashboard does, and
the time is split where it goes.

Per join (all in the page, `performance.now()`): POST -> answer (the WHEP request, following a 307 when
there is one), answer -> ICE connected, ICE -> DTLS connected, connected -> first frame presented
(`requestVideoFrameCallback`), and the total POST -> first frame. The relay's own `Server-Timing` header
splits its part of POST -> answer (auth, place, authorize, subscribe, session and negotiation).

Warm joins (the camera is already watched: a first viewer in the page keeps it up), one after another with a
pause, closed (DELETE) after each. Three ways in: `single` alone, then the cluster's two taken in turn join
by join (each setting alone on the machine with the camera: every relay running anonymizes it):

- `single`: one `cctv-relay serve` on SQLite, no cluster (benchmarks.join's RelayUnderTest);
- `direct`: two replicas on a private PostgreSQL behind an ingress (a small reverse proxy here, as in
  deploy/), the POST sent to the camera's owner;
- `redirect`: the same, the POST sent to the other replica, which answers 307 to the owner's
  `/r/{replica}/whep/...`; the browser's fetch follows it with the offer.

`--against DIR` runs another revision's relays (a checkout: `git worktree add` or `git archive`) beside this
one's, the joins alternating between them, so the two are compared under the same load (their ratio is in
the JSON). The camera is the relay's sample RTSP camera (GStreamer) looping a street clip (720p25 by default,
`--size`), anonymized."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import Postgres, machine_info, write_results
from benchmarks.join import CAMERA as SINGLE_CAMERA
from benchmarks.join import REPO, RelayUnderTest, rtsp_camera, sample_clip, summary

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns", "--autoplay-policy=no-user-gesture-required",
    # One page per revision and origin: none may be throttled as a background tab (its frames would be
    # decoded but not presented for up to a second).
    "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]
TARGET_P95_MS = 250
PHASES = ("post_answer", "redirect_hop", "owner_ttfb", "answer_ice", "ice_connected", "connected_frame",
          "total")

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
    headers: { "Content-Type": "application/sdp", "Authorization": "Bearer " + token,
               "X-Ingress-Via": via } });
  const answer = await response.text();
  t.answer = performance.now();
  // Resource Timing splits a redirected POST (same origin): the 307's round trip, then the owner's.
  const entry = performance.getEntriesByType("resource").filter((e) => e.name.includes(path)).pop();
  performance.clearResourceTimings();
  if (response.status !== 201) { pc.close(); return { status: response.status, detail: answer }; }
  await pc.setLocalDescription(offer);
  await pc.setRemoteDescription({ type: "answer", sdp: answer });
  const timeout = new Promise((resolve) => setTimeout(resolve, 15000));
  await Promise.race([first, timeout]);
  const location = response.headers.get("Location");
  const stats = {};
  (await pc.getStats()).forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "video") {
      for (const k of ["pliCount", "firCount", "nackCount", "packetsLost", "keyFramesDecoded",
                       "framesDecoded", "framesDropped"]) stats[k] = r[k];
    }
  });
  const out = { stats, status: response.status, redirected: response.redirected, location,
                server_timing: response.headers.get("Server-Timing") || "",
                post_answer: t.answer - t.post,
                redirect_hop: entry && entry.redirectEnd ? entry.redirectEnd - entry.redirectStart : 0,
                owner_ttfb: entry ? entry.responseStart - entry.requestStart : NaN,
                answer_ice: (t.ice || NaN) - t.answer,
                ice_connected: (t.connected || NaN) - (t.ice || NaN),
                connected_frame: (t.frame || NaN) - (t.connected || NaN), total: (t.frame || NaN) - t.post };
  if (entry) out.timing = entry.toJSON();
  if (keep) { (window.__kept = window.__kept || []).push(pc); return out; }
  pc.close();
  video.remove();
  await fetch(location, { method: "DELETE", headers: { "Authorization": "Bearer " + token } });
  return out;
}"""


# -- the runs -------------------------------------------------------------------------------------------


@dataclass
class Way:
    """One way in, for one revision of the relay: the page to join from, the WHEP path, whom to ask."""

    how: str  # single, direct, redirect
    version: str  # "current", or the label of the revision compared against
    page_url: str
    path: str
    token: str
    via: str = ""  # the replica the POST goes to (the ingress's X-Ingress-Via), "" without a cluster
    owner: str = ""  # the replica the keeper joins through (it claims the camera)


async def browser_joins(ways: list[Way], joins: int, pause_s: float) -> dict[str, dict[str, list[Any]]]:
    """Every way in, in turn, `joins` times: one page per (revision, origin), each with a keeper viewer
    holding the camera. Interleaved, so that every way meets the same load."""
    from playwright.async_api import async_playwright

    out: dict[str, dict[str, list[Any]]] = {}
    async with async_playwright() as pw:
        with tempfile.TemporaryDirectory(prefix="cctv-join-browser-") as profile:
            browser = await pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM,
                                                                  headless=True, args=CHROMIUM_ARGS)
            try:
                pages: dict[tuple[str, str], Any] = {}
                for way in ways:
                    key = (way.version, way.page_url)
                    if key in pages:
                        continue
                    pages[key] = page = await browser.new_page()
                    await page.goto(way.page_url)
                    keeper = await page.evaluate(JOIN, {"path": way.path, "token": way.token,
                                                        "via": way.owner, "keep": True})
                    if keeper.get("status") != 201:
                        raise RuntimeError(f"keeper refused: {keeper}")
                await asyncio.sleep(2.0)
                for _ in range(joins):
                    for way in ways:
                        page = pages[(way.version, way.page_url)]
                        await page.bring_to_front()  # the joining page is the visible one
                        r = await page.evaluate(
                            JOIN, {"path": way.path, "token": way.token, "via": way.via, "keep": False})
                        if r.get("status") != 201:
                            raise RuntimeError(f"join refused: {r}")
                        out.setdefault(way.version, {}).setdefault(way.how, []).append(r)
                        await asyncio.sleep(pause_s)
                return out
            finally:
                await browser.close()


def single(stack: contextlib.ExitStack, url: str, version: str, repo: Path) -> list[Way]:
    relay = stack.enter_context(RelayUnderTest(url, linger_s=30, repo=repo))
    path = f"/whep/{SINGLE_CAMERA}?purpose=public_safety"
    return [Way("single", version, relay.base_url + "/healthz", path, relay.token)]


def cluster(stack: contextlib.ExitStack, pg: Postgres, url: str, version: str, repo: Path,
            database: str) -> list[Way]:
    """Two replicas of `repo`'s relay on a database of their own, behind an ingress."""
    from policies.context import build_context
    from policies.settings import PolicySettings
    from relay.cluster.store import LeaseStore
    from tests.app.conftest import CAMERA, seed
    from tests.cluster.ingress import Ingress, live_bases
    from tests.cluster.replicas import SIGNING_KEY, TOKEN_SECRET, Cluster, Replica, free_port

    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cctv-bench-join-browser-")))
    db = pg.create(database)
    ctx = build_context(PolicySettings(database_url=db, token_secret=TOKEN_SECRET,
                                       audit_signing_key=SIGNING_KEY))
    seed(ctx, tmp, url)
    LeaseStore(ctx.db.engine, "bench").create_tables()
    ctx.db.dispose()
    c = Cluster({}, db)

    def stop() -> None:
        for r in c.replicas.values():
            if r.alive():
                r.terminate()
                with contextlib.suppress(Exception):
                    assert r.proc is not None
                    r.proc.wait(20)

    stack.callback(stop)
    for rid in ("relay-0", "relay-1"):
        c.replicas[rid] = Replica(rid, free_port(), c.env(rid, CCTV_LINGER_S="30"), tmp / f"{rid}.log",
                                  repo=repo)
        c.replicas[rid].start()
    base = stack.enter_context(Ingress(live_bases(c.replicas), prefer=list(c.replicas)).serving())
    path, token = f"/whep/{CAMERA}?purpose=public_safety", c.token()
    # The keeper joins through relay-0 first (no owner yet): relay-0 claims the camera for the run.
    return [Way("direct", version, base + "/__blank", path, token, via="relay-0", owner="relay-0"),
            Way("redirect", version, base + "/__blank", path, token, via="relay-1", owner="relay-0")]


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
    ap.add_argument("--joins", type=int, default=20, help="joins per way in (and per revision)")
    ap.add_argument("--pause", type=float, default=1.0, help="seconds between joins")
    ap.add_argument("--only", nargs="*", default=["single", "cluster"])
    ap.add_argument("--against", type=Path, help="a checkout of another revision (git worktree or archive): "
                    "its relays run beside this one's, joins alternating between them")
    ap.add_argument("--against-label", default="before")
    ap.add_argument("--size", default="1280x720", help="the camera's picture (WxH); each revision anonymizes "
                    "it once per way of running (single, cluster): 640x360 keeps 4 pipelines on 2 cores")
    ap.add_argument("--out", default="join_browser")
    args = ap.parse_args()
    versions = [("current", REPO)] + ([(args.against_label, args.against.resolve())] if args.against else [])
    load_before = os.getloadavg()
    rows: dict[str, dict[str, list[Any]]] = {}
    with contextlib.ExitStack() as camera:
        width, height = (int(x) for x in args.size.split("x"))
        url = camera.enter_context(rtsp_camera(sample_clip(width, height)))
        # One setting at a time (single relay, then the cluster), each torn down before the next: every
        # relay running anonymizes the camera, and a second 720p pipeline on 2 cores would time the
        # contention between them rather than the join.
        for group in args.only:
            with contextlib.ExitStack() as stack:
                ways: list[Way] = []
                pg = stack.enter_context(Postgres()) if group == "cluster" else None
                for n, (version, repo) in enumerate(versions):
                    if group == "single":
                        ways += single(stack, url, version, repo)
                    elif pg is not None:
                        ways += cluster(stack, pg, url, version, repo, f"relay_{n}")
                for version, by_how in asyncio.run(browser_joins(ways, args.joins, args.pause)).items():
                    rows.setdefault(version, {}).update(by_how)
    load_after = os.getloadavg()
    result: dict[str, Any] = {
        "what": "headless Chromium joins a watched anonymized camera over WHEP (offer POSTed before "
                "gathering, as the dashboard does); warm joins; phases from the page's performance.now()",
        "target_p95_ms": TARGET_P95_MS, "joins": args.joins, "pause_s": args.pause,
        "camera": f"{args.size} 25 fps",
        "versions": {v: str(r) for v, r in versions},
        "phases_ms": {v: {how: {ph: summary([r[ph] for r in rs if r[ph] == r[ph]]) for ph in PHASES}
                          for how, rs in by_how.items()} for v, by_how in rows.items()},
        "server_timing_p50_ms": {v: {how: server_steps(rs) for how, rs in by_how.items()}
                                 for v, by_how in rows.items()},
        "samples": rows, "load_avg_before": load_before, "load_avg_after": load_after,
        "machine": machine_info(),
        "note": "2-core machine (see load averages); the single relay and the cluster run one after the "
                "other, each alone with the camera; revisions (--against) interleaved join by join within "
                "each, so their ratio holds under the same load",
    }
    if args.against:
        result["ratio_current_to_" + args.against_label] = {
            how: {ph: round(result["phases_ms"]["current"][how][ph]["p50"]
                            / result["phases_ms"][args.against_label][how][ph]["p50"], 2)
                  for ph in ("post_answer", "connected_frame", "total")}
            for how in result["phases_ms"]["current"]}
    write_results(args.out, result, _plot(result))
    for v, by_how in result["phases_ms"].items():
        for how, phases in by_how.items():
            print(v, how, " ".join(f"{ph} p50 {x['p50']:.0f} p95 {x['p95']:.0f}" for ph, x in phases.items()),
                  result["server_timing_p50_ms"][v][how])
    print("load", load_before, load_after)
    return 0


def _plot(result: dict[str, Any]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(f"{how} ({v})", phases) for v, by_how in result["phases_ms"].items()
            for how, phases in by_how.items()]
    parts = {"post_answer": "POST -> answer", "answer_ice": "answer -> ICE connected",
             "ice_connected": "ICE -> DTLS connected", "connected_frame": "connected -> first frame"}
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.45 * len(rows)))
    names = [name for name, _ in rows]
    left = [0.0] * len(rows)
    for part, label in parts.items():
        vals = [phases[part]["p50"] for _, phases in rows]
        ax.barh(names, vals, left=left, label=label)
        left = [a + b for a, b in zip(left, vals, strict=True)]
    for i, (_, phases) in enumerate(rows):
        p95 = phases["total"]["p95"]
        ax.plot([p95], [i], "k|", markersize=14)
        ax.annotate(f"p95 {p95:.0f}", (p95, i), xytext=(4, 4), textcoords="offset points", fontsize=7)
    ax.axvline(TARGET_P95_MS, color="tab:red", linestyle="--", label=f"target p95 {TARGET_P95_MS} ms")
    load = result["load_avg_before"][0], result["load_avg_after"][0]
    ax.set_xlabel("ms (bars: medians of each phase, stacked; |: p95 of POST -> first frame)")
    ax.set_title(f"Chromium WHEP warm join (load average {load[0]:.1f} -> {load[1]:.1f} on 2 cores)")
    ax.invert_yaxis()
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    raise SystemExit(main())
