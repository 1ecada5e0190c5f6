"""Box arithmetic shared by detection, tracking and masking (boxes are float [x1, y1, x2, y2] rows)."""

from __future__ import annotations

import numpy as np


def scale_boxes(boxes: np.ndarray, sx: float, sy: float | None = None) -> np.ndarray:
    out = boxes.astype(np.float32, copy=True)
    out[:, 0:4:2] *= sx
    out[:, 1:4:2] *= sx if sy is None else sy
    return out


def grow(boxes: np.ndarray, fx: float | np.ndarray, fy: float | np.ndarray | None = None) -> np.ndarray:
    """Scale boxes about their centres (factor 1.0 keeps them)."""
    fy = fx if fy is None else fy
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    hw, hh = (boxes[:, 2] - boxes[:, 0]) * fx / 2, (boxes[:, 3] - boxes[:, 1]) * fy / 2
    out = boxes.astype(np.float32, copy=True)
    out[:, 0], out[:, 1], out[:, 2], out[:, 3] = cx - hw, cy - hh, cx + hw, cy + hh
    return out


def widen(boxes: np.ndarray, aspect: float) -> np.ndarray:
    """Boxes narrower than `aspect` times their height, widened about their centres to that width."""
    need = np.maximum(aspect * (boxes[:, 3] - boxes[:, 1]) - (boxes[:, 2] - boxes[:, 0]), 0) / 2
    out = boxes.astype(np.float32, copy=True)
    out[:, 0] -= need
    out[:, 2] += need
    return out


def crowd_factor(boxes: np.ndarray, neighbors: int, radius: float) -> np.ndarray:
    """True for boxes with at least `neighbors` other boxes within `radius` box heights (centre to centre):
    in a crowd, undetected faces sit between detected ones."""
    n = len(boxes)
    if n <= neighbors or neighbors <= 0:
        return np.zeros(n, dtype=bool)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    h = np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)
    d = np.hypot(cx[:, None] - cx[None, :], cy[:, None] - cy[None, :])
    close = d < (radius * h)[:, None]
    return (close.sum(axis=1) - 1) >= neighbors


def to_int_boxes(boxes: np.ndarray, width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Round outwards and clip; drop empty boxes."""
    return int_boxes_kept(boxes, width, height)[0]


def int_boxes_kept(boxes: np.ndarray, width: int, height: int,
                   ) -> tuple[list[tuple[int, int, int, int]], np.ndarray]:
    """`to_int_boxes`, and which of the given boxes it kept (bool per box)."""
    if len(boxes) == 0:
        return [], np.zeros(0, bool)
    b = np.asarray(boxes[:, :4], np.float64)
    lo = np.maximum(0, np.floor(b[:, 0:2]))
    hi = np.minimum((width, height), np.ceil(b[:, 2:4]))
    out = np.concatenate([lo, hi], axis=1).astype(np.int64)
    keep = (out[:, 2] > out[:, 0]) & (out[:, 3] > out[:, 1])
    return [tuple(r) for r in out[keep].tolist()], keep


def union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest box (float32 x1, y1, x2, y2) holding both boxes."""
    return np.concatenate([np.minimum(a[:2], b[:2]), np.maximum(a[2:4], b[2:4])]).astype(np.float32)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-6)


def merge_regions(boxes: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Union overlapping rectangles until none overlap (few boxes; quadratic is fine)."""
    regions = list(boxes)
    merged = True
    while merged:
        merged = False
        out: list[tuple[int, int, int, int]] = []
        for r in regions:
            for i, o in enumerate(out):
                if r[0] < o[2] and o[0] < r[2] and r[1] < o[3] and o[1] < r[3]:
                    out[i] = (min(r[0], o[0]), min(r[1], o[1]), max(r[2], o[2]), max(r[3], o[3]))
                    merged = True
                    break
            else:
                out.append(r)
        regions = out
    return regions
