"""Image privacy benchmark: how many annotated faces each anonymizer protects, and at what collateral.

Data: ../shared/data/faces/wider-val-416 (100 WIDER FACE validation crowd photos stretched to 416x416,
2,656 faces; `invalid` faces skipped). Internal evaluation only: read in place, never copied.

Metric. A pixel is *changed* when any BGR channel of the output differs from the input by more than
CHANGE_THRESHOLD levels (outputs are compared in memory, never re-encoded, so the only noise is rounding).
A face is *protected* when at least PROTECTED_SHARE of the pixels in its annotated box changed.
*Collateral* is the share of pixels outside every annotated face box (invalid ones included) that changed.

Run: .venv/bin/python -m benchmarks.privacy_images [--limit N] [--variants a,b] [--sweep]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.common import machine_info, shared_data_dir, write_results

CHANGE_THRESHOLD = 3
PROTECTED_SHARE = 0.6
BUCKETS = (("<10", 0, 10), ("10-20", 10, 20), ("20-40", 20, 40), (">=40", 40, 10**9))
VARIANTS = ("deface", "realtime", "quality", "mediapipe")

Anonymize = Callable[[np.ndarray], np.ndarray]


def _deface() -> Anonymize:
    """deface 1.5.0's own pipeline with its CLI defaults: threshold 0.2, mask_scale 1.3, blur, ellipse."""
    import contextlib
    import io

    from deface.centerface import CenterFace
    from deface.deface import anonymize_frame

    with contextlib.redirect_stdout(io.StringIO()):  # it prints the provider it picked
        centerface = CenterFace(in_shape=None, backend="auto")

    def run(bgr: np.ndarray) -> np.ndarray:
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # deface reads frames as RGB (imageio)
        dets, _ = centerface(rgb, threshold=0.2)
        anonymize_frame(dets, rgb, mask_scale=1.3, replacewith="blur", ellipse=True, draw_scores=False,
                        replaceimg=None, mosaicsize=20)
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)

    return run


def _engine(profile: str, detector_name: str | None = None) -> Anonymize:
    from blur import PROFILES, Anonymizer, make_detector

    cfg = PROFILES[profile]
    name = detector_name or cfg.detector
    detector = make_detector(name, threshold=None if detector_name else cfg.threshold)

    def run(bgr: np.ndarray) -> np.ndarray:
        # A still image: a fresh engine per image, so no motion history or tracks carry over.
        anonymizer = Anonymizer(cfg, detector=detector)
        out, _report = anonymizer.process_bgr(bgr)
        return out

    return run


# -- the sweep: masking settings of `realtime` on the same detections -----------------------------------

# What was tried for the stills' collateral (each a change of the realtime profile; "small_h"/"small_t":
# detections under small_h px kept only from score small_t, a benchmark-side filter, no engine knob).
SWEEP: tuple[dict, ...] = (
    {}, {"shape": "box"}, {"margin": 1.0, "margin_large": 1.0, "vertical": 1.0},
    {"margin": 1.25}, {"margin_large": 1.05}, {"vertical": 1.2}, {"large_px": 16},
    {"margin": 1.35, "margin_large": 1.15, "vertical": 1.2, "large_px": 32},
    {"margin": 1.3, "margin_large": 1.1, "vertical": 1.3, "large_px": 32},
    {"margin": 1.2, "margin_large": 1.0, "vertical": 1.2},
    {"threshold": 0.11}, {"threshold": 0.13}, {"threshold": 0.15},
    {"small_h": 10, "small_t": 0.15}, {"small_h": 14, "small_t": 0.2},
    {"margin": 1.35, "margin_large": 1.15, "vertical": 1.2, "large_px": 32, "small_h": 10, "small_t": 0.2},
)


