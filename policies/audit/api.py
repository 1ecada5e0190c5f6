"""Auditor API (`/api/audit`): query, export, verify and summarize the access log. Auditors see the
evidence, never video. Every use of this API is itself logged ("audit.access")."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse

from policies.audit import AuditError, entry_dict
from policies.auth import require
from policies.contract import Principal
from policies.schemas import IDENT_MAX, problems

router = APIRouter(prefix="/api/audit", tags=["audit"], responses=problems(400, 401, 403))
Auditor = Annotated[Principal, Depends(require("audit"))]
Ident = Annotated[str | None, Query(max_length=IDENT_MAX)]
MAX_OFFSET = 10**9


def _instant(name: str, t: dt.datetime | None, zone: ZoneInfo) -> dt.datetime | None:
    """`t` with its offset (the relay's zone if it has none), refused (422) unless it has a UTC instant
    the log can compare with: 0001-01-01 in Taipei, or 9999-12-31 west of Greenwich, has none."""
    if t is None:
        return None
    t = t.replace(tzinfo=zone) if t.tzinfo is None else t
    try:
        t.astimezone(dt.UTC)
    except (OverflowError, ValueError):
        raise RequestValidationError([{"loc": ("query", name), "type": "value_error",
                                       "msg": "a time between years 1 and 9999 in UTC"}]) from None
    return t


def _filters(request: Request, actor: Annotated[str | None, Query(max_length=128)] = None,
             camera_id: Ident = None, purpose: Ident = None,
             decision: Literal["allow", "deny"] | None = None, kind: Ident = None,
             since: dt.datetime | None = None, until: dt.datetime | None = None,
             mode: Literal["anonymized", "raw"] | None = None) -> dict[str, Any]:
    """Query filters; a time without an offset is the relay's local time, as on the command line."""
    zone = ZoneInfo(request.app.state.policies.settings.timezone)
    since, until = _instant("since", since, zone), _instant("until", until, zone)
    found = {"actor": actor, "camera_id": camera_id, "purpose": purpose, "decision": decision, "kind": kind,
             "since": since, "until": until, "mode": mode}
    return {k: v for k, v in found.items() if v is not None}


Filters = Annotated[dict[str, Any], Depends(_filters)]


def log_access(request: Request, who: Principal, what: str, filters: dict[str, Any]) -> None:
    shown = {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in filters.items()}
    request.app.state.policies.audit.append("audit.access", actor=who.username, roles=who.roles,
                                            decision="allow", reason=what, details={"filters": shown})


@router.get("/entries")
def entries(request: Request, who: Auditor, filters: Filters,
            limit: Annotated[int, Query(ge=1, le=1000)] = 100,
            offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0) -> dict[str, Any]:
    log = request.app.state.policies.audit
    log_access(request, who, "query", filters)
    rows = log.query(limit=limit, offset=offset, **filters)
    return {"total": log.count(**filters), "limit": limit, "offset": offset,
            "entries": [entry_dict(e) for e in rows]}


@router.get("/export")
def export(request: Request, who: Auditor, filters: Filters,
           format: Literal["csv", "json"] = "csv") -> StreamingResponse:
    log_access(request, who, f"export {format}", filters)
    try:
        chunks = request.app.state.policies.audit.export(format, **filters)
    except AuditError as exc:
        raise HTTPException(400, detail=str(exc)) from None
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    media = "text/csv; charset=utf-8" if format == "csv" else "application/json"
    disposition = f'attachment; filename="access-log-{stamp}.{format}"'
    return StreamingResponse(chunks, media_type=media, headers={"Content-Disposition": disposition})


@router.get("/verify")
def verify(request: Request, who: Auditor) -> dict[str, Any]:
    log_access(request, who, "verify", {})
    return request.app.state.policies.audit.verify().as_dict()


@router.get("/stats")
def stats(request: Request, who: Auditor, since: dt.datetime | None = None,
          until: dt.datetime | None = None) -> dict[str, Any]:
    """Views per camera per purpose (and mode) per month (relay's local time); refusals likewise."""
    log = request.app.state.policies.audit
    tz = request.app.state.policies.settings.timezone
    window = _filters(request, since=since, until=until)
    log_access(request, who, "stats", window)
    return {
        "timezone": tz,
        "views": log.monthly_counts(kind="view.start", by=("camera_id", "purpose", "mode"), tz=tz, **window),
        # Every refused request: view/raw decisions and authentication or role refusals alike.
        "denials": log.monthly_counts(kind=None, decision="deny", by=("kind", "camera_id", "purpose"), tz=tz,
                                      **window),
    }
