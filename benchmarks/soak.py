"""Soak: the relay under a steady, changing load for `--minutes N` (30 for the recorded run), watched for
leaks and for quality giving way.

`cctv-relay serve` in its own process (the join benchmark's harness) with 3 cameras, each pulling the
sample RTSP camera (640x360, 25 fps, faces walking); 20 aiortc viewers in this process (frames counted,
not decoded) join and leave at random, on random cameras; logins and API calls throughout (camera
lists, health, metrics, refused requests). Every `--every` seconds: the relay process's RSS, open file
descriptors and threads, its CPU, the viewers connected, failsafe and dropped frames (from /metrics).
Reported: the RSS slope (MB per hour, by least squares after the first fifth, the warm-up), the ranges
of descriptors and threads, and the frame counters over time. Writes benchmarks/results/soak.json + .png."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.join import (
    PASSWORD,
    USER,
    RelayUnderTest,
    close_viewer,
    count_frames_without_decoding,
    open_viewer,
    rtsp_camera,
    sample_clip,
)

CAMERAS = ("bench-cam", "soak-cam-2", "soak-cam-3")  # the harness seeds the first
VIEWERS = 20
METRICS_TOKEN = "soak-metrics-token-0123456789abcdef"


def add_cameras(relay: RelayUnderTest, url: str) -> None:
    """The two more cameras, written to the relay's database (it follows camera changes by itself)."""
    import yaml

    from policies import files
    from policies.context import build_context
    from relay.config import load_settings

    tmp = Path(relay._tmp.name)
    ctx = build_context(load_settings(tmp / "relay.yaml"))
    policy = {"version": 1, "cameras": [{"id": cid, "name": cid, "purposes": ["public_safety"],
                                         "source_url": url} for cid in CAMERAS[1:]]}
    (tmp / "soak-cameras.yaml").write_text(yaml.safe_dump(policy))
    files.apply(ctx.db, ctx.audit, files.load(tmp / "soak-cameras.yaml"), actor="bench")
    ctx.db.dispose()


