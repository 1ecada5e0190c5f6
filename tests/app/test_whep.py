"""WHEP end to end: a real aiortc viewer against the real app, camera (RTSP), engine and access log."""

from __future__ import annotations

import re

import httpx
import numpy as np

from tests.app.conftest import CAMERA, Relay
from tests.app.faces import FaceProbe
from tests.app.whep_client import delete, open_viewer

SESSION_URL = re.compile(rf"^/whep/{CAMERA}/sessions/[A-Za-z0-9_-]+$")
SERVER_TIMING = re.compile(r"^auth;dur=[0-9.]+, place;dur=[0-9.]+, authorize;dur=[0-9.]+, "
                           r"subscribe;dur=[0-9.]+, session-negotiate;dur=[0-9.]+$")


def entries(relay: Relay, kind: str, session_id: str) -> list:
    return [e for e in relay.audit(kind=kind) if (e.details or {}).get("session_id") == session_id]


async def test_anonymized_view_end_to_end(relay: Relay, faces: FaceProbe) -> None:
    viewer = await open_viewer(relay.base_url, CAMERA, token=relay.token("operator"), purpose="public_safety")
    assert viewer.status == 201, viewer.text
    assert viewer.headers["content-type"].startswith("application/sdp")
    assert SESSION_URL.match(viewer.location), viewer.location
    assert viewer.headers["etag"].startswith('"')
    assert viewer.headers["x-view-mode"] == "anonymized"
    # Where the answer's time went, by step (for the browser's network panel and the join benchmark).
    assert SERVER_TIMING.match(viewer.headers["server-timing"]), viewer.headers["server-timing"]
    assert viewer.text.startswith("v=0") and "m=video" in viewer.text
    try:
        frames = await viewer.frames(40, timeout=40)
        assert len(frames) == 40, f"only {len(frames)} frames arrived"
        assert frames[0].shape == (360, 640, 3)
        # Faces are in every frame of the clip: none may be recognizable in what the viewer gets.
        worst = max(max(faces.scores(f)) for f in frames)
        assert worst < 0.5, f"a face was recognizable (match {worst:.2f})"
        # The video moves (walkers walk): not a frozen or blank picture.
        assert float(np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean()) > 1.0
        assert frames[-1].std() > 10
    finally:
        r = await delete(relay.base_url, viewer.location, relay.token("operator"))
        await viewer.close()
    assert r.status_code == 200, r.text
    relay.wait_session_closed(viewer.session_id)
    sid = viewer.session_id
    (start,) = entries(relay, "view.start", sid)
    (end,) = entries(relay, "view.end", sid)
    assert (start.actor, start.camera_id, start.purpose, start.mode) == ("operator", CAMERA, "public_safety",
                                                                         "anonymized")
    assert end.actor == "operator" and end.reason == "viewer ended the session"
    assert end.details["duration_s"] > 0
    assert end.seq > start.seq
    # Deleting again: the session is gone.
    assert (await delete(relay.base_url, viewer.location, relay.token("operator"))).status_code == 404


async def test_refusals_are_clear_and_logged(relay: Relay) -> None:
    url = relay.base_url
    mark = relay.audit_mark()  # the entries below are this test's own
    # No token: 401, logged as a refused request.
    v = await open_viewer(url, CAMERA, token=None)
    assert v.status == 401
    refused = relay.audit(kind="auth.refused", after=mark)
    assert [e.details.get("path") for e in refused] == [f"/whep/{CAMERA}"]
    # A role without the view right (auditors get no video): 403 whatever the camera, logged.
    for camera in (CAMERA, "no-such-camera"):
        v = await open_viewer(url, camera, token=relay.token("auditor"))
        assert v.status == 403 and "view" in v.detail()
    # The first refusal on a route is in the log at once; its repeats are counted in one more entry
    # (written when its window ends; reading the log here writes the counts still open first).
    forbidden = relay.audit(kind="auth.forbidden", actor="auditor", after=mark)
    counts = [(e.details["count"], e.details.get("repeated", False)) for e in forbidden]
    assert counts == [(1, False), (1, True)]
    assert {e.decision for e in forbidden} == {"deny"}
    # A purpose the operator's role is not granted: 403 with the policy's reason, logged as a denial.
    v = await open_viewer(url, CAMERA, token=relay.token("operator"), purpose="criminal_investigation")
    assert v.status == 403 and v.detail()
    denied = relay.audit(kind="view.request", actor="operator", decision="deny", after=mark)
    assert [(e.purpose, e.reason) for e in denied] == [("criminal_investigation", v.detail())]
    # A purpose the camera is not approved for: refused for everyone (a hard limit).
    v = await open_viewer(url, CAMERA, token=relay.token("viewer"), purpose="disaster_response")
    assert v.status == 403
    # Raw without an approved request: refused.
    v = await open_viewer(url, CAMERA, token=relay.token("investigator"), purpose="criminal_investigation",
                          mode="raw", case_ref="TPE-2026-0404")
    assert v.status == 403
    raw_denied = relay.audit(kind="view.request", actor="investigator", decision="deny", after=mark)
    assert [e.mode for e in raw_denied] == ["raw"]
    # A disabled camera: refused with the reason; an unknown camera: 404.
    v = await open_viewer(url, "cam-disabled", token=relay.token("viewer"))
    assert v.status == 403
    v = await open_viewer(url, "no-such-camera", token=relay.token("viewer"))
    assert v.status == 404 and "unknown camera" in v.detail()


