import threading
import time
from collections.abc import Callable

import av
import cv2
import numpy as np
import pytest

from blur import PROFILES, Anonymizer, FailReason, FrameReport, make_detector, maskers
from blur.anonymizer import Look
from blur.motion import MotionFrame
from tests.blur.scenes import (
    FACE_IN_CROP,
    background,
    changed_share,
    inner,
    paste,
    scene,
    textured_patch,
    to_frame,
)
from tests.support.detectors import FixedBoxDetector, RaisingDetector, StallingDetector

# One native-scale pass keeps the tests quick; the profiles' multi-scale search is the benchmark's job.
# No motion warm-up: these tests look at what happens from the second frame on (warm-up has its own test).
FAST = PROFILES["realtime"].with_(scales=(1.0,), zoom_scale=0.0, motion_gating=False, motion_warmup=0)
EXACT = FAST.with_(margin=1.0, margin_large=1.0, vertical=1.0, shape="box")


@pytest.fixture(scope="module")
def centerface():
    return make_detector("centerface", threshold=FAST.threshold)


def _far_from(box, img_w):
    # A strip on the side of the frame away from the face.
    return (0, 0, 60, 60) if box[0] > img_w // 2 else (img_w - 60, 0, img_w, 60)


def test_still_image_face_masked_and_background_untouched(centerface):
    img, face = scene(300, 100)
    out, report = Anonymizer(FAST, detector=centerface).process_bgr(img)
    assert isinstance(report, FrameReport)
    assert not report.failsafe and report.reason is None and report.detected
    assert changed_share(img, out, inner(face)) > 0.9
    assert changed_share(img, out, _far_from(face, 640), thr=0) == 0.0
    x1, y1, x2, y2 = face
    assert any(b[0] <= x1 + 5 and b[1] <= y1 + 5 and b[2] >= x2 - 5 and b[3] >= y2 - 5 for b in report.boxes)
    assert set(report.timings_ms) >= {"detect", "track", "mask"}


def test_video_frame_in_yuv420p_out(centerface):
    img, face = scene(40, 120)
    frame = to_frame(img, pts=42)
    out, report = Anonymizer(FAST, detector=centerface).process(frame)
    assert isinstance(out, av.VideoFrame)
    assert (out.format.name, out.width, out.height, out.pts) == ("yuv420p", 640, 360, 42)
    before, after = frame.to_ndarray(format="bgr24"), out.to_ndarray(format="bgr24")
    assert changed_share(before, after, inner(face)) > 0.9
    assert np.array_equal(before[:60, -60:], after[:60, -60:])
    assert not report.failsafe


@pytest.mark.parametrize("fmt", ["rgb24", "yuvj420p", "nv12", "gray"])
def test_any_pixel_format_in(fmt):
    img, _ = scene(200, 100)
    frame = av.VideoFrame.from_ndarray(img, format="bgr24").reformat(format=fmt)
    out, report = Anonymizer(EXACT, detector=FixedBoxDetector([(10, 10, 50, 50)])).process(frame)
    assert out.format.name == "yuv420p" and (out.width, out.height) == (640, 360)
    assert report.boxes == [(10, 10, 50, 50)]


def test_stages_in_order_give_what_process_gives_and_finish_needs_a_plan():
    img, _ = scene(200, 100)
    staged = Anonymizer(EXACT, detector=FixedBoxDetector([(10, 10, 50, 50)]))
    looked = staged.look(to_frame(img))
    with pytest.raises(ValueError, match="plan"):
        staged.finish(looked)  # a frame never leaves unplanned, hence unmasked
    out, report = staged.finish(staged.plan(looked))
    plain = Anonymizer(EXACT, detector=FixedBoxDetector([(10, 10, 50, 50)]))
    want, want_report = plain.process(to_frame(img))
    assert report.boxes == want_report.boxes == [(10, 10, 50, 50)]
    assert np.array_equal(out.to_ndarray(), want.to_ndarray())


