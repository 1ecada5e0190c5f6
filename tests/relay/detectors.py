"""Face detectors that fail on purpose, swapped into a running engine (`replace_detector`) by the
fault-injection tests of the relay and of the app."""

from __future__ import annotations

import threading

import numpy as np


class RaisingDetector:
    """Every call raises, like a lost inference device."""

    name = "raising"

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        raise RuntimeError("injected detector fault: inference device lost")


class StallingDetector:
    """Every call hangs until `release` is set (a stuck accelerator call); set it when the test ends."""

    name = "stalling"

    def __init__(self, timeout_s: float = 60.0) -> None:
        self.release = threading.Event()
        self.timeout_s = timeout_s

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        self.release.wait(self.timeout_s)
        return np.zeros((0, 5), np.float32)
