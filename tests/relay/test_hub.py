"""Fan-out: every viewer gets the same packets from one encoder, starts on a keyframe (asked for as it
subscribes, or one the encoder emitted moments before), and a viewer that does not keep up loses only its own
packets."""

from __future__ import annotations

import asyncio

import av
import pytest
from aiortc.mediastreams import MediaStreamError

from relay.encoder import SharedEncoder
from relay.hub import FRESH_START_S, Hub
from tests.relay.conftest import Sample, render

pytestmark = pytest.mark.timeout(30)


class Feed:
    """A real encoder feeding a hub, as the pipeline's worker does (here on the loop, frame by frame). The
    hub's clock is the feed's: 25 frames a second."""

    def __init__(self, sample: Sample, gop_s: float = 10.0, max_queue: int = 30) -> None:
        self.encoder = SharedEncoder("h264", gop_s=gop_s, min_keyframe_interval_s=0.0)
        self.hub = Hub("cam", "anonymized", "h264", self.encoder.request_keyframe, max_queue=max_queue,
                       clock=lambda: self.index / 25)
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
    feed.step(10)  # the GOP's IDR is 0.4 s old: too old to start on
    sub = feed.hub.subscribe()  # asks for an IDR
    first = asyncio.ensure_future(sub.next_packet())
    await asyncio.sleep(0)  # the first pull does not ask again: the IDR asked for moments ago is coming
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


async def test_keyframe_asked_for_on_joining_is_there_when_the_viewer_has_connected(sample: Sample) -> None:
    feed = Feed(sample)
    feed.step(10)
    sub = feed.hub.subscribe()  # the WHEP request: the IDR is asked for now, not once connected
    feed.step(3)  # ICE and DTLS take a few frame intervals; the IDR and two frames queue meanwhile
    packets = [await asyncio.wait_for(sub.next_packet(), 2) for _ in range(3)]  # connected: first pull
    assert packets[0].is_keyframe and not any(p.is_keyframe for p in packets[1:])
    assert feed.encoder.keyframes_forced == 1  # no second IDR for the first pull
    assert sub.queued == 0
    sub.close()


async def test_viewers_joining_moments_apart_start_on_one_keyframe(sample: Sample) -> None:
    feed = Feed(sample)
    feed.step(10)
    first = feed.hub.subscribe()
    feed.step(3)
    second = feed.hub.subscribe()  # 3 frames after the first viewer's IDR: it starts on that one
    feed.step(2)
    a = [await first.next_packet() for _ in range(5)]
    b = [await second.next_packet() for _ in range(5)]
    assert a[0].is_keyframe and all(x is y for x, y in zip(a, b, strict=True))
    assert feed.encoder.keyframes_forced == 1


async def test_viewer_that_connects_late_starts_on_a_fresh_keyframe(sample: Sample) -> None:
    feed = Feed(sample)
    feed.step(10)
    sub = feed.hub.subscribe()
    feed.step(round(FRESH_START_S * 25) + 5)  # its IDR, queued on joining, is now older than FRESH_START_S
    stale = sub.queued
    pull = asyncio.ensure_future(sub.next_packet())
    await asyncio.sleep(0)  # the first pull drops what queued and asks for a new IDR
    assert stale > 0 and sub.queued == 0
    feed.step(1)
    packet = await asyncio.wait_for(pull, 2)
    assert packet.is_keyframe and feed.encoder.keyframes_forced == 2
    assert packet.pts == feed.encoder._last_pts  # the frame just encoded, not the stale IDR
    sub.close()
