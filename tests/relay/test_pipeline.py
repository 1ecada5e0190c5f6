"""One camera's pipeline with the real engine: frames in, anonymized packets out once for all viewers,
fail-closed when the engine breaks, the raw rendition only while a raw viewer is there."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import av
import numpy as np
import pytest
from prometheus_client import REGISTRY

from blur import Anonymizer
from relay.cameras import CameraSpec
from relay.hub import FRESH_START_S, Subscription
from relay.pipeline import REPEAT_WITHIN_S, FrameSlot, Pipeline, _Rendition, masked_frame
from tests.relay.conftest import HEIGHT, WIDTH, Sample, wait_for, write_clip

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, sample: Sample) -> Path:
    path = tmp_path_factory.mktemp("clip") / "street.mp4"
    write_clip(path, seconds=2.0, background=sample.background)
    return path


def spec_for(path: Path, camera_id: str, keepalive: bool = False) -> CameraSpec:
    return CameraSpec(id=camera_id, name=camera_id, source_url=str(path), redacted_url=str(path),
                      keepalive=keepalive)


@pytest.fixture
async def pipeline(clip: Path, request: pytest.FixtureRequest) -> AsyncIterator[Pipeline]:
    p = Pipeline(spec_for(clip, request.node.name[:40]), Anonymizer(profile="realtime", live=True))
    p.start()
    yield p
    await p.stop()


async def packets(sub: Subscription, count: int) -> list[av.Packet]:
    return [await asyncio.wait_for(sub.next_packet(), 10) for _ in range(count)]


def decode(packets: list[av.Packet]) -> list[np.ndarray]:
    decoder = av.CodecContext.create("h264", "r")
    return [f.to_ndarray(format="bgr24") for p in packets for f in decoder.decode(p)]


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_frame_slot_drops_the_oldest() -> None:
    slot = FrameSlot(2)
    frames = [masked_frame(16, 16) for _ in range(3)]
    assert slot.put((frames[0], 0.0)) and slot.put((frames[1], 1.0))
    assert not slot.put((frames[2], 2.0))  # full: the oldest goes
    got = [slot.get(0.1), slot.get(0.1), slot.get(0.01)]
    assert [g[1] if g else None for g in got] == [1.0, 2.0, None]
    assert slot.dropped == 1


def test_masked_frame_is_flat_grey() -> None:
    img = masked_frame(64, 32).to_ndarray(format="bgr24")
    assert img.shape == (32, 64, 3) and int(img.max()) - int(img.min()) <= 2


async def test_one_encode_for_all_viewers(pipeline: Pipeline) -> None:
    subs = [pipeline.subscribe() for _ in range(4)]
    got = await asyncio.gather(*(packets(s, 30) for s in subs))
    shared = {id(p) for p in got[0]} & {id(p) for p in got[3]}
    assert len(shared) >= 20  # the same packet objects went to every viewer
    frames_in = metric("relay_frames_in_total", camera=pipeline.camera_id)
    # One encode per frame, whatever the number of viewers (4 viewers here, not 4x the encodes).
    assert pipeline.encoder.frames_encoded <= frames_in + 1
    images = decode(got[0])
    assert images and images[0].shape == (HEIGHT, WIDTH, 3)
    health = pipeline.health()
    assert health.viewers == 4 and health.state == "live" and health.fps_in > 0 and health.fps_out > 0
    for s in subs:
        s.close()
    assert pipeline.health().viewers == 0


async def test_a_broken_engine_sends_grey_frames_and_counts_them(pipeline: Pipeline) -> None:
    class Broken:
        def process(self, frame: av.VideoFrame) -> tuple[av.VideoFrame, object]:
            raise RuntimeError("engine fault")

        def close(self) -> None:
            pass

    real, pipeline.anonymizer = pipeline.anonymizer, Broken()
    real.close()
    before = metric("relay_failsafe_frames_total", camera=pipeline.camera_id)
    sub = pipeline.subscribe()
    images = decode(await packets(sub, 15))
    assert images
    for img in images:
        assert float(img.std()) < 3  # flat: nothing of the scene leaves
    assert pipeline.failsafe_frames >= 15 and pipeline.anonymizer_errors >= 15
    assert metric("relay_failsafe_frames_total", camera=pipeline.camera_id) >= before + 15
    sub.close()


async def test_raw_rendition_lives_only_while_a_raw_viewer_does(pipeline: Pipeline) -> None:
    anon = pipeline.subscribe()
    await packets(anon, 5)
    assert not pipeline.has_raw_rendition and pipeline.raw_encoder is None
    raw = pipeline.subscribe(raw=True)
    assert pipeline.has_raw_rendition and raw.raw
    raw_packets = await packets(raw, 10)
    assert pipeline.raw_encoder is not None and pipeline.raw_encoder.frames_encoded >= 10
    assert raw_packets[0].is_keyframe
    assert pipeline.health().raw_viewers == 1
    raw.close()
    assert not pipeline.has_raw_rendition  # torn down with its last viewer
    await packets(anon, 5)  # the anonymized rendition carries on
    assert pipeline.health().raw_viewers == 0
    anon.close()


async def test_nobody_watching_costs_no_masking_or_encoding(clip: Path) -> None:
    calls = []

    class Counting(Anonymizer):
        def process(self, frame: av.VideoFrame):  # type: ignore[no-untyped-def]
            calls.append(1)
            return super().process(frame)

    p = Pipeline(spec_for(clip, "keepalive-idle", keepalive=True), Counting(profile="realtime", live=True))
    p.start()
    try:
        assert await wait_for(lambda: p.health().fps_in > 0 and p.health().connected, 10)
        await asyncio.sleep(0.3)
        assert calls == [] and p.encoder.frames_encoded == 0
        sub = p.subscribe()
        await packets(sub, 5)
        assert calls and p.encoder.frames_encoded >= 5
        sub.close()
    finally:
        await p.stop()
    assert p.health().state == "stopped"


async def test_stopping_ends_subscriptions(pipeline: Pipeline) -> None:
    sub = pipeline.subscribe()
    await packets(sub, 3)
    await pipeline.stop()
    assert sub.closed and sub.track.readyState == "ended"
    with pytest.raises(RuntimeError):
        pipeline.subscribe()


async def test_a_joining_viewer_starts_on_the_last_frame_again_at_once() -> None:
    """No frame comes after the first: the joining viewer's IDR is that frame re-encoded, not the next."""
    rendition = _Rendition("join-repeat", "anonymized", "h264", 25)
    rendition.start(asyncio.get_running_loop())
    try:
        picture = np.full((HEIGHT, WIDTH, 3), 40, np.uint8)
        picture[20:60, 30:90] = 220
        watcher = rendition.hub.subscribe()
        rendition.feed(av.VideoFrame.from_ndarray(picture, format="bgr24"), time.monotonic())
        first = await packets(watcher, 1)
        joiner = rendition.hub.subscribe()
        await asyncio.sleep(FRESH_START_S + 0.05)  # the IDR the watcher started on is no longer fresh
        joiner.prepare()  # its ICE connected: it asks for its IDR
        got = await packets(joiner, 1)
        assert got[0].is_keyframe and rendition.repeats == 1 and rendition.encoder.frames_encoded == 2
        assert got[0].pts == first[0].pts + 1  # the same picture, one tick later
        again = decode(first + got)
        assert len(again) == 2 and np.abs(again[1].astype(int) - again[0].astype(int)).mean() < 2
        assert (await packets(watcher, 1))[0] is got[0]  # one encode, for everyone
    finally:
        rendition.stop()


async def test_a_stale_last_frame_is_not_sent_again() -> None:
    """A camera that stopped sending: its last picture is not replayed to a joining viewer."""
    rendition = _Rendition("join-stale", "anonymized", "h264", 25)
    rendition.start(asyncio.get_running_loop())
    try:
        watcher = rendition.hub.subscribe()
        frame = av.VideoFrame.from_ndarray(np.zeros((HEIGHT, WIDTH, 3), np.uint8), format="bgr24")
        rendition.feed(frame, time.monotonic() - REPEAT_WITHIN_S - 0.1)
        await packets(watcher, 1)
        joiner = rendition.hub.subscribe()
        joiner.prepare()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(joiner.next_packet(), 0.5)
        assert rendition.repeats == 0 and rendition.encoder.frames_encoded == 1
    finally:
        rendition.stop()
