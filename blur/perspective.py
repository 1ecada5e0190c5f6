"""A camera's perspective: how tall a face is at each image row, learnt from that camera's own detections.

A fixed camera looks down on a ground plane, so a person's size in the picture grows roughly linearly with
the image row of their feet (and their face). The engine uses this to size the mosaic of moving regions to
the people in them rather than to the region they merged into: a crowd leaves as a crowd of person-sized
blocks, and a face that no detection round has found yet is still cut into at most `FACE_CELLS` cells
across its height, as a detected one is."""

from __future__ import annotations

import numpy as np

FACE_CELLS = 6  # the identification rule: a face crossed by at most this many mosaic cells is unreadable


class Perspective:
    """Face height (pixels) as a function of image row, fitted to the faces detections confirmed.

    The fit is a line through an upper quantile of face heights per band of rows (people nearer than
    average, children, someone on a ladder all fall below it), padded by `safety`, and never below what
    was seen at that row. With too few observations it answers `fallback` for every row: a cell size that
    is safe for any face up to `fallback` pixels high.

    The mosaic's cells follow the fit through `step()`: slow to trust smaller cells, quick to coarsen.
    The fit remembers only the last `keep` faces (on a crowd, under a second of detections), and the
    detector never teaches it a face it cannot find; so the heights the cells are cut for rise to the fit
    at once but fall toward it by at most `1 - hold` a step (about a second), from `fallback` at the
    start. A face larger than the crowd around it, seen a few seconds ago or not yet, meets cells cut for
    the larger faces of the last few seconds, not for the crowd's smallest."""

    def __init__(self, height: int, *, bands: int = 8, keep: int = 600, min_faces: int = 12,
                 quantile: float = 0.9, safety: float = 1.3, fallback: float | None = None,
                 hold: float = 0.8) -> None:
        self.height = height
        self.bands = bands
        self.quantile = quantile
        self.safety = safety
        self.min_faces = min_faces
        # Before anything is learnt: faces up to a sixth of the picture's height (a close-up at the
        # bottom of a wide CCTV view) are still cut into at most FACE_CELLS cells.
        self.fallback = fallback if fallback is not None else height / 6
        self._rows = np.zeros(keep, np.float32)
        self._heights = np.zeros(keep, np.float32)
        self._n = 0
        self._next = 0
        self._fit: np.ndarray | None = None  # face height per band, or None: fallback
        self._dirty = False
        self.hold = hold
        self._held: np.ndarray | None = None  # the heights the mosaic is cut for, per band (after step())

    def observe(self, boxes: np.ndarray) -> None:
        """Record faces (N, >=4 float boxes in frame pixels) that detection confirmed."""
        if len(boxes) == 0:
            return
        b = boxes[:, :4].astype(np.float32)
        h = b[:, 3] - b[:, 1]
        keep = h >= 4
        rows, heights = ((b[:, 1] + b[:, 3]) / 2)[keep], h[keep]
        cap = len(self._rows)
        for r, hh in zip(rows[-cap:], heights[-cap:], strict=True):
            self._rows[self._next] = r
            self._heights[self._next] = hh
            self._next = (self._next + 1) % cap
            self._n = min(cap, self._n + 1)
        self._dirty = True

    @property
    def learnt(self) -> bool:
        self._refit()
        return self._fit is not None

    def face_height(self, rows: np.ndarray) -> np.ndarray:
        """Expected (upper) face height at each of `rows`."""
        self._refit()
        rows = np.asarray(rows, np.float32)
        if self._fit is None:
            return np.full(rows.shape, self.fallback, np.float32)
        return self._by_row(rows, self._fit)

    def step(self) -> None:
        """Move the mosaic's heights one step (a re-cut of the mosaic, about a second of video) toward
        the fit: up to it at once, down by at most `1 - hold` of their value."""
        self._refit()
        fallback = np.full(self.bands, self.fallback, np.float32)
        fit = self._fit if self._fit is not None else fallback
        held = self._held if self._held is not None else fallback
        self._held = np.maximum(fit, held * self.hold).astype(np.float32)

    def mosaic_height(self, rows: np.ndarray) -> np.ndarray:
        """The face height the mosaic is cut for at each of `rows`: the fit as `step()` has followed it
        (the fit itself before the first step)."""
        if self._held is None:
            return self.face_height(rows)
        return self._by_row(np.asarray(rows, np.float32), self._held)

    def _by_row(self, rows: np.ndarray, per_band: np.ndarray) -> np.ndarray:
        """Per-band heights interpolated between the bands' centres."""
        centres = (np.arange(self.bands, dtype=np.float32) + 0.5) * self.height / self.bands
        return np.interp(rows, centres, per_band).astype(np.float32)

    def cell(self, rows: np.ndarray, min_cell: int = 4) -> np.ndarray:
        """Mosaic cell size (pixels) at each of `rows`: at most FACE_CELLS cells across a face there."""
        return np.maximum(min_cell, np.ceil(self.mosaic_height(rows) / FACE_CELLS)).astype(np.int32)

    def _refit(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        if self._n < self.min_faces:
            self._fit = None
            return
        rows, heights = self._rows[: self._n], self._heights[: self._n]
        band = np.clip((rows * self.bands / self.height).astype(np.int32), 0, self.bands - 1)
        centres, tops, weights = [], [], []
        seen = np.zeros(self.bands, np.float32)  # largest face seen per band: the fit never goes below it
        for k in range(self.bands):
            hk = heights[band == k]
            if len(hk):
                centres.append((k + 0.5) * self.height / self.bands)
                tops.append(float(np.quantile(hk, self.quantile)))
                weights.append(np.sqrt(len(hk)))
                seen[k] = float(hk.max())
        if len(centres) >= 2:
            slope, offset = np.polyfit(centres, tops, 1, w=weights)
            slope = max(0.0, float(slope))  # faces do not shrink towards the camera
            if slope == 0.0:
                offset = float(np.average(tops, weights=weights))
        else:
            slope, offset = 0.0, tops[0]
        grid = (np.arange(self.bands, dtype=np.float32) + 0.5) * self.height / self.bands
        fit = (slope * grid + offset) * self.safety
        # Nothing below the smallest detected faces' scale; nothing below what a band actually showed.
        floor = float(np.quantile(heights, 0.1))
        self._fit = np.maximum(np.maximum(fit, floor), seen).astype(np.float32)