def process_sample(pid: int) -> dict[str, float]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if ":" in line)
    return {"rss_mb": int(status["VmRSS"].split()[0]) / 1024, "threads": int(status["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def metric_totals(text: str) -> dict[str, float]:
    out = {"failsafe_frames": 0.0, "dropped_frames": 0.0, "frames_in": 0.0, "viewer_packets_dropped": 0.0}
    names = {f"relay_{k}_total": k for k in ("frames_in", "viewer_packets_dropped", "failsafe_frames")}
    names["relay_frames_dropped_total"] = "dropped_frames"
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in names:
            out[names[name]] += float(line.rsplit(" ", 1)[1])
    return out


async def soak(relay: RelayUnderTest, seconds: float, every: float) -> dict[str, Any]:
    assert relay.proc is not None
    pid, rng = relay.proc.pid, random.Random(7)
    samples: list[dict[str, Any]] = []
    unexpected: dict[str, int] = {}  # API answers not as expected, by path and status
    counts = {"joins": 0, "join_failures": 0, "leaves": 0, "logins": 0, "api_calls": 0, "api_errors": 0}
    stop = time.monotonic() + seconds
    # No kept-alive connections: one reused just as the server closes it for idling would read as an error.
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=relay.base_url, timeout=30, limits=limits) as client:
        slots: list[Any] = [None] * VIEWERS

        async def viewer_slot(i: int) -> None:
            await asyncio.sleep(rng.uniform(0, 10))
            while time.monotonic() < stop:
                try:
                    slots[i] = await open_viewer(relay, client, rng.choice(CAMERAS))
                    counts["joins"] += 1
                except Exception:
                    counts["join_failures"] += 1
                    await asyncio.sleep(2)
                    continue
                await asyncio.sleep(min(rng.uniform(5, 60), max(0.0, stop - time.monotonic())))
                viewer, slots[i] = slots[i], None
                await close_viewer(relay, client, viewer)
                counts["leaves"] += 1
                await asyncio.sleep(rng.uniform(0.5, 5))

        async def api_user() -> None:
            while time.monotonic() < stop:
                calls: list[tuple[str, dict[str, str], int]] = []
                try:
                    r = await client.post("/api/auth/login", json={"username": USER, "password": PASSWORD})
                    counts["logins"] += 1
                    token = r.json().get("access_token", "") if r.status_code == 200 else ""
                except httpx.HTTPError:
                    counts["api_errors"] += 1
                    token = ""
                auth = {"Authorization": f"Bearer {token}"}
                health = f"/api/live/cameras/{rng.choice(CAMERAS)}/health"
                calls += [("/api/live/cameras", auth, 200), ("/api/view/cameras", auth, 200),
                          ("/healthz", {}, 200), (health, auth, 200),
                          ("/api/live/cameras", {}, 401)]  # refused: no token (logged, aggregated)
                for path, headers, expected in calls:
                    counts["api_calls"] += 1
                    try:
                        resp = await client.get(path, headers=headers)
                        if resp.status_code != expected:
                            counts["api_errors"] += 1
                            key = f"{path} {resp.status_code}"
                            unexpected[key] = unexpected.get(key, 0) + 1
                    except httpx.HTTPError:
                        counts["api_errors"] += 1
                await asyncio.sleep(rng.uniform(0.5, 2))

        async def sampler() -> None:
            started = time.monotonic()
            cpu0 = relay.cpu_seconds()
            while True:
                t = time.monotonic() - started
                metrics = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
                metrics.raise_for_status()
                samples.append({"t_s": round(t, 1), **process_sample(pid), **metric_totals(metrics.text),
                                "cpu_s": round(relay.cpu_seconds() - cpu0, 2),
                                "viewers": sum(v is not None for v in slots), **counts})
                if time.monotonic() >= stop:
                    return
                await asyncio.sleep(min(every, max(0.0, stop - time.monotonic())))

        tasks = [asyncio.create_task(viewer_slot(i)) for i in range(VIEWERS)]
        tasks.append(asyncio.create_task(api_user()))
        await sampler()
        await asyncio.gather(*tasks, return_exceptions=True)
        for viewer in slots:
            if viewer is not None:
                await close_viewer(relay, client, viewer)
    return {"samples": samples, "counts": counts, "unexpected_answers": unexpected}


def relay_log_summary(path: Path) -> dict[str, Any]:
    """Why the relay's sessions ended, and its warnings and errors (session and camera ids cut out, so
    that repeats count as one kind), from the relay's own log: what explains a step in the samples."""
    ended: dict[str, int] = {}
    problems: dict[str, int] = {}
    text = path.read_text(errors="replace") if path.exists() else ""
    for line in text.splitlines():
        match = re.search(r"session \S+ on \S+ ended: (.*)$", line)
        if match:
            ended[match.group(1)] = ended.get(match.group(1), 0) + 1
        elif "WARNING" in line or "ERROR" in line:
            kind = re.sub(r"[0-9a-f]{8,}|\d+(\.\d+)?", "#", " ".join(line.split()))[:160]
            problems[kind] = problems.get(kind, 0) + 1
    return {"sessions_ended_by_reason": ended,
            "warnings_and_errors": dict(sorted(problems.items(), key=lambda kv: -kv[1])[:30])}


def slope_per_hour(ts: list[float], values: list[float]) -> float | None:
    if len(ts) < 3:
        return None
    mt, mv = sum(ts) / len(ts), sum(values) / len(values)
    den = sum((t - mt) ** 2 for t in ts)
    cov = sum((t - mt) * (v - mv) for t, v in zip(ts, values, strict=True))
    return None if den == 0 else cov / den * 3600


def summarize(samples: list[dict[str, Any]]) -> dict[str, Any]:
    steady = samples[len(samples) // 5:] or samples
    ts = [s["t_s"] for s in steady]
    last, first = samples[-1], samples[0]
    frames_in = max(1.0, last["frames_in"] - first["frames_in"])
    return {
        "rss_mb": {"start": first["rss_mb"], "end": last["rss_mb"], "max": max(s["rss_mb"] for s in samples),
                   "slope_mb_per_hour_after_warmup": slope_per_hour(ts, [s["rss_mb"] for s in steady])},
        "fds": {"min": min(s["fds"] for s in samples), "max": max(s["fds"] for s in samples),
                "end": last["fds"],
                "slope_per_hour_after_warmup": slope_per_hour(ts, [s["fds"] for s in steady])},
        "threads": {"min": min(s["threads"] for s in samples), "max": max(s["threads"] for s in samples),
                    "end": last["threads"]},
        "frames_in": frames_in,
        "failsafe_fraction": (last["failsafe_frames"] - first["failsafe_frames"]) / frames_in,
        "dropped_fraction": (last["dropped_frames"] - first["dropped_frames"]) / frames_in,
        "cpu_cores_mean": last["cpu_s"] / max(1.0, last["t_s"]),
    }


def main(argv: list[str] | None = None) -> int:
    from benchmarks.common import machine_info, write_results

    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to run (default 30)")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples (default 5)")
    args = parser.parse_args(argv)
    count_frames_without_decoding()
    clip = sample_clip(640, 360)
    load_before = os.getloadavg()
    # The 20 viewers are one benchmark user: the per-user session cap (8 by default) would refuse most
    # joins, and the soak is about the relay under load, not about the cap (tested in tests/app).
    extra = {"metrics_token": METRICS_TOKEN, "camera_sync_s": 1.0, "max_sessions_per_user": 40}
    with rtsp_camera(clip) as url, RelayUnderTest(url, linger_s=5.0, extra=extra) as relay:
        add_cameras(relay, url)
        run = asyncio.run(soak(relay, args.minutes * 60, args.every))
        relay_log = relay_log_summary(Path(relay._tmp.name) / "relay.log")
    result = {
        "what": "relay process under 3 cameras, 20 viewers joining and leaving, logins and API calls",
        "method": "cctv-relay serve in its own process; 640x360 25 fps RTSP sample camera pulled 3 times; "
                  "aiortc viewers in the benchmark process (frames counted, not decoded); /proc and /metrics "
                  f"sampled every {args.every:g} s",
        "minutes": args.minutes, "summary": summarize(run["samples"]), "counts": run["counts"],
        "unexpected_answers": run["unexpected_answers"], "relay_log": relay_log,
        "samples": run["samples"], "load_avg_before": load_before, "load_avg_after": os.getloadavg(),
        "machine": machine_info(),
    }
    write_results("soak", result, _plot(run["samples"], args.minutes))
    s = result["summary"]
    print(f"soak {args.minutes:g} min: RSS {s['rss_mb']['start']:.0f} -> {s['rss_mb']['end']:.0f} MB "
          f"(slope {s['rss_mb']['slope_mb_per_hour_after_warmup'] or 0:.1f} MB/h), fds {s['fds']['min']}-"
          f"{s['fds']['max']}, threads {s['threads']['min']}-{s['threads']['max']}, failsafe "
          f"{s['failsafe_fraction']:.2%}, dropped {s['dropped_fraction']:.2%}; {run['counts']}")
    return 0


def _plot(samples: list[dict[str, Any]], minutes: float) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t_s"] / 60 for s in samples]
    fig, axes = plt.subplots(2, 2, figsize=(10, 6), sharex=True)
    panels = ((axes[0][0], "rss_mb", "RSS (MB)"), (axes[0][1], "fds", "open file descriptors"),
              (axes[1][0], "threads", "threads"))
    for ax, key, label in panels:
        ax.plot(t, [s[key] for s in samples])
        ax.set_ylabel(label)
    ax = axes[1][1]
    ax.plot(t, [s["failsafe_frames"] for s in samples], label="failsafe frames")
    ax.plot(t, [s["dropped_frames"] for s in samples], label="dropped frames")
    ax2 = ax.twinx()
    ax2.plot(t, [s["viewers"] for s in samples], color="tab:gray", alpha=0.5, label="viewers")
    ax2.set_ylabel("viewers")
    ax.set_ylabel("frames (cumulative)")
    ax.legend(loc="upper left")
    for ax in axes[1]:
        ax.set_xlabel("minutes")
    fig.suptitle(f"Soak: 3 cameras, {VIEWERS} viewers joining and leaving, {minutes:g} min")
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    sys.exit(main())
