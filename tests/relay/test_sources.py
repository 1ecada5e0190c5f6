"""Ingest against a real RTSP server: both transports, bad URLs, a camera that dies and comes back, one
that hangs, frozen pictures, looped files, and credentials that never leak."""

from __future__ import annotations

import functools
import http.server
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from policies.credentials import redact_url
from relay.sources import Source, SourceError, SourceOptions, describe_error, plan_open
from tests.relay.conftest import (
    FPS,
    HEIGHT,
    WIDTH,
    RtspServer,
    Sample,
    free_port,
    render,
    scene_index,
    wait_for,
    write_clip,
)

pytestmark = pytest.mark.timeout(60)

FAST = SourceOptions(open_timeout_s=3, stall_s=1.5, backoff_initial_s=0.1, backoff_max_s=0.5)


class Counter:
    def __init__(self) -> None:
        self.frames = 0
        self.sizes: set[tuple[int, int]] = set()
        self.lock = threading.Lock()

    def __call__(self, frame, arrival: float) -> None:  # type: ignore[no-untyped-def]
        with self.lock:
            self.frames += 1
            self.sizes.add((frame.width, frame.height))


@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_rtsp_delivers_frames(rtsp: RtspServer, transport: str) -> None:
    count = Counter()
    source = Source(f"{rtsp.url}#transport={transport}", count, label=f"rtsp-{transport}", options=FAST)
    source.start()
    try:
        assert await wait_for(lambda: count.frames >= 15, 10)
        health = source.health()
        assert health.state == "live" and health.connected and health.last_error is None
        assert (health.width, health.height) == (WIDTH, HEIGHT) and count.sizes == {(WIDTH, HEIGHT)}
        assert health.last_frame_age_s is not None and health.last_frame_age_s < 2
    finally:
        source.stop()
    assert source.health().state == "stopped"


@pytest.mark.parametrize(("url", "expected"), [
    ("ftp://camera.example/stream", "unsupported scheme 'ftp'"),
    ("rtsp://user:hunter22@camera.invalid/stream", "cannot resolve host"),
    ("rtsp://user:hunter22@127.0.0.1:{closed}/stream", "connection refused"),
    ("/no/such/clip.mp4", "no such file"),
    ("rtsp://127.0.0.1:{closed}/stream#transport=sctp", "unsupported RTSP transport"),
])
async def test_bad_urls_show_in_health_without_raising(url: str, expected: str) -> None:
    count = Counter()
    source = Source(url.format(closed=free_port()), count, label="bad", options=FAST)
    source.start()
    try:
        assert await wait_for(lambda: source.health().failures >= 2, 10)  # keeps retrying, with backoff
        health = source.health()
        assert health.state == "down" and not health.connected and count.frames == 0
        assert expected in (health.last_error or "")
        assert "hunter22" not in repr(health)
    finally:
        source.stop()


async def test_reconnects_after_the_camera_restarts(rtsp_private: RtspServer) -> None:
    rtsp_private.start()
    count = Counter()
    source = Source(rtsp_private.url, count, label="flaky", options=FAST)
    source.start()
    try:
        assert await wait_for(lambda: count.frames >= 10, 10)
        rtsp_private.stop()
        assert await wait_for(lambda: source.health().state == "down", 10)
        assert source.health().last_error
        rtsp_private.restart()
        before = count.frames
        assert await wait_for(lambda: source.health().reconnects >= 1 and count.frames >= before + 10, 20)
        assert source.health().state == "live" and source.health().last_error is None
    finally:
        source.stop()


async def test_a_hung_camera_is_detected_as_stalled_and_reconnected(rtsp_private: RtspServer) -> None:
    rtsp_private.start()
    count = Counter()
    source = Source(rtsp_private.url, count, label="hung", options=FAST)
    source.start()
    assert rtsp_private.proc is not None
    pid = rtsp_private.proc.pid
    try:
        assert await wait_for(lambda: count.frames >= 5, 10)
        os.kill(pid, signal.SIGSTOP)  # the connection stays open, nothing arrives
        assert await wait_for(lambda: source.health().failures >= 1, 10)
        assert source.health().state == "down" and not source.health().connected
        os.kill(pid, signal.SIGCONT)
        before = count.frames
        assert await wait_for(lambda: source.health().reconnects >= 1 and count.frames > before + 5, 20)
    finally:
        os.kill(pid, signal.SIGCONT)
        source.stop()


