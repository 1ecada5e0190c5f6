"""`cctv-relay serve` (the relay from a config file + environment) and `cctv-relay demo` (everything
embedded: SQLite, default policy, demo users, a sample camera)."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from policies.context import build_context
from relay import interpreter
from relay.app import create_app
from relay.cluster.shutdown import serve
from relay.config import ConfigError, load_settings
from relay.demo import DemoError, run
from relay.errors import first_line


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    serve = sub.add_parser("serve", help="run the relay (dashboard, WHEP, APIs)",
                           description="Run the relay. Settings: --config YAML file, then CCTV_* environment "
                                       "variables (they win over the file), then these options.")
    serve.add_argument("--config", type=Path, help="YAML config file (e.g. relay.yaml)")
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default 8080)")
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo", help="run a self-contained demo: sample camera, demo users, dashboard")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8080)
    demo.add_argument("--data-dir", type=Path, default=Path("var"), help="where the demo keeps its files")
    source = demo.add_mutually_exclusive_group()
    source.add_argument("--rtsp", dest="rtsp", action="store_true", default=None,
                        help="serve the sample camera over RTSP (GStreamer); the default when available")
    source.add_argument("--file", dest="rtsp", action="store_false", help="loop the sample file instead")
    demo.set_defaults(func=cmd_demo)


def _configure_logging() -> None:
    """The project's own INFO messages (cameras connecting, sessions ending, retention) beside uvicorn's;
    libraries (aiortc, aioice) stay at WARNING, their INFO is per-packet chatter."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)-9s %(name)s: %(message)s")
    for name in ("relay", "policies", "blur"):
        logging.getLogger(name).setLevel(logging.INFO)


def _port_problem(host: str, port: int) -> str | None:
    """Why the listener cannot bind, asked before starting anything (uvicorn would start the app, then
    fail with a log line and exit 3)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return f"cannot listen on {host}:{port}: unknown address"
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def _fail(message: str) -> int:
    print(f"cctv-relay: error: {message}", file=sys.stderr)
    return 2


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config, host=args.host, port=args.port)
    except ConfigError as exc:
        return _fail(str(exc))
    try:
        ctx = build_context(settings)
    except (SQLAlchemyError, OSError) as exc:
        # The URL may carry a password: say which kind of database failed, not the URL.
        kind = settings.database_url.split(":", 1)[0]
        return _fail(f"cannot open the {kind} database: {type(exc).__name__}: {first_line(exc)}")
    if problem := _port_problem(settings.host, settings.port):
        ctx.db.dispose()
        return _fail(problem)
    _configure_logging()
    try:
        app = create_app(settings, context=ctx)
        interpreter.tune(settings.gil_switch_ms)
        # SIGTERM drains first (relay.cluster.shutdown): viewers are told why and rejoin another replica.
        serve(app, host=settings.host, port=settings.port, proxy_headers=bool(settings.public_url))
    finally:
        ctx.db.dispose()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if problem := _port_problem(args.host, args.port):
        return _fail(problem)
    _configure_logging()
    try:
        return run(args.data_dir, host=args.host, port=args.port, use_rtsp=args.rtsp)
    except DemoError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return 0
