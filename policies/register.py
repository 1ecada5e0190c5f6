"""The public camera register (`/public`, no authentication): which cameras exist, where, run by whom,
for which approved purposes (with display names by language), with what signage, and how often they
were watched. Built from an explicit list of public fields, so stream URLs, credentials and privacy
masks can never slip in; statistics carry no user names."""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select

from policies.models import Camera, Purpose

router = APIRouter(prefix="/public", tags=["public register"])
_CACHE = {"Cache-Control": "public, max-age=60"}


def _cameras(request: Request) -> list[dict[str, Any]]:
    db = request.app.state.policies.db
    with db.session() as s:
        purposes = {p.id: p for p in s.scalars(select(Purpose))}
        cams = list(s.scalars(select(Camera).where(Camera.enabled.is_(True)).order_by(Camera.id)))
        return [{
            "id": c.id, "name": c.name,
            "location": {"latitude": c.latitude, "longitude": c.longitude, "address": c.address,
                         "district": c.district},
            "agency": c.agency,
            "purposes": [{"id": p, "label": purposes[p].label if p in purposes else p,
                          "labels": dict(purposes[p].labels or {}) if p in purposes else {}}
                         for p in (c.purposes or [])],
            "signage": bool(c.signage),
        } for c in cams]


def _districts(cams: list[dict[str, Any]]) -> dict[str, int]:
    return dict(sorted(Counter(c["location"]["district"] or "unknown" for c in cams).items()))


@router.get("/cameras.json")
def cameras_json(request: Request, response: Response) -> dict[str, Any]:
    response.headers.update(_CACHE)
    cams = _cameras(request)
    return {"count": len(cams), "districts": _districts(cams), "cameras": cams}


@router.get("/cameras.geojson")
def cameras_geojson(request: Request) -> Response:
    features = []
    for cam in _cameras(request):
        loc = cam["location"]
        located = loc["latitude"] is not None and loc["longitude"] is not None
        props = {k: v for k, v in cam.items() if k != "location"}
        props.update(address=loc["address"], district=loc["district"])
        features.append({
            "type": "Feature", "id": cam["id"],
            # GeoJSON order is [longitude, latitude].
            "geometry": ({"type": "Point", "coordinates": [loc["longitude"], loc["latitude"]]}
                         if located else None),
            "properties": props,
        })
    return JSONResponse({"type": "FeatureCollection", "features": features},
                        media_type="application/geo+json", headers=_CACHE)


@router.get("/districts.json")
def districts_json(request: Request, response: Response) -> dict[str, int]:
    response.headers.update(_CACHE)
    return _districts(_cameras(request))


@router.get("/stats.json")
def stats_json(request: Request, response: Response) -> dict[str, Any]:
    """Views started per camera, purpose, mode and month (local time), for the cameras in the register."""
    response.headers.update(_CACHE)
    public = {c["id"] for c in _cameras(request)}
    ctx = request.app.state.policies
    tz = ctx.settings.timezone
    rows = ctx.audit.monthly_counts(kind="view.start", by=("camera_id", "purpose", "mode"), tz=tz)
    views = [r for r in rows if r["camera_id"] in public]
    totals: Counter[str] = Counter()
    for r in views:
        totals[r["month"]] += r["count"]
    return {"timezone": tz, "views": views, "monthly_totals": dict(sorted(totals.items()))}
