"""A real WHEP viewer for the tests: an aiortc peer (recvonly video) that POSTs its offer over HTTP,
applies the answer and decodes what arrives."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError


@dataclass
class Viewer:
    status: int
    headers: httpx.Headers
    text: str
    pc: RTCPeerConnection | None = None
    track: Any = None
    got_track: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def location(self) -> str:
        return self.headers["location"]

    @property
    def session_id(self) -> str:
        return self.location.rsplit("/", 1)[1]

    def detail(self) -> str:
        try:
            return str(httpx.Response(self.status, text=self.text).json()["detail"])
        except Exception:
            return self.text

    async def frames(self, count: int, timeout: float = 30.0) -> list[np.ndarray]:
        """The next `count` decoded frames (BGR); fewer if the stream ends or `timeout` passes."""
        out: list[np.ndarray] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        await asyncio.wait_for(self.got_track.wait(), timeout)
        while len(out) < count:
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                frame = await asyncio.wait_for(self.track.recv(), left)
            except (TimeoutError, MediaStreamError):
                break
            out.append(frame.to_ndarray(format="bgr24"))
        return out

    async def ended(self, timeout: float) -> bool:
        """True once no more frames arrive: the track ends, or stays silent for a second."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            try:
                await asyncio.wait_for(self.track.recv(), 1.0)
            except (TimeoutError, MediaStreamError):
                return True
        return False

    async def close(self) -> None:
        if self.pc is not None:
            await self.pc.close()


async def offer_sdp() -> tuple[RTCPeerConnection, str]:
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())  # aiortc gathers its candidates here
    return pc, pc.localDescription.sdp


async def offering_viewer() -> tuple[RTCPeerConnection, str, Viewer]:
    """A recvonly peer, its offer, and the Viewer its track is handed to once it arrives (status unset)."""
    pc, sdp = await offer_sdp()
    viewer = Viewer(0, httpx.Headers(), "")

    @pc.on("track")
    def on_track(track: Any) -> None:
        viewer.track = track
        viewer.got_track.set()

    return pc, sdp, viewer


async def open_viewer(base_url: str, camera_id: str, *, token: str | None,
                      purpose: str | None = "public_safety", mode: str | None = None,
                      case_ref: str | None = None, body: str | None = None,
                      content_type: str = "application/sdp") -> Viewer:
    """POST an offer to /whep/{camera_id}. On 201 the peer connection is live; else it is closed."""
    pc, sdp, viewer = await offering_viewer()
    query = (("purpose", purpose), ("mode", mode), ("case_ref", case_ref))
    params = {k: v for k, v in query if v is not None}
    headers = {"Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        r = await client.post(f"/whep/{camera_id}", params=params, headers=headers,
                              content=sdp if body is None else body)
    viewer.status, viewer.headers, viewer.text = r.status_code, r.headers, r.text
    if r.status_code != 201:
        await pc.close()
        return viewer
    viewer.pc = pc
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
    except Exception:
        with contextlib.suppress(Exception):
            await pc.close()
        raise
    return viewer


async def delete(base_url: str, location: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        return await client.delete(location, headers=headers)
