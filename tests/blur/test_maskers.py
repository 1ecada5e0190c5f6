import cv2
import numpy as np
import pytest

from blur import maskers
from tests.blur.scenes import portrait_bgr

BOX = (40, 38, 130, 158)


def _texture(region: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(region, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


@pytest.mark.parametrize("mode", maskers.MODES)
def test_masker_destroys_detail_inside_and_leaves_outside(mode):
    img = portrait_bgr()
    out = img.copy()
    maskers.mask_boxes(out, [BOX], mode=mode, shape="box")
    x1, y1, x2, y2 = BOX
    inside, before = out[y1:y2, x1:x2], img[y1:y2, x1:x2]
    colours = len(np.unique(inside.reshape(-1, 3), axis=0))
    if mode == "pixelate":  # a mosaic of a few cells: a few colours where there were thousands
        assert colours <= 64 < len(np.unique(before.reshape(-1, 3), axis=0))
    elif mode == "blur":
        assert _texture(inside) < 0.05 * _texture(before)
    else:
        assert colours == 1
    outside = np.ones(img.shape[:2], bool)
    outside[y1:y2, x1:x2] = False
    assert np.array_equal(out[outside], img[outside])


@pytest.mark.parametrize("mode", ["pixelate", "blur"])
def test_masker_is_irreversible(mode):
    # Two faces that differ only in detail the masker throws away give the same output:
    # nothing in the output can tell them apart, so nothing can recover the detail.
    img = portrait_bgr()
    out_a = img.copy()
    maskers.mask_boxes(out_a, [BOX], mode=mode, shape="box")
    x1, y1, x2, y2 = BOX
    roi = img[y1:y2, x1:x2]
    # blur decimates a 90x120 box to 3x4 cells of 30 px before smoothing
    cells = cv2.resize(roi, (3, 4), interpolation=cv2.INTER_AREA)
    flat = maskers.pixelated(roi) if mode == "pixelate" else cv2.resize(
        cells, (x2 - x1, y2 - y1), interpolation=cv2.INTER_NEAREST)
    other = img.copy()
    other[y1:y2, x1:x2] = flat  # the same cell means, none of the face's detail
    out_b = other.copy()
    maskers.mask_boxes(out_b, [BOX], mode=mode, shape="box")
    diff = np.abs(out_a.astype(int) - out_b.astype(int)).max()
    assert diff <= 2, diff


def test_ellipse_shape_keeps_corners():
    img = portrait_bgr()
    out = img.copy()
    maskers.mask_boxes(out, [BOX], mode="solid", shape="ellipse")
    x1, y1, x2, y2 = BOX
    assert np.array_equal(out[y1, x1], img[y1, x1])
    assert (out[(y1 + y2) // 2, (x1 + x2) // 2] == 0).all()


def test_mask_on_a_single_plane_and_whole_frame():
    y = np.random.default_rng(1).integers(0, 256, (120, 160), dtype=np.uint8)
    out = y.copy()
    maskers.mask_boxes(out, [(10, 10, 50, 50)], mode="solid", shape="box", fill=16)
    assert (out[10:50, 10:50] == 16).all()
    whole = y.copy()
    maskers.mask_whole(whole, cells_across=8)
    assert len(np.unique(whole)) <= 8 * 6


def test_unknown_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown mask mode"):
        maskers.mask_boxes(portrait_bgr(), [BOX], mode="sparkle")


@pytest.mark.parametrize("shape", maskers.SHAPES)
def test_fill_boxes_paints_the_same_region_a_mask_cuts(shape):
    # The chroma of a mosaic's face is painted flat: over exactly the pixels the mosaic replaces on luma.
    rng = np.random.default_rng(3)
    img = rng.integers(0, 120, (60, 80), np.uint8)
    boxes = [(5, 4, 36, 45), (40, 10, 79, 30), (70, 50, 74, 53)]  # the last too small for an ellipse
    painted, mosaic = img.copy(), img.copy()
    maskers.fill_boxes(painted, boxes, shape, 200)
    maskers.mask_boxes(mosaic, boxes, "solid", shape, fill=200)
    assert np.array_equal(painted, mosaic)
    outside = np.ones(img.shape, bool)
    for x1, y1, x2, y2 in boxes:
        outside[y1:y2, x1:x2] = False
    assert np.array_equal(painted[outside], img[outside])
    assert (painted == 200).sum() > 0.6 * sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in boxes)


def test_mosaic_cells_per_box():
    # A face found large gets a coarser mosaic than a small one (`face_cells_large`): cells per box.
    ys, xs = np.mgrid[0:80, 0:160]
    img = (0.25 * xs + 2.5 * ys).astype(np.uint8)  # no two cells have the same mean
    out = img.copy()
    maskers.mask_boxes(out, [(0, 0, 60, 60), (80, 0, 140, 60)], "pixelate", "box", cells=[6, 3])
    assert len(np.unique(out[0:60, 0:60])) == 36 and len(np.unique(out[0:60, 80:140])) == 9
    assert np.array_equal(out[60:], img[60:])
    with pytest.raises(ValueError):
        maskers.mask_boxes(out, [(0, 0, 10, 10)], "pixelate", "box", cells=[6, 3])  # one per box
