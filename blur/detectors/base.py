"""The detector seam: anything that turns an RGB image into face boxes."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Detector(Protocol):
    """Finds faces. `detect` takes HxWx3 uint8 RGB and returns (N, 5) float32 rows [x1, y1, x2, y2, score]
    in pixels of the given image. Implementations may be called from a worker thread, one call at a time."""

    name: str

    def detect(self, rgb: np.ndarray) -> np.ndarray: ...


class DetectorUnavailable(RuntimeError):
    """A detector that cannot be built here: its optional dependencies are not installed."""


def empty_boxes() -> np.ndarray:
    return np.zeros((0, 5), dtype=np.float32)


def nms(boxes: np.ndarray, iou_threshold: float = 0.3, union: bool = False) -> np.ndarray:
    """Greedy non-maximum suppression on (N, 5) rows; returns the kept rows, best score first.
    union=True: a kept box grows to cover the boxes it suppresses (for masks, more cover is safer)."""
    if len(boxes) == 0:
        return empty_boxes()
    x1, y1, x2, y2, s = boxes.T
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    order = np.argsort(-s)
    grown = boxes.astype(np.float32, copy=True)
    keep: list[int] = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-6)
        if union:
            gone = rest[iou >= iou_threshold]
            if gone.size:
                grown[i, 0], grown[i, 1] = min(x1[i], x1[gone].min()), min(y1[i], y1[gone].min())
                grown[i, 2], grown[i, 3] = max(x2[i], x2[gone].max()), max(y2[i], y2[gone].max())
        order = rest[iou < iou_threshold]
    return grown[keep].astype(np.float32)

