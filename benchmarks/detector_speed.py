"""Detector speed: one CenterFace call, float model against the 8-bit one (`centerface-int8`), per input.

The inputs are the sizes the engine's rounds use: a whole 720p frame, a half-size pass, a batch of zoom tiles,
a small motion region, a batch of small crops. Each call runs on one onnxruntime thread (as a camera's does)
with random pixels (a convolution's cost does not depend on them). The two models alternate, `--rounds`
times, each round the median of `--calls` calls; the ratio is taken per round, then its median. Written to
`detector_speed.{json,png}`.

Run: python -m benchmarks.detector_speed [--rounds R] [--calls N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

from benchmarks.common import machine_info, write_results
from blur import make_detector

SHAPES: tuple[tuple[str, tuple[int, int, int, int]], ...] = (
    ("720p frame", (1, 3, 736, 1280)),
    ("half-size pass", (1, 3, 384, 640)),
    ("4 zoom tiles", (4, 3, 320, 576)),
    ("motion region", (1, 3, 192, 320)),
    ("8 small crops", (8, 3, 96, 96)),
)
MODELS = ("centerface", "centerface-int8")


def time_call(session, x: np.ndarray, calls: int) -> float:
    """Median seconds of one call (after one untimed call)."""
    name = session.get_inputs()[0].name
    session.run(None, {name: x})
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        session.run(None, {name: x})
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(rounds: int, calls: int) -> list[dict]:
    sessions = {m: make_detector(m, threads=1).session for m in MODELS}
    rng = np.random.default_rng(0)
    rows = []
    for label, shape in SHAPES:
        x = rng.uniform(0, 255, shape).astype(np.float32)
        per_round = {m: [] for m in MODELS}
        for _ in range(rounds):
            for m in MODELS:
                per_round[m].append(time_call(sessions[m], x, calls))
        ratios = [f / q for f, q in zip(per_round[MODELS[0]], per_round[MODELS[1]], strict=True)]
        row = {"input": label, "shape": list(shape),
               "float_ms": 1000 * statistics.median(per_round[MODELS[0]]),
               "int8_ms": 1000 * statistics.median(per_round[MODELS[1]]),
               "speedup_median": statistics.median(ratios), "rounds_ms": {
                   m: [1000 * t for t in v] for m, v in per_round.items()}}
        rows.append(row)
        print(f"{label:<16} float {row['float_ms']:7.1f} ms  int8 {row['int8_ms']:7.1f} ms  "
              f"{row['speedup_median']:.2f}x", flush=True)
    return rows


def _figure(rows: list[dict]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    xs = np.arange(len(rows))
    ax.bar(xs - 0.2, [r["float_ms"] for r in rows], 0.4, label="float (centerface)")
    ax.bar(xs + 0.2, [r["int8_ms"] for r in rows], 0.4, label="8-bit (centerface-int8)")
    for i, r in enumerate(rows):
        ax.annotate(f"{r['speedup_median']:.2f}x", (i + 0.2, r["int8_ms"]), ha="center", va="bottom",
                    fontsize=8)
    ax.set_xticks(xs, [r["input"] for r in rows], fontsize=8)
    ax.set_ylabel("ms per call (median), one thread")
    ax.set_title("CenterFace, one onnxruntime call: float vs 8-bit", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the two models (default 3)")
    parser.add_argument("--calls", type=int, default=5, help="timed calls per round (default 5)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.calls < 1:
        print("error: --rounds and --calls must be at least 1", file=sys.stderr)
        return 2
    load = os.getloadavg()
    rows = measure(args.rounds, args.calls)
    if not args.no_write:
        write_results("detector_speed", {
            "what": "one CenterFace call per input, float vs 8-bit, one onnxruntime thread, random pixels",
            "rounds": args.rounds, "calls_per_round": args.calls, "load_avg_before": list(load),
            "load_avg_after": list(os.getloadavg()), "results": rows, "machine": machine_info()},
            _figure(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
