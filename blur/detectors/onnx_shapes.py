"""Make the batch and spatial dimensions of an ONNX model's inputs/outputs symbolic, without the `onnx`
package: a direct rewrite of the protobuf wire format (ModelProto.graph.input/output type shapes).

CenterFace ships with a fixed 10x3x32x32 input although the network is fully convolutional, and with its
weights listed as graph inputs (which keeps onnxruntime from optimising them)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
# Field numbers from onnx.proto.
_MODEL_GRAPH, _GRAPH_INITIALIZER, _GRAPH_INPUT, _GRAPH_OUTPUT = 7, 5, 11, 12
_TENSOR_NAME, _VALUEINFO_NAME = 8, 1
_VALUEINFO_TYPE, _TYPE_TENSOR, _TENSOR_SHAPE, _SHAPE_DIM = 2, 1, 2, 1
_DIM_VALUE, _DIM_PARAM = 1, 2


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _fields(buf: bytes) -> Iterator[tuple[int, int, bytes, bytes]]:
    """Yield (field, wire type, raw bytes of the whole field, payload for LEN fields)."""
    pos = 0
    while pos < len(buf):
        start = pos
        key, pos = _read_varint(buf, pos)
        field, wtype = key >> 3, key & 7
        payload = b""
        if wtype == _VARINT:
            _, pos = _read_varint(buf, pos)
        elif wtype == _I64:
            pos += 8
        elif wtype == _I32:
            pos += 4
        elif wtype == _LEN:
            n, pos = _read_varint(buf, pos)
            payload = buf[pos : pos + n]
            pos += n
        else:
            raise ValueError(f"unsupported protobuf wire type {wtype}")
        yield field, wtype, buf[start:pos], payload


def _len_field(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | _LEN) + _varint(len(payload)) + payload


def _rewrite(buf: bytes, field: int, fn: Callable[[bytes], bytes]) -> bytes:
    out = bytearray()
    for f, wtype, raw, payload in _fields(buf):
        out += _len_field(f, fn(payload)) if (f == field and wtype == _LEN) else raw
    return bytes(out)


def _symbolic_dims(shape: bytes, symbolic: dict[int, str]) -> bytes:
    out = bytearray()
    index = 0
    for f, wtype, raw, _payload in _fields(shape):
        if f == _SHAPE_DIM and wtype == _LEN:
            if index in symbolic:
                out += _len_field(_SHAPE_DIM, _len_field(_DIM_PARAM, symbolic[index].encode()))
            else:
                out += raw
            index += 1
        else:
            out += raw
    return bytes(out)


def _name(message: bytes, field: int) -> str | None:
    for f, wtype, _raw, payload in _fields(message):
        if f == field and wtype == _LEN:
            return payload.decode()
    return None


def _without_initializer_inputs(graph: bytes) -> bytes:
    """The graph without the inputs that name an initializer. Older exporters list every weight as a graph
    input too; onnxruntime must then treat weights as values a caller could override, and neither folds
    constants nor fuses batch normalisation into the convolutions."""
    weights = {_name(payload, _TENSOR_NAME) for f, wtype, _raw, payload in _fields(graph)
               if f == _GRAPH_INITIALIZER and wtype == _LEN}
    out = bytearray()
    for f, wtype, raw, payload in _fields(graph):
        if not (f == _GRAPH_INPUT and wtype == _LEN and _name(payload, _VALUEINFO_NAME) in weights):
            out += raw
    return bytes(out)


def dynamic_batch_and_space(model: bytes) -> bytes:
    """Return the model with dims 0, 2, 3 of every graph input and output made symbolic (N, C, H, W), and
    its weights no longer listed as inputs."""

    def value_info(prefix: str) -> Callable[[bytes], bytes]:
        dims = {0: "B", 2: f"{prefix}H", 3: f"{prefix}W"}

        def shape(b: bytes) -> bytes:
            return _symbolic_dims(b, dims)

        def tensor(b: bytes) -> bytes:
            return _rewrite(b, _TENSOR_SHAPE, shape)

        def type_(b: bytes) -> bytes:
            return _rewrite(b, _TYPE_TENSOR, tensor)

        return lambda b: _rewrite(b, _VALUEINFO_TYPE, type_)

    def graph(b: bytes) -> bytes:
        b = _without_initializer_inputs(b)
        return _rewrite(_rewrite(b, _GRAPH_INPUT, value_info("in")), _GRAPH_OUTPUT, value_info("out"))

    return _rewrite(model, _MODEL_GRAPH, graph)
