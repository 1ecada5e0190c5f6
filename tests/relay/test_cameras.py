"""The camera manager: pipelines on demand, lingering, keepalive, unknown cameras, isolation of a broken
camera, and health without secrets."""

from __future__ import annotations

import asyncio

import cv2
import pytest

from policies.contract import CameraRuntime
from relay.cameras import CameraManager, CameraSpec, UnknownCamera, default_anonymizer
from relay.sources import SourceOptions
from tests.relay.conftest import RtspServer, free_port, wait_for

pytestmark = pytest.mark.timeout(60)

FAST = SourceOptions(open_timeout_s=2, stall_s=2, backoff_initial_s=0.1, backoff_max_s=0.5)


def catalog(*cameras: CameraRuntime) -> dict[str, CameraRuntime]:
    return {c.id: c for c in cameras}


def runtime(camera_id: str, url: str, **kw: object) -> CameraRuntime:
    from policies.credentials import redact_url

    return CameraRuntime(id=camera_id, name=camera_id.title(), source_url=url, redacted_url=redact_url(url),
                         **kw)  # type: ignore[arg-type]


async def first_packets(sub, count: int = 3) -> None:  # type: ignore[no-untyped-def]
    for _ in range(count):
        await asyncio.wait_for(sub.next_packet(), 15)


async def test_pipeline_starts_on_demand_and_stops_after_linger(rtsp: RtspServer) -> None:
    cams = catalog(runtime("a", rtsp.url))
    manager = CameraManager(cams.get, linger_s=0.6, source_options=FAST, cameras=lambda: cams.values())
    await manager.start()
    try:
        assert manager.pipeline("a") is None
        assert manager.health()["a"].state == "idle"
        sub = await manager.subscribe("a")
        pipeline = manager.pipeline("a")
        assert pipeline is not None
        await first_packets(sub)
        second = await manager.subscribe("a")
        assert manager.pipeline("a") is pipeline  # one pipeline per camera, however many viewers
        assert manager.health()["a"].viewers == 2
        sub.close()
        second.close()
        await asyncio.sleep(0.2)
        assert manager.pipeline("a") is pipeline  # lingering
        back = await manager.subscribe("a")  # a viewer returning within linger_s reuses the connection
        assert manager.pipeline("a") is pipeline
        back.close()
        assert await wait_for(lambda: manager.pipeline("a") is None, 5)
        assert await wait_for(lambda: pipeline.stopped and pipeline.health().state == "stopped", 5)
        assert manager.health()["a"].state == "idle"
    finally:
        await manager.stop()


async def test_keepalive_cameras_connect_at_start_and_stay(rtsp: RtspServer) -> None:
    cams = catalog(runtime("k", rtsp.url, keepalive=True), runtime("lazy", rtsp.url))
    manager = CameraManager(cams.get, linger_s=0.1, source_options=FAST, cameras=lambda: cams.values())
    await manager.start()
    try:
        assert manager.pipeline("lazy") is None
        assert await wait_for(lambda: manager.health()["k"].connected, 10)
        sub = await manager.subscribe("k")
        await first_packets(sub)
        sub.close()
        await asyncio.sleep(0.4)
        assert manager.pipeline("k") is not None and manager.health()["k"].connected
    finally:
        await manager.stop()
    assert manager.pipeline("k") is None


async def test_unknown_and_disabled_cameras(rtsp: RtspServer) -> None:
    cams = catalog(runtime("off", rtsp.url, enabled=False))
    manager = CameraManager(cams.get, source_options=FAST)
    await manager.start()
    try:
        for camera_id in ("nope", "off"):
            with pytest.raises(UnknownCamera) as info:
                await manager.subscribe(camera_id)
            assert isinstance(info.value, KeyError) and camera_id in str(info.value)
        assert manager.pipeline("off") is None
    finally:
        await manager.stop()


async def test_a_broken_camera_does_not_affect_the_others(rtsp: RtspServer) -> None:
    cams = catalog(runtime("good", rtsp.url), runtime("refused", f"rtsp://127.0.0.1:{free_port()}/cam"),
                   runtime("bogus", "gopher://camera/1"))
    manager = CameraManager(cams.get, linger_s=0, source_options=FAST)
    await manager.start()
    try:
        bad = [await manager.subscribe("refused"), await manager.subscribe("bogus")]
        good = await manager.subscribe("good")
        await first_packets(good, 10)
        health = manager.health()
        assert health["good"].state == "live" and health["good"].fps_out > 0
        down = ("refused", "bogus")
        assert await wait_for(lambda: all(manager.health()[c].state == "down" for c in down), 10)
        health = manager.health()
        assert "refused" in (health["refused"].last_error or "")
        assert "unsupported scheme" in (health["bogus"].last_error or "")
        for sub in [*bad, good]:
            sub.close()
    finally:
        await manager.stop()


