"""Refusals are logged and documented: WHEP's 400/413/415 and every 422 are access-log entries (a short
reason, never the body), a non-owner's WHEP DELETE is a denial, the OpenAPI document is valid where the
privacy masks are and names the 4xx answers, and a 405 says in `Allow` which methods a path takes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.app.inproc import CAMERA, Local, local_app, recvonly_offer


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Local]:
    with local_app(tmp_path_factory.mktemp("refusals")) as app:
        yield app


@pytest.fixture(scope="module")
def offer() -> str:
    return recvonly_offer()


def test_whep_refusals_of_form_are_logged_without_the_body(local: Local, offer: str) -> None:
    mark = local.mark()
    url = f"/whep/{CAMERA}?purpose=public_safety"
    marker = "a=x-marker:never-in-the-log"
    cases = [
        (offer + marker, {"Content-Type": "text/plain"}, 415),
        ("v=0\r\n" + marker + "\r\n", {"Content-Type": "application/sdp"}, 400),
        ("hello " + marker, {"Content-Type": "application/sdp"}, 400),
    ]
    for body, headers, status in cases:
        r = local.client.post(url, content=body, headers=local.headers("operator", **headers))
        assert r.status_code == status, r.text
    r = local.client.post(f"/whep/{CAMERA}", content=offer,
                          headers=local.headers("operator", **{"Content-Type": "application/sdp"}))
    assert r.status_code == 400  # no purpose
    entries = local.audit(after=mark, kind="request.refused")
    assert [(e.actor, e.decision, e.details["status"]) for e in entries] == [
        ("operator", "deny", 415), ("operator", "deny", 400), ("operator", "deny", 400),
        ("operator", "deny", 400)]
    assert all(e.details["path"] == f"/whep/{CAMERA}" and e.details["method"] == "POST" for e in entries)
    assert all(len(e.reason) <= 200 and "never-in-the-log" not in str(e.details) + e.reason
               for e in entries)


def test_422_is_logged_briefly(local: Local) -> None:
    mark = local.mark()
    r = local.client.post("/api/purposes", json={"id": "p-x", "label": "x" * 5000},
                          headers=local.headers("admin"))
    assert r.status_code == 422
    (entry,) = local.audit(after=mark, kind="request.refused")
    assert (entry.actor, entry.decision, entry.details["status"]) == ("admin", "deny", 422)
    assert entry.reason == "invalid request: body.label: String should have at most 200 characters"
    assert "xxxx" not in str(entry.details)
    # Without a valid token the refusal is anonymous (and still logged).
    mark = local.mark()
    r = local.client.post("/api/auth/login", json={"username": ""})
    assert r.status_code == 422
    (entry,) = local.audit(after=mark, kind="request.refused")
    assert entry.actor == "anonymous" and entry.details["path"] == "/api/auth/login"


def test_ending_someone_elses_session_is_logged_as_a_denial(local: Local, offer: str) -> None:
    opened = local.whep("operator", offer)
    assert opened.status_code == 201, opened.text
    mark = local.mark()
    r = local.client.delete(opened.headers["location"], headers=local.headers("viewer"))
    assert r.status_code == 403
    (entry,) = local.audit(after=mark, kind="auth.forbidden")
    assert (entry.actor, entry.decision, entry.camera_id) == ("viewer", "deny", CAMERA)
    ended = local.client.delete(opened.headers["location"], headers=local.headers("operator"))
    assert ended.status_code == 200


def _schemas(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _schemas(value)
    elif isinstance(node, list):
        for value in node:
            yield from _schemas(value)


def test_openapi_privacy_masks_are_a_valid_nested_array(local: Local) -> None:
    spec = local.client.get("/openapi.json").json()
    for key, value in _schemas(spec):
        if key == "items":
            assert isinstance(value, dict), f"items must be one schema, not {value!r}"
        assert key != "prefixItems"
    masks = spec["components"]["schemas"]["CameraIn"]["properties"]["privacy_masks"]
    point = masks["items"]["items"]
    assert point["type"] == "array" and point["minItems"] == point["maxItems"] == 2
    assert point["items"] == {"type": "number", "minimum": 0.0, "maximum": 1.0}
    # The wire format is unchanged: [x, y] pairs.
    camera = {"id": "cam-m", "name": "Masks", "privacy_masks": [[[0, 0], [0.5, 0], [0.5, 0.5]]]}
    r = local.client.post("/api/cameras", json=camera, headers=local.headers("admin"))
    assert r.status_code == 201 and r.json()["privacy_masks"] == camera["privacy_masks"]


def test_openapi_documents_the_refusals(local: Local) -> None:
    paths = local.client.get("/openapi.json").json()["paths"]
    for path, operations in paths.items():
        if path.startswith(("/api/", "/whep/")):
            for method, op in operations.items():
                assert "401" in op["responses"], (method, path)
                if not path.startswith("/api/auth/"):
                    assert "403" in op["responses"], (method, path)
    assert {"404", "409"} <= set(paths["/api/cameras/{ident}"]["delete"]["responses"])
    assert {"400", "409"} <= set(paths["/api/cameras"]["post"]["responses"])
    assert "404" in paths["/api/users/{username}"]["patch"]["responses"]
    assert {"400", "413", "415", "429"} <= set(paths["/whep/{camera_id}"]["post"]["responses"])
    problem = paths["/api/cameras/{ident}"]["get"]["responses"]["404"]["content"]["application/json"]
    assert problem["schema"] == {"$ref": "#/components/schemas/Problem"}


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("OPTIONS", "/api/cameras", {"GET", "POST"}),
    ("PUT", "/api/users", {"GET", "POST"}),
    ("POST", "/api/users/viewer", {"GET", "PATCH", "DELETE"}),
    ("OPTIONS", "/api/audit/entries", {"GET"}),
    ("PUT", f"/whep/{CAMERA}", {"POST", "OPTIONS"}),
])
def test_405_names_every_allowed_method(local: Local, method: str, path: str, allowed: set[str]) -> None:
    r = local.client.request(method, path, headers=local.headers("admin"))
    assert r.status_code == 405
    assert allowed <= {m.strip() for m in r.headers["allow"].split(",")}, r.headers.get("allow")


def test_whep_answers_options(local: Local, offer: str) -> None:
    r = local.client.options(f"/whep/{CAMERA}")
    assert r.status_code == 204 and r.headers["allow"] == "POST, OPTIONS"
    assert r.headers["accept-post"] == "application/sdp"
    r = local.client.options(f"/whep/{CAMERA}/sessions/anything")
    assert r.status_code == 204 and "DELETE" in r.headers["allow"]
