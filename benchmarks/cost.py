"""Cost benchmark: milliseconds per frame of the `realtime` profile on ONE core, at 720p and 1080p.

Inputs are real footage, upscaled and re-encoded to H.264 with PyAV before timing starts:
`vtest_h264.mp4` (fixed CCTV view, 768x576 at 10 fps; scaled to fill 16:9 and centre-cropped) and
`MOT17-13-SDP_960x540_h264.mp4` (street filmed from a moving bus, 25 fps; plain upscale). The process is
then pinned to one CPU with OpenCV, onnxruntime and the decoder/encoder on one thread each, and every frame
goes decode -> `Anonymizer.process` (YUV path) -> encode. The realtime profile runs inline on its live
schedule (a detection round every round(fps / detect_hz) frames, tracking in between), so one core carries
all of it.

Reported per clip over >= 200 frames, wall-clock medians and means: decode, motion, detect, track, mask (from
the anonymizer's own FrameReport timings), other anonymizer overhead, encode (libx264 veryfast/zerolatency,
for reference), and the amortized detection rate (full detections per frame). Also the CPU time of the
thread for decode, anonymize and encode (`time.thread_time`): on a shared machine, wall time includes waiting
for the core, CPU time does not. And the cost of a yuv420p -> BGR -> yuv420p round trip at 720p, the
conversion the YUV path avoids.
Target: <= 20 ms per 720p frame, amortized (mean of the anonymizer's total per frame).

Run: `python -m benchmarks.cost [--frames N]`. Writes benchmarks/results/cost.{json,png}.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

# One thread everywhere: set before numpy/OpenCV/onnxruntime start their pools.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.common import engine_version, shared_data_dir, write_results  # noqa: E402

TARGET_MS_720P = 20.0
RESOLUTIONS = {"720p": (1280, 720), "1080p": (1920, 1080)}
SOURCES = {
    "vtest": ("vtest_h264.mp4", "crop"),  # 4:3 fixed camera: fill 16:9 and crop the middle
    "mot17-13": ("MOT17-13-SDP_960x540_h264.mp4", "scale"),
}
STAGES = ("decode", "motion", "detect", "track", "mask", "other")


def _fit(img: np.ndarray, width: int, height: int, how: str) -> np.ndarray:
    h, w = img.shape[:2]
    if how == "crop":
        scale = max(width / w, height / h)
        big = cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_CUBIC)
        y0 = (big.shape[0] - height) // 2
        x0 = (big.shape[1] - width) // 2
        return big[y0 : y0 + height, x0 : x0 + width]
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_CUBIC)


def prepare_clip(source: Path, how: str, size: tuple[int, int], frames: int, out: Path) -> Fraction:
    """Upscale the first `frames` frames of `source` to `size` and encode them to H.264 at `out`."""
    width, height = size
    with av.open(str(source)) as src, av.open(str(out), "w") as dst:
        in_stream = src.streams.video[0]
        rate = Fraction(in_stream.average_rate or 25)
        stream = dst.add_stream("libx264", rate=rate, options={"crf": "23", "preset": "fast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i, frame in enumerate(src.decode(in_stream)):
            if i >= frames:
                break
            img = _fit(frame.to_ndarray(format="bgr24"), width, height, how)
            vf = av.VideoFrame.from_ndarray(img, format="bgr24").reformat(format="yuv420p")
            vf.pts, vf.time_base = i, 1 / rate
            for packet in stream.encode(vf):
                dst.mux(packet)
        for packet in stream.encode(None):
            dst.mux(packet)
    return rate


def pin_to_one_core() -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    cv2.setNumThreads(1)


def make_anonymizer(fps: float) -> Any:
    from blur import PROFILES, Anonymizer

    # The live schedule, run inline so one core does all of it: a full detection every round(fps / detect_hz)
    # frames, tracking in between. CenterFace's onnxruntime session runs one intra-op thread by default.
    realtime = PROFILES["realtime"]
    return Anonymizer(realtime.with_(detect_every=max(1, round(fps / realtime.detect_hz))), live=False)


def measure_clip(path: Path, fps: float) -> dict[str, Any]:
    anonymizer = make_anonymizer(fps)
    rows: dict[str, list[float]] = {k: [] for k in (*STAGES, "anonymize", "encode")}
    cpu: dict[str, list[float]] = {k: [] for k in ("decode", "anonymize", "encode")}
    detected = 0
    with av.open(str(path)) as container, tempfile.TemporaryDirectory() as tmp:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        stream.codec_context.thread_count = 1
        sink = av.open(str(Path(tmp) / "out.mp4"), "w")
        enc = sink.add_stream(
            "libx264", rate=stream.average_rate or 25, options={"preset": "veryfast", "tune": "zerolatency"}
        )
        enc.width, enc.height, enc.pix_fmt = (
            stream.codec_context.width,
            stream.codec_context.height,
            "yuv420p",
        )
        enc.codec_context.thread_count = 1
        frames = container.decode(stream)
        try:
            while True:
                t0, c0 = time.perf_counter(), time.thread_time()
                try:
                    frame = next(frames)
                except StopIteration:
                    break
                t1, c1 = time.perf_counter(), time.thread_time()
                out, report = anonymizer.process(frame)
                t2, c2 = time.perf_counter(), time.thread_time()
                for packet in enc.encode(out):
                    sink.mux(packet)
                t3, c3 = time.perf_counter(), time.thread_time()
                cpu["decode"].append((c1 - c0) * 1000)
                cpu["anonymize"].append((c2 - c1) * 1000)
                cpu["encode"].append((c3 - c2) * 1000)
                timings = report.timings_ms
                total = (t2 - t1) * 1000
                rows["decode"].append((t1 - t0) * 1000)
                rows["anonymize"].append(total)
                parts = 0.0
                for stage in ("motion", "detect", "track", "mask"):
                    value = float(timings.get(stage, 0.0))
                    rows[stage].append(value)
                    parts += value
                rows["other"].append(max(0.0, total - parts))
                rows["encode"].append((t3 - t2) * 1000)
                detected += int(bool(report.detected))
        finally:
            anonymizer.close()
            for packet in enc.encode(None):
                sink.mux(packet)
            sink.close()
    n = len(rows["anonymize"])
    return {
        "frames": n,
        "median_ms": {k: statistics.median(v) for k, v in rows.items()},
        "mean_ms": {k: statistics.fmean(v) for k, v in rows.items()},
        "p95_ms": {k: float(np.percentile(v, 95)) for k, v in rows.items()},
        "cpu_mean_ms": {k: statistics.fmean(v) for k, v in cpu.items()},
        "cpu_median_ms": {k: statistics.median(v) for k, v in cpu.items()},
        "detections_per_frame": detected / n if n else 0.0,
    }


def conversion_cost(path: Path, frames: int = 200) -> dict[str, float]:
    """yuv420p -> BGR -> yuv420p at the clip's size: what a BGR-only engine would add per frame."""
    times: list[float] = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= frames:
                break
            t0 = time.perf_counter()
            bgr = frame.to_ndarray(format="bgr24")
            back = av.VideoFrame.from_ndarray(bgr, format="bgr24").reformat(format="yuv420p")
            times.append((time.perf_counter() - t0) * 1000)
            del back
    return {"median_ms": statistics.median(times), "mean_ms": statistics.fmean(times), "frames": len(times)}


