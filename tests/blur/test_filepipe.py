"""The threaded file path: decode | engine | encode keeps order and output, and fails whole.

`run_pipeline` on its own with stages of random speed, then `cctv-relay anonymize`'s video path in-process:
the same frames as a plain sequential loop gives, and no output (not even a partial file) when the engine,
the encoder or the user stops it midway.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from blur import Anonymizer, cli
from blur.filepipe import run_pipeline
from blur.media import VideoReader, VideoWriter
from blur.planes import plane_views
from tests.blur.test_cli import CLIP_FRAMES, make_clip

# ------------------------------------------------------------------ run_pipeline on its own


def _stage_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name in ("file-decode", "file-encode")]


def _jitter(rng: random.Random) -> None:
    if rng.random() < 0.3:
        time.sleep(rng.random() * 0.003)


def test_order_and_results_do_not_depend_on_stage_speed() -> None:
    expected = list(np.cumsum(range(300)))
    for seed in range(4):
        rngs = [random.Random(seed * 3 + i) for i in range(3)]
        total = 0

        def source(rng: random.Random = rngs[0]) -> Iterator[int]:
            for i in range(300):
                _jitter(rng)
                yield i

        def step(item: int, rng: random.Random = rngs[1]) -> int:
            nonlocal total  # state carried from item to item, as the engine's tracks are
            _jitter(rng)
            total += item
            return total

        got: list[int] = []

        def sink(item: int, rng: random.Random = rngs[2], got: list[int] = got) -> None:
            _jitter(rng)
            got.append(item)

        assert run_pipeline(source(), step, sink, depth=2) == 300
        assert got == expected
    assert not _stage_threads()


def test_step_error_stops_every_stage_and_is_raised() -> None:
    got: list[int] = []

    def step(item: int) -> int:
        if item == 7:
            raise ValueError("engine broke on 7")
        return item

    with pytest.raises(ValueError, match="engine broke on 7"):
        run_pipeline(iter(range(10**9)), step, got.append)  # a source that would never end
    assert got == list(range(7))  # what came before the failure still reached the sink, as in a plain loop
    assert not _stage_threads()


def test_sink_error_stops_the_engine_and_comes_before_its_later_errors() -> None:
    seen: list[int] = []

    def step(item: int) -> int:
        seen.append(item)
        if item == 8:
            raise ValueError("a later engine error")
        return item

    def sink(item: int) -> None:
        if item == 5:
            time.sleep(0.05)  # the engine has run ahead into its own error by now, most likely
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        run_pipeline(iter(range(10**9)), step, sink, depth=4)
    assert max(seen) <= 8  # stopped, not at the source's end
    assert not _stage_threads()


def test_source_error_comes_after_the_items_read_before_it() -> None:
    stepped: list[int] = []
    got: list[int] = []

    def source() -> Iterator[int]:
        yield from range(5)
        raise OSError("truncated")

    def step(item: int) -> int:
        stepped.append(item)
        return item

    with pytest.raises(OSError, match="truncated"):
        run_pipeline(source(), step, got.append)
    assert stepped == got == [0, 1, 2, 3, 4]
    assert not _stage_threads()


def test_keyboard_interrupt_wins_and_stops_every_stage() -> None:
    def step(item: int) -> int:
        if item == 3:
            raise KeyboardInterrupt
        return item

    def sink(item: int) -> None:
        raise OSError("not this one")

    with pytest.raises(KeyboardInterrupt):
        run_pipeline(iter(range(10**9)), step, sink)
    assert not _stage_threads()


# ------------------------------------------------------------------ the video path of `anonymize`


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "walk.mp4"
    make_clip(path)
    return path


def _decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="yuv420p") for f in container.decode(video=0)]


def _factory(profile: str, **kwargs: Any) -> Any:
    def factory(live: bool, fps: float | None = None) -> Any:
        return Anonymizer(cli.engine_config(profile, fps), live=live, **kwargs)

    return factory


def _record_writes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bytes, int | None]]:
    """What reaches the encoder: each frame's planes and its timestamp, in order."""
    written: list[tuple[bytes, int | None]] = []
    write = VideoWriter.write

    def recording(self: VideoWriter, frame: av.VideoFrame, pts: int | None) -> None:
        written.append((b"".join(np.ascontiguousarray(p).tobytes() for p in plane_views(frame)), pts))
        write(self, frame, pts)

    monkeypatch.setattr(VideoWriter, "write", recording)
    return written


