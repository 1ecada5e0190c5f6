"""Overload answered plainly and at once: a unit of work that gets no database connection within
`db_pool_timeout_s` (SQLAlchemy's pool timeout) answers 503 with Retry-After instead of a 500 after a long
hang; the password-check slots (policies.login_limits) answer the same way from the login route."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import TimeoutError as PoolTimeout

RETRY_AFTER_S = 1


async def _pool_exhausted(_request: Request, _exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": "the relay is overloaded (no database connection free); try again soon"},
                        status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})


def install(app: FastAPI) -> None:
    """Answer database pool timeouts anywhere in `app` with 503."""
    app.add_exception_handler(PoolTimeout, _pool_exhausted)
