"""A viewer's WebRTC peer: answer its SDP offer with a send-only video track carrying the shared packets.

The codec is the one the camera's encoder emits (H.264 constrained baseline, packetization-mode 1, or VP8):
codec preferences are set on our transceiver BEFORE the offer is applied, because aiortc settles the codecs
in setRemoteDescription. In packet mode aiortc drops PLI/FIR on the floor (it has no encoder to ask), so the
sender's keyframe hook is pointed at the shared encoder (rate-limited there). Candidates are gathered before
answering (no trickle), which is what WHEP clients expect."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import aioice.ice
import ifaddr
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.codecs import CODECS
from aiortc.rtcpeerconnection import find_common_codecs
from aiortc.rtcrtpparameters import RTCRtpCodecCapability
from aiortc.sdp import SessionDescription

from relay.errors import first_line
from relay.hub import Subscription
from relay.turn import ice_servers_for

log = logging.getLogger("relay.webrtc")

MAX_SDP_BYTES = 64 * 1024


class SdpError(ValueError):
    """An offer we cannot answer; the message says why, in one line."""


class SdpTooLarge(SdpError):
    """An offer over MAX_SDP_BYTES (WHEP answers 413)."""


class IceServerConfig(Protocol):
    """A STUN or TURN server as configured (relay.config.IceServer)."""

    @property
    def urls(self) -> Sequence[str]: ...
    @property
    def username(self) -> str | None: ...
    @property
    def credential(self) -> str | None: ...


class IceConfig(Protocol):
    """The ICE part of the app's settings (relay.config.RelaySettings)."""

    @property
    def ice_servers(self) -> Sequence[IceServerConfig]: ...
    @property
    def ice_interfaces(self) -> Sequence[str]: ...
    @property
    def ice_loopback(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class IceSettings:
    """STUN/TURN servers and which local addresses to offer as host candidates: `interfaces` (names like
    "eth0" or IP addresses; empty = all), plus loopback when `loopback` (a viewer on the relay's own
    machine, the demo)."""

    servers: Sequence[IceServerConfig] = ()
    interfaces: Sequence[str] = ()
    loopback: bool = True

    def ice_servers(self) -> list[RTCIceServer]:
        return [RTCIceServer(urls=list(s.urls), username=s.username, credential=s.credential)
                for s in self.servers]


def ice_settings_from(settings: IceConfig, user_tag: str = "relay") -> IceSettings:
    """From the app's RelaySettings (ice_servers, ice_interfaces, ice_loopback), plus the TURN servers
    with a fresh short-lived credential for the relay's own peer when TURN is set up (relay.turn): the relay
    gathers relayed candidates too, so a viewer restricted to TURN reaches it both ways."""
    return IceSettings(servers=tuple(ice_servers_for(settings, user_tag)),
                       interfaces=list(settings.ice_interfaces), loopback=settings.ice_loopback)


# aioice finds host addresses through one module function and never offers loopback. The settings of the
# answer being made travel in a context variable (aiortc gathers inside setLocalDescription, in tasks that
# inherit the context); connections made elsewhere keep aioice's behaviour.
_ice_context: contextvars.ContextVar[IceSettings | None] = contextvars.ContextVar("relay_ice", default=None)
_original_host_addresses = aioice.ice.get_host_addresses


def _host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    ice = _ice_context.get()
    if ice is None:
        return _original_host_addresses(use_ipv4, use_ipv6)
    if ice.interfaces:  # named interfaces or addresses only (loopback too, if named)
        wanted = set(ice.interfaces)
        addresses = []
        for adapter in ifaddr.get_adapters():
            for ip in adapter.ips:
                if isinstance(ip.ip, str):
                    address, ok = ip.ip, use_ipv4
                else:
                    address, ok = ip.ip[0], use_ipv6 and ip.ip[2] == 0  # no link-local scopes
                if ok and wanted & {adapter.nice_name, adapter.name, address}:
                    addresses.append(address)
    else:
        addresses = _original_host_addresses(use_ipv4, use_ipv6)
    if ice.loopback and use_ipv4 and "127.0.0.1" not in addresses:
        addresses.append("127.0.0.1")
    return addresses


aioice.ice.get_host_addresses = _host_addresses


def codec_preferences(codec: str) -> list[RTCRtpCodecCapability]:
    """The capabilities matching what the shared encoder emits, best first, with their RTX."""
    caps = RTCRtpSender.getCapabilities("video").codecs
    if codec == "h264":
        # Constrained baseline first (what we emit); plain baseline also decodes it.
        main = [c for c in caps if c.mimeType.lower() == "video/h264"
                and c.parameters.get("packetization-mode") == "1"]
        main.sort(key=lambda c: str(c.parameters.get("profile-level-id", "")).lower() != "42e01f")
    elif codec == "vp8":
        main = [c for c in caps if c.mimeType.lower() == "video/vp8"]
    else:
        raise ValueError(f"unsupported codec {codec!r}")
    rtx = [c for c in caps if c.mimeType.lower() == "video/rtx"]
    return main + rtx[:1]


def check_offer(offer: str | bytes) -> str:
    """The size and syntax of a viewer's offer, before anything is negotiated: at most MAX_SDP_BYTES
    (SdpTooLarge), UTF-8 text, a session description with a video section. Returns it as text; raises
    SdpError (one line) otherwise."""
    return _parse_offer(offer)[0]


def _parse_offer(offer: str | bytes) -> tuple[str, SessionDescription]:
    if len(offer) > MAX_SDP_BYTES:
        raise SdpTooLarge(f"SDP offer larger than {MAX_SDP_BYTES} bytes")
    if isinstance(offer, bytes):
        try:
            offer = offer.decode("utf-8")
        except UnicodeDecodeError:
            raise SdpError("the SDP offer is not UTF-8 text") from None
    if not offer.strip():
        raise SdpError("empty SDP offer")
    if not offer.lstrip().startswith("v=0"):
        raise SdpError("not an SDP offer (must start with v=0)")
    try:
        description = SessionDescription.parse(offer)
    except Exception as exc:  # aiortc's parser raises assorted errors on garbage
        raise SdpError(f"malformed SDP ({type(exc).__name__})") from None
    if not any(m.kind == "video" for m in description.media):
        raise SdpError("the offer has no video section")
    mids = [m.rtp.muxId for m in description.media if m.rtp.muxId]
    if len(mids) != len(set(mids)):
        raise SdpError("two media sections of the offer share an a=mid")
    return offer, description


def _check_answerable(description: SessionDescription, codec: str) -> None:
    """What the relay needs of a well-formed offer to send it `codec` video."""
    video = next(m for m in description.media if m.kind == "video")
    if any(m.direction is None for m in description.media):
        # SDP's default would be sendrecv; aiortc cannot answer a section without it, and players name it.
        raise SdpError("a media section of the offer has no direction (a=recvonly)")
    if video.direction not in ("recvonly", "sendrecv"):
        raise SdpError(f"the offer's video is {video.direction}: a viewer must receive video")
    if not (video.ice.usernameFragment and video.ice.password):
        raise SdpError("the offer lacks ICE credentials (a=ice-ufrag / a=ice-pwd)")
    if not video.dtls or not video.dtls.fingerprints:
        raise SdpError("the offer lacks a DTLS fingerprint")
    local = [c for c in CODECS["video"] if c.mimeType.lower() == f"video/{codec}"]
    if not [c for c in find_common_codecs(local, video.rtp.codecs) if c.mimeType.lower() != "video/rtx"]:
        wanted = "H264 (packetization-mode 1)" if codec == "h264" else codec.upper()
        raise SdpError(f"no common codec: the relay sends {wanted}")


async def answer_offer(offer_sdp: str, subscription: Subscription, *, ice: IceSettings | None = None,
                       ) -> tuple[str, RTCPeerConnection]:
    """Negotiate a peer connection that sends `subscription`'s packets; returns (answer SDP, connection).
    The subscription closes with the connection. Raises SdpError on offers we cannot answer."""
    codec = subscription.codec
    offer_sdp, description = _parse_offer(offer_sdp)
    _check_answerable(description, codec)
    ice = ice or IceSettings()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=ice.ice_servers()))
    try:
        transceiver = pc.addTransceiver(subscription.track, direction="sendonly")
        transceiver.setCodecPreferences(codec_preferences(codec))
        # PLI/FIR → the shared encoder (aiortc calls this hook for both; in packet mode it would do nothing).
        transceiver.sender._send_keyframe = subscription.request_keyframe  # type: ignore[method-assign]
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
        except (ValueError, AssertionError, KeyError, IndexError) as exc:
            raise SdpError(f"offer refused: {first_line(exc)}") from None
        except Exception as exc:
            if type(exc).__name__ in ("OperationError", "InvalidStateError", "InvalidAccessError"):
                raise SdpError(f"offer refused: {first_line(exc)}") from None
            raise
        token = _ice_context.set(ice)
        try:
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except (ValueError, AssertionError, KeyError, IndexError, AttributeError, TypeError) as exc:
            # What aiortc's parser let through and its answering trips over: still the offer's fault.
            raise SdpError(f"offer refused: {first_line(exc)}") from None
        finally:
            _ice_context.reset(token)
        negotiated = [c for c in transceiver._codecs if c.mimeType.lower() != "video/rtx"]
        if not negotiated or negotiated[0].mimeType.lower() != f"video/{codec}":
            raise SdpError("no common codec")
        if transceiver.currentDirection not in ("sendonly", "sendrecv"):
            raise SdpError("the offer does not let the relay send video")
    except BaseException:
        with contextlib.suppress(Exception):
            await pc.close()
        raise

    @pc.on("iceconnectionstatechange")
    def _on_ice_state() -> None:
        # Connected: DTLS comes next, then the first pull; the IDR it starts on is asked for now.
        if pc.iceConnectionState in ("connected", "completed"):
            subscription.prepare()

    @pc.on("connectionstatechange")
    async def _on_state() -> None:
        if pc.connectionState in ("failed", "closed"):
            subscription.close()
            if pc.connectionState == "failed":
                await pc.close()

    # The feed ended (viewer left, camera pipeline stopped): nothing more to send on this connection.
    subscription.on_close(lambda _sub: _close_soon(pc))
    return pc.localDescription.sdp, pc


def _close_soon(pc: RTCPeerConnection) -> None:
    with contextlib.suppress(RuntimeError):  # no running loop: the app is shutting down anyway
        task = asyncio.get_running_loop().create_task(pc.close())
        _closing.add(task)
        task.add_done_callback(_closing.discard)


_closing: set[asyncio.Task[None]] = set()
