"""Who is asking: local accounts (argon2 password hashes, short-lived HS256 tokens) and the city's single
sign-on (OIDC bearer JWTs checked against its JWKS, roles mapped to relay roles). `authorize(request,
permission)` is the one gate: `require(...)`, the FastAPI dependency every protected endpoint uses, is
built on it, and the relay calls it where it checks by hand. Each refusal is written to the access log
(never the token itself)."""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from policies.audit import AuditLog
from policies.contract import Principal
from policies.db import Database
from policies.duties import PERMISSIONS, conflict
from policies.identity import SAME_CREDENTIALS
from policies.login_limits import Busy, HashSlots, LoginThrottle, ThrottleLimits
from policies.models import Role, User
from policies.settings import PolicySettings

LOCAL_ISSUER = "cctv-relay"
_OIDC_ALGORITHMS = ["RS256", "ES256"]
_JWKS_TTL_S = 300.0
_JWKS_MIN_REFRESH_S = 30.0  # an unknown key id refetches the JWKS at most this often (key rotation)


class AuthError(Exception):
    """Authentication refused. `status`: 401 (who are you?), 403 (known, but not let in), 429 (this client
    must wait `retry_after` seconds) or 503 (too many logins at once)."""

    def __init__(self, message: str, status: int = 401, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class _Account:
    """What a login needs of a user, read in a short unit of work that ends before the password check."""

    uid: str
    epoch: int
    password_hash: str | None
    active: bool
    roles: list[str]


class _Jwks:
    """The SSO's signing keys from an http(s) URL (cached) or a file."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._keys: dict[str | None, Any] = {}
        self._fetched = 0.0
        self._lock = threading.Lock()

    def _load(self) -> None:
        try:
            if self.source.startswith(("http://", "https://")):
                resp = httpx.get(self.source, timeout=5.0)
                resp.raise_for_status()
                doc = resp.json()
            else:
                doc = json.loads(Path(self.source).read_text())
            # Encryption keys are not for checking signatures.
            doc = {"keys": [k for k in doc.get("keys", []) if k.get("use", "sig") == "sig"]}
            jwks = jwt.PyJWKSet.from_dict(doc)
        except (httpx.HTTPError, OSError, ValueError, AttributeError, jwt.PyJWTError) as exc:
            raise AuthError(f"single sign-on keys unavailable ({type(exc).__name__})") from exc
        self._keys = {k.key_id: k for k in jwks.keys}
        self._fetched = time.monotonic()

    def key(self, kid: str | None) -> Any:
        with self._lock:
            age = time.monotonic() - self._fetched
            if not self._keys or age > _JWKS_TTL_S or (kid not in self._keys and age > _JWKS_MIN_REFRESH_S):
                self._load()
            if kid is None and len(self._keys) == 1:
                return next(iter(self._keys.values()))
            if kid not in self._keys:
                raise AuthError("token signed by an unknown key")
            return self._keys[kid]


class Authenticator:
    def __init__(self, settings: PolicySettings, db: Database, audit: AuditLog) -> None:
        self.settings = settings
        self.db = db
        self.audit = audit
        # Without a configured secret tokens only live as long as this process (and only work in it).
        self._secret = settings.token_secret or secrets.token_urlsafe(32)
        self._hasher = PasswordHasher()
        self._dummy_hash: str | None = None  # made on first use: hashing costs most of a second
        self._dummy_lock = threading.Lock()
        self._jwks = _Jwks(settings.oidc_jwks_url) if settings.oidc_jwks_url else None
        self.slots = HashSlots(settings.login_hash_slots, settings.login_queue, settings.login_wait_s)
        self.throttle = LoginThrottle(ThrottleLimits(
            free=settings.login_free_failures, max_wait_s=settings.login_max_wait_s,
            client_max=settings.login_client_max_failures, window_s=settings.login_failure_window_s,
            account_max=settings.login_account_max_failures,
            account_window_s=settings.login_account_window_s))

    # -- passwords -----------------------------------------------------------------------------------

    def hash_password(self, password: str) -> str:
        if len(password) < 8:
            raise AuthError("password must be at least 8 characters", status=400)
        return self._hasher.hash(password)

    def dummy_hash(self) -> str:
        """A hash of a random password with the real accounts' parameters: unknown users are checked
        against it, so how long a login takes does not tell who has an account."""
        with self._dummy_lock:
            if self._dummy_hash is None:
                self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
            return self._dummy_hash

    def verify_password(self, password_hash: str | None, password: str) -> bool:
        try:
            matched = self._hasher.verify(password_hash or self.dummy_hash(), password)
            return matched and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    # -- local accounts ------------------------------------------------------------------------------

    def login(self, username: str, password: str, client: str = "") -> str:
        """A token for the right password. Never holds a database connection while it checks the
        password or waits for another connection (the access log's append takes its own); every
        attempt, refused ones included, is logged as auth.login or auth.fail."""
        username = username[:128]
        wait = self.throttle.retry_after(username, client)
        if wait is not None:
            self._failed(username, [], "too many failed attempts", client, retry_after=wait)
            raise AuthError("too many failed attempts; try again later", status=429, retry_after=wait)
        account = self._account(username)
        try:
            with self.slots.slot():
                # Unknown users are checked against a dummy hash so timing does not reveal who exists.
                ok = self.verify_password(account.password_hash if account else None, password)
                old = account.password_hash if account else None
                rehash = ok and old is not None and self._hasher.check_needs_rehash(old)
                new_hash = self._hasher.hash(password) if rehash else None
        except Busy:
            self._failed(username, [], "relay busy: password not checked", client, retry_after=1.0)
            raise AuthError("too many sign-ins at once; try again shortly", status=503,
                            retry_after=1.0) from None
        if not ok or account is None or not account.active:
            self.throttle.failed(username, client)
            why = "unknown user" if account is None else ("wrong password" if not ok else "account disabled")
            self._failed(username, account.roles if account else [], why, client)
            raise AuthError("invalid username or password")
        self.throttle.succeeded(username, client)
        with self.db.session() as s:
            user = s.scalar(select(User).where(User.uid == account.uid))
            if user is None or user.token_epoch != account.epoch:
                raise AuthError("the account changed while signing in; try again")
            if new_hash is not None:
                s.info[SAME_CREDENTIALS] = True  # newer hash parameters, same password: tokens stay
                user.password_hash = new_hash
            self.audit.append_in(s, "auth.login", actor=username, roles=account.roles, decision="allow",
                                 details={"method": "password", "client": client})
        return self._mint(account.uid, account.epoch)

    def _account(self, username: str) -> _Account | None:
        if "\x00" in username:  # in no user name (and PostgreSQL would refuse the query)
            return None
        with self.db.session() as s:
            user = s.scalar(select(User).where(User.username == username))
            if user is None:
                return None
            return _Account(user.uid, user.token_epoch, user.password_hash, user.active,
                            [r.name for r in user.roles])

    def _failed(self, username: str, roles: list[str], why: str, client: str,
                retry_after: float | None = None) -> None:
        details: dict[str, Any] = {"method": "password", "client": client}
        if retry_after is not None:
            details["retry_after_s"] = round(retry_after, 1)
        self.audit.append("auth.fail", actor=username, roles=roles, decision="deny", reason=why,
                          details=details)

    def issue_token(self, user_id: int) -> str:
        """A token for the user with this row id (as it is now: its uid and token epoch)."""
        with self.db.session() as s:
            user = s.get(User, user_id)
            if user is None:
                raise AuthError(f"no user with id {user_id}")
            return self._mint(user.uid, user.token_epoch)

    def _mint(self, uid: str, epoch: int) -> str:
        now = int(time.time())
        claims = {"iss": LOCAL_ISSUER, "sub": uid, "ver": epoch, "iat": now,
                  "exp": now + self.settings.token_ttl_s, "jti": uuid.uuid4().hex}
        return jwt.encode(claims, self._secret, algorithm="HS256")

    # -- any bearer token ----------------------------------------------------------------------------

    def authenticate(self, token: str) -> Principal:
        return self.identify(token)[0]

    def identify(self, token: str) -> tuple[Principal, frozenset[str]]:
        """The token's Principal and the permissions its roles grant, read in one transaction (the gate
        asks both of every request)."""
        if not token:
            raise AuthError("no token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError("malformed token") from exc
        if header.get("alg") == "HS256":
            return self._local(token)
        if header.get("alg") in _OIDC_ALGORITHMS and self._jwks is not None:
            return self._oidc(token, header.get("kid"))
        raise AuthError("token type not accepted")

    def _local(self, token: str) -> tuple[Principal, frozenset[str]]:
        try:
            claims = jwt.decode(token, self._secret, algorithms=["HS256"], issuer=LOCAL_ISSUER,
                                options={"require": ["exp", "sub", "jti", "ver"]})
            uid, epoch = str(claims["sub"]), int(claims["ver"])
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("token expired") from exc
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise AuthError("invalid token") from exc
        with self.db.session() as s:
            user = s.scalar(select(User).where(User.uid == uid))
            if user is None or not user.active:
                raise AuthError("account disabled or removed")
            if user.token_epoch != epoch:
                raise AuthError("token predates a change of the account's roles, password or status")
            return _principal(user), rights(user.roles)

    def _oidc(self, token: str, kid: str | None) -> tuple[Principal, frozenset[str]]:
        assert self._jwks is not None
        st = self.settings
        if st.oidc_issuer is None or st.oidc_audience is None:
            raise AuthError("single sign-on is not fully configured (issuer and audience)")
        key = self._jwks.key(kid)
        if key.algorithm_name not in _OIDC_ALGORITHMS:
            raise AuthError("token signed with an algorithm not accepted")
        try:
            # Only the key's own algorithm: an ES256 header cannot talk an RSA key into anything.
            claims = jwt.decode(token, key.key, algorithms=[key.algorithm_name], audience=st.oidc_audience,
                                issuer=st.oidc_issuer, leeway=10,
                                options={"require": ["exp", "sub", "iss", "aud"]})
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("token expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthError("token not meant for this relay") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthError("token from an unknown issuer") from exc
        except jwt.PyJWTError as exc:
            raise AuthError("invalid token") from exc
        subject = str(claims["sub"])
        sso_roles = claims.get(st.oidc_role_claim) or []
        if isinstance(sso_roles, str):
            sso_roles = [sso_roles]
        wanted = {st.oidc_role_map[r] for r in sso_roles if isinstance(r, str) and r in st.oidc_role_map}
        try:
            return self._sso_user(subject, claims, wanted)
        except IntegrityError:
            # Two first requests of the same person raced to create the account; the other one won.
            return self._sso_user(subject, claims, wanted)

    def _sso_user(self, subject: str, claims: dict[str, Any], wanted: set[str],
                  ) -> tuple[Principal, frozenset[str]]:
        with self.db.session() as s:
            roles = list(s.scalars(select(Role).where(Role.name.in_(wanted)))) if wanted else []
            user = s.scalar(select(User).where(User.oidc_subject == subject))
            before: list[str] | None = None
            if user is None:
                name = str(claims.get("preferred_username") or subject)[:100]
                taken = s.scalar(select(User.id).where(User.username == name)) is not None
                user = User(username=f"sso:{subject}"[:128] if taken else name, oidc_subject=subject,
                            display_name=str(claims.get("name") or "")[:200], password_hash=None, active=True)
                s.add(user)
            else:
                before = sorted(r.name for r in user.roles)
            if not user.active:
                raise AuthError("account disabled", status=403)
            if not roles:
                raise AuthError("single sign-on roles grant no relay role", status=403)
            if not self.settings.allow_conflicting_duties and (why := conflict(roles)):
                raise AuthError(f"single sign-on roles refused: {why}", status=403)
            after = sorted(r.name for r in roles)
            # The SSO is the source of truth for an SSO user's roles; follow it on every token.
            if before != after:
                user.roles = roles
                s.flush()
                self.audit.append_in(s, "user.change", actor="sso", roles=after,
                                     reason="created from single sign-on" if before is None
                                     else "roles follow single sign-on",
                                     details={"user": user.username, "before": before, "after": after})
            return _principal(user), rights(roles)

    def permissions(self, principal: Principal) -> frozenset[str]:
        with self.db.session() as s:
            return rights(s.scalars(select(Role).where(Role.name.in_(principal.roles))))


def rights(roles: Iterable[Role]) -> frozenset[str]:
    """The permissions ("view", "admin", ...) that any of `roles` grants."""
    roles = list(roles)
    return frozenset(p for p, flag in PERMISSIONS.items() if any(getattr(r, flag) for r in roles))


def _principal(user: User) -> Principal:
    return Principal(user_id=user.id, username=user.username, roles=tuple(sorted(r.name for r in user.roles)))


# -- FastAPI -----------------------------------------------------------------------------------------


def bearer_token(request: Request) -> str:
    """The request's bearer token, or "" without one."""
    # Header only, never a cookie: a browser would attach a cookie to forged cross-site requests too.
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def client_address(request: Request) -> str:
    """The address the request came from, as logged ("" when unknown)."""
    return request.client.host if request.client else ""


def has_permission(ctx: Any, principal: Principal, permission: str) -> bool:
    """Whether the principal's roles grant `permission` ("view", "admin", "audit", ...); `ctx` is the
    app's PolicyContext."""
    return permission in ctx.auth.permissions(principal)


def authorize(request: Request, permission: str | None = None) -> Principal:
    """The one gate: the request's Principal, or HTTPException 401 (no or bad token; logged auth.refused)
    or 403 (the roles do not grant `permission`; logged auth.forbidden). For FastAPI routes use
    `Depends(require(permission))`; code that checks by hand (WHEP, /metrics) calls this."""
    if permission is not None and permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")
    ctx = request.app.state.policies
    where = {"method": request.method, "path": request.url.path, "client": client_address(request),
             "route": getattr(request.scope.get("route"), "path", None)}  # refusals are counted per route
    try:
        principal, granted = ctx.auth.identify(bearer_token(request))
    except AuthError as exc:
        ctx.audit.refusals.record("auth.refused", actor="anonymous", reason=str(exc), **where,
                                  status=exc.status)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        raise HTTPException(exc.status, detail=str(exc), headers=headers) from None
    if permission is not None and permission not in granted:
        ctx.audit.refusals.record("auth.forbidden", actor=principal.username, roles=principal.roles,
                                  reason=f"missing permission: {permission}", **where, status=403)
        raise HTTPException(403, detail=f"your roles do not grant '{permission}'")
    return principal


def require(permission: str | None = None) -> Callable[..., Principal]:
    """Dependency factory: the request's Principal, or 401 (no/bad token) / 403 (wrong role), logged."""
    if permission is not None and permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")

    def dependency(request: Request) -> Principal:
        return authorize(request, permission)

    return dependency


class LoginBody(BaseModel):
    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)


