"""Requests the app refuses for their form rather than their rights, answered briefly and logged.

- Invalid input (422, FastAPI's RequestValidationError): each problem as `loc`, `msg` and `type` only —
  never the input itself or the context values pydantic would echo — with names and messages cut short.
- A method a path does not take (405): `Allow` lists every method of every route on that path.
- Each such refusal, and the body limits' and WHEP's own (400/413/415), is one access-log entry
  `request.refused` (decision deny): who (when their token says), method, path and status, with a short
  reason. Never the body."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from policies.auth import client_address
from policies.contract import Principal

log = logging.getLogger("relay.refusals")

REASON_MAX = 200  # characters of a refusal's reason, in the answer and the log
PATH_MAX = 200
LOC_PART_MAX = 64
ERRORS_SHOWN = 20


def one_line(text: str, size: int = REASON_MAX) -> str:
    """`text` on one line, at most `size` characters (a reason to answer and log)."""
    text = " ".join(str(text).split())  # one line
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= size else text[: size - 1] + "…"


def _bearer(headers: Mapping[str, str]) -> str:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _identify(ctx: Any, token: str) -> Principal | None:
    if not token:
        return None
    try:
        principal: Principal = ctx.auth.authenticate(token)
        return principal
    except Exception:
        return None


def _append(ctx: Any, principal: Principal | None, method: str, path: str, client: str, status: int,
            reason: str, extra: dict[str, Any] | None) -> None:
    try:
        # Through the access log's refusal windows: a flood of the same refusal is one entry with a count.
        ctx.audit.refusals.record("request.refused", actor=principal.username if principal else "anonymous",
                                  roles=list(principal.roles) if principal else [],
                                  reason=one_line(reason, REASON_MAX), client=client, method=method,
                                  path=one_line(path, PATH_MAX), route=None, status=status, details=extra)
    except Exception as exc:  # the refusal stands; a log that cannot be written is the log's own alarm
        log.error("could not log a refused request (%s)", type(exc).__name__)


async def log_refusal(ctx: Any, *, method: str, path: str, client: str, status: int, reason: str,
                      principal: Principal | None = None, token: str = "",
                      extra: dict[str, Any] | None = None) -> None:
    """One `request.refused` entry. `principal` when the caller is known; else `token` is tried."""

    def write() -> None:
        _append(ctx, principal or _identify(ctx, token), method, path, client, status, reason, extra)

    await asyncio.to_thread(write)


async def log_request_refusal(request: Request, status: int, reason: str,
                              principal: Principal | None = None) -> None:
    await log_refusal(request.app.state.policies, method=request.method, path=request.url.path,
                      client=client_address(request), status=status, reason=reason, principal=principal,
                      token=_bearer(request.headers))


def scope_refusal_logger(app: FastAPI) -> Any:
    """For relay.limits.BodyLimits: log what it refuses (before any route ran)."""

    async def on_refuse(scope: dict[str, Any], status: int, reason: str) -> None:
        ctx = getattr(app.state, "policies", None)
        if ctx is None:
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        client = scope.get("client")
        await log_refusal(ctx, method=scope.get("method", ""), path=scope.get("path", ""),
                          client=client[0] if client else "", status=status, reason=reason,
                          token=_bearer(headers))

    return on_refuse


def _problems(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors()[:ERRORS_SHOWN]:
        loc = [p if isinstance(p, int) else one_line(str(p), LOC_PART_MAX) for p in err.get("loc", ())]
        out.append({"loc": loc, "msg": one_line(str(err.get("msg", "")), REASON_MAX),
                    "type": one_line(str(err.get("type", "")), LOC_PART_MAX)})
    return out


async def validation_failed(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = _problems(exc)
    first = problems[0] if problems else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    reason = f"invalid request: {where}: {first['msg']}" if where else f"invalid request: {first['msg']}"
    await log_request_refusal(request, 422, reason)
    return JSONResponse({"detail": problems}, status_code=422)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app takes on the request's path (asked of the routes themselves,
    as the router would for a request with that method)."""
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


async def http_refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        allow = ", ".join(allowed_methods(request))
        exc = StarletteHTTPException(405, exc.detail, headers={**(exc.headers or {}), "Allow": allow})
    return await http_exception_handler(request, exc)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_failed)
    app.add_exception_handler(StarletteHTTPException, http_refused)
