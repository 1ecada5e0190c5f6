"""Fan-out: every viewer gets the same packets from one encoder, starts on a keyframe, and a viewer that
does not keep up loses only its own packets."""

from __future__ import annotations

import asyncio

import av
import pytest
from aiortc.mediastreams import MediaStreamError

from relay.encoder import SharedEncoder
from relay.hub import Hub
from tests.relay.conftest import Sample, render

pytestmark = pytest.mark.timeout(30)


class Feed:
    """A real encoder feeding a hub, as the pipeline's worker does (here on the loop, frame by frame)."""

    def __init__(self, sample: Sample, gop_s: float = 10.0, max_queue: int = 30) -> None:
        self.encoder = SharedEncoder("h264", gop_s=gop_s, min_keyframe_interval_s=0.0)
        self.hub = Hub("cam", "anonymized", "h264", self.encoder.request_keyframe, max_queue=max_queue)
        self.sample = sample
        self.index = 0

    def step(self, n: int = 1) -> None:
        for _ in range(n):
            img, _ = render(self.sample.background, self.index)
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            self.hub.publish(self.encoder.encode(frame, self.index / 25))
            self.index += 1


async def test_new_subscriber_starts_on_a_requested_keyframe(sample: Sample) -> None:
    feed = Feed(sample)
    feed.step(5)  # the GOP's IDR is long gone
    sub = feed.hub.subscribe()
    first = asyncio.ensure_future(sub.next_packet())
    await asyncio.sleep(0)  # the first pull asks for an IDR
    feed.step(1)
    packet = await asyncio.wait_for(first, 2)
    assert packet.is_keyframe
    assert feed.encoder.keyframes_forced == 1  # asked for, not waited for until the next GOP
    sub.close()


async def test_one_encode_serves_every_subscriber_with_the_same_packets(sample: Sample) -> None:
    feed = Feed(sample)
    subs = [feed.hub.subscribe() for _ in range(5)]
    pulls = [asyncio.ensure_future(s.next_packet()) for s in subs]
    await asyncio.sleep(0)
    feed.step(1)
    firsts = await asyncio.gather(*pulls)
    feed.step(19)
    received = [[p, *[await s.next_packet() for _ in range(19)]] for p, s in zip(firsts, subs, strict=True)]
    assert feed.encoder.frames_encoded == 20  # 20 frames, 5 viewers: 20 encodes, not 100
    for other in received[1:]:
        assert all(a is b for a, b in zip(received[0], other, strict=True))  # the very same packet objects
    for s in subs:
        s.close()


async def test_slow_subscriber_drops_and_resumes_on_a_keyframe_without_holding_others(sample: Sample) -> None:
    feed = Feed(sample, max_queue=8)
    fast, slow = feed.hub.subscribe(), feed.hub.subscribe()
    pulls = [asyncio.ensure_future(fast.next_packet()), asyncio.ensure_future(slow.next_packet())]
    await asyncio.sleep(0)
    feed.step(1)
    await asyncio.gather(*pulls)
    got = 0
    for _ in range(30):  # the slow viewer reads nothing meanwhile
        feed.step(1)
        await fast.next_packet()
        got += 1
    assert got == 30 and fast.drops == 0
    assert slow.drops >= 1 and slow.queued <= slow.max_queue
    forced = feed.encoder.keyframes_forced
    assert forced >= 2  # the overflowing viewer asked for a fresh IDR to resume on
    feed.step(3)
    resumed = await slow.next_packet()
    assert resumed.is_keyframe
    fast.close()
    slow.close()


async def test_closed_subscription_ends_its_track_and_leaves_the_hub(sample: Sample) -> None:
    feed = Feed(sample)
    emptied = []
    feed.hub.on_empty(emptied.append)
    sub = feed.hub.subscribe()
    waiting = asyncio.ensure_future(sub.track.recv())
    await asyncio.sleep(0)
    sub.close()
    with pytest.raises(MediaStreamError):
        await asyncio.wait_for(waiting, 2)
    assert feed.hub.subscribers == 0 and emptied == [feed.hub]
    sub.close()  # idempotent
    assert sub.track.readyState == "ended"


async def test_stopping_the_track_closes_the_subscription(sample: Sample) -> None:
    feed = Feed(sample)
    sub = feed.hub.subscribe()
    sub.track.stop()  # what aiortc does when the peer connection closes
    assert sub.closed and feed.hub.subscribers == 0
