"""Who a token names: a user's random uid, never reused, and the user's token epoch, which every change of
roles, password or active flag moves. A deleted user's token authenticates nobody, a token from before a
change stops working, and databases created before these columns gain them on start."""

from __future__ import annotations

from collections.abc import Iterator

import jwt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, Table, create_engine, inspect, select, text

from policies import errors
from policies.api import router
from policies.auth import AuthError
from policies.auth import router as auth_router
from policies.context import PolicyContext
from policies.contract import Principal
from policies.db import Database
from policies.models import User

PASSWORD = "a long passphrase"


@pytest.fixture
def client(context: PolicyContext) -> Iterator[TestClient]:
    app = FastAPI()
    app.state.policies = context
    app.include_router(router)
    app.include_router(auth_router)
    errors.install(app)
    with TestClient(app) as c:
        yield c


def admin_headers(ctx: PolicyContext, people: dict[str, Principal]) -> dict[str, str]:
    return {"Authorization": f"Bearer {ctx.auth.issue_token(people['policy_admin'].user_id)}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    resp = client.post("/api/auth/login", json={"username": username, "password": password})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["access_token"])


def test_a_deleted_users_token_does_not_authenticate_the_next_user(
    client: TestClient, context: PolicyContext, people: dict[str, Principal], db_url: str
) -> None:
    admin = admin_headers(context, people)
    user = {"username": "amy", "roles": ["dashboard_viewer"], "password": PASSWORD}
    assert client.post("/api/users", json=user, headers=admin).status_code == 201
    token = login(client, "amy")
    with context.db.session() as s:
        amy_id = s.scalar(select(User.id).where(User.username == "amy"))
    assert client.delete("/api/users/amy", headers=admin).status_code == 204
    user = {"username": "ben", "roles": ["auditor"], "password": PASSWORD}
    assert client.post("/api/users", json=user, headers=admin).status_code == 201
    with context.db.session() as s:
        ben = s.scalar(select(User).where(User.username == "ben"))
        assert ben is not None
        if db_url.startswith("sqlite"):
            assert ben.id == amy_id  # SQLite hands the deleted row's id to the next user
        assert jwt.decode(token, options={"verify_signature": False})["sub"] != ben.uid
    resp = client.get("/api/auth/me", headers=bearer(token))
    assert resp.status_code == 401 and resp.json()["detail"] == "account disabled or removed"
    assert client.get("/api/auth/me", headers=bearer(login(client, "ben"))).json()["username"] == "ben"


@pytest.mark.parametrize("change", [{"roles": []}, {"password": "another long one"},
                                    {"active": False}])
def test_a_token_from_before_a_credentials_change_stops_working(
    client: TestClient, context: PolicyContext, people: dict[str, Principal], change: dict[str, object]
) -> None:
    admin = admin_headers(context, people)
    user = {"username": "cai", "roles": ["auditor"], "password": PASSWORD}
    assert client.post("/api/users", json=user, headers=admin).status_code == 201
    token = login(client, "cai")
    assert client.patch("/api/users/cai", json={"display_name": "Cai Wen"}, headers=admin).status_code == 200
    assert client.get("/api/auth/me", headers=bearer(token)).status_code == 200  # not a credential
    assert client.patch("/api/users/cai", json=change, headers=admin).status_code == 200
    resp = client.get("/api/auth/me", headers=bearer(token))
    assert resp.status_code == 401
    if "active" not in change:
        assert "predates a change" in resp.json()["detail"]
        fresh = login(client, "cai", str(change.get("password", PASSWORD)))
        assert client.get("/api/auth/me", headers=bearer(fresh)).status_code == 200


def test_a_rehash_at_login_keeps_the_persons_tokens(
    context: PolicyContext, people: dict[str, Principal]
) -> None:
    from argon2 import PasswordHasher

    with context.db.session() as s:
        user = s.get(User, people["auditor"].user_id)
        assert user is not None
        user.password_hash = PasswordHasher(time_cost=1, memory_cost=8192).hash(PASSWORD)  # older parameters
    older = context.auth.issue_token(people["auditor"].user_id)
    context.auth.login("auditor", PASSWORD)
    with context.db.session() as s:
        rehashed = s.get(User, people["auditor"].user_id)
        assert rehashed is not None and rehashed.password_hash is not None
        assert not context.auth._hasher.check_needs_rehash(rehashed.password_hash)
    assert context.auth.authenticate(older).username == "auditor"


def test_a_database_from_before_uids_gains_them(db_url: str) -> None:
    engine = create_engine(db_url)
    old = MetaData()  # the users table as earlier versions created it: no uid, no token_epoch
    Table("users", old, *[c._copy() for c in User.__table__.columns if c.name not in ("uid", "token_epoch")])
    old.create_all(engine)
    with engine.begin() as conn:
        for name in ("old.one", "old.two"):
            conn.execute(text("INSERT INTO users (username, display_name, active, created_at) "
                              "VALUES (:n, '', TRUE, CURRENT_TIMESTAMP)"), {"n": name})
    engine.dispose()
    db = Database(db_url)
    db.create_all()
    db.create_all()  # idempotent
    try:
        columns = {c["name"] for c in inspect(db.engine).get_columns("users")}
        assert {"uid", "token_epoch"} <= columns
        with db.session() as s:
            users = list(s.scalars(select(User).order_by(User.id)))
            assert [u.token_epoch for u in users] == [0, 0]
            assert len({u.uid for u in users}) == 2 and all(len(u.uid) == 32 for u in users)
            s.add(User(username="new.one"))
        with pytest.raises(Exception, match=r"(?i)unique"), db.session() as s:
            s.get(User, 2).uid = users[0].uid  # type: ignore[union-attr]
    finally:
        db.dispose()


def test_tokens_without_the_epoch_claim_are_refused(
    context: PolicyContext, people: dict[str, Principal]
) -> None:
    token = context.auth.issue_token(people["auditor"].user_id)
    claims = jwt.decode(token, options={"verify_signature": False})
    del claims["ver"]
    old_style = jwt.encode(claims, context.settings.token_secret, algorithm="HS256")
    with pytest.raises(AuthError, match="invalid token"):
        context.auth.authenticate(old_style)