def test_a_face_box_on_part_of_a_face_is_widened_to_a_face():
    # The detector boxes the right half of a still face (turned away, half hidden): the mask reaches to a
    # face's width about that box: nearly half of the other half is masked too (the engine's margins add
    # more; EXACT has none).
    img, (x1, y1, x2, y2) = scene(200, 100)
    half = (x1 + (x2 - x1) // 2, y1, x2, y2)
    left = (x1, y1, half[0], y2)
    frame = to_frame(img)
    before = frame.to_ndarray(format="bgr24")
    covered = {}
    for aspect in (0.0, 0.7):
        anonymizer = Anonymizer(EXACT.with_(face_min_aspect=aspect), detector=FixedBoxDetector([half]))
        out, _ = anonymizer.process(frame)
        covered[aspect] = changed_share(before, out.to_ndarray(format="bgr24"), left)
    assert covered[0.0] < 0.05 and covered[0.7] > 0.4, covered


@pytest.mark.parametrize("mode", maskers.MODES)
def test_yuv_planes_masked_exactly_like_the_plane_maskers(mode):
    img, _ = scene(200, 100)
    frame = to_frame(img)
    box = (101, 61, 201, 181)  # odd corners: chroma box rounds outwards
    out, report = Anonymizer(EXACT, mode=mode, detector=FixedBoxDetector([box])).process(frame)
    assert report.boxes == [box]
    y, u, v = (frame.to_ndarray()[:360], frame.to_ndarray()[360:450].reshape(180, 320),
               frame.to_ndarray()[450:].reshape(180, 320))
    want_y, want_u, want_v = y.copy(), u.copy(), v.copy()
    # A face found this large gets the coarser mosaic (`face_cells_large`).
    maskers.mask_boxes(want_y, [box], mode, "box", fill=16, cells=EXACT.face_cells_large)
    # A mosaic's face leaves grey (no skin colour): its chroma is flat, as a solid mask's is.
    chroma_mode = "solid" if mode == "pixelate" else mode
    maskers.mask_boxes(want_u, [(50, 30, 101, 91)], chroma_mode, "box", fill=128)
    maskers.mask_boxes(want_v, [(50, 30, 101, 91)], chroma_mode, "box", fill=128)
    got = out.to_ndarray()
    assert np.array_equal(got[:360], want_y)
    assert np.array_equal(got[360:450].reshape(180, 320), want_u)
    assert np.array_equal(got[450:].reshape(180, 320), want_v)
    assert not np.array_equal(got[:360], y)


def test_small_and_large_faces_get_their_own_mosaic_cells():
    img, _ = scene(200, 100)
    small, large = (10, 10, 28, 28), (100, 20, 160, 80)  # found 18 and 60 px high (large_px is 24)
    out, report = Anonymizer(EXACT, detector=FixedBoxDetector([small, large])).process(to_frame(img))
    assert sorted(report.boxes) == sorted([small, large])
    want = to_frame(img).to_ndarray()[:360].copy()
    maskers.mask_boxes(want, [small], "pixelate", "box", fill=16, cells=EXACT.face_cells)
    maskers.mask_boxes(want, [large], "pixelate", "box", fill=16, cells=EXACT.face_cells_large)
    assert EXACT.face_cells_large < EXACT.face_cells
    assert np.array_equal(out.to_ndarray()[:360], want)


def test_a_face_cut_by_the_pictures_edge_gets_the_coarse_cells():
    # Found 18 px high at the top edge: the detector saw part of the face, and the picture cuts its mask.
    img, _ = scene(200, 100)
    cfg = EXACT.with_(margin=1.4)
    out, report = Anonymizer(cfg, detector=FixedBoxDetector([(100, 2, 118, 20)])).process(to_frame(img))
    (box,) = report.boxes
    assert box[1] == 0
    y = to_frame(img).to_ndarray()[:360]
    coarse, fine = y.copy(), y.copy()
    maskers.mask_boxes(coarse, [box], "pixelate", "box", fill=16, cells=cfg.face_cells_large)
    maskers.mask_boxes(fine, [box], "pixelate", "box", fill=16, cells=cfg.face_cells)
    assert np.array_equal(out.to_ndarray()[:360], coarse)
    assert not np.array_equal(coarse, fine)


def test_a_face_inside_a_moving_crowd_shows_its_own_mosaic_not_the_silhouettes():
    # A crowd's moving region surrounds each face, and its filled silhouette covers the face too: the
    # face's coarser mosaic is drawn last, so it is what leaves.
    face = (280, 120, 328, 168)  # 48 px: 4 cells of 12 px
    anonymizer = Anonymizer(EXACT, detector=FixedBoxDetector([face]))
    crowd = textured_patch(200, 260, channels=3)
    backdrop = background(640, 360, seed=2)
    for i in range(8):
        out, report = anonymizer.process(to_frame(paste(backdrop, crowd, 170 + 6 * i, 80)))
    assert not report.failsafe and len(report.boxes) > 1  # the face and the silhouette around it
    y = out.to_ndarray()[:360]
    again = y.copy()
    maskers.mask_boxes(again, [face], "pixelate", "box", fill=16, cells=EXACT.face_cells_large)
    assert np.array_equal(again, y)  # the face box holds exactly its own 12 px cells
    x1, y1, x2, y2 = face
    assert len(np.unique(y[y1:y2, x1:x2])) > 1


def test_static_masks_always_applied_without_a_detector():
    cfg = FAST.with_(detector="none")
    img = background()
    poly = [(0.0, 0.0), (0.25, 0.0), (0.25, 0.5), (0.0, 0.5)]
    anonymizer = Anonymizer(cfg, masks=[poly], mode="solid")
    for _ in range(2):
        out, report = anonymizer.process_bgr(img)
        assert report.boxes == [] and not report.failsafe
        assert (out[:180, :160] == 0).all()
        assert np.array_equal(out[:, 161:], img[:, 161:])
        assert np.array_equal(out[181:], img[181:])


def test_fails_closed_when_the_detector_raises():
    img, face = scene(200, 100)
    anonymizer = Anonymizer(EXACT, detector=FixedBoxDetector([face]))
    _, ok = anonymizer.process_bgr(img)
    assert not ok.failsafe
    anonymizer.replace_detector(RaisingDetector())
    out, report = anonymizer.process_bgr(img)
    assert report.failsafe and report.boxes == []
    assert report.reason == "detector error: RuntimeError: injected detector fault: inference device lost"
    assert "\n" not in report.reason
    assert changed_share(img, out, (0, 0, 640, 360)) > 0.8  # the whole frame, not just the face
    assert changed_share(img, out, face) > 0.9
    # Between detection frames too, until a detection succeeds again.
    anonymizer.config = anonymizer.config.with_(detect_every=5)
    assert all(anonymizer.process_bgr(img)[1].failsafe for _ in range(3))
    anonymizer.replace_detector(FixedBoxDetector([face]))
    assert not anonymizer.process_bgr(img)[1].failsafe


def test_a_fail_closed_report_says_why_as_text_and_as_a_fail_reason():
    img, face = scene(200, 100)
    _, ok = Anonymizer(EXACT, detector=FixedBoxDetector([face])).process_bgr(img)
    assert (ok.failsafe, ok.reason, ok.cause) == (False, None, None)
    _, raised = Anonymizer(EXACT, detector=RaisingDetector()).process_bgr(img)
    assert raised.cause is FailReason.DETECTOR_ERROR
    assert raised.reason == "detector error: RuntimeError: injected detector fault: inference device lost"
    over = EXACT.with_(frame_budget_ms=0.0)  # every round runs over a zero budget
    _, late = Anonymizer(over, detector=FixedBoxDetector([face])).process_bgr(img)
    assert (late.failsafe, late.cause, late.reason) == (True, FailReason.BEHIND_BUDGET, "behind budget")


def _run_live(anonymizer, img, seconds, until=None):
    reports = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        out, report = anonymizer.process_bgr(img)
        reports.append((out, report))
        if until is not None and until(report):
            break
        time.sleep(0.01)
    return reports


def test_live_mode_masks_the_face(centerface):
    img, face = scene(300, 100)
    with Anonymizer(FAST.with_(detect_hz=20.0), detector=centerface, live=True) as anonymizer:
        reports = _run_live(anonymizer, img, 20.0, until=lambda r: not r.failsafe)
    out, last = reports[-1]
    assert not last.failsafe
    assert changed_share(img, out, inner(face)) > 0.9
    # Until the first detection arrives, frames leave fully masked.
    assert all(r.failsafe and r.reason == "awaiting first detection" for _, r in reports[:-1])


def test_live_mode_fails_closed_when_the_detector_stalls_and_recovers():
    img, face = scene(200, 100)
    cfg = EXACT.with_(detect_hz=50.0, stall_timeout_s=0.2, max_result_age_s=0.4)
    sleeper = StallingDetector()
    with Anonymizer(cfg, detector=FixedBoxDetector([face]), live=True) as anonymizer:
        ok = _run_live(anonymizer, img, 5.0, until=lambda r: not r.failsafe)
        assert not ok[-1][1].failsafe
        anonymizer.replace_detector(sleeper)
        stalled = _run_live(anonymizer, img, 0.8)
        # Never an unmasked frame: each one is either face-masked from fresh-enough tracks or fully masked.
        for out, _r in stalled:
            assert changed_share(img, out, face) > 0.9
        assert all(r.failsafe for _, r in stalled[-10:])
        assert stalled[-1][1].reason in ("detector stalled", "behind budget")
        assert any(r.reason == "detector stalled" for _, r in stalled)
        out, _ = stalled[-1]
        assert changed_share(img, out, (0, 0, 640, 360)) > 0.8
        anonymizer.replace_detector(FixedBoxDetector([face]))
        recovered = _run_live(anonymizer, img, 5.0, until=lambda r: not r.failsafe)
        assert not recovered[-1][1].failsafe
    sleeper.release.set()


def test_live_mode_fails_closed_when_the_detector_raises():
    img, face = scene(200, 100)
    with Anonymizer(EXACT.with_(detect_hz=50.0), detector=FixedBoxDetector([face]), live=True) as anonymizer:
        assert not _run_live(anonymizer, img, 5.0, until=lambda r: not r.failsafe)[-1][1].failsafe
        anonymizer.replace_detector(RaisingDetector())
        reports = _run_live(anonymizer, img, 5.0, until=lambda r: r.reason is not None)
    out, last = reports[-1]
    assert last.failsafe
    assert last.reason == "detector error: RuntimeError: injected detector fault: inference device lost"
    assert changed_share(img, out, (0, 0, 640, 360)) > 0.8


def test_live_mode_fails_closed_when_detection_falls_behind():
    img, face = scene(200, 100)

    class Slow(FixedBoxDetector):
        def detect(self, rgb):
            time.sleep(0.5)
            return super().detect(rgb)

    cfg = EXACT.with_(detect_hz=50.0, stall_timeout_s=5.0, max_result_age_s=0.3)
    with Anonymizer(cfg, detector=Slow([face]), live=True) as anonymizer:
        reports = _run_live(anonymizer, img, 1.6)
    reasons = {r.reason for _, r in reports}
    assert "behind budget" in reasons
    for out, _r in reports:
        assert changed_share(img, out, face) > 0.9


def test_process_never_waits_for_the_detector():
    img, _ = scene(200, 100)
    sleeper = StallingDetector()
    done = threading.Event()

    def feed():
        with Anonymizer(EXACT, detector=sleeper, live=True) as anonymizer:
            for _ in range(20):
                anonymizer.process_bgr(img)
        done.set()

    threading.Thread(target=feed, daemon=True).start()
    assert done.wait(10.0), "process() blocked on a stalled detector"
    sleeper.release.set()


def _moving_face_frames(n: int, step: int):
    for i in range(n):
        yield scene(40 + i * step, 90)


@pytest.mark.parametrize("track", [True, False])
def test_tracking_keeps_a_moving_face_covered_between_detections(centerface, track):
    # The moving-silhouette guard would cover the face on its own: off, to see what tracking does.
    cfg = FAST.with_(detect_every=6, track=track, guard_motion=False)
    anonymizer = Anonymizer(cfg, detector=centerface)
    covered, detected = [], 0
    for img, face in _moving_face_frames(24, 7):
        out, report = anonymizer.process(to_frame(img))
        detected += report.detected
        covered.append(changed_share(img, out.to_ndarray(format="bgr24"), inner(face)) > 0.9)
    assert detected == 4
    if track:
        assert all(covered)
    else:  # without tracking the boxes stay behind (or vanish) between detections
        assert not all(covered)


def test_a_moving_face_the_detector_misses_is_masked_as_a_silhouette():
    # A detector that finds nothing: from the second frame on, the moving portrait is masked because it
    # moves, and only it: the still background around it is left as it was.
    anonymizer = Anonymizer(FAST.with_(detect_every=6), detector=FixedBoxDetector([]))
    for i, (img, face) in enumerate(_moving_face_frames(20, 9)):
        frame = to_frame(img)
        before = frame.to_ndarray(format="bgr24")  # the same colour round trip, unmasked
        out, report = anonymizer.process(frame)
        if i == 0:
            continue
        after = out.to_ndarray(format="bgr24")
        assert changed_share(before, after, face) > 0.9, i
        assert changed_share(before, after, (face[0] - 40, 0, face[2] + 40, 10), thr=0) == 0.0
        assert not report.failsafe
    assert changed_share(before, after, (600, 300, 640, 360), thr=0) == 0.0


def test_a_slowly_moving_face_is_not_learnt_into_the_background():
    # One pixel a frame for four seconds: the background model's start-up rate would have absorbed it.
    anonymizer = Anonymizer(FAST.with_(detect_every=6), detector=FixedBoxDetector([]))
    frames = list(_moving_face_frames(100, 1))
    for img, _ in frames:
        out, _ = anonymizer.process(to_frame(img))
    img, face = frames[-1]
    assert changed_share(img, out.to_ndarray(format="bgr24"), inner(face)) > 0.9


def test_someone_who_stops_stays_masked_by_their_face_track_after_becoming_background(centerface):
    # Walks in, then stands still for 8 s at 25 fps: longer than the ~165 frames after which the
    # background model takes them in. By then their silhouette is gone (their shoulder shows again) but
    # the face track that detection rounds found keeps the face masked.
    anonymizer = Anonymizer(FAST.with_(detect_every=6), detector=centerface)
    walk = [scene(40 + 8 * i, 90) for i in range(20)]
    stand = [walk[-1]] * 200
    face = walk[-1][1]
    x, y = face[0] - FACE_IN_CROP[0], face[1] - FACE_IN_CROP[1]  # where the portrait was pasted
    shoulder = (x + 2, y + 60, x + 25, y + 120)  # beside the face mask
    for i, (img, _) in enumerate(walk + stand):
        frame = to_frame(img)
        before = frame.to_ndarray(format="bgr24")
        out, report = anonymizer.process(frame)
        if i == len(walk) + 25:  # standing for a second: still a moving silhouette
            assert changed_share(before, out.to_ndarray(format="bgr24"), shoulder) > 0.9
    after = out.to_ndarray(format="bgr24")
    assert not report.failsafe
    assert changed_share(before, after, inner(face)) > 0.9
    assert changed_share(before, after, shoulder, thr=0) == 0.0


def test_motion_is_seen_in_colour_not_only_brightness():
    # A patch as bright as the ground it crosses, but of another colour (a dark head on dark grass).
    anonymizer = Anonymizer(FAST.with_(detect_every=6), detector=FixedBoxDetector([]), mode="solid")
    for i in range(12):
        yuv = np.zeros((360, 640, 3), np.uint8)
        yuv[...] = (100, 128, 128)
        x = 100 + 12 * i
        yuv[150:210, x : x + 50] = (100, 90, 170)  # same Y, other U and V
        frame = to_frame(cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR))
        before = frame.to_ndarray(format="bgr24")
        out, _ = anonymizer.process(frame)
    after = out.to_ndarray(format="bgr24")
    assert changed_share(before, after, (x + 5, 155, x + 45, 205)) > 0.9
    assert changed_share(before, after, (500, 0, 640, 100), thr=0) == 0.0


