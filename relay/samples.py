"""A generated sample camera: a synthetic street scene with real faces walking across it.

The face is scikit-image's `astronaut` (NASA photo, public domain), so the sample can ship and be regenerated
anywhere. The truth (where each face is on each frame) is known by construction, which tests use to check that
what leaves the relay is masked."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import cv2
import numpy as np
from skimage import data  # the astronaut photograph (NASA, public domain) ships with scikit-image

# Face box inside skimage.data.astronaut() (512x512), found once with CenterFace at score 0.93.
_ASTRONAUT_FACE = (181, 58, 270, 178)


@dataclass(frozen=True)
class Walker:
    """A face on a body moving on a straight line: bouncing between the frame edges, or, with `stop`, walking
    in (from outside the picture when `x0` is) and standing still at x = `stop` from then on."""

    height: int  # face box height in pixels
    y: int  # top of the face box
    x0: float
    speed: float  # pixels per frame (negative: walks left)
    stop: float | None = None  # where the walker stops and stands (left of the face box); None: never stops

    def x(self, index: int, span: int) -> int:
        """Left of the face box on frame `index`; `span` is the frame's width less the face's."""
        if self.stop is None:
            pos = (self.x0 + self.speed * index) % (2 * span)
            return int(pos if pos <= span else 2 * span - pos)
        walked = self.x0 + self.speed * index
        return math.floor(min(walked, self.stop) if self.speed > 0 else max(walked, self.stop))

    def standing_from(self) -> int | None:
        """The first frame on which the walker stands where it stopped (None: it never stops)."""
        if self.stop is None:
            return None
        return max(0, math.ceil((self.stop - self.x0) / self.speed)) if self.speed else 0


DEFAULT_WALKERS = (
    Walker(height=96, y=260, x0=100, speed=6.0),
    Walker(height=64, y=420, x0=900, speed=-4.0),
    Walker(height=40, y=180, x0=500, speed=3.0),
)


@lru_cache(maxsize=32)
def face_patch(height: int) -> np.ndarray:
    """The astronaut's face (BGR), scaled so the face box is `height` px tall. Cached: callers must not
    write into it."""
    img = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    x1, y1, x2, y2 = _ASTRONAUT_FACE
    crop = img[y1:y2, x1:x2]
    scale = height / crop.shape[0]
    return cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), height), interpolation=cv2.INTER_AREA)


def street_background(width: int, height: int) -> np.ndarray:
    """Sky, a row of buildings with windows (candidates for static privacy masks), pavement and road."""
    bg = np.zeros((height, width, 3), np.uint8)
    bg[:] = (200, 170, 140)
    rng = np.random.default_rng(7)
    horizon = height // 2
    x = 0
    while x < width:
        w = int(rng.integers(width // 10, width // 5))
        top = int(rng.integers(height // 12, horizon - height // 8))
        color = tuple(int(c) for c in rng.integers(60, 160, 3))
        cv2.rectangle(bg, (x, top), (x + w, horizon), color, -1)
        for wy in range(top + 12, horizon - 20, 34):
            for wx in range(x + 10, x + w - 20, 30):
                cv2.rectangle(bg, (wx, wy), (wx + 14, wy + 18), (90, 200, 230), -1)
        x += w + 4
    bg[horizon:] = (110, 110, 110)
    bg[horizon : horizon + height // 10] = (150, 150, 145)
    noise = rng.normal(0, 4, bg.shape)
    return np.clip(bg + noise, 0, 255).astype(np.uint8)


def render_frame(
    background: np.ndarray, index: int, walkers: tuple[Walker, ...] = DEFAULT_WALKERS
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Frame `index` (BGR) and the face boxes (x1, y1, x2, y2) drawn on it, one per walker, cut to the frame
    (empty, x1 == x2, while a walker is outside it)."""
    frame = background.copy()
    h, w = frame.shape[:2]
    boxes = []
    for walker in walkers:
        patch = face_patch(min(walker.height, h))
        ph, pw = patch.shape[:2]
        x = walker.x(index, max(1, w - pw))
        y = min(walker.y, h - ph)  # walkers placed for 720p still fit a smaller frame
        _draw_body(frame, x, y, pw, ph)
        x1, x2 = min(max(x, 0), w), min(max(x + pw, 0), w)  # a walker coming in is partly outside
        frame[y : y + ph, x1:x2] = patch[:, x1 - x : x2 - x]
        boxes.append((x1, y, x2, y + ph))
    return frame, boxes


def _draw_body(frame: np.ndarray, x: int, y: int, pw: int, ph: int) -> None:
    """A plain torso and legs under the face: a camera sees people, not floating heads, and the engine's
    motion gating looks for faces at the top of moving bodies."""
    color = (60 + (x * 7 + ph) % 120, 70 + ph % 90, 90 + (ph * 3) % 100)
    top = y + ph - ph // 8
    cv2.rectangle(frame, (x - pw // 5, top), (x + pw + pw // 5, top + int(1.6 * ph)), color, -1)
    legs = (40, 40, 60)
    cv2.rectangle(frame, (x, top + int(1.6 * ph)), (x + pw // 2 - 2, top + int(2.8 * ph)), legs, -1)
    cv2.rectangle(frame, (x + pw // 2 + 2, top + int(1.6 * ph)), (x + pw, top + int(2.8 * ph)), legs, -1)


def write_sample(
    path: Path, *, width: int = 1280, height: int = 720, fps: int = 25, seconds: float = 8.0, gop: int = 25,
    walkers: tuple[Walker, ...] = DEFAULT_WALKERS,
) -> list[list[tuple[int, int, int, int]]]:
    """Encode the sample to `path` (.mp4, or .h264 for a raw Annex B stream that an RTSP server can loop).
    Returns the truth: face boxes per frame."""
    path.parent.mkdir(parents=True, exist_ok=True)
    background = street_background(width, height)
    truth = []
    fmt = "h264" if path.suffix == ".h264" else None
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # One slice per frame: multi-slice streams arrive torn through the looping RTSP server.
        stream.options = {
            "preset": "veryfast", "tune": "zerolatency", "g": str(gop), "bf": "0", "threads": "1"
        }
        stream.codec_context.time_base = Fraction(1, fps)
        for i in range(int(seconds * fps)):
            img, boxes = render_frame(background, i, walkers)
            truth.append(boxes)
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return truth
