"""Three relay replicas as separate processes (`cctv-relay serve`) on one PostgreSQL database, a real RTSP
camera and aiortc viewers: two replicas racing for a camera, a full cluster, the owner killed, the owner
drained. Each replica may pull one camera (`max_cameras` 1), leases live 4 s, renewed every second."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import async_playwright
from sqlalchemy import create_engine, text

from policies import files
from policies.context import build_context
from policies.settings import PolicySettings
from relay.cluster.store import LeaseStore
from tests.app.conftest import CAMERA, PASSWORD, seed
from tests.app.test_browser import CHROMIUM, CHROMIUM_ARGS
from tests.cluster.ingress import Ingress, live_bases
from tests.cluster.replicas import (
    REPO,
    SIGNING_KEY,
    TOKEN_SECRET,
    Cluster,
    Replica,
    first_frame,
    free_port,
    stalled,
)
from tests.policies.conftest import PostgresServer

IDS = ("relay-0", "relay-1", "relay-2")
EXTRA = ("cam-2", "cam-3", "cam-4", "cam-5")


@pytest.fixture(scope="module")
def cluster(postgres_server: PostgresServer, rtsp_url: str, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("cluster")
    name = f"cluster_{int(time.time() * 1000) % 10**9}"
    admin = create_engine(postgres_server.url("postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = postgres_server.url(name)
    ctx = build_context(PolicySettings(database_url=url, token_secret=TOKEN_SECRET,
                                       audit_signing_key=SIGNING_KEY))
    seed(ctx, tmp, rtsp_url)
    extra = tmp / "cameras.yaml"
    extra.write_text("version: 1\ncameras:\n" + "".join(
        f"  - {{id: {cid}, name: {cid}, purposes: [public_safety], source_url: '{rtsp_url}'}}\n"
        for cid in EXTRA))
    files.apply(ctx.db, ctx.audit, files.load(extra), actor="tests")
    LeaseStore(ctx.db.engine, "tests").create_tables()  # before three replicas race to create them
    ctx.db.dispose()
    c = Cluster({}, url)
    for rid in IDS:
        c.replicas[rid] = Replica(rid, free_port(), c.env(rid, CCTV_MAX_CAMERAS="1"), tmp / f"{rid}.log")
    procs = [r for r in c.replicas.values()]
    for r in procs:
        r.start()
    try:
        yield c
    finally:
        for r in procs:
            if r.alive():
                r.kill()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def store(c: Cluster) -> LeaseStore:
    return LeaseStore(create_engine(c.database_url), "tests")


def wait_free(c: Cluster, timeout: float = 15.0) -> None:
    """Until no replica holds a lease (the previous test's cameras lingered and went)."""
    s = store(c)
    deadline = time.monotonic() + timeout
    while s.holders():
        assert time.monotonic() < deadline, s.holders()
        time.sleep(0.2)
    s.engine.dispose()


def session_end(c: Cluster, session_id: str, timeout: float) -> str:
    engine = create_engine(c.database_url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with engine.connect() as conn:
                row = conn.execute(text("SELECT ended_at, end_reason FROM view_sessions WHERE id = :i"),
                                   {"i": session_id}).first()
            if row is not None and row.ended_at is not None:
                return str(row.end_reason)
            assert time.monotonic() < deadline, f"session {session_id} still open"
            time.sleep(0.2)
    finally:
        engine.dispose()


def audit_verify(c: Cluster) -> subprocess.CompletedProcess[str]:
    env = c.env("cli")
    return subprocess.run([sys.executable, "-m", "relay.cli", "audit", "verify"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def owner_of(viewer_location: str) -> str:
    return viewer_location.split("/")[2]


async def test_two_replicas_racing_for_one_camera(cluster: Cluster) -> None:
    wait_free(cluster)
    # Both replicas find the camera free and both claim it: exactly one wins, the other sends its viewer
    # there (307 to the winner's path, the body kept), where the session lives.
    joins = await asyncio.gather(cluster.join(CAMERA, "relay-0", follow=False),
                                 cluster.join(CAMERA, "relay-1", follow=False))
    statuses = sorted(v.status for v, _ in joins)
    assert statuses == [201, 307], [(v.status, v.text) for v, _ in joins]
    winner = next(v for v, _ in joins if v.status == 201)
    loser = next(v for v, _ in joins if v.status == 307)
    owner = owner_of(winner.location)
    assert owner in ("relay-0", "relay-1")
    assert winner.location.startswith(f"/r/{owner}/whep/{CAMERA}/sessions/")
    assert loser.headers["location"] == f"/r/{owner}/whep/{CAMERA}?purpose=public_safety"
    assert store(cluster).holders()[0][:2] == (CAMERA, owner)
    # Following the redirect, as fetch does: the second viewer joins the owner, both see video.
    follower, responses = await cluster.join(CAMERA, "relay-2" if owner != "relay-2" else "relay-0")
    assert [r.status_code for r in responses] == [307, 201]
    assert owner_of(follower.location) == owner
    assert await first_frame(winner, 20) and await first_frame(follower, 20)
    async with httpx.AsyncClient() as client:
        for v in (winner, follower):
            r = await client.delete(cluster.base_for(v.location, "relay-0") + v.location,
                                    headers={"Authorization": f"Bearer {cluster.token()}"})
            assert r.status_code == 200
            await v.close()
    async with httpx.AsyncClient() as client:  # another replica's path is not served here
        r = await client.get(f"{cluster.replicas['relay-0'].base}/r/relay-1/readyz")
    assert r.status_code == 421


async def test_full_cluster_answers_503_with_retry_after(cluster: Cluster) -> None:
    wait_free(cluster)
    viewers = []
    try:
        for cam in EXTRA[:3]:  # one camera per replica: each asked of relay-0, which fills first
            viewer, _ = await cluster.join(cam, "relay-0")
            assert viewer.status == 201, viewer.text
            viewers.append(viewer)
        assert sorted(owner_of(v.location) for v in viewers) == list(IDS)
        viewer, _ = await cluster.join(EXTRA[3], "relay-1")
        assert viewer.status == 503 and int(viewer.headers["retry-after"]) >= 1, viewer.text
        assert "maximum" in viewer.detail()
        assert len(store(cluster).holders()) == 3
    finally:
        for v in viewers:
            await v.close()


async def test_owner_killed_video_back_within_8_s(cluster: Cluster) -> None:
    wait_free(cluster)
    viewer, _ = await cluster.join(CAMERA, "relay-1")
    assert viewer.status == 201, viewer.text
    assert await first_frame(viewer, 20)
    owner = owner_of(viewer.location)
    cluster.replicas[owner].kill()
    loop = asyncio.get_running_loop()
    killed = loop.time()
    await stalled(viewer, silence_s=1.0)  # what the player notices
    rejoined, posts = await cluster.rejoin(CAMERA, deadline_s=15)
    assert await first_frame(rejoined, 10)
    back_after = loop.time() - killed
    print(f"video back {back_after:.2f} s after the kill, {posts} POSTs")
    assert back_after <= 8.0, back_after
    assert owner_of(rejoined.location) != owner
    # The dead replica's session is closed in the access log by a surviving replica's sweeper.
    reason = session_end(cluster, viewer.session_id, timeout=20)
    assert f"relay replica {owner} stopped" in reason, reason
    await viewer.close()
    await rejoined.close()
    result = audit_verify(cluster)
    assert result.returncode == 0, result.stdout + result.stderr
    cluster.replicas[owner].start()


async def test_owner_drained(cluster: Cluster) -> None:
    wait_free(cluster)
    viewer, _ = await cluster.join(CAMERA, "relay-2")
    assert viewer.status == 201, viewer.text
    assert await first_frame(viewer, 20)
    owner = owner_of(viewer.location)
    replica = cluster.replicas[owner]
    replica.terminate()
    started = time.monotonic()
    # While it drains it still answers: the session ended, and why (what makes the dashboard re-POST).
    async with httpx.AsyncClient() as client:
        for _ in range(50):
            r = await client.get(replica.base + viewer.location.removeprefix(f"/r/{owner}"),
                                 headers={"Authorization": f"Bearer {cluster.token()}"})
            if r.status_code == 410:
                break
            await asyncio.sleep(0.1)
    assert r.status_code == 410 and "relay draining" in r.text, r.text
    assert session_end(cluster, viewer.session_id, timeout=5) == "relay draining"
    rejoined, _ = await cluster.rejoin(CAMERA, deadline_s=15)
    assert await first_frame(rejoined, 15)
    assert owner_of(rejoined.location) != owner
    # Shut down cleanly, then (as uvicorn does after a graceful stop on a signal) exits by that signal.
    assert replica.proc is not None and replica.proc.wait(30) in (0, -15)
    assert time.monotonic() - started < 30
    assert f"relay replica {owner} drained" in replica.log.read_text()
    assert all(o != owner for _, o, _ in store(cluster).holders())
    await viewer.close()
    await rejoined.close()
    result = audit_verify(cluster)
    assert result.returncode == 0, result.stdout + result.stderr
    replica.start()


PLAYING = f'.tile[data-camera="{CAMERA}"][data-state="playing"]'
VIDEO_TIME = f'() => document.querySelector(\'.tile[data-camera="{CAMERA}"] video\')?.currentTime ?? -1'


async def test_dashboard_follows_the_redirect_and_rejoins_when_the_owner_is_killed(cluster: Cluster,
                                                                                   tmp_path: Path) -> None:
    """Chromium plays through the ingress: its POST lands on a replica that does not pull the camera and
    follows the 307 to the owner; the owner is killed, and the page, finding the session's relay gone
    (the ingress's 502), posts again and plays from the replica that takes the camera over."""
    wait_free(cluster)
    keeper, _ = await cluster.join(CAMERA, "relay-0")  # relay-0 pulls the camera
    assert keeper.status == 201, keeper.text
    ingress = Ingress(live_bases(cluster.replicas), prefer=["relay-1", "relay-2", "relay-0"])
    with ingress.serving() as origin:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch_persistent_context(
                str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                locale="en-US")
            try:
                page = await browser.new_page()
                await page.goto(origin + "/")
                await page.fill("#username", "operator")
                await page.fill("#password", PASSWORD)
                await page.click("#sign-in button[type=submit]")
                row = page.locator(f'#cameras li.camera[data-camera="{CAMERA}"]')
                await row.wait_for(timeout=30_000)
                await page.locator("#layout-purpose").select_option("public_safety")
                await row.locator(".play").click()
                await page.wait_for_selector(PLAYING, timeout=60_000)
                posts = ingress.seen("POST", "/")
                assert (f"/whep/{CAMERA}", 307) in posts, posts  # asked relay-1, sent on
                assert (f"/r/relay-0/whep/{CAMERA}", 201) in posts, posts  # the owner answered

                before = len(ingress.requests)
                cluster.replicas["relay-0"].kill()
                killed = time.monotonic()
                deadline = killed + 45
                while True:  # the page posts again; the camera's lease runs out, another replica claims
                    later = ingress.requests[before:]
                    if any(m == "POST" and s == 201 for m, _p, s in later):
                        break
                    assert time.monotonic() < deadline, later
                    await asyncio.sleep(0.2)
                await page.wait_for_selector(PLAYING, timeout=30_000)
                t0 = await page.evaluate(VIDEO_TIME)
                await asyncio.sleep(1.5)
                assert await page.evaluate(VIDEO_TIME) > t0, "the picture did not come back"
                print(f"dashboard playing again {time.monotonic() - killed:.1f} s after the kill")
                later = ingress.requests[before:]
                assert all(not p.startswith("/r/relay-0/") for m, p, s in later if s == 201), later
                assert any(p.startswith("/r/relay-0/") and s == 502 for _m, p, s in later), later
            finally:
                await browser.close()
    await keeper.close()
    cluster.replicas["relay-0"].start()