def test_a_camera_turn_masks_the_frame_and_the_new_view_is_learnt_at_once():
    # A PTZ turn: the whole picture shifts. That frame leaves masked whole, with the reason; the background
    # is learnt again from it, so the still new view is shown from the next frame on.
    anonymizer = Anonymizer(FAST.with_(detect_every=6), detector=FixedBoxDetector([]))
    view = background(1280, 360)
    reports = []
    for shift in [0] * 5 + [72] * 5:  # half a period of the view's stripes: everything changes
        frame = to_frame(np.ascontiguousarray(view[:, shift : shift + 640]))
        before = frame.to_ndarray(format="bgr24")
        out, report = anonymizer.process(frame)
        reports.append(report)
    assert [r.reason for r in reports[:5]] == [None] * 5
    assert reports[5].failsafe and reports[5].reason == "scene changed"
    assert not any(r.failsafe for r in reports[6:])
    assert changed_share(before, out.to_ndarray(format="bgr24"), (0, 0, 640, 360), thr=0) == 0.0


def test_video_frames_leave_masked_whole_while_the_background_warms_up():
    # A face the detector misses, moving a pixel a frame: in the first frames its motion is a sliver that
    # does not cover it, so frames 1 .. motion_warmup-1 leave masked whole; frame 0 is judged like a still
    # image (its detection round) and from the end of the warm-up the silhouette covers the face.
    cfg = FAST.with_(detect_every=6, motion_warmup=5)
    anonymizer = Anonymizer(cfg, detector=FixedBoxDetector([]))
    reports = []
    for i in range(8):
        img, face = scene(200 + i, 100)
        out, report = anonymizer.process_bgr(img)
        reports.append(report)
    assert [r.cause for r in reports] == [None] + [FailReason.MOTION_WARMING_UP] * 4 + [None] * 3
    assert reports[1].reason == "motion warming up"
    assert changed_share(img, out, inner(face)) > 0.6  # the silhouette covers the face after warm-up


