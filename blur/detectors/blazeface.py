"""MediaPipe BlazeFace (full-range model, shipped in the mediapipe 0.10.14 wheel). Cheap, but on a wide
CCTV view it finds almost none of the faces under ~60 px: kept as a reference and for close-up cameras."""

from __future__ import annotations

import threading
import warnings

import numpy as np

from blur.detectors.base import DetectorUnavailable, empty_boxes

UNAVAILABLE = ("the BlazeFace detector needs the optional 'blazeface' extra: "
               "pip install 'cctv-relay[blazeface]'")


class BlazeFaceDetector:
    name = "blazeface"

    def __init__(self, *, threshold: float = 0.3) -> None:
        # Imported here, not at the top: mediapipe is an optional extra (no profile uses BlazeFace), and
        # importing it takes about a second (JAX, matplotlib, its protobuf runtime) that `import blur` and
        # every CenterFace user should not pay.
        try:
            import mediapipe as mp
        except ImportError as exc:
            raise DetectorUnavailable(UNAVAILABLE) from exc
        # mediapipe 0.10.14 calls a deprecated protobuf API on every frame; the warning says nothing to our
        # users.
        warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype\(\) is deprecated")

        self.threshold = threshold
        self._solution = mp.solutions.face_detection.FaceDetection(
            model_selection=1, min_detection_confidence=threshold)
        self._lock = threading.Lock()

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected HxWx3 uint8 RGB, got {rgb.shape} {rgb.dtype}")
        h, w = rgb.shape[:2]
        with self._lock:
            result = self._solution.process(np.ascontiguousarray(rgb))
        if not result.detections:
            return empty_boxes()
        rows = []
        for det in result.detections:
            bb = det.location_data.relative_bounding_box
            x1, y1 = bb.xmin * w, bb.ymin * h
            rows.append([x1, y1, x1 + bb.width * w, y1 + bb.height * h, det.score[0]])
        boxes = np.asarray(rows, dtype=np.float32)
        boxes[:, 0:4:2] = boxes[:, 0:4:2].clip(0, w)
        boxes[:, 1:4:2] = boxes[:, 1:4:2].clip(0, h)
        return boxes

    def close(self) -> None:
        self._solution.close()
