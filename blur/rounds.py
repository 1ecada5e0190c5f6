"""Detection rounds: where the next one looks (a full sweep or only where something moved), and the round
itself (multi-scale search, then a zoom around small faces). Shared by the offline path (a round on the
frame being processed) and the live scheduler (a round on the worker thread)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from blur.detectors.base import Detector, empty_boxes
from blur.motion import MotionFrame, detection_regions
from blur.profiles import AnonymizerConfig
from blur.search import search, search_regions, zoom

Regions = list[tuple[int, int, int, int]]


def detect_round(detector: Detector, rgb: np.ndarray, regions: Regions | None, cfg: AnonymizerConfig,
                 first: bool = True) -> np.ndarray:
    """One detection round: the whole frame (`regions` None) or the given regions (none: nothing to do).
    `first`: the first round of an engine (a still image has only that one) zooms with the full budget;
    later sweeps with a smaller one, since tracks keep what earlier rounds found."""
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


class RoundPlanner:
    """Decides where each round looks. Live: sweeps by the clock. Offline: by rounds, so a file gives the
    same result at any speed."""

    def __init__(self, config: AnonymizerConfig, live: bool) -> None:
        self.config = config
        self.live = live
        self.rounds = 0                # rounds planned so far
        self._last_full = -1e9         # when the newest whole-frame round was captured
        self._last_full_round = 0      # offline: the round number of the newest planned sweep
        self._sweep_s = 0.0            # live: how long the last whole-frame round took

    @property
    def first(self) -> bool:
        """Whether the round just planned is the engine's first."""
        return self.rounds == 1

    def plan(self, now: float, w: int, h: int, motion: MotionFrame | None,
             blobs: Callable[[], np.ndarray]) -> Regions | None:
        """Where to detect: None = whole frame (full sweep), else motion regions (possibly none). `blobs`
        gives this frame's moving blobs in frame pixels (asked for only when the round is not a sweep)."""
        cfg = self.config
        self.rounds += 1
        # Live: sweep as often as `sweep_share` of a core allows (a small frame every second, a large one
        # every few), but at least every full_sweep_s: sweeps find whom motion gating cannot see.
        interval = min(cfg.full_sweep_s, max(1.0, self._sweep_s / cfg.sweep_share))
        due = (now - self._last_full >= interval if self.live
               else self.rounds - self._last_full_round >= cfg.full_sweep_s * cfg.detect_hz)
        if not cfg.motion_gating or motion is None or motion.frames < 10 or due:
            self._last_full_round = self.rounds
            return None
        return detection_regions(blobs(), w, h)

    def swept(self, captured: float, took_s: float | None = None) -> None:
        """A whole-frame round on the frame captured at `captured` succeeded (live: in `took_s`)."""
        self._last_full = captured
        if took_s is not None:
            self._sweep_s = took_s
