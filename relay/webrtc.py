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
from typing import Any

import aioice.ice
import ifaddr
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.rtcpeerconnection import find_common_codecs
from aiortc.rtcrtpparameters import RTCRtpCodecCapability
from aiortc.sdp import SessionDescription

from relay.hub import Subscription

log = logging.getLogger("relay.webrtc")

MAX_SDP_BYTES = 64 * 1024


class SdpError(ValueError):
    """An offer we cannot answer; the message says why, in one line."""


@dataclass(frozen=True, slots=True)
class IceSettings:
    """STUN/TURN servers (dicts or objects with urls/username/credential) and which local addresses to
    offer as host candidates: `interfaces` (names like "eth0" or IP addresses; empty = all), plus loopback
    when `loopback` (a viewer on the relay's own machine, the demo)."""

    servers: Sequence[Any] = ()
    interfaces: Sequence[str] = ()
    loopback: bool = True

    def ice_servers(self) -> list[RTCIceServer]:
        out = []
        for server in self.servers:
            get = server.get if isinstance(server, dict) else lambda k, s=server: getattr(s, k, None)
            urls = get("urls")
            out.append(RTCIceServer(urls=list(urls) if isinstance(urls, list | tuple) else urls,
                                    username=get("username"), credential=get("credential")))
        return out


def ice_settings_from(settings: Any) -> IceSettings:
    """From the app's RelaySettings (ice_servers, ice_interfaces, ice_loopback)."""
    servers = [s.model_dump() if hasattr(s, "model_dump") else s
               for s in getattr(settings, "ice_servers", None) or []]
    return IceSettings(servers=servers, interfaces=list(getattr(settings, "ice_interfaces", []) or []),
                       loopback=bool(getattr(settings, "ice_loopback", True)))


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


def _check_offer(offer_sdp: str, codec: str) -> None:
    if not isinstance(offer_sdp, str) or not offer_sdp.strip():
        raise SdpError("empty SDP offer")
    if len(offer_sdp) > MAX_SDP_BYTES:
        raise SdpError("SDP offer too large")
    if not offer_sdp.lstrip().startswith("v=0"):
        raise SdpError("not an SDP offer (must start with v=0)")
    try:
        description = SessionDescription.parse(offer_sdp)
    except Exception as exc:
        raise SdpError(f"malformed SDP ({type(exc).__name__})") from None
    videos = [m for m in description.media if m.kind == "video"]
    if not videos:
        raise SdpError("the offer has no video section")
    video = videos[0]
    if video.direction not in (None, "recvonly", "sendrecv"):
        raise SdpError(f"the offer's video is {video.direction}: a viewer must receive video")
    if not (video.ice.usernameFragment and video.ice.password):
        raise SdpError("the offer lacks ICE credentials (a=ice-ufrag / a=ice-pwd)")
    if not video.dtls or not video.dtls.fingerprints:
        raise SdpError("the offer lacks a DTLS fingerprint")
    from aiortc.codecs import CODECS

    local = [c for c in CODECS["video"] if c.mimeType.lower() == f"video/{codec}"]
    if not [c for c in find_common_codecs(local, video.rtp.codecs) if c.mimeType.lower() != "video/rtx"]:
        wanted = "H264 (packetization-mode 1)" if codec == "h264" else codec.upper()
        raise SdpError(f"no common codec: the relay sends {wanted}")


async def answer_offer(offer_sdp: str, subscription: Subscription, *, ice: IceSettings | None = None,
                       ) -> tuple[str, RTCPeerConnection]:
    """Negotiate a peer connection that sends `subscription`'s packets; returns (answer SDP, connection).
    The subscription closes with the connection. Raises SdpError on offers we cannot answer."""
    codec = subscription.codec
    _check_offer(offer_sdp, codec)
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
            raise SdpError(f"offer refused: {_one_line(exc)}") from None
        except Exception as exc:
            if type(exc).__name__ in ("OperationError", "InvalidStateError", "InvalidAccessError"):
                raise SdpError(f"offer refused: {_one_line(exc)}") from None
            raise
        token = _ice_context.set(ice)
        try:
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
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

    @pc.on("connectionstatechange")
    async def _on_state() -> None:
        if pc.connectionState in ("failed", "closed"):
            subscription.close()
            if pc.connectionState == "failed":
                await pc.close()

    # The feed ended (viewer left, camera pipeline stopped): nothing more to send on this connection.
    subscription.on_close(lambda _sub: _close_soon(pc))
    return pc.localDescription.sdp, pc


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def _close_soon(pc: RTCPeerConnection) -> None:
    with contextlib.suppress(RuntimeError):  # no running loop: the app is shutting down anyway
        task = asyncio.get_running_loop().create_task(pc.close())
        _closing.add(task)
        task.add_done_callback(_closing.discard)


_closing: set[asyncio.Task[None]] = set()
