"""Bounds on what a request may carry, enforced before any route reads it.

`BodyLimits` is an ASGI middleware. It refuses a body over its route's limit (413) by its declared
Content-Length, and by counting the bytes of a body sent without one, reading no more than the limit plus
one chunk; a body within the limit is handed on, replayed, to the app. A JSON body must be text the
database and the access log can hold: no lone UTF-16 surrogates (`"\\ud800"`, which no UTF-8 store can
encode) and none of Python's NaN/Infinity extensions, which JSON does not have (400). Refusals are answered
here, `{"detail": one line}`, and reported to `on_refuse` (the app logs them) — never with the body."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
OnRefuse = Callable[[Scope, int, str], Awaitable[None]]

_SURROGATE = re.compile("[\ud800-\udfff]")


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class BodyLimits:
    """`default`: the most bytes a request body may have; `routes`: (path prefix, limit) pairs, the first
    matching prefix wins (e.g. SDP offers under /whep/ get less than JSON under /api/)."""

    def __init__(self, app: ASGIApp, *, default: int, routes: Sequence[tuple[str, int]] = (),
                 on_refuse: OnRefuse | None = None) -> None:
        self.app = app
        self.default = default
        self.routes = tuple(routes)
        self.on_refuse = on_refuse

    def limit_for(self, path: str) -> int:
        return next((limit for prefix, limit in self.routes if path.startswith(prefix)), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        try:
            declared(headers.get(b"content-length"), limit)
            body = await _read(receive, limit)
            if body is None:
                return  # the client went away
            if body and _is_json(headers.get(b"content-type", b"")):
                check_json_text(body)
        except Refused as refused:
            await self._refuse(scope, send, refused)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _refuse(self, scope: Scope, send: Send, refused: Refused) -> None:
        if self.on_refuse is not None:
            await self.on_refuse(scope, refused.status, refused.reason)
        payload = json.dumps({"detail": refused.reason}).encode()
        await send({"type": "http.response.start", "status": refused.status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": payload})


def declared(value: bytes | None, limit: int) -> None:
    """The Content-Length header, if any, against the limit."""
    if value is None:
        return
    text = value.decode("latin-1").strip()
    if not text.isdigit() or len(text) > 19:
        raise Refused(400, "Content-Length must be a number of bytes")
    if int(text) > limit:
        raise Refused(413, f"request body larger than {limit} bytes")


async def _read(receive: Receive, limit: int) -> bytes | None:
    """The whole body, refused (413) as soon as it passes `limit`; None if the client disconnected."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"request body larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: the disconnect, when it comes

    return replay


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json")


def _no_constant(name: str) -> Any:
    raise Refused(400, f"JSON has no {name}: numbers must be finite")


def check_json_text(body: bytes) -> None:
    """Refuse (400) JSON that decodes to text no UTF-8 store can hold, or uses NaN/Infinity. JSON that
    does not decode at all is left to the app, which answers it as invalid input."""
    try:
        doc = json.loads(body, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return
    # A surrogate can only come from a \u escape: raw surrogate bytes are not UTF-8 and fail to decode.
    if b"\\u" not in body:
        return
    for text in _strings(doc):
        if _SURROGATE.search(text):
            # Paired surrogates decode to one character; any left over are lone halves.
            raise Refused(400, "JSON text holds a lone UTF-16 surrogate (\\ud800-\\udfff): not valid Unicode")


def _strings(doc: Any) -> Iterator[str]:
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
