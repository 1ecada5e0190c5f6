"""WHEP (WebRTC-HTTP Egress Protocol, draft-ietf-wish-whep): one HTTP POST of an SDP offer starts a viewer
session, a DELETE on the session URL ends it.

    POST   /whep/{camera_id}?purpose=...&mode=anonymized|raw&case_ref=...   (Content-Type: application/sdp)
           -> 201 Created, SDP answer, Location: /whep/{camera_id}/sessions/{id}, ETag, Server-Timing
    DELETE /whep/{camera_id}/sessions/{id}   (the viewer who opened it, or an admin) -> 200
    PATCH  /whep/{camera_id}/sessions/{id}   -> 405 (no trickle ICE: the answer carries all candidates)
    OPTIONS on both                          -> 204 with Allow / Accept-Post (CORS preflight when configured)

Order of checks: a body over 64 KiB is refused unread (413, relay.limits) → authentication (401) → the
view right (403, for every camera id, so roles that may not watch learn nothing about which cameras
exist; both through policies.auth) → content type (415) → the offer's size (413) and syntax (400,
relay.webrtc.check_offer) → the query (400; these refusals of form are logged as `request.refused`) →
the session caps (429 with Retry-After, relay.quotas; logged as a denied view request) → the policy
decision (403 with its reason; logged by the policy service) → unknown camera (404: the same cameras are
listed in the public register, so viewers learn nothing secret). The session is logged as started
(while the offer is negotiated; the answer waits for both) before any media can flow; then it runs in
relay.sessions, whose watchdog re-checks it every second and ends it, with its reason logged, when its
decision expires or is revoked, or the peer goes away. This module is the protocol only: routes, status
codes and headers."""


from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Any, NoReturn

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from policies.auth import client_address, has_permission
from policies.contract import Principal
from policies.schemas import IDENT_MAX, NAME_MAX, problems
from relay.cluster.leases import NotClaimed
from relay.config import RelaySettings
from relay.quotas import RETRY_AFTER_S, SessionLimit, Slot
from relay.refusals import log_request_refusal, one_line
from relay.services import SignedIn, Viewer, services
from relay.sessions import ViewerSession
from relay.turn import ice_servers_for
from relay.webrtc import SdpError, SdpTooLarge, answer_offer, check_offer, ice_settings_from

log = logging.getLogger("relay.whep")
router = APIRouter(prefix="/whep", tags=["whep"], responses=problems(401, 403, 404))
PROBLEMS = problems(400, 413, 415, 429)

MODES = ("anonymized", "raw")


class Steps:
    """How long each step of answering an offer took, for the answer's `Server-Timing` header (what a
    browser shows beside the request; the browser join benchmark reads it): step names and milliseconds."""

    def __init__(self, since: float | None = None) -> None:
        self._t = time.perf_counter() if since is None else since
        self.done: list[tuple[str, float]] = []

    def mark(self, name: str) -> None:
        now = time.perf_counter()
        self.done.append((name, (now - self._t) * 1000))
        self._t = now

    def header(self) -> str:
        return ", ".join(f"{name};dur={ms:.1f}" for name, ms in self.done)


class WhepError(HTTPException):
    """A refusal with a one-line reason (JSON `detail`)."""


def _location(camera_id: str, session_id: str) -> str:
    return f"/whep/{camera_id}/sessions/{session_id}"


def _viewer_client(request: Request) -> str:
    """Who is watching, for the access log: the address and the player (user agent)."""
    agent = request.headers.get("user-agent", "")[:120]
    return f"{client_address(request) or '?'} {agent}".strip()


@router.options("/{camera_id}", include_in_schema=False)
async def endpoint_options(camera_id: str) -> Response:
    return Response(status_code=204, headers={"Allow": "POST, OPTIONS", "Accept-Post": "application/sdp"})


@router.post("/{camera_id}", status_code=201, response_class=Response,
             responses={201: {"content": {"application/sdp": {}}, "description": "SDP answer"},
                        **PROBLEMS})
