"""Admin changes to cameras reach the data plane: a keepalive camera runs with nobody watching and shows in
health; a camera that is deleted stops; a watched camera whose masks change, or that is disabled, ends its
viewers' sessions within seconds, with the reason in the access log."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.app.conftest import Relay
from tests.app.whep_client import open_viewer


def wait(predicate: Any, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())


class Cameras:
    """The admin API's camera CRUD, as the policy admin; cameras made here are disabled or deleted after."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.url = f"{relay.base_url}/api/cameras"
        self.made: list[str] = []

    def put(self, camera_id: str, source_url: str, *, create: bool = False, **fields: Any) -> None:
        body = {"id": camera_id, "name": camera_id, "purposes": ["public_safety"], "source_url": source_url,
                **fields}
        headers = self.relay.headers("admin")
        if create:
            r = httpx.post(self.url, json=body, headers=headers)
            self.made.append(camera_id)
        else:
            r = httpx.put(f"{self.url}/{camera_id}", json=body, headers=headers)
        assert r.status_code in (200, 201), r.text

    def delete(self, camera_id: str) -> None:
        r = httpx.delete(f"{self.url}/{camera_id}", headers=self.relay.headers("admin"))
        assert r.status_code in (204, 404, 409), r.text  # 409: it has access history (disabled instead)
        if r.status_code == 409:
            body = httpx.get(f"{self.url}/{camera_id}", headers=self.relay.headers("admin")).json()
            body = {k: v for k, v in body.items() if k not in ("has_credentials", "has_source")}
            httpx.put(f"{self.url}/{camera_id}", json={**body, "enabled": False},
                      headers=self.relay.headers("admin")).raise_for_status()


@pytest.fixture
def cameras(relay: Relay) -> Iterator[Cameras]:
    made = Cameras(relay)
    yield made
    for camera_id in made.made:  # other tests see the seeded camera list only
        made.delete(camera_id)


def live_health(relay: Relay, camera_id: str) -> dict[str, Any] | None:
    r = httpx.get(f"{relay.base_url}/api/live/cameras", headers=relay.headers("operator"))
    r.raise_for_status()
    return next((c["health"] for c in r.json()["cameras"] if c["id"] == camera_id), None)


def test_keepalive_camera_runs_without_viewers_and_stops_when_deleted(relay: Relay, rtsp_url: str,
                                                                       cameras: Cameras) -> None:
    manager = relay.app.state.services.cameras
    mark = relay.audit_mark()
    cameras.put("cam-keep", rtsp_url, create=True, keepalive=True)
    # Connected by the relay on its own, before anyone asks to watch it.
    assert wait(lambda: (live_health(relay, "cam-keep") or {}).get("state") == "live"), live_health(relay,
                                                                                                 "cam-keep")
    health = live_health(relay, "cam-keep")
    assert health is not None and health["connected"] and health["viewers"] == 0 and health["fps_in"] > 0
    assert not relay.audit(kind="view.start", camera_id="cam-keep", after=mark)
    cameras.delete("cam-keep")
    assert wait(lambda: manager.pipeline("cam-keep") is None and "cam-keep" not in manager.health())
    assert live_health(relay, "cam-keep") is None


def test_idle_cameras_show_in_health(relay: Relay) -> None:
    # Listed from the start, with nobody watching: the manager knows every enabled camera.
    health = relay.app.state.services.cameras.health()
    assert "cam-test" in health and "cam-disabled" not in health


async def view_ended_by(relay: Relay, change: Callable[[], None]) -> str:
    """Watch cam-doomed, make the admin `change`: the viewer's picture and session must end within seconds.
    The session's logged end reason."""
    viewer = await open_viewer(relay.base_url, "cam-doomed", token=relay.token("operator"))
    assert viewer.status == 201, viewer.text
    try:
        assert len(await viewer.frames(3, timeout=40)) == 3
        change()
        assert await viewer.ended(timeout=15)
        relay.wait_session_closed(viewer.session_id, timeout=15)
    finally:
        await viewer.close()
    (end,) = [e for e in relay.audit(kind="view.end", camera_id="cam-doomed")
              if e.details.get("session_id") == viewer.session_id]
    return str(end.reason)


async def test_changed_or_disabled_camera_ends_its_viewers_sessions(relay: Relay, rtsp_url: str,
                                                                     cameras: Cameras) -> None:
    cameras.put("cam-doomed", rtsp_url, create=True)
    # New static masks: the pipeline restarts so no frame leaves under the old masks; the viewer's session
    # ends with a reason rather than sitting on a dead track.
    masks = [[[0, 0], [0.5, 0], [0.5, 0.5]]]
    reason = await view_ended_by(relay, lambda: cameras.put("cam-doomed", rtsp_url, privacy_masks=masks))
    assert "stream stopped" in reason, reason
    reason = await view_ended_by(relay, lambda: cameras.put("cam-doomed", rtsp_url, enabled=False))
    assert reason.startswith("authorization ended") and "disabled" in reason, reason
    manager = relay.app.state.services.cameras
    assert wait(lambda: manager.pipeline("cam-doomed") is None and "cam-doomed" not in manager.health())
