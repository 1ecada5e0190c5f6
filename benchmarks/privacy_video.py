"""Video privacy benchmark: how many face-frames the anonymizer leaves unmasked, on a clip with known truth.

The clip (`benchmarks.videogen`) puts real WIDER FACE faces, 15–80 px tall, on smooth paths over real CCTV
footage, about 8–12 at once, and is encoded to H.264 and decoded back, so detection sees real compression.
Three runs go over the decoded frames through `Anonymizer.process` (the YUV path the relay uses):
- `realtime`: the realtime profile offline, on its live schedule (a detection round every
  round(fps / detect_hz) frames, tracking in between), as fast as frames come: reproducible;
- `realtime-live`: the realtime profile in live mode (detection on the worker thread, results carried
  forward by optical flow), fed at the clip's real 25 fps: what a camera gets on this machine, load included;
- `quality`: the offline profile, full detection on every frame.

Two clips (`--clips`): `vtest`, the faces over the fixed CCTV view `vtest_h264.mp4` (768x576), and `crowd`,
the same generator over the dense crowd of MOT20-08 (1280x720, ping-pong; its real people move everywhere).

A face-frame is *uncovered* when either
- *unchanged*: less than 60 % of the visible pixels of its box were changed by the anonymizer (any of Y, U, V
  differs from the decoded input), or
- *readable*: the masked face keeps more of the face's structure than a 6-cell mosaic of it would (grey SSIM
  to the original over the face box above that mosaic's + 0.05; `benchmarks.legibility`).
Reported per profile: share of face-frames uncovered (and of each kind), the longest run of consecutive
uncovered frames per face track, both per size bucket; and what is left of the scene: *legibility* (SSIM of
the quarter-size grey picture to the input's, away from the faces) and *collateral* (share of the face-free
pixels whose grey level changed by more than 8). Target: at most 0.5 % uncovered and no uncovered run longer
than one frame; legibility >= 0.90 on vtest, >= 0.85 on the crowd.

Run: `python -m benchmarks.privacy_video [--clips vtest crowd] [--frames N]`. Writes
benchmarks/results/privacy_video.{json,png} (vtest), privacy_video_crowd.{json,png} (crowd) and
privacy_video_summary.{json,png} (coverage against legibility, every clip and run on record).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import av
import numpy as np

from benchmarks import legibility as leg
from benchmarks.common import RESULTS_DIR, engine_version, write_results
from benchmarks.videogen import BACKGROUNDS, SIZE_BUCKETS, ClipTruth, make_clip, size_bucket

COVERED_SHARE = 0.6
TARGET_UNCOVERED = 0.005
TARGET_MAX_RUN = 1
TARGET_LEGIBILITY = {"vtest": 0.90, "crowd": 0.85}
# "untouched" passes frames through unchanged: the reference that scores legibility 1.0.
VARIANTS = ("realtime", "realtime-live", "quality", "untouched")
DEFAULT_VARIANTS = ("realtime", "realtime-live", "quality")
CLIPS = tuple(BACKGROUNDS)


DEFAULT_SEED = 2026


def results_name(clip: str, stops: int, seed: int = DEFAULT_SEED, tag: str = "") -> str:
    """Results file of a clip; a clip made with another seed (other faces, paths and times) is a check
    that the figures are not the one clip's: its own file. `tag`: a variant's (`--set`)."""
    return ("privacy_video" + ("" if clip == "vtest" else f"_{clip}") + ("_stops" if stops else "")
            + ("" if seed == DEFAULT_SEED else f"_seed{seed}") + (f"_{tag}" if tag else ""))


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


def detect_every(fps: float, detect_hz: float | None = None) -> int:
    """Frames between detections that the realtime profile's live rate (or `detect_hz`) gives at `fps`."""
    from blur import PROFILES

    return max(1, round(fps / (detect_hz or PROFILES["realtime"].detect_hz)))


class Untouched:
    """Stands in for the anonymizer and changes nothing."""

    def process(self, frame: av.VideoFrame) -> tuple[av.VideoFrame, Any]:
        from blur import FrameReport

        return frame, FrameReport(boxes=[], failsafe=False, reason=None, detected=False)

    def close(self) -> None:
        pass


