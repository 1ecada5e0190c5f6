"""Video privacy benchmark: how many face-frames the anonymizer leaves unmasked, on a clip with known truth.

The clip (`benchmarks.videogen`) puts real WIDER FACE faces, 15–80 px tall, on smooth paths over real CCTV
footage, about 8–12 at once, and is encoded to H.264 and decoded back, so detection sees real compression.
Three runs go over the decoded frames through `Anonymizer.process` (the YUV path the relay uses):
- `realtime`: the realtime profile offline, on its live schedule (a full detection every
  round(fps / detect_hz) frames, 6 at 25 fps; tracking in between), as fast as frames come: reproducible;
- `realtime-live`: the realtime profile in live mode (detection on the worker thread, results carried
  forward by optical flow), fed at the clip's real 25 fps: what a camera gets on this machine, load included;
- `quality`: the offline profile, full detection on every frame.

A face-frame is *covered* when at least 60 % of the visible pixels of its box were changed by the anonymizer
(any of Y, U, V differs from the decoded input). Reported per profile: share of face-frames uncovered, the
longest run of consecutive uncovered frames per face track, both per size bucket. Target: at most 0.5 %
uncovered and no uncovered run longer than one frame.

Run: `python -m benchmarks.privacy_video [--frames N]`. Writes benchmarks/results/privacy_video.{json,png}.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np

from benchmarks.common import write_results
from benchmarks.videogen import SIZE_BUCKETS, ClipTruth, make_clip, size_bucket

COVERED_SHARE = 0.6
TARGET_UNCOVERED = 0.005
TARGET_MAX_RUN = 1
VARIANTS = ("realtime", "realtime-live", "quality")


def _planes(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Copies of the Y, U, V planes of a yuv420p frame (copies: the anonymizer may work in place)."""
    arr = frame.to_ndarray(format="yuv420p") if frame.format.name != "yuv420p" else frame.to_ndarray()
    h, w = frame.height, frame.width
    y = arr[:h].copy()
    chroma = arr[h:].reshape(2, h // 2, w // 2)
    return y, chroma[0].copy(), chroma[1].copy()


def changed_mask(before: tuple[np.ndarray, ...], after: tuple[np.ndarray, ...]) -> np.ndarray:
    """Full-resolution bool map of pixels the anonymizer changed in any plane."""
    y0, u0, v0 = before
    y1, u1, v1 = after
    chroma = (u0 != u1) | (v0 != v1)
    full = np.repeat(np.repeat(chroma, 2, axis=0), 2, axis=1)
    changed = y0 != y1
    h, w = changed.shape
    changed[: full.shape[0], : full.shape[1]] |= full[:h, :w]
    return changed


class VideoClock:
    """Stands in for the engine's `time` module: `monotonic()` reads the video's clock, the rest is real.

    Offline, the engine still times its whole-frame sweeps (`full_sweep_s`) by the wall clock, so on a slow
    or busy machine it would sweep far more often per second of video than a live camera does. Driving it
    by the frames' timestamps gives the live schedule whatever the speed of the machine."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@contextlib.contextmanager
def video_clock() -> Iterator[VideoClock]:
    import blur.anonymizer as engine

    clock = VideoClock()
    saved = engine.time
    engine.time = clock  # type: ignore[assignment]
    try:
        yield clock
    finally:
        engine.time = saved


def engine_version() -> str:
    """The commit the engine was measured at, `+modified` when blur/ had uncommitted changes."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "blur"], cwd=root, capture_output=True, text=True
        )
    except OSError:
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + ("+modified" if dirty.stdout.strip() else "")


def detect_every(fps: float) -> int:
    """Frames between detections that the realtime profile's live rate gives at `fps`."""
    from blur import PROFILES

    return max(1, round(fps / PROFILES["realtime"].detect_hz))


