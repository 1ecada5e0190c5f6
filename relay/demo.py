"""`cctv-relay demo`: the whole relay on one machine, with nothing to configure.

An SQLite database under `var/`, the shipped default policy, one demo user per role (fresh passwords each
run, printed once), and a sample camera: a generated street scene with real faces, served by a real RTSP
server (`relay.sample_camera`: GStreamer, when Debian's python3-gi is there) or else looped from the file.
Runs until Ctrl-C."""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import uvicorn
import yaml

from policies import files
from policies.context import build_context
from policies.defaults import load_defaults
from relay import interpreter
from relay.app import create_app
from relay.config import RelaySettings, load_settings
from relay.sample_camera import RtspServer, SampleCameraError, rtsp_available
from relay.samples import DEFAULT_WALKERS, Walker, render_frame, street_background

CAMERA_ID = "demo-xinyi-01"

# username -> (role, who they stand for)
DEMO_USERS: dict[str, tuple[str, str]] = {
    "viewer": ("dashboard_viewer", "Operations centre staff (anonymized, city purposes)"),
    "operator": ("police_operator", "Police monitoring desk (anonymized)"),
    "investigator": ("police_investigator", "Investigator (may request raw view for a case)"),
    "approver": ("raw_approver", "Duty supervisor (approves raw-view requests; no video)"),
    "admin": ("policy_admin", "Policy administrator (cameras, rules, users; no video)"),
    "auditor": ("auditor", "Auditor (access log and statistics; no video)"),
}


class DemoError(RuntimeError):
    """Something the demo needs is missing (one line for the user)."""


@dataclass
class DemoSetup:
    settings: RelaySettings
    passwords: dict[str, str]
    source_kind: str  # "rtsp" | "file"
    source_shown: str  # what to print (no credentials: the demo camera has none)


@contextmanager
def rtsp_camera(sample: Path, port: int = 0, fps: int = 25) -> Iterator[str]:
    """Serve `sample` (.h264) over RTSP (the package's sample camera); yields its URL; stops it on exit.
    Its stderr goes to a file beside the sample."""
    camera = RtspServer(sample, port=port, path="/street", fps=fps, log=sample.with_suffix(".rtsp.log"))
    try:
        camera.start(timeout=20)
    except SampleCameraError as exc:
        raise DemoError(str(exc)) from exc
    try:
        yield camera.url
    finally:
        camera.stop()


