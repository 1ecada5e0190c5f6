"""A real aiortc viewer against the relay's answer: negotiation, decoded frames, faces masked in what
arrives, PLI answered with an IDR, malformed offers refused, and fail-closed under detector faults."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from aiortc import RTCPeerConnection, RTCRtpSender

from relay.cameras import CameraManager, CameraSpec
from relay.webrtc import IceSettings, SdpError, answer_offer, ice_settings_from
from tests.relay.conftest import HEIGHT, WIDTH, FaceCheck, RtspServer, Sample, Viewer, wait_for
from tests.support.detectors import RaisingDetector, StallingDetector

pytestmark = pytest.mark.timeout(90)

FACE_VISIBLE = 0.6  # SSIM against the source face above this: the face is recognisable


@pytest.fixture(scope="module")
def faces(sample: Sample) -> FaceCheck:
    return FaceCheck(sample)


def assert_no_face_visible(frames: list[np.ndarray], faces: FaceCheck) -> tuple[int, int]:
    """Every frame: each face masked, or the whole frame masked. Returns (face-masked frames with the rest
    of the picture intact, fully masked frames)."""
    masked_faces = fully_masked = 0
    for n, frame in enumerate(frames):
        scores, rest = faces.analyse(frame)
        assert max(scores) < FACE_VISIBLE, f"frame {n}: a face is visible (SSIM {max(scores):.2f})"
        if rest < 8:
            masked_faces += 1
        else:
            fully_masked += 1
    return masked_faces, fully_masked


async def test_viewer_receives_frames_with_faces_masked(manager: CameraManager, faces: FaceCheck) -> None:
    viewer = Viewer()
    try:
        await viewer.connect(await manager.subscribe("street"))
        frames = await viewer.collect(25)
        assert frames[0].shape == (HEIGHT, WIDTH, 3)
        masked_faces, _ = assert_no_face_visible(frames, faces)
        # Not only fail-closed full masks: once detection runs (its first result can take seconds on a busy
        # machine), the street stays visible and only the faces are masked.
        for _ in range(20):
            if masked_faces >= 10:
                break
            more, _ = assert_no_face_visible(await viewer.collect(25), faces)
            masked_faces += more
        assert masked_faces >= 10
    finally:
        await viewer.close()


async def test_raw_viewer_sees_the_faces(manager: CameraManager, faces: FaceCheck) -> None:
    """The comparison itself works: an authorized raw viewer sees the faces the anonymized one does not."""
    viewer = Viewer()
    try:
        await viewer.connect(await manager.subscribe("street", raw=True))
        frames = await viewer.collect(20)
        scores = [faces.analyse(f)[0] for f in frames[5:]]
        assert min(min(s) for s in scores) > 0.8
    finally:
        await viewer.close()


async def test_pli_is_answered_with_an_idr(manager: CameraManager) -> None:
    viewer = Viewer()
    try:
        await viewer.connect(await manager.subscribe("street"))
        await viewer.collect(10)
        pipeline = manager.pipeline("street")
        assert pipeline is not None and viewer.server_pc is not None
        ssrc = viewer.server_pc.getSenders()[0]._ssrc
        await asyncio.sleep(0.6)  # past the encoder's keyframe rate limit
        before = pipeline.encoder.keyframes_forced
        await viewer.transceiver.receiver._send_rtcp_pli(ssrc)
        assert await wait_for(lambda: pipeline.encoder.keyframes_forced > before, 5)
        # A burst of PLIs costs at most one IDR per 0.5 s.
        before = pipeline.encoder.keyframes_forced
        t0 = time.monotonic()
        for _ in range(10):
            await viewer.transceiver.receiver._send_rtcp_pli(ssrc)
        await asyncio.sleep(0.3)
        elapsed = time.monotonic() - t0
        assert pipeline.encoder.keyframes_forced - before <= 1 + int(elapsed / 0.5)
    finally:
        await viewer.close()


async def test_detector_faults_mid_stream_never_show_a_face(manager: CameraManager, faces: FaceCheck) -> None:
    viewer = Viewer()
    try:
        await viewer.connect(await manager.subscribe("street"))
        await viewer.collect(25)
        pipeline = manager.pipeline("street")
        assert pipeline is not None
        anonymizer = pipeline.anonymizer
        anonymizer.replace_detector(RaisingDetector())
        assert_no_face_visible(await viewer.collect(40), faces)
        stalled = StallingDetector(timeout_s=30)
        anonymizer.replace_detector(stalled)
        try:
            frames = await viewer.collect(90)  # past the engine's stall timeout
            _, fully_masked = assert_no_face_visible(frames, faces)
            assert fully_masked >= 10  # the engine gave up on the stalled detector and masked everything
        finally:
            stalled.release.set()
        assert pipeline.failsafe_frames > 0
    finally:
        await viewer.close()


# -- offers we cannot answer --------------------------------------------------------------------------------

async def offer_of(*, audio_only: bool = False, vp8_only: bool = False, direction: str = "recvonly") -> str:
    pc = RTCPeerConnection()
    try:
        if audio_only:
            pc.addTransceiver("audio", direction="recvonly")
        else:
            t = pc.addTransceiver("video", direction=direction)
            if vp8_only:
                t.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                                       if c.mimeType == "video/VP8"])
        await pc.setLocalDescription(await pc.createOffer())
        return pc.localDescription.sdp
    finally:
        await pc.close()


@pytest.mark.parametrize(("offer", "reason"), [
    ("hello", "not an SDP offer"),
    ("", "empty SDP offer"),
    ("v=0\r\nthis is not sdp\r\n", "no video"),
    ({"audio_only": True}, "no video"),
    ({"vp8_only": True}, "no common codec"),
    ({"direction": "sendonly"}, "must receive video"),
])
async def test_offers_that_cannot_be_answered_raise_sdp_error(
    manager: CameraManager, offer: str | dict[str, object], reason: str
) -> None:
    if isinstance(offer, dict):
        offer = await offer_of(**offer)  # type: ignore[arg-type]
    subscription = await manager.subscribe("street")
    try:
        with pytest.raises(SdpError, match=reason) as raised:
            await answer_offer(offer, subscription)
        # The WHEP endpoint answers 400 with this message as the detail: one line, never the offer itself.
        message = str(raised.value)
        assert message and "\n" not in message
        assert not offer.strip() or offer.strip().splitlines()[-1] not in message
    finally:
        subscription.close()


async def test_ice_lacking_offer_is_refused(manager: CameraManager) -> None:
    offer = "\r\n".join(line for line in (await offer_of()).splitlines() if not line.startswith("a=ice-pwd"))
    subscription = await manager.subscribe("street")
    try:
        with pytest.raises(SdpError, match="ICE"):
            await answer_offer(offer + "\r\n", subscription)
    finally:
        subscription.close()


async def test_vp8_camera_negotiates_vp8(rtsp: RtspServer, faces: FaceCheck) -> None:
    spec = CameraSpec(id="vp8", name="VP8", source_url=rtsp.url, redacted_url=rtsp.url)
    cameras = CameraManager(lambda cid: spec, codec="vp8", linger_s=0)
    viewer = Viewer()
    try:
        await viewer.connect(await cameras.subscribe("vp8"))
        assert viewer.server_pc is not None
        assert "VP8/90000" in viewer.server_pc.localDescription.sdp
        assert "H264/90000" not in viewer.server_pc.localDescription.sdp
        frames = await viewer.collect(10)
        assert_no_face_visible(frames, faces)
    finally:
        await viewer.close()
        await cameras.stop()


@pytest.mark.parametrize(("ice", "present", "absent"), [
    (IceSettings(loopback=True), ["127.0.0.1"], []),
    (IceSettings(interfaces=["127.0.0.1"], loopback=False), ["127.0.0.1"], []),
    (IceSettings(interfaces=["no-such-interface"], loopback=True), ["127.0.0.1"], [" host "]),
])
async def test_ice_settings_choose_host_candidates(
    manager: CameraManager, ice: IceSettings, present: list[str], absent: list[str]
) -> None:
    subscription = await manager.subscribe("street")
    try:
        answer, pc = await answer_offer(await offer_of(), subscription, ice=ice)
        candidates = [line for line in answer.splitlines() if line.startswith("a=candidate:")]
        for address in present:
            assert any(f" {address} " in c for c in candidates), candidates
        if absent:  # only loopback was allowed: no other host address is offered
            assert all(" 127.0.0.1 " in c for c in candidates), candidates
        await pc.close()
    finally:
        subscription.close()


def test_ice_settings_from_app_settings() -> None:
    from relay.config import RelaySettings

    turn = {"urls": ["turn:turn.example:3478"], "username": "u", "credential": "c"}
    settings = RelaySettings(ice_servers=[turn], ice_interfaces=["eth0"], ice_loopback=False)
    ice = ice_settings_from(settings)
    assert ice.interfaces == ["eth0"] and not ice.loopback
    (server,) = ice.ice_servers()
    assert server.urls == ["turn:turn.example:3478"] and server.username == "u" and server.credential == "c"