def make_anonymizer(variant: str, fps: float) -> Any:
    from blur import PROFILES, Anonymizer

    if variant == "realtime":
        # Offline, frames as fast as they come, on the live schedule: a full detection every
        # `detect_every` frames (the profile's detect_hz at this frame rate), tracking in between.
        config = PROFILES["realtime"].with_(detect_every=detect_every(fps))
        return Anonymizer(config, live=False)
    if variant == "realtime-live":
        # The live path itself: detection on the worker thread, frames fed at the clip's real rate.
        return Anonymizer(profile="realtime", live=True)
    return Anonymizer(profile=variant, live=False)


def run_profile(truth: ClipTruth, profile: str) -> dict[str, Any]:
    anonymizer = make_anonymizer(profile, truth.fps)
    paced = profile == "realtime-live"
    start = time.perf_counter()
    counted = truth.counted()
    # Per track: frame numbers where the face was scored, and whether it was covered.
    per_track: dict[int, list[tuple[int, bool, float]]] = defaultdict(list)
    uncovered_per_frame: list[int] = []
    faces_per_frame: list[int] = []
    frame_ms: list[float] = []
    failsafe_frames = 0
    detected_frames = 0
    false_change: list[float] = []
    clock_ctx = contextlib.nullcontext(None) if paced else video_clock()
    try:
        with clock_ctx as clock, av.open(str(truth.path)) as container:
            for index, frame in enumerate(container.decode(container.streams.video[0])):
                if clock is not None:
                    clock.now = index / truth.fps
                if paced:  # a camera delivers frames on its clock; a late frame is not waited for
                    delay = start + index / truth.fps - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                before = _planes(frame)
                t0 = time.perf_counter()
                out, report = anonymizer.process(frame)
                frame_ms.append((time.perf_counter() - t0) * 1000)
                after = _planes(out)
                changed = changed_mask(before, after)
                failsafe_frames += int(bool(report.failsafe))
                detected_frames += int(bool(getattr(report, "detected", False)))
                faces = counted[index] if index < len(counted) else []
                missed = 0
                away = np.ones_like(changed)
                for face in truth.frames[index]:
                    x1, y1, x2, y2 = face.box
                    away[y1:y2, x1:x2] = False
                for face in faces:
                    x1, y1, x2, y2 = face.box
                    share = float(changed[y1:y2, x1:x2][face.visible].mean())
                    covered = share >= COVERED_SHARE
                    missed += int(not covered)
                    per_track[face.track_id].append((index, covered, face.height))
                false_change.append(float(changed[away].mean()))
                uncovered_per_frame.append(missed)
                faces_per_frame.append(len(faces))
                if (index + 1) % 100 == 0:
                    print(f"  {profile}: {index + 1} frames", flush=True)
    finally:
        anonymizer.close()

    def longest_run(entries: list[tuple[int, bool, float]]) -> int:
        best = run = 0
        last = None
        for index, covered, _ in entries:
            run = 0 if covered else (run + 1 if last is not None and index == last + 1 and run else 1)
            best = max(best, run)
            last = index
        return best

    buckets: dict[str, dict[str, Any]] = {}
    labels = [size_bucket((lo + min(hi, 80)) / 2) for lo, hi in SIZE_BUCKETS]
    for label in labels:
        buckets[label] = {"face_frames": 0, "uncovered": 0, "longest_uncovered_run": 0, "tracks": 0}
    track_runs: dict[int, int] = {}
    for track_id, entries in per_track.items():
        track_runs[track_id] = longest_run(entries)
        by_bucket: dict[str, list[tuple[int, bool, float]]] = defaultdict(list)
        for entry in entries:
            by_bucket[size_bucket(entry[2])].append(entry)
        for label, part in by_bucket.items():
            b = buckets[label]
            b["face_frames"] += len(part)
            b["uncovered"] += sum(not c for _, c, _ in part)
            b["longest_uncovered_run"] = max(b["longest_uncovered_run"], longest_run(part))
            b["tracks"] += 1
    for b in buckets.values():
        b["uncovered_share"] = b["uncovered"] / b["face_frames"] if b["face_frames"] else None

    total = sum(len(e) for e in per_track.values())
    uncovered = sum(not c for e in per_track.values() for _, c, _ in e)
    longest = max(track_runs.values(), default=0)
    return {
        "profile": profile,
        "face_frames": total,
        "uncovered": uncovered,
        "uncovered_share": uncovered / total if total else None,
        "longest_uncovered_run": longest,
        "tracks_with_run_over_1": sum(r > 1 for r in track_runs.values()),
        "longest_run_per_track": {str(k): v for k, v in sorted(track_runs.items())},
        "per_size": buckets,
        "failsafe_frames": failsafe_frames,
        "failsafe_share": failsafe_frames / len(frame_ms) if frame_ms else None,
        "detected_frames": detected_frames,
        "frames": len(frame_ms),
        "changed_share_away_from_faces": statistics.fmean(false_change) if false_change else None,
        "ms_per_frame_median": statistics.median(frame_ms) if frame_ms else None,
        "meets_target": bool(total and uncovered / total <= TARGET_UNCOVERED and longest <= TARGET_MAX_RUN),
        "timeline_uncovered": uncovered_per_frame,
        "timeline_faces": faces_per_frame,
    }


