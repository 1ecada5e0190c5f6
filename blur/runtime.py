"""Process-wide settings the engine wants from the libraries it runs on."""

from __future__ import annotations

import cv2


def one_opencv_thread() -> None:
    """OpenCV on the calling thread only. The engine's work is many small images (flow, motion, hundreds of
    face boxes a frame), where OpenCV's own worker threads cost more in hand-overs than they gain; a
    process already spreads over its cores by cameras (the relay) or by stages (a file). Measured on the
    crowd clip: a file's CPU time 26.2 -> 21.0 s; one live crowd camera 1.22-1.29 -> 1.17 cores."""
    cv2.setNumThreads(1)