def test_motion_mask_mode_masks_heads_of_moving_people_without_a_detector():
    cfg = FAST.with_(detector="none", motion_mask=True)
    anonymizer = Anonymizer(cfg, mode="solid")  # the flat "head" below would survive a mosaic unchanged
    bg = background()
    changed = []
    for i in range(30):
        img = bg.copy()
        x = 100 + i * 8
        img[100:300, x : x + 60] = (200, 180, 160)  # a "person" crossing
        img[100:140, x + 15 : x + 45] = (90, 120, 200)  # ...with a head
        out, report = anonymizer.process_bgr(img)
        changed.append(changed_share(img, out, (x + 15, 100, x + 45, 140)))
    assert min(changed[-10:]) > 0.6
    assert report.boxes


def _run_length(row: np.ndarray) -> float:
    """Median length of the runs of equal values along a row: a mosaic's cell width there."""
    edges = np.flatnonzero(np.diff(row.astype(np.int16)) != 0)
    return float(np.median(np.diff(edges)))


# A crowd of 12 px faces along the top of the picture, found by every round.
SMALL_FACES = [(20 + 40 * k, 30 + 20 * (k % 3), 32 + 40 * k, 42 + 20 * (k % 3)) for k in range(15)]


def _walker_cell_widths(backdrop_at: Callable[[int], np.ndarray], frames: int, at: tuple[int, ...],
                        ) -> tuple[dict[int, float], list]:
    """A textured walker crossing `backdrop_at(i)` below SMALL_FACES: the width of its silhouette's mosaic
    cells at the frames `at`, and every frame's report."""
    anonymizer = Anonymizer(EXACT, detector=FixedBoxDetector(SMALL_FACES))
    walker = textured_patch(100, 120, channels=3)
    widths, reports = {}, []
    for i in range(frames):
        x = 100 + 4 * (i % 60)
        out, report = anonymizer.process(to_frame(paste(backdrop_at(i), walker, x, 220)))
        reports.append(report)
        if i in at:
            widths[i] = _run_length(out.to_ndarray()[:360][270, x + 10 : x + 110])
    return widths, reports


