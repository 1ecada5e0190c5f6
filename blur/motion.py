"""Background subtraction on a small grey copy of the frame: where people move on a fixed camera.

Used two ways: to choose the regions the detector looks at between full sweeps, and (motion mask mode)
to mask the head band of every moving blob without any detector."""

from __future__ import annotations

import cv2
import numpy as np


class MotionMap:
    # A long memory (60 s at 25 fps): with a short one, someone pacing the same few metres is learnt into
    # the background within a minute, and motion-gated detection stops looking at them.
    def __init__(self, *, history: int = 1500, min_area_frac: float = 0.0004) -> None:
        self._bg = cv2.createBackgroundSubtractorMOG2(history=history, varThreshold=25, detectShadows=False)
        self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        self.min_area_frac = min_area_frac
        self.frames = 0

    def update(self, gray_small: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Feed one frame; return foreground blobs as boxes in `gray_small` pixels (empty while learning)."""
        fg = self._bg.apply(gray_small)
        self.frames += 1
        if self.frames < 3:
            return []
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, self._kernel)
        fg = cv2.dilate(fg, self._kernel, iterations=2)
        n, _labels, stats, _ = cv2.connectedComponentsWithStats((fg > 0).astype(np.uint8), connectivity=8)
        min_area = self.min_area_frac * gray_small.shape[0] * gray_small.shape[1]
        out = []
        for i in range(1, n):
            x, y, w, h, area = stats[i]
            if area >= min_area:
                out.append((int(x), int(y), int(x + w), int(y + h)))
        return out


def head_bands(blobs: np.ndarray, band: float = 0.35) -> np.ndarray:
    """Upper part of each moving blob (where a standing person's head is), as boxes."""
    out = blobs.astype(np.float32, copy=True)
    out[:, 3] = out[:, 1] + (out[:, 3] - out[:, 1]) * band
    return out


def detection_regions(blobs: np.ndarray, width: int, height: int, pad: float = 0.15,
                      band: float = 0.6) -> list[tuple[int, int, int, int]]:
    """Regions worth a detector pass: upper part of each blob, padded, clipped, overlaps merged."""
    from blur.geometry import merge_regions, to_int_boxes

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


def unverified(blobs: np.ndarray, verified: np.ndarray, reach: float = 0.5) -> np.ndarray:
    """Blobs that overlap none of the blobs the newest detection round looked at (each grown by `reach` of
    its size, since people move between rounds): a person who just appeared, whom no detector has seen.
    They are masked whole until a round looks at them, so a face is never shown before it was searched."""
    if len(verified) == 0:
        return blobs.astype(np.float32, copy=True)
    v = verified.astype(np.float32, copy=True)
    gw, gh = (v[:, 2] - v[:, 0]) * reach, (v[:, 3] - v[:, 1]) * reach
    v[:, 0] -= gw
    v[:, 2] += gw
    v[:, 1] -= gh
    v[:, 3] += gh
    b = blobs.astype(np.float32)
    overlap = ((b[:, None, 0] < v[None, :, 2]) & (b[:, None, 2] > v[None, :, 0])
               & (b[:, None, 1] < v[None, :, 3]) & (b[:, None, 3] > v[None, :, 1]))
    return b[~overlap.any(axis=1)]


def unexplained(blobs: np.ndarray, faces: np.ndarray, band: float = 0.6, inside: float = 0.5) -> np.ndarray:
    """Head regions (upper `band` of each moving blob) that hold no face mask: at least `inside` of some
    mask box must lie within the band. Catches tracks that drifted off a walking face between detection
    rounds (the live detector lags the video) and people whose faces the detector missed; a person whose
    face is tracked costs nothing extra."""
    bands = blobs.astype(np.float32, copy=True)
    bands[:, 3] = bands[:, 1] + (bands[:, 3] - bands[:, 1]) * band
    if len(faces) == 0:
        return bands
    f = faces.astype(np.float32)
    b = bands[:, None, :]
    ix = np.clip(np.minimum(b[..., 2], f[None, :, 2]) - np.maximum(b[..., 0], f[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(b[..., 3], f[None, :, 3]) - np.maximum(b[..., 1], f[None, :, 1]), 0, None)
    area = np.maximum((f[:, 2] - f[:, 0]) * (f[:, 3] - f[:, 1]), 1e-6)
    explained = ((ix * iy) / area[None, :] >= inside).any(axis=1)
    return bands[~explained]
