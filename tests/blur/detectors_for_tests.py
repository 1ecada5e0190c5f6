"""Small real Detector implementations used for fault injection and for exact checks."""

from __future__ import annotations

import threading

import numpy as np


class FixedBoxDetector:
    """Always reports the same boxes (pixels of the frame it is given)."""

    name = "fixed"

    def __init__(self, boxes: list[tuple[float, float, float, float]]) -> None:
        self.boxes = np.asarray([[*b, 0.99] for b in boxes], dtype=np.float32).reshape(-1, 5)
        self.calls = 0

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self.boxes.copy()


class RaisingDetector:
    name = "raising"

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        raise RuntimeError("model file corrupt")


class SleepingDetector:
    """Blocks until released (or `seconds` pass): a detector that stalls."""

    name = "sleeping"

    def __init__(self, seconds: float = 30.0) -> None:
        self.seconds = seconds
        self.release = threading.Event()

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        self.release.wait(self.seconds)
        return np.zeros((0, 5), np.float32)
