"""Paths that fail closed, each on a relay of its own: the database going away while sessions run (they
end, raw ones at the first re-check that cannot be made), a peer that never connects (ended within the
connect timeout, logged), and the app shutting down with sessions open (each end logged with the reason)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from policies.context import build_context
from relay import sessions as relay_sessions
from relay.config import load_settings
from tests.app.conftest import (
    CAMERA,
    METRICS_TOKEN,
    Relay,
    Served,
    ShiftableClock,
    bound_socket,
    seed,
    served,
)
from tests.app.whep_client import offer_sdp, open_viewer
from tests.policies.conftest import PG_BIN, _as_postgres

PURPOSE = "criminal_investigation"


@contextmanager
def private_relay(tmp: Path, rtsp_url: str,
                  database_url: str | None = None) -> Iterator[tuple[Relay, Served]]:
    """A relay app of the test's own (as the shared fixture builds it), with its uvicorn server."""
    from relay.app import create_app

    sock = bound_socket()
    port = int(sock.getsockname()[1])
    database_url = database_url or f"sqlite:///{tmp / 'relay.db'}"
    settings = load_settings(database_url=database_url, token_secret="t" * 40,
                             host="127.0.0.1", port=port, linger_s=1.0, metrics_token=METRICS_TOKEN,
                             camera_sync_s=0.5, session_check_s=0.5)
    ctx = build_context(settings)
    clock = ShiftableClock()
    ctx.service.clock = clock
    seed(ctx, tmp, rtsp_url)
    app = create_app(settings, context=ctx)
    try:
        with served(app, sock) as running:
            yield Relay(f"http://127.0.0.1:{port}", app, ctx, settings, clock, running.loop), running
    finally:
        ctx.db.dispose()


@contextmanager
def postgres_cluster() -> Iterator[tuple[str, Any]]:
    """A PostgreSQL cluster of this test's own (so it can be stopped): its URL and a stop function."""
    import os

    root = Path(tempfile.mkdtemp(prefix="cctv-pg-down-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    user = "postgres" if os.geteuid() == 0 else os.environ.get("USER", "postgres")
    initdb = [str(PG_BIN / "initdb"), "-D", str(data), "-U", user, "-A", "trust", "-E", "UTF8", "--no-sync"]
    subprocess.run(_as_postgres(initdb), check=True, capture_output=True)
    ctl = [str(PG_BIN / "pg_ctl"), "-D", str(data)]
    opts = f"-p 5432 -k {root} -c listen_addresses='' -c fsync=off"
    subprocess.run(_as_postgres([*ctl, "-o", opts, "-l", str(root / "log"), "-w", "start"]), check=True,
                   capture_output=True)

    def stop() -> None:
        subprocess.run(_as_postgres([*ctl, "-m", "immediate", "stop"]), capture_output=True)

    try:
        yield f"postgresql+psycopg://{user}@/postgres?host={root}&port=5432", stop
    finally:
        stop()
        shutil.rmtree(root, ignore_errors=True)


async def test_database_gone_ends_sessions_raw_first(tmp_path: Path, rtsp_url: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="relay.sessions")
    with postgres_cluster() as (url, stop_database), private_relay(tmp_path, rtsp_url, url) as (relay, _):
        svc = relay.ctx.service
        investigator = relay.ctx.auth.authenticate(relay.token("investigator"))
        req = svc.request_raw(investigator, CAMERA, PURPOSE, "TPE-DOWN-1", "suspect at crossing")
        svc.approve_raw(relay.ctx.auth.authenticate(relay.token("approver")), req["id"], minutes=10)
        # The masked session starts first: were all ended alike, it would end first.
        masked = await open_viewer(relay.base_url, CAMERA, token=relay.token("operator"))
        raw = await open_viewer(relay.base_url, CAMERA, token=relay.token("investigator"), purpose=PURPOSE,
                                mode="raw", case_ref="TPE-DOWN-1")
        assert raw.status == 201 and masked.status == 201, (raw.text, masked.text)
        try:
            assert len(await raw.frames(3)) == 3 and len(await masked.frames(3)) == 3
            stop_database()
            registry = relay.app.state.services.sessions
            deadline = time.monotonic() + 20
            while relay.running_sessions():
                assert time.monotonic() < deadline, "sessions still running without their database"
                await asyncio.sleep(0.1)
            ended = list(registry.ended.items())
            # Raw first: unmasked video stops at the first re-check that cannot be made.
            assert [sid for sid, _ in ended] == [raw.session_id, masked.session_id]
            assert {why for _, (_, why) in ended} == {"authorization could not be re-checked"}
            assert "could not be recorded" in caplog.text  # and says its end could not be logged
        finally:
            for v in (raw, masked):
                if v.pc is not None:
                    await v.pc.close()


async def test_a_peer_that_never_connects_is_ended(tmp_path: Path, rtsp_url: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay_sessions, "CONNECT_TIMEOUT_S", 2.0)
    with private_relay(tmp_path, rtsp_url) as (relay, _):
        pc, sdp = await offer_sdp()
        async with httpx.AsyncClient() as client:
            r = await client.post(f"{relay.base_url}/whep/{CAMERA}", params={"purpose": "public_safety"},
                                  content=sdp, headers={"Content-Type": "application/sdp",
                                                        "Authorization": f"Bearer {relay.token('operator')}"})
        assert r.status_code == 201, r.text
        session_id = r.headers["location"].rsplit("/", 1)[1]
        await pc.close()  # the answer is never applied: no ICE, no DTLS, ever
        started = time.monotonic()
        await asyncio.to_thread(relay.wait_session_closed, session_id, 10.0)
        assert time.monotonic() - started < 2.0 + 3.0
        (end,) = [e for e in relay.audit(kind="view.end") if e.details.get("session_id") == session_id]
        assert end.reason == "peer never connected"


async def test_shutdown_ends_open_sessions_in_the_log(tmp_path: Path, rtsp_url: str) -> None:
    with private_relay(tmp_path, rtsp_url) as (relay, running):
        viewers = [await open_viewer(relay.base_url, CAMERA, token=relay.token(user))
                   for user in ("viewer", "operator")]
        assert all(v.status == 201 for v in viewers)
        for v in viewers:
            assert len(await v.frames(2)) == 2
        assert await asyncio.to_thread(running.stop)
        ends = {e.details.get("session_id"): e.reason for e in relay.audit(kind="view.end")}
        assert {ends.get(v.session_id) for v in viewers} == {"relay shutting down"}
        for v in viewers:
            if v.pc is not None:
                await v.pc.close()
