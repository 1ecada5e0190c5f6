"""The app around the data plane: health, metrics access, camera listing (no secrets), the dashboard page,
settings from file + environment, and the `serve` command's errors."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from relay.config import ConfigError, load_settings
from tests.app.conftest import CAMERA, CAMERA_PURPOSES, METRICS_TOKEN, Relay

REPO = Path(__file__).resolve().parents[2]


def test_healthz_needs_no_auth(relay: Relay) -> None:
    r = httpx.get(f"{relay.base_url}/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_metrics_for_admins_and_the_scraper_only(relay: Relay) -> None:
    url = f"{relay.base_url}/metrics"
    mark = relay.audit_mark()  # the refusals below are this test's own
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(url, headers=relay.headers("operator")).status_code == 403
    for headers in ({"Authorization": f"Bearer {METRICS_TOKEN}"}, relay.headers("admin")):
        r = httpx.get(url, headers=headers)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        assert "# TYPE" in r.text
    # Refusals are logged as denials, so the access statistics count them.
    forbidden = [e for e in relay.audit(kind="auth.forbidden", actor="operator", after=mark)
                 if e.details.get("path") == "/metrics"]
    refused = [e for e in relay.audit(kind="auth.refused", after=mark) if e.details.get("path") == "/metrics"]
    assert len(forbidden) == 1 and len(refused) == 2
    assert {e.decision for e in forbidden + refused} == {"deny"}


def test_cameras_lists_what_the_user_may_watch_without_secrets(relay: Relay, rtsp_url: str) -> None:
    # Nobody watches the camera in this test: once earlier viewers' linger has run out, it is listed idle.
    deadline = time.monotonic() + 20
    while relay.app.state.services.cameras.pipeline(CAMERA) is not None:
        assert time.monotonic() < deadline, "the camera's pipeline did not stop after its viewers left"
        time.sleep(0.1)
    r = httpx.get(f"{relay.base_url}/api/live/cameras", headers=relay.headers("operator"))
    assert r.status_code == 200, r.text
    cams = {c["id"]: c for c in r.json()["cameras"]}
    assert set(cams) == {CAMERA}  # the disabled camera is not listed
    cam = cams[CAMERA]
    # Police operators: the camera's approved purposes their rule grants (not criminal investigation).
    assert set(cam["purposes"]) == set(CAMERA_PURPOSES) - {"criminal_investigation"}
    assert cam["raw_purposes"] == []
    assert cam["health"]["state"] == "idle" and cam["health"]["viewers"] == 0
    text = r.text
    assert "rtsp://" not in text and rtsp_url not in text and "source" not in text
    inv = httpx.get(f"{relay.base_url}/api/live/cameras", headers=relay.headers("investigator")).json()
    assert inv["cameras"][0]["raw_purposes"] == ["criminal_investigation"]
    r = httpx.get(f"{relay.base_url}/api/live/cameras/{CAMERA}/health", headers=relay.headers("viewer"))
    assert r.status_code == 200 and r.json()["id"] == CAMERA and "rtsp" not in r.text
    assert httpx.get(f"{relay.base_url}/api/live/cameras/cam-disabled/health",
                     headers=relay.headers("viewer")).status_code == 404
    # No video right, no camera list.
    live = f"{relay.base_url}/api/live/cameras"
    assert httpx.get(live, headers=relay.headers("auditor")).status_code == 403
    assert httpx.get(live).status_code == 401


def test_dashboard_page_is_static_and_locked_down(relay: Relay) -> None:
    r = httpx.get(relay.base_url + "/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert '<script src="/static/app.js"' in r.text
    js = httpx.get(relay.base_url + "/static/app.js")
    assert js.status_code == 200 and "RTCPeerConnection" in js.text
    # No external resources: everything from this origin.
    assert "http://" not in r.text and "https://" not in r.text


def test_policy_routers_are_mounted(relay: Relay) -> None:
    r = httpx.get(f"{relay.base_url}/api/auth/me", headers=relay.headers("investigator"))
    assert r.status_code == 200 and r.json()["username"] == "investigator"
    assert httpx.get(f"{relay.base_url}/public/cameras.json").status_code == 200
    verify = httpx.get(f"{relay.base_url}/api/audit/verify", headers=relay.headers("auditor"))
    assert verify.status_code == 200


def test_settings_file_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "relay.yaml"
    cfg.write_text("port: 9000\nlinger_s: 3\nice_servers:\n  - urls: ['stun:stun.example.org:3478']\n"
                   "database_url: sqlite:///x.db\n")
    s = load_settings(cfg)
    assert (s.port, s.linger_s, s.database_url) == (9000, 3.0, "sqlite:///x.db")
    assert s.ice_servers[0].urls == ["stun:stun.example.org:3478"]
    monkeypatch.setenv("CCTV_PORT", "9100")
    assert load_settings(cfg).port == 9100  # the environment wins over the file
    assert load_settings(cfg, port=9200).port == 9200  # and command-line options over both
    cfg.write_text("port: [1\n")
    with pytest.raises(ConfigError, match=r"relay.yaml:\d+: not valid YAML"):
        load_settings(cfg)
    cfg.write_text("prot: 9000\n")
    with pytest.raises(ConfigError, match=r"unknown setting.*prot"):
        load_settings(cfg)
    monkeypatch.delenv("CCTV_PORT")
    cfg.write_text("port: many\n")
    with pytest.raises(ConfigError, match="port"):
        load_settings(cfg)


def test_serve_reports_bad_config_in_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "relay.yaml"
    cfg.write_text("port: many\n")
    out = subprocess.run([sys.executable, "-m", "relay.cli", "serve", "--config", str(cfg)],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "port" in out.stderr and "Traceback" not in out.stderr
    cmd = [sys.executable, "-m", "relay.cli", "serve", "--config", str(tmp_path / "no.yaml")]
    missing = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert missing.returncode == 2 and "cannot read config file" in missing.stderr
    # A database that cannot be opened: one line, and never the URL (it may carry a password).
    cfg.write_text("database_url: postgresql+psycopg://relay:s3cret@127.0.0.1:1/relay\n")
    bad_db = subprocess.run([sys.executable, "-m", "relay.cli", "serve", "--config", str(cfg)],
                            capture_output=True, text=True, cwd=REPO, timeout=60)
    assert bad_db.returncode == 2 and "cannot open the postgresql" in bad_db.stderr
    assert "s3cret" not in bad_db.stderr and "Traceback" not in bad_db.stderr
    # A port already taken: said before anything starts (no demo passwords printed, no half-started app).
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        cfg.write_text(f"database_url: sqlite:///{tmp_path / 'relay.db'}\n")
        for args in (["serve", "--config", str(cfg), "--port", port],
                     ["demo", "--port", port, "--data-dir", str(tmp_path / "demo")]):
            busy = subprocess.run([sys.executable, "-m", "relay.cli", *args], capture_output=True, text=True,
                                  cwd=REPO, timeout=60)
            assert busy.returncode == 2 and busy.stdout == "", busy.stdout
            assert busy.stderr.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in busy.stderr


def test_whep_advertises_configured_ice_servers() -> None:
    from relay.whep import ice_server_links

    settings = load_settings(ice_servers=[{"urls": ["stun:stun.city.example:3478"]},
                                          {"urls": ["turn:turn.city.example:3478?transport=udp"],
                                           "username": "viewer", "credential": 'pa"ss'}])
    links = ice_server_links(settings)
    assert links.startswith('<stun:stun.city.example:3478>; rel="ice-server", ')
    assert ('<turn:turn.city.example:3478?transport=udp>; rel="ice-server"; username="viewer"; '
            'credential="pa\\"ss"; credential-type="password"') in links
    assert ice_server_links(load_settings()) == ""


def test_demo_setup_users_camera_and_fresh_passwords(tmp_path: Path) -> None:
    from policies.auth import AuthError
    from relay.demo import CAMERA_ID, DEMO_USERS, banner, prepare

    setup, ctx = prepare(tmp_path, "rtsp://127.0.0.1:8554/street", host="127.0.0.1", port=8080)
    try:
        text = banner(setup)
        assert "http://127.0.0.1:8080/" in text
        for name in DEMO_USERS:
            assert name in text and setup.passwords[name] in text
        investigator = ctx.auth.authenticate(ctx.auth.login("investigator", setup.passwords["investigator"]))
        (cam,) = ctx.service.cameras_for(investigator)
        assert cam["id"] == CAMERA_ID and cam["raw_purposes"] == ["criminal_investigation"]
        first = setup.passwords["operator"]
    finally:
        ctx.db.dispose()
    # A second start issues new passwords: the old ones stop working.
    setup2, ctx2 = prepare(tmp_path, "rtsp://127.0.0.1:8554/street", host="127.0.0.1", port=8080)
    try:
        assert setup2.passwords["operator"] != first
        with pytest.raises(AuthError):
            ctx2.auth.login("operator", first)
        ctx2.auth.login("operator", setup2.passwords["operator"])
    finally:
        ctx2.db.dispose()