def _mask_parts(changed: np.ndarray, report: Any) -> dict[str, np.ndarray]:
    """What covered each pixel of a frame: the whole frame (fail closed), or the face masks (the report's
    face boxes; in a crowd they lie over silhouettes too) and the silhouettes (whatever else changed)."""
    if report.failsafe:
        return {"whole frame": np.ones_like(changed)}
    faces = np.zeros_like(changed)
    for x1, y1, x2, y2 in getattr(report, "faces", []):
        faces[y1:y2, x1:x2] = True
    return {"face masks": faces, "silhouettes": changed & ~faces}


def make_anonymizer(variant: str, fps: float, settings: dict[str, Any] | None = None) -> Any:
    """The anonymizer of a run; `settings` change the realtime profile (both of its runs) for a variant."""
    from blur import PROFILES, Anonymizer

    if variant == "untouched":
        return Untouched()
    realtime = PROFILES["realtime"].with_(**(settings or {}))
    if variant == "realtime":
        # Offline, frames as fast as they come, on the live schedule: a detection round every
        # `detect_every` frames (the profile's detect_hz at this frame rate), tracking in between.
        return Anonymizer(realtime.with_(detect_every=detect_every(fps, realtime.detect_hz)), live=False)
    if variant == "realtime-live":
        # The live path itself: detection on the worker thread, frames fed at the clip's real rate.
        return Anonymizer(realtime, live=True)
    return Anonymizer(profile=variant, live=False)


