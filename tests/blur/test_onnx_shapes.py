"""The CenterFace model as the engine loads it: symbolic input sizes, weights no longer graph inputs."""

import numpy as np
import onnxruntime as ort

from blur.detectors.centerface import _INPUT, _OUTPUTS, _model_bytes
from blur.detectors.onnx_shapes import dynamic_batch_and_space


def _session(model: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def test_weights_are_no_longer_inputs_and_sizes_are_free() -> None:
    shipped, loaded = _session(_model_bytes()), _session(dynamic_batch_and_space(_model_bytes()))
    # Shipped, every weight is also an input a caller may override: nothing is folded or fused.
    assert len(shipped.get_overridable_initializers()) > 100
    assert loaded.get_overridable_initializers() == []
    (only,) = loaded.get_inputs()
    assert only.name == _INPUT and only.shape[1] == 3
    assert all(isinstance(only.shape[k], str) for k in (0, 2, 3))
    x = np.random.default_rng(0).uniform(0, 255, (2, 3, 96, 160)).astype(np.float32)
    heat = loaded.run(_OUTPUTS, {_INPUT: x})[0]
    assert heat.shape == (2, 1, 24, 40)  # stride 4, any batch and size


def test_the_rewritten_model_computes_what_the_shipped_one_does() -> None:
    # Fusing batch normalisation into the convolutions changes the arithmetic's order, not its result.
    shipped, loaded = _session(_model_bytes()), _session(dynamic_batch_and_space(_model_bytes()))
    x = np.random.default_rng(1).uniform(0, 255, (10, 3, 32, 32)).astype(np.float32)  # the shipped input
    for want, got in zip(shipped.run(_OUTPUTS, {_INPUT: x}), loaded.run(_OUTPUTS, {_INPUT: x}), strict=True):
        assert want.shape == got.shape
        assert np.abs(want - got).max() < 1e-3 * max(1.0, float(np.abs(want).max()))
