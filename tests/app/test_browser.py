"""The dashboard in a real browser (Debian's Chromium, headless, driven by Playwright): sign in, play a
camera over WHEP, read the pixels the browser shows, and see the faces masked and the video advance;
a tile whose camera an admin changes opens the view again by itself; a refused raw request shows the
policy's reason; closing the tile ends the session."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
from playwright.sync_api import Locator, Page, expect, sync_playwright

from tests.app.conftest import CAMERA, PASSWORD, Relay
from tests.app.faces import FaceProbe

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns", "--autoplay-policy=no-user-gesture-required",
]
TILE = f'.tile[data-camera="{CAMERA}"]'

GRAB = """(sel) => {
  const v = document.querySelector(sel);
  const c = document.createElement("canvas");
  c.width = v.videoWidth; c.height = v.videoHeight;
  c.getContext("2d").drawImage(v, 0, 0);
  return { t: v.currentTime, w: v.videoWidth, h: v.videoHeight, png: c.toDataURL("image/png") };
}"""


def grab(page: Page) -> tuple[float, np.ndarray]:
    shot = page.evaluate(GRAB, f"{TILE} video")
    data = base64.b64decode(shot["png"].split(",", 1)[1])
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[:2] == (shot["h"], shot["w"])
    return float(shot["t"]), img


def sign_in(page: Page, username: str, *, sees_cameras: bool = True) -> None:
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("#sign-in button[type=submit]")
    if sees_cameras:
        page.wait_for_selector(f'#cameras li.camera[data-camera="{CAMERA}"]', timeout=20_000)
    else:
        page.wait_for_selector("#whoami:not([hidden])", timeout=20_000)


Masks = list[list[list[float]]]


def set_privacy_masks(relay: Relay, source_url: str, masks: Masks) -> Masks:
    """Set the camera's static masks through the admin API, as the policy admin; returns the old ones. (The
    API never returns a source URL, so the camera's is given again.)"""
    url = f"{relay.base_url}/api/cameras/{CAMERA}"
    body = httpx.get(url, headers=relay.headers("admin")).raise_for_status().json()
    old = body["privacy_masks"]
    body = {k: v for k, v in body.items() if k not in ("has_credentials", "has_source")}
    body |= {"privacy_masks": masks, "source_url": source_url}
    httpx.put(url, json=body, headers=relay.headers("admin")).raise_for_status()
    return old


def play_raw_as_investigator(page: Page) -> Locator:
    """Sign in as the investigator and ask to play the camera raw for case TPE-2026-0777; its list row."""
    page.click("#sign-out")
    sign_in(page, "investigator")
    row = page.locator(f'#cameras li.camera[data-camera="{CAMERA}"]')
    page.locator("#layout-mode").select_option("raw")  # mode, purpose and case are the layout's
    page.locator("#layout-case-ref").fill("TPE-2026-0777")
    row.locator(".play").click()
    return row


