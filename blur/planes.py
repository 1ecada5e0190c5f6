"""A frame as the engine holds it: [Y, U, V] planes of a yuv420p frame (U and V at half size), or [BGR] for
an image. Everything here works on either: the small copies that motion and flow look at, the RGB copy
the detector gets, and masking with the right fill on every plane (chroma boxes halved)."""

from __future__ import annotations

from collections.abc import Sequence

import av
import cv2
import numpy as np

from blur import maskers
from blur.geometry import to_int_boxes
from blur.motion import Movers

Box = tuple[int, int, int, int]
Polygon = Sequence[tuple[float, float]]
SMALL_WIDTH = 480  # width of the grey copy used for flow and of the colour copy used for motion


def plane_views(frame: av.VideoFrame) -> list[np.ndarray]:
    """The frame's planes as arrays that write into it (line padding cut off)."""
    return [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width] for p in frame.planes]


def copy_to_yuv420p(frame: av.VideoFrame) -> tuple[av.VideoFrame, list[np.ndarray]]:
    """A new yuv420p frame with the picture of `frame` (any format), and its planes. The caller's frame is
    never written: the raw rendition may share it."""
    src = frame if frame.format.name == "yuv420p" else frame.reformat(format="yuv420p")
    out = av.VideoFrame(src.width, src.height, "yuv420p")
    planes = plane_views(out)
    for dst, s in zip(planes, plane_views(src), strict=True):
        dst[...] = s
    return out, planes


def rgb_of(planes: list[np.ndarray]) -> np.ndarray:
    """The full-size RGB image the detector looks at."""
    if len(planes) == 1:
        return cv2.cvtColor(planes[0], cv2.COLOR_BGR2RGB)
    y, u, v = planes
    size = (y.shape[1], y.shape[0])
    yuv = cv2.merge([y, cv2.resize(u, size, interpolation=cv2.INTER_LINEAR),
                     cv2.resize(v, size, interpolation=cv2.INTER_LINEAR)])
    return cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB)


def small_grey(planes: list[np.ndarray]) -> tuple[np.ndarray, float]:
    """A grey copy at most SMALL_WIDTH wide (for flow), and its scale (small pixels per frame pixel)."""
    base = planes[0] if len(planes) == 3 else cv2.cvtColor(planes[0], cv2.COLOR_BGR2GRAY)
    h, w = base.shape[:2]
    if w <= SMALL_WIDTH:
        return base.copy(), 1.0  # a copy: the Y plane is masked in place later
    s = SMALL_WIDTH / w
    # Linear, not area: area resampling at a non-integer ratio costs ~40x more on a 720p plane.
    return cv2.resize(base, (SMALL_WIDTH, max(1, round(h * s))), interpolation=cv2.INTER_LINEAR), s


def small_colour(planes: list[np.ndarray], small: np.ndarray) -> np.ndarray:
    """Y, U, V (or B, G, R) at the size of `small`: motion on brightness alone misses a face that is
    as bright as what it passes over (a dark head on dark grass)."""
    size = (small.shape[1], small.shape[0])
    if len(planes) == 1:
        return cv2.resize(planes[0], size, interpolation=cv2.INTER_LINEAR)
    return cv2.merge([small] + [cv2.resize(p, size, interpolation=cv2.INTER_LINEAR) for p in planes[1:]])


