"""The scene-legibility and face-readability scores of the video privacy benchmark."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import metrics

from benchmarks import legibility as leg
from benchmarks.common import shared_data_dir
from benchmarks.privacy_video import parse_settings, results_name, run_profile
from benchmarks.videogen import make_clip


def _scene(h: int = 720, w: int = 1280, seed: int = 0) -> np.ndarray:
    """A textured grey picture (smoothed noise plus edges), float 0–255."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (h, w)).astype(np.float32), (0, 0), 3) * 3 - 255
    img[:, w // 3 : w // 2] += 60
    return np.clip(img, 0, 255).astype(np.float32)


def test_untouched_picture_scores_one_and_no_collateral() -> None:
    grey = _scene()
    free = leg.face_free_mask(grey.shape, [(100, 100, 140, 150), (600, 300, 680, 400)])
    legibility, collateral, _ = leg.scene_scores(grey, grey.copy(), free)
    assert legibility == pytest.approx(1.0, abs=1e-6)
    assert collateral == 0.0


def test_changes_away_from_faces_lower_legibility_and_count_as_collateral() -> None:
    grey = _scene()
    out = grey.copy()
    out[:, :640] = cv2.resize(cv2.resize(grey[:, :640], (40, 45), interpolation=cv2.INTER_AREA), (640, 720),
                              interpolation=cv2.INTER_NEAREST)
    free = leg.face_free_mask(grey.shape, [])
    legibility, collateral, _ = leg.scene_scores(grey, out, free)
    assert legibility < 0.8
    assert 0.3 < collateral <= 0.5


def test_changes_on_faces_do_not_count() -> None:
    grey = _scene()
    boxes = [(100, 100, 140, 152), (601, 303, 683, 401)]
    out = grey.copy()
    for x1, y1, x2, y2 in boxes:
        out[y1:y2, x1:x2] = 0
    legibility, collateral, _ = leg.scene_scores(grey, out, leg.face_free_mask(grey.shape, boxes))
    # Tile pixels near a face still see it through the SSIM window: close to 1, not exactly.
    assert legibility > 0.995
    assert collateral == 0.0


def test_the_loss_is_split_by_what_covered_the_pixels() -> None:
    grey = _scene()
    out = grey.copy()
    left = np.zeros(grey.shape, bool)
    left[:, :320] = True      # a coarse mosaic here...
    right = np.zeros(grey.shape, bool)
    right[:, 960:] = True     # ...and a flat fill there
    out[:, :320] = cv2.resize(cv2.resize(grey[:, :320], (20, 45), interpolation=cv2.INTER_AREA), (320, 720),
                              interpolation=cv2.INTER_NEAREST)
    out[:, 960:] = 128
    free = leg.face_free_mask(grey.shape, [])
    legibility, _, parts = leg.scene_scores(grey, out, free, {"mosaic": left, "flat": right})
    assert set(parts) == {"mosaic", "flat", "untouched"}
    assert sum(parts.values()) == pytest.approx(1 - legibility, abs=1e-5)
    # Each region is a quarter of the picture; a flat fill loses more than a mosaic of it, and the
    # untouched half loses only what the SSIM window sees of the edges.
    assert parts["flat"] > parts["mosaic"] > 0.05 > parts["untouched"] > 0
    # A tile pixel is counted once, in the first part it touches.
    _, _, twice = leg.scene_scores(grey, out, free, {"mosaic": left, "again": left, "flat": right})
    assert twice["again"] == 0.0 and twice["mosaic"] == pytest.approx(parts["mosaic"])


def test_face_boxes_grow_an_eighth_each_side() -> None:
    free = leg.face_free_mask((100, 100), [(40, 40, 56, 72)])
    rows, cols = np.nonzero(~free)
    assert (cols.min(), cols.max() + 1, rows.min(), rows.max() + 1) == (38, 58, 36, 76)


def test_ssim_map_agrees_with_scikit_image() -> None:
    a = _scene(120, 160, seed=1)
    b = np.clip(a + np.random.default_rng(2).normal(0, 12, a.shape), 0, 255).astype(np.float32)
    _, ref = metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, win_size=7,
                                           use_sample_covariance=False, data_range=255, full=True)
    ours = leg.ssim_map(a, b)
    # scikit-image's Gaussian runs to 3.5 sigma (11 taps), ours is the 7x7 window: close, not equal.
    assert abs(float(ours[3:-3, 3:-3].mean()) - float(ref[3:-3, 3:-3].mean())) < 0.02


