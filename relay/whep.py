"""WHEP (WebRTC-HTTP Egress Protocol, draft-ietf-wish-whep): one HTTP POST of an SDP offer starts a viewer
session, a DELETE on the session URL ends it.

    POST   /whep/{camera_id}?purpose=...&mode=anonymized|raw&case_ref=...   (Content-Type: application/sdp)
           -> 201 Created, SDP answer, Location: /whep/{camera_id}/sessions/{id}, ETag
    DELETE /whep/{camera_id}/sessions/{id}   (the viewer who opened it, or an admin) -> 200
    PATCH  /whep/{camera_id}/sessions/{id}   -> 405 (no trickle ICE: the answer carries all candidates)
    OPTIONS on both                          -> 204 with Allow / Accept-Post (CORS preflight when configured)

Order of checks: authentication (401) → the view right (403, for every camera id, so roles that may not
watch learn nothing about which cameras exist) → content type (415) → query and SDP syntax (400) → the
policy decision (403 with its reason; logged by the policy service) → unknown camera (404: the same
cameras are listed in the public register, so viewers learn nothing secret). The session is logged as
started before any media can flow, and a watchdog re-checks it every second: when its decision expires or
is revoked, or the peer goes away, the peer connection and the session are closed and the reason logged."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import inspect
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import Response

from policies.auth import require
from policies.contract import Principal

if TYPE_CHECKING:
    from policies.context import PolicyContext
    from relay.config import RelaySettings

log = logging.getLogger("relay.whep")
router = APIRouter(prefix="/whep", tags=["whep"])

MODES = ("anonymized", "raw")
MAX_OFFER_BYTES = 64 * 1024
CONNECT_TIMEOUT_S = 30.0  # a peer that never completes ICE/DTLS is dropped
MAX_CHECK_FAILURES = 3  # consecutive failed re-checks (database down) before the session is closed


class WhepError(HTTPException):
    """A refusal with a one-line reason (JSON `detail`)."""


@dataclass
class WhepSession:
    id: str
    camera_id: str
    principal: Principal
    purpose: str
    mode: str
    pc: Any  # aiortc RTCPeerConnection
    subscription: Any
    etag: str
    opened: float = field(default_factory=time.monotonic)
    watchdog: asyncio.Task[None] | None = None
    connected: bool = False
    feed_ended: bool = False  # the camera's pipeline stopped under it: _end_fed_out closes it
    end_reason: str | None = None


class WhepSessions:
    """The running viewer sessions of this process, each with its watchdog."""

    def __init__(self, ctx: PolicyContext, cameras: Any, settings: RelaySettings) -> None:
        self.ctx = ctx
        self.cameras = cameras
        self.settings = settings
        self.sessions: dict[str, WhepSession] = {}
        self._ended: dict[str, asyncio.Event] = {}
        # Why recent sessions ended, for their viewers (GET on the session answers 410 with it).
        self.ended_reasons: collections.OrderedDict[str, tuple[int, str]] = collections.OrderedDict()
        self._closing: set[asyncio.Task[None]] = set()

    def add(self, session: WhepSession) -> None:
        self.sessions[session.id] = session
        self._ended[session.id] = asyncio.Event()

        @session.pc.on("connectionstatechange")
        async def _on_state() -> None:
            state = session.pc.connectionState
            if state == "connected":
                session.connected = True
            elif state in ("failed", "closed") and not session.feed_ended:
                await self.close(session.id, f"peer connection {state}")

        session.watchdog = asyncio.create_task(self._watch(session), name=f"whep-watchdog-{session.id}")
        session.subscription.on_close(lambda _sub: self._feed_ended(session))
        if session.subscription.closed:  # the camera stopped while the answer was negotiated
            self._feed_ended(session)

    def _feed_ended(self, session: WhepSession) -> None:
        # The camera's pipeline stopped under a running session (disabled, deleted, or its source or
        # masks changed): end the session now rather than leave the viewer on a dead track.
        if not session.subscription.hub.closed:
            return  # the viewer's side ended the feed (peer gone, sender stopped): the peer handlers say so
        if session.id in self.sessions and not session.feed_ended:
            # The connection closes with the feed (relay.webrtc); the session's end says why, not that.
            session.feed_ended = True
            task = asyncio.get_running_loop().create_task(self._end_fed_out(session))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _end_fed_out(self, session: WhepSession) -> None:
        reason = "the camera's stream stopped (the camera was changed or removed); open it again"
        with contextlib.suppress(Exception):  # the policy's reason is better, if it has one
            decision = await asyncio.to_thread(self.ctx.service.check_session, session.id)
            if not decision.allowed:
                reason = f"authorization ended: {decision.reason}"
        await self.close(session.id, reason)

    async def _watch(self, session: WhepSession) -> None:
        failures = 0
        interval = self.settings.session_check_s
        while session.id in self.sessions:
            await asyncio.sleep(interval)
            if session.id not in self.sessions:
                return
            if not session.connected and time.monotonic() - session.opened > CONNECT_TIMEOUT_S:
                await self.close(session.id, "peer never connected")
                return
            try:
                decision = await asyncio.to_thread(self.ctx.service.check_session, session.id)
                failures = 0
            except Exception as exc:  # fail closed: a session that cannot be re-checked does not run on
                failures += 1
                log.warning("session %s: re-check failed (%s)", session.id, type(exc).__name__)
                if failures >= MAX_CHECK_FAILURES:
                    await self.close(session.id, "authorization could not be re-checked")
                    return
                continue
            if not decision.allowed:
                await self.close(session.id, f"authorization ended: {decision.reason}")
                return

    async def close(self, session_id: str, reason: str) -> bool:
        """End a session once: stop its media, then log its end. False when it was not running."""
        session = self.sessions.pop(session_id, None)
        if session is None:
            return False
        session.end_reason = reason
        self.ended_reasons[session_id] = (session.principal.user_id, reason)
        while len(self.ended_reasons) > 1000:
            self.ended_reasons.popitem(last=False)
        log.info("session %s on %s ended: %s", session_id, session.camera_id, reason)
        try:
            if session.watchdog is not None and session.watchdog is not asyncio.current_task():
                session.watchdog.cancel()
            await _maybe_await(session.subscription.close())
            with contextlib.suppress(Exception):
                await session.pc.close()
        finally:
            try:
                await asyncio.to_thread(self.ctx.service.close_session, session_id, reason)
            finally:
                self._ended.pop(session_id, asyncio.Event()).set()
        return True

    async def wait_ended(self, session_id: str, timeout: float) -> bool:
        event = self._ended.get(session_id)
        if event is None:
            return session_id not in self.sessions
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def close_all(self, reason: str) -> None:
        closing = [self.close(sid, reason) for sid in list(self.sessions)]
        await asyncio.gather(*closing, return_exceptions=True)


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


def _sessions(request: Request) -> WhepSessions:
    return request.app.state.whep


def _client(request: Request) -> str:
    host = request.client.host if request.client else "?"
    agent = request.headers.get("user-agent", "")[:120]
    return f"{host} {agent}".strip()


def _location(camera_id: str, session_id: str) -> str:
    return f"/whep/{camera_id}/sessions/{session_id}"


def check_offer_syntax(sdp: str) -> None:
    """Cheap checks before any policy decision: a session description with a video section."""
    from aiortc.sdp import SessionDescription

    if not sdp.strip():
        raise WhepError(400, "empty body: expected an SDP offer")
    if not sdp.lstrip().startswith("v=0"):
        raise WhepError(400, "malformed SDP offer: it must start with v=0")
    try:
        parsed = SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises assorted errors on garbage
        raise WhepError(400, f"malformed SDP offer: {type(exc).__name__}") from None
    if not any(m.kind == "video" for m in parsed.media):
        raise WhepError(400, "the SDP offer has no video section")


Viewer = Annotated[Principal, Depends(require("view"))]
SignedIn = Annotated[Principal, Depends(require())]


@router.options("/{camera_id}", include_in_schema=False)
async def endpoint_options(camera_id: str) -> Response:
    return Response(status_code=204, headers={"Allow": "POST, OPTIONS", "Accept-Post": "application/sdp"})


@router.post("/{camera_id}", status_code=201, response_class=Response,
             responses={201: {"content": {"application/sdp": {}}, "description": "SDP answer"}})
async def start_view(camera_id: str, request: Request, principal: Viewer, purpose: str | None = None,
                     mode: str = "anonymized", case_ref: str | None = None) -> Response:
    """Start watching `camera_id` for `purpose`: the body is the viewer's SDP offer (recvonly video)."""
    from relay.webrtc import SdpError, answer_offer

    ctx: PolicyContext = request.app.state.policies
    sessions = _sessions(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/sdp":
        raise WhepError(415, f"expected Content-Type application/sdp, got {content_type or 'none'}")
    body = await request.body()
    if len(body) > MAX_OFFER_BYTES:
        raise WhepError(413, f"SDP offer larger than {MAX_OFFER_BYTES} bytes")
    if not purpose:
        raise WhepError(400, "query parameter 'purpose' is required: state why you are watching")
    if mode not in MODES:
        raise WhepError(400, f"mode must be one of {', '.join(MODES)}")
    try:
        offer = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WhepError(400, "the SDP offer is not UTF-8 text") from None
    check_offer_syntax(offer)
    client = _client(request)

    decision = await asyncio.to_thread(ctx.service.authorize_view, principal, camera_id, purpose, mode,
                                       case_ref or None, client)
    if not decision.allowed:
        if await asyncio.to_thread(ctx.service.camera_runtime, camera_id) is None:
            raise WhepError(404, f"unknown camera {camera_id!r}")
        raise WhepError(403, decision.reason)

    try:
        subscription = await sessions.cameras.subscribe(camera_id, raw=decision.mode == "raw")
    except KeyError:
        raise WhepError(404, f"camera {camera_id!r} is not available") from None
    except Exception as exc:
        log.warning("subscribe to %s failed: %s", camera_id, type(exc).__name__)
        raise WhepError(503, f"camera {camera_id!r} cannot be streamed right now") from None

    # Logged as started before negotiation: no media can flow that the access log does not know about.
    try:
        session_id = await asyncio.to_thread(ctx.service.open_session, principal, camera_id, purpose,
                                             decision, client)
    except Exception:
        await _maybe_await(subscription.close())
        raise
    try:
        answer, pc = await answer_offer(offer, subscription, ice=_ice_settings(sessions.settings))
    except SdpError as exc:
        await _maybe_await(subscription.close())
        await asyncio.to_thread(ctx.service.close_session, session_id, f"offer refused: {exc}")
        raise WhepError(400, f"SDP offer refused: {exc}") from None
    except BaseException:
        await _maybe_await(subscription.close())
        await asyncio.to_thread(ctx.service.close_session, session_id, "negotiation failed")
        raise

    etag = '"' + hashlib.sha256(f"{session_id}:{answer}".encode()).hexdigest()[:32] + '"'
    sessions.add(WhepSession(session_id, camera_id, principal, purpose, decision.mode, pc, subscription,
                             etag))
    headers = {"Location": _location(camera_id, session_id), "ETag": etag,
               "X-View-Mode": decision.mode, "X-View-Purpose": purpose}
    if decision.expires_at is not None:
        headers["X-View-Expires"] = decision.expires_at.isoformat()
    links = ice_server_links(sessions.settings)
    if links:
        headers["Link"] = links
    return Response(answer, status_code=201, media_type="application/sdp", headers=headers)


def ice_server_links(settings: RelaySettings) -> str:
    """STUN/TURN servers for the viewer, as WHEP `Link: <url>; rel="ice-server"` values. TURN credentials
    go only to viewers just authorized, which is what they are for."""

    def quoted(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    out = []
    for server in settings.ice_servers:
        for url in server.urls:
            link = f'<{url}>; rel="ice-server"'
            if server.username and server.credential:
                link += (f"; username={quoted(server.username)}; credential={quoted(server.credential)}"
                         '; credential-type="password"')
            out.append(link)
    return ", ".join(out)


def _ice_settings(settings: RelaySettings) -> Any:
    from relay import webrtc

    factory = getattr(webrtc, "ice_settings_from", None)
    if factory is not None:
        return factory(settings)
    cls = getattr(webrtc, "IceSettings", None)
    if cls is None:
        return None
    servers = [s.model_dump() for s in settings.ice_servers]
    kwargs: dict[str, Any] = {}
    params = inspect.signature(cls).parameters
    for name, value in (("interfaces", settings.ice_interfaces), ("loopback", settings.ice_loopback),
                        ("ice_servers", servers), ("servers", servers)):
        if name in params:
            kwargs[name] = value
    return cls(**kwargs)


def _session_for(request: Request, camera_id: str, session_id: str) -> WhepSession:
    session = _sessions(request).sessions.get(session_id)
    if session is None or session.camera_id != camera_id:
        raise WhepError(404, "no such session (it may have ended)")
    return session


@router.options("/{camera_id}/sessions/{session_id}", include_in_schema=False)
async def session_options(camera_id: str, session_id: str) -> Response:
    return Response(status_code=204, headers={"Allow": "GET, DELETE, OPTIONS"})


@router.get("/{camera_id}/sessions/{session_id}")
async def view_status(camera_id: str, session_id: str, request: Request,
                      principal: SignedIn) -> dict[str, Any]:
    """Is this session still running? 200 with its terms, or 410 with why it ended (its viewer or an
    admin only). Not part of WHEP: lets the dashboard say why a picture stopped."""
    from relay.app import has_permission

    ctx: PolicyContext = request.app.state.policies
    sessions = _sessions(request)
    session = sessions.sessions.get(session_id)
    owner = session.principal.user_id if session else sessions.ended_reasons.get(session_id, (None, ""))[0]
    if owner is None or (session is not None and session.camera_id != camera_id):
        raise WhepError(404, "no such session")
    if owner != principal.user_id and not await asyncio.to_thread(has_permission, ctx, principal, "admin"):
        raise WhepError(404, "no such session")
    if session is None:
        raise WhepError(410, f"the session ended: {sessions.ended_reasons[session_id][1]}")
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
    from relay.app import has_permission

    ctx: PolicyContext = request.app.state.policies
    session = _session_for(request, camera_id, session_id)
    if session.principal.user_id != principal.user_id:
        if not await asyncio.to_thread(has_permission, ctx, principal, "admin"):
            await asyncio.to_thread(ctx.audit.append, "auth.forbidden", actor=principal.username,
                                    roles=list(principal.roles), camera_id=camera_id,
                                    reason="only the session's viewer or an admin may end it",
                                    details={"path": request.url.path, "session_id": session_id})
            raise WhepError(403, "only the session's viewer or an admin may end it")
        reason = f"ended by admin {principal.username}"
    else:
        reason = "viewer ended the session"
    await _sessions(request).close(session_id, reason)
    return Response(status_code=200)