router = APIRouter(prefix="/api/auth", tags=["auth"])


@router.post("/login")
def login(body: LoginBody, request: Request) -> dict[str, Any]:
    ctx = request.app.state.policies
    try:
        token = ctx.auth.login(body.username, body.password, client=client_address(request))
    except AuthError as exc:
        extra = {"Retry-After": str(math.ceil(exc.retry_after))} if exc.retry_after is not None else {}
        raise HTTPException(exc.status, detail=str(exc),
                            headers={"WWW-Authenticate": "Bearer", **extra}) from None
    principal = ctx.auth.authenticate(token)
    return {"access_token": token, "token_type": "bearer", "expires_in": ctx.settings.token_ttl_s,
            "user": _user_doc(ctx, principal)}


@router.get("/me")
def me(request: Request, principal: Annotated[Principal, Depends(require())]) -> dict[str, Any]:
    return _user_doc(request.app.state.policies, principal)


def _user_doc(ctx: Any, principal: Principal) -> dict[str, Any]:
    with ctx.db.session() as s:
        user = s.get(User, principal.user_id)
        display = user.display_name if user else ""
    return {"id": principal.user_id, "username": principal.username, "display_name": display,
            "roles": list(principal.roles), "permissions": sorted(ctx.auth.permissions(principal))}
