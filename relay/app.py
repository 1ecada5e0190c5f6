"""The relay's web service: one FastAPI app that wires the control plane (policies) beside the data plane
(camera manager, WHEP) and serves the dashboard.

Routes: `/healthz` (no auth), `/metrics` (admin or the scrape token), `/` + `/static/*` (dashboard, no
secrets), `/api/live/cameras` (what the caller may watch, with health; `/api/cameras` is the policy
admin's camera CRUD), `/api/live/cameras/{id}/health`, WHEP under `/whep`, and the policies' routers (auth,
admin API, audit API, public register)."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import select

import relay.metrics  # noqa: F401  (registers the relay's metrics, which /metrics exposes)
from policies import api, auth, console_api, errors, grants_api, overload, register
from policies.audit import api as audit_api
from policies.auth import authorize, bearer_token
from policies.context import PolicyContext, build_context
from policies.contract import CameraRuntime
from policies.models import Camera
from policies.schemas import problems
from relay import consoles, refusals, ui, whep
from relay.cameras import CameraManager
from relay.cluster.replica import Replica
from relay.cluster.routing import ReplicaPrefix
from relay.config import RelaySettings, load_settings
from relay.health import CameraHealth
from relay.housekeeping import cancel, follow_cameras, keep_retention
from relay.limits import BodyLimits
from relay.quotas import SessionQuota
from relay.services import Services, Viewer, app_services, install, services
from relay.sessions import SessionRegistry
from relay.webrtc import MAX_SDP_BYTES

log = logging.getLogger("relay.app")
DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboard"
# Health fields safe to show any viewer (never the source URL, redacted or not: that is for admins).
_HEALTH_FIELDS = ("state", "connected", "fps_in", "fps_out", "last_frame_age_s", "reconnects", "failures",
                  "viewers", "failsafe_frames", "dropped_frames", "last_error", "width", "height", "frozen")


def _resolver(ctx: PolicyContext) -> Callable[[str], CameraRuntime | None]:
    def resolve(camera_id: str) -> CameraRuntime | None:
        runtime = ctx.service.camera_runtime(camera_id)
        return runtime if runtime is not None and runtime.enabled else None

    return resolve


def _camera_lister(ctx: PolicyContext) -> Callable[[], list[CameraRuntime]]:
    def cameras() -> list[CameraRuntime]:
        with ctx.db.session() as s:
            ids = list(s.scalars(select(Camera.id).where(Camera.enabled.is_(True)).order_by(Camera.id)))
        return [rt for cid in ids if (rt := ctx.service.camera_runtime(cid)) is not None and rt.enabled]

    return cameras


def _camera_fingerprint(ctx: PolicyContext) -> Callable[[], tuple[Any, ...]]:
    """Every camera's id, change time and enabled flag: one small query that tells whether an admin changed
    the list (any field of a camera moves its updated_at). All rows, not max(updated_at): two changes
    committed out of order would hide the older one from a maximum."""

    def fingerprint() -> tuple[Any, ...]:
        with ctx.db.session() as s:
            rows = s.execute(select(Camera.id, Camera.updated_at, Camera.enabled).order_by(Camera.id))
            return tuple(tuple(row) for row in rows)

    return fingerprint


def health_summary(health: CameraHealth | None) -> dict[str, Any]:
    """A camera's health as plain JSON, limited to fields that hold no secrets."""
    if health is None:
        return {"state": "idle", "connected": False}
    raw = health.to_dict()
    return {k: raw[k] for k in _HEALTH_FIELDS}


