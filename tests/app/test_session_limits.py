"""WHEP sessions per user and per camera are capped: a request past a cap is answered 429 with
Retry-After, and logged as a refused view request, requests arriving together included."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from relay.quotas import RETRY_AFTER_S, SessionLimit, SessionQuota
from tests.app.inproc import CAMERA, Local, local_app, recvonly_offer


@pytest.fixture(scope="module")
def offer() -> str:
    return recvonly_offer()


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Local]:
    with local_app(tmp_path, max_sessions_per_user=3, max_sessions_per_camera=5) as app:
        yield app


def test_quota_counts_and_gives_back() -> None:
    quota = SessionQuota(per_user=2, per_camera=3)
    a, b = quota.take(1, "ann", "cam"), quota.take(1, "ann", "cam")
    with pytest.raises(SessionLimit, match="ann already has 2 sessions"):
        quota.take(1, "ann", "cam")
    quota.take(2, "bo", "cam")
    with pytest.raises(SessionLimit, match="camera cam already has 3 viewers"):
        quota.take(3, "cy", "cam")
    a.release()
    a.release()  # once only
    assert quota.users(1) == 1 and quota.cameras("cam") == 2
    quota.take(1, "ann", "other")
    b.release()


def test_sessions_per_user_are_capped_with_429_and_logged(local: Local, offer: str) -> None:
    mark = local.mark()
    opened = [local.whep("operator", offer) for _ in range(3)]
    assert [r.status_code for r in opened] == [201, 201, 201], [r.text for r in opened]
    refused = local.whep("operator", offer)
    assert refused.status_code == 429, refused.text
    assert refused.headers["retry-after"] == str(RETRY_AFTER_S)
    assert "operator already has 3 sessions" in refused.json()["detail"]
    (entry,) = local.audit(after=mark, kind="view.request", decision="deny")
    assert (entry.actor, entry.camera_id, entry.purpose) == ("operator", CAMERA, "public_safety")
    assert entry.reason == refused.json()["detail"] and entry.details["status"] == 429
    # Refused before the policy was asked: the three allowed requests are the only ones it logged.
    assert len(local.audit(after=mark, kind="view.request", decision="allow")) == 3
    # Ending one frees its place.
    r = local.client.delete(opened[0].headers["location"], headers=local.headers("operator"))
    assert r.status_code == 200
    assert local.whep("operator", offer).status_code == 201
    # Another user is not held up by the operator's sessions.
    assert local.whep("viewer", offer).status_code == 201


def test_sessions_per_camera_are_capped(local: Local, offer: str) -> None:
    statuses = [local.whep(user, offer).status_code for user in ("operator", "operator", "operator",
                                                                    "viewer", "viewer", "viewer")]
    assert statuses == [201, 201, 201, 201, 201, 429]
    assert local.sessions.quota.cameras(CAMERA) == 5


def test_refused_and_failed_requests_hold_no_place(local: Local, offer: str) -> None:
    # Refused by the policy (a purpose the operator is not granted) and by the unknown camera: 403, 404.
    for _ in range(4):
        assert local.whep("operator", offer, purpose="criminal_investigation").status_code == 403
        assert local.whep("operator", offer, camera="no-such-camera").status_code == 404
    assert local.sessions.quota.cameras(CAMERA) == 0 and not local.sessions.running
    assert [local.whep("operator", offer).status_code for _ in range(3)] == [201, 201, 201]


def test_requests_arriving_together_cannot_pass_the_cap(local: Local, offer: str) -> None:
    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(lambda _: local.whep("operator", offer).status_code, range(8)))
    assert statuses == [201, 201, 201, 429, 429, 429, 429, 429]
    assert len(local.sessions.running) == 3
