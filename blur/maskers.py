"""Irreversible maskers: they replace the pixels inside a region with something that does not depend on
the fine detail that was there (block means, a strong low-pass, a flat colour).

Every function works in place on one image plane (H x W) or an interleaved image (H x W x C), so the same
code masks BGR images and the Y, U, V planes of a YUV 4:2:0 frame (boxes halved for chroma)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

import cv2
import numpy as np

MODES = ("blur", "pixelate", "solid")
SHAPES = ("ellipse", "box")
Box = tuple[int, int, int, int]


def _blocks(w: int, h: int, blocks_across: int, min_block: int) -> tuple[int, int]:
    # A face is cut into ~blocks_across mosaic cells, never cells smaller than min_block pixels.
    cell = max(min_block, max(w, h) // blocks_across)
    return max(1, round(w / cell)), max(1, round(h / cell))


def pixelated(region: np.ndarray, blocks_across: int = 6, min_block: int = 3) -> np.ndarray:
    h, w = region.shape[:2]
    bw, bh = _blocks(w, h, blocks_across, min_block)
    small = cv2.resize(region, (bw, bh), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def blurred(region: np.ndarray) -> np.ndarray:
    # Decimate first (throws the detail away for good), then smooth what is left so it reads as blur.
    h, w = region.shape[:2]
    bw, bh = _blocks(w, h, 4, 2)
    small = cv2.resize(region, (bw, bh), interpolation=cv2.INTER_AREA)
    up = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    k = max(3, (min(w, h) // 4) | 1)
    return cv2.GaussianBlur(up, (k, k), 0)


def solid(region: np.ndarray, value: float | tuple[float, ...] = 0) -> np.ndarray:
    out = np.empty_like(region)
    out[...] = value
    return out


def _replacement(region: np.ndarray, mode: str, fill: float | tuple[float, ...], cells: int = 6,
                 ) -> np.ndarray:
    if mode == "pixelate":
        return pixelated(region, cells)
    if mode == "blur":
        return blurred(region)
    if mode == "solid":
        return solid(region, fill)
    raise ValueError(f"unknown mask mode {mode!r}: choose one of {', '.join(MODES)}")


@lru_cache(maxsize=2048)
def ellipse_mask(w: int, h: int) -> np.ndarray:
    """The ellipse inscribed in a w x h box, uint8 0/1 for cv2.copyTo (cached: crowds repeat box sizes;
    callers only read it)."""
    m = np.zeros((h, w), dtype=np.uint8)
    cv2.ellipse(m, (w // 2, h // 2), (max(1, (w + 1) // 2), max(1, (h + 1) // 2)), 0, 0, 360, 1, -1)
    return m


@lru_cache(maxsize=2048)
def _ellipse_where(w: int, h: int) -> np.ndarray:
    """`ellipse_mask` as booleans, for numpy's masked assignment (cheaper than drawing it again)."""
    return ellipse_mask(w, h).astype(bool)


def mask_boxes(img: np.ndarray, boxes: Sequence[Box], mode: str = "pixelate", shape: str = "ellipse",
               fill: float | tuple[float, ...] = 0, cells: int | Sequence[int] = 6) -> None:
    """Mask each (x1, y1, x2, y2) box of `img` in place (boxes already clipped to the image); a mosaic has
    `cells` cells (one number, or one per box) across the box's longer side."""
    per_box = [cells] * len(boxes) if isinstance(cells, int) else cells
    for (x1, y1, x2, y2), n in zip(boxes, per_box, strict=True):
        if x2 <= x1 or y2 <= y1:
            continue
        roi = img[y1:y2, x1:x2]
        rep = _replacement(roi, mode, fill, n)
        if shape == "ellipse" and min(x2 - x1, y2 - y1) > 4:
            # copyTo writes through the view; a boolean-indexed copy costs more than the mosaic itself.
            cv2.copyTo(rep, ellipse_mask(x2 - x1, y2 - y1), roi)
        else:
            roi[...] = rep