def plot(results: dict[str, dict[str, Any]]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_bar, ax_time) = plt.subplots(2, 1, figsize=(10, 7), gridspec_kw={"height_ratios": [1, 1.2]})
    labels = list(next(iter(results.values()))["per_size"].keys())
    width = 0.8 / max(1, len(results))
    for i, (profile, res) in enumerate(results.items()):
        shares = [100 * (res["per_size"][lb]["uncovered_share"] or 0) for lb in labels]
        xs = np.arange(len(labels)) + (i - (len(results) - 1) / 2) * width
        ax_bar.bar(
            xs, shares, width, label=f"{profile} ({100 * (res['uncovered_share'] or 0):.2f} % overall)"
        )
    ax_bar.axhline(100 * TARGET_UNCOVERED, color="red", linestyle="--", linewidth=1, label="target 0.5 %")
    ax_bar.set_xticks(np.arange(len(labels)), labels)
    ax_bar.set_xlabel("face height")
    ax_bar.set_ylabel("face-frames uncovered (%)")
    ax_bar.set_title("Faces left unmasked, by size (H.264 clip, real faces over real CCTV footage)")
    ax_bar.legend(fontsize=8)

    first = next(iter(results.values()))
    ax_time.plot(first["timeline_faces"], color="0.75", linewidth=1, label="faces scored in frame")
    for profile, res in results.items():
        ax_time.plot(res["timeline_uncovered"], linewidth=1, label=f"{profile}: faces uncovered")
    ax_time.set_xlabel("frame (25 fps)")
    ax_time.set_ylabel("faces")
    ax_time.legend(fontsize=8, loc="upper right")
    ax_time.set_title("Timeline")
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=400, help="clip length in frames (default 400, 16 s)")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--profiles", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="privacy-video-") as tmp:
        truth = make_clip(Path(tmp) / "clip.mp4", n_frames=args.frames, seed=args.seed)
        data = {
            "benchmark": "privacy_video",
            "criterion": {
                "covered_when": f">= {COVERED_SHARE:.0%} of the visible box pixels changed in Y, U or V",
                "target_uncovered_share": TARGET_UNCOVERED,
                "target_longest_run_frames": TARGET_MAX_RUN,
            },
            "clip": truth.describe() | {"seed": args.seed, "h264_crf": 23},
            "realtime_detect_every_frames": detect_every(truth.fps),
            "engine": engine_version(),
            "profiles": {},
        }
        for profile in args.profiles:
            res = run_profile(truth, profile)
            data["profiles"][profile] = res
            print(
                f"{profile}: {res['uncovered']}/{res['face_frames']} face-frames uncovered "
                f"({100 * (res['uncovered_share'] or 0):.2f} %), longest run {res['longest_uncovered_run']} "
                f"frames, {res['failsafe_frames']} failsafe frames, "
                f"{res['ms_per_frame_median']:.1f} ms/frame median",
                flush=True,
            )
            # Written after every run, so a long quality run that is cut short keeps what was measured.
            write_results("privacy_video", data, plot(data["profiles"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
