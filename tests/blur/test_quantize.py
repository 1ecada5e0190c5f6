"""The int8 CenterFace: the committed model, and the tool that builds it (run here on generated frames)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from skimage import data

from blur import make_detector
from blur.detectors.centerface import CenterFaceDetector, _model_bytes
from blur.detectors.quantize import main as quantize_main
from blur.detectors.quantize import quantize
from tests.blur.scenes import FACE_IN_CROP, portrait_bgr, scene
from tests.blur.test_detectors import FACE, _iou


def test_the_committed_int8_model_finds_what_the_float_model_finds() -> None:
    int8 = make_detector("centerface-int8", threshold=0.5)
    full = make_detector("centerface", threshold=0.5)
    assert int8.int8 and not full.int8
    img = data.astronaut()
    (box8,) = int8.detect(img)
    (box32,) = full.detect(img)
    assert _iou(box8[:4], FACE) > 0.7
    assert _iou(box8[:4], box32[:4]) > 0.85
    assert abs(float(box8[4]) - float(box32[4])) < 0.1
    # A small face, found only upscaled, as the engine's zoom passes look for it.
    small = np.ascontiguousarray(portrait_bgr()[::8, ::8, ::-1])
    found = int8.detect_scaled(small, 4.0)
    assert max(_iou(b[:4], np.asarray(FACE_IN_CROP) / 8) for b in found) > 0.3


def test_on_a_gpu_the_int8_name_runs_the_float_model() -> None:
    # 8-bit kernels are a CPU's; asked for CUDA where there is none, the detector runs on the CPU in int8,
    # and where CUDA runs, the float model does (checked by the flag, not by a GPU here).
    det = make_detector("centerface-int8", device="cuda")
    assert det.int8 == (det.provider == "CPUExecutionProvider")


def test_the_tool_builds_a_working_int8_model_from_calibration_frames(tmp_path) -> None:
    frames = []
    for i, (x, y) in enumerate([(40, 30), (300, 120), (420, 60), (150, 150)]):
        bgr, _ = scene(x, y, seed=i)
        frames.append(np.ascontiguousarray(bgr[:352, :, ::-1]).transpose(2, 0, 1)[None].astype(np.float32))
    out = tmp_path / "int8.onnx"
    with pytest.raises(ValueError, match="multiples of 32"):
        quantize(out, [np.zeros((1, 3, 360, 640), np.float32)])
    quantize(out, frames)
    assert 0 < out.stat().st_size < 0.4 * len(_model_bytes())  # 8-bit weights: about a quarter
    det = CenterFaceDetector(threshold=0.5)
    det.session = ort.InferenceSession(out.read_bytes(), providers=["CPUExecutionProvider"])
    bgr, face = scene(200, 100, seed=9)
    boxes = det.detect(np.ascontiguousarray(bgr[:, :, ::-1]))
    assert len(boxes) == 1 and _iou(boxes[0, :4], face) > 0.6


@pytest.mark.parametrize("argv, message", [
    (["--videos", "/nonexistent"], "no .mp4 videos"),
    (["--every", "0"], "--every must be at least 1"),
])
def test_the_tool_refuses_bad_arguments(argv, message, tmp_path, capsys) -> None:
    if "--every" in argv:
        (tmp_path / "a.mp4").write_bytes(b"")
        argv = [*argv, "--videos", str(tmp_path)]
    assert quantize_main([*argv, "--out", str(tmp_path / "x.onnx")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
