"""Fault injection through the app: the face detector fails, then hangs, mid-stream. The engine fails
closed, so no frame with a recognizable face reaches the viewer, and the failsafe frames are counted."""

from __future__ import annotations

import numpy as np

from tests.app.conftest import CAMERA, Relay
from tests.app.faces import FaceProbe
from tests.app.whep_client import open_viewer
from tests.support.detectors import RaisingDetector, StallingDetector


async def test_detector_failure_mid_stream_never_shows_a_face(relay: Relay, faces: FaceProbe) -> None:
    viewer = await open_viewer(relay.base_url, CAMERA, token=relay.token("operator"), purpose="public_safety")
    assert viewer.status == 201, viewer.text
    pipeline = relay.app.state.services.cameras.pipeline(CAMERA)
    assert pipeline is not None
    anonymizer = pipeline.anonymizer
    original = anonymizer._detector  # restored afterwards: the pipeline is shared with other tests
    hung = StallingDetector()
    try:
        before = await viewer.frames(10, timeout=40)
        failsafe_before = relay.app.state.services.cameras.health()[CAMERA].failsafe_frames
        anonymizer.replace_detector(RaisingDetector())
        broken = await viewer.frames(40, timeout=30)
        anonymizer.replace_detector(hung)
        stalled = await viewer.frames(40, timeout=30)
        received = before + broken + stalled
        assert len(received) == 90, len(received)
        scores = [max(faces.scores(f)) for f in received]
        assert max(scores) < 0.5, f"a face got through: {max(scores):.2f} at frame {int(np.argmax(scores))}"
        # The failures were noticed and counted, not silently absorbed.
        assert relay.app.state.services.cameras.health()[CAMERA].failsafe_frames > failsafe_before
    finally:
        hung.release.set()
        anonymizer.replace_detector(original)
        await viewer.close()