def chroma_boxes(boxes: list[Box], cw: int, ch: int) -> list[Box]:
    """Boxes of the full-size plane on the half-size U and V planes, rounded outwards."""
    return [(x1 // 2, y1 // 2, min(cw, (x2 + 1) // 2), min(ch, (y2 + 1) // 2)) for x1, y1, x2, y2 in boxes]


def mask_whole(planes: list[np.ndarray]) -> None:
    """Fail closed: the whole frame as a coarse mosaic."""
    for p in planes:
        maskers.mask_whole(p)


def mask_boxes(planes: list[np.ndarray], boxes: list[Box], mode: str, shape: str,
               cells: int | Sequence[int] = 6) -> None:
    """Mask each box (frame pixels) on every plane; a mosaic has `cells` cells (one number, or one per box)
    across a box."""
    if len(planes) == 1:
        maskers.mask_boxes(planes[0], boxes, mode, shape, fill=0, cells=cells)
        return
    y, u, v = planes
    maskers.mask_boxes(y, boxes, mode, shape, fill=16, cells=cells)
    ch, cw = u.shape
    cboxes = chroma_boxes(boxes, cw, ch)
    if mode == "blur":
        maskers.mask_boxes(u, cboxes, mode, shape, fill=128)
        maskers.mask_boxes(v, cboxes, mode, shape, fill=128)
        return
    # A mosaic's faces leave grey, as silhouettes do by default: skin colour says something about a person
    # and nothing the operations room needs (and a flat fill costs a quarter of a mosaic on each plane).
    maskers.fill_boxes(u, cboxes, shape, 128)
    maskers.fill_boxes(v, cboxes, shape, 128)


def mask_movers(planes: list[np.ndarray], movers: Movers, mode: str,
                layout: list[tuple[int, int, int]] | None = None, colour: bool = False) -> list[Box]:
    """Mask the moving silhouettes; returns their boxes. `layout` (pixelate mode): the picture's rows of
    mosaic cells sized to the faces expected there (`maskers.row_layout`), else each piece is cut into
    cells sized to itself. `colour`: keep a mosaic of the silhouettes' colour instead of grey."""
    h, w = planes[0].shape[:2]
    boxes = to_int_boxes(movers.boxes, w, h)
    if not boxes:
        return boxes
    where = cv2.resize(movers.mask, (w, h), interpolation=cv2.INTER_NEAREST)
    rows = (min(b[1] for b in boxes), max(b[3] for b in boxes))
    by_rows = layout is not None and mode == "pixelate"
    if len(planes) == 1:
        if by_rows:
            maskers.mosaic_where(planes[0], where, layout, rows)
        else:
            maskers.mask_boxes_where(planes[0], boxes, where, mode, fill=0)
        return boxes
    y, u, v = planes
    if by_rows:
        maskers.mosaic_where(y, where, layout, rows)
    else:
        maskers.mask_boxes_where(y, boxes, where, mode, fill=16)
    ch, cw = u.shape
    cwhere = cv2.resize(movers.mask, (cw, ch), interpolation=cv2.INTER_NEAREST)
    cboxes = chroma_boxes(boxes, cw, ch)
    crows = (rows[0] // 2, (rows[1] + 1) // 2)
    if colour and by_rows:
        chroma_layout = [(y0 // 2, (y1 + 1) // 2, max(1, c // 2)) for y0, y1, c in layout]
        maskers.mosaic_where(u, cwhere, chroma_layout, crows)
        maskers.mosaic_where(v, cwhere, chroma_layout, crows)
    elif colour:
        maskers.mask_boxes_where(u, cboxes, cwhere, mode, fill=128)
        maskers.mask_boxes_where(v, cboxes, cwhere, mode, fill=128)
    else:
        # Grey: the colour of clothes identifies people too (and it is a third of the cost of a mosaic on
        # every plane).
        maskers.mask_boxes_where(u, cboxes, cwhere, "solid", fill=128)
        maskers.mask_boxes_where(v, cboxes, cwhere, "solid", fill=128)
    return boxes


class StaticMasks:
    """A camera's privacy polygons (coordinates as fractions of the frame), masked on every frame; the
    per-plane pixel masks are drawn once per frame size."""

    def __init__(self, polygons: Sequence[Polygon], mode: str) -> None:
        for poly in polygons:
            if len(poly) < 3 or any(not (0.0 <= c <= 1.0) for pt in poly for c in pt):
                raise ValueError("a static mask needs at least 3 points with coordinates in [0, 1]")
        self.polygons = [np.asarray(p, dtype=np.float64) for p in polygons]
        self.mode = mode
        self._cache: dict[tuple[int, int], list[np.ndarray]] = {}

    def apply(self, planes: list[np.ndarray]) -> None:
        if not self.polygons:
            return
        key = planes[0].shape[:2]
        sel = self._cache.get(key)
        if sel is None:
            sel = []
            for p in planes:
                ph, pw = p.shape[:2]
                m = np.zeros((ph, pw), np.uint8)
                pts = [np.round(poly * (pw, ph)).astype(np.int32) for poly in self.polygons]
                cv2.fillPoly(m, pts, 1)
                sel.append(m.astype(bool))
            self._cache[key] = sel
        fills = [0] if len(planes) == 1 else [16, 128, 128]
        for p, m, f in zip(planes, sel, fills, strict=True):
            maskers.mask_polygons(p, m, self.mode, fill=f)
