"""Input that used to end in a server error (a traceback, a reset connection, a cut-off download) is
refused up front with a 4xx and one line: offers whose sections share a mid, nulls in a user change, lone
surrogates in JSON, non-finite coordinates, times without a UTC instant, offsets past any log."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from relay.webrtc import SdpError, check_offer
from tests.app.inproc import Local, local_app, recvonly_offer


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Local]:
    with local_app(tmp_path_factory.mktemp("bad-input")) as app:
        yield app


def shared_mid_offer() -> str:
    offer = recvonly_offer(videos=2)
    assert "a=mid:0" in offer and "a=mid:1" in offer
    return offer.replace("a=mid:1", "a=mid:0")


def test_offer_with_two_sections_sharing_a_mid_is_refused() -> None:
    with pytest.raises(SdpError, match="share an a=mid"):
        check_offer(shared_mid_offer())


def test_whep_offer_with_two_sections_sharing_a_mid_is_400(local: Local) -> None:
    r = local.whep("operator", shared_mid_offer())
    assert r.status_code == 400 and r.json() == {"detail": "two media sections of the offer share an a=mid"}
    assert not local.sessions.running


def test_whep_offer_without_a_direction_is_400(local: Local) -> None:
    offer = recvonly_offer().replace("a=recvonly\r\n", "")
    r = local.whep("operator", offer)
    assert r.status_code == 400, r.text
    assert r.json()["detail"].endswith("a media section of the offer has no direction (a=recvonly)")
    assert not local.sessions.running


@pytest.mark.parametrize("field", ["roles", "display_name", "active"])
def test_patch_user_with_null_is_422(local: Local, field: str) -> None:
    r = local.client.patch("/api/users/viewer", json={field: None}, headers=local.headers("admin"))
    assert r.status_code == 422, r.text
    assert [p["loc"] for p in r.json()["detail"]] == [["body", field]]
    user = local.client.get("/api/users/viewer", headers=local.headers("admin")).json()
    assert user["roles"] == ["dashboard_viewer"] and user["active"] is True


def test_a_second_user_with_the_same_sso_subject_is_409(local: Local) -> None:
    # Found by the OpenAPI fuzzer: the unique single sign-on subject surfaced as a database error (500).
    admin = local.headers("admin")
    first = local.client.post("/api/users", json={"username": "sso-a", "oidc_subject": "s-1"}, headers=admin)
    assert first.status_code == 201, first.text
    again = local.client.post("/api/users", json={"username": "sso-b", "oidc_subject": "s-1"}, headers=admin)
    assert again.status_code == 409 and "single sign-on subject" in again.json()["detail"], again.text
    patch = local.client.patch("/api/users/viewer", json={"oidc_subject": "s-1"}, headers=admin)
    assert patch.status_code in (409, 422), patch.text  # 422 where the patch does not take the subject
    assert local.client.get("/api/users/sso-b", headers=admin).status_code == 404


@pytest.mark.parametrize(("method", "path", "body", "who"), [
    ("POST", "/api/purposes", '{"id": "p-s", "label": "\\ud800"}', "admin"),
    ("POST", "/api/users", '{"username": "u-s", "display_name": "x\\udc00y"}', "admin"),
    ("PATCH", "/api/users/viewer", '{"display_name": "\\ud800"}', "admin"),
    ("POST", "/api/auth/login", '{"username": "\\ud800", "password": "whatever-it-is"}', None),
    ("POST", "/api/raw-requests", '{"camera_id": "cam-test", "purpose": "criminal_investigation", '
                                  '"case_ref": "\\ud800", "justification": "j"}', "investigator"),
    ("POST", "/api/purposes", '{"id": "p-s", "label": "ok", "\\ud800": 1}', "admin"),
])
def test_lone_surrogate_in_json_is_400(local: Local, method: str, path: str, body: str,
                                       who: str | None) -> None:
    mark = local.mark()
    headers = local.headers(who) if who else {}
    r = local.client.request(method, path, content=body.encode(),
                             headers={**headers, "Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert "surrogate" in r.json()["detail"]
    (entry,) = local.audit(after=mark, kind="request.refused")
    assert entry.details["status"] == 400 and entry.actor == (who or "anonymous")


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_camera_with_non_finite_latitude_is_4xx(local: Local, value: str) -> None:
    body = f'{{"id": "cam-nan", "name": "Nowhere", "latitude": {value}, "longitude": 121.5}}'
    r = local.client.post("/api/cameras", content=body,
                          headers=local.headers("admin", **{"Content-Type": "application/json"}))
    assert r.status_code in (400, 422), r.text
    assert local.client.get("/api/cameras/cam-nan", headers=local.headers("admin")).status_code == 404


@pytest.mark.parametrize("query", [
    "/api/audit/entries?until=0001-01-01",
    "/api/audit/entries?since=0001-01-01T00:00:00",
    "/api/audit/entries?since=9999-12-31T23:59:59-12:00",
    "/api/audit/entries?offset=1e30",
    "/api/audit/entries?offset=100000000000000000000000",
    "/api/audit/stats?since=0001-01-01T00:00:00",
    "/api/audit/stats?until=9999-12-31T23:59:59-12:00",
    "/api/audit/export?until=0001-01-01",
    "/api/audit/export?format=json&since=9999-12-31T23:59:59-12:00",
])
def test_audit_times_and_offsets_out_of_range_are_422(local: Local, query: str) -> None:
    r = local.client.get(query, headers=local.headers("auditor"))
    assert r.status_code == 422, (r.status_code, r.text[:200])
    (problem,) = r.json()["detail"]
    assert problem["loc"][0] == "query" and set(problem) == {"loc", "msg", "type"}


def test_audit_times_at_the_edges_still_answer(local: Local) -> None:
    for query in ("/api/audit/entries?since=0001-01-01T12:00:00Z&until=9999-12-31T00:00:00Z",
                  "/api/audit/stats?since=0001-01-02", "/api/audit/export?until=9999-12-30"):
        r = local.client.get(query, headers=local.headers("auditor"))
        assert r.status_code == 200, (query, r.text[:200])
