"""Small real Detector implementations for exact checks and for fault injection (swapped into a running
engine with `replace_detector` by the engine, relay and app tests)."""

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
    """Every call raises, like a lost inference device or a corrupt model."""

    name = "raising"

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        raise RuntimeError("injected detector fault: inference device lost")


class StallingDetector:
    """Every call hangs until `release` is set (or `timeout_s` pass): a stuck accelerator call."""

    name = "stalling"

    def __init__(self, timeout_s: float = 60.0) -> None:
        self.timeout_s = timeout_s
        self.release = threading.Event()

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        self.release.wait(self.timeout_s)
        return np.zeros((0, 5), np.float32)
