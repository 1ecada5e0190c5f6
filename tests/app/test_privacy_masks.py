"""A camera's static privacy polygon, end to end: set through the admin API, watched over WHEP by a real
aiortc viewer. Inside the polygon no received frame shows the scene's detail, and each one that is not masked
whole shows exactly what the engine's masker makes of the scene there; beside it, over the same kind of
detail, the scene is there to see."""

from __future__ import annotations

from collections.abc import Iterator

import av
import cv2
import numpy as np
import pytest

from blur import Anonymizer
from relay.samples import street_background
from tests.app.conftest import HEIGHT, WIDTH, Relay
from tests.app.test_cameras import Cameras
from tests.app.whep_client import delete, open_viewer
from tests.support.detectors import FixedBoxDetector

CAMERA = "cam-privacy"
# Over the windows of the second building from the right (rows 54-112 of 360, above where the test clip's
# people walk and their masks reach): a trapezoid, as a window or a doorway seen at an angle would be.
POLYGON = [(0.70, 0.15), (0.89, 0.15), (0.89, 0.31), (0.72, 0.31)]
INSIDE = (0.74, 0.17, 0.87, 0.29)  # a box well inside the polygon (x1, y1, x2, y2 as fractions)
BESIDE = (0.52, 0.14, 0.66, 0.30)  # the windows of the building to its left: the same detail, unmasked
SHOWN = 25  # frames in which the scene beside the polygon shows, to check
MAX_FRAMES = 400  # at most this many frames watched to see them


def pixels(box: tuple[float, float, float, float]) -> tuple[slice, slice]:
    x1, y1, x2, y2 = box
    return slice(round(y1 * HEIGHT), round(y2 * HEIGHT)), slice(round(x1 * WIDTH), round(x2 * WIDTH))


def detail(gray: np.ndarray) -> np.ndarray:
    g = gray.astype(np.float32)
    return g - cv2.GaussianBlur(g, (0, 0), 2.0)


def likeness(a: np.ndarray, b: np.ndarray) -> float:
    """Normalized correlation of two same-sized BGR regions' fine detail: about 0.9 for the same scene after
    two H.264 encodes, near 0 once it is pixelated."""
    da, db = (detail(cv2.cvtColor(x, cv2.COLOR_BGR2GRAY)).ravel() for x in (a, b))
    da, db = da - da.mean(), db - db.mean()
    return float(da @ db / (np.linalg.norm(da) * np.linalg.norm(db) + 1e-6))


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    """The clip's still scene (the background nobody walks over where we look)."""
    return street_background(WIDTH, HEIGHT)


@pytest.fixture(scope="module")
def expected(scene: np.ndarray) -> np.ndarray:
    """What the engine's masker makes of the scene inside the polygon (a still frame, no faces, no motion)."""
    engine = Anonymizer(profile="realtime", mode="pixelate", masks=[POLYGON], detector=FixedBoxDetector([]))
    try:
        out, report = engine.process(av.VideoFrame.from_ndarray(scene, format="bgr24"))
    finally:
        engine.close()
    assert not report.failsafe
    return out.to_ndarray(format="bgr24")


@pytest.fixture
def masked_camera(relay: Relay, rtsp_url: str) -> Iterator[str]:
    cameras = Cameras(relay)
    cameras.put(CAMERA, rtsp_url, create=True, privacy_masks=[[list(p) for p in POLYGON]])
    yield CAMERA
    cameras.delete(CAMERA)


async def test_privacy_polygon_is_masked_in_every_received_frame(relay: Relay, masked_camera: str,
                                                                 scene: np.ndarray,
                                                                 expected: np.ndarray) -> None:
    inside, beside = pixels(INSIDE), pixels(BESIDE)
    # The test's own yardstick first: inside and beside hold the same kind of detail, and the masker's
    # output inside does not.
    assert likeness(scene[inside], scene[inside]) > 0.99 and float(detail(scene[beside]).std()) > 10
    assert likeness(expected[inside], scene[inside]) < 0.3
    viewer = await open_viewer(relay.base_url, masked_camera, token=relay.token("operator"),
                               purpose="public_safety")
    assert viewer.status == 201, viewer.text
    checked = shown = 0
    try:
        # Until the scene has shown beside the polygon in SHOWN frames: the first second or more is masked
        # whole while the engine awaits its first detection (longer on a loaded machine).
        while shown < SHOWN:
            frames = await viewer.frames(25, timeout=60)
            assert frames, f"the video stopped after {checked} frames"
            for frame in frames:
                checked += 1
                # Every frame, from the first: nothing of the scene's detail inside the polygon.
                seen = likeness(frame[inside], scene[inside])
                assert seen < 0.3, f"frame {checked}: the scene shows inside the polygon ({seen:.2f})"
                if likeness(frame[beside], scene[beside]) < 0.8:
                    continue  # failed closed: masked whole, so no telling the polygon's mask from the rest
                shown += 1
                # Where the picture is not masked whole, the polygon holds exactly the masker's output.
                error = float(np.abs(frame[inside].astype(np.int16) - expected[inside]).mean())
                assert error < 5, f"frame {checked}: not the masker's output inside the polygon ({error:.1f})"
            assert checked < MAX_FRAMES, f"the scene beside the polygon showed in {shown} of {checked} frames"
    finally:
        await delete(relay.base_url, viewer.location, relay.token("operator"))
        await viewer.close()