def write_demo_clip(path: Path, *, width: int = 1280, height: int = 720, fps: int = 25, seconds: float = 12.0,
                    walkers: tuple[Walker, ...] = DEFAULT_WALKERS) -> None:
    """The sample street scene as an H.264 Annex B stream, an IDR every second, that walks forth then back:
    an RTSP server loops the file, and the loop must not make people jump (a face appearing out of nowhere
    is the engine's known gap until its next detection round; see blur/README)."""



    background = street_background(width, height)
    with av.open(str(path), "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # One thread, one slice per frame: cheaper to encode (relay.sources decodes multi-slice streams too).
        stream.options = {"preset": "veryfast", "tune": "zerolatency", "g": str(fps), "bf": "0",
                          "threads": "1"}
        stream.codec_context.time_base = Fraction(1, fps)
        n = max(2, int(seconds * fps / 2))
        for pts, i in enumerate([*range(n), *range(n - 1, 0, -1)]):
            img, _ = render_frame(background, i, walkers)
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            frame.pts, frame.time_base = pts, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def ensure_sample(data_dir: Path) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    sample = data_dir / "demo-street.h264"
    if not sample.exists():
        tmp = sample.with_suffix(".tmp.h264")
        write_demo_clip(tmp)
        tmp.replace(sample)
    return sample


def demo_policy(source_url: str) -> dict:
    users = [{"username": name, "display_name": who, "roles": [role],
              "password": "${CCTV_DEMO_PASSWORD_" + name.upper() + "}"}
             for name, (role, who) in DEMO_USERS.items()]
    camera = {
        "id": CAMERA_ID, "name": "Xinyi Rd / Shifu Rd (demo)", "latitude": 25.0375, "longitude": 121.5645,
        "address": "Shifu Rd & Xinyi Rd, Xinyi District", "district": "Xinyi",
        "agency": "Taipei City Police Department (demo)",
        "purposes": ["public_safety", "social_order", "crime_prevention", "criminal_investigation",
                     "traffic_management", "disaster_response"],
        "tags": ["demo", "intersection"], "signage": True, "source_url": source_url, "keepalive": False,
    }
    return {"version": 1, "cameras": [camera], "users": users}


def prepare(data_dir: Path, source_url: str, *, host: str, port: int) -> tuple[DemoSetup, object]:
    """Database, default policy, demo camera and users. Returns the setup and its PolicyContext."""

    data_dir.mkdir(parents=True, exist_ok=True)
    database_url = f"sqlite:///{(data_dir / 'demo.db').resolve()}"
    settings = load_settings(database_url=database_url, host=host, port=port)
    ctx = build_context(settings)
    load_defaults(ctx, actor="demo")
    passwords = {name: secrets.token_urlsafe(9) for name in DEMO_USERS}
    policy_file = data_dir / "demo-policy.yaml"
    policy_file.write_text(yaml.safe_dump(demo_policy(source_url), sort_keys=False, allow_unicode=True))
    saved = {k: os.environ.get(k) for k in (f"CCTV_DEMO_PASSWORD_{n.upper()}" for n in DEMO_USERS)}
    try:
        for name, pw in passwords.items():
            os.environ[f"CCTV_DEMO_PASSWORD_{name.upper()}"] = pw
        loaded = files.load(policy_file)
        files.apply(ctx.db, ctx.audit, loaded, actor="demo", hasher=ctx.auth.hash_password, source="demo")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    kind = "rtsp" if source_url.startswith("rtsp://") else "file"
    return DemoSetup(settings, passwords, kind, source_url), ctx


def banner(setup: DemoSetup) -> str:
    s = setup.settings
    url = f"http://{'127.0.0.1' if s.host in ('0.0.0.0', '') else s.host}:{s.port}/"
    width = max(len(n) for n in DEMO_USERS)
    lines = [
        "",
        "cctv-relay demo",
        f"  dashboard:  {url}",
        f"  camera:     {CAMERA_ID} ({setup.source_kind}: {setup.source_shown})",
        f"  database:   {s.database_url}",
        "  users (passwords are new on every start; shown only here):",
    ]
    for name, (role, who) in DEMO_USERS.items():
        lines.append(f"    {name:<{width}}  {setup.passwords[name]:<14} {role:<20} {who}")
    lines += [
        "  raw view: sign in as investigator, request raw for criminal_investigation with a case reference",
        "  (POST /api/raw-requests); approver approves it (POST /api/raw-requests/{id}/approve); then play",
        "  the camera in mode 'raw' with the same case reference. API docs: /docs",
        "  Ctrl-C stops the relay.",
        "",
    ]
    return "\n".join(lines)


def run(data_dir: Path, *, host: str = "127.0.0.1", port: int = 8080, use_rtsp: bool | None = None) -> int:


    sample = ensure_sample(data_dir)
    want_rtsp = rtsp_available() if use_rtsp is None else use_rtsp
    with _camera_source(sample, want_rtsp) as source_url:
        setup, ctx = prepare(data_dir, source_url, host=host, port=port)
        print(banner(setup), flush=True)
        app = create_app(setup.settings, context=ctx)  # type: ignore[arg-type]
        interpreter.tune(setup.settings.gil_switch_ms)
        try:
            uvicorn.run(app, host=host, port=port, log_level="info")
        finally:
            ctx.db.dispose()  # type: ignore[attr-defined]
    return 0


@contextmanager
def _camera_source(sample: Path, use_rtsp: bool) -> Iterator[str]:
    if use_rtsp:
        with rtsp_camera(sample) as url:
            yield url
    else:
        print("note: no GStreamer RTSP server; the demo camera loops the sample file", file=sys.stderr)
        yield str(sample.resolve())
