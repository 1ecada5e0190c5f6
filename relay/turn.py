"""TURN with short-lived credentials: coturn's shared-secret REST scheme (`use-auth-secret` with
`static-auth-secret`). Nothing long-lived leaves the relay: each WHEP session's viewer gets a username
"<expiry unix time>:<user tag>" and its credential base64(HMAC-SHA1(secret, username)), good until the
expiry, and the relay's own peer gets its own pair for every answer it makes. The TURN server checks them
with the same secret and needs no user database.

Settings (`CCTV_*`, part of the relay's, `RelaySettings` inherits them): `turn_urls` (e.g.
`["turn:turn.example:3478?transport=udp", "turn:turn.example:3478?transport=tcp"]`), `turn_secret`
(`CCTV_TURN_SECRET`, coturn's `static-auth-secret`; never logged or returned), `turn_ttl_s` (how long a
credential is good), `ice_transport_policy` ("relay": the dashboard uses TURN only)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class TurnSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CCTV_", extra="ignore")

    # TURN servers that take credentials made from `turn_secret` (coturn's use-auth-secret); empty: none.
    turn_urls: list[str] = Field(default_factory=list)
    turn_secret: SecretStr | None = None  # coturn's static-auth-secret (CCTV_TURN_SECRET)
    # How long an issued credential is good. coturn refuses an allocation's refresh once its username's
    # time has passed, so this bounds how long a view can be relayed without joining again.
    turn_ttl_s: int = Field(default=8 * 3600, ge=60, le=7 * 86400)
    # The browser pages' RTCPeerConnection policy: "all" (direct when possible) or "relay" (TURN only).
    ice_transport_policy: Literal["all", "relay"] = "all"

    @field_validator("turn_urls")
    @classmethod
    def _turn_scheme(cls, urls: list[str]) -> list[str]:
        bad = [u for u in urls if not u.startswith(("turn:", "turns:"))]
        if bad:
            raise ValueError(f"TURN URLs start with turn: or turns: ({bad[0]!r} does not)")
        return urls

    def turn_enabled(self) -> bool:
        return bool(self.turn_urls and self.turn_secret and self.turn_secret.get_secret_value())


@dataclass(frozen=True, slots=True)
class TurnServer:
    """A TURN server with a credential of its own (meets relay.webrtc.IceServerConfig)."""

    urls: Sequence[str]
    username: str | None = None
    credential: str | None = field(default=None, repr=False)  # never in reprs, hence never in logs


def turn_credential(secret: str, user_tag: str, ttl_s: int, now: float | None = None) -> tuple[str, str]:
    """(username, credential) of coturn's REST scheme: "<expiry>:<user_tag>", base64(HMAC-SHA1)."""
    if ":" in user_tag:
        raise ValueError("a TURN user tag holds no ':'")
    expiry = int(time.time() if now is None else now) + ttl_s
    username = f"{expiry}:{user_tag}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def ice_servers_for(settings: object, user_tag: str) -> list[Any]:
    """The configured STUN/TURN servers plus, when TURN is set up, the TURN servers with a fresh credential
    for `user_tag` (a session id, or the relay's own name: opaque, so the TURN server's logs name no one)."""
    servers: list[Any] = list(getattr(settings, "ice_servers", ()))
    if isinstance(settings, TurnSettings) and settings.turn_enabled():
        assert settings.turn_secret is not None
        username, credential = turn_credential(settings.turn_secret.get_secret_value(),
                                               _tag(user_tag), settings.turn_ttl_s)
        servers.append(TurnServer(tuple(settings.turn_urls), username, credential))
    return servers


def _tag(user_tag: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in user_tag)[:64] or "relay"
