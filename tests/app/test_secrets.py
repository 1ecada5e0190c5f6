"""Camera credentials never leave the relay: a real relay process pulls a real RTSP camera with a user
name and password in its URL (and two more cameras with secrets in their query string and in their
credential fields), a viewer watches it, and neither the processes' output (relay logs, uvicorn, FFmpeg
on stderr) nor any API response of the run holds a password or a user name."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from policies import files
from policies.context import build_context
from policies.defaults import load_defaults
from policies.settings import PolicySettings
from relay.sample_camera import RtspServer
from tests.app.conftest import FPS, PASSWORD, bound_socket
from tests.app.whep_client import delete, open_viewer

REPO = Path(__file__).resolve().parents[2]
CAM_USER, CAM_PASSWORD = "svc-cam-u7f3q", "Pw-9f3k-s3cret"
QUERY_USER, QUERY_PASSWORD, QUERY_TOKEN = "qs-user-4411", "qs-pass-8822", "tok-7733aa"
FIELD_USER, FIELD_PASSWORD = "fld-user-5522", "fld-pass-6633"
SECRETS = (CAM_USER, CAM_PASSWORD, QUERY_USER, QUERY_PASSWORD, QUERY_TOKEN, FIELD_USER, FIELD_PASSWORD)


def _seed(db_url: str, camera_url: str) -> None:
    ctx = build_context(PolicySettings(database_url=db_url))
    load_defaults(ctx, actor="tests")
    policy = Path(db_url.removeprefix("sqlite:///")).parent / "policy.yaml"
    plain = camera_url.replace(f"{CAM_USER}:{CAM_PASSWORD}@", "")
    purposes = "[public_safety]"
    policy.write_text(
        "version: 1\ncameras:\n"
        f"  - {{id: cam-url, name: Credentials in the URL, purposes: {purposes}, keepalive: true,\n"
        f"     source_url: '{camera_url}'}}\n"
        f"  - {{id: cam-query, name: Secrets in the query, purposes: {purposes}, keepalive: true,\n"
        f"     source_url: 'http://127.0.0.1:9/mjpeg?user={QUERY_USER}&password={QUERY_PASSWORD}"
        f"&token={QUERY_TOKEN}'}}\n"
        f"  - {{id: cam-fields, name: Credential fields, purposes: {purposes}, keepalive: true,\n"
        f"     source_url: '{plain}', source_username: {FIELD_USER}, source_password: {FIELD_PASSWORD}}}\n"
        "users:\n"
        "  - {username: admin, roles: [policy_admin], password: '${CCTV_TEST_PASSWORD}'}\n"
        "  - {username: auditor, roles: [auditor], password: '${CCTV_TEST_PASSWORD}'}\n"
        "  - {username: viewer, roles: [police_operator], password: '${CCTV_TEST_PASSWORD}'}\n"
    )
    os.environ["CCTV_TEST_PASSWORD"] = PASSWORD
    files.apply(ctx.db, ctx.audit, files.load(policy), actor="tests", hasher=ctx.auth.hash_password)
    ctx.db.dispose()


async def test_no_credential_leaves_a_real_relay(tmp_path: Path, clip: Path) -> None:
    with RtspServer(clip, path="/private", fps=FPS, user=CAM_USER, password=CAM_PASSWORD) as camera:
        db_url = f"sqlite:///{tmp_path / 'relay.db'}"
        _seed(db_url, camera.url_with_credentials())
        sock = bound_socket()
        port = sock.getsockname()[1]
        sock.close()
        env = {**os.environ, "PYTHONPATH": str(REPO), "CCTV_DATABASE_URL": db_url,
               "CCTV_TOKEN_SECRET": "s" * 40, "CCTV_AUDIT_SIGNING_KEY": "leak-test-key"}
        proc = subprocess.Popen([sys.executable, "-m", "relay.cli", "serve", "--port", str(port)], env=env,
                                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        base, seen = f"http://127.0.0.1:{port}", []
        try:
            async with httpx.AsyncClient(base_url=base, timeout=20) as client:

                async def get(path: str, token: str | None = None, **params: str) -> httpx.Response:
                    headers = {"Authorization": f"Bearer {token}"} if token else {}
                    r = await client.get(path, headers=headers, params=params)
                    seen.append(f"{path} {r.status_code} {r.headers} {r.text}")
                    return r

                deadline = time.monotonic() + 60
                while True:
                    assert proc.poll() is None and time.monotonic() < deadline, "the relay did not start"
                    try:
                        if (await get("/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        time.sleep(0.2)

                async def login(user: str) -> str:
                    r = await client.post("/api/auth/login", json={"username": user, "password": PASSWORD})
                    seen.append(r.text)
                    return str(r.json()["access_token"])

                admin, auditor, viewer = [await login(u) for u in ("admin", "auditor", "viewer")]
                # The camera with credentials plays (the relay really used them) ...
                deadline = time.monotonic() + 60
                while (await get("/api/live/cameras/cam-url/health", viewer)).json().get("fps_in", 0) <= 0:
                    assert time.monotonic() < deadline, seen[-1]
                    time.sleep(0.5)
                watching = await open_viewer(base, "cam-url", token=viewer)
                assert watching.status == 201, watching.text
                assert len(await watching.frames(10)) == 10
                # ... the others fail (nothing listens; the camera refuses a wrong user), and say so.
                deadline = time.monotonic() + 30
                while (await get("/api/live/cameras/cam-query/health", viewer)).json().get("failures", 0) < 1:
                    assert time.monotonic() < deadline, seen[-1]
                    time.sleep(0.5)
                for path in ("/api/live/cameras", "/api/cameras", "/api/cameras/cam-url",
                             "/api/cameras/cam-query", "/api/cameras/cam-fields", "/api/view/cameras"):
                    await get(path, viewer if "live" in path or "view" in path else admin)
                await get("/metrics", admin)
                body = {"id": "cam-query", "name": "Renamed", "purposes": ["public_safety"]}
                r = await client.put("/api/cameras/cam-query", headers={"Authorization": f"Bearer {admin}"},
                                     json=body)
                seen.append(r.text)
                for fmt in ("json", "csv"):
                    await get("/api/audit/export", auditor, format=fmt)
                await get("/api/audit/entries", auditor, limit="1000")
                assert (await delete(base, watching.location, viewer)).status_code == 200
                if watching.pc is not None:
                    await watching.pc.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                output, _ = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                output, _ = proc.communicate()
    shown = "\n".join([output, *seen])
    assert "cam-url" in output and "***@" in output  # the logs name the cameras, redacted
    assert "user=%2A%2A%2A" in shown or "user=***" in shown
    leaked = [s for s in SECRETS if s in shown]
    assert not leaked, [line for line in shown.splitlines() if any(s in line for s in leaked)][:10]