async def test_bad_requests_never_500(relay: Relay) -> None:
    url, token = relay.base_url, relay.token("operator")
    v = await open_viewer(url, CAMERA, token=token, content_type="application/json")
    assert v.status == 415 and "application/sdp" in v.detail()
    no_media = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
    for body in ("", "hello", "v=0\r\nthis is not sdp\r\n", no_media):
        v = await open_viewer(url, CAMERA, token=token, body=body)
        assert v.status == 400, (body, v.status, v.text)
        assert v.detail()
    v = await open_viewer(url, CAMERA, token=token, purpose=None)
    assert v.status == 400 and "purpose" in v.detail()
    v = await open_viewer(url, CAMERA, token=token, mode="x-ray")
    assert v.status == 400 and "mode" in v.detail()
    # An audio-only offer has nothing the relay can send.
    audio = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
             "c=IN IP4 0.0.0.0\r\na=rtpmap:111 opus/48000/2\r\na=recvonly\r\n")
    v = await open_viewer(url, CAMERA, token=token, body=audio)
    assert v.status == 400


async def test_session_resource_methods(relay: Relay) -> None:
    url = relay.base_url
    async with httpx.AsyncClient(base_url=url) as client:
        r = await client.options(f"/whep/{CAMERA}")
        assert r.status_code == 204 and r.headers["accept-post"] == "application/sdp"
    viewer = await open_viewer(url, CAMERA, token=relay.token("viewer"), purpose="traffic_management")
    assert viewer.status == 201, viewer.text
    try:
        async with httpx.AsyncClient(base_url=url) as client:
            frag = {"Content-Type": "application/trickle-ice-sdpfrag"}
            r = await client.patch(viewer.location, headers=frag, content="a=end-of-candidates\r\n")
            assert r.status_code == 405 and "DELETE" in r.headers["allow"]
        # Another viewer may not end it (refusal logged); an admin may.
        r = await delete(url, viewer.location, relay.token("operator"))
        assert r.status_code == 403
        assert any(e.actor == "operator" and e.details.get("session_id") == viewer.session_id
                   for e in relay.audit(kind="auth.forbidden"))
        assert (await delete(url, viewer.location, None)).status_code == 401
        r = await delete(url, viewer.location, relay.token("admin"))
        assert r.status_code == 200, r.text
    finally:
        await viewer.close()
    relay.wait_session_closed(viewer.session_id)
    (end,) = entries(relay, "view.end", viewer.session_id)
    assert end.reason == "ended by admin admin"


async def test_peer_going_away_ends_the_session(relay: Relay) -> None:
    viewer = await open_viewer(relay.base_url, CAMERA, token=relay.token("viewer"), purpose="public_safety")
    assert viewer.status == 201, viewer.text
    assert len(await viewer.frames(5, timeout=30)) == 5
    await viewer.close()  # no DELETE: the browser tab just went away
    relay.wait_session_closed(viewer.session_id, timeout=15)
    (end,) = entries(relay, "view.end", viewer.session_id)
    assert end.reason.startswith("peer connection")


async def test_offer_refused_in_negotiation_ends_the_session_logged_meanwhile(relay: Relay) -> None:
    """The session is logged as started while the offer is negotiated: an offer that passes the syntax
    check but cannot be answered (VP8 only; the camera sends H.264) gets a 400, and the session logged
    meanwhile is logged as ended with the reason; nothing is left running."""
    from aiortc import RTCPeerConnection, RTCRtpReceiver

    pc = RTCPeerConnection()
    try:
        transceiver = pc.addTransceiver("video", direction="recvonly")
        transceiver.setCodecPreferences([c for c in RTCRtpReceiver.getCapabilities("video").codecs
                                         if c.mimeType.lower() == "video/vp8"])
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
    finally:
        await pc.close()
    mark = relay.audit_mark()
    v = await open_viewer(relay.base_url, CAMERA, token=relay.token("operator"), body=sdp)
    assert v.status == 400 and "codec" in v.detail(), v.text
    (start,) = relay.audit(kind="view.start", actor="operator", after=mark)
    session_id = start.details["session_id"]
    relay.wait_session_closed(session_id)
    (end,) = entries(relay, "view.end", session_id)
    assert end.reason.startswith("offer refused") and "codec" in end.reason
    assert session_id not in relay.running_sessions()