class CachedDetector:
    """The profile's detector at a low threshold, run once per distinct input; each setting of the sweep
    reads its rows from the cache, filtered by its own threshold (and small-box filter)."""

    def __init__(self, name: str, floor: float) -> None:
        from blur import make_detector

        self._detector = make_detector(name, threshold=floor)
        self.name = self._detector.name
        self._cache: dict[tuple, np.ndarray] = {}
        self.threshold, self.small_h, self.small_t = floor, 0.0, 0.0

    def _rows(self, key: tuple, compute: Callable[[], np.ndarray]) -> np.ndarray:
        if key not in self._cache:
            self._cache[key] = compute()
        rows = self._cache[key]
        keep = rows[:, 4] >= self.threshold
        keep &= ((rows[:, 3] - rows[:, 1]) >= self.small_h) | (rows[:, 4] >= self.small_t)
        return rows[keep]

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        key = (0.0, rgb.shape, hashlib.blake2b(rgb.tobytes(), digest_size=16).digest())
        return self._rows(key, lambda: self._detector.detect(rgb))

    def detect_scaled(self, rgb: np.ndarray, scale: float) -> np.ndarray:
        key = (scale, rgb.shape, hashlib.blake2b(rgb.tobytes(), digest_size=16).digest())
        return self._rows(key, lambda: self._detector.detect_scaled(rgb, scale))


def sweep(images: list[dict], root: Path, settings: tuple[dict, ...] = SWEEP) -> list[dict]:
    from blur import PROFILES, Anonymizer

    base = PROFILES["realtime"]
    detector = CachedDetector(base.detector, floor=min(base.threshold, 0.05))
    rows = []
    for setting in settings:
        overrides = {k: v for k, v in setting.items() if k not in ("small_h", "small_t")}
        cfg = base.with_(**overrides)
        detector.threshold = cfg.threshold
        detector.small_h, detector.small_t = setting.get("small_h", 0.0), setting.get("small_t", 0.0)

        def run(bgr: np.ndarray, cfg: Any = cfg) -> np.ndarray:
            return Anonymizer(cfg, detector=detector).process_bgr(bgr)[0]

        r = evaluate_with(run, images, root)
        rows.append({"setting": setting, **{k: r[k] for k in ("buckets", "protected_ge20", "collateral")}})
        b = r["buckets"]
        print(f"{json.dumps(setting):<100} "
              + " ".join(f"{(b[n]['protected'] or 0):6.3f}" for n, _, _ in BUCKETS)
              + f" {r['protected_ge20']:6.3f} {r['collateral']:8.2%}", flush=True)
    return rows