def test_silhouette_cells_start_coarse_and_grow_finer_slowly():
    # The detector teaches the perspective a crowd of 12 px faces from the first round, but a larger face
    # it has not found may stand anywhere: the silhouettes' cells start at the fallback's (a sixth of a
    # face a sixth of the picture high: 10 px here) and grow finer by at most a fifth a second.
    backdrop = background(640, 360, seed=2)
    widths, reports = _walker_cell_widths(lambda i: backdrop, 60, (10, 35, 59))
    assert not reports[-1].failsafe
    # 48 px faces' cells (8 px) in the first second, then 38 and 31 px faces' (7, 6 px); the crowd's
    # own faces (12 px, padded to 16) would give 4 px cells from the start.
    assert widths[10] >= 7.5, widths
    assert widths[59] < widths[10] and widths[59] >= 5.5, widths


def test_a_camera_turn_starts_the_silhouette_cells_coarse_again():
    # After two seconds the cells have grown finer; the camera turns (half a period of the view's stripes:
    # the whole picture changes). The faces learnt belong to the view it left: the cells start over.
    view = background(1280, 360, seed=2)
    before, after = np.ascontiguousarray(view[:, :640]), np.ascontiguousarray(view[:, 72:712])
    widths, reports = _walker_cell_widths(lambda i: before if i < 60 else after, 90, (59, 70))
    assert reports[60].failsafe and reports[60].reason == "scene changed"
    assert widths[59] < 7.5 and widths[70] >= 7.5, widths


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="unknown mask mode"):
        Anonymizer(FAST.with_(detector="none"), mode="swirl")
    with pytest.raises(ValueError, match=r"coordinates in \[0, 1\]"):
        Anonymizer(FAST.with_(detector="none"), masks=[[(0, 0), (2, 0), (0, 1)]])
    with pytest.raises(ValueError, match="unknown profile"):
        Anonymizer(profile="fastest")
    with pytest.raises(ValueError, match="perspective_hold"):
        Anonymizer(FAST.with_(detector="none", perspective_hold=1.5))
    with pytest.raises(ValueError, match="face_min_aspect"):
        Anonymizer(FAST.with_(detector="none", face_min_aspect=-0.5))
    with pytest.raises(ValueError, match="BGR"):
        Anonymizer(FAST.with_(detector="none")).process_bgr(np.zeros((10, 10), np.uint8))


