"""The anonymization engine: detect + track + mask, failing closed.

One `Anonymizer` per camera. Frames are masked in YUV 4:2:0 (Y, U and V planes inside each box); only the
detector sees RGB. In live mode detection runs on a worker thread (`scheduler.py`) and `process` never waits
for it: boxes from the newest detection are carried forward by optical flow; if detection errors, stalls or
falls behind, frames leave fully masked. This module is the per-frame recipe; `planes.py` handles the
planes, `rounds.py` plans and runs detection rounds, `failsafe.py` names the reasons to fail closed."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import av
import numpy as np

from blur.detectors import Detector, make_detector
from blur.detectors.base import empty_boxes
from blur.failsafe import FailReason, Failure
from blur.geometry import crowd_factor, grow, int_boxes_kept, to_int_boxes, widen
from blur.maskers import row_layout
from blur.motion import MotionFrame, MotionMap, Movers, head_bands, unexplained
from blur.perspective import Perspective
from blur.planes import (
    Box,
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
from blur.rounds import Regions, RoundPlanner, detect_round
from blur.scheduler import LiveScheduler
from blur.search import region_scale
from blur.tracking import Tracker, flow_boxes

__all__ = ["Anonymizer", "FailReason", "FrameReport", "Look", "MaskPlan", "Polygon", "Prepared"]


@dataclass
class FrameReport:
    boxes: list[tuple[int, int, int, int]]  # regions masked this frame (x1,y1,x2,y2), excluding static masks
    failsafe: bool                          # True when the whole frame was masked (fail closed)
    reason: str | None                      # why failsafe, as text (`FailReason`, with the error's detail)
    detected: bool                          # a fresh detection result was applied this frame
    timings_ms: dict[str, float] = field(default_factory=dict)
    cause: FailReason | None = None         # why failsafe, without the detail
    faces: list[tuple[int, int, int, int]] = field(default_factory=list)  # the face masks among `boxes`


@dataclass
class MaskPlan:
    """What the analysis of one frame decided should be masked (frame pixels)."""
    failure: Failure | None                # mask the whole frame (fail closed), nothing else matters
    detected: bool
    mode: str
    timings_ms: dict[str, float]
    faces: list[Box] = field(default_factory=list)
    face_shape: str = "box"
    face_cells: list[int] = field(default_factory=list)  # mosaic cells across each face box
    bands: list[Box] = field(default_factory=list)
    movers: Movers | None = None
    layout: list[tuple[int, int, int]] | None = None
    colour: bool = False


@dataclass
class Look:
    """What the first stage saw of a frame: its small copies, its motion and (offline) its detection round."""
    index: int                             # the frame's number in this engine
    small: np.ndarray                      # grey copy for flow
    scale: float                           # small pixels per frame pixel
    motion: MotionFrame | None
    timings_ms: dict[str, float]
    round: tuple[np.ndarray, Regions | None] | None = None  # offline: a round's detections, where it looked
    failure: Failure | None = None         # offline: this frame fails closed (the detector's error, budget)


@dataclass
class Prepared:
    """A frame on its way through the engine's stages (`look`, `plan`, `finish`)."""
    frame: av.VideoFrame                   # the engine's own copy (yuv420p); the caller's is never written
    planes: list[np.ndarray]
    look: Look
    plan: MaskPlan | None = None


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
            detector = make_detector(cfg.detector, device=cfg.device, threshold=cfg.threshold,
                                     threads=cfg.detector_threads)
        self._detector = detector
        self._tracker = Tracker(cfg.track_persist, cfg.track_pad / 3, cfg.track_shrink)
        self._motion = MotionMap() if (cfg.motion_gating or cfg.motion_mask or cfg.guard_motion) else None
        self._planner = RoundPlanner(cfg, live)
        self._prev_small: np.ndarray | None = None
        self._looked = -1  # the last frame stage 1 took (`_look`); stage 2 reads it from each Look
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
        return self.finish(self.plan(self.look(frame)))

    # The same work in three stages, for a file: each stage takes the frames in order on one thread, and
    # each may run on another thread than the others, ahead of them; the result is what `process` gives.
    def look(self, frame: av.VideoFrame) -> Prepared:
        """Stage 1: copy the frame, update the background model and, offline, run the frame's detection
        round (where it looks depends only on the frames so far, never on the tracks)."""
        out, planes = copy_to_yuv420p(frame)
        out.pts = frame.pts
        if frame.time_base is not None:
            out.time_base = frame.time_base
        return Prepared(out, planes, self._look(planes))

    def plan(self, prepared: Prepared) -> Prepared:
        """Stage 2: tracking, live detection, the fail-closed checks, and what to mask."""
        prepared.plan = self._plan(prepared.planes, prepared.look)
        return prepared

    def finish(self, prepared: Prepared) -> tuple[av.VideoFrame, FrameReport]:
        """Stage 3: mask the frame as planned; returns it and its report."""
        if prepared.plan is None:
            raise ValueError("finish() needs a frame that went through plan() first")
        return prepared.frame, self._apply(prepared.planes, prepared.plan)

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
        return self._apply(planes, self._plan(planes, self._look(planes)))

    def _look(self, planes: list[np.ndarray]) -> Look:
        """Stage 1 (see `look`). Reads the planes, never writes them."""
        cfg = self.config
        t0 = time.perf_counter()
        self._looked += 1
        frame = self._looked
        small, sscale = small_grey(planes)
        motion = None
        if self._motion is not None:
            # At the flow resolution: at half of it, a 15 px face is 3 motion pixels and vanishes.
            motion = self._motion.update(small_colour(planes, small))
        look = Look(frame, small, sscale, motion, {"motion": (time.perf_counter() - t0) * 1000})
        t1 = time.perf_counter()
        offline = self._detector is not None and self._live is None
        # A detection frame, or every frame while the detector is failing.
        if offline and (frame % max(1, cfg.detect_every) == 0 or self._failure is not None):
            self._offline_round(planes, look)
            if cfg.frame_budget_ms is not None and (time.perf_counter() - t1) * 1000 > cfg.frame_budget_ms:
                look.failure = look.failure or Failure(FailReason.BEHIND_BUDGET)
        look.timings_ms["detect"] = (time.perf_counter() - t1) * 1000
        return look

    def _plan(self, planes: list[np.ndarray], look: Look) -> MaskPlan:
        """Stage 2 (see `plan`). Reads the planes, never writes them."""
        cfg = self.config
        t0 = time.perf_counter()
        now = time.monotonic()
        frame = look.index
        h, w = planes[0].shape[:2]
        if self._perspective is None or self._perspective.height != h:
            self._restart_perspective(h)
        timings = look.timings_ms
        small, sscale, motion = look.small, look.scale, look.motion
        if cfg.track:
            self._tracker.step(self._prev_small, small, sscale, frame)
        else:  # boxes hold only on the frame they were detected on
            self._tracker.clear()
        timings["track"] = (time.perf_counter() - t0) * 1000

        t2 = time.perf_counter()
        failure: Failure | None = look.failure
        detected = False
        if self._live is not None:
            detected, failure = self._live_step(planes, look, now, w, h)
        elif look.round is not None:
            dets, regions = look.round
            self._tracker.update(dets, frame, regions, self._smallest(regions), self._moving(look))
            self._learn(dets)
            detected = True
        if motion is not None and motion.scene_changed:
            # The camera turned: the faces it learnt belong to the view it left. The cells start at the
            # fallback again, as on a new camera, and grow finer only as the new view's faces are found.
            self._restart_perspective(h)
        if failure is None and motion is not None and self._guarding():
            if motion.scene_changed:
                # No background to tell what moves (the camera turned, the light changed): nothing but the
                # face masks would vouch for the frame.
                failure = Failure(FailReason.SCENE_CHANGED)
            elif 1 <= frame < cfg.motion_warmup:
                failure = Failure(FailReason.MOTION_WARMING_UP)
        timings["detect"] = timings.get("detect", 0.0) + (time.perf_counter() - t2) * 1000
        self._prev_small = small

        t3 = time.perf_counter()
        plan = MaskPlan(failure=failure, detected=detected, mode=self.mode, timings_ms=timings)
        if failure is None:
            faces, cells, bands, movers = self._mask_boxes(frame, look, w, h)
            # Live face boxes are carried between lagging detections: an ellipse would leave a face's corner
            # out whenever a box runs slightly off, so live masks fill their whole box.
            plan.faces, kept = int_boxes_kept(faces, w, h)
            plan.face_cells = cells[kept].tolist()
            plan.face_shape = cfg.live_shape if self.live else cfg.shape
            plan.bands = to_int_boxes(bands, w, h)
            if movers is not None:
                plan.movers = movers
                plan.layout = self._row_layout(frame, h)
                plan.colour = cfg.silhouette_colour
        timings["plan"] = (time.perf_counter() - t3) * 1000
        timings["total"] = sum(timings[k] for k in ("motion", "track", "detect", "plan"))
        return plan

    def _apply(self, planes: list[np.ndarray], plan: MaskPlan) -> FrameReport:
        """Mask the planes as `plan` says, static masks last. Depends on nothing but its arguments and the
        static masks, so it may run on another thread than the analysis of the frames after it."""
        t3 = time.perf_counter()
        boxes: list[Box] = []
        if plan.failure is not None:
            mask_whole(planes)
        else:
            # Silhouettes first: in a crowd a face's mask lies inside a moving region whose filled
            # silhouette covers it too, and the face's own, coarser mosaic must be what shows.
            movers = [] if plan.movers is None else mask_movers(planes, plan.movers, plan.mode, plan.layout,
                                                                 plan.colour)
            mask_boxes(planes, plan.faces, plan.mode, plan.face_shape, plan.face_cells)
            mask_boxes(planes, plan.bands, plan.mode, "box")
            boxes = plan.faces + plan.bands + movers
        self._static.apply(planes)
        timings = plan.timings_ms
        timings["mask"] = (time.perf_counter() - t3) * 1000 + timings.pop("plan", 0.0)
        timings["total"] = timings.get("total", 0.0) + (time.perf_counter() - t3) * 1000
        failure = plan.failure
        return FrameReport(boxes=boxes, failsafe=failure is not None,
                           reason=failure.text if failure else None, detected=plan.detected,
                           timings_ms=timings, cause=failure.cause if failure else None,
                           faces=plan.faces if failure is None else [])

    def _offline_round(self, planes: list[np.ndarray], look: Look) -> None:
        """This frame's detection round (stage 1, offline). A detector error fails frames closed until a
        round succeeds again, not just this one: while it fails, every frame gets a round."""
        h, w = planes[0].shape[:2]
        regions = self._planner.plan(time.monotonic(), w, h, look.motion, lambda: self._blobs(look))
        try:
            dets = detect_round(self._detector, rgb_of(planes), regions, self.config,
                                first=self._planner.first)
        except Exception as exc:
            self._failure = look.failure = Failure.detector_error(exc)
            return
        self._failure = None
        look.round = (dets, regions)
        if regions is None:
            self._planner.swept(time.monotonic())

    def _smallest(self, regions: Regions | None) -> float:
        """The smallest face (frame pixels) a round over `regions` can find: region rounds run scaled down
        to fit their pixel budget, and on a crowd that is well below 1x."""
        if not regions:
            return 0.0
        cfg = self.config
        return cfg.min_face_px / region_scale(regions, cfg.motion_scale, cfg.motion_max_pixels)

    @staticmethod
    def _moving(look: Look) -> Callable[[np.ndarray], np.ndarray]:
        """Which of some boxes (frame pixels) lie mostly in this frame's moving pixels."""
        def moving(boxes: np.ndarray) -> np.ndarray:
            fg = look.motion.foreground if look.motion is not None else None
            if fg is None:
                return np.zeros(len(boxes), bool)
            h, w = fg.shape
            if len(boxes) == 0:
                return np.zeros(0, bool)
            # Moving pixels per box from one integral image: a crowd has hundreds of boxes a round.
            sums = np.zeros((h + 1, w + 1), np.int64)
            sums[1:, 1:] = (fg > 0).cumsum(0).cumsum(1)
            b = np.round(boxes[:, :4] * look.scale).astype(np.int64)
            x1, y1 = b[:, 0].clip(0, w), b[:, 1].clip(0, h)
            x2 = np.minimum(w, np.maximum(b[:, 2], b[:, 0] + 1)).clip(x1, None)
            y2 = np.minimum(h, np.maximum(b[:, 3], b[:, 1] + 1)).clip(y1, None)
            count = sums[y2, x2] - sums[y1, x2] - sums[y2, x1] + sums[y1, x1]
            ok = (x1 < x2) & (y1 < y2)
            return ok & (count > 0.5 * (x2 - x1) * (y2 - y1))
        return moving

    def _live_step(self, planes: list[np.ndarray], look: Look, now: float, w: int, h: int,
                   ) -> tuple[bool, Failure | None]:
        """Apply the newest finished round (carried to this frame by one flow step), submit the next one
        when it is due, and ask the scheduler whether this frame fails closed."""
        live = self._live
        assert live is not None
        frame, small, sscale = look.index, look.small, look.scale
        detected = False
        result = live.collect(now)
        if result is not None and result.failure is None:
            dets = result.dets
            if len(dets) and self.config.track and result.job.small.shape == small.shape:
                moved = flow_boxes(result.job.small, small, dets[:, :4], sscale, far=True)
                dets = np.concatenate([moved, dets[:, 4:5]], axis=1)
            self._tracker.update(dets, frame, result.job.regions, self._smallest(result.job.regions),
                                 self._moving(look))
            self._learn(dets)
            if result.job.regions is None:
                self._planner.swept(result.job.captured, result.ms / 1000)
            detected = True
        if live.round_due(now):
            regions = self._planner.plan(now, w, h, look.motion, lambda: self._blobs(look))
            if regions is not None and not regions and live.has_fresh:
                # Nothing moved: nothing new to look at; the tracks stand and the result is fresh.
                self._tracker.update(empty_boxes(), frame, [])
                live.nothing_moved(now)
            else:
                live.submit(now, frame, planes, small, regions, first=self._planner.first)
        return detected, live.failure(now)

    def _restart_perspective(self, height: int) -> None:
        """A new perspective model (a new camera, picture size or view), and a mosaic cut afresh from it."""
        self._perspective = Perspective(height, hold=self.config.perspective_hold)
        self._layout = None

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
            self._perspective.step()
            cells = self._perspective.cell(np.arange(height))
            if self.config.silhouette_max_cell > 0:
                cells = np.minimum(cells, max(4, round(self.config.silhouette_max_cell * height)))
            self._layout = row_layout(cells)
            self._layout_frame = frame
        return self._layout

    @staticmethod
    def _blobs(look: Look) -> np.ndarray:
        """The frame's moving blobs, in frame pixels."""
        if look.motion is None:
            return np.zeros((0, 4), np.float32)
        return look.motion.blobs() / look.scale

    def _mask_boxes(self, frame: int, look: Look, width: int, height: int,
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, Movers | None]:
        """This frame's face masks (and their mosaics' cells across), head bands (motion-mask mode) and
        unaccounted moving regions."""
        cfg = self.config
        boxes, pad = self._tracker.boxes(frame)
        if cfg.face_min_aspect > 0 and len(boxes):
            # A box much narrower than a face is part of one (turned away, half hidden): the detector found
            # the part that shows, and the mask must reach the rest, on whichever side it is.
            boxes = widen(boxes, cfg.face_min_aspect)
        faces = np.zeros((0, 4), np.float32)
        cells = np.zeros(0, np.int64)
        if len(boxes):
            crowd = crowd_factor(boxes, cfg.crowd_neighbors, cfg.crowd_radius)
            large = boxes[:, 3] - boxes[:, 1] >= cfg.large_px
            cells = np.where(large, cfg.face_cells_large, cfg.face_cells)
            margin = np.where(large, cfg.margin_large, cfg.margin)
            fx = margin * pad * np.where(crowd, cfg.crowd_grow[0], 1.0)
            fy = margin * pad * cfg.vertical * np.where(crowd, cfg.crowd_grow[1], 1.0)
            faces = grow(boxes, fx, fy)
            # A face whose mask the picture's edge cuts was found by the part of it that shows: the box may
            # be smaller than the face, and the mask is cut shorter still, so it gets the coarser cells.
            cut = (faces[:, 0] < 0) | (faces[:, 1] < 0) | (faces[:, 2] > width) | (faces[:, 3] > height)
            cells = np.where(cut, cfg.face_cells_large, cells)
            if self.live and cfg.lead_frames > 0:
                # Detection lags the video and flow lags a face that turns: a moving face's mask reaches
                # ahead of (and behind) it by the distance it covers in `lead_frames`.
                lead = self._tracker.speeds() * cfg.lead_frames
                faces[:, 0:2] -= lead
                faces[:, 2:4] += lead
        bands = np.zeros((0, 4), np.float32)
        movers = None
        motion = look.motion
        if cfg.motion_mask and motion is not None:
            bands = head_bands(self._blobs(look))
        elif self._guarding() and motion is not None and motion.foreground is not None:
            # Between detection rounds only the face masks are vouched for: whatever else moves is masked.
            # Motion under an elliptic face mask is accounted for only inside the ellipse, not its box.
            inner = grow(faces, 0.7) if not self.live and cfg.shape == "ellipse" else faces
            movers = unexplained(motion.foreground, inner, look.scale)
        return faces, cells, bands, movers

    def _guarding(self) -> bool:
        """Whether moving regions that no face mask accounts for are masked (video, from its second frame)."""
        return self.config.guard_motion and not self.config.motion_mask
