"""Box arithmetic the masks are built with."""

import numpy as np

from blur.geometry import grow, widen


def test_widen_brings_a_narrow_box_to_the_aspect_about_its_centre_and_leaves_wider_ones():
    boxes = np.asarray([[100, 50, 120, 100], [0, 0, 40, 40], [10, 10, 10, 30]], np.float32)
    out = widen(boxes, 0.7)
    # 20 x 50 -> 35 x 50, centred on x = 110; a square box is wide enough; a zero-width box gets 14 px.
    np.testing.assert_allclose(out, [[92.5, 50, 127.5, 100], [0, 0, 40, 40], [3, 10, 17, 30]])
    assert boxes[0, 0] == 100  # the input is not changed


def test_grow_scales_about_the_centre():
    out = grow(np.asarray([[10, 10, 30, 50]], np.float32), 1.5, 1.2)
    np.testing.assert_allclose(out, [[5, 6, 35, 54]])