async def test_credentials_work_and_never_leak(
    rtsp_private: RtspServer, caplog: pytest.LogCaptureFixture
) -> None:
    rtsp_private.user, rtsp_private.password = "operator", "s3cret-Pa55"
    rtsp_private.start()
    caplog.set_level(logging.DEBUG)
    good, bad = Counter(), Counter()
    good_url = rtsp_private.url_with_credentials()
    ok = Source(good_url, good, label="auth-ok", shown=redact_url(good_url), options=FAST)
    wrong_url = rtsp_private.url.replace("rtsp://", "rtsp://operator:wrong-s3cret-Pa55@")
    refused = Source(wrong_url, bad, label="auth-bad", shown=redact_url(wrong_url), options=FAST)
    ok.start()
    refused.start()
    try:
        assert await wait_for(lambda: good.frames >= 5 and refused.health().failures >= 1, 15)
        assert bad.frames == 0
        assert "unauthorized" in (refused.health().last_error or "")
    finally:
        ok.stop()
        refused.stop()
    shown = " ".join([repr(ok.health()), repr(refused.health()), ok.redacted_url, refused.redacted_url,
                      caplog.text, *(str(r.args) for r in caplog.records)])
    assert "s3cret-Pa55" not in shown and "operator" not in shown
    assert "***@" in ok.redacted_url


async def test_file_source_loops_at_its_frame_rate(tmp_path: Path) -> None:
    clip = tmp_path / "short.mp4"
    write_clip(clip, seconds=0.4)  # 10 frames
    count = Counter()
    source = Source(str(clip), count, label="file", options=FAST)
    source.start()
    try:
        assert await wait_for(lambda: count.frames >= 25, 10)  # 2.5 passes over the clip
        assert source.health().reconnects == 0 and source.health().failures == 0
        assert source.health().fps_in < 40  # paced near 25 fps, not decoded as fast as possible
    finally:
        source.stop()


async def test_frozen_picture_is_reported_and_reconnected(tmp_path: Path, sample: Sample) -> None:
    clip = tmp_path / "frozen.mp4"
    write_clip(clip, seconds=1.0, still=True)
    count = Counter()
    options = SourceOptions(frozen_s=0.5, backoff_initial_s=0.1, backoff_max_s=0.2)
    source = Source(clip.as_uri(), count, label="frozen", options=options)
    source.start()
    try:
        assert await wait_for(lambda: source.health().failures >= 1, 10)
        assert "frozen" in (source.health().last_error or "")
    finally:
        source.stop()


def slice_nal_units(path: Path) -> tuple[int, int]:
    """(pictures, slices) in an H.264 Annex B file: NAL types 1 and 5 are slices; first_mb_in_slice == 0
    (the first bit of the slice header's exp-Golomb code set) starts a picture."""
    pictures = slices = 0
    for nal in path.read_bytes().split(b"\x00\x00\x01")[1:]:
        if nal and nal[0] & 0x1F in (1, 5):
            slices += 1
            pictures += nal[1] >> 7
    return pictures, slices


@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_multi_slice_camera_decodes_to_the_source_picture(tmp_path: Path, transport: str) -> None:
    # Most cameras send several slices per picture; the RTSP server sends each keyframe slice as a packet
    # of its own. Every picture must decode whole, from the very first keyframe on.
    clip = tmp_path / "sliced.h264"
    truth, background = write_clip(clip, seconds=2.0, slices=4)
    pictures, slices = slice_nal_units(clip)
    assert pictures == len(truth) and slices == 4 * pictures
    sources = [_thumb(render(background, scene_index(i, len(truth)))[0]) for i in range(len(truth))]
    received: list[np.ndarray] = []

    def keep(frame: av.VideoFrame, arrival: float) -> None:
        if len(received) < 40:  # past the second keyframe (GOP 25)
            received.append(_thumb(frame.to_ndarray(format="bgr24")))

    server = RtspServer(clip)
    server.start()
    source = Source(f"{server.url}#transport={transport}", keep, label="sliced", options=FAST)
    source.start()
    try:
        assert await wait_for(lambda: len(received) >= 40, 15)
    finally:
        source.stop()
        server.stop()
    # Each picture against the closest source picture: ~3 levels of coding error when whole, tens of
    # levels where slices are missing (grey or green bands).
    errors = [min(float(np.abs(got - want).mean()) for want in sources) for got in received]
    assert max(errors) < 8, [round(e, 1) for e in errors]


