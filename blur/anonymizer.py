"""The anonymization engine: detect + track + mask, failing closed.

One `Anonymizer` per camera. Frames are masked in YUV 4:2:0 (Y, U and V planes inside each box); only the
detector sees RGB. In live mode detection runs on a worker thread and `process` never waits for it: boxes
from the newest detection are carried forward by optical flow; if detection errors, stalls or falls
behind, frames leave fully masked."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import av
import cv2
import numpy as np

from blur import maskers
from blur.detectors import Detector, make_detector
from blur.detectors.base import empty_boxes
from blur.geometry import crowd_factor, grow, to_int_boxes
from blur.motion import MotionMap, Movers, detection_regions, head_bands, unexplained
from blur.profiles import AnonymizerConfig, get_profile
from blur.search import search, search_regions, zoom
from blur.tracking import Tracker, flow_boxes

Polygon = Sequence[tuple[float, float]]
_SMALL_WIDTH = 480  # grey copy used for motion and flow


@dataclass
class FrameReport:
    boxes: list[tuple[int, int, int, int]]  # regions masked this frame (x1,y1,x2,y2), excluding static masks
    failsafe: bool                          # True when the whole frame was masked (fail closed)
    reason: str | None                      # why failsafe
    detected: bool                          # a fresh detection result was applied this frame
    timings_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class _Job:
    frame: int
    captured: float
    planes: list[np.ndarray]       # [Y, U, V] copies, or [BGR]
    small: np.ndarray              # grey copy at the detection frame, for carrying results forward
    regions: list[tuple[int, int, int, int]] | None  # None: whole frame
    generation: int
    first: bool = False            # the engine's first round


@dataclass
class _Result:
    job: _Job
    dets: np.ndarray
    error: str | None
    ms: float


def _plane_views(frame: av.VideoFrame) -> list[np.ndarray]:
    return [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width] for p in frame.planes]


def _rgb_of(planes: list[np.ndarray]) -> np.ndarray:
    if len(planes) == 1:
        return cv2.cvtColor(planes[0], cv2.COLOR_BGR2RGB)
    y, u, v = planes
    size = (y.shape[1], y.shape[0])
    yuv = cv2.merge([y, cv2.resize(u, size, interpolation=cv2.INTER_LINEAR),
                     cv2.resize(v, size, interpolation=cv2.INTER_LINEAR)])
    return cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB)


def _chroma_boxes(boxes: list[tuple[int, int, int, int]], cw: int, ch: int,
                  ) -> list[tuple[int, int, int, int]]:
    """Boxes of the full-size plane on the half-size U and V planes, rounded outwards."""
    return [(x1 // 2, y1 // 2, min(cw, (x2 + 1) // 2), min(ch, (y2 + 1) // 2)) for x1, y1, x2, y2 in boxes]


class Anonymizer:
    def __init__(self, config: AnonymizerConfig | None = None, *, profile: str = "realtime",
                 mode: str = "pixelate", masks: Sequence[Polygon] = (), detector: Detector | None = None,
                 live: bool = False) -> None:
        self.config = config if config is not None else get_profile(profile)
        if mode not in maskers.MODES:
            raise ValueError(f"unknown mask mode {mode!r}: choose one of {', '.join(maskers.MODES)}")
        for shape in (self.config.shape, self.config.live_shape):
            if shape not in maskers.SHAPES:
                raise ValueError(f"unknown mask shape {shape!r}: choose one of {', '.join(maskers.SHAPES)}")
        for poly in masks:
            if len(poly) < 3 or any(not (0.0 <= c <= 1.0) for pt in poly for c in pt):
                raise ValueError("a static mask needs at least 3 points with coordinates in [0, 1]")
        self.mode = mode
        self.masks = [np.asarray(p, dtype=np.float64) for p in masks]
        self.live = live
        if detector is None and self.config.detector != "none":
            detector = make_detector(self.config.detector, device=self.config.device,
                                     threshold=self.config.threshold)
        self._detector = detector
        self._lock = threading.Lock()
        self._tracker = Tracker(self.config.track_persist, self.config.track_pad / 3)
        cfg = self.config
        self._motion = MotionMap() if (cfg.motion_gating or cfg.motion_mask or cfg.guard_motion) else None
        self._prev_small: np.ndarray | None = None
        self._fg_scale = 1.0  # motion mask pixels per frame pixel
        self._frame = -1
        self._static_cache: dict[tuple[int, int], list[np.ndarray]] = {}
        self._last_full = -1e9
        self._sweep_s = 0.0  # live: how long the last whole-frame round took
        self._rounds = 0
        self._last_full_round = 0
        # Live-mode state, guarded by self._lock.
        self._generation = 0
        self._job: _Job | None = None
        self._job_started = 0.0
        self._result: _Result | None = None
        self._last_submit = -1e9
        self._last_fresh: float | None = None   # capture time of the newest applied detection
        self._error: str | None = None
        self._closed = False
        self._wake = threading.Condition(self._lock)
        self._worker: threading.Thread | None = None
        if live:
            self._start_worker()

    # ------------------------------------------------------------------ public
    def process(self, frame: av.VideoFrame) -> tuple[av.VideoFrame, FrameReport]:
        """Anonymize one decoded frame (any pixel format); returns a new yuv420p frame."""
        src = frame if frame.format.name == "yuv420p" else frame.reformat(format="yuv420p")
        out = av.VideoFrame(src.width, src.height, "yuv420p")
        planes = _plane_views(out)
        for dst, s in zip(planes, _plane_views(src), strict=True):
            dst[...] = s
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
        with self._lock:
            self._detector = detector
            self._error = None
            if self.live and self._job is not None:
                self._generation += 1
                self._job = None
                self._start_worker_locked()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._generation += 1
            self._wake.notify_all()
            worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=2.0)  # a stalled detector may never return; it is a daemon thread
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
        timings: dict[str, float] = {}
        small, sscale = self._small_grey(planes)
        if self._motion is not None:
            # At the flow resolution: at half of it, a 15 px face is 3 motion pixels and vanishes.
            self._motion.update(self._small_colour(planes, small))
            self._fg_scale = sscale
        timings["motion"] = (time.perf_counter() - t0) * 1000

        t1 = time.perf_counter()
        if cfg.track:
            self._tracker.step(self._prev_small, small, sscale, frame)
        else:  # boxes hold only on the frame they were detected on
            self._tracker.clear()
        timings["track"] = (time.perf_counter() - t1) * 1000

        t2 = time.perf_counter()
        failsafe: str | None = None
        detected = False
        if self._detector is None:
            pass
        elif self.live:
            detected, failsafe = self._live_step(planes, small, sscale, now, frame, w, h)
        elif frame % max(1, cfg.detect_every) != 0 and self._error is None:
            pass
        else:  # a detection frame, or every frame while the detector is failing
            regions = self._plan(now, w, h)
            try:
                dets = self._run(self._detector, _rgb_of(planes), regions, first=self._rounds == 1)
            except Exception as exc:
                # Stays failed closed until a detection succeeds again, not just for this frame.
                self._error = f"detector error: {type(exc).__name__}: {exc}"[:200]
            else:
                self._error = None
                self._tracker.update(dets, frame, regions)
                detected = True
                if regions is None:
                    self._last_full = now
            failsafe = self._error
            if cfg.frame_budget_ms is not None and (time.perf_counter() - t2) * 1000 > cfg.frame_budget_ms:
                failsafe = failsafe or "behind budget"
        if failsafe is None and self._motion is not None and self._motion.scene_changed and self._guarding():
            # No background to tell what moves (the camera turned, the light changed): nothing but the face
            # masks would vouch for the frame.
            failsafe = "scene changed"
        timings["detect"] = (time.perf_counter() - t2) * 1000

        t3 = time.perf_counter()
        boxes: list[tuple[int, int, int, int]] = []
        if failsafe is not None:
            for p in planes:
                maskers.mask_whole(p)
        else:
            faces, bands, movers = self._mask_boxes(frame)
            # Live face boxes are carried between lagging detections: an ellipse would leave a face's corner
            # out whenever a box runs slightly off, so live masks fill their whole box.
            boxes = to_int_boxes(faces, w, h)
            self._apply(planes, boxes, cfg.live_shape if self.live else cfg.shape)
            band_boxes = to_int_boxes(bands, w, h)
            self._apply(planes, band_boxes, "box")
            boxes += band_boxes
            if movers is not None:
                boxes += self._apply_movers(planes, movers)
        self._apply_static(planes)
        timings["mask"] = (time.perf_counter() - t3) * 1000
        self._prev_small = small
        timings["total"] = (time.perf_counter() - t0) * 1000
        return FrameReport(boxes=boxes, failsafe=failsafe is not None, reason=failsafe, detected=detected,
                           timings_ms=timings)

    def _small_grey(self, planes: list[np.ndarray]) -> tuple[np.ndarray, float]:
        base = planes[0] if len(planes) == 3 else cv2.cvtColor(planes[0], cv2.COLOR_BGR2GRAY)
        h, w = base.shape[:2]
        if w <= _SMALL_WIDTH:
            return base.copy(), 1.0  # a copy: the Y plane is masked in place later
        s = _SMALL_WIDTH / w
        # Linear, not area: area resampling at a non-integer ratio costs ~40x more on a 720p plane.
        return cv2.resize(base, (_SMALL_WIDTH, max(1, round(h * s))), interpolation=cv2.INTER_LINEAR), s

    def _blobs(self) -> np.ndarray:
        """This frame's moving blobs, in frame pixels."""
        if self._motion is None:
            return np.zeros((0, 4), np.float32)
        return self._motion.blobs() / self._fg_scale

    @staticmethod
    def _small_colour(planes: list[np.ndarray], small: np.ndarray) -> np.ndarray:
        """Y, U, V (or B, G, R) at the size of `small`: motion on brightness alone misses a face that is
        as bright as what it passes over (a dark head on dark grass)."""
        size = (small.shape[1], small.shape[0])
        if len(planes) == 1:
            return cv2.resize(planes[0], size, interpolation=cv2.INTER_LINEAR)
        return cv2.merge([small] + [cv2.resize(p, size, interpolation=cv2.INTER_LINEAR) for p in planes[1:]])

    def _plan(self, now: float, w: int, h: int) -> list[tuple[int, int, int, int]] | None:
        """Where to detect: None = whole frame (full sweep), else motion regions (possibly none).
        Live: sweeps by the clock. Offline: by rounds, so a file gives the same result at any speed."""
        cfg = self.config
        self._rounds += 1
        # Live: sweep as often as `sweep_share` of a core allows (a small frame every second, a large one
        # every few), but at least every full_sweep_s: sweeps find whom motion gating cannot see.
        interval = min(cfg.full_sweep_s, max(1.0, self._sweep_s / cfg.sweep_share))
        due = (now - self._last_full >= interval if self.live
               else self._rounds - self._last_full_round >= cfg.full_sweep_s * cfg.detect_hz)
        if not cfg.motion_gating or self._motion is None or self._motion.frames < 10 or due:
            self._last_full_round = self._rounds
            return None
        return detection_regions(self._blobs(), w, h)

    def _run(self, detector: Detector, rgb: np.ndarray, regions: list[tuple[int, int, int, int]] | None,
             first: bool = True) -> np.ndarray:
        """One detection round. `first`: the first round of this engine (a still image has only that one)
        zooms with the full budget; later sweeps with a smaller one, since tracks keep what earlier
        rounds found."""
        cfg = self.config
        if regions is None:
            found = search(detector, rgb, cfg.scales, cfg.max_detect_pixels, cfg.union_merge)
        elif not regions:
            return empty_boxes()
        else:
            found = search_regions(detector, rgb, regions, cfg.motion_scale, cfg.motion_max_pixels)
        # Between sweeps the zoom shares the (small) motion budget, so a round stays short.
        if regions is not None:
            budget = cfg.motion_max_pixels
        else:
            budget = cfg.zoom_max_pixels if first else cfg.zoom_video_max_pixels
        return zoom(detector, rgb, found, cfg.zoom_scale, cfg.zoom_small_px, cfg.zoom_grow, budget,
                    cfg.union_merge)

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

    def _apply_movers(self, planes: list[np.ndarray], movers: Movers) -> list[tuple[int, int, int, int]]:
        """Mask the moving silhouettes; returns their boxes."""
        h, w = planes[0].shape[:2]
        boxes = to_int_boxes(movers.boxes, w, h)
        if not boxes:
            return boxes
        where = cv2.resize(movers.mask, (w, h), interpolation=cv2.INTER_NEAREST)
        if len(planes) == 1:
            maskers.mask_boxes_where(planes[0], boxes, where, self.mode, fill=0)
            return boxes
        y, u, v = planes
        maskers.mask_boxes_where(y, boxes, where, self.mode, fill=16)
        # Silhouettes leave grey: the colour of clothes identifies people too (and it is a third of the
        # cost of a mosaic on every plane).
        ch, cw = u.shape
        cwhere = cv2.resize(movers.mask, (cw, ch), interpolation=cv2.INTER_NEAREST)
        cboxes = _chroma_boxes(boxes, cw, ch)
        maskers.mask_boxes_where(u, cboxes, cwhere, "solid", fill=128)
        maskers.mask_boxes_where(v, cboxes, cwhere, "solid", fill=128)
        return boxes

    def _guarding(self) -> bool:
        """Whether moving regions that no face mask accounts for are masked (video, from its second frame)."""
        return self.config.guard_motion and not self.config.motion_mask

    def _apply(self, planes: list[np.ndarray], boxes: list[tuple[int, int, int, int]], shape: str) -> None:
        if len(planes) == 1:
            maskers.mask_boxes(planes[0], boxes, self.mode, shape, fill=0)
            return
        y, u, v = planes
        maskers.mask_boxes(y, boxes, self.mode, shape, fill=16)
        ch, cw = u.shape
        cboxes = _chroma_boxes(boxes, cw, ch)
        maskers.mask_boxes(u, cboxes, self.mode, shape, fill=128)
        maskers.mask_boxes(v, cboxes, self.mode, shape, fill=128)

    def _apply_static(self, planes: list[np.ndarray]) -> None:
        if not self.masks:
            return
        key = planes[0].shape[:2]
        sel = self._static_cache.get(key)
        if sel is None:
            sel = []
            for p in planes:
                ph, pw = p.shape[:2]
                m = np.zeros((ph, pw), np.uint8)
                pts = [np.round(poly * (pw, ph)).astype(np.int32) for poly in self.masks]
                cv2.fillPoly(m, pts, 1)
                sel.append(m.astype(bool))
            self._static_cache[key] = sel
        fills = [0] if len(planes) == 1 else [16, 128, 128]
        for p, m, f in zip(planes, sel, fills, strict=True):
            maskers.mask_polygons(p, m, self.mode, fill=f)

    # ------------------------------------------------------------------ live mode
    def _live_step(self, planes: list[np.ndarray], small: np.ndarray, sscale: float, now: float, frame: int,
                   w: int, h: int) -> tuple[bool, str | None]:
        cfg = self.config
        detected = False
        with self._lock:
            result, self._result = self._result, None
        if result is not None:
            if result.error is not None:
                self._error = result.error
            else:
                self._error = None
                dets = result.dets
                lag = now - result.job.captured
                if len(dets) and cfg.track and result.job.small.shape == small.shape:
                    moved = flow_boxes(result.job.small, small, dets[:, :4], sscale, far=True)
                    dets = np.concatenate([moved, dets[:, 4:5]], axis=1)
                self._tracker.update(dets, frame, result.job.regions)
                if lag <= cfg.max_carry_s:
                    # Older results still update the tracks, but only a recent one vouches for the frame.
                    self._last_fresh = result.job.captured
                if result.job.regions is None:
                    self._last_full = result.job.captured
                    self._sweep_s = result.ms / 1000
                detected = True
        with self._lock:
            busy = self._job is not None
            started = self._job_started
            if not busy and now - self._last_submit >= 1.0 / max(cfg.detect_hz, 1e-3):
                regions = self._plan(now, w, h)
                if regions is not None and not regions and self._last_fresh is not None:
                    # Nothing moved: nothing new to look at; the tracks stand and the result is fresh.
                    self._tracker.update(empty_boxes(), frame, [])
                    self._last_fresh = now
                    self._last_submit = now
                else:
                    self._job = _Job(frame, now, [p.copy() for p in planes], small, regions, self._generation,
                                     first=self._rounds == 1)
                    self._job_started = now
                    self._last_submit = now
                    self._wake.notify_all()
        if self._error is not None:
            return detected, self._error
        if busy and now - started > cfg.stall_timeout_s:
            return detected, "detector stalled"
        if self._last_fresh is None:
            return detected, "awaiting first detection"
        if now - self._last_fresh > cfg.max_result_age_s:
            return detected, "behind budget"
        return detected, None

    def _start_worker(self) -> None:
        with self._lock:
            self._start_worker_locked()

    def _start_worker_locked(self) -> None:
        gen = self._generation
        self._worker = threading.Thread(target=self._work, args=(gen,), name="blur-detect", daemon=True)
        self._worker.start()

    def _work(self, generation: int) -> None:
        with self._lock:
            detector = self._detector
        if detector is not None:
            # The first inference of a session is several times slower: pay it before frames wait on it.
            # A broken detector reports itself on the first real job.
            with contextlib.suppress(Exception):
                detector.detect(np.zeros((64, 64, 3), np.uint8))
        while True:
            with self._lock:
                while (not self._closed and generation == self._generation
                       and (self._job is None or self._job_taken(generation))):
                    self._wake.wait(0.5)
                if self._closed or generation != self._generation:
                    return
                job = self._job
                detector = self._detector
                self._taken = (generation, job.frame)
            t = time.perf_counter()
            error = None
            dets = empty_boxes()
            try:
                dets = (self._run(detector, _rgb_of(job.planes), job.regions, job.first) if detector
                        else empty_boxes())
            except Exception as exc:
                error = f"detector error: {type(exc).__name__}: {exc}"[:200]
            with self._lock:
                if generation != self._generation:
                    return
                self._result = _Result(job, dets, error, (time.perf_counter() - t) * 1000)
                self._job = None

    _taken: tuple[int, int] | None = None

    def _job_taken(self, generation: int) -> bool:
        return self._job is not None and self._taken == (generation, self._job.frame)
