"""Logins under attack: a flood of parallel logins against a real app (uvicorn, the default connection
pool) answers quickly without a 500 and leaves the rest of the relay answering, every attempt logged;
throttling is per client and account, so an attacker neither locks the owner out nor sprays names freely,
and lockouts end."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from policies import overload
from policies.auth import Authenticator, AuthError
from policies.auth import router as auth_router
from policies.context import PolicyContext, build_context
from policies.defaults import load_defaults
from policies.login_limits import LoginThrottle, ThrottleLimits
from policies.models import AuditEntry, Role, User
from policies.settings import PolicySettings
from tests.app.conftest import bound_socket
from tests.app.conftest import served as serve_app

PASSWORD = "correct horse battery staple"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def add_user(ctx: PolicyContext, username: str, roles: list[str]) -> None:
    with ctx.db.session() as s:
        s.add(User(username=username, password_hash=ctx.auth.hash_password(PASSWORD),
                   roles=list(s.scalars(select(Role).where(Role.name.in_(roles))))))


def attempt(auth: Authenticator, username: str, password: str, client: str) -> int:
    try:
        auth.login(username, password, client=client)
    except AuthError as exc:
        return exc.status
    return 200


def throttled(ctx: PolicyContext, **limits: Any) -> Authenticator:
    """The context's authenticator with other login limits and a clock the test moves."""
    auth = Authenticator(ctx.settings.model_copy(update=limits), ctx.db, ctx.audit)
    auth.throttle.clock = FakeClock()
    return auth


# -- finding: anyone could lock any known account ----------------------------------------------------


def test_owner_signs_in_from_another_client_while_an_attacker_hammers(context: PolicyContext) -> None:
    add_user(context, "admin", ["policy_admin"])
    auth = throttled(context)
    attacker = [attempt(auth, "admin", f"guess-{i:04d}", "203.0.113.9") for i in range(12)]
    # The attacker's own client waits (exponentially) after five failures; the right password too.
    assert attacker[:5] == [401] * 5 and set(attacker[5:]) == {429}
    assert attempt(auth, "admin", PASSWORD, "203.0.113.9") == 429
    # The owner, from a client that has not been failing, signs in while the attack goes on.
    assert attempt(auth, "admin", PASSWORD, "10.20.0.7") == 200
    assert attempt(auth, "admin", "guess-more", "203.0.113.9") == 429
    reasons = [e.reason for e in context.audit.query(kind="auth.fail", actor="admin")]
    assert reasons == ["wrong password"] * 5 + ["too many failed attempts"] * 9


def test_a_name_sprayer_gets_429_after_n_names(context: PolicyContext) -> None:
    add_user(context, "chen.li", ["dashboard_viewer"])
    auth = throttled(context, login_client_max_failures=6)
    sprayed = [attempt(auth, f"user{i}", "Summer2026!", "198.51.100.4") for i in range(9)]
    assert sprayed == [401] * 6 + [429] * 3
    # Refused before any password check: quick, and the sprayer cannot try a real account either.
    start = time.monotonic()
    assert attempt(auth, "chen.li", PASSWORD, "198.51.100.4") == 429
    assert time.monotonic() - start < 0.1
    assert attempt(auth, "chen.li", PASSWORD, "10.20.0.8") == 200  # other clients are not affected
    fails = context.audit.query(kind="auth.fail")
    assert len(fails) == 10 and all(e.details["client"] == "198.51.100.4" for e in fails)


def test_lockouts_expire(context: PolicyContext) -> None:
    add_user(context, "gus", ["dashboard_viewer"])
    auth = throttled(context, login_free_failures=3, login_client_max_failures=5, login_failure_window_s=600)
    clock = auth.throttle.clock
    assert isinstance(clock, FakeClock)
    assert [attempt(auth, "gus", "guess-guess", "192.0.2.1") for _ in range(4)] == [401, 401, 401, 429]
    wait = auth.throttle.retry_after("gus", "192.0.2.1")
    assert wait is not None and 0 < wait <= 1.0  # the first wait is a second, then 2, 4, ...
    clock.now += 1.0
    assert attempt(auth, "gus", "guess-guess", "192.0.2.1") == 401
    assert 1.0 < (auth.throttle.retry_after("gus", "192.0.2.1") or 0) <= 2.0
    clock.now += 2.0
    assert attempt(auth, "gus", PASSWORD, "192.0.2.1") == 200  # a success clears that client's failures
    # Spraying from one client: refused for the window, then let in again.
    assert [attempt(auth, f"n{i}", "guess-guess", "192.0.2.2") for i in range(6)] == [401] * 5 + [429]
    clock.now += 599.0
    assert attempt(auth, "gus", PASSWORD, "192.0.2.2") == 429
    clock.now += 2.0
    assert attempt(auth, "gus", PASSWORD, "192.0.2.2") == 200


