"""Fan-out: every viewer gets the same packets from one encoder, starts on a keyframe that is the newest
frame (asked for when its ICE connects or at its first pull, or one the encoder has just emitted), never on a
backlog, and a viewer that does not keep up loses only its own packets."""

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
    """A real encoder feeding a hub, as the pipeline's worker does (here on the loop, frame by frame). The
    hub's clock is the feed's: 25 frames a second."""

    def __init__(self, sample: Sample, gop_s: float = 10.0, max_queue: int = 30,
                 min_keyframe_interval_s: float = 0.0) -> None:
        self.encoder = SharedEncoder("h264", gop_s=gop_s, min_keyframe_interval_s=min_keyframe_interval_s)
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


async def test_keyframe_asked_for_when_ice_connects_is_what_the_viewer_starts_on(sample: Sample) -> None:
    feed = Feed(sample)
    feed.step(10)
    sub = feed.hub.subscribe()
    feed.step(3)  # negotiating: nothing asked for yet, what queues (nothing: no keyframe) is not kept
    sub.prepare()  # ICE connected: the IDR is asked for now, while DTLS completes
    feed.step(1)
    packet = await asyncio.wait_for(sub.next_packet(), 2)  # DTLS done: the first pull takes that IDR
    assert packet.is_keyframe and feed.encoder.keyframes_forced == 1  # not asked for twice
    sub.close()


async def test_viewer_never_starts_on_a_backlog(sample: Sample) -> None:
    feed = Feed(sample)
    feed.step(10)
    sub = feed.hub.subscribe()
    sub.prepare()
    feed.step(3)  # the IDR and two frames after it queued before the first pull: a burst, stale
    pull = asyncio.ensure_future(sub.next_packet())
    await asyncio.sleep(0)  # dropped; a new IDR asked for
    assert sub.queued == 0
    feed.step(1)
    packet = await asyncio.wait_for(pull, 2)
    assert packet.is_keyframe and packet.pts == feed.encoder._last_pts  # the newest frame
    assert feed.encoder.keyframes_forced == 2
    feed.step(1)
    assert sub.queued == 1  # then frame by frame, as they come
    sub.close()


async def test_viewer_joining_right_after_a_keyframe_starts_on_it(sample: Sample) -> None:
    feed = Feed(sample)
    feed.step(10)
    first = feed.hub.subscribe()
    first.prepare()
    feed.step(1)  # its IDR: the newest frame
    second = feed.hub.subscribe()  # starts on that IDR, without asking for another
    a, b = await first.next_packet(), await second.next_packet()
    assert a is b and a.is_keyframe and feed.encoder.keyframes_forced == 1
    feed.step(1)
    third = feed.hub.subscribe()  # the newest frame is not a keyframe: this one asks
    assert third.queued == 0
    for sub in (first, second, third):
        sub.close()


async def test_late_viewers_fresh_keyframe_is_not_held_by_the_pli_interval(sample: Sample) -> None:
    feed = Feed(sample, min_keyframe_interval_s=0.5)  # the relay's: PLI storms cost an IDR per 0.5 s
    feed.step(10)
    sub = feed.hub.subscribe()
    sub.prepare()  # ICE connected: IDR forced at the next frame
    feed.step(2)  # DTLS took longer: the IDR and a frame after it queued; the last forced IDR is 0.08 s old
    pull = asyncio.ensure_future(sub.next_packet())
    await asyncio.sleep(0)
    feed.step(1)  # the next frame is the IDR it starts on, not one 0.5 s after the last
    packet = await asyncio.wait_for(pull, 2)
    assert packet.is_keyframe and feed.encoder.keyframes_forced == 2
    sub.close()
