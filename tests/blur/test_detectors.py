import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from skimage import data

from blur import Detector, make_detector
from blur.detectors.base import nms
from tests.blur.scenes import FACE_IN_CROP, portrait_bgr

FACE = (181, 58, 270, 178)
REPO = Path(__file__).resolve().parents[2]
# Python code that makes `import mediapipe` raise ImportError, as it does where the optional `blazeface`
# extra is not installed (and `import onnx`, which nothing needs).
WITHOUT_EXTRA = "import sys\nsys.modules['mediapipe'] = None\nsys.modules['onnx'] = None\n"
UNAVAILABLE = ("the BlazeFace detector needs the optional 'blazeface' extra: "
               "pip install 'cctv-relay[blazeface]'")


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


@pytest.fixture(scope="module")
def centerface():
    return make_detector("centerface", threshold=0.5)


def test_centerface_finds_the_portrait_face(centerface):
    boxes = centerface.detect(data.astronaut())
    assert isinstance(centerface, Detector)
    assert boxes.dtype == np.float32 and boxes.shape[1] == 5
    assert len(boxes) == 1
    assert _iou(boxes[0, :4], FACE) > 0.7


def test_centerface_upscaling_finds_a_small_face(centerface):
    # The face shrunk to ~15 px high: missed at native size, found when the image is upscaled.
    small = np.ascontiguousarray(portrait_bgr()[::8, ::8, ::-1])
    assert len(centerface.detect_scaled(small, 1.0)) == 0
    found = centerface.detect_scaled(small, 4.0)
    assert len(found) >= 1
    expected = np.asarray(FACE_IN_CROP) / 8
    assert max(_iou(b[:4], expected) for b in found) > 0.3


def test_centerface_batch_equals_single(centerface):
    img = data.astronaut()[:256, 128:384]
    single = centerface.detect(np.ascontiguousarray(img))
    batch = centerface.detect_batch([np.ascontiguousarray(img), np.zeros_like(img)])
    assert np.allclose(batch[0], single, atol=1e-3)
    assert len(batch[1]) == 0


def test_blazeface_finds_the_portrait_face():
    det = make_detector("blazeface")
    boxes = det.detect(data.astronaut())
    assert len(boxes) == 1
    assert _iou(boxes[0, :4], FACE) > 0.5


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_without_the_blazeface_extra_centerface_works_and_blazeface_is_a_clear_error():
    # ...and without `onnx`: the int8 model is built with it, but loaded by onnxruntime alone.
    code = WITHOUT_EXTRA + """
from skimage import data
from blur import DetectorUnavailable, make_detector
print(len(make_detector("centerface", threshold=0.5).detect(data.astronaut())))
print(len(make_detector("centerface-int8", threshold=0.5).detect(data.astronaut())))
try:
    make_detector("blazeface")
except DetectorUnavailable as exc:
    print(exc)
"""
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["1", "1", UNAVAILABLE]


def test_importing_the_engine_does_not_import_mediapipe():
    code = "import sys, blur; print(sorted(m for m in ('mediapipe', 'onnx') if m in sys.modules))"
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_detectors_reject_bad_input(centerface):
    with pytest.raises(ValueError, match="RGB"):
        centerface.detect(np.zeros((32, 32), np.uint8))


def test_unknown_detector_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown detector 'yolo'"):
        make_detector("yolo")


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.asarray([[0, 0, 10, 10, 0.5], [1, 1, 11, 11, 0.9], [50, 50, 60, 60, 0.3]], np.float32)
    kept = nms(boxes, 0.3)
    assert kept[:, 4].tolist() == pytest.approx([0.9, 0.3])
