"""The tracker on generated grey frames: a textured box moved a known distance per frame over a textured
background. Boxes are carried by flow and template matching; a track is dropped only when detection
looked where it is and missed it `persist` times in a row, never because time passed."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from blur.tracking import Tracker, flow_boxes
from tests.blur.scenes import background, paste, textured_patch

SIZE = 40  # the moving box's side, pixels
PATCH = textured_patch(SIZE, SIZE)
BACKDROP = cv2.cvtColor(background(320, 240, seed=3), cv2.COLOR_BGR2GRAY)
PLAIN = np.full((240, 320), 120, np.uint8)


def at(x: int, y: int, backdrop: np.ndarray = BACKDROP) -> np.ndarray:
    return paste(backdrop, PATCH, x, y)


def det(*boxes: tuple[float, float, float, float], score: float = 0.9) -> np.ndarray:
    return np.asarray([[*b, score] for b in boxes], np.float32).reshape(-1, 5)


def box_at(x: float, y: float, size: float = SIZE) -> tuple[float, float, float, float]:
    return (x, y, x + size, y + size)


@pytest.mark.parametrize("dx, dy", [(3, 1), (5, -2), (-4, 3)])
def test_a_moving_textured_box_is_carried_frame_to_frame(dx: int, dy: int) -> None:
    tracker = Tracker(persist=2)
    x0, y0 = 120, 100
    tracker.update(det(box_at(x0, y0)), 0)
    prev = at(x0, y0)
    for i in range(1, 16):
        cur = at(x0 + dx * i, y0 + dy * i)
        tracker.step(prev, cur, 1.0, i)
        prev = cur
    (track,) = tracker.tracks
    assert np.abs(track.box - box_at(x0 + dx * 15, y0 + dy * 15)).max() <= 1.0
    # Its measured speed (per frame, both axes) is the motion, once a few frames have passed.
    assert tracker.speeds()[0] == pytest.approx([abs(dx), abs(dy)], abs=0.3)
    assert track.last_seen == 0 and track.misses == 0  # carried, not confirmed


def test_boxes_are_in_full_frame_pixels_when_flow_runs_on_a_smaller_copy() -> None:
    # The grey copy is half the frame: 3 px on it are 6 px of the frame.
    tracker = Tracker()
    tracker.update(det((240, 200, 320, 280)), 0)
    prev = at(120, 100)
    for i in range(1, 6):
        cur = at(120 + 3 * i, 100)
        tracker.step(prev, cur, 0.5, i)
        prev = cur
    assert np.abs(tracker.tracks[0].box - (270, 200, 350, 280)).max() <= 1.0


def test_a_box_moves_with_what_is_inside_it_not_with_motion_elsewhere() -> None:
    tracker = Tracker()
    still = (20, 20, 60, 60)  # on the plain part of the picture, away from the patch
    tracker.update(det(still, box_at(200, 150)), 0)
    prev = at(200, 150, PLAIN)
    for i in range(1, 6):
        cur = at(200 + 4 * i, 150, PLAIN)
        tracker.step(prev, cur, 1.0, i)
        prev = cur
    assert np.abs(tracker.tracks[0].box - still).max() <= 0.5
    assert np.abs(tracker.tracks[1].box - box_at(220, 150)).max() <= 1.0


def test_a_slow_box_is_carried_by_the_fraction_of_a_pixel_it_moves() -> None:
    # 0.4 px a frame: all four flow points agree, so the box follows the flow; matching a template, which
    # moves in whole pixels, would hold it in place frame after frame.
    tracker = Tracker()
    tracker.update(det(box_at(120, 100)), 0)
    first = at(120, 100)
    prev = first
    for i in range(1, 11):
        cur = cv2.warpAffine(first, np.float32([[1, 0, 0.4 * i], [0, 1, 0]]), first.shape[::-1],
                             flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        tracker.step(prev, cur, 1.0, i)
        prev = cur
    assert np.abs(tracker.tracks[0].box - box_at(124, 100)).max() <= 0.5


@pytest.mark.parametrize("dx, dy", [(25, 12), (40, 0)])
def test_a_late_result_is_carried_over_a_long_jump(dx: int, dy: int) -> None:
    # Live: a detection computed frames ago is carried to the current frame in one far step. On the longer
    # jump sparse flow alone lands ~7 px off: the box is found again by template matching.
    before, now = at(100, 80), at(100 + dx, 80 + dy)
    moved = flow_boxes(before, now, det(box_at(100, 80)), 1.0, far=True)
    assert np.abs(moved[0, :4] - box_at(100 + dx, 80 + dy)).max() <= 1.0
    assert moved[0, 4] == pytest.approx(0.9)  # the score rides along


def test_a_track_never_expires_while_no_detection_looks() -> None:
    tracker = Tracker(persist=2)
    tracker.update(det(box_at(120, 100)), 0)
    frame = at(120, 100)
    for i in range(1, 200):
        tracker.step(frame, frame, 1.0, i)
    assert len(tracker.tracks) == 1
    assert np.abs(tracker.tracks[0].box - box_at(120, 100)).max() <= 0.5


def test_a_track_is_dropped_only_when_detection_looked_and_missed_it_persist_times_in_a_row() -> None:
    tracker = Tracker(persist=2)
    box = box_at(120, 100)
    tracker.update(det(box), 0)
    # Rounds that looked elsewhere, or in a region that cuts the box, prove nothing.
    for frame in range(1, 6):
        tracker.update(det(), frame, regions=[(0, 0, 100, 100)])
        tracker.update(det(), frame, regions=[(130, 100, 320, 240)])
    assert [t.misses for t in tracker.tracks] == [0]
    # A region that holds the whole box, or a whole-frame round: a miss each.
    tracker.update(det(), 10, regions=[(100, 80, 200, 180)])
    tracker.update(det(), 11)
    assert [t.misses for t in tracker.tracks] == [2]
    # Found again: the count starts over.
    tracker.update(det(box), 12)
    assert [(t.misses, t.last_seen) for t in tracker.tracks] == [(0, 12)]
    for frame in (13, 14):
        tracker.update(det(), frame)
    assert len(tracker.tracks) == 1
    tracker.update(det(), 15)
    assert tracker.tracks == []


def test_a_round_too_coarse_to_find_a_face_does_not_count_against_its_track() -> None:
    # Region rounds on a crowd run scaled down to fit their pixel budget; a 16 px face is then a few pixels
    # in the detector's input, and a round that could not have found it proves nothing about it.
    tracker = Tracker(persist=2)
    small = (120, 100, 136, 116)
    tracker.update(det(small), 0)
    tracker.update(det(small), 1)                 # found twice: a face, not a one-off false detection
    everywhere = [(0, 0, 320, 240)]
    for frame in range(2, 8):
        tracker.update(det(), frame, regions=everywhere, smallest=46.0)
    assert [t.misses for t in tracker.tracks] == [0]
    # Rounds that could have found it still count, and a whole-frame sweep always does.
    tracker.update(det(), 8, regions=everywhere, smallest=12.0)
    tracker.update(det(), 9)
    assert [t.misses for t in tracker.tracks] == [2]


def test_a_coarse_round_still_ages_a_small_track_in_moving_pixels() -> None:
    # A moving face is inside a moving silhouette whatever its track does: only still faces are kept.
    tracker = Tracker(persist=2)
    small = (120, 100, 136, 116)
    tracker.update(det(small), 0)
    tracker.update(det(small), 1)
    asked: list[np.ndarray] = []

    def moving(boxes: np.ndarray) -> np.ndarray:
        asked.append(boxes.copy())
        return np.ones(len(boxes), bool)

    tracker.update(det(), 2, regions=[(0, 0, 320, 240)], smallest=46.0, moving=moving)
    assert [t.misses for t in tracker.tracks] == [1]
    assert asked and asked[0].tolist() == [list(small)]


def test_a_detection_seen_once_is_aged_by_any_round_that_looked_there() -> None:
    tracker = Tracker(persist=0)
    tracker.update(det((120, 100, 136, 116)), 0)  # one detection only: it may be a false one
    tracker.update(det(), 1, regions=[(0, 0, 320, 240)], smallest=46.0)
    assert tracker.tracks == []


def test_a_sudden_shrink_covers_both_boxes_until_the_next_round_finds_it_again() -> None:
    # The detector boxed the upper half of a face it had found whole: faces do not shrink by a fifth
    # between rounds, so the track keeps covering the whole face for one more round.
    tracker = Tracker()
    tracker.update(det((100, 100, 160, 180)), 0)
    tracker.update(det((110, 100, 150, 130)), 1)
    (track,) = tracker.tracks
    assert track.box.tolist() == [100, 100, 160, 180]
    tracker.update(det((111, 101, 151, 131)), 2)  # the same small box again: now it is believed
    assert track.box.tolist() == [111, 101, 151, 131]
    # Growing, or shrinking as a face walking away does, is taken as found.
    tracker.update(det((110, 100, 146, 128)), 3)
    assert track.box.tolist() == [110, 100, 146, 128]
    tracker.update(det((100, 90, 170, 170)), 4)
    assert track.box.tolist() == [100, 90, 170, 170]


def test_detections_match_tracks_new_ones_start_tracks() -> None:
    tracker = Tracker()
    tracker.update(det(box_at(50, 50)), 0)
    tracker.update(det(box_at(54, 52), box_at(200, 150)), 1)
    assert len(tracker.tracks) == 2
    first, second = tracker.tracks
    assert np.array_equal(first.box, box_at(54, 52)) and first.last_seen == 1
    assert np.array_equal(second.box, box_at(200, 150)) and second.last_seen == 1


def test_a_detection_inside_a_track_confirms_it_and_the_track_covers_both() -> None:
    # A face cut by a region's border: found as its left half, which is inside the track but a poor IoU.
    tracker = Tracker()
    tracker.update(det((100, 100, 180, 180)), 0)
    tracker.update(det((90, 120, 125, 160)), 1)  # IoU 0.15, 71 % of it inside the track
    (track,) = tracker.tracks
    assert track.box.tolist() == [90, 100, 180, 180]
    assert track.last_seen == 1


def test_unconfirmed_tracks_get_more_padding_as_they_age() -> None:
    tracker = Tracker(pad_per_frame=0.05)
    tracker.update(det(box_at(50, 50)), 0)
    pads = [float(tracker.boxes(frame)[1][0]) for frame in (0, 1, 3, 6, 30)]
    assert pads == pytest.approx([1.0, 1.05, 1.15, 1.3, 1.3])  # at most six frames' worth


def test_a_new_track_is_assumed_to_move_until_flow_has_measured_it() -> None:
    tracker = Tracker()
    tracker.update(det((0, 0, 40, 80)), 0)
    assert tracker.speeds()[0] == pytest.approx([2.0, 4.0])  # a twentieth of its size per frame
    frame = at(120, 100)
    for i in range(1, 6):
        tracker.step(frame, frame, 1.0, i)
    assert tracker.speeds()[0] == pytest.approx([0.0, 0.0], abs=0.05)  # measured: it stands still
