"""Prometheus metrics of the data plane, labelled per camera. Registered on prometheus-client's default
registry, which the app exposes at /metrics. Labels carry camera ids only, never source addresses."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

FRAMES_IN = Counter("relay_frames_in", "Frames decoded from the camera", ["camera"])
FRAMES_OUT = Counter("relay_frames_encoded", "Frames encoded (once per rendition, whatever the viewer count)",
                     ["camera", "rendition"])
FRAMES_DROPPED = Counter("relay_frames_dropped", "Frames skipped as the pipeline fell behind (oldest first)",
                         ["camera"])
FAILSAFE_FRAMES = Counter("relay_failsafe_frames", "Frames masked whole because detection failed or lagged",
                          ["camera"])
RECONNECTS = Counter("relay_source_reconnects", "Successful reconnections to the camera", ["camera"])
SOURCE_FAILURES = Counter("relay_source_failures", "Failed opens, stalls, frozen streams, decode errors",
                          ["camera"])
VIEWER_DROPS = Counter("relay_viewer_packets_dropped", "Packets dropped for viewers that could not keep up",
                       ["camera", "rendition"])
KEYFRAME_REQUESTS = Counter("relay_keyframe_requests", "Keyframes asked of the encoder (joins, PLI, FIR)",
                            ["camera", "rendition"])
VIEWERS = Gauge("relay_viewers", "Viewers subscribed now", ["camera", "rendition"])
CAMERA_UP = Gauge("relay_camera_up", "1 while frames arrive from the camera", ["camera"])