async def test_health_never_shows_camera_credentials(rtsp_private: RtspServer) -> None:
    rtsp_private.user, rtsp_private.password = "svc-cctv", "Xy7-secret-Qz"
    rtsp_private.start()
    cams = catalog(runtime("locked", rtsp_private.url_with_credentials()))
    manager = CameraManager(cams.get, source_options=FAST, cameras=lambda: cams.values())
    await manager.start()
    try:
        text = repr(manager.health())
        sub = await manager.subscribe("locked")
        await first_packets(sub)
        health = manager.health()["locked"]
        text += repr(health) + repr(health.to_dict()) + repr(CameraSpec.of(cams["locked"]))
        assert health.connected and health.source.startswith("rtsp://***@")
        assert "Xy7-secret-Qz" not in text and "svc-cctv" not in text
        sub.close()
    finally:
        await manager.stop()


async def test_restart_ends_viewers_and_reconnects_on_next_subscribe(rtsp: RtspServer) -> None:
    cams = catalog(runtime("r", rtsp.url))
    manager = CameraManager(cams.get, source_options=FAST)
    await manager.start()
    try:
        sub = await manager.subscribe("r")
        await first_packets(sub)
        old = manager.pipeline("r")
        await manager.restart("r")
        assert sub.closed and manager.pipeline("r") is None
        again = await manager.subscribe("r")
        assert manager.pipeline("r") is not old
        await first_packets(again)
        again.close()
    finally:
        await manager.stop()


def test_camera_spec_from_policy_runtime() -> None:
    rt = runtime("x", "rtsp://u:p@10.0.0.1/s", privacy_masks=[[(0, 0), (1, 0), (1, 0.5)]], keepalive=True)
    spec = CameraSpec.of(rt)
    assert spec.redacted_url == "rtsp://***@10.0.0.1/s" and spec.keepalive
    assert spec.privacy_masks == (((0.0, 0.0), (1.0, 0.0), (1.0, 0.5)),)
    assert "u:p@" not in repr(spec)
    grey = default_anonymizer(spec)
    coloured = default_anonymizer(CameraSpec.of(runtime("y", "rtsp://10.0.0.1/s", silhouettes="colour")))
    try:
        assert spec.silhouettes == "grey" and not grey.config.silhouette_colour
        assert coloured.config.silhouette_colour  # the admin's choice reaches the engine
        assert cv2.getNumThreads() == 1  # a camera's engine leaves the cores to the other cameras
    finally:  # their detection workers stop before the interpreter does
        grey.close()
        coloured.close()
    with pytest.raises(ValueError, match="unsupported codec"):
        CameraManager(lambda _id: None, codec="h265")


async def test_sync_applies_admin_changes(rtsp: RtspServer) -> None:
    cams = catalog(runtime("a", rtsp.url), runtime("b", rtsp.url))
    manager = CameraManager(cams.get, linger_s=0.2, source_options=FAST, cameras=lambda: list(cams.values()))
    await manager.start()
    try:
        assert manager.pipeline("a") is None
        cams["a"] = runtime("a", rtsp.url, keepalive=True)
        await manager.sync()
        first = manager.pipeline("a")
        assert first is not None  # became keepalive: connected with nobody watching
        sub = await manager.subscribe("a")
        await first_packets(sub)
        cams["a"] = runtime("a", rtsp.url, keepalive=True, privacy_masks=[[(0, 0), (0.5, 0), (0.5, 0.5)]])
        await manager.sync()
        assert sub.closed  # no frame leaves under the old masks
        second = manager.pipeline("a")
        assert second is not None and second is not first and first.stopped
        masks = [[(0, 0), (0.5, 0), (0.5, 0.5)]]
        cams["a"] = runtime("a", rtsp.url, keepalive=True, privacy_masks=masks, silhouettes="colour")
        await manager.sync()  # coloured silhouettes: a new engine, from a restart
        third = manager.pipeline("a")
        assert third is not None and third is not second and second.stopped
        assert third.anonymizer.config.silhouette_colour
        cams["a"] = runtime("a", rtsp.url)  # keepalive off, nobody watching: lingers, then goes
        await manager.sync()
        assert await wait_for(lambda: manager.pipeline("a") is None, 5)
        del cams["b"]
        await manager.sync()
        assert "b" not in manager.health()
    finally:
        await manager.stop()
