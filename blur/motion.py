"""Background subtraction on a small grey copy of the frame: where people move on a fixed camera.

Used two ways: to choose the regions the detector looks at between full sweeps, and (motion mask mode)
to mask the head band of every moving blob without any detector."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from blur.geometry import merge_regions, to_int_boxes

_CLOSE = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))


class MotionMap:
    # Learning rate 1/history: something that stops moving becomes background after about 0.11 x history
    # frames (165 frames, 6-7 s at 25 fps, measured); until then it is masked as a moving silhouette, and
    # detection rounds and sweeps (every full_sweep_s) have that long to find its face.
    def __init__(self, *, history: int = 1500, min_area_frac: float = 0.0004, scene_change: float = 0.5,
                 ) -> None:
        self._history = history
        self._bg = self._new_model()
        # Opening removes speckle noise; a small kernel, so a small face's blob survives it.
        self._open = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        self.min_area_frac = min_area_frac
        self._rate = 1.0 / history
        self.scene_change = scene_change
        self.frames = 0
        self.latest = MotionFrame(0, None, False, min_area_frac)  # the newest frame's motion

    def _new_model(self) -> cv2.BackgroundSubtractorMOG2:
        return cv2.createBackgroundSubtractorMOG2(history=self._history, varThreshold=25, detectShadows=False)

    def update(self, small: np.ndarray) -> MotionFrame:
        """Feed one small frame (grey or 3 channels); returns its motion (also kept as `latest`)."""
        # The slow rate from the second frame on: MOG2's own start-up rate (1/frames) learns a slowly moving
        # face into the background within a second, and nothing then looks at it. The cost is that people
        # who walk away from where they stood in the first frame leave "moving" ghosts for a few seconds.
        fg = self._bg.apply(small, learningRate=1.0 if self.frames == 0 else self._rate)
        self.frames += 1
        self.latest = MotionFrame(self.frames, None, False, self.min_area_frac)
        if self.frames < 2:
            return self.latest
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, self._open)
        if cv2.countNonZero(fg) > self.scene_change * fg.size:
            # Most of the picture changed at once: the camera moved (a PTZ turn) or the light changed. The
            # old background says nothing any more; learn the new one from this frame.
            self._bg = self._new_model()
            self._bg.apply(small, learningRate=1.0)
            self.latest.scene_changed = True
            return self.latest
        self.latest.foreground = cv2.dilate(fg, self._kernel, iterations=2)
        return self.latest


@dataclass
class MotionFrame:
    """One frame's motion, apart from the model: the engine's later stages read a frame's motion while the
    model may already have taken in the frames after it."""
    frames: int                       # frames the model had seen, this one included
    foreground: np.ndarray | None     # moving pixels (255), cleaned; None while learning, on a scene change
    scene_changed: bool               # this frame moved as a whole: the model was started again
    min_area_frac: float
    _blobs: np.ndarray | None = None

    def blobs(self) -> np.ndarray:
        """The moving blobs as (N, 4) float boxes in small-frame pixels; computed when asked (detection
        rounds and motion-mask mode need them, most frames do not)."""
        if self._blobs is None:
            self._blobs = np.zeros((0, 4), np.float32)
            if self.foreground is not None:
                fg = self.foreground
                n, _labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
                big = stats[1:n][stats[1:n, cv2.CC_STAT_AREA] >= self.min_area_frac * fg.size]
                x, y, w, h = (big[:, k].astype(np.float32) for k in range(4))
                self._blobs = np.stack([x, y, x + w, y + h], 1).reshape(-1, 4)
        return self._blobs


def head_bands(blobs: np.ndarray, band: float = 0.35) -> np.ndarray:
    """Upper part of each moving blob (where a standing person's head is), as boxes."""
    out = blobs.astype(np.float32, copy=True)
    out[:, 3] = out[:, 1] + (out[:, 3] - out[:, 1]) * band
    return out


def detection_regions(blobs: np.ndarray, width: int, height: int, pad: float = 0.15,
                      band: float = 0.6) -> list[tuple[int, int, int, int]]:
    """Regions worth a detector pass: upper part of each blob, padded, clipped, overlaps merged."""
    if len(blobs) == 0:
        return []
    b = blobs.astype(np.float32, copy=True)
    h = b[:, 3] - b[:, 1]
    w = b[:, 2] - b[:, 0]
    b[:, 3] = b[:, 1] + h * band
    b[:, 0] -= w * pad
    b[:, 2] += w * pad
    b[:, 1] -= h * pad
    return merge_regions(to_int_boxes(b, width, height))


@dataclass
class Movers:
    """Moving regions that no face mask accounts for."""
    boxes: np.ndarray  # (N, 4) full-frame pixels: one box around each moving piece
    mask: np.ndarray   # uint8 at the foreground's scale: the pieces themselves (255), filled and padded


def unexplained(foreground: np.ndarray, faces: np.ndarray, scale: float, *, pad_px: float = 3.0) -> Movers:
    """What moves outside every face mask.

    `foreground` is the motion mask at `scale` of the frame; `faces` the face masks of this frame
    (full-frame pixels). Whatever moves outside them is someone whose face the engine cannot vouch for
    between detection rounds (just appeared, turned away, missed, cut off by the frame's edge, passing
    behind someone) or something else moving: it is masked, as its silhouette grown by `pad_px`, so that a
    face in any part of it is covered while the still scene around it stays visible. (Speckle noise was
    removed when the foreground was made.)"""
    rest = foreground.copy()
    if len(faces):
        cut = np.maximum(0, np.round(faces[:, :4].astype(np.float32) * scale).astype(np.int32))
        for x1, y1, x2, y2 in cut.tolist():
            rest[y1:y2, x1:x2] = 0
    # A face's plain middle can match the background and split its silhouette: close small gaps and fill
    # holes, so the whole face is inside.
    rest = cv2.morphologyEx(rest, cv2.MORPH_CLOSE, _CLOSE)
    keep, _ = cv2.findContours(rest, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    mask = np.zeros_like(rest)
    if not keep:
        return Movers(np.zeros((0, 4), np.float32), mask)
    cv2.drawContours(mask, keep, -1, 255, thickness=cv2.FILLED)
    pad = max(1, round(pad_px * scale))
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_RECT, (2 * pad + 1, 2 * pad + 1)))
    rects = np.asarray([cv2.boundingRect(c) for c in keep], np.float32)
    boxes = np.stack([rects[:, 0] - pad, rects[:, 1] - pad, rects[:, 0] + rects[:, 2] + pad,
                      rects[:, 1] + rects[:, 3] + pad], 1)
    return Movers(boxes / scale, mask)
