"""Synthetic scenes for the engine tests: the astronaut portrait (scikit-image, NASA public domain)
pasted onto a textured background, optionally moving. Nothing read from outside the project."""

from __future__ import annotations

import av
import cv2
import numpy as np
from skimage import data

# Face box inside the crop below (CenterFace finds (181, 58, 270, 178) on the full portrait).
_CROP = (140, 20, 310, 220)  # x1, y1, x2, y2 in the 512x512 portrait
FACE_IN_CROP = (181 - 140, 58 - 20, 270 - 140, 178 - 20)


def portrait_bgr() -> np.ndarray:
    x1, y1, x2, y2 = _CROP
    return np.ascontiguousarray(data.astronaut()[y1:y2, x1:x2, ::-1])


def background(width: int = 640, height: int = 360, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = (80 + 40 * np.sin(xx / 23.0) + 30 * np.cos(yy / 17.0)).astype(np.float32)
    noise = rng.normal(0, 12, (height, width, 3)).astype(np.float32)
    return np.clip(base[..., None] + noise, 0, 255).astype(np.uint8)


def scene(x: int, y: int, width: int = 640, height: int = 360, seed: int = 0,
          ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Background with the portrait pasted at (x, y); returns (BGR image, face box in image pixels)."""
    img = background(width, height, seed)
    p = portrait_bgr()
    img[y : y + p.shape[0], x : x + p.shape[1]] = p
    fx1, fy1, fx2, fy2 = FACE_IN_CROP
    return img, (x + fx1, y + fy1, x + fx2, y + fy2)


def to_frame(bgr: np.ndarray, pts: int = 0) -> av.VideoFrame:
    frame = av.VideoFrame.from_ndarray(bgr, format="bgr24").reformat(format="yuv420p")
    frame.pts = pts
    return frame


def changed_share(before: np.ndarray, after: np.ndarray, box: tuple[int, int, int, int],
                  thr: int = 3) -> float:
    x1, y1, x2, y2 = box
    a = before[y1:y2, x1:x2].astype(np.int16)
    b = after[y1:y2, x1:x2].astype(np.int16)
    diff = np.abs(a - b)
    if diff.ndim == 3:
        diff = diff.max(axis=2)
    return float((diff > thr).mean())


def inner(box: tuple[int, int, int, int], f: float = 0.15) -> tuple[int, int, int, int]:
    """The middle of a box (an ellipse mask leaves the corners)."""
    x1, y1, x2, y2 = box
    dx, dy = int((x2 - x1) * f), int((y2 - y1) * f)
    return x1 + dx, y1 + dy, x2 - dx, y2 - dy


def textured_patch(h: int, w: int, seed: int = 1, channels: int = 0) -> np.ndarray:
    """A smooth random texture (a stand-in for a face: something flow and template matching can hold),
    grey (channels=0) or with that many channels."""
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels == 0 else (h, w, channels)
    noise = cv2.GaussianBlur(rng.integers(0, 256, shape).astype(np.uint8), (0, 0), 1.5)
    return cv2.normalize(noise, None, 30, 230, cv2.NORM_MINMAX)


def paste(img: np.ndarray, patch: np.ndarray, x: int, y: int) -> np.ndarray:
    """A copy of `img` with `patch` at (x, y)."""
    out = img.copy()
    out[y : y + patch.shape[0], x : x + patch.shape[1]] = patch
    return out
