"""How the policy's own refusals answer over HTTP: a `PolicyError` a route lets through (unknown id, a
request not pending, one person approving their own request...) answers its status with its one-line
message as `detail`; a rejected policy record (`files.PolicyFileError`) answers 400 with its problems
joined by "; ". Installed on the app beside the routers (`install`), so routes need no try/except."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import Response

from policies.contract import PolicyError
from policies.files import PolicyFileError


async def refused(request: Request, exc: Exception) -> Response:
    if isinstance(exc, PolicyFileError):
        return await http_exception_handler(request, HTTPException(400, "; ".join(exc.problems)))
    assert isinstance(exc, PolicyError)
    return await http_exception_handler(request, HTTPException(exc.status, str(exc)))


def install(app: FastAPI) -> None:
    app.add_exception_handler(PolicyError, refused)
    app.add_exception_handler(PolicyFileError, refused)
