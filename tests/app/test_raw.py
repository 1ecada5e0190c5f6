"""Dual control over WHEP: raw (unmasked) video only with a second person's approval, and only while the
approval holds: revocation or expiry stops a running raw stream within a couple of seconds."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx

from policies.contract import Principal
from tests.app.conftest import CAMERA, Relay
from tests.app.faces import FaceProbe
from tests.app.whep_client import Viewer, open_viewer

PURPOSE = "criminal_investigation"


def principal(relay: Relay, username: str) -> Principal:
    return relay.ctx.auth.authenticate(relay.token(username))


def approved_request(relay: Relay, case_ref: str, requester: str = "investigator") -> str:
    service = relay.ctx.service
    req = service.request_raw(principal(relay, requester), CAMERA, PURPOSE, case_ref, "suspect at crossing")
    service.approve_raw(principal(relay, "approver"), req["id"], minutes=10)
    return str(req["id"])


async def open_raw(relay: Relay, case_ref: str, user: str = "investigator") -> Viewer:
    return await open_viewer(relay.base_url, CAMERA, token=relay.token(user), purpose=PURPOSE, mode="raw",
                             case_ref=case_ref)


async def wait_closed(relay: Relay, session_id: str, timeout: float) -> None:
    await asyncio.to_thread(relay.wait_session_closed, session_id, timeout)


def view_end(relay: Relay, session_id: str) -> Any:
    (end,) = [e for e in relay.audit(kind="view.end") if e.details.get("session_id") == session_id]
    return end


async def test_raw_needs_a_second_persons_approval_and_stops_on_revocation(relay: Relay,
                                                                           faces: FaceProbe) -> None:
    case = "TPE-2026-0101"
    # Requested but not yet approved: refused.
    req = relay.ctx.service.request_raw(principal(relay, "investigator"), CAMERA, PURPOSE, case, "robbery")
    v = await open_raw(relay, case)
    assert v.status == 403, v.text
    # Approved by a different person holding the approve right: it plays, unmasked.
    relay.ctx.service.approve_raw(principal(relay, "approver"), req["id"], minutes=10)
    # ...but only for the requester, the camera, the purpose and the case on file.
    assert (await open_raw(relay, "TPE-2026-9999")).status == 403
    assert (await open_raw(relay, case, user="investigator2")).status == 403
    v = await open_raw(relay, case)
    assert v.status == 201, v.text
    assert v.headers["x-view-mode"] == "raw"
    try:
        frames = await v.frames(20, timeout=40)
        assert len(frames) == 20
        # Raw means raw: every face there to see (the anonymized rendition would score < 0.5).
        assert all(faces.visible(f) for f in frames), [faces.scores(f) for f in frames[:3]]
        status = httpx.get(relay.base_url + v.location, headers=relay.headers("investigator"))
        assert status.status_code == 200 and status.json()["mode"] == "raw"
        # Revoked while watching: the stream stops and the session ends, logged with the reason.
        relay.ctx.service.revoke_raw(principal(relay, "approver"), req["id"], "case closed")
        await wait_closed(relay, v.session_id, timeout=4)
        assert await v.ended(timeout=4)
        # The viewer can learn why (the dashboard shows it); nobody else learns of the session.
        status = httpx.get(relay.base_url + v.location, headers=relay.headers("investigator"))
        assert status.status_code == 410 and "authorization ended" in status.json()["detail"]
        other = httpx.get(relay.base_url + v.location, headers=relay.headers("investigator2"))
        assert other.status_code == 404
    finally:
        await v.close()
    end = view_end(relay, v.session_id)
    assert end.mode == "raw" and "authorization ended" in end.reason
    assert any(e.details.get("raw_request_id") == req["id"] for e in relay.audit(kind="raw.use"))
    # Once revoked, the same approval opens nothing.
    assert (await open_raw(relay, case)).status == 403


async def test_raw_stream_stops_when_the_approval_expires(relay: Relay, faces: FaceProbe) -> None:
    approved_request(relay, "TPE-2026-0202")
    v = await open_raw(relay, "TPE-2026-0202")
    assert v.status == 201, v.text
    try:
        assert len(await v.frames(5, timeout=40)) == 5
        # Eleven minutes later by the policy's clock, the ten-minute approval has run out.
        relay.clock.offset = dt.timedelta(minutes=11)
        await wait_closed(relay, v.session_id, timeout=4)
        assert await v.ended(timeout=4)
    finally:
        await v.close()
    assert "authorization ended" in view_end(relay, v.session_id).reason


async def test_anonymized_viewers_never_get_raw_frames_while_raw_runs(relay: Relay, faces: FaceProbe) -> None:
    approved_request(relay, "TPE-2026-0303")
    raw = await open_raw(relay, "TPE-2026-0303")
    anon = await open_viewer(relay.base_url, CAMERA, token=relay.token("operator"), purpose="public_safety")
    assert raw.status == 201 and anon.status == 201
    try:
        raw_frames, anon_frames = await asyncio.gather(raw.frames(15, 40), anon.frames(15, 40))
        assert len(raw_frames) == 15 and len(anon_frames) == 15
        assert all(faces.visible(f) for f in raw_frames)
        assert all(faces.masked(f) for f in anon_frames)
    finally:
        await raw.close()
        await anon.close()
