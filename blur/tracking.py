"""Carries face boxes between detections so the mask never flickers off a moving face.

Boxes move with the median sparse optical flow (pyramidal Lucas-Kanade) of points inside them, measured
on a small grey copy of the frame. A box is dropped only after detection looked at its place and missed
it `persist` times in a row: never merely because time passed (while no detection result arrives, the
engine's fail-closed checks take over); it is padded more the longer it goes unconfirmed.
Detection results computed on an older frame (live mode) are carried to the current frame with one flow
step from the frame they were computed on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from blur.geometry import iou_matrix, union

# Frame to frame, motion is small: a light pyramid is enough (~5x cheaper). Carrying a live result over
# many frames needs the deeper one.
_LK_NEAR = {"winSize": (11, 11), "maxLevel": 2,
            "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 10, 0.05)}
_LK_FAR = {"winSize": (15, 15), "maxLevel": 4,
           "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)}
# Flow points of one box that agree this closely (pixels of the grey image) need no template matching.
_AGREE_PX = 0.5


@dataclass
class Track:
    box: np.ndarray   # float32 [x1, y1, x2, y2] in full-frame pixels
    score: float
    last_seen: int    # frame index of the last detection that confirmed it
    misses: int = 0   # detection results in a row that looked here and did not confirm it
    speed: tuple[float, float] = (0.0, 0.0)  # recent |dx|, |dy| per frame (full-frame pixels)
    steps: int = 0    # frames tracked by flow: speed means little until a few have passed
    seen: float = 0.0  # height of the detection that last confirmed it (0: none yet)
    hits: int = 1      # detections that found it


def flow_boxes(prev: np.ndarray, cur: np.ndarray, boxes: np.ndarray, scale: float, far: bool = False,
               ) -> np.ndarray:
    """Move each box by the median flow of a 2x2 grid of points inside it. `scale` maps full-frame
    pixels to pixels of the grey images."""
    if len(boxes) == 0 or prev is cur:
        return boxes
    b = boxes[:, :4].astype(np.float32) * scale
    fx = np.asarray([1 / 3, 2 / 3, 1 / 3, 2 / 3], np.float32)
    fy = np.asarray([1 / 3, 1 / 3, 2 / 3, 2 / 3], np.float32)
    xs = b[:, 0:1] + (b[:, 2:3] - b[:, 0:1]) * fx
    ys = b[:, 1:2] + (b[:, 3:4] - b[:, 1:2]) * fy
    p0 = np.stack([xs, ys], axis=2).reshape(-1, 1, 2)
    p1, status, _err = cv2.calcOpticalFlowPyrLK(prev, cur, p0, None, **(_LK_FAR if far else _LK_NEAR))
    delta = ((p1 - p0).reshape(-1, 4, 2) / scale).astype(np.float32)
    found = status.reshape(-1, 4).astype(bool)
    med = _median_of_found(delta, found)
    out = boxes.astype(np.float32, copy=True)
    out[:, 0:4:2] += med[:, 0:1]
    out[:, 1:4:2] += med[:, 1:2]
    # Where all four points were found and agree within half a pixel of the grey image, the box moved as
    # one piece and template matching would only round the flow to whole pixels; on a crowd that is about
    # nine boxes in ten, and matching them was most of the tracker's time.
    agree = found.all(axis=1) & (np.abs(delta - med[:, None, :]).max(axis=(1, 2)) * scale <= _AGREE_PX)
    _refine_by_template(prev, cur, boxes, out, scale, reach=1.5 if far else 0.5,
                        only=None if far else ~agree)
    return out


def _median_of_found(delta: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Per box, the median (x, y) of the points flow found (`delta` (N, 4, 2), `ok` (N, 4)); 0 where it found
    none. numpy's nanmedian, without its per-call cost (a crowd has hundreds of boxes every frame)."""
    found = ok.sum(axis=1)
    d = np.where(ok[:, :, None], delta, np.inf)
    d.sort(axis=1)  # the found points first, in order
    lo = np.take_along_axis(d, np.maximum(0, (found - 1) // 2)[:, None, None].repeat(2, 2), axis=1)[:, 0]
    hi = np.take_along_axis(d, np.maximum(0, found // 2)[:, None, None].repeat(2, 2), axis=1)[:, 0]
    med = (lo + hi) / 2
    med[found == 0] = 0.0
    return med.astype(np.float32)


def _refine_by_template(prev: np.ndarray, cur: np.ndarray, boxes: np.ndarray, out: np.ndarray, scale: float,
                        reach: float, only: np.ndarray | None = None) -> None:
    """Where a box's content is textured (a face is), find it again by normalized cross-correlation in a
    window around it: sparse flow drifts on plain backgrounds and loses a face that turns or crosses
    another person, template matching does not. `out` (the flow result) is overwritten where the match
    is confident. Boxes and windows are worked out for all boxes at once; only the matching is per box
    (a crowd has hundreds). `only`: the boxes to consider (all when None)."""
    h, w = cur.shape[:2]
    b = boxes[:, :4].astype(np.float32) * scale
    bx1 = np.maximum(0, b[:, 0]).astype(np.int32)
    by1 = np.maximum(0, b[:, 1]).astype(np.int32)
    bx2 = np.minimum(w, b[:, 2]).astype(np.int32)
    by2 = np.minimum(h, b[:, 3]).astype(np.int32)
    tw, th = bx2 - bx1, by2 - by1
    ok = (tw >= 6) & (th >= 6)
    if only is not None:
        ok &= only
    if not ok.any():
        return
    # A plain patch has nothing to match: its standard deviation, for every box at once from the integral
    # images of the previous frame.
    s1, s2 = cv2.integral2(prev, sdepth=cv2.CV_64F)
    x1c, y1c = np.where(ok, bx1, 0), np.where(ok, by1, 0)
    x2c, y2c = np.where(ok, bx2, 1), np.where(ok, by2, 1)
    n = np.maximum(1, (x2c - x1c) * (y2c - y1c))
    total = s1[y2c, x2c] - s1[y1c, x2c] - s1[y2c, x1c] + s1[y1c, x1c]
    sq = s2[y2c, x2c] - s2[y1c, x2c] - s2[y2c, x1c] + s2[y1c, x1c]
    var = sq / n - (total / n) ** 2
    ok &= var >= 16.0  # std >= 4 grey levels
    r = (reach * np.maximum(tw, th)).astype(np.int32) + 2
    wx1, wy1 = np.maximum(0, bx1 - r), np.maximum(0, by1 - r)
    wx2, wy2 = np.minimum(w, bx2 + r), np.minimum(h, by2 + r)
    ok &= (wy2 - wy1 >= th) & (wx2 - wx1 >= tw)
    rows = np.column_stack([bx1, by1, bx2, by2, wx1, wy1, wx2, wy2])[ok].tolist()
    for i, (x1, y1, x2, y2, a1, b1, a2, b2) in zip(np.flatnonzero(ok).tolist(), rows, strict=True):
        _, best, _, loc = cv2.minMaxLoc(cv2.matchTemplate(cur[b1:b2, a1:a2], prev[y1:y2, x1:x2],
                                                          cv2.TM_CCOEFF_NORMED))
        if best < 0.6:
            continue
        dx, dy = (a1 + loc[0] - x1) / scale, (b1 + loc[1] - y1) / scale
        out[i, 0:4:2] = boxes[i, 0:4:2] + dx
        out[i, 1:4:2] = boxes[i, 1:4:2] + dy


def _overlaps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection areas of every box of `a` with every box of `b` (len(a) x len(b))."""
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    return np.clip(w, 0, None) * np.clip(h, 0, None)


def _areas(b: np.ndarray) -> np.ndarray:
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


class Tracker:
    def __init__(self, persist: int = 2, pad_per_frame: float = 0.05, shrink: float = 0.8) -> None:
        self.persist = persist
        self.pad_per_frame = pad_per_frame
        self.shrink = shrink
        self.tracks: list[Track] = []

    def step(self, prev: np.ndarray | None, cur: np.ndarray, scale: float, frame: int) -> None:
        """Advance every track to the current frame."""
        if prev is None or not self.tracks:
            return
        before = np.stack([t.box for t in self.tracks])
        moved = flow_boxes(prev, cur, before, scale)
        speeds = 0.6 * np.asarray([t.speed for t in self.tracks], np.float64) + 0.4 * np.abs(
            moved[:, 0:2] - before[:, 0:2]).astype(np.float64)
        for t, b, v in zip(self.tracks, moved, speeds.tolist(), strict=True):
            t.speed = (v[0], v[1])
            t.steps += 1
            t.box = b

    def update(self, dets: np.ndarray, frame: int, regions: list[tuple[int, int, int, int]] | None = None,
               smallest: float = 0.0, moving: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        """Apply a detection result (already in current-frame coordinates). `regions`: where the detector
        looked (None = everywhere); tracks outside them are neither confirmed nor aged, nor are still tracks
        lower than `smallest`, the smallest face the round could have found (`moving(boxes)` says which boxes
        lie in moving pixels; None: none do)."""
        boxes = dets[:, :4] if len(dets) else np.zeros((0, 4), np.float32)
        existing = np.stack([t.box for t in self.tracks]) if self.tracks else np.zeros((0, 4), np.float32)
        iou = iou_matrix(existing, boxes)
        matched_det: set[int] = set()
        for ti in np.argsort(-iou.max(axis=1)) if len(boxes) and len(existing) else []:
            di = int(np.argmax(iou[ti]))
            if iou[ti, di] >= 0.2 and di not in matched_det:
                matched_det.add(di)
                self._confirm(self.tracks[ti], boxes[di])
                self.tracks[ti].hits += 1
                self.tracks[ti].score = float(dets[di, 4])
                self.tracks[ti].last_seen = frame
                self.tracks[ti].misses = 0
        # A detection lying mostly inside a track it does not match by IoU (a face cut by a region border,
        # or found again at another scale) confirms that track, which grows to cover both.
        rest = [di for di in range(len(boxes)) if di not in matched_det]
        if rest and self.tracks:
            tb = np.stack([t.box for t in self.tracks]).astype(np.float64)
            db = boxes[rest].astype(np.float64)
            smaller = np.minimum(_areas(tb)[:, None], _areas(db)[None, :])
            inside = _overlaps(tb, db) / np.maximum(1e-6, smaller)
            for j, di in enumerate(rest):
                ti = int(np.argmax(inside[:, j]))
                if inside[ti, j] < 0.6:
                    continue
                t, b = self.tracks[ti], db[j]
                t.box = union(t.box, b)
                t.last_seen, t.misses = frame, 0
                t.hits += 1
                matched_det.add(di)
                # The grown track may now hold later detections too.
                tb[ti] = t.box
                inside[ti] = _overlaps(tb[ti:ti + 1], db)[0] / np.maximum(
                    1e-6, np.minimum(_areas(tb[ti:ti + 1]), _areas(db)))
        unseen = [t for t in self.tracks if t.last_seen != frame]
        if unseen:
            ub = np.stack([t.box for t in unseen]).astype(np.float32)
            if regions is None:
                looked = np.ones(len(unseen), bool)
            elif regions:
                # Missed only where the detector saw the whole box: a region that cuts a face proves nothing.
                rb = np.asarray(regions, np.float32)
                looked = (_overlaps(ub, rb) >= 0.8 * _areas(ub)[:, None]).any(axis=1)
            else:
                looked = np.zeros(len(unseen), bool)
            # A face found more than once is not given up by a round that could not have found it again,
            # while it stands still: a moving one is inside a moving silhouette anyway, and keeping every
            # track of a crowd alive would cost a quarter more on busy cameras.
            kept = np.asarray([t.hits > 1 for t in unseen]) & ((ub[:, 3] - ub[:, 1]) < smallest)
            if moving is not None and kept.any():
                kept[kept] = ~moving(ub[kept])
            looked &= ~kept
            for t, miss in zip(unseen, looked, strict=True):
                t.misses += int(miss)
        self.tracks = [t for t in self.tracks if t.misses <= self.persist]
        for di in range(len(boxes)):
            if di not in matched_det:
                self.tracks.append(Track(boxes[di].astype(np.float32), float(dets[di, 4]), frame,
                                         seen=float(boxes[di, 3] - boxes[di, 1])))

    def _confirm(self, track: Track, box: np.ndarray) -> None:
        """Take a matching detection's box. Faces do not shrink by a fifth between two rounds: a box that
        much smaller than the last one found is the detector seeing part of the face (its upper half, one
        side), so the track covers both boxes until the next round finds the smaller size again."""
        h = float(box[3] - box[1])
        if track.seen > 0 and h < self.shrink * track.seen:
            track.box = union(track.box, box)
        else:
            track.box = box.astype(np.float32)
        track.seen = h

    def boxes(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """(boxes, padding factor per box): unconfirmed tracks get more padding as they age."""
        if not self.tracks:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        b = np.stack([t.box for t in self.tracks])
        age = np.asarray([frame - t.last_seen for t in self.tracks], dtype=np.float32)
        return b, 1.0 + self.pad_per_frame * np.minimum(age, 6)

    def speeds(self) -> np.ndarray:
        """(N, 2) recent per-frame motion of each track, in the order of `boxes`."""
        out = np.asarray([t.speed for t in self.tracks], np.float32).reshape(-1, 2)
        # A new track's speed is unknown (it may come from a result the detector computed frames ago):
        # assume a brisk walk, a twentieth of the face size per frame, until flow has measured it.
        for i, t in enumerate(self.tracks):
            if t.steps < 5:
                out[i] = np.maximum(out[i], 0.05 * (t.box[2:4] - t.box[0:2]))
        return out

    def clear(self) -> None:
        self.tracks.clear()
