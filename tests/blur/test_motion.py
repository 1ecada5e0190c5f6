"""Background subtraction on generated colour frames: a textured still scene with a little sensor noise,
and a textured block (a person) walking over it."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from blur.motion import MotionMap, detection_regions, head_bands, unexplained
from tests.blur.scenes import background, textured_patch

W, H = 160, 120
SCENE = background(W, H, seed=5)
PERSON = textured_patch(30, 16, seed=2, channels=3)  # 16 x 30 px
TAKE_IN = 165  # frames until something that stops is background (motion.py: about 0.11 x history)


class Camera:
    """Frames of SCENE with fresh sensor noise each time, optionally with the person at (x, y)."""

    def __init__(self, scene: np.ndarray = SCENE) -> None:
        self.scene = scene
        self.rng = np.random.default_rng(0)

    def frame(self, at: tuple[int, int] | None = None) -> np.ndarray:
        img = self.scene.astype(np.int16) + self.rng.normal(0, 2, self.scene.shape).astype(np.int16)
        if at is not None:
            x, y = at
            img[y : y + PERSON.shape[0], x : x + PERSON.shape[1]] = PERSON
        return np.clip(img, 0, 255).astype(np.uint8)


def person_box(x: int, y: int) -> tuple[int, int, int, int]:
    return x, y, x + PERSON.shape[1], y + PERSON.shape[0]


def walk(motion: MotionMap, camera: Camera, frames: int, x0: int = 10, y: int = 40, step: int = 4) -> int:
    """Background first, then the person walking right `step` px a frame; returns where they are."""
    motion.update(camera.frame())
    x = x0
    for i in range(frames):
        x = x0 + step * i
        motion.update(camera.frame((x, y)))
    return x


def test_the_first_frame_is_learnt_and_a_still_scene_has_no_motion() -> None:
    motion, camera = MotionMap(), Camera()
    motion.update(camera.frame())
    assert motion.latest.foreground is None and motion.frames == 1
    for _ in range(10):
        motion.update(camera.frame())
    assert motion.latest.foreground is not None
    assert cv2.countNonZero(motion.latest.foreground) == 0
    assert len(motion.latest.blobs()) == 0


def test_a_walking_person_is_one_blob_and_the_still_scene_around_them_is_not() -> None:
    motion, camera = MotionMap(), Camera()
    x = walk(motion, camera, 20)
    px1, py1, px2, py2 = person_box(x, 40)
    (blob,) = motion.latest.blobs()
    # Around the person, grown by the cleaning's dilation (a few pixels), no more.
    assert blob[0] <= px1 and blob[1] <= py1 and blob[2] >= px2 and blob[3] >= py2
    assert np.abs(blob - (px1, py1, px2, py2)).max() <= 6
    fg = motion.latest.foreground.copy()
    fg[py1 - 6 : py2 + 6, px1 - 6 : px2 + 6] = 0
    assert cv2.countNonZero(fg) == 0  # nothing where they walked before, nor anywhere else


def test_someone_who_stops_becomes_background_after_the_take_in_time() -> None:
    motion, camera = MotionMap(), Camera()
    x = walk(motion, camera, 20)
    px1, py1, px2, py2 = person_box(x, 40)
    standing = []
    for _ in range(TAKE_IN + 20):
        motion.update(camera.frame((x, 40)))
        standing.append(cv2.countNonZero(motion.latest.foreground[py1:py2, px1:px2]) > 0)
    taken_in = standing.index(False) + 1  # frames standing until they no longer show as moving
    assert TAKE_IN * 0.9 <= taken_in <= TAKE_IN * 1.1
    assert not any(standing[taken_in:])  # and they stay background


def test_a_shorter_history_takes_a_standing_person_in_sooner() -> None:
    motion, camera = MotionMap(history=300), Camera()
    x = walk(motion, camera, 20)
    px1, py1, px2, py2 = person_box(x, 40)
    frames = 0
    while cv2.countNonZero(motion.latest.foreground[py1:py2, px1:px2]) and frames < TAKE_IN:
        motion.update(camera.frame((x, 40)))
        frames += 1
    assert 0.11 * 300 * 0.8 <= frames <= 0.11 * 300 * 1.2


def test_a_scene_change_restarts_the_background_from_that_frame() -> None:
    motion, camera = MotionMap(), Camera()
    walk(motion, camera, 5)
    turned = Camera(np.ascontiguousarray(np.roll(SCENE, 50, axis=1)))  # the camera panned
    motion.update(turned.frame())
    assert motion.latest.scene_changed and motion.latest.foreground is None
    motion.update(turned.frame())
    assert not motion.latest.scene_changed
    assert cv2.countNonZero(motion.latest.foreground) == 0  # the new view is the background at once
    motion.update(turned.frame((60, 50)))
    (blob,) = motion.latest.blobs()  # and someone walking on it is found
    assert np.abs(blob - person_box(60, 50)).max() <= 6


def test_a_small_change_is_not_a_scene_change() -> None:
    motion, camera = MotionMap(), Camera()
    walk(motion, camera, 5)
    assert not motion.latest.scene_changed


def test_detection_regions_are_the_padded_upper_part_of_each_blob_merged() -> None:
    blobs = np.asarray([[100, 100, 120, 200], [300, 50, 340, 90]], np.float32)
    regions = detection_regions(blobs, 640, 360)
    # Upper 60 % of each blob, padded by 15 % of its size (not below: the head is at the top).
    assert sorted(regions) == [(97, 85, 123, 160), (294, 44, 346, 74)]
    # Overlapping ones become one region.
    touching = np.asarray([[100, 100, 120, 200], [110, 100, 130, 200]], np.float32)
    assert detection_regions(touching, 640, 360) == [(97, 85, 133, 160)]
    assert detection_regions(np.zeros((0, 4), np.float32), 640, 360) == []


def test_head_bands_are_the_top_of_each_blob() -> None:
    bands = head_bands(np.asarray([[10, 20, 30, 120]], np.float32))
    assert bands.tolist() == [[10, 20, 30, 55]]


@pytest.fixture
def moving_person() -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A foreground mask (at half the frame's size) with one person-shaped blob, and its box in frame
    pixels."""
    fg = np.zeros((H, W), np.uint8)
    fg[40:100, 60:80] = 255
    return fg, (120, 80, 160, 200)


