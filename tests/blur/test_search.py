import cv2
import numpy as np

from blur import make_detector
from blur.search import region_scale, search, usable_scales, zoom, zoom_regions
from tests.blur.scenes import background, portrait_bgr


def _crowd():
    """One ~20 px face and a row of ~9 px faces beside it, as in a wide shot of a crowd."""
    p = portrait_bgr()
    img = background(320, 180)
    img[60:100, 40:74] = cv2.resize(p, (34, 40), interpolation=cv2.INTER_AREA)
    tiny = cv2.resize(p, (14, 16), interpolation=cv2.INTER_AREA)
    for i in range(5):
        x = 90 + i * 22
        img[70:86, x : x + 14] = tiny
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def test_zoom_around_a_small_face_finds_the_tinier_ones_next_to_it():
    detector = make_detector("centerface", threshold=0.3)
    rgb = _crowd()
    base = search(detector, rgb, (1.0, 2.0), 1_000_000)
    assert len(base) == 1 and base[0, 0] < 74  # only the larger face
    more = zoom(detector, rgb, base, 4.0, 30.0, (8.0, 4.8), 1_500_000)
    tiny = more[more[:, 0] > 85]
    assert len(tiny) >= 2
    assert np.all((tiny[:, 1] > 66) & (tiny[:, 3] < 90))  # on the row of tiny faces, nowhere else


def test_zoom_regions_and_pixel_budget():
    found = np.asarray([[100, 100, 110, 112, 0.9], [10, 10, 60, 70, 0.9]], np.float32)
    regions = zoom_regions(found, 640, 360, 30.0, (8.0, 4.8))
    assert regions == [(65, 77, 145, 135)]  # only around the small face
    assert usable_scales(416, 416, (1.0, 2.0), 1_000_000) == [1.0, 2.0]
    # 4x does not fit: the largest upscale that does (2.4x) runs instead
    assert usable_scales(416, 416, (1.0, 2.0, 4.0), 1_000_000) == [1.0, 2.0, np.sqrt(1_000_000 / 416**2)]
    assert usable_scales(1280, 720, (1.0, 2.0), 1_000_000) == [1.0]  # 1.04x is no different from 1x
    assert usable_scales(960, 540, (1.0, 2.0), 1_000_000) == [1.0, np.sqrt(1_000_000 / (960 * 540))]


def test_regions_run_at_their_scale_until_together_they_exceed_the_budget():
    assert region_scale([(0, 0, 100, 100)], 2.0, 100_000) == 2.0
    # 400x400 of regions at 2x would be 640,000 pixels: lowered so that they fit 100,000.
    both = [(0, 0, 200, 400), (300, 0, 500, 400)]
    assert abs(region_scale(both, 2.0, 100_000) - np.sqrt(100_000 / 160_000)) < 1e-9
    assert region_scale([], 2.0, 100_000) == 0.0
