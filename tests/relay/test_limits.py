"""relay.limits.BodyLimits, as plain ASGI: bodies over their route's limit are refused (413) by their
declared length or after at most the limit plus one chunk, without the app running; JSON text that no
UTF-8 store can hold, or NaN/Infinity, is refused (400); everything else reaches the app unchanged."""

from __future__ import annotations

import json
from typing import Any

import pytest

from relay.limits import BodyLimits

CHUNK = 4096


class App:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


class Client:
    """Sends a body in chunks (endlessly, if asked) and counts what was read of it."""

    def __init__(self, body: bytes = b"", *, endless: bool = False) -> None:
        self.body = body
        self.endless = endless
        self.read = 0
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        if self.endless:
            self.read += CHUNK
            return {"type": "http.request", "body": b"x" * CHUNK, "more_body": True}
        chunk = self.body[self.read:self.read + CHUNK]
        self.read += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": self.read < len(self.body)}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def detail(self) -> str:
        return str(json.loads(self.sent[1]["body"])["detail"])


def scope(path: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {"type": "http", "method": "POST", "path": path,
            "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]}


@pytest.fixture
def refusals() -> list[tuple[str, int, str]]:
    return []


@pytest.fixture
def limits(refusals: list[tuple[str, int, str]]) -> tuple[BodyLimits, App]:
    async def on_refuse(scope: dict[str, Any], status: int, reason: str) -> None:
        refusals.append((scope["path"], status, reason))

    app = App()
    return BodyLimits(app, default=64 * 1024, routes=[("/whep/", 16 * 1024)], on_refuse=on_refuse), app


async def test_declared_length_over_the_limit_is_refused_unread(limits: tuple[BodyLimits, App],
                                                                refusals: list[Any]) -> None:
    middleware, app = limits
    client = Client(b"x" * 20_000)
    await middleware(scope("/whep/cam", {"Content-Length": "20000"}), client.receive, client.send)
    assert client.status == 413 and client.read == 0 and app.bodies == []
    assert client.detail == "request body larger than 16384 bytes"
    assert refusals == [("/whep/cam", 413, client.detail)]


async def test_streamed_body_is_read_no_further_than_the_limit(limits: tuple[BodyLimits, App]) -> None:
    middleware, app = limits
    client = Client(endless=True)
    await middleware(scope("/api/cameras"), client.receive, client.send)
    assert client.status == 413 and app.bodies == []
    assert client.read <= 64 * 1024 + CHUNK


async def test_bodies_within_the_limit_reach_the_app_whole(limits: tuple[BodyLimits, App]) -> None:
    middleware, app = limits
    body = b"v=0\r\n" + b"a=x\r\n" * 3000  # 15 kB, under /whep/'s 16 KiB
    client = Client(body)
    await middleware(scope("/whep/cam"), client.receive, client.send)
    assert client.status == 200 and app.bodies == [body]


@pytest.mark.parametrize("value", ["12x", "-1", "99999999999999999999999"])
async def test_a_bad_content_length_is_400(limits: tuple[BodyLimits, App], value: str) -> None:
    middleware, app = limits
    client = Client(b"{}")
    await middleware(scope("/api/x", {"Content-Length": value}), client.receive, client.send)
    assert client.status == 400 and app.bodies == []


@pytest.mark.parametrize(("body", "reason"), [
    (b'{"label": "\\ud800"}', "lone UTF-16 surrogate"),
    (b'{"\\udfff": 1}', "lone UTF-16 surrogate"),
    (b'["ok", {"a": ["\\ud83d x"]}]', "lone UTF-16 surrogate"),
    (b'{"latitude": NaN}', "NaN"),
    (b'{"latitude": -Infinity}', "-Infinity"),
])
async def test_json_text_no_store_can_hold_is_400(limits: tuple[BodyLimits, App], body: bytes,
                                                  reason: str) -> None:
    middleware, app = limits
    client = Client(body)
    await middleware(scope("/api/x", {"Content-Type": "application/json"}), client.receive, client.send)
    assert client.status == 400 and reason in client.detail and app.bodies == []
    assert body.decode() not in client.detail


@pytest.mark.parametrize("body", [
    b'{"label": "\\ud83d\\ude00 \\u00e9 \\\\ud800"}',  # a pair, an escape, an escaped backslash
    b'{"not json',  # the app answers what does not decode
    "{\"label\": \"臺北\"}".encode(),
])
async def test_other_json_reaches_the_app(limits: tuple[BodyLimits, App], body: bytes) -> None:
    middleware, app = limits
    client = Client(body)
    await middleware(scope("/api/x", {"Content-Type": "application/json"}), client.receive, client.send)
    assert client.status == 200 and app.bodies == [body]
