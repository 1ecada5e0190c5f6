"""Real parts for relay tests: a generated sample clip (faces with known truth boxes) served by a real
GStreamer RTSP server, which tests may kill and restart on the same port."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from relay.cameras import CameraManager, CameraSpec
from relay.sample_camera import RtspServer as SampleRtspServer
from relay.samples import Walker, face_patch, street_background

# 640x360 keeps CPU low on the 2-core CI machine; the walkers are sized for it (the sample's defaults are
# laid out for 720p). Faces of 96 and 72 px: well inside what the realtime profile finds.
WIDTH, HEIGHT, FPS = 640, 360, 25
WALKERS = (Walker(height=96, y=200, x0=40, speed=4.0), Walker(height=72, y=40, x0=420, speed=-3.0))


@functools.lru_cache(maxsize=8)
def _patch(height: int) -> np.ndarray:
    return face_patch(height)


def render(background: np.ndarray, index: int) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """relay.samples.render_frame with the face patches cached (it reloads the photo for every frame)."""
    frame = background.copy()
    w = frame.shape[1]
    boxes = []
    for walker in WALKERS:
        patch = _patch(walker.height)
        ph, pw = patch.shape[:2]
        span = w - pw
        pos = (walker.x0 + walker.speed * index) % (2 * span)
        x = int(pos if pos <= span else 2 * span - pos)
        frame[walker.y : walker.y + ph, x : x + pw] = patch
        boxes.append((x, walker.y, x + pw, walker.y + ph))
    return frame, boxes


@dataclass
class Sample:
    path: Path  # H.264 Annex B
    truth: list[list[tuple[int, int, int, int]]]  # face boxes per frame
    background: np.ndarray = field(repr=False)
    fps: int = FPS

    def frame(self, index: int) -> np.ndarray:
        """The source picture (BGR) of clip frame `index`, before any coding."""
        return render(self.background, scene_index(index % len(self.truth), len(self.truth)))[0]


def scene_index(i: int, frames: int) -> int:
    """The clip plays the walk forth then back, so its loop has no jump: people do not teleport (a face
    appearing out of nowhere between two detections is the engine's own test, not the relay's)."""
    half = frames // 2
    return i if i < half else frames - 1 - i


def write_clip(path: Path, *, seconds: float = 4.0, gop: int = FPS, background: np.ndarray | None = None,
               still: bool = False, slices: int = 1) -> tuple[list, np.ndarray]:
    """Encode the test scene; `still`: every frame is frame 0 (a frozen camera); `slices` per picture (x264's
    sliced threads, as most real cameras send: the RTSP server then sends each keyframe slice as a packet of
    its own)."""
    background = street_background(WIDTH, HEIGHT) if background is None else background
    truth = []
    fmt = "h264" if path.suffix == ".h264" else None
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        threads = f"sliced-threads=1:threads={slices}:slices={slices}" if slices > 1 else "threads=1"
        stream.options = {"preset": "veryfast", "tune": "zerolatency", "g": str(gop), "bf": "0", "crf": "18",
                          "x264-params": threads}
        count = int(seconds * FPS)
        for i in range(count):
            img, boxes = render(background, 0 if still else scene_index(i, count))
            truth.append(boxes)
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return truth, background


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    root = tmp_path_factory.mktemp("sample")
    truth, background = write_clip(root / "street.h264")
    return Sample(root / "street.h264", truth, background)


def free_port() -> int:
    """A port nobody listens on (for a camera that refuses connections); servers bind port 0 themselves."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtspServer(SampleRtspServer):
    """The package's sample camera at the test clip's rate; `stop()` kills it outright (a camera losing
    power), and `restart()` brings it back on the same port."""

    def __init__(self, file: Path, *, user: str | None = None, password: str | None = None) -> None:
        super().__init__(file, fps=FPS, user=user, password=password)

    def start(self, timeout: float = 15.0) -> str:
        return super().start(timeout)

    def stop(self) -> None:
        self.kill()


