"""Separation of duties over HTTP: an admin can neither give themself a watching role nor make a second
account to approve their own raw requests; grants of watching, raw-view or admin rights wait for a second
admin (who may not be the one who asked nor the one receiving), expire, are logged as role.grant; conflicting
rights are refused with 409; the command line grants at once as the system and logs it as break-glass."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from policies import errors, grants_api
from policies.api import router
from policies.auth import has_permission
from policies.auth import router as auth_router
from policies.cli import register
from policies.context import PolicyContext
from policies.contract import Principal
from policies.models import RoleGrant, User
from tests.policies.conftest import add_user

NEW = {"username": "sock.puppet", "password": "a long passphrase"}


@pytest.fixture
def client(context: PolicyContext) -> Iterator[TestClient]:
    app = FastAPI()
    app.state.policies = context
    for r in (router, auth_router, grants_api.router):
        app.include_router(r)
    errors.install(app)
    with TestClient(app) as c:
        yield c


@pytest.fixture
def admins(context: PolicyContext, people: dict[str, Principal]) -> dict[str, dict[str, str]]:
    second = add_user(context, "second.admin", ["policy_admin"])
    return {"first": headers(context, people["policy_admin"]), "second": headers(context, second)}


def headers(ctx: PolicyContext, who: Principal) -> dict[str, str]:
    return {"Authorization": f"Bearer {ctx.auth.issue_token(who.user_id)}"}


def roles_of(ctx: PolicyContext, username: str) -> list[str]:
    with ctx.db.session() as s:
        user = s.scalar(select(User).where(User.username == username))
        assert user is not None
        return sorted(r.name for r in user.roles)


def pending(client: TestClient, admin: dict[str, str]) -> list[dict[str, object]]:
    resp = client.get("/api/role-grants", params={"state": "pending"}, headers=admin)
    assert resp.status_code == 200
    return list(resp.json())


def test_an_admin_cannot_give_themself_a_watching_role(
    client: TestClient, context: PolicyContext, admins: dict[str, dict[str, str]]
) -> None:
    me = {"roles": ["policy_admin", "police_investigator"]}
    resp = client.patch("/api/users/policy.admin", json=me, headers=admins["first"])
    assert resp.status_code == 409
    assert "administering users and policy must not meet watching" in resp.json()["detail"]
    assert "police_investigator (request_raw, view)" in resp.json()["detail"]
    assert roles_of(context, "policy.admin") == ["policy_admin"]
    admin = context.auth.authenticate(admins["first"]["Authorization"].removeprefix("Bearer "))
    assert not has_permission(context, admin, "view")
    # Where the setting allows such a person, it still takes a second admin, never the admin themself.
    context.settings.allow_conflicting_duties = True
    resp = client.patch("/api/users/policy.admin", json=me, headers=admins["first"])
    assert resp.status_code == 202 and resp.json()["pending_roles"] == ["police_investigator"]
    (grant,) = pending(client, admins["first"])
    refused = client.post(f"/api/role-grants/{grant['id']}/approve", headers=admins["first"])
    assert refused.status_code == 403 and "may not decide" in refused.json()["detail"]
    assert roles_of(context, "policy.admin") == ["policy_admin"]
    assert client.post(f"/api/role-grants/{grant['id']}/approve", headers=admins["second"]).status_code == 200
    assert roles_of(context, "policy.admin") == ["police_investigator", "policy_admin"]


def test_a_second_account_to_approve_ones_own_raw_requests_needs_a_second_admin(
    client: TestClient, context: PolicyContext, admins: dict[str, dict[str, str]]
) -> None:
    puppet_user = {**NEW, "roles": ["raw_approver", "auditor"]}
    resp = client.post("/api/users", json=puppet_user, headers=admins["first"])
    assert resp.status_code == 201
    assert resp.json()["roles"] == ["auditor"] and resp.json()["pending_roles"] == ["raw_approver"]
    (grant,) = pending(client, admins["second"])
    assert (grant["user"], grant["roles"], grant["rights"], grant["requested_by"]) == (
        "sock.puppet", ["raw_approver"], ["approve_raw"], "policy.admin")
    # What waits is shown wherever the user is: their own page and the list.
    shown = client.get("/api/users/sock.puppet", headers=admins["second"]).json()
    assert (shown["roles"], shown["pending_roles"]) == (["auditor"], ["raw_approver"])
    listed = {u["username"]: u for u in client.get("/api/users", headers=admins["second"]).json()}
    assert listed["sock.puppet"]["pending_roles"] == ["raw_approver"]
    assert listed["policy.admin"]["pending_roles"] == []
    login = client.post("/api/auth/login", json=NEW)
    puppet = {"Authorization": f"Bearer {login.json()['access_token']}"}
    assert client.post("/api/raw-requests/x/approve", headers=puppet).status_code == 403
    assert client.post(f"/api/role-grants/{grant['id']}/approve", headers=admins["first"]).status_code == 403
    approved = client.post(f"/api/role-grants/{grant['id']}/approve", headers=admins["second"])
    assert approved.status_code == 200 and approved.json()["state"] == "approved"
    assert approved.json()["decided_by"] == "second.admin"
    assert roles_of(context, "sock.puppet") == ["auditor", "raw_approver"]
    assert client.get("/api/users/sock.puppet", headers=admins["second"]).json()["pending_roles"] == []
    again = client.post(f"/api/role-grants/{grant['id']}/approve", headers=admins["second"])
    assert again.status_code == 409
    kinds = [(e.kind, e.actor, e.decision) for e in context.audit.query(kind="role.grant")]
    assert kinds == [("role.grant.request", "policy.admin", None),
                     ("role.grant.refused", "policy.admin", "deny"),
                     ("role.grant", "second.admin", "allow"),
                     ("role.grant.refused", "second.admin", "deny")]
    conferred = context.audit.query(kind="role.grant")[2]
    assert conferred.details["rights"] == ["approve_raw"]
    assert conferred.details["requested_by"] == "policy.admin"
    assert conferred.details["second_admin"] is True


def test_grants_are_denied_or_expire(
    client: TestClient, context: PolicyContext, admins: dict[str, dict[str, str]]
) -> None:
    assert client.post("/api/users", json={**NEW, "roles": ["dashboard_viewer"]},
                       headers=admins["first"]).status_code == 201
    (grant,) = pending(client, admins["first"])
    denied = client.post(f"/api/role-grants/{grant['id']}/deny", json={"reason": "no need to know"},
                         headers=admins["second"])
    assert denied.status_code == 200 and denied.json()["state"] == "denied"
    operator = {"roles": ["police_operator"]}
    resp = client.patch("/api/users/sock.puppet", json=operator, headers=admins["first"])
    assert resp.status_code == 202
    (grant,) = pending(client, admins["first"])
    with context.db.session() as s:
        s.execute(update(RoleGrant).where(RoleGrant.id == grant["id"])
                  .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    assert pending(client, admins["first"]) == []
    late = client.post(f"/api/role-grants/{grant['id']}/approve", headers=admins["second"])
    assert late.status_code == 409 and "expired" in late.json()["detail"]
    assert roles_of(context, "sock.puppet") == []
    kinds = [e.kind for e in context.audit.query(kind="role.grant")]
    assert kinds == ["role.grant.request", "role.grant.deny", "role.grant.request", "role.grant.expire",
                     "role.grant.refused"]
    assert client.get("/api/role-grants", params={"state": "odd"}, headers=admins["first"]).status_code == 400


def test_requesting_and_approving_raw_never_meet(
    client: TestClient, context: PolicyContext, admins: dict[str, dict[str, str]]
) -> None:
    both = {"roles": ["police_investigator", "raw_approver"]}
    resp = client.patch("/api/users/police.investigator", json=both, headers=admins["first"])
    assert resp.status_code == 409 and "requesting raw view and approving it" in resp.json()["detail"]
    # Nor by widening a role someone holds: that would grant without a second admin, or make a conflict.
    role = {"name": "raw_approver", "can_approve_raw": True, "can_request_raw": True}
    resp = client.put("/api/roles/raw_approver", json=role, headers=admins["first"])
    assert resp.status_code == 409 and "without a second admin" in resp.json()["detail"]
    context.settings.grants_need_second_admin = False
    resp = client.put("/api/roles/raw_approver", json=role, headers=admins["first"])
    assert resp.status_code == 409 and "requesting raw view and approving it" in resp.json()["detail"]


def test_without_a_second_admin_grants_apply_and_are_logged(
    client: TestClient, context: PolicyContext, admins: dict[str, dict[str, str]]
) -> None:
    context.settings.grants_need_second_admin = False
    resp = client.post("/api/users", json={**NEW, "roles": ["police_operator"]}, headers=admins["first"])
    assert resp.status_code == 201 and resp.json()["roles"] == ["police_operator"]
    (entry,) = context.audit.query(kind="role.grant")
    assert (entry.kind, entry.actor, entry.details["rights"], entry.details["second_admin"]) == (
        "role.grant", "policy.admin", ["view"], False)


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="cctv-relay")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.func(args) or 0)


def test_the_command_line_grants_as_the_system_and_logs_it(
    context: PolicyContext, people: dict[str, Principal], capsys: pytest.CaptureFixture[str]
) -> None:
    url = context.db.url
    assert cli("user", "grant", "auditor", "police_operator", "--database-url", url) == 0
    assert roles_of(context, "auditor") == ["auditor", "police_operator"]
    (entry,) = context.audit.query(kind="role.grant")
    assert entry.actor.startswith("cli:") and entry.details["break_glass"] is True
    assert entry.details["rights"] == ["view"] and entry.details["source"] == "cli"
    assert cli("user", "grant", "policy.admin", "police_operator", "--database-url", url) == 1
    assert "must not meet watching" in capsys.readouterr().err
    assert roles_of(context, "policy.admin") == ["policy_admin"]