@pytest.mark.parametrize("profile", ["realtime", "quality"])
def test_threaded_path_writes_what_a_sequential_loop_writes(walk: Path, tmp_path: Path, profile: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    encoder = cli.encoder_options(profile)
    threaded = tmp_path / "threaded" / "walk.mp4"
    threaded.parent.mkdir()
    written = _record_writes(monkeypatch)
    summary = cli._anonymize_video(walk, threaded, _factory(profile), encoder)
    assert summary.frames == CLIP_FRAMES

    sequential = tmp_path / "walk.mp4"
    ours = written[:]
    written.clear()
    with VideoReader(walk) as reader:
        anonymizer = _factory(profile)(live=False, fps=float(reader.rate))
        writer = VideoWriter(sequential, reader.width, reader.height, reader.rate, reader.time_base, encoder)
        for frame in reader.frames():
            pts = frame.pts
            out, _ = anonymizer.process(frame)
            writer.write(out, pts)
        writer.commit()
        anonymizer.close()
    theirs = written

    # The encoder gets the very same frames, in the same order, with the same timestamps...
    assert len(ours) == len(theirs) == CLIP_FRAMES
    for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
        assert a == b, f"frame {i} differs"
    # ...and the files show the same pictures (bit for bit where x264 runs on one thread).
    for a, b in zip(_decoded(threaded), _decoded(sequential), strict=True):
        assert np.abs(a.astype(np.int16) - b).mean() < 0.5


def test_realtime_files_detect_on_the_live_schedule() -> None:
    from blur import PROFILES

    hz = PROFILES["realtime"].detect_hz
    assert cli.engine_config("realtime", 25.0).detect_every == round(25 / hz)
    assert cli.engine_config("realtime", 12.0).detect_every == round(12 / hz)
    assert cli.engine_config("realtime", 1.0).detect_every == 1
    assert cli.engine_config("realtime", None).detect_every == PROFILES["realtime"].detect_every  # images
    assert cli.engine_config("quality", 25.0).detect_every == 1


class _FailingEngine:
    """A real engine whose stage `stage` raises `exc` on frame `at`."""

    def __init__(self, exc: BaseException, at: int, stage: str = "plan", **kwargs: Any) -> None:
        self._engine = Anonymizer(cli.engine_config("realtime", 12.0), live=False)
        self._exc, self._at, self._stage = exc, at, stage
        self._seen = {"look": 0, "plan": 0, "finish": 0}

    def _maybe_fail(self, stage: str) -> None:
        self._seen[stage] += 1
        if stage == self._stage and self._seen[stage] > self._at:
            raise self._exc

    def look(self, frame: av.VideoFrame) -> Any:
        self._maybe_fail("look")
        return self._engine.look(frame)

    def plan(self, prepared: Any) -> Any:
        self._maybe_fail("plan")
        return self._engine.plan(prepared)

    def finish(self, prepared: Any) -> Any:
        self._maybe_fail("finish")
        return self._engine.finish(prepared)

    def close(self) -> None:
        self._engine.close()


def _args(walk: Path, out: Path) -> argparse.Namespace:
    return argparse.Namespace(inputs=[walk], out=out, profile="realtime", mode="pixelate")


@pytest.mark.parametrize(("exc", "status", "stage"), [
    (RuntimeError("model exploded"), 1, "plan"), (KeyboardInterrupt(), 130, "plan"),
    (RuntimeError("model exploded"), 1, "look"), (RuntimeError("model exploded"), 1, "finish")])
def test_engine_failure_mid_file_leaves_no_output(walk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str], exc: BaseException,
                                                  status: int, stage: str) -> None:
    import blur

    monkeypatch.setattr(blur, "Anonymizer", lambda *a, **k: _FailingEngine(exc, CLIP_FRAMES // 2, stage))
    out = tmp_path / "out"
    assert cli.run(_args(walk, out)) == status
    assert list(out.iterdir()) == []  # not even the partial file
    assert not _stage_threads()
    err = capsys.readouterr().err
    assert ("model exploded" in err) if status == 1 else ("interrupted" in err)


def test_encoder_failure_mid_file_leaves_no_output(walk: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    write = VideoWriter.write

    def failing_write(self: VideoWriter, frame: av.VideoFrame, pts: int | None) -> None:
        if self.written == CLIP_FRAMES // 2:
            raise OSError("No space left on device")
        write(self, frame, pts)

    monkeypatch.setattr(VideoWriter, "write", failing_write)
    out = tmp_path / "out"
    assert cli.run(_args(walk, out)) == 1
    assert list(out.iterdir()) == []
    assert not _stage_threads()


def test_the_first_stage_may_run_any_distance_ahead(walk: Path) -> None:
    # Where a round looks depends only on the frames so far, never on the tracks: every frame through
    # `look` first, then `plan` and `finish`, masks exactly as `process` does frame by frame.
    config = cli.engine_config("realtime", 12.0)
    with VideoReader(walk) as reader:
        frames = list(reader.frames())
    one_by_one = Anonymizer(config, live=False)
    staged = Anonymizer(config, live=False)
    try:
        expected = [one_by_one.process(f) for f in frames]
        looked = [staged.look(f) for f in frames]
        got = [staged.finish(staged.plan(p)) for p in looked]
    finally:
        one_by_one.close()
        staged.close()
    assert sum(r.detected for _, r in expected) >= 2  # rounds ran, on more than the first frame
    assert sum(len(r.boxes) > 0 for _, r in expected) > len(frames) // 2
    for (want, want_report), (out, report) in zip(expected, got, strict=True):
        assert report.boxes == want_report.boxes and report.failsafe == want_report.failsafe
        assert all(np.array_equal(a, b) for a, b in zip(plane_views(out), plane_views(want), strict=True))