@pytest.fixture(scope="session")
def rtsp(sample: Sample) -> Iterator[RtspServer]:
    """One shared server for tests that only read from it."""
    server = RtspServer(sample.path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def rtsp_private(sample: Sample) -> Iterator[RtspServer]:
    """A server of the test's own (to kill, restart or protect with credentials)."""
    server = RtspServer(sample.path)
    yield server
    server.stop()


async def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if predicate():
                return True
        await asyncio.sleep(interval)
    return bool(predicate())


class Viewer:
    """A real aiortc viewer: a recvonly video transceiver, answered by relay.webrtc, decoding what arrives."""

    def __init__(self) -> None:
        from aiortc import RTCPeerConnection

        self.pc = RTCPeerConnection()
        self.transceiver = self.pc.addTransceiver("video", direction="recvonly")
        self.frames: list[np.ndarray] = []  # BGR, in arrival order
        self.server_pc = None
        self._task: asyncio.Task[None] | None = None

        @self.pc.on("track")
        def _on_track(track) -> None:  # type: ignore[no-untyped-def]
            self._task = asyncio.ensure_future(self._pull(track))

    async def _pull(self, track) -> None:  # type: ignore[no-untyped-def]
        with contextlib.suppress(Exception):
            while True:
                frame = await track.recv()
                self.frames.append(frame.to_ndarray(format="bgr24"))

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def connect(self, subscription) -> None:  # type: ignore[no-untyped-def]
        from aiortc import RTCSessionDescription

        from relay.webrtc import answer_offer

        answer, self.server_pc = await answer_offer(await self.offer(), subscription)
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    async def collect(self, count: int, timeout: float = 20.0) -> list[np.ndarray]:
        start = len(self.frames)
        assert await wait_for(lambda: len(self.frames) >= start + count, timeout), (
            f"received {len(self.frames) - start} of {count} frames")
        return self.frames[start:]

    async def close(self) -> None:
        await self.pc.close()
        if self.server_pc is not None:
            await self.server_pc.close()
        if self._task is not None:
            self._task.cancel()


class FaceCheck:
    """Compares received frames with the sample's source pictures and known face boxes."""

    def __init__(self, sample: Sample) -> None:
        import cv2

        self.sample = sample
        self.grey = [cv2.cvtColor(sample.frame(i), cv2.COLOR_BGR2GRAY) for i in range(len(sample.truth))]
        self.small = [_thumb(g) for g in self.grey]

    def match(self, bgr: np.ndarray) -> tuple[int, np.ndarray]:
        import cv2

        grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        small = _thumb(grey)
        errors = [float(np.abs(small - s).mean()) for s in self.small]
        return int(np.argmin(errors)), grey

    def analyse(self, bgr: np.ndarray) -> tuple[list[float], float]:
        """(SSIM of each face box against the source face, mean abs error away from the faces). A face
        left as it was scores ~0.9-1.0; a pixelated or blurred one well below 0.5."""
        from skimage.metrics import structural_similarity

        index, grey = self.match(bgr)
        source = self.grey[index]
        scores = []
        away = np.ones(grey.shape, bool)
        for x1, y1, x2, y2 in self.sample.truth[index]:
            scores.append(float(structural_similarity(source[y1:y2, x1:x2], grey[y1:y2, x1:x2])))
            w, h = x2 - x1, y2 - y1  # masks grow around the face; leave room for that and for tracking
            away[max(0, y1 - h) : y2 + h, max(0, x1 - w) : x2 + w] = False
        rest = float(np.abs(grey.astype(np.int16) - source.astype(np.int16))[away].mean())
        return scores, rest


def _thumb(grey: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.resize(grey, (160, 90), interpolation=cv2.INTER_AREA).astype(np.float32)


@pytest.fixture
async def manager(rtsp: RtspServer) -> AsyncIterator[CameraManager]:
    """A camera manager with one camera, "street", the test RTSP camera."""
    spec = CameraSpec(id="street", name="Street", source_url=rtsp.url, redacted_url=rtsp.url)
    cameras = CameraManager(lambda cid: spec if cid == "street" else None, linger_s=0.5)
    await cameras.start()
    yield cameras
    await cameras.stop()
