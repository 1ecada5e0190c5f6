"""The shared encoder: browser-decodable output, keyframes on request (rate-limited), monotonic 90 kHz
timestamps, and a fresh encoder with an IDR when the source changes size."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from relay.encoder import VIDEO_CLOCK, SharedEncoder
from tests.relay.conftest import HEIGHT, WIDTH, Sample, render

pytestmark = pytest.mark.timeout(60)


def frames(sample: Sample, count: int, width: int = WIDTH, height: int = HEIGHT) -> list[av.VideoFrame]:
    out = []
    for i in range(count):
        img, _ = render(sample.background, i)
        frame = av.VideoFrame.from_ndarray(img, format="bgr24")
        out.append(frame.reformat(width=width, height=height, format="yuv420p") if width != WIDTH else frame)
    return out


def decode_all(codec: str, packets: list[av.Packet]) -> list[av.VideoFrame]:
    decoder = av.CodecContext.create("h264" if codec == "h264" else "vp8", "r")
    out = []
    for packet in packets:
        out += decoder.decode(packet)
    return out


@pytest.mark.parametrize("codec", ["h264", "vp8"])
def test_output_decodes_and_keyframes_follow_requests(sample: Sample, codec: str) -> None:
    enc = SharedEncoder(codec, fps=25, gop_s=10)
    packets, keyframes = [], []
    for i, frame in enumerate(frames(sample, 50)):
        if i in (10, 11, 40):  # 11 is within 0.5 s of 10: deferred, not dropped
            enc.request_keyframe()
        for packet in enc.encode(frame, arrival=100 + i / 25):
            packets.append(packet)
            if packet.is_keyframe:
                keyframes.append(i)
    assert keyframes[0] == 0
    assert 10 in keyframes and 40 in keyframes
    # The request at frame 11 is honoured once 0.5 s passed since the IDR at 10, not at once.
    assert [k for k in keyframes if 10 < k < 40] == [23]
    assert enc.frames_encoded == 50
    decoded = decode_all(codec, packets)
    assert len(decoded) == 50 and (decoded[0].width, decoded[0].height) == (WIDTH, HEIGHT)
    # 90 kHz RTP clock, strictly increasing (no B-frames: presentation order is decode order).
    pts = [p.pts for p in packets]
    assert all(p.time_base == VIDEO_CLOCK for p in packets)
    assert pts == sorted(pts) and len(set(pts)) == len(pts)
    assert pts[1] - pts[0] == 3600


def test_a_joining_viewers_keyframe_is_not_held_by_the_interval(sample: Sample) -> None:
    enc = SharedEncoder("h264", fps=25, gop_s=10)
    keyframes = []
    for i, frame in enumerate(frames(sample, 25)):
        if i == 5:
            enc.request_keyframe()  # a PLI: forced at once (none forced yet)
        if i == 8:
            enc.request_keyframe(joining=True)  # 0.12 s later: a viewer starting, forced at the next frame
        if i == 9:
            enc.request_keyframe()  # a PLI within the interval: deferred to 0.5 s after the IDR at frame 8
        if any(p.is_keyframe for p in enc.encode(frame, arrival=100 + i / 25)):
            keyframes.append(i)
    assert keyframes == [0, 5, 8, 8 + 13]  # 13 frames at 25 fps: the first frame 0.5 s after the one at 8


def test_h264_is_constrained_baseline_with_headers_on_every_idr(sample: Sample) -> None:
    enc = SharedEncoder("h264", fps=25, gop_s=1)
    idrs = [p for i, f in enumerate(frames(sample, 30)) for p in enc.encode(f, i / 25) if p.is_keyframe]
    assert len(idrs) >= 2
    for packet in idrs:
        data = bytes(packet)
        sps = data.find(b"\x00\x00\x01\x67")
        assert sps >= 0, "every IDR carries its SPS, so a viewer can start on any of them"
        profile_idc, constraints = data[sps + 4], data[sps + 5]
        assert profile_idc == 66 and constraints & 0x40  # baseline + constraint_set1 = constrained baseline
        assert b"\x00\x00\x01\x68" in data  # PPS


def test_timestamps_stay_monotonic_when_arrivals_repeat(sample: Sample) -> None:
    enc = SharedEncoder("h264")
    out = [p.pts for f in frames(sample, 5) for p in enc.encode(f, arrival=50.0)]
    assert out == sorted(out) and len(set(out)) == len(out)


def test_resized_source_restarts_with_an_idr(sample: Sample) -> None:
    enc = SharedEncoder("h264", gop_s=10)
    small = frames(sample, 3, 320, 180)
    for i, f in enumerate(frames(sample, 3)):
        enc.encode(f, i / 25)
    packets = [p for i, f in enumerate(small) for p in enc.encode(f, 1 + i / 25)]
    assert packets[0].is_keyframe
    decoded = decode_all("h264", packets)
    assert (decoded[-1].width, decoded[-1].height) == (320, 180)


def test_odd_sizes_and_other_pixel_formats_are_converted() -> None:
    enc = SharedEncoder("h264")
    rgb = av.VideoFrame.from_ndarray(np.full((101, 161, 3), 90, np.uint8), format="rgb24")
    packets = enc.encode(rgb, 0.0)
    frame = decode_all("h264", packets)[0]
    assert (frame.width, frame.height) == (160, 100)


def test_unknown_codec_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported codec"):
        SharedEncoder("mpeg2")


def test_frame_timestamps_are_overwritten(sample: Sample) -> None:
    enc = SharedEncoder("h264")
    frame = frames(sample, 1)[0]
    frame.pts, frame.time_base = 123456, Fraction(1, 1000)
    packet = enc.encode(frame, 0.0)[0]
    assert packet.pts == 0 and packet.time_base == VIDEO_CLOCK