def parse_settings(pairs: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` pairs as realtime-profile settings: names of blur.profiles.AnonymizerConfig, values in
    JSON (a list for a tuple); SystemExit on an unknown name or a value of the wrong kind."""
    from dataclasses import fields

    from blur import PROFILES

    known = {f.name: getattr(PROFILES["realtime"], f.name) for f in fields(PROFILES["realtime"])}
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or key not in known:
            raise SystemExit(f"--set {pair!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(known))}")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        default = known[key]
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        kind = type(default) if default is not None else float  # the one optional setting is in ms
        if isinstance(value, int) and kind is float and not isinstance(value, bool):
            value = float(value)
        if not (value is None and default is None) and type(value) is not kind:
            raise SystemExit(f"--set {pair!r}: {key} is a {kind.__name__}")
        out[key] = value
    return out


def run_profile(truth: ClipTruth, profile: str, max_frames: int | None = None, anonymizer: Any = None,
                paced: bool | None = None, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score one run over the clip. `anonymizer` (anything with process(frame) and close()) replaces the
    profile's own; `paced` feeds frames at the clip's rate (default: for `realtime-live`); `settings`
    change the realtime profile (`make_anonymizer`)."""
    max_frames = len(truth.frames) if max_frames is None else max_frames
    anonymizer = make_anonymizer(profile, truth.fps, settings) if anonymizer is None else anonymizer
    paced = profile == "realtime-live" if paced is None else paced
    start = time.perf_counter()
    counted = truth.counted()
    # Per track: frame numbers where the face was scored, and whether it was covered.
    per_track: dict[int, list[tuple[int, bool, float]]] = defaultdict(list)
    # The same, counting as covered a face the SSIM rule flags that is cut into at most 6 cells down it.
    per_track_cells: dict[int, list[tuple[int, bool, float]]] = defaultdict(list)
    unchanged_count = readable_count = 0
    coarse_readable = 0  # readable by SSIM, yet cut into at most 6 cells down the face box
    readable_per_size: dict[str, int] = defaultdict(int)
    readable_examples: list[dict[str, Any]] = []  # the first readable face-frames, to look at
    unchanged_per_size: dict[str, int] = defaultdict(int)
    legibility: list[float] = []
    loss_by_part: dict[str, float] = defaultdict(float)  # summed over frames
    collateral: list[float] = []
    uncovered_per_frame: list[int] = []
    faces_per_frame: list[int] = []
    frame_ms: list[float] = []
    failsafe_frames = 0
    failsafe_timeline: list[int] = []
    detected_frames = 0
    false_change: list[float] = []
    try:
        with av.open(str(truth.path)) as container:
            for index, frame in enumerate(container.decode(container.streams.video[0])):
                if index >= max_frames:
                    break
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
                grey0, grey1 = leg.grey_of_luma(before[0]), leg.grey_of_luma(after[0])
                free = leg.face_free_mask(grey0.shape, [f.box for f in truth.frames[index]])
                scene, collateral_share, losses = leg.scene_scores(
                    grey0, grey1, free, _mask_parts(changed, report))
                for part, value in losses.items():
                    loss_by_part[part] += value
                legibility.append(scene)
                collateral.append(collateral_share)
                failsafe_frames += int(bool(report.failsafe))
                failsafe_timeline.append(int(bool(report.failsafe)))
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
                    unchanged = share < COVERED_SHARE
                    kept, reference = leg.face_readability(
                        grey0[y1:y2, x1:x2], grey1[y1:y2, x1:x2], face.visible
                    )
                    readable = leg.readable(kept, reference)
                    unchanged_count += unchanged
                    readable_count += readable
                    unchanged_per_size[size_bucket(face.height)] += unchanged
                    readable_per_size[size_bucket(face.height)] += readable
                    coarse = False
                    if readable and not unchanged:
                        down = leg.cells_down(grey1[y1:y2, x1:x2], face.visible)
                        coarse = down <= leg.MOSAIC_CELLS
                        coarse_readable += coarse
                        if len(readable_examples) < 20:
                            readable_examples.append({
                                "cells_down": down,
                                "frame": index, "track": face.track_id, "height_px": round(face.height, 1),
                                "changed_share": round(share, 3), "ssim": round(kept, 3),
                                "mosaic_ssim": round(reference, 3),
                            })
                    covered = not (unchanged or readable)
                    missed += int(not covered)
                    per_track[face.track_id].append((index, covered, face.height))
                    per_track_cells[face.track_id].append((index, covered or coarse, face.height))
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
    for label, b in buckets.items():
        b["uncovered_share"] = b["uncovered"] / b["face_frames"] if b["face_frames"] else None
        b["unchanged"] = unchanged_per_size[label]
        b["readable"] = readable_per_size[label]

    # Which kinds of movement get missed: by path kind and by speed (face heights per second).
    tracks = {t.track_id: t for t in truth.tracks}

    def speed_label(track_id: int) -> str:
        v = tracks[track_id].speed
        return "< 1 face/s" if v < 1 else ("1-3 face/s" if v < 3 else ">= 3 face/s")

    occlusion = {0: "none", 1: "partial", 2: "heavy"}
    blur = {0: "clear", 1: "normal blur", 2: "heavy blur"}
    by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_speed: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_occlusion: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_blur: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for track_id, entries in per_track.items():
        occ = occlusion.get(tracks[track_id].crop.attributes.get("occlusion", -1), "unknown")
        sharp = blur.get(tracks[track_id].crop.attributes.get("blur", -1), "unknown")
        keys = (
            (tracks[track_id].kind, by_kind),
            (speed_label(track_id), by_speed),
            (occ, by_occlusion),
            (sharp, by_blur),
        )
        for key, table in keys:
            table[key][0] += len(entries)
            table[key][1] += sum(not c for _, c, _ in entries)

    def shares(table: dict[str, list[int]]) -> dict[str, dict[str, float]]:
        return {
            k: {"face_frames": n, "uncovered": u, "uncovered_share": u / n} for k, (n, u) in table.items()
        }

    # The faces missed most, to look at: which crop, how it moved, how long it stayed unmasked.
    ranked = sorted(per_track, key=lambda k: -sum(not c for _, c, _ in per_track[k]))
    worst_tracks = []
    for track_id in ranked[:8]:
        entries, track = per_track[track_id], tracks[track_id]
        missed = sum(not c for _, c, _ in entries)
        if not missed:
            break
        worst_tracks.append(
            {
                "track": track_id,
                "uncovered": missed,
                "face_frames": len(entries),
                "longest_run": track_runs[track_id],
                "height_px": [round(min(e[2] for e in entries)), round(max(e[2] for e in entries))],
                "kind": track.kind,
                "speed_face_heights_per_s": round(track.speed, 2),
                "source": track.crop.source,
                "wider_attributes": track.crop.attributes,
            }
        )

    total = sum(len(e) for e in per_track.values())
    uncovered = sum(not c for e in per_track.values() for _, c, _ in e)
    longest = max(track_runs.values(), default=0)
    return {
        "profile": profile,
        "face_frames": total,
        "uncovered": uncovered,
        "uncovered_share": uncovered / total if total else None,
        "unchanged": unchanged_count,
        "unchanged_share": unchanged_count / total if total else None,
        "readable": readable_count,
        "readable_share": readable_count / total if total else None,
        "readable_changed_examples": readable_examples,
        "readable_at_most_6_cells": coarse_readable,
        "longest_run_finer_than_6_cells": max((longest_run(e) for e in per_track_cells.values()), default=0),
        "longest_uncovered_run": longest,
        "tracks_with_run_over_1": sum(r > 1 for r in track_runs.values()),
        "longest_run_per_track": {str(k): v for k, v in sorted(track_runs.items())},
        "per_size": buckets,
        "per_path_kind": shares(by_kind),
        "per_speed": shares(by_speed),
        "per_wider_occlusion": shares(by_occlusion),
        "per_wider_blur": shares(by_blur),
        "worst_tracks": worst_tracks,
        "failsafe_frames": failsafe_frames,
        "failsafe_share": failsafe_frames / len(frame_ms) if frame_ms else None,
        "detected_frames": detected_frames,
        "frames": len(frame_ms),
        "changed_share_away_from_faces": statistics.fmean(false_change) if false_change else None,
        "legibility": _nanmean(legibility),
        # What the legibility lost, by what covered the tile's pixels (they add up to 1 - legibility).
        "legibility_loss_by_mask": {k: round(v / max(1, len(legibility)), 4)
                                    for k, v in loss_by_part.items()},
        "collateral": _nanmean(collateral),
        "ms_per_frame_median": statistics.median(frame_ms) if frame_ms else None,
        "meets_target": bool(total and uncovered / total <= TARGET_UNCOVERED and longest <= TARGET_MAX_RUN),
        "timeline_uncovered": uncovered_per_frame,
        "timeline_faces": faces_per_frame,
        "timeline_failsafe": failsafe_timeline,
        "timeline_legibility": [round(v, 4) for v in legibility],
    }


def _nanmean(values: list[float]) -> float | None:
    kept = [v for v in values if v == v]
    return statistics.fmean(kept) if kept else None


def plot(results: dict[str, dict[str, Any]], clip: str = "vtest") -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_bar, ax_time) = plt.subplots(2, 1, figsize=(10, 7), gridspec_kw={"height_ratios": [1, 1.2]})
    labels = list(next(iter(results.values()))["per_size"].keys())
    width = 0.8 / max(1, len(results))
    for i, (profile, res) in enumerate(results.items()):
        shares = [100 * (res["per_size"][lb]["uncovered_share"] or 0) for lb in labels]
        xs = np.arange(len(labels)) + (i - (len(results) - 1) / 2) * width
        label = (f"{profile} ({100 * (res['uncovered_share'] or 0):.2f} % overall, "
                 f"{100 * (res.get('readable_share') or 0):.2f} % readable, {res['frames']} frames, "
                 f"legibility {res.get('legibility') or 0:.3f}, "
                 f"{100 * (res.get('collateral') or 0):.0f} % of face-free pixels changed)")
        ax_bar.bar(xs, shares, width, label=label)
    ax_bar.axhline(100 * TARGET_UNCOVERED, color="red", linestyle="--", linewidth=1, label="target 0.5 %")
    ax_bar.set_xticks(np.arange(len(labels)), labels)
    ax_bar.set_xlabel("face height")
    ax_bar.set_ylabel("face-frames uncovered (%)")
    ax_bar.set_title(f"Faces left unmasked or readable, by size ({clip} clip: real faces over real footage, "
                     "H.264)")
    ax_bar.legend(fontsize=7)

    first = next(iter(results.values()))
    ax_time.plot(first["timeline_faces"], color="0.75", linewidth=1, label="faces scored in frame")
    for profile, res in results.items():
        line = ax_time.plot(res["timeline_uncovered"], linewidth=1, label=f"{profile}: faces uncovered")[0]
        failsafe = np.asarray(res.get("timeline_failsafe", []), dtype=bool)
        if failsafe.any():
            ax_time.fill_between(
                np.arange(len(failsafe)),
                0,
                0.4,
                where=failsafe,
                color=line.get_color(),
                alpha=0.3,
                step="mid",
                label=f"{profile}: failsafe (whole frame masked)",
            )
    ax_time.set_xlabel("frame (25 fps)")
    ax_time.set_ylabel("faces")
    ax_time.legend(fontsize=8, loc="upper right")
    ax_time.set_title("Timeline")
    fig.tight_layout()
    return fig


def summary() -> tuple[dict[str, Any], Any]:
    """Coverage against legibility for every clip and run on record (the per-clip results files, without
    --stops), as one table and one scatter plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows: dict[str, dict[str, Any]] = {}
    for clip in CLIPS:
        path = RESULTS_DIR / f"{results_name(clip, 0)}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        for profile, res in data.get("profiles", {}).items():
            if res.get("legibility") is None:
                continue
            rows[f"{clip}/{profile}"] = {
                "clip": clip,
                "profile": profile,
                "engine": data.get("engine"),
                "frames": res["frames"],
                "face_frames": res["face_frames"],
                "uncovered_share": res["uncovered_share"],
                "unchanged_share": res.get("unchanged_share"),
                "readable_share": res.get("readable_share"),
                "longest_uncovered_run": res["longest_uncovered_run"],
                "legibility": res["legibility"],
                "collateral": res["collateral"],
                "failsafe_share": res.get("failsafe_share"),
                "target_legibility": TARGET_LEGIBILITY.get(clip),
                "meets_targets": bool(res["meets_target"]
                                      and res["legibility"] >= TARGET_LEGIBILITY.get(clip, 0.0)),
            }
    fig, ax = plt.subplots(figsize=(8, 5.5))
    markers = {"realtime": "o", "realtime-live": "s", "quality": "^", "untouched": "x"}
    colours = {clip: f"C{i}" for i, clip in enumerate(CLIPS)}
    for key, row in rows.items():
        x = 100 * (row["uncovered_share"] or 0)
        label = (f"{key}: {x:.2f} % uncovered ({100 * (row['readable_share'] or 0):.2f} % readable), "
                 f"legibility {row['legibility']:.3f}, collateral {100 * row['collateral']:.0f} %")
        ax.scatter(x, row["legibility"], marker=markers.get(row["profile"], "D"), color=colours[row["clip"]],
                   s=60, label=label)
    for clip, target in TARGET_LEGIBILITY.items():
        ax.axhline(target, color=colours[clip], linestyle=":", linewidth=1,
                   label=f"{clip}: legibility target")
    ax.axvline(100 * TARGET_UNCOVERED, color="red", linestyle="--", linewidth=1,
               label="uncovered target 0.5 %")
    ax.set_xscale("symlog", linthresh=1.0, linscale=2.0)
    ax.set_xlabel("face-frames uncovered (%; unchanged or readable)")
    ax.set_ylabel("scene legibility (SSIM, 1/4-size grey, away from faces)")
    ax.set_xlim(0, 110)
    ax.set_ylim(0, 1.02)
    ax.set_title("See the scene, hide the faces: target is the top left corner")
    ax.legend(fontsize=6.5, loc="lower right")
    fig.tight_layout()
    return {"benchmark": "privacy_video_summary", "runs": rows}, fig


def _earlier_runs(name: str, data: dict[str, Any], rerun: list[str]) -> dict[str, Any]:
    path = RESULTS_DIR / f"{name}.json"
    if not path.exists():
        return {}
    old = json.loads(path.read_text())
    if old.get("clip") != data["clip"] or old.get("engine") != data["engine"]:
        print("  --merge: earlier results came from another clip or engine; not kept", flush=True)
        return {}
    return {k: v for k, v in old.get("profiles", {}).items() if k not in rerun}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="+", default=list(CLIPS), choices=CLIPS,
                        help="background footage: vtest (fixed CCTV view), crowd (MOT20-08); default both")
    parser.add_argument("--frames", type=int, default=400, help="clip length in frames (default 400, 16 s)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help="the clip's faces, paths and times (results of another seed: ..._seed<N>.*)")
    parser.add_argument(
        "--stops",
        type=int,
        default=0,
        help="add N people who walk in and stand still to the end (results: privacy_video[_crowd]_stops.*)",
    )
    parser.add_argument("--profiles", nargs="+", default=list(DEFAULT_VARIANTS), choices=VARIANTS)
    parser.add_argument(
        "--quality-frames",
        type=int,
        default=None,
        help="run the slow quality profile on the first N frames only (default: the whole clip)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting of the realtime profile (blur/profiles.py; JSON value) for a variant run; "
        "repeatable, needs --tag",
    )
    parser.add_argument("--tag", default="", help="the variant's name: results in privacy_video..._<tag>.*")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the other runs of the existing results file if made from the same clip and engine",
    )
    args = parser.parse_args(argv)
    settings = parse_settings(args.set)
    if bool(settings) != bool(args.tag) or (args.tag and not args.tag.replace("-", "").isalnum()):
        parser.error("--set and --tag go together; a tag is letters, digits and dashes")

    for clip in args.clips:
        with tempfile.TemporaryDirectory(prefix="privacy-video-") as tmp:
            truth = make_clip(Path(tmp) / "clip.mp4", n_frames=args.frames, seed=args.seed, stops=args.stops,
                              background=clip)
            name = results_name(clip, args.stops, args.seed, args.tag)
            data = {
                "benchmark": "privacy_video",
                "criterion": {
                    "uncovered_when": (
                        f"< {COVERED_SHARE:.0%} of the visible box pixels changed in Y, U or V "
                        f"(unchanged), or grey SSIM to the original over the face box > that of a "
                        f"{leg.MOSAIC_CELLS}-cell mosaic of the face + {leg.READABLE_MARGIN} (readable)"
                    ),
                    "legibility": (
                        f"SSIM (7x7 Gaussian, sigma 1.5) of the grey pictures reduced 1/{leg.SCALE} "
                        f"(INTER_AREA), mean over tile pixels wholly outside every truth face box grown "
                        f"{leg.FACE_GROW:.1%} each side; mean over frames"
                    ),
                    "collateral": (
                        f"share of full-size face-free pixels whose grey level changed by more than "
                        f"{leg.COLLATERAL_LEVELS}; mean over frames"
                    ),
                    "target_uncovered_share": TARGET_UNCOVERED,
                    "target_longest_run_frames": TARGET_MAX_RUN,
                    "target_legibility": TARGET_LEGIBILITY.get(clip),
                },
                "clip": truth.describe() | {"seed": args.seed, "h264_crf": 23, "stops": args.stops,
                                            "name": clip},
                "realtime_detect_every_frames": detect_every(truth.fps, settings.get("detect_hz")),
                "settings": settings,
                "engine": engine_version(),
                "profiles": {},
            }
            if args.merge:
                data["profiles"] = _earlier_runs(name, data, args.profiles)
            for profile in args.profiles:
                limit = args.quality_frames if profile == "quality" else None
                res = run_profile(truth, profile, limit, settings=settings)
                data["profiles"][profile] = res
                print(
                    f"{clip}/{profile}: {res['uncovered']}/{res['face_frames']} face-frames uncovered "
                    f"({100 * (res['uncovered_share'] or 0):.2f} %; unchanged "
                    f"{100 * (res['unchanged_share'] or 0):.2f} %, readable "
                    f"{100 * (res['readable_share'] or 0):.2f} %), longest run "
                    f"{res['longest_uncovered_run']} frames, {res['failsafe_frames']} failsafe frames, "
                    f"legibility {res['legibility']:.3f}, "
                    f"collateral {100 * (res['collateral'] or 0):.1f} %, "
                    f"{res['ms_per_frame_median']:.1f} ms/frame median",
                    flush=True,
                )
                # Written after every run, so a long quality run that is cut short keeps what was measured.
                write_results(name, data, plot(data["profiles"], clip))
    if not args.stops and not args.tag:
        table, fig = summary()
        write_results("privacy_video_summary", table, fig)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
