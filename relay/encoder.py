"""The shared encoder: one per camera and rendition, whatever the number of viewers. Every viewer gets the
same `av.Packet`s, which aiortc packetizes without re-encoding.

H.264 is constrained baseline (what every browser decodes, profile-level-id 42e0xx), no B-frames, a short
GOP and zero-latency tuning; VP8 runs libvpx in realtime mode. Packets are stamped on the 90 kHz RTP video
clock from the frames' arrival times, so timestamps stay monotonic across drops and source reconnects."""

from __future__ import annotations

import threading
import time
from fractions import Fraction

import av
from av.video.frame import PictureType

CODECS = ("h264", "vp8")
VIDEO_CLOCK = Fraction(1, 90000)


class SharedEncoder:
    """Encode frames once; `request_keyframe()` may be called from any thread (it is rate-limited)."""

    def __init__(self, codec: str = "h264", *, fps: int = 25, gop_s: float = 2.0, bitrate: int | None = None,
                 min_keyframe_interval_s: float = 0.5) -> None:
        if codec not in CODECS:
            raise ValueError(f"unsupported codec {codec!r} (use {', '.join(CODECS)})")
        self.codec = codec
        self.fps = fps
        self.gop = max(1, round(fps * gop_s))
        self.bitrate = bitrate
        self.min_keyframe_interval_s = min_keyframe_interval_s
        self.frames_encoded = 0  # encoder invocations: one per frame, never per viewer
        self.keyframes_forced = 0
        self._ctx: av.video.codeccontext.VideoCodecContext | None = None
        self._size: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self._keyframe_wanted = False
        self._keyframe_joining = False
        self._last_forced = -1e9
        self._last_pts = -1
        self._t0: float | None = None

    def request_keyframe(self, *, joining: bool = False) -> None:
        """Ask for an IDR soon: at the next frame, or once `min_keyframe_interval_s` has passed since the
        last forced one (a storm of PLIs from many viewers costs one IDR per interval). `joining`: for a
        viewer starting (relay.hub): at the next frame whatever the interval. Joins are bounded by the
        session quotas, and viewers joining within moments of an IDR start on it without asking."""
        with self._lock:
            self._keyframe_wanted = True
            self._keyframe_joining = self._keyframe_joining or joining

    @property
    def joining_pending(self) -> bool:
        """A joining viewer's IDR is asked for and not yet encoded."""
        with self._lock:
            return self._keyframe_wanted and self._keyframe_joining

    def _open(self, width: int, height: int) -> av.video.codeccontext.VideoCodecContext:
        bitrate = self.bitrate or _default_bitrate(width, height, self.fps)
        if self.codec == "h264":
            ctx = av.CodecContext.create("libx264", "w")
            ctx.options = {"preset": "ultrafast", "tune": "zerolatency", "profile": "baseline",
                           "forced-idr": "1", "bf": "0", "sc_threshold": "0"}
        else:
            ctx = av.CodecContext.create("libvpx", "w")
            ctx.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0",
                           "error-resilient": "1", "auto-alt-ref": "0"}
        ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
        ctx.time_base = VIDEO_CLOCK
        ctx.framerate = Fraction(self.fps)
        ctx.gop_size = self.gop
        ctx.bit_rate = bitrate
        ctx.thread_count = 1  # one encoder per camera; the other core runs detection
        ctx.open()
        return ctx

    def encode(self, frame: av.VideoFrame, arrival: float | None = None) -> list[av.Packet]:
        """Encode one frame (any pixel format; converted to yuv420p). `arrival`: monotonic seconds."""
        arrival = time.monotonic() if arrival is None else arrival
        width, height = frame.width & ~1, frame.height & ~1  # 4:2:0 needs even sizes
        if frame.format.name != "yuv420p" or (width, height) != (frame.width, frame.height):
            frame = frame.reformat(width=width, height=height, format="yuv420p")
        if self._ctx is None or self._size != (width, height):
            # New or resized source: a fresh encoder starts with an IDR carrying the new SPS.
            self._ctx = self._open(width, height)
            self._size = (width, height)
        if self._t0 is None:
            self._t0 = arrival
        pts = max(int((arrival - self._t0) * 90000), self._last_pts + 1)
        self._last_pts = pts
        frame.pts, frame.time_base = pts, VIDEO_CLOCK
        with self._lock:
            force = self._keyframe_wanted and (self._keyframe_joining
                                               or arrival - self._last_forced >= self.min_keyframe_interval_s)
            if force:
                self._keyframe_wanted = self._keyframe_joining = False
                self._last_forced = arrival
        frame.pict_type = PictureType.I if force else PictureType.NONE
        packets = self._ctx.encode(frame)
        self.frames_encoded += 1
        if force:
            self.keyframes_forced += 1
        elif any(p.is_keyframe for p in packets):
            with self._lock:  # a scheduled IDR answers pending requests too
                self._keyframe_wanted = self._keyframe_joining = False
        for packet in packets:
            packet.time_base = VIDEO_CLOCK
        return packets

    def close(self) -> None:
        self._ctx = None


def _default_bitrate(width: int, height: int, fps: int) -> int:
    # ~0.1 bit per pixel per frame: 720p25 ≈ 2.3 Mbit/s, 360p25 ≈ 0.6 Mbit/s; enough for street scenes.
    return max(300_000, int(width * height * fps * 0.1))