def test_what_moves_outside_the_face_masks_is_masked_as_its_silhouette(moving_person) -> None:
    fg, (x1, y1, x2, y2) = moving_person
    movers = unexplained(fg, np.zeros((0, 4), np.float32), 0.5)
    (box,) = movers.boxes
    pad = 2 / 0.5  # pad_px=3 at half size rounds to 2 mask pixels: 4 frame pixels
    assert box.tolist() == [x1 - pad, y1 - pad, x2 + pad, y2 + pad]
    # The mask is the silhouette grown by the pad, not its box: the still scene beside it stays visible.
    assert movers.mask[40:100, 60:80].all()
    assert cv2.countNonZero(movers.mask) == (20 + 4) * (60 + 4)
    assert not movers.mask[:35].any() and not movers.mask[:, :55].any()


def test_motion_under_a_face_mask_is_accounted_for(moving_person) -> None:
    fg, (x1, y1, x2, y2) = moving_person
    head = np.asarray([[x1, y1, x2, y1 + 40]], np.float32)  # the top third of the blob
    (box,) = unexplained(fg, head, 0.5).boxes
    assert box[1] == y1 + 40 - 4 and box[3] == y2 + 4  # only the body below the face mask is left
    whole = np.asarray([[x1, y1, x2, y2]], np.float32)
    covered = unexplained(fg, whole, 0.5)
    assert len(covered.boxes) == 0 and not covered.mask.any()


def test_a_silhouette_with_a_hole_is_masked_whole(moving_person) -> None:
    # A face's plain middle can match the background: the blob has a hole, which is filled.
    fg, _ = moving_person
    fg[55:70, 64:76] = 0
    movers = unexplained(fg, np.zeros((0, 4), np.float32), 0.5)
    assert len(movers.boxes) == 1
    assert movers.mask[40:100, 60:80].all()
