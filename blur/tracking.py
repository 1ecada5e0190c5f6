"""Carries face boxes between detections so the mask never flickers off a moving face.

Boxes move with the median sparse optical flow (pyramidal Lucas-Kanade) of points inside them, measured
on a small grey copy of the frame. A box is dropped only after detection looked at its place and missed
it `persist` times in a row: never merely because time passed (while no detection result arrives, the
engine's fail-closed checks take over); it is padded more the longer it goes unconfirmed.
Detection results computed on an older frame (live mode) are carried to the current frame with one flow
step from the frame they were computed on."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from blur.geometry import iou_matrix

# Frame to frame, motion is small: a light pyramid is enough (~5x cheaper). Carrying a live result over
# many frames needs the deeper one.
_LK_NEAR = {"winSize": (11, 11), "maxLevel": 2,
            "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 10, 0.05)}
_LK_FAR = {"winSize": (15, 15), "maxLevel": 4,
           "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03)}


@dataclass
class Track:
    box: np.ndarray   # float32 [x1, y1, x2, y2] in full-frame pixels
    score: float
    last_seen: int    # frame index of the last detection that confirmed it
    misses: int = 0   # detection results in a row that looked here and did not confirm it
    speed: tuple[float, float] = (0.0, 0.0)  # recent |dx|, |dy| per frame (full-frame pixels)
    steps: int = 0    # frames tracked by flow: speed means little until a few have passed


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
    ok = status.reshape(-1, 4).astype(bool)
    delta[~ok] = np.nan
    found = ok.any(axis=1)
    med = np.zeros((len(boxes), 2), np.float32)
    if found.any():
        med[found] = np.nanmedian(delta[found], axis=1)
    out = boxes.astype(np.float32, copy=True)
    out[:, 0:4:2] += med[:, 0:1]
    out[:, 1:4:2] += med[:, 1:2]
    _refine_by_template(prev, cur, boxes, out, scale, reach=1.5 if far else 0.5)
    return out


def _refine_by_template(prev: np.ndarray, cur: np.ndarray, boxes: np.ndarray, out: np.ndarray, scale: float,
                        reach: float) -> None:
    """Where a box's content is textured (a face is), find it again by normalized cross-correlation in a
    window around it: sparse flow drifts on plain backgrounds and loses a face that turns or crosses
    another person, template matching does not. `out` (the flow result) is overwritten where the match
    is confident."""
    h, w = cur.shape[:2]
    for i, (x1, y1, x2, y2) in enumerate(boxes[:, :4].astype(np.float32) * scale):
        bx1, by1, bx2, by2 = int(max(0, x1)), int(max(0, y1)), int(min(w, x2)), int(min(h, y2))
        tw, th = bx2 - bx1, by2 - by1
        if tw < 6 or th < 6:
            continue
        tmpl = prev[by1:by2, bx1:bx2]
        if float(cv2.meanStdDev(tmpl)[1][0, 0]) < 4.0:  # a plain patch: nothing to match (cv2: 10x np.std)
            continue
        r = int(reach * max(tw, th)) + 2
        wx1, wy1, wx2, wy2 = max(0, bx1 - r), max(0, by1 - r), min(w, bx2 + r), min(h, by2 + r)
        win = cur[wy1:wy2, wx1:wx2]
        if win.shape[0] < th or win.shape[1] < tw:
            continue
        _, best, _, loc = cv2.minMaxLoc(cv2.matchTemplate(win, tmpl, cv2.TM_CCOEFF_NORMED))
        if best < 0.6:
            continue
        dx, dy = (wx1 + loc[0] - bx1) / scale, (wy1 + loc[1] - by1) / scale
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
    def __init__(self, persist: int = 2, pad_per_frame: float = 0.05) -> None:
        self.persist = persist
        self.pad_per_frame = pad_per_frame
        self.tracks: list[Track] = []

    def step(self, prev: np.ndarray | None, cur: np.ndarray, scale: float, frame: int) -> None:
        """Advance every track to the current frame."""
        if prev is None or not self.tracks:
            return
        moved = flow_boxes(prev, cur, np.stack([t.box for t in self.tracks]), scale)
        for t, b in zip(self.tracks, moved, strict=True):
            dx, dy = abs(float(b[0] - t.box[0])), abs(float(b[1] - t.box[1]))
            t.speed = (0.6 * t.speed[0] + 0.4 * dx, 0.6 * t.speed[1] + 0.4 * dy)
            t.steps += 1
            t.box = b

    def update(self, dets: np.ndarray, frame: int, regions: list[tuple[int, int, int, int]] | None = None,
               ) -> None:
        """Apply a detection result (already in current-frame coordinates). `regions`: where the detector
        looked (None = everywhere); tracks outside them are neither confirmed nor aged."""
        boxes = dets[:, :4] if len(dets) else np.zeros((0, 4), np.float32)
        existing = np.stack([t.box for t in self.tracks]) if self.tracks else np.zeros((0, 4), np.float32)
        iou = iou_matrix(existing, boxes)
        matched_det: set[int] = set()
        for ti in np.argsort(-iou.max(axis=1)) if len(boxes) and len(existing) else []:
            di = int(np.argmax(iou[ti]))
            if iou[ti, di] >= 0.2 and di not in matched_det:
                matched_det.add(di)
                self.tracks[ti].box = boxes[di].astype(np.float32)
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
                t.box = np.asarray([min(t.box[0], b[0]), min(t.box[1], b[1]), max(t.box[2], b[2]),
                                    max(t.box[3], b[3])], np.float32)
                t.last_seen, t.misses = frame, 0
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
            for t, miss in zip(unseen, looked, strict=True):
                t.misses += int(miss)
        self.tracks = [t for t in self.tracks if t.misses <= self.persist]
        for di in range(len(boxes)):
            if di not in matched_det:
                self.tracks.append(Track(boxes[di].astype(np.float32), float(dets[di, 4]), frame))

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