async def start_view(camera_id: str, request: Request, principal: Viewer, purpose: str | None = None,
                     mode: str = "anonymized", case_ref: str | None = None) -> Response:
    """Start watching `camera_id` for `purpose`: the body is the viewer's SDP offer (recvonly video)."""
    steps = Steps(getattr(request.state, "received_at", None))
    steps.mark("auth")  # from the request's arrival: the middleware, and authentication (`principal`)
    svc = services(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/sdp":
        await _refuse(request, principal, 415,
                      f"expected Content-Type application/sdp, got {content_type[:64] or 'none'}")
    try:
        offer = check_offer(await request.body())
    except SdpTooLarge as exc:
        await _refuse(request, principal, 413, str(exc))
    except SdpError as exc:
        await _refuse(request, principal, 400, str(exc))
    if problem := _query_problem(purpose, mode, case_ref):
        await _refuse(request, principal, 400, problem)
    assert purpose is not None
    client = _viewer_client(request)
    # Relays share the cameras (relay.cluster): the camera's owner serves it, others answer 307 there (or 503
    # with Retry-After when no relay can take it). Asked before the policy, so a view is decided once.
    camera_path, query = f"/whep/{camera_id}", request.url.query
    elsewhere = await svc.cluster.place(camera_id, camera_path, query)
    steps.mark("place")
    if elsewhere is not None:
        elsewhere.headers["Server-Timing"] = steps.header()
        return elsewhere
    try:
        slot = svc.sessions.quota.take(principal.user_id, principal.username, camera_id)
    except SessionLimit as exc:
        await asyncio.to_thread(svc.context.audit.append, "view.request", actor=principal.username,
                                roles=list(principal.roles), camera_id=camera_id, purpose=purpose, mode=mode,
                                decision="deny", reason=str(exc), details={"client": client, "status": 429})
        raise WhepError(429, str(exc), headers={"Retry-After": str(RETRY_AFTER_S)}) from None
    try:
        return await _start(request, principal, camera_id, purpose, mode, case_ref, offer, client, slot,
                            steps)
    finally:
        if not svc.sessions.holds(slot):
            slot.release()  # refused or failed: the session never ran


async def _start(request: Request, principal: Principal, camera_id: str, purpose: str, mode: str,
                 case_ref: str | None, offer: str, client: str, slot: Slot, steps: Steps) -> Response:
    svc = services(request)
    policy = svc.context.service
    decision = await asyncio.to_thread(policy.authorize_view, principal, camera_id, purpose, mode,
                                       case_ref or None, client)
    steps.mark("authorize")
    if not decision.allowed:
        if await asyncio.to_thread(policy.camera_runtime, camera_id) is None:
            raise WhepError(404, f"unknown camera {camera_id!r}")
        raise WhepError(403, decision.reason)

    try:
        subscription = await svc.cameras.subscribe(camera_id, raw=decision.mode == "raw")
    except KeyError:
        raise WhepError(404, f"camera {camera_id!r} is not available") from None
    except NotClaimed as exc:  # another relay won the camera's lease meanwhile, or this one is full
        return await svc.cluster.refused(exc, f"/whep/{camera_id}", request.url.query)
    except Exception as exc:
        log.warning("subscribe to %s failed: %s", camera_id, type(exc).__name__)
        raise WhepError(503, f"camera {camera_id!r} cannot be streamed right now") from None
    steps.mark("subscribe")

    # The session is logged as started (a database transaction, on a thread) while the offer is negotiated
    # here (aiortc, on the loop). The answer, without which the viewer cannot connect at all, goes out only
    # once both are done: no media can flow that the access log does not know about.
    opening = asyncio.ensure_future(asyncio.to_thread(policy.open_session, principal, camera_id, purpose,
                                                      decision, client, svc.cluster.id))
    ice = ice_settings_from(svc.settings)
    negotiating = asyncio.ensure_future(answer_offer(offer, subscription, ice=ice))
    try:
        await asyncio.wait((opening, negotiating))
    except asyncio.CancelledError:  # the request was cancelled (the viewer went away) meanwhile
        negotiating.cancel()
        subscription.close()
        opening.add_done_callback(lambda done: _close_if_opened(done, policy, "viewer left while joining"))
        raise
    if (failed := opening.exception()) is not None:  # not logged: no view
        subscription.close()
        if negotiating.exception() is None:
            await negotiating.result()[1].close()
        raise failed
    session_id = opening.result()
    steps.mark("session-negotiate")
    if (exc := negotiating.exception()) is not None:
        subscription.close()
        if isinstance(exc, SdpError):
            await asyncio.to_thread(policy.close_session, session_id, f"offer refused: {exc}")
            await _refuse(request, principal, 400, f"SDP offer refused: {exc}")
        await asyncio.to_thread(policy.close_session, session_id, "negotiation failed")
        raise exc
    answer, pc = negotiating.result()

    etag = '"' + hashlib.sha256(f"{session_id}:{answer}".encode()).hexdigest()[:32] + '"'
    svc.sessions.add(ViewerSession(session_id, camera_id, principal, purpose, decision.mode, pc,
                                   subscription, etag, slot=slot))
    # The session lives on this replica: its Location carries this replica's prefix (the ingress's route).
    headers = {"Location": svc.cluster.prefix + _location(camera_id, session_id), "ETag": etag,
               "X-View-Mode": decision.mode, "X-View-Purpose": purpose}
    if decision.expires_at is not None:
        headers["X-View-Expires"] = decision.expires_at.isoformat()
    links = ice_server_links(svc.settings, session_id)
    if links:
        headers["Link"] = links
    headers["Server-Timing"] = steps.header()
    return Response(answer, status_code=201, media_type="application/sdp", headers=headers)


_closing: set[asyncio.Future[None]] = set()


def _close_if_opened(opening: asyncio.Future[str], policy: Any, reason: str) -> None:
    """A session logged as started for a join that did not finish: log it as ended."""
    if opening.cancelled() or opening.exception() is not None:
        return
    task = asyncio.ensure_future(asyncio.to_thread(policy.close_session, opening.result(), reason))
    _closing.add(task)
    task.add_done_callback(_closing.discard)


def _query_problem(purpose: str | None, mode: str, case_ref: str | None) -> str | None:
    if not purpose:
        return "query parameter 'purpose' is required: state why you are watching"
    if len(purpose) > IDENT_MAX:
        return f"query parameter 'purpose' is longer than {IDENT_MAX} characters"
    if mode not in MODES:
        return f"mode must be one of {', '.join(MODES)}"
    if case_ref is not None and len(case_ref) > NAME_MAX:
        return f"query parameter 'case_ref' is longer than {NAME_MAX} characters"
    return None


async def _refuse(request: Request, principal: Principal, status: int, reason: str) -> NoReturn:
    """A refusal of the request's form (400/413/415): logged (reason only, never the offer), answered."""
    reason = one_line(reason)
    await log_request_refusal(request, status, reason, principal)
    raise WhepError(status, reason)


def ice_server_links(settings: RelaySettings, session_id: str = "viewer") -> str:
    """STUN/TURN servers for the viewer, as WHEP `Link: <url>; rel="ice-server"` values. TURN credentials
    go only to viewers just authorized, which is what they are for; those made from `turn_secret` are the
    session's own and short-lived (relay.turn)."""

    def quoted(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    out = []
    for server in ice_servers_for(settings, session_id):
        for url in server.urls:
            link = f'<{url}>; rel="ice-server"'
            if server.username and server.credential:
                link += (f"; username={quoted(server.username)}; credential={quoted(server.credential)}"
                         '; credential-type="password"')
            out.append(link)
    return ", ".join(out)


@router.options("/{camera_id}/sessions/{session_id}", include_in_schema=False)
async def session_options(camera_id: str, session_id: str) -> Response:
    return Response(status_code=204, headers={"Allow": "GET, DELETE, OPTIONS"})


@router.get("/{camera_id}/sessions/{session_id}", responses=problems(410))
async def view_status(camera_id: str, session_id: str, request: Request,
                      principal: SignedIn) -> dict[str, Any]:
    """Is this session still running? 200 with its terms, or 410 with why it ended (its viewer or an
    admin only). Not part of WHEP: lets the dashboard say why a picture stopped."""
    svc = services(request)
    session = svc.sessions.running.get(session_id)
    owner = session.principal.user_id if session else svc.sessions.ended.get(session_id, (None, ""))[0]
    if owner is None or (session is not None and session.camera_id != camera_id):
        raise WhepError(404, "no such session")
    if owner != principal.user_id and not await asyncio.to_thread(has_permission, svc.context, principal,
                                                                  "admin"):
        raise WhepError(404, "no such session")
    if session is None:
        raise WhepError(410, f"the session ended: {svc.sessions.ended[session_id][1]}")
    return {"id": session_id, "camera_id": camera_id, "purpose": session.purpose, "mode": session.mode,
            "connected": session.connected}


@router.patch("/{camera_id}/sessions/{session_id}", include_in_schema=False)
async def session_patch(camera_id: str, session_id: str) -> Response:
    # Candidates are gathered before answering (no trickle ICE); ICE restarts need a new POST.
    return Response('{"detail":"trickle ICE and ICE restart are not supported; POST a new offer"}',
                    status_code=405, media_type="application/json", headers={"Allow": "GET, DELETE, OPTIONS"})


@router.delete("/{camera_id}/sessions/{session_id}")
async def end_view(camera_id: str, session_id: str, request: Request, principal: SignedIn) -> Response:
    """End a session: the viewer who opened it, or an admin."""
    svc = services(request)
    session = svc.sessions.running.get(session_id)
    if session is None or session.camera_id != camera_id:
        raise WhepError(404, "no such session (it may have ended)")
    if session.principal.user_id != principal.user_id:
        if not await asyncio.to_thread(has_permission, svc.context, principal, "admin"):
            await asyncio.to_thread(svc.context.audit.append, "auth.forbidden", actor=principal.username,
                                    roles=list(principal.roles), camera_id=camera_id, decision="deny",
                                    reason="only the session's viewer or an admin may end it",
                                    details={"path": request.url.path, "session_id": session_id})
            raise WhepError(403, "only the session's viewer or an admin may end it")
        reason = f"ended by admin {principal.username}"
    else:
        reason = "viewer ended the session"
    await svc.sessions.close(session_id, reason)
    return Response(status_code=200)