def _sweep_figure(rows: list[dict]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for row in rows:
        label = ", ".join(f"{k}={v}" for k, v in row["setting"].items()) or "realtime (today)"
        ax.scatter(row["collateral"] * 100, row["protected_ge20"], s=18)
        ax.annotate(label, (row["collateral"] * 100, row["protected_ge20"]), fontsize=5,
                    xytext=(3, 2), textcoords="offset points")
    ax.axhline(0.95, color="grey", lw=0.5, ls="--")
    ax.axvline(6.0, color="grey", lw=0.5, ls="--")
    ax.set_xlabel("collateral, % of pixels away from annotated faces changed")
    ax.set_ylabel("faces >= 20 px protected")
    ax.set_title("Stills (WIDER val, 100 images), realtime's masking settings; target: above/left",
                 fontsize=9)
    return fig


def build(variant: str) -> Anonymize:
    if variant == "deface":
        return _deface()
    if variant == "mediapipe":
        return _engine("realtime", "blazeface")
    return _engine(variant)


def score_image(original: np.ndarray, output: np.ndarray, faces: list, invalid: list[bool],
                ) -> tuple[list[tuple[float, bool]], int, int]:
    """Per valid face (height, protected), changed non-face pixels, non-face pixels."""
    changed = np.abs(output.astype(np.int16) - original.astype(np.int16)).max(axis=2) > CHANGE_THRESHOLD
    h_img, w_img = changed.shape
    face_area = np.zeros_like(changed)
    per_face = []
    for (x, y, w, h), bad in zip(faces, invalid, strict=True):
        x1, y1 = max(0, round(x)), max(0, round(y))
        x2, y2 = min(w_img, max(x1 + 1, round(x + w))), min(h_img, max(y1 + 1, round(y + h)))
        face_area[y1:y2, x1:x2] = True
        if not bad:
            per_face.append((float(h), bool(changed[y1:y2, x1:x2].mean() >= PROTECTED_SHARE)))
    outside = ~face_area
    return per_face, int(changed[outside].sum()), int(outside.sum())


def evaluate(variant: str, images: list[dict], root: Path) -> dict:
    return evaluate_with(build(variant), images, root)


def evaluate_with(anonymize: Anonymize, images: list[dict], root: Path) -> dict:
    faces: list[tuple[float, bool]] = []
    coll_changed = coll_total = 0
    times = []
    for im in images:
        bgr = cv2.imread(str(root / im["file"]), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f"cannot read {root / im['file']}")
        t = time.perf_counter()
        out = anonymize(bgr.copy())
        times.append((time.perf_counter() - t) * 1000)
        invalid = [bool(a["invalid"]) for a in im["face_attributes"]]
        per_face, c, n = score_image(bgr, out, im["faces"], invalid)
        faces.extend(per_face)
        coll_changed += c
        coll_total += n
    h = np.asarray([f[0] for f in faces])
    p = np.asarray([f[1] for f in faces])
    buckets = {}
    for name, lo, hi in BUCKETS:
        sel = (h >= lo) & (h < hi)
        buckets[name] = {"faces": int(sel.sum()), "protected": float(p[sel].mean()) if sel.any() else None}
    return {
        "buckets": buckets,
        "protected_ge20": float(p[h >= 20].mean()),
        "protected_all": float(p.mean()),
        "faces": len(faces),
        "collateral": coll_changed / max(coll_total, 1),
        "ms_per_image_median": float(np.median(times)),
    }


def _figure(results: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    names = [b[0] for b in BUCKETS] + ["all"]
    width = 0.8 / max(1, len(results))
    for i, (variant, r) in enumerate(results.items()):
        vals = [r["buckets"][b]["protected"] or 0 for b in names[:-1]] + [r["protected_all"]]
        ax.bar(np.arange(len(names)) + i * width, vals, width,
               label=f"{variant} (collateral {r['collateral']:.1%})")
    labels = [f"{n} px" for n in names[:-1]] + ["all"]
    ax.set_xticks(np.arange(len(names)) + width * (len(results) - 1) / 2, labels)
    ax.set_ylabel("share of faces protected")
    ax.set_ylim(0, 1)
    ax.axhline(0.95, color="grey", lw=0.5, ls="--")
    ax.set_title("Faces protected by face height (WIDER val, 416x416, 100 images)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="only the first N images (quick look)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--sweep", action="store_true",
                        help="the masking settings tried for the stills' collateral (privacy_images_sweep)")
    args = parser.parse_args(argv)
    root = shared_data_dir() / "faces" / "wider-val-416"
    ann_path = root / "annotations.json"
    if not ann_path.exists():
        print(f"error: annotations not found at {ann_path} (set CCTV_SHARED_DATA)", file=sys.stderr)
        return 2
    images = json.loads(ann_path.read_text())["images"]
    if args.limit:
        images = images[: args.limit]
    if args.sweep:
        rows = sweep(images, root)
        if not args.no_write:
            write_results("privacy_images_sweep", {
                "what": "realtime's masking settings on the stills, detections computed once and shared",
                "images": len(images), "results": rows}, _sweep_figure(rows))
        return 0
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        print(f"error: unknown variant(s) {', '.join(sorted(unknown))}; choose from {', '.join(VARIANTS)}",
              file=sys.stderr)
        return 2
    results = {}
    print(f"{'variant':<10} {'<10':>6} {'10-20':>6} {'20-40':>6} {'>=40':>6} {'>=20':>6} {'all':>6} "
          f"{'collat.':>8} {'ms/img':>7}")
    for v in variants:
        r = evaluate(v, images, root)
        results[v] = r
        b = r["buckets"]
        print(f"{v:<10} " + " ".join(f"{(b[n]['protected'] or 0):6.3f}" for n, _, _ in BUCKETS)
              + f" {r['protected_ge20']:6.3f} {r['protected_all']:6.3f} {r['collateral']:8.2%}"
              f" {r['ms_per_image_median']:7.0f}", flush=True)
    if not args.no_write:
        from blur import PROFILES

        data = {
            "dataset": "WIDER FACE val subset, 416x416, invalid faces skipped",
            "images": len(images),
            "metric": {"changed": f"max abs BGR difference > {CHANGE_THRESHOLD}",
                       "protected": f">= {PROTECTED_SHARE:.0%} of face-box pixels changed",
                       "collateral": "changed share of pixels outside all annotated face boxes"},
            "profiles": {name: {k: v for k, v in vars(cfg).items() if k != "extras"}
                         for name, cfg in PROFILES.items()},
            "results": results,
            "machine": machine_info(),
            "note": "ms/img: median wall time on a shared machine, all cores available to onnxruntime "
                    "sessions built with 1 intra-op thread (deface uses OpenCV DNN threads); noisy.",
        }
        write_results("privacy_images", data, _figure(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