def fill_boxes(img: np.ndarray, boxes: Iterable[Box], shape: str, value: float) -> None:
    """Paint each box (or the ellipse inscribed in it, as `mask_boxes` cuts it) flat with `value`: one
    assignment per box, where a mosaic costs four calls."""
    for x1, y1, x2, y2 in boxes:
        w, h = x2 - x1, y2 - y1
        if w <= 0 or h <= 0:
            continue
        roi = img[y1:y2, x1:x2]  # writes through the view
        if shape == "ellipse" and min(w, h) > 4:
            roi[_ellipse_where(w, h)] = value
        else:
            roi[...] = value


def mask_boxes_where(img: np.ndarray, boxes: Iterable[Box], where: np.ndarray, mode: str = "pixelate",
                     fill: float | tuple[float, ...] = 0) -> None:
    """Mask the pixels of each box that are set in `where` (uint8, non-zero = mask; H x W of img). The
    mosaic is cut per box, so its cells grow with the region as they do for a face box."""
    for x1, y1, x2, y2 in boxes:
        if x2 <= x1 or y2 <= y1:
            continue
        roi = img[y1:y2, x1:x2]
        # Writes through the view; ~50x faster than numpy's masked copy on a large region.
        cv2.copyTo(_replacement(roi, mode, fill), where[y1:y2, x1:x2], roi)


def mask_polygons(img: np.ndarray, polygon_mask: np.ndarray, mode: str = "pixelate",
                  fill: float | tuple[float, ...] = 0) -> None:
    """Mask the pixels where `polygon_mask` (bool, same H x W as img) is set."""
    ys, xs = np.nonzero(polygon_mask)
    if ys.size == 0:
        return
    y1, y2, x1, x2 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    roi = img[y1:y2, x1:x2]
    rep = _replacement(roi, mode, fill)
    sel = polygon_mask[y1:y2, x1:x2]
    roi[sel] = rep[sel]


def mask_whole(img: np.ndarray, cells_across: int = 24) -> None:
    """Fail-closed masking of a whole plane: coarse mosaic, nothing identifiable survives."""
    h, w = img.shape[:2]
    cw = max(1, cells_across)
    ch = max(1, round(cw * h / w))
    small = cv2.resize(img, (cw, ch), interpolation=cv2.INTER_AREA)
    img[...] = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def row_layout(cells: np.ndarray) -> list[tuple[int, int, int]]:
    """Cut a picture's rows into rows of mosaic cells: `cells[y]` is the cell size wanted at row y. Returns
    (y0, y1, cell) from top to bottom. The layout depends only on the picture and the perspective, not on
    what moves, so a mosaic cut along it stays put while people walk through it (no shimmer)."""
    out: list[tuple[int, int, int]] = []
    y, h = 0, len(cells)
    while y < h:
        c = max(1, int(cells[y]))
        out.append((y, min(h, y + c), c))
        y += c
    return out


def mosaic_where(img: np.ndarray, where: np.ndarray, layout: list[tuple[int, int, int]],
                 rows: tuple[int, int] | None = None) -> None:
    """Pixelate the pixels of `img` set in `where` (uint8, H x W) in place, with cells of the size `layout`
    gives for their row, on a grid fixed to the picture. `rows`: only this (y0, y1) span has any set pixel."""
    lo, hi = rows if rows is not None else (0, img.shape[0])
    for y0, y1, c in layout:
        if y1 <= lo or y0 >= hi:
            continue
        cols = np.flatnonzero(where[y0:y1].any(axis=0))
        if cols.size == 0:
            continue
        x0 = int(cols[0]) // c * c
        x1 = min(img.shape[1], (int(cols[-1]) // c + 1) * c)
        strip = img[y0:y1, x0:x1]
        n = max(1, round((x1 - x0) / c))
        small = cv2.resize(strip, (n, 1), interpolation=cv2.INTER_AREA)
        cv2.copyTo(cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST),
                   where[y0:y1, x0:x1], strip)