def create_app(settings: RelaySettings | None = None, *, context: PolicyContext | None = None) -> FastAPI:
    """The relay app. `context`: an existing PolicyContext to use (tests, demo); else built from settings."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = context or build_context(settings)
        # This relay among those sharing the database (relay.cluster): cameras pulled under a lease.
        cluster = Replica(ctx.db.engine, settings, ctx.service.close_sessions_on)
        manager = CameraManager(_resolver(ctx), linger_s=settings.linger_s, codec=settings.codec,
                                cameras=_camera_lister(ctx), leases=cluster.keeper)
        cluster.keeper.on_lost = manager.restart
        quota = SessionQuota(settings.max_sessions_per_user, settings.max_sessions_per_camera)
        sessions = SessionRegistry(ctx.service, settings.session_check_s, quota)
        install(app, Services(context=ctx, cameras=manager, sessions=sessions, settings=settings,
                              cluster=cluster))
        await cluster.start()
        app.state.drain = lambda: cluster.drain(sessions.close_all, manager.stop)  # on SIGTERM
        await manager.start()
        follow = follow_cameras(manager.sync, _camera_fingerprint(ctx), settings.camera_sync_s)
        jobs = [asyncio.create_task(follow, name="follow-cameras"),
                asyncio.create_task(keep_retention(ctx.audit, settings.retention_every_s), name="retention")]
        log.info("relay listening; database %s", "sqlite" if ctx.db.is_sqlite else "postgresql")
        try:
            yield
        finally:
            await cancel(jobs)
            await sessions.close_all("relay shutting down")
            await manager.stop()
            await cluster.stop()
            ctx.audit.refusals.flush()  # refusals still being counted are written before the relay stops
            if context is None:
                ctx.db.dispose()

    app = FastAPI(title="cctv-relay", version="0.1.0", lifespan=lifespan,
                  description="Anonymizing CCTV relay: live video over WHEP under access policy, logged.")
    csp = ui.content_security_policy(settings)
    refusals.install(app)
    # Innermost of the middleware: its refusals still get the headers (and CORS) added outside it.
    app.add_middleware(BodyLimits, default=settings.max_body_bytes, routes=[("/whep/", MAX_SDP_BYTES)],
                       on_refuse=refusals.scope_refusal_logger(app))
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=False,
                           allow_methods=["GET", "POST", "DELETE", "PATCH", "OPTIONS"],
                           allow_headers=["Authorization", "Content-Type", "If-Match"],
                           expose_headers=["Location", "ETag", "Link", "Accept-Patch", "X-View-Mode",
                                           "X-View-Purpose", "X-View-Expires", "Server-Timing"])

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[..., Any]) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        path = request.url.path
        if path == "/" or path.startswith("/static/"):
            response.headers.setdefault("Content-Security-Policy", csp)
            response.headers.setdefault("X-Frame-Options", "DENY")
        elif path.startswith(("/api/", "/whep/")):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    # Outermost: /r/{this replica}/... is served as /..., /readyz answers 503 while draining or cut off.
    def started() -> bool:
        return hasattr(app.state, "services")

    app.add_middleware(ReplicaPrefix, replica_id=settings.replica_id,
                       draining=lambda: started() and app_services(app).cluster.draining,
                       database_ok=lambda: started() and app_services(app).cluster.database_ok())
    app.add_middleware(Received)

    app.include_router(auth.router, responses=problems(401))
    for module in (api, grants_api, audit_api, console_api, register):
        app.include_router(module.router)
    overload.install(app)
    errors.install(app)
    app.include_router(whep.router)
    app.include_router(ui.router)  # /public/ and /console/ pages, /ui/config.json, /api/live/catalog
    app.include_router(consoles.router)  # the administrator console's anonymized camera still
    _add_relay_routes(app)
    app.mount("/static", StaticFiles(directory=DASHBOARD_DIR), name="dashboard")
    return app


class Received:
    """When the request reached the app (`request.state.received_at`, perf_counter seconds): the WHEP
    answer's Server-Timing counts from there, the middleware and authentication included."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})["received_at"] = time.perf_counter()
        await self.app(scope, receive, send)


def _add_relay_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["relay"], include_in_schema=False)
    async def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(DASHBOARD_DIR / "index.html", media_type="text/html")

    def metrics_access(request: Request) -> None:
        # Prometheus scrapes with a static token; a signed-in admin may look too. Refusals are logged (as
        # denials) by the auth gate.
        token = bearer_token(request)
        scrape = services(request).settings.metrics_token
        if token and scrape and hmac.compare_digest(token.encode(), scrape.encode()):
            return
        try:
            authorize(request, "admin")
        except HTTPException as exc:
            if exc.status_code != 403:
                raise
            raise HTTPException(403, "metrics need the admin right or the scrape token") from None

    @app.get("/metrics", tags=["relay"], dependencies=[Depends(metrics_access)], responses=problems(401, 403))
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/live/cameras", tags=["relay"], responses=problems(401, 403))
    async def list_cameras(request: Request, principal: Viewer) -> JSONResponse:
        """Cameras the caller may watch, each with its approved purposes and a health summary."""
        svc = services(request)
        cameras = await asyncio.to_thread(svc.context.service.cameras_for, principal)
        health = svc.cameras.health()
        out = []
        for cam in cameras:
            item = {k: v for k, v in dict(cam).items() if k not in _SECRET_KEYS}
            item["health"] = health_summary(health.get(item["id"]))
            out.append(item)
        return JSONResponse({"cameras": out})

    @app.get("/api/live/cameras/{camera_id}/health", tags=["relay"], responses=problems(401, 403, 404))
    async def camera_health(camera_id: str, request: Request, principal: Viewer) -> JSONResponse:
        svc = services(request)
        cameras = await asyncio.to_thread(svc.context.service.cameras_for, principal)
        if not any(dict(c).get("id") == camera_id for c in cameras):
            raise HTTPException(404, f"no camera {camera_id!r} among the cameras you may watch")
        health = svc.cameras.health().get(camera_id)
        return JSONResponse({"id": camera_id, **health_summary(health)})


_SECRET_KEYS = frozenset({"source_url", "source_username", "source_password", "redacted_url",
                          "privacy_masks"})
