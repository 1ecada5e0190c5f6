"""Multi-scale face search over a whole image or over regions of it: small faces are found by upscaling
the pixels that matter, within a pixel budget per pass."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from blur.detectors.base import Detector, empty_boxes, nms
from blur.geometry import grow, merge_regions, scale_boxes, to_int_boxes


def detect_scaled(detector: Detector, rgb: np.ndarray, scale: float) -> np.ndarray:
    fast = getattr(detector, "detect_scaled", None)
    if fast is not None:
        return fast(rgb, scale)
    if scale == 1.0:
        return detector.detect(rgb)
    h, w = rgb.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    resized = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA)
    return scale_boxes(detector.detect(resized), w / size[0], h / size[1])


def usable_scales(width: int, height: int, scales: Sequence[float], max_pixels: int) -> list[float]:
    """The requested scales, each lowered to what the pixel budget allows; near-duplicates (within 10 %)
    dropped. A larger frame thus still gets its largest affordable upscale instead of none."""
    area = max(1, width * height)
    cap = float(np.sqrt(max_pixels / area))
    out: list[float] = []
    for s in sorted(scales):
        fit = min(float(s), cap)
        if not any(abs(fit - o) <= 0.1 * o for o in out):
            out.append(fit)
    return out


def search(detector: Detector, rgb: np.ndarray, scales: Sequence[float], max_pixels: int,
           union: bool = False) -> np.ndarray:
    """Detect at every usable scale and merge (boxes in `rgb` pixels)."""
    h, w = rgb.shape[:2]
    found = [detect_scaled(detector, rgb, s) for s in usable_scales(w, h, scales, max_pixels)]
    found = [f for f in found if len(f)]
    return nms(np.concatenate(found), 0.3, union) if found else empty_boxes()


def zoom_regions(found: np.ndarray, width: int, height: int, small_px: float,
                 grow_xy: tuple[float, float]) -> list[tuple[int, int, int, int]]:
    """Neighbourhoods of the small faces found: where more, smaller faces are likely."""
    small = found[(found[:, 3] - found[:, 1]) < small_px] if len(found) else found
    if len(small) == 0:
        return []
    return merge_regions(to_int_boxes(grow(small[:, :4], grow_xy[0], grow_xy[1]), width, height))


def zoom(detector: Detector, rgb: np.ndarray, found: np.ndarray, scale: float, small_px: float,
         grow_xy: tuple[float, float], max_pixels: int, union: bool = False) -> np.ndarray:
    """Add what a `scale`x pass around the small faces in `found` finds."""
    if scale <= 0 or len(found) == 0:
        return found
    h, w = rgb.shape[:2]
    regions = zoom_regions(found, w, h, small_px, grow_xy)
    if not regions:
        return found
    more = search_regions(detector, rgb, regions, scale, max_pixels)
    return nms(np.concatenate([found, more]), 0.3, union) if len(more) else found


def region_scale(regions: Sequence[tuple[int, int, int, int]], scale: float, max_pixels: int) -> float:
    """The scale a pass over `regions` runs at: `scale`, lowered until the regions together fit `max_pixels`
    (0 when there is nothing to look at)."""
    area = sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in regions)
    return min(scale, float(np.sqrt(max_pixels / area))) if area > 0 else 0.0


def search_regions(detector: Detector, rgb: np.ndarray, regions: Sequence[tuple[int, int, int, int]],
                   scale: float, max_pixels: int) -> np.ndarray:
    """Detect inside each region at `scale` (lowered if the regions together exceed the budget)."""
    s = region_scale(regions, scale, max_pixels)
    if s == 0:
        return empty_boxes()
    found = []
    for x1, y1, x2, y2 in regions:
        d = detect_scaled(detector, np.ascontiguousarray(rgb[y1:y2, x1:x2]), s)
        if len(d):
            d = d.copy()
            d[:, 0:4:2] += x1
            d[:, 1:4:2] += y1
            found.append(d)
    return nms(np.concatenate(found), 0.3) if found else empty_boxes()