def _thumb(bgr: np.ndarray) -> np.ndarray:
    return cv2.resize(bgr, (160, 90), interpolation=cv2.INTER_AREA).astype(np.float32)


@pytest.fixture
def http_camera(sample: Sample, tmp_path: Path) -> Iterator[str]:
    """A real HTTP server: an MJPEG stream at /video.mjpg (multipart/x-mixed-replace, like IP cameras serve)
    and an HLS playlist at /hls/index.m3u8 with its segments."""
    jpegs = [cv2.imencode(".jpg", render(sample.background, i)[0])[1].tobytes() for i in range(FPS)]
    hls = tmp_path / "hls"
    hls.mkdir()
    with av.open(str(hls / "index.m3u8"), "w", format="hls",
                 options={"hls_time": "1", "hls_list_size": "0", "hls_playlist_type": "vod"}) as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"preset": "ultrafast", "g": str(FPS), "bf": "0"}
        for i in range(2 * FPS):
            frame = av.VideoFrame.from_ndarray(render(sample.background, i)[0], format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    stop = threading.Event()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/video.mjpg":
                return super().do_GET()
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            i = 0
            while not stop.is_set():
                jpeg = jpegs[i % len(jpegs)]
                try:
                    head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                    self.wfile.write(head + jpeg + b"\r\n")
                    self.wfile.flush()
                except OSError:
                    return
                i += 1
                time.sleep(1 / FPS)

        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Handler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    stop.set()
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("path", ["/video.mjpg", "/hls/index.m3u8"])
async def test_http_mjpeg_and_hls_deliver_frames(http_camera: str, path: str) -> None:
    count = Counter()
    source = Source(http_camera + path, count, label="http", options=FAST)
    source.start()
    try:
        assert await wait_for(lambda: count.frames >= 20, 10)
        health = source.health()
        assert count.sizes == {(WIDTH, HEIGHT)} and health.last_frame_age_s is not None
        assert health.fps_in < 40  # paced like a camera (HLS arrives a segment at a time)
    finally:
        source.stop()


def test_errors_never_echo_the_url() -> None:
    # PyAV names the URL it could not open in the exception's message: only the kind and the system's
    # text are shown. (Redaction itself is policies.credentials.redact_url, tested there.)
    url = "rtsp://admin:pw0rd@10.0.0.5/live?token=t0ken"
    err = OSError(71, "Protocol error", url)
    assert url in str(err) and describe_error(err) == "OSError: Protocol error"
    assert describe_error(RuntimeError(f"cannot open {url}")) == "RuntimeError"
    unresolved = OSError(f"{url}: Name or service not known")
    assert describe_error(unresolved) == "cannot resolve the camera's host name"


def test_open_plan_picks_low_latency_options(tmp_path: Path) -> None:
    plan = plan_open("rtsp://127.0.0.1:8554/cam#transport=udp")
    assert plan.options["rtsp_transport"] == "udp" and plan.options["probesize"] == "32768"
    assert "nobuffer" not in plan.options.get("fflags", "")  # it drops the probed packets: torn first GOP
    assert plan.target == "rtsp://127.0.0.1:8554/cam"  # the fragment is ours, never sent to the camera
    assert plan_open("http://127.0.0.1/live/index.m3u8").format == "hls"
    assert plan_open("rtsp://127.0.0.1/cam").options["rtsp_transport"] == "tcp"
    with pytest.raises(SourceError, match="no source URL"):
        plan_open("")
