"""Authentication for real: argon2 local accounts and HS256 tokens, the city SSO's RS256/ES256 tokens
checked against a JWKS served over real HTTP, and `require()` refusing (401/403) and logging refusals
through a FastAPI app built from the routers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from sqlalchemy import event, select

from policies.audit import AuditLog
from policies.auth import Authenticator, AuthError, require
from policies.auth import router as auth_router
from policies.context import PolicyContext
from policies.contract import Principal
from policies.db import Database
from policies.models import User
from policies.settings import PolicySettings

ISSUER = "https://sso.example.taipei/realms/city"
AUDIENCE = "cctv-relay"
PASSWORD = "correct horse battery staple"


def add_user(ctx: PolicyContext, username: str, roles: list[str], password: str | None = PASSWORD,
             active: bool = True) -> int:
    from policies.models import Role

    with ctx.db.session() as s:
        user = User(username=username, password_hash=ctx.auth.hash_password(password) if password else None,
                    active=active, roles=list(s.scalars(select(Role).where(Role.name.in_(roles)))))
        s.add(user)
        s.flush()
        return user.id


def log_text(ctx: PolicyContext) -> str:
    return "".join(ctx.audit.export("json"))


# -- local accounts ----------------------------------------------------------------------------------


def test_password_hashing(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'hash.db'}")  # hashing is the same whatever the database
    auth = Authenticator(PolicySettings(database_url=db.url), db, AuditLog(db))
    assert auth._dummy_hash is None  # nothing hashed at start (it costs most of a second)
    digest = auth.hash_password(PASSWORD)
    assert digest.startswith("$argon2id$") and PASSWORD not in digest
    # Unknown users are checked against a hash as costly as a real account's.
    params = digest.rsplit("$", 2)[0]
    assert auth.dummy_hash().rsplit("$", 2)[0] == params and auth.dummy_hash() != digest
    assert auth.verify_password(digest, PASSWORD)
    assert not auth.verify_password(digest, PASSWORD + "!")
    assert not auth.verify_password(None, PASSWORD)
    assert not auth.verify_password("not-a-hash", PASSWORD)
    with pytest.raises(AuthError, match="at least 8"):
        auth.hash_password("short")


def test_login_token_and_refusals_are_logged(context: PolicyContext) -> None:
    uid = add_user(context, "alice", ["dashboard_viewer"])
    token = context.auth.login("alice", PASSWORD, client="10.0.0.5")
    principal = context.auth.authenticate(token)
    assert principal == Principal(user_id=uid, username="alice", roles=("dashboard_viewer",))
    claims = jwt.decode(token, options={"verify_signature": False})
    with context.db.session() as s:
        user = s.get(User, uid)
        assert user is not None
        assert claims["sub"] == user.uid != str(uid) and claims["ver"] == user.token_epoch
    assert claims["exp"] - claims["iat"] == context.settings.token_ttl_s
    assert claims["jti"]

    with pytest.raises(AuthError, match="invalid username or password"):
        context.auth.login("alice", "wrong password!")
    with pytest.raises(AuthError, match="invalid username or password"):
        context.auth.login("nobody", PASSWORD)
    entries = context.audit.query(kind="auth")
    assert [(e.kind, e.actor, e.decision, e.reason) for e in entries] == [
        ("auth.login", "alice", "allow", ""),
        ("auth.fail", "alice", "deny", "wrong password"),
        ("auth.fail", "nobody", "deny", "unknown user"),
    ]
    assert entries[0].details == {"method": "password", "client": "10.0.0.5"}
    text = log_text(context)
    assert PASSWORD not in text and "wrong password!" not in text and token not in text
    assert context.audit.verify().ok


def test_disabled_user_is_refused(context: PolicyContext) -> None:
    uid = add_user(context, "bob", ["police_operator"])
    token = context.auth.login("bob", PASSWORD)
    with context.db.session() as s:
        s.get(User, uid).active = False  # type: ignore[union-attr]
    with pytest.raises(AuthError, match="disabled"):
        context.auth.authenticate(token)
    with pytest.raises(AuthError, match="invalid username or password"):
        context.auth.login("bob", PASSWORD)
    assert context.audit.query(kind="auth.fail")[-1].reason == "account disabled"


def test_expired_forged_and_foreign_tokens(context: PolicyContext) -> None:
    uid = add_user(context, "carol", ["auditor"])
    short = Authenticator(context.settings.model_copy(update={"token_ttl_s": -60}), context.db, context.audit)
    with pytest.raises(AuthError, match="token expired"):
        context.auth.authenticate(short.issue_token(uid))

    token = context.auth.issue_token(uid)
    # A second worker with the same secret accepts it; one with another secret does not.
    assert Authenticator(context.settings, context.db, context.audit).authenticate(token).username == "carol"
    other = context.settings.model_copy(update={"token_secret": "some-other-secret-0123456789abcdef"})
    with pytest.raises(AuthError, match="invalid token"):
        Authenticator(other, context.db, context.audit).authenticate(token)

    head, body, sig = token.split(".")
    with pytest.raises(AuthError, match="invalid token"):
        context.auth.authenticate(f"{head}.{body}.{sig[:-4]}AAAA")
    unsigned = jwt.encode({"sub": str(uid), "exp": time.time() + 60}, key=None, algorithm="none")
    with pytest.raises(AuthError, match="not accepted"):
        context.auth.authenticate(unsigned)
    for junk in ("", "abc", "a.b.c"):
        with pytest.raises(AuthError):
            context.auth.authenticate(junk)


# -- single sign-on (OIDC bearer tokens) ----------------------------------------------------------------


def _hs256(header: dict[str, Any], claims: dict[str, Any], key: bytes) -> str:
    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(hmac.new(key, signing_input.encode(), hashlib.sha256).digest())}"


class JwksServer:
    """A real HTTP server on loopback that serves a JWKS document and counts fetches."""

    def __init__(self) -> None:
        self.doc: dict[str, Any] = {"keys": []}
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                body = json.dumps(outer.doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/realms/city/certs"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    return {"rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "rsa_other": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "ec": ec.generate_private_key(ec.SECP256R1())}


def jwks_doc(keys: dict[str, Any]) -> dict[str, Any]:
    rsa_jwk = RSAAlgorithm.to_jwk(keys["rsa"].public_key(), as_dict=True) | {"kid": "rsa-1", "alg": "RS256"}
    ec_jwk = ECAlgorithm.to_jwk(keys["ec"].public_key(), as_dict=True) | {"kid": "ec-1", "alg": "ES256"}
    return {"keys": [rsa_jwk, ec_jwk]}


@pytest.fixture
def jwks(keys: dict[str, Any]) -> Iterator[JwksServer]:
    server = JwksServer()
    server.doc = jwks_doc(keys)
    yield server
    server.close()


ROLE_MAP = {"cctv-viewers": "dashboard_viewer", "cctv-audit": "auditor"}


def sso(context: PolicyContext, jwks_url: str) -> Authenticator:
    settings = context.settings.model_copy(update={
        "oidc_issuer": ISSUER, "oidc_audience": AUDIENCE, "oidc_jwks_url": jwks_url,
        "oidc_role_map": ROLE_MAP})
    return Authenticator(settings, context.db, context.audit)


def mint(keys: dict[str, Any], *, key: str = "rsa", kid: str = "rsa-1", sub: str = "u-123",
         roles: list[str] | None = None, aud: str = AUDIENCE, iss: str = ISSUER, exp_in: int = 300,
         **extra: Any) -> str:
    now = int(time.time())
    claims = {"iss": iss, "aud": aud, "sub": sub, "iat": now, "exp": now + exp_in, "jti": uuid.uuid4().hex,
              "preferred_username": "wang.xm", "name": "Wang Xiao-ming",
              "roles": ["cctv-viewers"] if roles is None else roles, **extra}
    alg = "ES256" if key == "ec" else "RS256"
    return jwt.encode(claims, keys[key], algorithm=alg, headers={"kid": kid})


def test_sso_token_creates_and_follows_the_user(context: PolicyContext, jwks: JwksServer,
                                                keys: dict[str, Any]) -> None:
    auth = sso(context, jwks.url)
    principal = auth.authenticate(mint(keys))
    assert (principal.username, principal.roles) == ("wang.xm", ("dashboard_viewer",))
    with context.db.session() as s:
        user = s.scalars(select(User).where(User.oidc_subject == "u-123")).one()
        assert user.password_hash is None and user.display_name == "Wang Xiao-ming"
    # The same subject keeps its account; its roles follow the SSO's claims.
    again = auth.authenticate(mint(keys, key="ec", kid="ec-1", roles=["cctv-audit", "cctv-viewers", "x"]))
    assert again.user_id == principal.user_id and again.roles == ("auditor", "dashboard_viewer")
    assert jwks.fetches == 1  # the JWKS is cached
    auth.authenticate(mint(keys, roles=["cctv-viewers", "cctv-audit"]))  # no change, nothing logged
    changes = context.audit.query(kind="user.change")
    assert [(e.actor, e.reason, e.details) for e in changes] == [
        ("sso", "created from single sign-on",
         {"user": "wang.xm", "before": None, "after": ["dashboard_viewer"]}),
        ("sso", "roles follow single sign-on",
         {"user": "wang.xm", "before": ["dashboard_viewer"], "after": ["auditor", "dashboard_viewer"]}),
    ]


def test_sso_refusals(context: PolicyContext, jwks: JwksServer, keys: dict[str, Any]) -> None:
    auth = sso(context, jwks.url)
    cases = {
        "token expired": mint(keys, exp_in=-120),
        "not meant for this relay": mint(keys, aud="another-app"),
        "unknown issuer": mint(keys, iss="https://evil.example/"),
        "invalid token": mint(keys, key="rsa_other"),  # right kid, wrong key
        "unknown key": mint(keys, key="rsa_other", kid="rsa-2"),
        "invalid token ": mint(keys, key="ec", kid="rsa-1"),  # ES256 header naming the RSA key
    }
    for message, token in cases.items():
        with pytest.raises(AuthError, match=message.strip()) as err:
            auth.authenticate(token)
        assert err.value.status == 401
    with pytest.raises(AuthError, match="grant no relay role") as err:
        auth.authenticate(mint(keys, sub="u-999", roles=["library-staff"]))
    assert err.value.status == 403
    with context.db.session() as s:  # nobody was created for the refused subject
        assert s.scalars(select(User).where(User.oidc_subject == "u-999")).first() is None
    # Public key material cannot mint a token: HS256 "signed" with the published key (built by hand, as
    # the JWT library itself refuses to) is judged against the local secret and fails.
    forged = _hs256({"alg": "HS256", "kid": "rsa-1"},
                    {"sub": "1", "exp": int(time.time()) + 60, "iss": "cctv-relay", "jti": "x"},
                    keys["rsa"].public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    with pytest.raises(AuthError, match="invalid token"):
        auth.authenticate(forged)


def test_sso_disabled_account_and_jwks_file(context: PolicyContext, keys: dict[str, Any],
                                            tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(jwks_doc(keys)))
    auth = sso(context, str(path))
    uid = auth.authenticate(mint(keys, sub="u-7")).user_id
    with context.db.session() as s:
        s.get(User, uid).active = False  # type: ignore[union-attr]
    with pytest.raises(AuthError, match="disabled") as err:
        auth.authenticate(mint(keys, sub="u-7"))
    assert err.value.status == 403
    with pytest.raises(AuthError, match="keys unavailable"):
        sso(context, str(tmp_path / "missing.json")).authenticate(mint(keys))


# -- HTTP: login, /me, refusals ----------------------------------------------------------------------


@pytest.fixture
def client(context: PolicyContext) -> Iterator[TestClient]:
    app = FastAPI()
    app.state.policies = context
    app.include_router(auth_router)

    @app.get("/api/admin-only")
    def admin_only(who: Annotated[Principal, Depends(require("admin"))]) -> dict[str, str]:
        return {"hello": who.username}

    with TestClient(app) as c:
        yield c


def test_login_endpoint_and_me(client: TestClient, context: PolicyContext) -> None:
    add_user(context, "dora", ["auditor", "dashboard_viewer"])
    resp = client.post("/api/auth/login", json={"username": "dora", "password": PASSWORD})
    assert resp.status_code == 200
    body = resp.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == context.settings.token_ttl_s
    assert body["user"]["roles"] == ["auditor", "dashboard_viewer"]
    me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["username"] == "dora" and me.json()["permissions"] == ["audit", "view"]
    client.cookies.set("cctv_token", body["access_token"])  # cookies are not credentials (no CSRF)
    assert client.get("/api/auth/me").status_code == 401
    client.cookies.clear()

    odd = client.post("/api/auth/login", json={"username": "dora\u0000", "password": PASSWORD})
    assert odd.status_code == 401
    assert context.audit.query(kind="auth.fail")[-1].actor == "dora\ufffd"
    bad = client.post("/api/auth/login", json={"username": "dora", "password": "nope-nope"})
    assert bad.status_code == 401 and bad.json() == {"detail": "invalid username or password"}
    assert client.post("/api/auth/login", json={"username": "dora"}).status_code == 422


def test_refusals_are_401_403_and_logged(client: TestClient, context: PolicyContext) -> None:
    add_user(context, "erin", ["dashboard_viewer"])
    token = context.auth.login("erin", PASSWORD)

    resp = client.get("/api/auth/me")
    assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer"
    garbage = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2VjcmV0LXRva2VuLXZhbHVl"
    assert client.get("/api/admin-only", headers={"Authorization": f"Bearer {garbage}"}).status_code == 401
    resp = client.get("/api/admin-only", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 403 and "admin" in resp.json()["detail"]
    assert client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    refused = context.audit.query(kind="auth.refused")
    assert [(e.actor, e.decision, e.reason, e.details["path"], e.details["status"]) for e in refused] == [
        ("anonymous", "deny", "no token", "/api/auth/me", 401),
        ("anonymous", "deny", "invalid token", "/api/admin-only", 401),
    ]
    (forbidden,) = context.audit.query(kind="auth.forbidden")
    assert (forbidden.actor, forbidden.roles, forbidden.reason) == ("erin", ["dashboard_viewer"],
                                                                    "missing permission: admin")
    assert forbidden.details["method"] == "GET" and forbidden.details["path"] == "/api/admin-only"
    text = log_text(context)
    assert token not in text and garbage not in text and PASSWORD not in text


def test_the_gate_reads_the_account_and_its_rights_in_one_transaction(client: TestClient,
                                                                     context: PolicyContext) -> None:
    # Every API request passes the gate: one transaction for the token's account and its roles' rights.
    add_user(context, "fay", ["policy_admin"])
    token = context.auth.login("fay", PASSWORD)
    begun: list[object] = []

    def count(conn: object) -> None:
        begun.append(conn)

    event.listen(context.db.engine, "begin", count)
    try:
        resp = client.get("/api/admin-only", headers={"Authorization": f"Bearer {token}"})
    finally:
        event.remove(context.db.engine, "begin", count)
    assert resp.status_code == 200 and resp.json() == {"hello": "fay"}
    assert len(begun) == 1


def test_unknown_permission_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown permission"):
        require("watch")