def test_dashboard_plays_masked_video_in_chromium(relay: Relay, rtsp_url: str, faces: FaceProbe,
                                                  tmp_path: Path) -> None:
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            locale="en-US")  # the dashboard speaks the browser's language; these checks read English
        try:
            page = browser.new_page()
            page.goto(relay.base_url + "/")
            # A wrong password: a clear message, no camera list.
            page.fill("#username", "operator")
            page.fill("#password", "not the password")
            page.click("#sign-in button[type=submit]")
            expect(page.locator("#sign-in-error")).not_to_have_text("", timeout=10_000)
            assert page.is_hidden("#cameras-panel")

            sign_in(page, "operator")
            row = page.locator(f'#cameras li.camera[data-camera="{CAMERA}"]')
            assert "criminal_investigation" not in page.locator("#layout-purpose").inner_html()
            page.locator("#layout-purpose").select_option("traffic_management")  # the layout's purpose
            row.locator(".play").click()
            page.wait_for_selector(f'{TILE}[data-state="playing"]', timeout=60_000)
            tile = page.locator(TILE)
            assert tile.locator(".tile-mode").inner_text() == "anonymized"
            assert tile.locator(".tile-purpose").get_attribute("data-purpose") == "traffic_management"
            assert tile.locator(".tile-purpose").inner_text() == "Traffic management"  # its English name

            shots = []
            for _ in range(12):
                shots.append(grab(page))
                time.sleep(0.25)
            times = [t for t, _ in shots]
            images = [img for _, img in shots]
            assert times[-1] > times[0], "the video does not advance"
            assert images[0].shape == (360, 640, 3)
            assert float(np.abs(images[0].astype(int) - images[-1].astype(int)).mean()) > 1.0
            worst = max(max(faces.scores(img)) for img in images)
            assert worst < 0.5, f"the browser showed a recognizable face (match {worst:.2f})"

            # An admin changes the camera's privacy masks: its stream restarts and the session ends; the
            # tile opens the view again by itself (asked of the policy again, logged as a new view).
            first = relay.running_sessions()
            original = set_privacy_masks(relay, rtsp_url, [[[0.0, 0.0], [0.1, 0.0], [0.1, 0.1]]])
            try:
                deadline = time.monotonic() + 30
                while not (relay.running_sessions() - first) and time.monotonic() < deadline:
                    time.sleep(0.2)
                (again,) = relay.running_sessions() - first
                page.wait_for_selector(f'{TILE}[data-state="playing"]', timeout=60_000)
                assert not (first & relay.running_sessions()), "the first session did not end"
                assert [e for e in relay.audit(kind="view.start", actor="operator")
                        if e.details.get("session_id") == again]
                t0 = grab(page)[0]
                time.sleep(1.0)
                assert grab(page)[0] > t0, "the reopened view does not advance"
            finally:
                set_privacy_masks(relay, rtsp_url, original)

            # Closing the tile ends the session (DELETE), and the log says so.
            sessions_before = relay.running_sessions()
            assert len(sessions_before) >= 1
            tile.locator(".close").click()
            for session_id in sessions_before:
                relay.wait_session_closed(session_id)
            ends = [e for e in relay.audit(kind="view.end", actor="operator")
                    if e.details.get("session_id") in sessions_before]
            assert ends and ends[0].reason == "viewer ended the session"

            # An investigator asking for raw without an approved request sees the policy's refusal.
            row = play_raw_as_investigator(page)
            page.wait_for_selector(f'{TILE}[data-state="denied"]', timeout=20_000)
            message = page.locator(f"{TILE} .message").inner_text()
            assert message.startswith("Access denied:") and len(message) > len("Access denied: ")
            assert page.locator(f"{TILE} .tile-mode").inner_text() == "raw"
            page.locator(f"{TILE} .close").click()

            # Dual control in the dashboard: the investigator asks, the duty supervisor approves...
            page.on("dialog", lambda dialog: dialog.accept("suspect seen at this crossing"))
            row.locator(".ask").click()
            pending = page.locator("#raw-requests tbody tr", has_text="TPE-2026-0777")
            expect(pending).to_contain_text("pending", timeout=10_000)
            page.click("#sign-out")
            sign_in(page, "approver", sees_cameras=False)
            assert "no live video" in page.locator("#cameras-empty").inner_text()
            request = page.locator("#raw-requests tbody tr", has_text="TPE-2026-0777")
            request.get_by_role("button", name="Approve 30 min").click()
            expect(request).to_contain_text("approved", timeout=10_000)
            # ...and now the same raw request plays, faces visible, marked raw.
            play_raw_as_investigator(page)
            page.wait_for_selector(f'{TILE}[data-state="playing"]', timeout=60_000)
            assert page.locator(f"{TILE} .tile-mode").inner_text() == "raw"
            time.sleep(1.5)
            raw_scores = [max(faces.scores(grab(page)[1])) for _ in range(3)]
            assert max(raw_scores) >= 0.6, raw_scores
            # Revoked while on screen: the tile stops and says why.
            approver = relay.ctx.auth.authenticate(relay.token("approver"))
            (req,) = [r for r in relay.ctx.service.list_raw(approver) if r["case_ref"] == "TPE-2026-0777"]
            relay.ctx.service.revoke_raw(approver, req["id"], "case closed")
            expect(page.locator(f"{TILE} .message")).to_contain_text("authorization ended", timeout=10_000)
            assert page.locator(TILE).get_attribute("data-state") == "ended"
        finally:
            browser.close()
