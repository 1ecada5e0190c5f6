"""The anonymization engine: detect + track + mask, failing closed.

One `Anonymizer` per camera. Frames are masked in YUV 4:2:0 (Y, U and V planes inside each box); only the
detector sees RGB. In live mode detection runs on a worker thread (`scheduler.py`) and `process` never waits
for it: boxes from the newest detection are carried forward by optical flow; if detection errors, stalls or
falls behind, frames leave fully masked. This module is the per-frame recipe; `planes.py` handles the
planes, `rounds.py` plans and runs detection rounds, `failsafe.py` names the reasons to fail closed."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import av
import numpy as np

from blur.detectors import Detector, make_detector
from blur.detectors.base import empty_boxes
from blur.failsafe import FailReason, Failure
from blur.geometry import crowd_factor, grow, to_int_boxes
from blur.maskers import row_layout
from blur.motion import MotionMap, Movers, head_bands, unexplained
from blur.perspective import Perspective
from blur.planes import (
    Polygon,
    StaticMasks,
    copy_to_yuv420p,
    mask_boxes,
    mask_movers,
    mask_whole,
    rgb_of,
    small_colour,
    small_grey,
)
from blur.profiles import AnonymizerConfig, check_options, get_profile
from blur.rounds import RoundPlanner, detect_round
from blur.scheduler import LiveScheduler
from blur.tracking import Tracker, flow_boxes

__all__ = ["Anonymizer", "FailReason", "FrameReport", "Polygon"]


@dataclass
class FrameReport:
    boxes: list[tuple[int, int, int, int]]  # regions masked this frame (x1,y1,x2,y2), excluding static masks
    failsafe: bool                          # True when the whole frame was masked (fail closed)
    reason: str | None                      # why failsafe, as text (`FailReason`, with the error's detail)
    detected: bool                          # a fresh detection result was applied this frame
    timings_ms: dict[str, float] = field(default_factory=dict)
    cause: FailReason | None = None         # why failsafe, without the detail


class Anonymizer:
    def __init__(self, config: AnonymizerConfig | None = None, *, profile: str = "realtime",
                 mode: str = "pixelate", masks: Sequence[Polygon] = (), detector: Detector | None = None,
                 live: bool = False) -> None:
        self._config = cfg = config if config is not None else get_profile(profile)
        check_options(cfg, mode)
        self._static = StaticMasks(masks, mode)
        self.mode = mode
        self.masks = self._static.polygons
        self.live = live
        if detector is None and cfg.detector != "none":
            detector = make_detector(cfg.detector, device=cfg.device, threshold=cfg.threshold)
        self._detector = detector
        self._tracker = Tracker(cfg.track_persist, cfg.track_pad / 3)
        self._motion = MotionMap() if (cfg.motion_gating or cfg.motion_mask or cfg.guard_motion) else None
        self._planner = RoundPlanner(cfg, live)
        self._prev_small: np.ndarray | None = None
        self._fg_scale = 1.0  # motion mask pixels per frame pixel
        self._frame = -1
        self._failure: Failure | None = None  # offline: the detector's error, until a round succeeds
        self._live = LiveScheduler(cfg, detector) if live else None
        self._perspective: Perspective | None = None  # made on the first frame (it needs the height)
        self._layout: list[tuple[int, int, int]] | None = None
        self._layout_frame = -1

    # ------------------------------------------------------------------ public
    @property
    def config(self) -> AnonymizerConfig:
        return self._config

    @config.setter
    def config(self, config: AnonymizerConfig) -> None:
        """A new configuration applies from the next frame on, to the round planner and the live scheduler
        too."""
        self._config = config
        self._planner.config = config
        if self._live is not None:
            self._live.config = config

    def process(self, frame: av.VideoFrame) -> tuple[av.VideoFrame, FrameReport]:
        """Anonymize one decoded frame (any pixel format); returns a new yuv420p frame."""
        out, planes = copy_to_yuv420p(frame)
        report = self._process_planes(planes)
        out.pts = frame.pts
        if frame.time_base is not None:
            out.time_base = frame.time_base
        return out, report

    def process_bgr(self, image: np.ndarray) -> tuple[np.ndarray, FrameReport]:
        """Anonymize one HxWx3 uint8 BGR image; returns a new image."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 BGR image, got {image.shape} {image.dtype}")
        out = image.copy()
        report = self._process_planes([out])
        return out, report

    def replace_detector(self, detector: Detector) -> None:
        """Swap the detector (thread-safe). A worker stuck in the old detector is abandoned."""
        self._detector = detector
        self._failure = None
        if self._live is not None:
            self._live.replace_detector(detector)

    def close(self) -> None:
        if self._live is not None:
            self._live.close()
        close = getattr(self._detector, "close", None)
        if close is not None and not self.live:
            close()

    def __enter__(self) -> Anonymizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ per frame
    def _process_planes(self, planes: list[np.ndarray]) -> FrameReport:
        cfg = self.config
        t0 = time.perf_counter()
        now = time.monotonic()
        self._frame += 1
        frame = self._frame
        h, w = planes[0].shape[:2]
        if self._perspective is None or self._perspective.height != h:
            self._perspective = Perspective(h)
            self._layout = None
        timings: dict[str, float] = {}
        small, sscale = small_grey(planes)
        if self._motion is not None:
            # At the flow resolution: at half of it, a 15 px face is 3 motion pixels and vanishes.
            self._motion.update(small_colour(planes, small))
            self._fg_scale = sscale
        timings["motion"] = (time.perf_counter() - t0) * 1000

        t1 = time.perf_counter()
        if cfg.track:
            self._tracker.step(self._prev_small, small, sscale, frame)
        else:  # boxes hold only on the frame they were detected on
            self._tracker.clear()
        timings["track"] = (time.perf_counter() - t1) * 1000

        t2 = time.perf_counter()
        failure: Failure | None = None
        detected = False
        if self._detector is None:
            pass
        elif self._live is not None:
            detected, failure = self._live_step(planes, small, sscale, now, frame, w, h)
        elif frame % max(1, cfg.detect_every) != 0 and self._failure is None:
            pass
        else:  # a detection frame, or every frame while the detector is failing
            detected, failure = self._offline_step(planes, now, frame, w, h)
            if cfg.frame_budget_ms is not None and (time.perf_counter() - t2) * 1000 > cfg.frame_budget_ms:
                failure = failure or Failure(FailReason.BEHIND_BUDGET)
        if failure is None and self._motion is not None and self._guarding():
            if self._motion.scene_changed:
                # No background to tell what moves (the camera turned, the light changed): nothing but the
                # face masks would vouch for the frame.
                failure = Failure(FailReason.SCENE_CHANGED)
            elif 1 <= frame < cfg.motion_warmup:
                failure = Failure(FailReason.MOTION_WARMING_UP)
        timings["detect"] = (time.perf_counter() - t2) * 1000

        t3 = time.perf_counter()
        boxes: list[tuple[int, int, int, int]] = []
        if failure is not None:
            mask_whole(planes)
        else:
            faces, bands, movers = self._mask_boxes(frame)
            # Live face boxes are carried between lagging detections: an ellipse would leave a face's corner
            # out whenever a box runs slightly off, so live masks fill their whole box.
            boxes = to_int_boxes(faces, w, h)
            mask_boxes(planes, boxes, self.mode, cfg.live_shape if self.live else cfg.shape)
            band_boxes = to_int_boxes(bands, w, h)
            mask_boxes(planes, band_boxes, self.mode, "box")
            boxes += band_boxes
            if movers is not None:
                boxes += mask_movers(planes, movers, self.mode, self._row_layout(frame, h),
                                     cfg.silhouette_colour)
        self._static.apply(planes)
        timings["mask"] = (time.perf_counter() - t3) * 1000
        self._prev_small = small
        timings["total"] = (time.perf_counter() - t0) * 1000
        return FrameReport(boxes=boxes, failsafe=failure is not None,
                           reason=failure.text if failure else None, detected=detected, timings_ms=timings,
                           cause=failure.cause if failure else None)

    def _offline_step(self, planes: list[np.ndarray], now: float, frame: int, w: int, h: int,
                      ) -> tuple[bool, Failure | None]:
        """One detection round on this frame. A detector error fails frames closed until a round succeeds
        again, not just this one."""
        regions = self._planner.plan(now, w, h, self._motion, self._blobs)
        try:
            dets = detect_round(self._detector, rgb_of(planes), regions, self.config,
                                first=self._planner.first)
        except Exception as exc:
            self._failure = Failure.detector_error(exc)
            return False, self._failure
        self._failure = None
        self._tracker.update(dets, frame, regions)
        self._learn(dets)
        if regions is None:
            self._planner.swept(now)
        return True, None

    def _live_step(self, planes: list[np.ndarray], small: np.ndarray, sscale: float, now: float, frame: int,
                   w: int, h: int) -> tuple[bool, Failure | None]:
        """Apply the newest finished round (carried to this frame by one flow step), submit the next one
        when it is due, and ask the scheduler whether this frame fails closed."""
        live = self._live
        assert live is not None
        detected = False
        result = live.collect(now)
        if result is not None and result.failure is None:
            dets = result.dets
            if len(dets) and self.config.track and result.job.small.shape == small.shape:
                moved = flow_boxes(result.job.small, small, dets[:, :4], sscale, far=True)
                dets = np.concatenate([moved, dets[:, 4:5]], axis=1)
            self._tracker.update(dets, frame, result.job.regions)
            self._learn(dets)
            if result.job.regions is None:
                self._planner.swept(result.job.captured, result.ms / 1000)
            detected = True
        if live.round_due(now):
            regions = self._planner.plan(now, w, h, self._motion, self._blobs)
            if regions is not None and not regions and live.has_fresh:
                # Nothing moved: nothing new to look at; the tracks stand and the result is fresh.
                self._tracker.update(empty_boxes(), frame, [])
                live.nothing_moved(now)
            else:
                live.submit(now, frame, planes, small, regions, first=self._planner.first)
        return detected, live.failure(now)

    def _learn(self, dets: np.ndarray) -> None:
        """Confident detections teach the perspective model (face height by row)."""
        if self._perspective is not None and len(dets):
            self._perspective.observe(dets[dets[:, 4] >= self.config.perspective_min_score])

    def _row_layout(self, frame: int, height: int) -> list[tuple[int, int, int]] | None:
        """Rows of silhouette mosaic cells sized to the faces expected there; None: cells sized to each
        piece. Re-cut at most once a second of 25 fps video, so the grid does not flicker."""
        if self.config.silhouette_cells != "perspective" or self._perspective is None:
            return None
        if self._layout is None or frame - self._layout_frame >= 25:
            cells = self._perspective.cell(np.arange(height))
            if self.config.silhouette_max_cell > 0:
                cells = np.minimum(cells, max(4, round(self.config.silhouette_max_cell * height)))
            self._layout = row_layout(cells)
            self._layout_frame = frame
        return self._layout

    def _blobs(self) -> np.ndarray:
        """This frame's moving blobs, in frame pixels."""
        if self._motion is None:
            return np.zeros((0, 4), np.float32)
        return self._motion.blobs() / self._fg_scale

    def _mask_boxes(self, frame: int) -> tuple[np.ndarray, np.ndarray, Movers | None]:
        """This frame's face masks, head bands (motion-mask mode) and unaccounted moving regions."""
        cfg = self.config
        boxes, pad = self._tracker.boxes(frame)
        faces = np.zeros((0, 4), np.float32)
        if len(boxes):
            crowd = crowd_factor(boxes, cfg.crowd_neighbors, cfg.crowd_radius)
            margin = np.where(boxes[:, 3] - boxes[:, 1] >= cfg.large_px, cfg.margin_large, cfg.margin)
            fx = margin * pad * np.where(crowd, cfg.crowd_grow[0], 1.0)
            fy = margin * pad * cfg.vertical * np.where(crowd, cfg.crowd_grow[1], 1.0)
            faces = grow(boxes, fx, fy)
            if self.live and cfg.lead_frames > 0:
                # Detection lags the video and flow lags a face that turns: a moving face's mask reaches
                # ahead of (and behind) it by the distance it covers in `lead_frames`.
                lead = self._tracker.speeds() * cfg.lead_frames
                faces[:, 0:2] -= lead
                faces[:, 2:4] += lead
        bands = np.zeros((0, 4), np.float32)
        movers = None
        if cfg.motion_mask and self._motion is not None:
            bands = head_bands(self._blobs())
        elif self._guarding() and self._motion is not None and self._motion.foreground is not None:
            # Between detection rounds only the face masks are vouched for: whatever else moves is masked.
            # Motion under an elliptic face mask is accounted for only inside the ellipse, not its box.
            inner = grow(faces, 0.7) if not self.live and cfg.shape == "ellipse" else faces
            movers = unexplained(self._motion.foreground, inner, self._fg_scale)
        return faces, bands, movers

    def _guarding(self) -> bool:
        """Whether moving regions that no face mask accounts for are masked (video, from its second frame)."""
        return self.config.guard_motion and not self.config.motion_mask
