"""TURN with short-lived credentials (relay.turn): coturn's shared-secret REST scheme, the settings
(`CCTV_TURN_*`, the secret never shown), a credential per WHEP session in the Link header, and the relay's
own aiortc peer relaying through a real coturn: offered only relayed candidates, it still delivers video."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.cameras import CameraManager
from relay.config import RelaySettings, load_settings
from relay.turn import TurnServer, ice_servers_for, turn_credential
from relay.webrtc import IceSettings, ice_settings_from
from relay.whep import ice_server_links
from tests.relay.conftest import HEIGHT, WIDTH, Viewer
from tests.support.coturn import Coturn

SECRET = "city-turn-secret"


def test_credentials_follow_coturns_rest_scheme() -> None:
    # The expected credential: `echo -n 1700003600:sess-1 | openssl dgst -sha1 -hmac city-turn-secret
    # -binary | base64`.
    assert turn_credential(SECRET, "sess-1", 3600, now=1_700_000_000) == (
        "1700003600:sess-1", "H8iOIyR1/w68i4eMtZFmoJSbt4M=")
    with pytest.raises(ValueError):
        turn_credential(SECRET, "a:b", 60)


def test_settings_from_the_environment_keep_the_secret_out_of_sight(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CCTV_TURN_SECRET", SECRET)
    monkeypatch.setenv("CCTV_TURN_URLS", '["turn:turn.example:3478?transport=udp"]')
    monkeypatch.setenv("CCTV_TURN_TTL_S", "600")
    settings = load_settings()
    assert settings.turn_enabled() and settings.turn_ttl_s == 600
    assert SECRET not in repr(settings) and SECRET not in str(settings.model_dump())
    (server,) = ice_servers_for(settings, "sess-1")
    assert isinstance(server, TurnServer) and server.credential and server.credential not in repr(server)
    monkeypatch.setenv("CCTV_TURN_URLS", '["stun:stun.example:3478"]')
    with pytest.raises(ValueError, match="turn:"):
        load_settings()


def test_each_session_gets_its_own_short_lived_credential_in_the_link_header() -> None:
    import time

    settings = load_settings(turn_urls=["turn:turn.example:3478?transport=udp",
                                        "turn:turn.example:3478?transport=tcp"],
                             turn_secret=SECRET, turn_ttl_s=900,
                             ice_servers=[{"urls": ["stun:stun.example:3478"]}])
    before = int(time.time())
    links = ice_server_links(settings, "s-1")
    assert links.startswith('<stun:stun.example:3478>; rel="ice-server", ')
    parts = links.split(", ")[1:]
    assert len(parts) == 2
    for part, transport in zip(parts, ("udp", "tcp"), strict=True):
        url, rel, user, cred, kind = part.split("; ")
        assert url == f"<turn:turn.example:3478?transport={transport}>" and rel == 'rel="ice-server"'
        username = user.removeprefix('username="').removesuffix('"')
        expiry, tag = username.split(":")
        assert tag == "s-1" and before + 900 <= int(expiry) <= int(time.time()) + 900
        credential = cred.removeprefix('credential="').removesuffix('"')
        assert (username, credential) == turn_credential(SECRET, "s-1", int(expiry), now=0)
        assert kind == 'credential-type="password"'
    assert ice_server_links(settings, "s-2") != links  # another session, another credential
    # No secret configured: no TURN credentials at all (the static ice_servers only).
    assert ice_server_links(load_settings(turn_urls=["turn:turn.example:3478"])) == ""


@pytest.fixture
def coturn(tmp_path: Path) -> Iterator[Coturn]:
    with Coturn(tmp_path, SECRET) as server:
        yield server


@pytest.mark.timeout(90)
async def test_the_relays_own_peer_sends_through_turn(coturn: Coturn, manager: CameraManager) -> None:
    from aiortc import RTCSessionDescription

    from relay.webrtc import answer_offer

    settings = RelaySettings(turn_urls=coturn.urls[:1], turn_secret=SECRET, turn_ttl_s=600)
    # No host address of its own (no such interface, no loopback): its only candidate is the one coturn
    # relays, so every packet the viewer gets went through the TURN server.
    configured = ice_settings_from(settings, "relay-test")
    ice = IceSettings(servers=configured.servers, interfaces=["no-such-interface"], loopback=False)
    viewer = Viewer()
    try:
        answer, viewer.server_pc = await answer_offer(await viewer.offer(), await manager.subscribe("street"),
                                                      ice=ice)
        candidates = [line for line in answer.splitlines() if line.startswith("a=candidate:")]
        assert candidates and all(" typ relay " in c for c in candidates), candidates
        await viewer.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        frames = await viewer.collect(10, timeout=40)
        assert frames[0].shape == (HEIGHT, WIDTH, 3)
    finally:
        await viewer.close()
    for _ in range(20):  # the log is written by coturn's own thread
        log = coturn.log()
        if "ALLOCATE processed, success" in log:
            break
        await asyncio.sleep(0.1)
    assert "relay-test" in log and "ALLOCATE processed, success" in log, log[-3000:]
    (server,) = configured.servers
    assert server.credential and server.credential not in log
