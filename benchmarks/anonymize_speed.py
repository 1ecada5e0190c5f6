"""File speed: frames per second of `cctv-relay anonymize --profile realtime` on a 15 s 720p25 crowd clip.

The clip: 375 frames of `videogen`'s crowd (real faces over the MOT20-08 crowd at 1280x720, 25 fps, H.264),
made in a temporary folder; where `videogen` has no crowd background yet, its default clip (faces over the
vtest CCTV view) scaled to 1280x720. The command runs as a user runs it (`python -m blur.cli`, a process per
run: start-up, model load, decode, engine, encode and the final rename all count), on all the cores the
machine gives it. Reported per run: wall seconds, fps, CPU seconds (user + system of the child: on a shared
machine wall time includes waiting for a core, CPU time does not) and the load average when it ran.

`--against REF` also times the same command from the `blur/` package of a git revision (exported to a
temporary folder), runs alternating with the working tree's, so the ratio is measured under the same load.
Target: 375 frames in <= 15 s wall (>= 25 fps) on a 2-core machine.

Run: `python -m benchmarks.anonymize_speed [--runs N] [--against REF] [--profile P]`. Writes
benchmarks/results/anonymize_speed.{json,png}.
"""

from __future__ import annotations

import argparse
import inspect
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from fractions import Fraction
from io import BytesIO
from pathlib import Path
from typing import Any

import av
import cv2

from benchmarks.common import engine_version, write_results
from benchmarks.videogen import make_clip

REPO = Path(__file__).resolve().parents[1]
FRAMES = 375
SIZE = (1280, 720)
FPS = 25
TARGET_FPS = 25.0


def make_crowd_clip(path: Path, frames: int = FRAMES) -> str:
    """Write the 720p25 test clip to `path`; returns what it shows."""
    if "background" in inspect.signature(make_clip).parameters:
        make_clip(path, n_frames=frames, fps=FPS, background="crowd")
        return "videogen crowd: faces over MOT20-08, 1280x720"
    raw = path.with_name("raw.mp4")
    make_clip(raw, n_frames=frames, fps=FPS)
    with av.open(str(raw)) as src, av.open(str(path), "w") as dst:
        stream = dst.add_stream("libx264", rate=FPS, options={"crf": "23", "preset": "medium"})
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        for i, frame in enumerate(src.decode(video=0)):
            img = cv2.resize(frame.to_ndarray(format="bgr24"), SIZE, interpolation=cv2.INTER_CUBIC)
            out = av.VideoFrame.from_ndarray(img, format="bgr24").reformat(format="yuv420p")
            out.pts, out.time_base = i, Fraction(1, FPS)
            for packet in stream.encode(out):
                dst.mux(packet)
        for packet in stream.encode(None):
            dst.mux(packet)
    raw.unlink()
    return "videogen vtest (faces over the vtest CCTV view) scaled to 1280x720"


