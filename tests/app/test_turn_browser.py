"""Relay-only WebRTC through a real TURN server: coturn on loopback with shared-secret credentials
(`use-auth-secret`), a relay configured with its URL and secret, and the dashboard in headless Chromium
forced to `iceTransportPolicy: "relay"` (`/?ice=relay`). The browser may use nothing but the TURN server
named in the WHEP answer's Link header, with that session's own credential, and the video still plays
(pixels read from the video element, time advancing); coturn logged the session's allocation; the
credential shows up in no log line and no access-log entry."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import sync_playwright

from policies.context import build_context
from relay.config import load_settings
from tests.app.conftest import CAMERA, ShiftableClock, bound_socket, seed, served
from tests.app.test_browser import CHROMIUM, CHROMIUM_ARGS, TILE, grab, sign_in
from tests.support.coturn import Coturn

pytestmark = pytest.mark.timeout(240)

SECRET = "turn shared secret for tests 7c1f"


@pytest.fixture(scope="module")
def turn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coturn]:
    with Coturn(tmp_path_factory.mktemp("coturn"), SECRET) as server:
        yield server


def test_dashboard_plays_through_turn_only(turn: Coturn, rtsp_url: str, tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    from relay.app import create_app

    caplog.set_level(logging.DEBUG)
    sock = bound_socket()
    port = int(sock.getsockname()[1])
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'relay.db'}", token_secret="u" * 40,
                             host="127.0.0.1", port=port, linger_s=1.0, turn_urls=turn.urls,
                             turn_secret=SECRET, turn_ttl_s=600)
    ctx = build_context(settings)
    ctx.service.clock = ShiftableClock()
    seed(ctx, tmp_path, rtsp_url)
    app = create_app(settings, context=ctx)
    links: list[str] = []
    with served(app, sock), sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            locale="en-US")
        try:
            page = browser.new_page()
            page.on("response", lambda r: links.append(r.headers.get("link", ""))
                    if r.request.method == "POST" and "/whep/" in r.url else None)
            page.goto(f"http://127.0.0.1:{port}/?ice=relay")
            sign_in(page, "operator")
            page.locator("#layout-purpose").select_option("traffic_management")
            page.locator(f'#cameras li.camera[data-camera="{CAMERA}"] .play').click()
            page.wait_for_selector(f'{TILE}[data-state="playing"]', timeout=90_000)
            shots = []
            for _ in range(8):
                shots.append(grab(page))
                time.sleep(0.25)
            assert shots[-1][0] > shots[0][0], "the video does not advance"
            images = [img for _, img in shots]
            assert images[0].shape == (360, 640, 3) and float(images[0].mean()) > 10
            assert float(np.abs(images[0].astype(int) - images[-1].astype(int)).mean()) > 1.0
            (session_id,) = app.state.services.sessions.running
        finally:
            browser.close()

    # The answer named the TURN servers with this session's credential: "<expiry>:<session id>".
    (link,) = [x for x in links if x]
    usernames = set(re.findall(r'username="([^"]+)"', link))
    credentials = set(re.findall(r'credential="([^"]+)"', link))
    (username,) = usernames
    (credential,) = credentials
    assert username.split(":")[1] == session_id and int(username.split(":")[0]) > time.time()
    assert all(f"<{url}>" in link for url in turn.urls)
    # coturn allocated a relay for the browser's session and for the relay's own peer.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and session_id not in turn.log():
        time.sleep(0.1)
    log = turn.log()
    allocations = [line for line in log.splitlines() if "ALLOCATE processed, success" in line]
    assert any(f":{session_id}>" in line for line in allocations), log[-3000:]
    assert any(":relay>" in line for line in allocations), log[-3000:]
    # Neither the credential nor the secret is written anywhere the relay writes.
    entries = json.dumps([e.__dict__ for e in ctx.audit.query(limit=10_000)], default=str)
    ctx.db.dispose()
    for secret in (credential, SECRET):
        assert secret not in caplog.text
        assert secret not in entries
        assert secret not in log
