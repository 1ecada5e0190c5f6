"""The perspective model (face height by image row) and the mosaic cut along it."""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from blur import maskers
from blur.perspective import FACE_CELLS, Perspective


def _faces(rows: np.ndarray, heights: np.ndarray) -> np.ndarray:
    x = np.full_like(rows, 50.0)
    return np.stack([x, rows - heights / 2, x + heights * 0.8, rows + heights / 2], 1)


def test_unlearnt_answers_the_fallback_for_every_row() -> None:
    p = Perspective(720)
    assert not p.learnt
    assert np.all(p.face_height(np.array([0.0, 360.0, 719.0])) == 120.0)
    p.observe(_faces(np.array([300.0, 400.0]), np.array([20.0, 30.0])))  # too few faces to fit
    assert not p.learnt


def test_learns_faces_growing_towards_the_camera_and_stays_above_them() -> None:
    rng = np.random.default_rng(3)
    rows = rng.uniform(80, 700, 300)
    heights = 8 + 0.08 * rows + rng.normal(0, 1.5, rows.size)
    p = Perspective(720)
    p.observe(_faces(rows, heights))
    assert p.learnt
    near, far = p.face_height(np.array([650.0, 120.0]))
    assert near > 2.5 * far, (near, far)
    # The model answers an upper bound: at least 90 % of the faces it learnt from are no taller.
    assert np.mean(heights <= p.face_height(rows)) >= 0.9
    # ...and cells cut such a face into at most FACE_CELLS cells across its height.
    assert np.all(heights / p.cell(rows) <= FACE_CELLS + 1e-6)


def test_mosaic_cells_grow_finer_slowly_and_coarser_at_once() -> None:
    rng = np.random.default_rng(5)
    rows = rng.uniform(40, 700, 300)
    p = Perspective(720, hold=0.8)
    p.observe(_faces(rows, np.full(rows.size, 20.0)))  # a crowd of small faces
    fit = p.face_height(np.array([360.0]))[0]
    assert fit < 40
    assert p.mosaic_height(np.array([360.0]))[0] == fit  # no step yet: the fit itself
    # From the fallback (a sixth of the picture), a fifth less per step, never below the fit.
    heights = []
    for _ in range(12):
        p.step()
        heights.append(float(p.mosaic_height(np.array([360.0]))[0]))
    assert heights[0] == np.float32(120 * 0.8)
    assert heights[1] == np.float32(120 * 0.8 * 0.8)
    assert heights[-1] == fit and all(a >= b for a, b in pairwise(heights))
    # A larger face seen anywhere coarsens the cells at the next step.
    p.observe(_faces(rng.uniform(40, 700, 600), np.full(600, 70.0)))
    p.step()
    assert p.mosaic_height(np.array([360.0]))[0] >= 70
    assert np.all(p.cell(np.array([100.0, 360.0, 650.0])) >= 70 / FACE_CELLS)


def test_layout_follows_the_cell_size_of_each_row() -> None:
    cells = np.repeat(np.array([4, 8, 16], np.int32), [100, 200, 300])
    layout = maskers.row_layout(cells)
    assert layout[0] == (0, 4, 4) and layout[-1][1] == 600
    assert all(y1 - y0 <= c for y0, y1, c in layout)
    assert [c for y0, _, c in layout if y0 == 100] == [8]
    assert sum(y1 - y0 for y0, y1, _ in layout) == 600


def test_mosaic_masks_only_where_asked_with_the_rows_cell_size() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (64, 96), np.uint8)
    where = np.zeros_like(img)
    where[8:40, 16:64] = 255
    out = img.copy()
    maskers.mosaic_where(out, where, maskers.row_layout(np.full(64, 8, np.int32)))
    assert np.array_equal(out[where == 0], img[where == 0])
    inside = out[8:40, 16:64]
    # Flat 8x8 cells on a grid fixed to the picture: each cell one value, and neighbours differ.
    cells = inside.reshape(4, 8, 6, 8)
    assert np.all(cells.max(axis=(1, 3)) == cells.min(axis=(1, 3)))
    assert len(np.unique(cells[:, 0, :, 0])) > 12
