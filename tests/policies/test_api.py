"""Admin REST API on a FastAPI app assembled here (the real app factory lives in relay/): CRUD with
before/after history, no secrets in camera responses, precise 400/404/409/422, and the raw-view flow."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from policies import errors
from policies.api import router
from policies.auth import router as auth_router
from policies.context import PolicyContext
from policies.contract import Principal
from policies.models import AuditEntry
from tests.policies.conftest import Clock

CAMERA = {
    "id": "cam-101",
    "name": "Taipei 101 plaza",
    "district": "Xinyi",
    "latitude": 25.0339,
    "longitude": 121.5645,
    "purposes": ["public_safety", "criminal_investigation"],
    "tags": ["landmark"],
    "source_url": "rtsp://admin:tiger-77@10.9.0.4:554/main",
    "privacy_masks": [[[0, 0], [0.3, 0], [0.3, 0.2]]],
}


@pytest.fixture
def app(context: PolicyContext) -> FastAPI:
    app = FastAPI()
    app.state.policies = context
    app.include_router(router)
    app.include_router(auth_router)
    errors.install(app)
    return app


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def auth(ctx: PolicyContext, who: Principal) -> dict[str, str]:
    return {"Authorization": f"Bearer {ctx.auth.issue_token(who.user_id)}"}


def changes(ctx: PolicyContext) -> list[AuditEntry]:
    with ctx.db.session() as s:
        return list(
            s.scalars(
                select(AuditEntry)
                .where(AuditEntry.kind == "policy.change", AuditEntry.actor == "policy.admin")
                .order_by(AuditEntry.seq)
            )
        )


def test_camera_crud_never_shows_secrets(
    client: TestClient, context: PolicyContext, people: dict[str, Principal]
) -> None:
    admin = auth(context, people["policy_admin"])
    r = client.post("/api/cameras", json=CAMERA, headers=admin)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["has_credentials"] is True and body["has_source"] is True
    assert "source_url" not in body and "tiger" not in r.text
    assert client.post("/api/cameras", json=CAMERA, headers=admin).status_code == 409

    r = client.get("/api/cameras/cam-101", headers=admin)
    assert r.status_code == 200 and r.json()["privacy_masks"] == [[[0, 0], [0.3, 0], [0.3, 0.2]]]
    assert "tiger" not in client.get("/api/cameras", headers=admin).text
    assert client.get("/api/cameras/nope", headers=admin).status_code == 404

    r = client.put("/api/cameras/cam-101", json={**CAMERA, "purposes": ["public_safty"]}, headers=admin)
    assert r.status_code == 400 and r.json()["detail"] == "purposes[0]: unknown purpose 'public_safty'"
    r = client.put("/api/cameras/cam-101", json={**CAMERA, "latitude": 95}, headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "latitude"]
    # A camera URL must not be able to carry the relay's own secrets to the host it names.
    evil = {**CAMERA, "source_url": "rtsp://evil/${CCTV_TOKEN_SECRET}"}
    r = client.put("/api/cameras/cam-101", json=evil, headers=admin)
    assert r.status_code == 422 and "may only reference CAM_* or CAMERA_*" in r.text
    r = client.put("/api/cameras/cam-101", json={**CAMERA, "id": "cam-102"}, headers=admin)
    assert r.status_code == 400
    # Silhouettes: grey unless the camera's administrator chooses colour; nothing else is accepted.
    assert client.get("/api/cameras/cam-101", headers=admin).json()["silhouettes"] == "grey"
    r = client.put("/api/cameras/cam-101", json={**CAMERA, "silhouettes": "clear"}, headers=admin)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "silhouettes"]
    r = client.put("/api/cameras/cam-101", json={**CAMERA, "silhouettes": "colour"}, headers=admin)
    assert r.status_code == 200 and r.json()["silhouettes"] == "colour"
    assert context.service.camera_runtime("cam-101").silhouettes == "colour"  # type: ignore[union-attr]
    new = {**CAMERA, "name": "Taipei 101 east plaza", "source_url": "rtsp://10.9.0.4/main"}
    r = client.put("/api/cameras/cam-101", json=new, headers=admin)
    assert r.status_code == 200 and r.json()["has_credentials"] is False
    assert context.service.camera_runtime("cam-101").source_url == "rtsp://10.9.0.4/main"  # type: ignore[union-attr]

    create, colour, update = changes(context)
    assert colour.details["after"]["silhouettes"] == "colour"
    assert (create.reason, update.reason) == ("create camera cam-101", "update camera cam-101")
    assert update.details["before"]["name"] == "Taipei 101 plaza"
    assert update.details["after"]["name"] == "Taipei 101 east plaza"
    assert update.details["before"]["source_url"] == "rtsp://***@10.9.0.4:554/main"
    assert "tiger" not in repr(create.details) + repr(update.details)

    assert client.delete("/api/cameras/cam-101", headers=admin).status_code == 204
    assert client.get("/api/cameras/cam-101", headers=admin).status_code == 404
    assert changes(context)[-1].details["after"] is None
    assert client.delete("/api/cameras/cam-101", headers=admin).status_code == 404


def test_only_admins_change_policy(
    client: TestClient, context: PolicyContext, people: dict[str, Principal]
) -> None:
    for role in ("dashboard_viewer", "police_investigator", "raw_approver", "auditor"):
        h = auth(context, people[role])
        assert client.get("/api/cameras", headers=h).status_code == 403
        assert (
            client.post(
                "/api/rules",
                json={"id": "x", "roles": [role], "camera_ids": ["*"], "purposes": ["public_safety"]},
                headers=h,
            ).status_code
            == 403
        )
    assert client.get("/api/cameras").status_code == 401
    with context.db.session() as s:
        refused = s.scalars(select(AuditEntry).where(AuditEntry.kind == "auth.forbidden")).all()
    assert len(refused) == 8


def test_purpose_role_rule_user_crud(
    client: TestClient, context: PolicyContext, people: dict[str, Principal]
) -> None:
    admin = auth(context, people["policy_admin"])
    assert (
        client.post(
            "/api/purposes", json={"id": "flood_watch", "label": "Flood watch"}, headers=admin
        ).status_code
        == 201
    )
    assert (
        client.post("/api/roles", json={"name": "river_patrol", "can_view": True}, headers=admin).status_code
        == 201
    )
    rule = {
        "id": "river",
        "roles": ["river_patrol"],
        "districts": ["Shilin"],
        "purposes": ["flood_watch"],
        "time_windows": [{"days": ["Sat", "Sun"], "start": "06:00", "end": "20:00"}],
    }
    r = client.post("/api/rules", json=rule, headers=admin)
    assert r.status_code == 201 and r.json()["time_windows"][0]["days"] == [5, 6]
    r = client.post("/api/rules", json={**rule, "id": "r2", "roles": ["river_patrl"]}, headers=admin)
    assert r.status_code == 400 and r.json()["detail"] == "roles[0]: unknown role 'river_patrl'"
    # Still referenced: refuse, say by what.
    r = client.delete("/api/purposes/flood_watch", headers=admin)
    assert r.status_code == 409 and r.json()["detail"] == "purpose 'flood_watch' still used by river"
    assert client.delete("/api/roles/river_patrol", headers=admin).status_code == 409

    r = client.post(
        "/api/users",
        json={"username": "lin.hui", "roles": ["river_patrol"], "password": "a long passphrase"},
        headers=admin,
    )
    assert r.status_code == 201 and r.json()["has_password"] is True and "password" not in r.json()
    # A role that may watch waits for a second admin (test_role_grants covers that flow).
    assert r.json()["roles"] == [] and r.json()["pending_roles"] == ["river_patrol"]
    token = client.post("/api/auth/login", json={"username": "lin.hui", "password": "a long passphrase"})
    assert token.status_code == 200
    r = client.patch("/api/users/lin.hui", json={"active": False}, headers=admin)
    assert r.status_code == 200 and r.json()["active"] is False and r.json()["roles"] == []
    assert client.patch("/api/users/nobody", json={"active": False}, headers=admin).status_code == 404
    r = client.patch("/api/users/lin.hui", json={"roles": ["nope"]}, headers=admin)
    assert r.status_code == 400 and "unknown role 'nope'" in r.json()["detail"]
    assert client.delete("/api/rules/river", headers=admin).status_code == 204
    assert client.delete("/api/purposes/flood_watch", headers=admin).status_code == 204
    kinds = [(e.details["object"], e.details["action"]) for e in changes(context)]
    assert kinds == [
        ("purpose", "create"),
        ("role", "create"),
        ("rule", "create"),
        ("user", "create"),
        ("user", "update"),
        ("rule", "delete"),
        ("purpose", "delete"),
    ]
    assert "passphrase" not in repr([e.details for e in changes(context)])


def test_raw_request_workflow_over_http(
    client: TestClient, context: PolicyContext, people: dict[str, Principal], clock: Clock
) -> None:
    admin = auth(context, people["policy_admin"])
    assert client.post("/api/cameras", json=CAMERA, headers=admin).status_code == 201
    inv = auth(context, people["police_investigator"])
    body = {
        "camera_id": "cam-101",
        "purpose": "criminal_investigation",
        "case_ref": "TPD-9",
        "justification": "x",
    }
    assert (
        client.post(
            "/api/raw-requests", json=body, headers=auth(context, people["police_operator"])
        ).status_code
        == 403
    )
    r = client.post("/api/raw-requests", json={**body, "case_ref": ""}, headers=inv)
    assert r.status_code == 422
    r = client.post("/api/raw-requests", json=body, headers=inv)
    assert r.status_code == 201 and r.json()["status"] == "pending"
    rid = r.json()["id"]
    assert client.post(f"/api/raw-requests/{rid}/approve", headers=inv).status_code == 403
    both = auth(context, people["investigator_approver"])
    mine = client.post("/api/raw-requests", json=body, headers=both).json()["id"]
    r = client.post(f"/api/raw-requests/{mine}/approve", headers=both)
    assert r.status_code == 403 and "someone other than the requester" in r.json()["detail"]

    boss = auth(context, people["raw_approver"])
    r = client.post(f"/api/raw-requests/{rid}/approve", json={"minutes": 10}, headers=boss)
    assert r.status_code == 200 and r.json()["status"] == "approved"
    assert client.post("/api/raw-requests/raw-nope/approve", headers=boss).status_code == 404
    assert client.post(f"/api/raw-requests/{rid}/approve", headers=boss).status_code == 409
    listed = client.get("/api/raw-requests", headers=inv).json()
    assert [x["id"] for x in listed] == [rid]  # investigators see their own
    assert {x["id"] for x in client.get("/api/raw-requests", headers=boss).json()} == {rid, mine}
    assert client.get("/api/view/cameras", headers=inv).json()[0]["raw_purposes"] == [
        "criminal_investigation"
    ]

    d = context.service.authorize_view(
        people["police_investigator"], "cam-101", "criminal_investigation", "raw", case_ref="TPD-9"
    )
    sid = context.service.open_session(people["police_investigator"], "cam-101", "criminal_investigation", d)
    viewer = auth(context, people["dashboard_viewer"])
    assert (
        client.post(f"/api/raw-requests/{rid}/revoke", json={"reason": "x"}, headers=viewer).status_code
        == 403
    )
    r = client.post(f"/api/raw-requests/{rid}/revoke", json={"reason": "warrant withdrawn"}, headers=admin)
    assert (
        r.status_code == 200 and r.json()["status"] == "revoked" and r.json()["revoked_by"] == "policy.admin"
    )
    assert not context.service.check_session(sid).allowed
    r = client.post(f"/api/raw-requests/{mine}/deny", json={"reason": "no case"}, headers=boss)
    assert r.status_code == 200 and r.json()["status"] == "denied"


def test_openapi_documents_the_admin_api(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for p in (
        "/api/cameras",
        "/api/cameras/{ident}",
        "/api/rules",
        "/api/purposes",
        "/api/roles",
        "/api/users",
        "/api/raw-requests",
        "/api/raw-requests/{request_id}/approve",
    ):
        assert p in paths, p
    camera_out = spec["components"]["schemas"]["CameraOut"]["properties"]
    assert "has_credentials" in camera_out and "source_url" not in camera_out


def test_records_with_access_history_are_disabled_not_deleted(
    client: TestClient, context: PolicyContext, people: dict[str, Principal]
) -> None:
    admin = auth(context, people["policy_admin"])
    assert client.post("/api/cameras", json=CAMERA, headers=admin).status_code == 201
    op = people["police_operator"]
    d = context.service.authorize_view(op, "cam-101", "public_safety")
    context.service.open_session(op, "cam-101", "public_safety", d)
    r = client.delete("/api/cameras/cam-101", headers=admin)
    assert (
        r.status_code == 409
        and r.json()["detail"] == "camera 'cam-101' has access history; disable it instead"
    )
    r = client.delete(f"/api/users/{op.username}", headers=admin)
    assert r.status_code == 409 and "has access history" in r.json()["detail"]
    assert client.get("/api/cameras/cam-101", headers=admin).status_code == 200
    assert (
        client.put("/api/cameras/cam-101", json={**CAMERA, "enabled": False}, headers=admin).status_code
        == 200
    )
    assert context.service.cameras_for(op) == []