def test_reference_mosaic_has_six_cells_down_the_face() -> None:
    crop = _scene(36, 30, seed=3)
    m = leg.mosaic(crop)
    assert len(np.unique(m[:, 0])) <= 6
    assert np.array_equal(m[0:6, 0:6], np.full((6, 6), m[0, 0]))


def test_face_readability() -> None:
    face = _scene(40, 32, seed=4)
    kept, ref = leg.face_readability(face, face.copy())
    assert kept == pytest.approx(1.0) and leg.readable(kept, ref)
    # The reference mosaic itself, a coarser one and a flat fill are not readable.
    assert not leg.readable(*leg.face_readability(face, leg.mosaic(face)))
    assert not leg.readable(*leg.face_readability(face, leg.mosaic(face, cells=3)))
    assert not leg.readable(*leg.face_readability(face, np.full_like(face, 128)))
    # A light blur keeps the face readable.
    assert leg.readable(*leg.face_readability(face, cv2.GaussianBlur(face, (3, 3), 0.8)))


def test_cells_down_counts_a_mosaic_s_cells_and_not_an_unmasked_face_s() -> None:
    face = _scene(48, 36, seed=5)
    assert leg.cells_down(leg.mosaic(face)) == 6
    assert leg.cells_down(leg.mosaic(face, cells=4)) == 4
    assert leg.cells_down(face) > 20
    # Only the rows where the face shows count.
    visible = np.zeros(face.shape, bool)
    visible[:24] = True
    assert leg.cells_down(leg.mosaic(face), visible) == 3


def test_clips_of_other_seeds_have_their_own_results() -> None:
    assert results_name("vtest", 0) == "privacy_video"
    assert results_name("crowd", 2) == "privacy_video_crowd_stops"
    assert results_name("crowd", 0, 2027) == "privacy_video_crowd_seed2027"


@pytest.mark.parametrize("clip", ["vtest", "crowd"])
def test_untouched_clip_scores_one(tmp_path, clip: str) -> None:
    # The internal evaluation data lies beside the checkout (../shared/data, as in CI) or at CCTV_SHARED_DATA.
    assert (shared_data_dir() / "faces" / "wider-val-416").is_dir(), "no internal evaluation data"
    truth = make_clip(tmp_path / "clip.mp4", n_frames=6, background=clip)
    res = run_profile(truth, "untouched")
    assert res["legibility"] == pytest.approx(1.0, abs=1e-6)
    assert sum(res["legibility_loss_by_mask"].values()) == pytest.approx(0.0, abs=1e-4)
    assert res["collateral"] == 0.0
    assert res["uncovered_share"] == 1.0 and res["readable_share"] == 1.0


def test_a_realtime_run_says_which_masks_cost_the_legibility(tmp_path) -> None:
    assert (shared_data_dir() / "faces" / "wider-val-416").is_dir(), "no internal evaluation data"
    truth = make_clip(tmp_path / "clip.mp4", n_frames=12, background="vtest")
    res = run_profile(truth, "realtime")
    parts = res["legibility_loss_by_mask"]
    assert sum(parts.values()) == pytest.approx(1 - res["legibility"], abs=1e-3)
    # Frames 1-4 leave masked whole while the background is learnt; from frame 5 faces have their masks.
    assert parts["whole frame"] > 0 and parts["face masks"] > 0


def test_variant_settings_are_checked_and_named() -> None:
    assert parse_settings(["threshold=0.15", "scales=[1, 2]", "detector=centerface", "track_persist=1"]) == {
        "threshold": 0.15, "scales": (1, 2), "detector": "centerface",
        "track_persist": 1}
    assert parse_settings(["margin=1", "frame_budget_ms=40"]) == {"margin": 1.0, "frame_budget_ms": 40.0}
    assert parse_settings(["frame_budget_ms=null"]) == {"frame_budget_ms": None}
    for bad in (["nope=1"], ["threshold"], ["threshold=high"], ["track=1"], ["frame_budget_ms=soon"]):
        with pytest.raises(SystemExit):
            parse_settings(bad)
    assert results_name("crowd", 0, 2027, "t15") == "privacy_video_crowd_seed2027_t15"