def test_motion_gated_rounds_keep_a_still_face_and_follow_a_moving_one(centerface):
    # After the first whole-frame sweep, rounds look only where something moved: a face standing still
    # must stay masked (its track is neither confirmed nor aged there), the moving one must be followed.
    cfg = FAST.with_(motion_gating=True, full_sweep_s=1000.0, detect_every=1)
    anonymizer = Anonymizer(cfg, detector=centerface)
    still_portrait = scene(430, 120)[0][120:320, 430:600]
    for i in range(20):
        img, moving = scene(10 + i * 6, 60)
        img[120:320, 430:600] = still_portrait
        still = (430 + 41, 120 + 38, 430 + 130, 120 + 158)
        out, report = anonymizer.process_bgr(img)
        assert report.detected and not report.failsafe
        assert changed_share(img, out, inner(still)) > 0.9, i
        assert changed_share(img, out, inner(moving)) > 0.9, i


def test_boxes_are_moving_when_most_of_their_pixels_move() -> None:
    # The tracker asks this of every box a round finds (hundreds on a crowd): boxes in frame pixels, the
    # foreground at a quarter of the frame.
    fg = np.zeros((90, 160), np.uint8)
    fg[20:40, 30:70] = 255
    look = Look(index=3, small=fg, scale=0.25,
                motion=MotionFrame(frames=20, foreground=fg, scene_changed=False, min_area_frac=0.0),
                timings_ms={})
    boxes = np.array([[120, 80, 280, 160, 0.9],    # inside the moving block
                      [200, 80, 360, 160, 0.9],    # half on it, half off: not mostly moving
                      [120, 200, 200, 280, 0.9],   # still pixels
                      [700, 400, 800, 500, 0.9],   # off the picture
                      [-40, 80, 40, 160, 0.9]],    # cut by the picture's edge, nothing moving there
                     np.float32)
    assert Anonymizer._moving(look)(boxes).tolist() == [True, False, False, False, False]
    assert Anonymizer._moving(look)(np.zeros((0, 5), np.float32)).shape == (0,)
    still = Look(index=3, small=fg, scale=0.25, motion=None, timings_ms={})
    assert not Anonymizer._moving(still)(boxes).any()
