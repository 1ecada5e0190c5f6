"""What the browser pages need besides the APIs: the public camera map page (`/public/`, no login), the
pages' own settings (`/ui/config.json`: the map's tile service, the ICE transport policy; no secrets),
display names of purposes and roles for signed-in users (`/api/live/catalog`), and the pages'
Content-Security-Policy, which lets map tiles come from the configured tile service and nothing else from
elsewhere."""

from __future__ import annotations

import asyncio
import urllib.parse
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse
from sqlalchemy import select

from policies.context import PolicyContext
from policies.models import Purpose, Role
from policies.schemas import problems
from relay.config import RelaySettings
from relay.services import SignedIn, services

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboard"
LANGUAGES = ("zh-TW", "en")  # zh-TW first: the default where the browser asks for neither

router = APIRouter()


def tile_origin(url: str | None) -> str | None:
    """The origin a tile URL template loads from, as a CSP source ("{s}" subdomains become "*.")."""
    if not url:
        return None
    parts = urllib.parse.urlsplit(url.replace("{s}.", "x-subdomain."))
    host = parts.hostname or ""
    if host.startswith("x-subdomain."):
        host = "*." + host.removeprefix("x-subdomain.")
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def content_security_policy(settings: RelaySettings) -> str:
    """The pages load only their own files (media arrives over WebRTC); images also from the map's tile
    service when one is set."""
    tiles = tile_origin(settings.map_tile_url)
    img = "img-src 'self' data:" + (f" {tiles}" if tiles else "")
    return ("default-src 'self'; script-src 'self'; style-src 'self'; " + img + "; connect-src 'self'; "
            "media-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


@router.get("/ui/config.json", tags=["dashboard"])
def ui_config(request: Request) -> dict[str, Any]:
    """Settings of the browser pages. Public: the public page needs the map too; it holds no secrets."""
    settings = services(request).settings
    lat, lon = settings.map_center
    return {"languages": list(LANGUAGES),
            "map": {"tile_url": settings.map_tile_url, "attribution": settings.map_attribution,
                    "center": [lat, lon], "zoom": settings.map_zoom},
            # "relay": the dashboard's peer connections use TURN only (the servers come with each answer)
            "ice": {"transport_policy": settings.ice_transport_policy}}


def _catalog(ctx: PolicyContext) -> dict[str, Any]:
    with ctx.db.session() as s:
        purposes = {p.id: {"label": p.label, "labels": dict(p.labels or {}), "allows_raw": p.allows_raw}
                    for p in s.scalars(select(Purpose).order_by(Purpose.id))}
        roles = {r.name: {"labels": dict(r.labels or {})}
                 for r in s.scalars(select(Role).order_by(Role.name))}
    return {"purposes": purposes, "roles": roles}


@router.get("/api/live/catalog", tags=["dashboard"], responses=problems(401, 403))
async def catalog(request: Request, _: SignedIn) -> dict[str, Any]:
    """Display names of purposes and roles by language, for any signed-in user."""
    return await asyncio.to_thread(_catalog, services(request).context)


@router.get("/public", include_in_schema=False)
def public_redirect() -> RedirectResponse:
    return RedirectResponse("/public/", status_code=308)


@router.get("/console", include_in_schema=False)
def console_redirect() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=308)


@router.get("/console/", include_in_schema=False)
def console_page(request: Request) -> FileResponse:
    """The consoles of administrators, approvers and auditors: what each may do is the APIs' to decide;
    the page only leaves out what the signed-in person's rights do not reach."""
    csp = content_security_policy(services(request).settings)
    return FileResponse(DASHBOARD_DIR / "console.html", media_type="text/html",
                        headers={"Content-Security-Policy": csp, "X-Frame-Options": "DENY"})


@router.get("/public/", include_in_schema=False)
def public_page(request: Request) -> FileResponse:
    """The register as a page a citizen can open: a map and list of cameras, counts, monthly views."""
    csp = content_security_policy(services(request).settings)
    return FileResponse(DASHBOARD_DIR / "public.html", media_type="text/html",
                        headers={"Content-Security-Policy": csp, "X-Frame-Options": "DENY"})