def export_blur(ref: str, into: Path) -> str:
    """The `blur/` package of git revision `ref`, unpacked under `into`; returns the commit."""
    commit = subprocess.run(["git", "rev-parse", "--short", ref], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.strip()
    archive = subprocess.run(["git", "archive", "--format=tar", ref, "blur"], cwd=REPO, capture_output=True,
                             check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return commit


def time_run(code_root: Path, clip: Path, out: Path, profile: str) -> dict[str, Any]:
    """One `python -m blur.cli` run over the clip with the `blur` package under `code_root`."""
    env = dict(os.environ, PYTHONPATH=str(code_root))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "blur.cli", str(clip), "--out", str(out),
                             "--profile", profile], cwd=code_root, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"anonymize failed ({result.returncode}): {result.stderr.strip()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    with av.open(str(out / (clip.stem + ".mp4"))) as container:
        frames = sum(1 for _ in container.decode(video=0))
    return {"wall_s": wall, "fps": frames / wall, "cpu_s": cpu, "cpu_fps": frames / cpu, "frames": frames,
            "load_1min": load, "output_bytes": (out / (clip.stem + ".mp4")).stat().st_size}


def summarize(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {
        "median_wall_s": statistics.median(r["wall_s"] for r in runs),
        "median_fps": statistics.median(r["fps"] for r in runs),
        "median_cpu_s": statistics.median(r["cpu_s"] for r in runs),
        "median_load_1min": statistics.median(r["load_1min"] for r in runs),
    }


def plot(results: dict[str, Any]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = results["variants"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    names = list(variants)
    for ax, key, label in ((axes[0], "fps", "frames per second (wall)"),
                           (axes[1], "cpu_s", "CPU seconds (user + system)")):
        for i, name in enumerate(names):
            values = [r[key] for r in variants[name]["runs"]]
            ax.scatter([i] * len(values), values, label=name)
            ax.hlines(statistics.median(values), i - 0.3, i + 0.3)
        ax.set_xticks(range(len(names)), names)
        ax.set_ylabel(label)
    axes[0].axhline(TARGET_FPS, color="red", linestyle="--", linewidth=1, label=f"target {TARGET_FPS:g} fps")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"cctv-relay anonymize --profile {results['profile']}: {results['frames']} frames "
                 f"{SIZE[0]}x{SIZE[1]}, {results['cores']} cores, load {results['load_1min_start']:.1f}")
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per variant (default 3)")
    parser.add_argument("--frames", type=int, default=FRAMES, help=f"clip length (default {FRAMES})")
    parser.add_argument("--profile", default="realtime", choices=("realtime", "quality"))
    parser.add_argument("--against", metavar="REF", help="also time blur/ of this git revision, alternating")
    parser.add_argument("--clip", type=Path, help="time this clip instead of making one")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="anonymize-speed-") as tmp_name:
        tmp = Path(tmp_name)
        if args.clip:
            clip, clip_kind = args.clip, f"given: {args.clip.name}"
        else:
            clip = tmp / "crowd.mp4"
            print(f"making the {args.frames}-frame clip...", flush=True)
            clip_kind = make_crowd_clip(clip, args.frames)
        with av.open(str(clip)) as container:
            stream = container.streams.video[0]
            frames = stream.frames or args.frames
            clip_size = (stream.codec_context.width, stream.codec_context.height)
            clip_fps = float(stream.average_rate or FPS)
        roots = {"working tree": REPO}
        refs: dict[str, str] = {}
        if args.against:
            base = tmp / "against"
            base.mkdir()
            refs["against"] = export_blur(args.against, base)
            roots[f"{args.against} ({refs['against']})"] = base
        load_start = os.getloadavg()[0]
        variants: dict[str, dict[str, Any]] = {name: {"runs": []} for name in roots}
        for i in range(args.runs):
            for k, (name, root) in enumerate(roots.items()):  # alternating: both see the same load
                run = time_run(root, clip, tmp / f"out-{k}-{i}", args.profile)
                variants[name]["runs"].append(run)
                print(f"{name}: {run['frames']} frames in {run['wall_s']:.1f} s = {run['fps']:.1f} fps, "
                      f"CPU {run['cpu_s']:.1f} s, load {run['load_1min']:.1f}", flush=True)
        for entry in variants.values():
            entry.update(summarize(entry["runs"]))
        results: dict[str, Any] = {
            "profile": args.profile,
            "frames": frames,
            "clip": {"what": clip_kind, "size": clip_size, "fps": clip_fps},
            "cores": len(os.sched_getaffinity(0)),
            "load_1min_start": load_start,
            "target_fps": TARGET_FPS,
            "engine": engine_version(),
            "variants": variants,
        }
        if args.against:
            names = list(variants)
            now, then = variants[names[0]], variants[names[1]]
            results["ratio_fps"] = now["median_fps"] / then["median_fps"]
            results["ratio_cpu"] = then["median_cpu_s"] / now["median_cpu_s"]
            print(f"working tree vs {args.against}: {results['ratio_fps']:.2f}x fps (wall), "
                  f"{results['ratio_cpu']:.2f}x less CPU", flush=True)
        write_results("anonymize_speed", results, plot(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
