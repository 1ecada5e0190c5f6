"""HTTP of the cluster: this replica's own prefix (`/r/{replica}/...`, what the ingress routes to it) is
accepted by stripping it, another replica's prefix is refused (421), and placements become responses:
307 to the owner (method and body kept, so a browser's fetch re-POSTs the offer there) or 503 with
Retry-After. `/readyz` says whether this replica takes new viewers (503 while draining, or while the
database does not answer its lease renewals): what an ingress or Kubernetes readiness probe asks."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from relay.cluster.placement import Elsewhere, Nowhere, Place


class ReplicaPrefix:
    """ASGI middleware: `/r/{me}/x` is served as `/x`; `/r/{other}/x` is answered 421."""

    def __init__(self, app: ASGIApp, replica_id: str | None, draining: Callable[[], bool],
                 database_ok: Callable[[], bool] = lambda: True) -> None:
        self.app = app
        self.replica_id = replica_id
        self.draining = draining
        self.database_ok = database_ok

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == "/readyz":  # ready: not draining, and the database answered its last lease renewal
            status = ("draining" if self.draining() else "database unreachable" if not self.database_ok()
                      else "ready")
            await _json(send, 200 if status == "ready" else 503,
                        {"status": status, "replica": self.replica_id})
            return
        if path.startswith("/r/"):
            me = self.replica_id
            prefix = f"/r/{me}"
            if me is None or not (path == prefix or path.startswith(prefix + "/")):
                await _json(send, 421, {"detail": "this relay is not the one that path names"})
                return
            rest = path[len(prefix):] or "/"
            scope = {**scope, "path": rest, "raw_path": rest.encode()}
        await self.app(scope, receive, send)


async def _json(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"cache-control", b"no-store"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


def placement_response(place: Place, camera_path: str, query: str) -> tuple[int, str, dict[str, str]]:
    """(status, JSON detail, headers) for a viewer that is not served here."""
    if isinstance(place, Elsewhere):
        location = f"{place.prefix}{camera_path}" + (f"?{query}" if query else "")
        return 307, f"camera served by relay {place.replica}", {"Location": location}
    assert isinstance(place, Nowhere)
    return 503, place.reason, {"Retry-After": str(place.retry_after_s)}