def plot(clips: dict[str, dict[str, Any]]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(clips)
    fig, ax = plt.subplots(figsize=(10, 5))
    xs = np.arange(len(names))
    bottom = np.zeros(len(names))
    for stage in STAGES:
        values = np.array([clips[n]["mean_ms"][stage] for n in names])
        ax.bar(xs - 0.18, values, 0.34, bottom=bottom, label=stage)
        bottom += values
    cpu = [clips[n]["cpu_mean_ms"]["decode"] + clips[n]["cpu_mean_ms"]["anonymize"] for n in names]
    ax.scatter(
        xs - 0.18, cpu, marker="_", s=600, color="black", zorder=3, label="decode + anonymize, CPU time"
    )
    enc = [clips[n]["mean_ms"]["encode"] for n in names]
    ax.bar(xs + 0.18, enc, 0.34, color="0.8", hatch="//", edgecolor="0.5", label="encode (reference)")
    ax.axhline(TARGET_MS_720P, color="red", linestyle="--", linewidth=1, label="720p target (20 ms)")
    ticks = [f"{n}\n{clips[n]['fps']:g} fps, {clips[n]['detections_per_frame']:.2f} det/frame" for n in names]
    ax.set_xticks(xs, ticks, fontsize=8)
    ax.set_ylabel("ms per frame, mean over all frames (one core, wall clock)")
    ax.set_title("realtime profile on one core: where the time goes")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=250, help="frames per clip (default 250)")
    args = parser.parse_args(argv)
    data_dir = shared_data_dir() / "videos"

    with tempfile.TemporaryDirectory(prefix="cost-") as tmp:
        inputs: dict[str, tuple[Path, Fraction]] = {}
        for name, (file, how) in SOURCES.items():
            for res, size in RESOLUTIONS.items():
                out = Path(tmp) / f"{name}-{res}.mp4"
                rate = prepare_clip(data_dir / file, how, size, args.frames, out)
                inputs[f"{name} {res}"] = (out, rate)

        pin_to_one_core()  # clips are prepared with every core; everything timed runs on one
        clips: dict[str, dict[str, Any]] = {}
        for key, (path, rate) in inputs.items():
            result = measure_clip(path, float(rate))
            result["fps"] = float(rate)
            clips[key] = result
            mean = result["mean_ms"]
            print(
                f"{key}: anonymize {mean['anonymize']:.1f} ms/frame mean "
                f"(motion {mean['motion']:.1f}, detect {mean['detect']:.1f}, track {mean['track']:.1f}, "
                f"mask {mean['mask']:.1f}), "
                f"decode {mean['decode']:.1f}, encode {mean['encode']:.1f}; "
                f"CPU: anonymize {result['cpu_mean_ms']['anonymize']:.1f} ms/frame mean; "
                f"{result['detections_per_frame']:.2f} detections/frame",
                flush=True,
            )
        conversion = conversion_cost(inputs["vtest 720p"][0])
        print(f"720p yuv->bgr->yuv: {conversion['median_ms']:.1f} ms median", flush=True)

    worst_720 = max(v["mean_ms"]["anonymize"] for k, v in clips.items() if k.endswith("720p"))
    worst_720_cpu = max(v["cpu_mean_ms"]["anonymize"] for k, v in clips.items() if k.endswith("720p"))
    data = {
        "benchmark": "cost",
        "engine": engine_version(),
        "setup": {
            "profile": "realtime",
            "cores": "one (pinned to a single CPU; OpenCV, onnxruntime, decoder, encoder on 1 thread)",
            "encoder_reference": "libx264 preset veryfast, tune zerolatency, 1 thread",
            "inputs": {k: f"{SOURCES[k][0]} upscaled ({SOURCES[k][1]}), H.264 crf 23" for k in SOURCES},
            "frames_per_clip": args.frames,
        },
        "clips": clips,
        "yuv_bgr_yuv_720p": conversion,
        "target_ms_720p": TARGET_MS_720P,
        "worst_720p_mean_ms": worst_720,
        "worst_720p_cpu_mean_ms": worst_720_cpu,
        "meets_target": worst_720 <= TARGET_MS_720P,
        "meets_target_cpu": worst_720_cpu <= TARGET_MS_720P,
    }
    write_results("cost", data, plot(clips))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
