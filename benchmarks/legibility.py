"""How much of the scene an anonymized picture still shows, and whether a masked face is still readable.

Scene legibility (one figure per frame, averaged over the frames of a run):
- both pictures, the anonymizer's input and its output, to grey: the luma plane Y expanded from video range
  (16–235) to 0–255, i.e. what BGR -> grey of the displayed picture gives, up to rounding;
- reduced to a quarter of the size with cv2.INTER_AREA (1280x720 -> 320x180: a dashboard tile);
- SSIM between them (`ssim_map`: 7x7 Gaussian window, sigma 1.5, C1 = (0.01*255)^2, C2 = (0.03*255)^2,
  mirrored borders);
- averaged over the tile pixels that lie wholly outside every truth face box grown by 12.5 % of its width
  (height) on each side: the face-free mask is drawn at full size and reduced with INTER_AREA too, and a tile
  pixel counts only when its whole source block is face-free (its reduced value is 1).
The untouched picture scores 1.0.

Collateral, at full size: the share of those face-free pixels (full-size mask) whose grey level changed by
more than `COLLATERAL_LEVELS` (8).

Readability of a masked face (`face_readability`): over the face's truth box, in grey at full size, the
SSIM of the anonymized face to the original is compared with the SSIM of a reference mosaic of the same
face (`mosaic`: cells face_h / 6 px, so 6 cells across the face's height, block means of the original) to
the original, both SSIM maps computed on the box crop alone (mirrored borders) and averaged over the box
pixels where the face shows. The face keeps more of its structure than a 6-cell mosaic, i.e. is *readable*,
when its SSIM exceeds the mosaic's by more than `READABLE_MARGIN` (0.05).
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

SCALE = 4                 # the tile is 1/SCALE of the picture each way
FACE_GROW = 0.125         # truth face boxes grown by this share of their size on each side
COLLATERAL_LEVELS = 8     # a grey level change above this counts as changed
MOSAIC_CELLS = 6          # the reference mosaic has this many cells across the face's height
READABLE_MARGIN = 0.05    # readable: SSIM to the original above the mosaic's + this
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2
_WINDOW = (7, 7)
_SIGMA = 1.5

Box = tuple[int, int, int, int]


def grey_of_luma(y: np.ndarray) -> np.ndarray:
    """Float32 grey 0–255 from a video-range Y plane (16 = black, 235 = white)."""
    return np.clip((y.astype(np.float32) - 16.0) * (255.0 / 219.0), 0.0, 255.0)


def _smooth(img: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(img, _WINDOW, _SIGMA, borderType=cv2.BORDER_REFLECT)


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM of two grey images of the same shape (values 0–255): Gaussian 7x7 window, sigma 1.5."""
    a = a.astype(np.float32, copy=False)
    b = b.astype(np.float32, copy=False)
    mu_a, mu_b = _smooth(a), _smooth(b)
    aa, bb, ab = mu_a * mu_a, mu_b * mu_b, mu_a * mu_b
    var_a = _smooth(a * a) - aa
    var_b = _smooth(b * b) - bb
    cov = _smooth(a * b) - ab
    return ((2 * ab + _C1) * (2 * cov + _C2)) / ((aa + bb + _C1) * (var_a + var_b + _C2))


def face_free_mask(shape: tuple[int, int], boxes: Iterable[Box], grow: float = FACE_GROW) -> np.ndarray:
    """Bool (h, w): True outside every (x1, y1, x2, y2) box grown by `grow` of its size on each side."""
    h, w = shape
    free = np.ones((h, w), bool)
    for x1, y1, x2, y2 in boxes:
        gx, gy = grow * (x2 - x1), grow * (y2 - y1)
        a, b = max(0, int(np.floor(x1 - gx))), max(0, int(np.floor(y1 - gy)))
        c, d = min(w, int(np.ceil(x2 + gx))), min(h, int(np.ceil(y2 + gy)))
        if a < c and b < d:
            free[b:d, a:c] = False
    return free


def tile_size(shape: tuple[int, int]) -> tuple[int, int]:
    """(width, height) of the reduced picture."""
    h, w = shape
    return max(1, round(w / SCALE)), max(1, round(h / SCALE))


def reduce(img: np.ndarray) -> np.ndarray:
    return cv2.resize(img, tile_size(img.shape[:2]), interpolation=cv2.INTER_AREA)


def scene_scores(grey_before: np.ndarray, grey_after: np.ndarray, free: np.ndarray,
                 parts: dict[str, np.ndarray] | None = None) -> tuple[float, float, dict[str, float]]:
    """(legibility, collateral, loss by part) of one frame; `free` is the full-size face-free mask. NaN
    when the frame has no face-free pixel at that scale. `parts`: named full-size bool masks (what covered
    which pixels); a tile pixel belongs to the first part any pixel of its 4x4 block is in, else to
    "untouched", and each part's loss is its pixels' 1 - SSIM over the count of face-free tile pixels, so
    the parts add up to 1 - legibility."""
    tile_free = reduce(free.astype(np.float32)) >= 1.0 - 1e-6
    smap = ssim_map(reduce(grey_before), reduce(grey_after))
    legibility = float(smap[tile_free].mean()) if tile_free.any() else float("nan")
    changed = np.abs(grey_before - grey_after) > COLLATERAL_LEVELS
    collateral = float(changed[free].mean()) if free.any() else float("nan")
    losses: dict[str, float] = {}
    if parts is not None and tile_free.any():
        loss, n = 1.0 - smap, int(tile_free.sum())
        left = tile_free.copy()
        for name, area in parts.items():
            inside = left & (reduce(area.astype(np.float32)) > 0)
            losses[name] = float(loss[inside].sum()) / n
            left &= ~inside
        losses["untouched"] = float(loss[left].sum()) / n
    return legibility, collateral, losses


def mosaic(crop: np.ndarray, cells: int = MOSAIC_CELLS) -> np.ndarray:
    """The reference mosaic of a face crop: `cells` block means across its height (cell = h / cells px),
    as many cells across its width as that cell size gives."""
    h, w = crop.shape[:2]
    cell = h / cells
    bw, bh = max(1, round(w / cell)), max(1, min(h, cells))
    small = cv2.resize(crop, (bw, bh), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def face_readability(before: np.ndarray, after: np.ndarray, visible: np.ndarray | None = None,
                     ) -> tuple[float, float]:
    """(SSIM of the anonymized face to the original, SSIM of its reference mosaic to the original), over a
    grey face-box crop of each picture (float 0–255), averaged where `visible` (bool, crop-shaped) is set."""
    before = before.astype(np.float32, copy=False)
    kept = ssim_map(before, after)
    ref = ssim_map(before, mosaic(before))
    if visible is None or not visible.any():
        return float(kept.mean()), float(ref.mean())
    return float(kept[visible].mean()), float(ref[visible].mean())


def readable(kept: float, reference: float) -> bool:
    return kept > reference + READABLE_MARGIN


def cells_down(after: np.ndarray, visible: np.ndarray | None = None) -> float:
    """How many mosaic cells a masked face box holds down its height: per column, the runs of equal grey
    values over the visible rows, the median over the columns. A face mosaicked at 6 cells or fewer
    scores 6 or less; unmasked pixels (texture) make many runs."""
    runs = []
    for x in range(after.shape[1]):
        col = after[:, x] if visible is None else after[visible[:, x], x]
        if col.size:
            runs.append(1 + int(np.count_nonzero(np.abs(np.diff(col)) > 0.5)))
    return float(np.median(runs)) if runs else 0.0
