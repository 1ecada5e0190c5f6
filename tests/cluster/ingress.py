"""A test-side ingress for browsers, as deploy/'s does it: one origin, `/r/{replica}/...` to that replica,
anything else to the first live replica of a preference order (or the one an `X-Ingress-Via` header
names). Redirects go back to the browser, not followed; a replica that does not answer is a 502, as an
ingress answers for a dead backend. Every request is noted (method, path, status) for the test to read."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from tests.app.conftest import bound_socket, served

HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding"}
METHODS = ["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS"]


class Ingress:
    def __init__(self, bases: Callable[[], dict[str, str]], prefer: list[str]) -> None:
        """`bases()`: the live replicas now (id -> base URL); `prefer`: whom plain paths go to, in order."""
        self.bases = bases
        self.prefer = prefer
        self.requests: list[tuple[str, str, int]] = []

    def _target(self, request: Request) -> str | None:
        live = self.bases()
        path = request.url.path
        if path.startswith("/r/"):
            return live.get(path.split("/")[2])
        via = request.headers.get("x-ingress-via")
        if via:
            return live.get(via)
        return next((live[r] for r in self.prefer if r in live), None)

    def app(self) -> Starlette:
        client = httpx.AsyncClient(timeout=30, follow_redirects=False)

        async def blank(request: Request) -> Response:
            return HTMLResponse("<!doctype html><title>blank</title><body></body>")

        async def forward(request: Request) -> Response:
            target = self._target(request)
            status, resp = 502, Response("no live replica", status_code=502)
            if target is not None:
                headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
                with contextlib.suppress(httpx.TransportError):
                    r = await client.request(request.method, target + request.url.path,
                                             params=request.url.query or None, headers=headers,
                                             content=await request.body())
                    status = r.status_code
                    resp = Response(r.content, status_code=status,
                                    headers={k: v for k, v in r.headers.items() if k.lower() not in HOP})
            self.requests.append((request.method, request.url.path, status))
            return resp

        return Starlette(routes=[Route("/__blank", blank),
                                 Route("/{path:path}", forward, methods=METHODS)])

    @contextlib.contextmanager
    def serving(self) -> Iterator[str]:
        """Serve on a thread of its own; yields the origin (http://127.0.0.1:port)."""
        sock = bound_socket()
        with served(self.app(), sock):
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"

    def seen(self, method: str, prefix: str) -> list[tuple[str, int]]:
        """(path, status) of the requests so far with this method whose path starts with `prefix`."""
        return [(p, s) for m, p, s in list(self.requests) if m == method and p.startswith(prefix)]


def live_bases(replicas: dict[str, Any]) -> Callable[[], dict[str, str]]:
    """For `Ingress`: the bases of the replicas (tests.cluster.replicas.Replica) whose process runs."""
    return lambda: {rid: r.base for rid, r in replicas.items() if r.alive()}
