"""What a request may carry: bodies over their route's limit are refused (413) before they are read, every
text and list of the admin API is bounded (422), a 422 never echoes the input, and the WHEP and auditor
query values are bounded too."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from policies.schemas import LIST_MAX, MASKS_MAX, NAME_MAX, POINTS_MAX, TEXT_MAX
from tests.app.inproc import Local, local_app, recvonly_offer

MIB = 1024 * 1024
CAMERA = {"id": "cam-9", "name": "Zhongshan", "purposes": ["public_safety"]}
SQUARE = [[0.1, 0.1], [0.2, 0.1], [0.2, 0.2], [0.1, 0.2]]
RULE = {"id": "r-9", "roles": ["dashboard_viewer"], "purposes": ["public_safety"], "camera_ids": ["*"]}


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Local]:
    with local_app(tmp_path_factory.mktemp("limits")) as app:
        yield app


def test_json_body_over_the_limit_is_413_by_its_length(local: Local) -> None:
    mark = local.mark()
    body = {"username": "bloat", "display_name": "x" * (2 * MIB)}
    r = local.client.post("/api/users", json=body, headers=local.headers("admin"))
    assert r.status_code == 413, r.status_code
    assert r.json() == {"detail": f"request body larger than {MIB} bytes"}
    assert local.client.get("/api/users/bloat", headers=local.headers("admin")).status_code == 404
    (entry,) = local.audit(after=mark, kind="request.refused")
    assert (entry.actor, entry.decision, entry.details["status"], entry.details["path"]) == (
        "admin", "deny", 413, "/api/users")
    assert len(entry.reason) < 100 and not local.audit(after=mark, kind="policy.change")


def test_streamed_body_over_the_limit_is_413(local: Local) -> None:
    chunks = (b'{"username": "bloat2", "display_name": "' + b"x" * 65536 for _ in range(20))
    r = local.client.post("/api/users", content=chunks,
                          headers=local.headers("admin", **{"Content-Type": "application/json"}))
    assert r.status_code == 413
    assert "content-length" not in {k.lower() for k in r.request.headers}


def test_sdp_offer_over_64_kib_is_413_and_logged(local: Local) -> None:
    mark = local.mark()
    offer = recvonly_offer() + "a=x-padding:" + "y" * (64 * 1024) + "\r\n"
    r = local.whep("operator", offer)
    assert r.status_code == 413 and "65536" in r.json()["detail"]
    (entry,) = local.audit(after=mark, kind="request.refused")
    assert entry.details["status"] == 413 and entry.actor == "operator"
    assert not local.audit(after=mark, kind="view")


TOO_BIG = [
    ("/api/purposes", {"id": "p-9", "label": "x" * (NAME_MAX + 1)}),
    ("/api/roles", {"name": "role-9", "description": "x" * (TEXT_MAX + 1)}),
    ("/api/cameras", {**CAMERA, "name": "x" * (NAME_MAX + 1)}),
    ("/api/cameras", {**CAMERA, "address": "x" * 301}),
    ("/api/cameras", {**CAMERA, "district": "x" * 101}),
    ("/api/cameras", {**CAMERA, "agency": "x" * (NAME_MAX + 1)}),
    ("/api/cameras", {**CAMERA, "tags": ["x" * 65]}),
    ("/api/cameras", {**CAMERA, "tags": [f"t{i}" for i in range(LIST_MAX + 1)]}),
    ("/api/cameras", {**CAMERA, "purposes": ["public_safety"] * (LIST_MAX + 1)}),
    ("/api/cameras", {**CAMERA, "source_url": "rtsp://h/" + "x" * 2048}),
    ("/api/cameras", {**CAMERA, "source_password": "x" * 201}),
    ("/api/cameras", {**CAMERA, "privacy_masks": [SQUARE] * (MASKS_MAX + 1)}),
    ("/api/cameras", {**CAMERA, "privacy_masks": [[[0.5, 0.5]] * (POINTS_MAX + 1)]}),
    ("/api/cameras", {**CAMERA, "privacy_masks": [[[0.1, 0.1, 0.1], [0.2, 0.1], [0.2, 0.2]]]}),
    ("/api/rules", {**RULE, "description": "x" * (TEXT_MAX + 1)}),
    ("/api/rules", {**RULE, "roles": ["dashboard_viewer"] * (LIST_MAX + 1)}),
    ("/api/rules", {**RULE, "camera_ids": ["x" * 65]}),
    ("/api/rules", {**RULE, "districts": ["x" * 101]}),
    ("/api/rules", {**RULE, "time_windows": [{}] * (LIST_MAX + 1)}),
    ("/api/rules", {**RULE, "time_windows": [{"days": ["Monday" * 10]}]}),
    ("/api/users", {"username": "u-9", "display_name": "x" * (NAME_MAX + 1)}),
    ("/api/users", {"username": "u-9", "oidc_subject": "x" * 256}),
    ("/api/users", {"username": "u-9", "password": "x" * 1025}),
    ("/api/users", {"username": "u-9", "roles": ["auditor"] * (LIST_MAX + 1)}),
    ("/api/raw-requests", {"camera_id": "cam-test", "purpose": "criminal_investigation", "case_ref": "c",
                           "justification": "x" * (TEXT_MAX + 1)}),
]


@pytest.mark.parametrize(("path", "body"), TOO_BIG, ids=[f"{p}-{i}" for i, (p, _) in enumerate(TOO_BIG)])
def test_every_text_and_list_is_bounded(local: Local, path: str, body: dict[str, object]) -> None:
    mark = local.mark()
    who = "investigator" if path == "/api/raw-requests" else "admin"
    r = local.client.post(path, json=body, headers=local.headers(who))
    assert r.status_code == 422, r.text
    assert not local.audit(after=mark, kind="policy.change") and not local.audit(after=mark, kind="raw")


def test_patch_display_name_is_bounded(local: Local) -> None:
    r = local.client.patch("/api/users/viewer", json={"display_name": "x" * (NAME_MAX + 1)},
                           headers=local.headers("admin"))
    assert r.status_code == 422


def test_422_does_not_echo_the_input(local: Local) -> None:
    secret = "do-not-echo-" * 30
    body = {"id": "p-echo", "label": secret, "k" * 5000: secret, "allows_raw": {"nested": secret}}
    r = local.client.post("/api/purposes", json=body, headers=local.headers("admin"))
    assert r.status_code == 422
    assert "do-not-echo" not in r.text and len(r.text) < 4000, r.text
    problems = r.json()["detail"]
    assert problems and all(set(p) == {"loc", "msg", "type"} for p in problems)
    assert {tuple(p["loc"]) for p in problems} >= {("body", "label"), ("body", "allows_raw")}
    assert all(len(part) <= 64 for p in problems for part in p["loc"] if isinstance(part, str))


@pytest.mark.parametrize("params", [
    {"purpose": "p" * 65},
    {"case_ref": "c" * 201, "mode": "raw", "purpose": "criminal_investigation"},
    {"mode": "x" * 5000},
])
def test_whep_query_values_are_bounded(local: Local, params: dict[str, str]) -> None:
    mark = local.mark()
    r = local.whep("operator", recvonly_offer(), **params)
    assert r.status_code == 400, r.text
    assert len(r.json()["detail"]) <= 200 and "p" * 65 not in r.text and "c" * 201 not in r.text
    (entry,) = local.audit(after=mark, kind="request.refused")
    assert entry.details["status"] == 400 and not local.audit(after=mark, kind="view")


@pytest.mark.parametrize("query", ["actor=" + "a" * 129, "camera_id=" + "c" * 65, "purpose=" + "p" * 65,
                                   "kind=" + "k" * 65])
def test_audit_query_values_are_bounded(local: Local, query: str) -> None:
    r = local.client.get(f"/api/audit/entries?{query}", headers=local.headers("auditor"))
    assert r.status_code == 422
