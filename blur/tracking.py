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


def flow_boxes(prev: np.ndarray, cur: np.ndarray, boxes: np.ndarray, scale: float, far: bool = False,
               ) -> np.ndarray:
    """Move each box by the median flow of a small grid of points inside it. `scale` maps full-frame
    pixels to pixels of the grey images."""
    if len(boxes) == 0 or prev is cur:
        return boxes
    pts, owner = [], []
    for i, (x1, y1, x2, y2) in enumerate(boxes[:, :4] * scale):
        xs = np.linspace(x1, x2, 4)[1:-1] if x2 - x1 > 2 else np.array([(x1 + x2) / 2])
        ys = np.linspace(y1, y2, 4)[1:-1] if y2 - y1 > 2 else np.array([(y1 + y2) / 2])
        for y in ys:
            for x in xs:
                pts.append((x, y))
                owner.append(i)
    p0 = np.asarray(pts, dtype=np.float32).reshape(-1, 1, 2)
    p1, status, _err = cv2.calcOpticalFlowPyrLK(prev, cur, p0, None, **(_LK_FAR if far else _LK_NEAR))
    owner_a = np.asarray(owner)
    ok = status.reshape(-1).astype(bool)
    delta = (p1 - p0).reshape(-1, 2) / scale
    out = boxes.astype(np.float32, copy=True)
    for i in range(len(boxes)):
        sel = ok & (owner_a == i)
        if sel.any():
            dx, dy = np.median(delta[sel], axis=0)
            out[i, 0:4:2] += dx
            out[i, 1:4:2] += dy
    return out


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
        for t in self.tracks:
            if t.last_seen == frame:
                continue
            cx, cy = (t.box[0] + t.box[2]) / 2, (t.box[1] + t.box[3]) / 2
            if regions is None or any(x1 <= cx < x2 and y1 <= cy < y2 for x1, y1, x2, y2 in regions):
                t.misses += 1
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

    def clear(self) -> None:
        self.tracks.clear()
