"""Detectors by name: what a profile's `detector` field selects."""

from __future__ import annotations

from blur.detectors.base import Detector
from blur.detectors.blazeface import BlazeFaceDetector
from blur.detectors.centerface import CenterFaceDetector

NAMES = ("centerface", "centerface-int8", "blazeface")


def make_detector(name: str = "centerface", *, device: str = "cpu",
                  threshold: float | None = None, threads: int = 1) -> Detector:
    """Build a detector by name: "centerface" (onnxruntime), "centerface-int8" (the same network with 8-bit
    convolutions: about twice as fast on a CPU; the float model on a GPU) or "blazeface" (mediapipe, full
    range; needs the optional `blazeface` extra, else `DetectorUnavailable`). `device` is "cpu" or "cuda"
    (CenterFace only; falls back to CPU when CUDA is not available). `threads`: onnxruntime's threads per
    call (CenterFace on CPU): 1 for a camera (a relay runs many, each on its own thread), more for a file."""
    given = {} if threshold is None else {"threshold": threshold}
    if name in ("centerface", "centerface-int8"):
        return CenterFaceDetector(device=device, threads=max(1, threads), int8=name.endswith("int8"), **given)
    if name == "blazeface":
        return BlazeFaceDetector(**given)
    raise ValueError(f"unknown detector {name!r}: choose one of {', '.join(NAMES)}")
