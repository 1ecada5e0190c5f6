"""Property tests of the SDP path: arbitrary text and bytes, and mutations of a real browser-like offer,
through `relay.webrtc.check_offer` and the WHEP POST. Never a server error: 201 (a session, ended again
at once) or a 4xx with a one-line reason that does not echo the offer. Derandomized and bounded (well
under a minute here)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relay.webrtc import SdpError, check_offer
from tests.app.inproc import Local, local_app, recvonly_offer

OFFER = recvonly_offer()
LINES = OFFER.rstrip("\r\n").split("\r\n")
FUZZ = settings(derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck))


def fuzz(examples: int) -> settings:
    return settings(FUZZ, max_examples=examples)


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Local]:
    with local_app(tmp_path_factory.mktemp("fuzz-sdp"), max_sessions_per_user=1000) as app:
        yield app


@pytest.fixture(scope="module")
def headers(local: Local) -> dict[str, str]:
    return local.headers("operator", **{"Content-Type": "application/sdp"})


def assert_answered_well(local: Local, headers: dict[str, str], body: bytes) -> None:
    r = local.client.post("/whep/cam-test?purpose=public_safety", content=body, headers=headers)
    if r.status_code == 201:
        assert r.text.startswith("v=0") and r.headers["location"]
        assert local.client.delete(r.headers["location"], headers=headers).status_code == 200
        return
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    detail = r.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail and "\r" not in detail
    assert len(detail) <= 200, detail
    text = body.decode("utf-8", "replace")
    echoed = [line for line in text.splitlines() if len(line) >= 16 and line in detail]
    assert not echoed, (detail, echoed)


def mutate(lines: list[str], steps: list[tuple[str, int, int, str]]) -> list[str]:
    out = list(lines)
    for kind, i, j, text in steps:
        if not out:
            out = [text]
            continue
        i, j = i % len(out), j % len(out)
        if kind == "drop":
            del out[i]
        elif kind == "duplicate":
            out.insert(j, out[i])
        elif kind == "swap":
            out[i], out[j] = out[j], out[i]
        elif kind == "value":  # keep the attribute, change its value: "a=mid:0" -> "a=mid:<text>"
            head, sep, _ = out[i].partition(":") if out[i].startswith("a=") else out[i].partition("=")
            out[i] = head + (sep or "=") + text
        elif kind == "insert":
            out.insert(i, text)
        elif kind == "cut":
            out[i] = out[i][: j % (len(out[i]) + 1)]
        elif kind == "section":  # the media section holding line i, again at the end (same mid and all)
            starts = [k for k, line in enumerate(out) if line.startswith("m=")]
            begin = max((k for k in starts if k <= i), default=None)
            if begin is not None:
                end = min((k for k in starts if k > begin), default=len(out))
                out.extend(out[begin:end])
    return out


steps = st.lists(st.tuples(st.sampled_from(["drop", "duplicate", "swap", "value", "insert", "cut",
                                            "section"]),
                           st.integers(0, 200), st.integers(0, 200), st.text(max_size=40)),
                 min_size=1, max_size=6)


@fuzz(300)
@given(body=st.one_of(st.binary(max_size=3000), st.text(max_size=3000),
                      st.lists(st.from_regex(r"[a-z]=[^\r\n]{0,60}", fullmatch=True), max_size=40)
                      .map(lambda ls: "v=0\r\n" + "\r\n".join(ls) + "\r\n")))
def test_check_offer_refuses_with_one_line_or_returns_text(body: str | bytes) -> None:
    try:
        text = check_offer(body)
    except SdpError as exc:
        message = str(exc)
        assert message and "\n" not in message and len(message) <= 200
        return
    assert isinstance(text, str) and text.lstrip().startswith("v=0")


@fuzz(80)
@given(body=st.one_of(st.binary(max_size=2000), st.text(max_size=2000).map(str.encode),
                      st.lists(st.from_regex(r"[a-z]=[^\r\n]{0,60}", fullmatch=True), max_size=30)
                      .map(lambda ls: ("v=0\r\n" + "\r\n".join(ls) + "\r\n").encode())))
def test_whep_answers_garbage_with_a_4xx(local: Local, headers: dict[str, str], body: bytes) -> None:
    assert_answered_well(local, headers, body)


@fuzz(150)
@given(steps=steps, newline=st.sampled_from(["\r\n", "\n"]))
def test_whep_answers_mutated_offers_with_201_or_a_4xx(local: Local, headers: dict[str, str],
                                                       steps: Any, newline: str) -> None:
    body = newline.join(mutate(LINES, steps)) + newline
    assert_answered_well(local, headers, body.encode())


def test_the_unmutated_offer_is_answered(local: Local, headers: dict[str, str]) -> None:
    r = local.client.post("/whep/cam-test?purpose=public_safety", content=OFFER, headers=headers)
    assert r.status_code == 201, r.text
    assert local.client.delete(r.headers["location"], headers=headers).status_code == 200