def test_many_clients_on_one_account_spare_clients_that_signed_in_before() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(ThrottleLimits(account_max=10, account_window_s=60.0), clock=clock)
    throttle.succeeded("mei", "10.0.0.1")  # the owner's usual client
    for i in range(10):  # a botnet: two failures from each of five addresses
        throttle.failed("mei", f"203.0.113.{i // 2}")
    assert throttle.retry_after("mei", "203.0.113.200") == pytest.approx(60.0)  # a new client waits
    assert throttle.retry_after("mei", "10.0.0.1") is None
    assert throttle.retry_after("someone.else", "203.0.113.200") is None
    clock.now += 60.0
    assert throttle.retry_after("mei", "203.0.113.200") is None  # short: over with the window


def test_throttle_tables_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from policies import login_limits

    monkeypatch.setattr(login_limits, "_MAX_KEYS", 50)
    throttle = LoginThrottle(clock=FakeClock())
    for i in range(500):
        throttle.failed(f"name{i}", f"10.1.{i // 250}.{i % 250}")
        throttle.succeeded(f"name{i}", "10.9.9.9")
    assert max(len(throttle._clients), len(throttle._accounts), len(throttle._trusted)) <= 50


# -- finding: a login flood stalled the whole relay --------------------------------------------------


@dataclass
class Served:
    url: str
    ctx: PolicyContext


@pytest.fixture
def served(db_url: str) -> Iterator[Served]:
    """The auth routes on uvicorn with a context built the way the relay builds it (default pool)."""
    ctx = build_context(PolicySettings(database_url=db_url, token_secret="s" * 40))
    load_defaults(ctx)
    app = FastAPI()
    app.state.policies = ctx
    app.include_router(auth_router)
    overload.install(app)
    sock = bound_socket()
    with serve_app(app, sock):
        yield Served(f"http://127.0.0.1:{sock.getsockname()[1]}", ctx)
    ctx.db.dispose()


def test_a_login_flood_answers_fast_and_leaves_the_relay_working(served: Served) -> None:
    add_user(served.ctx, "duty.officer", ["police_operator"])
    token = served.ctx.auth.login("duty.officer", PASSWORD, client="10.0.0.2")
    attempts = 40
    stop = threading.Event()
    me_latency: list[float] = []
    me_status: list[int] = []

    def watch_me() -> None:
        with httpx.Client(base_url=served.url, timeout=10.0) as c:
            while not stop.is_set():
                start = time.monotonic()
                try:
                    r = c.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
                    me_status.append(r.status_code)
                except httpx.TimeoutException:
                    me_status.append(-1)
                me_latency.append(time.monotonic() - start)
                time.sleep(0.05)

    def login(i: int) -> int:
        with httpx.Client(base_url=served.url, timeout=15.0) as c:
            try:
                body = {"username": f"flood-{i}", "password": "x" * 12}
                return c.post("/api/auth/login", json=body).status_code
            except httpx.TimeoutException:
                return -1

    watcher = threading.Thread(target=watch_me)
    watcher.start()
    try:
        with ThreadPoolExecutor(attempts) as pool:
            statuses = list(pool.map(login, range(attempts)))
    finally:
        stop.set()
        watcher.join()
    # Refused, throttled or told to come back: never a 500, never a hang.
    assert set(statuses) <= {401, 429, 503}, statuses
    assert me_status and set(me_status) == {200}, me_status
    assert max(me_latency) < 5.0, max(me_latency)
    with served.ctx.db.session() as s:
        logged = list(s.scalars(select(AuditEntry.actor).where(AuditEntry.kind == "auth.fail",
                                                                AuditEntry.actor.like("flood-%"))))
    # Every attempt is in the access log (one entry each, or aggregated entries carrying a count).
    assert sorted(logged) == sorted(f"flood-{i}" for i in range(attempts))
    assert served.ctx.audit.verify().ok
