"""The sample scene's walkers: the truth boxes the end-to-end tests check against."""

from __future__ import annotations

import numpy as np

from relay.samples import Walker, face_patch, render_frame, street_background

WIDTH, HEIGHT = 640, 360
BACKGROUND = street_background(WIDTH, HEIGHT)


def test_a_walker_without_stop_bounces_between_the_edges() -> None:
    walker = Walker(height=60, y=100, x0=10, speed=5.0)
    span = WIDTH - face_patch(60).shape[1]
    xs = [walker.x(i, span) for i in range(400)]
    assert 0 <= min(xs) < 5 and span - 5 < max(xs) <= span  # from edge to edge, never outside
    assert walker.standing_from() is None


def test_a_walker_comes_in_from_outside_and_stands_where_it_stops() -> None:
    walker = Walker(height=60, y=100, x0=-80.0, speed=8.0, stop=200.0)
    pw = face_patch(60).shape[1]
    assert walker.standing_from() == 35
    _, (box,) = render_frame(BACKGROUND, 0, (walker,))
    assert box == (0, 100, 0, 160)  # outside the picture: an empty box
    img, (box,) = render_frame(BACKGROUND, 8, (walker,))  # 16 px of the face are in
    assert box == (0, 100, pw - 16, 160) and box[2] > 0
    assert np.array_equal(img[100:160, 0 : box[2]], face_patch(60)[:, 16:])
    stand = [render_frame(BACKGROUND, i, (walker,)) for i in (35, 36, 300)]
    assert {b[0] for _, b in stand} == {(200, 100, 200 + pw, 160)}
    assert np.array_equal(stand[0][0], stand[2][0])  # standing still: the same picture
    # Walking left works the same way, from the right edge.
    left = Walker(height=60, y=100, x0=WIDTH + 10.0, speed=-10.0, stop=300.0)
    assert left.standing_from() == 35 and left.x(1000, WIDTH - pw) == 300
