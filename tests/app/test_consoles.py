"""The consoles page in headless Chromium, against the shared relay (real RTSP camera, real engine):

- an administrator creates a camera, loads its anonymized still (logged under "camera configuration"),
  draws a privacy polygon over it and saves; a viewer's delivered video is masked there (pixels checked
  against the scene, as in test_privacy_masks) and shows the scene beside it;
- a viewer's and an auditor's pages offer none of the administrator's actions, and the API refuses them;
- the auditor filters the log, exports it, verifies the chain and runs the access review;
- administrators grant roles under dual control, and check and preview the policy from the page;
- every string of the consoles is in both catalogues, and the language switch rewrites the page.
With CCTV_SCREENSHOTS=<dir>, the views are saved there (the README's screenshots)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from playwright.sync_api import Browser, Page, expect

from policies import files
from policies.models import Camera
from tests.app.conftest import PASSWORD, Relay
from tests.app.test_dashboard import DASHBOARD, axe, catalogue, screenshot
from tests.app.test_dashboard import browser as browser  # the module's fixture: one headless Chromium
from tests.app.test_privacy_masks import BESIDE, INSIDE, POLYGON, likeness, pixels
from tests.app.test_privacy_masks import scene as scene  # the module's fixture: the clip's still scene
from tests.app.whep_client import delete, open_viewer

CAMERA = "cam-console"
SHOWN = 15  # frames in which the scene beside the polygon shows, to check
MAX_FRAMES = 400
ROWS = "#audit-table tbody tr"
TEXTS = "els => els.map(e => e.textContent)"
KEYED = "els => els.map(e => [e.dataset.i18n, e.textContent])"


def console(browser: Browser, relay: Relay, user: str, locale: str = "en-US") -> Page:
    page = browser.new_context(locale=locale, viewport={"width": 1400, "height": 1000},
                               accept_downloads=True).new_page()
    page.goto(relay.base_url + "/console/")
    page.wait_for_selector("body[data-ready=true]")
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click("#sign-in button[type=submit]")
    page.wait_for_function("() => !document.querySelector('#whoami').hidden"
                           " || document.querySelector('#sign-in-error').textContent", timeout=20_000)
    assert page.locator("#whoami").is_visible(), page.locator("#sign-in-error").inner_text()
    return page


def visible_tabs(page: Page) -> list[str]:
    return page.eval_on_selector_all("#tabs .tab", "els => els.filter(e => !e.hidden && e.checkVisibility())"
                                     ".map(e => e.dataset.tab)")


@pytest.fixture
def console_camera(relay: Relay) -> Iterator[str]:
    yield CAMERA
    httpx.delete(f"{relay.base_url}/api/cameras/{CAMERA}", headers=relay.headers("admin"))


def test_admin_draws_a_mask_over_the_still_and_the_video_is_masked_there(
        relay: Relay, rtsp_url: str, browser: Browser, console_camera: str, scene: np.ndarray) -> None:
    mark = relay.audit_mark()
    page = console(browser, relay, "admin")
    try:
        expect(page.locator("#tab-cameras")).to_be_visible()
        # Create the camera from the page; its source is write-only.
        page.click("#cam-new")
        form = page.locator("#cam-form")
        form.locator("input[name=id]").fill(CAMERA)
        form.locator("input[name=name]").fill("Console test street")
        form.locator("input[name=district]").fill("Xinyi")
        form.locator("#cam-purposes input[value=public_safety]").check()
        form.locator("input[name=source_url]").fill(rtsp_url)
        form.locator("select[name=silhouettes]").select_option("colour")
        page.click("#cam-save")
        expect(page.locator("#cam-status")).to_contain_text(CAMERA)
        shown = httpx.get(f"{relay.base_url}/api/cameras/{CAMERA}", headers=relay.headers("admin")).json()
        assert shown["has_source"] and "source_url" not in shown and rtsp_url not in json.dumps(shown)
        expect(page.locator("input[name=source_url]")).to_have_value("")  # never shown back

        # The still, anonymized, then the polygon drawn over it corner by corner.
        page.click("#mask-load")
        expect(page.locator("#mask-canvas")).to_have_attribute("data-still", "loaded", timeout=30_000)
        page.click("#mask-draw")
        box = page.locator("#mask-canvas").bounding_box()
        assert box is not None
        for x, y in [*POLYGON, POLYGON[0]]:  # back on the first corner closes it
            page.mouse.click(box["x"] + x * box["width"], box["y"] + y * box["height"])
        expect(page.locator("#mask-canvas")).to_have_attribute("data-masks", "1")
        screenshot(page, "console-mask-editor")
        page.click("#cam-save")
        expect(page.locator("#cam-status")).to_contain_text(f"Camera {CAMERA} saved")
        with relay.ctx.db.session() as s:
            cam = s.get(Camera, CAMERA)
            assert cam is not None and len(cam.privacy_masks) == 1
            saved = np.array(cam.privacy_masks[0])
            assert cam.source_url == rtsp_url  # kept: the blank field meant "leave it"
            assert cam.silhouettes == "colour"  # chosen at creation, kept through the mask's save
        assert np.abs(saved - np.array(POLYGON)).max() < 0.01, saved
    finally:
        page.context.close()

    stills = relay.audit(after=mark, kind="view.still")
    assert stills and all((e.actor, e.purpose, e.mode) == ("admin", "camera_configuration", "anonymized")
                          for e in stills), stills
    assert any(e.decision == "allow" and e.camera_id == CAMERA for e in stills)

    async def watch() -> None:
        inside, beside = pixels(INSIDE), pixels(BESIDE)
        token = relay.token("operator")
        viewer = await open_viewer(relay.base_url, CAMERA, token=token, purpose="public_safety")
        assert viewer.status == 201, viewer.text
        checked = seen = 0
        try:
            while seen < SHOWN:
                frames = await viewer.frames(25, timeout=60)
                assert frames, f"the video stopped after {checked} frames"
                for frame in frames:
                    checked += 1
                    inner = likeness(frame[inside], scene[inside])
                    assert inner < 0.3, f"frame {checked}: the scene shows inside the polygon ({inner:.2f})"
                    if likeness(frame[beside], scene[beside]) >= 0.8:
                        seen += 1  # not masked whole: the polygon's mask is the one doing it
                assert checked < MAX_FRAMES, f"the scene beside it showed in {seen} of {checked} frames"
        finally:
            await delete(relay.base_url, viewer.location, relay.token("operator"))
            await viewer.close()

    # Playwright's sync API keeps an event loop on this thread: the viewer runs on a loop of its own.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, watch()).result()


def test_viewer_and_auditor_pages_offer_no_admin_action_and_the_api_refuses_them(
        relay: Relay, browser: Browser) -> None:
    for user, tabs in (("viewer", []), ("auditor", ["audit"]), ("approver", ["approvals"]),
                       ("admin", ["cameras", "policy", "users", "approvals"])):
        page = console(browser, relay, user)
        try:
            if tabs:
                expect(page.locator(f"#tab-{tabs[0]}")).to_be_visible()
            else:
                expect(page.locator("#no-console")).to_be_visible()
            assert visible_tabs(page) == tabs, user
            if user != "admin":
                for sel in ("#tab-cameras", "#tab-policy", "#tab-users", "#cam-new", "#user-new",
                            "#file-import"):
                    assert not page.locator(sel).is_visible(), (user, sel)
        finally:
            page.context.close()
    base = relay.base_url
    body = {"id": "cam-x", "name": "x"}
    for user in ("viewer", "auditor", "approver"):
        h = relay.headers(user)
        refused = [
            httpx.get(f"{base}/api/cameras", headers=h),
            httpx.post(f"{base}/api/cameras", headers=h, json=body),
            httpx.get(f"{base}/api/cameras/cam-test/still", headers=h),
            httpx.get(f"{base}/api/users", headers=h),
            httpx.patch(f"{base}/api/users/viewer", headers=h, json={"active": False}),
            httpx.get(f"{base}/api/role-grants", headers=h),
            httpx.get(f"{base}/api/console/policy", headers=h),
            httpx.post(f"{base}/api/console/policy/import", headers=h, json={"yaml": "version: 1\n"}),
            httpx.get(f"{base}/api/console/cameras/cam-test/preview", headers=h),
        ]
        assert [r.status_code for r in refused] == [403] * len(refused), (user, [r.text for r in refused])
    h = relay.headers("viewer")
    assert httpx.get(f"{base}/api/audit/entries", headers=h).status_code == 403
    assert httpx.get(f"{base}/api/console/access-review", headers=h).status_code == 403
    assert httpx.get(f"{base}/api/cameras/cam-test/still").status_code == 401


def test_auditor_filters_exports_verifies_and_reviews(relay: Relay, browser: Browser) -> None:
    relay.token("admin")  # an admin's sign-in in the log to filter for
    page = console(browser, relay, "auditor")
    try:
        expect(page.locator("#audit-table tbody tr").first).to_be_visible()
        page.fill("#audit-filters input[name=actor]", "admin")
        page.select_option("#audit-filters select[name=decision]", "allow")
        page.click("#audit-filters button[type=submit]")
        expect(page.locator("#audit-count")).to_contain_text("of")
        page.wait_for_function(f"""() => {{
          const cells = [...document.querySelectorAll("{ROWS} td:nth-child(4)")];
          return cells.length > 0 && cells.every(c => c.textContent === "admin");
        }}""")
        actors = page.eval_on_selector_all(f"{ROWS} td:nth-child(4)", TEXTS)
        decisions = page.eval_on_selector_all(f"{ROWS} td:nth-child(8)", TEXTS)
        assert actors and set(actors) == {"admin"}, actors
        assert set(decisions) <= {"allowed", ""}, decisions

        with page.expect_download() as download:
            page.click("#audit-export-csv")
        text = download.value.path().read_text(encoding="utf-8")
        rows = text.strip().splitlines()
        assert rows[0].startswith("seq,") and "trailer" in rows[-1], rows[:1] + rows[-1:]
        assert all(",admin," in r for r in rows[1:-1]), rows[1:3]

        page.click("#audit-verify")
        result = page.locator("#audit-verify-result")
        expect(result).to_have_class(re.compile(r"\bok\b"))
        expect(result).to_contain_text("vouches up to seq")
        last = relay.ctx.audit.verify().last_seq
        assert last is not None and int(re.search(r"seq (\d+)", result.inner_text()).group(1)) <= last  # type: ignore[union-attr]

        page.click("#review-run")
        expect(page.locator('#review-table tr[data-user="admin"]')).to_be_visible()
        assert "administer" in page.locator('#review-table tr[data-user="admin"]').inner_text()
        screenshot(page, "console-audit")
    finally:
        page.context.close()
    review = relay.audit(kind="audit.access", actor="auditor")
    assert any(e.reason == "access review" for e in review)


def test_role_grants_wait_for_a_second_admin_who_approves_from_the_page(
        relay: Relay, browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> None:
    policy = tmp_path_factory.mktemp("admin2") / "admin2.yaml"
    policy.write_text("version: 1\nusers:\n  - {username: admin2, roles: [policy_admin], "
                      "password: '${CCTV_TEST_PASSWORD}'}\n")
    files.apply(relay.ctx.db, relay.ctx.audit, files.load(policy), actor="tests",
                hasher=relay.ctx.auth.hash_password)
    page = console(browser, relay, "admin")
    try:
        page.click('#tabs .tab[data-tab="users"]')
        page.click("#user-new")
        form = page.locator("#user-form")
        form.locator("input[name=username]").fill("console-op")
        form.locator("input[name=password]").fill("console operator password")
        form.locator('#user-roles-checks input[value="police_operator"]').check()
        form.locator("button[type=submit]").click()
        expect(page.locator("#user-status")).to_contain_text("second administrator")
        expect(page.locator('#user-table tr[data-user="console-op"] td:nth-child(4)')).not_to_be_empty()
        # Separation of duties: an administrator may not also watch.
        page.click('#user-table tr[data-user="console-op"] button:first-child')
        form.locator('#user-roles-checks input[value="policy_admin"]').check()
        form.locator("button[type=submit]").click()
        expect(page.locator("#user-errors")).to_contain_text("separation of duties")
        screenshot(page, "console-users")
        # The same admin cannot approve their own grant.
        page.click('#tabs .tab[data-tab="approvals"]')
        row = page.locator("#grant-table tbody tr", has_text="console-op")
        row.locator("button.approve").click()
        expect(page.locator("#approvals-status")).to_contain_text("second admin")
    finally:
        page.context.close()
    page = console(browser, relay, "admin2")
    try:
        page.click('#tabs .tab[data-tab="approvals"]')
        page.locator("#grant-table tbody tr", has_text="console-op").locator("button.approve").click()
        expect(page.locator("#approvals-status")).to_have_text("Done.")
    finally:
        page.context.close()
    user = httpx.get(f"{relay.base_url}/api/users/console-op", headers=relay.headers("admin")).json()
    assert user["roles"] == ["police_operator"] and user["pending_roles"] == []


def test_policy_page_checks_a_file_like_the_checker_and_previews_a_camera(relay: Relay,
                                                                          browser: Browser) -> None:
    page = console(browser, relay, "admin")
    try:
        page.click('#tabs .tab[data-tab="policy"]')
        page.select_option("#preview-camera", "cam-test")
        table = page.locator("#preview-table")
        expect(table).to_contain_text("police-anonymized")
        expect(table).to_contain_text("operator")  # the people holding the rule's roles
        # disaster response: granted by a rule, not approved for this camera
        expect(table).to_contain_text("not approved for this camera")
        # A purpose with a bad id: the API's problem is shown by field; a role change that would grant
        # viewing to the people holding it without a second admin: refused, with the reason.
        page.click("#purpose-new")
        form = page.locator("#purpose-form")
        form.locator("input[name=id]").fill("bad id!")
        form.locator("input[name=label]").fill("Bad")
        form.locator("button[type=submit]").click()
        expect(form.locator(".problems")).to_contain_text("id: String should match pattern")
        form.locator("input[name=id]").fill("console_form")
        form.locator("input[name=label_zh]").fill("主控台測試")
        form.locator("button[type=submit]").click()
        expect(page.locator('#purpose-table tr[data-purpose="console_form"]')).to_contain_text("主控台測試")
        page.locator('#role-table tr[data-role="auditor"] button:first-child').click()
        role = page.locator("#role-form")
        role.locator("input[name=can_view]").check()
        role.locator("button[type=submit]").click()
        expect(role.locator(".problems")).to_contain_text("without a second admin")
        role.locator("button.cancel").click()
        page.click("#file-export")
        expect(page.locator("#policy-text")).to_have_value(re.compile(r"rules:"))
        bad = ("version: 1\nrules:\n  - id: broken\n    roles: [no_such_role]\n    camera_ids: ['*']\n"
               "    purposes: []\n")
        page.fill("#policy-text", bad)
        page.click("#file-check")
        problems = page.locator("#file-problems li")
        expect(problems.first).to_be_visible()
        lines = problems.all_inner_texts()
        assert any(re.match(r"uploaded\.yaml:\d+: rules\[0\]\.purposes: ", x) for x in lines), lines
        good = "version: 1\npurposes:\n  - {id: console_check, label: Console check}\n"
        page.fill("#policy-text", good)
        page.click("#file-import")
        expect(page.locator("#file-status")).to_contain_text("1 change")
        screenshot(page, "console-policy")
    finally:
        page.context.close()
    r = httpx.get(f"{relay.base_url}/api/purposes/console_check", headers=relay.headers("admin"))
    assert r.status_code == 200
    for purpose in ("console_check", "console_form"):
        httpx.delete(f"{relay.base_url}/api/purposes/{purpose}", headers=relay.headers("admin"))


def test_every_console_string_is_in_both_languages_and_the_switch_rewrites_it(relay: Relay,
                                                                             browser: Browser) -> None:
    zh, en = catalogue("zh-TW"), catalogue("en")
    text = (DASHBOARD / "console.js").read_text() + (DASHBOARD / "console.html").read_text()
    used = set(re.findall(r'"((?:con|dash|raw|mode|filter|common|layout)\.[a-z_0-9]+)"', text))
    used |= {f"con.grant_{s}" for s in ("pending", "approved", "denied", "expired", "cancelled")}
    used |= {f"con.right_can_{r}" for r in ("view", "request_raw", "approve_raw", "admin", "audit")}
    used |= {f"con.decision_{d}" for d in ("allow", "deny")}
    assert not used - zh.keys() and not used - en.keys(), sorted(used - (zh.keys() & en.keys()))
    page = console(browser, relay, "admin", locale="zh-TW")
    try:
        expect(page.locator("html")).to_have_attribute("lang", "zh-TW")
        before = page.eval_on_selector_all("[data-i18n]", KEYED)
        assert all(zh[k] == v for k, v in before), [x for x in before if zh[x[0]] != x[1]]
        page.select_option("#lang", "en")
        expect(page.locator("html")).to_have_attribute("lang", "en")
        after = page.eval_on_selector_all("[data-i18n]", KEYED)
        assert all(en[k] == v for k, v in after), [x for x in after if en[x[0]] != x[1]]
        screenshot(page, "console-cameras")
    finally:
        page.context.close()


def test_mask_editor_moves_and_deletes_polygons_and_cameras_are_searched_and_toggled(
        relay: Relay, browser: Browser) -> None:
    page = console(browser, relay, "admin")
    try:
        page.fill("#cam-search", "disabled")
        expect(page.locator("#cam-table tbody tr")).to_have_count(1)
        row = page.locator('#cam-table tr[data-camera="cam-disabled"]')
        row.locator("button.toggle").click()  # enable
        expect(row.locator(".badge")).to_have_text("enabled")
        row.locator("button.toggle").click()  # and disable again
        expect(row.locator(".badge")).to_have_text("disabled")
        row.locator("button.edit").click()
        canvas = page.locator("#mask-canvas")
        page.evaluate("document.querySelector('#mask-fieldset').scrollIntoView()")  # tools and picture shown

        def at(x: float, y: float) -> tuple[float, float]:
            box = canvas.bounding_box()
            assert box is not None
            return box["x"] + x * box["width"], box["y"] + y * box["height"]

        for square in ([(0.1, 0.1), (0.3, 0.1), (0.3, 0.3), (0.1, 0.3)],
                       [(0.6, 0.6), (0.8, 0.6), (0.8, 0.8), (0.6, 0.8)]):
            page.click("#mask-draw")
            for x, y in square:
                page.mouse.click(*at(x, y))
            page.click("#mask-finish")
        expect(canvas).to_have_attribute("data-masks", "2")
        # Drag the first square by its middle 0.2 to the right, then one corner of it further out.
        page.mouse.move(*at(0.2, 0.2))
        page.mouse.down()
        page.mouse.move(*at(0.3, 0.2), steps=4)
        page.mouse.move(*at(0.4, 0.2), steps=4)
        page.mouse.up()
        page.mouse.move(*at(0.5, 0.3))
        page.mouse.down()
        page.mouse.move(*at(0.55, 0.4), steps=4)
        page.mouse.up()
        masks = page.evaluate("state.masks.value()")
        moved = [(0.3, 0.1), (0.5, 0.1), (0.55, 0.4), (0.3, 0.3)]
        assert np.abs(np.array(masks[0]) - np.array(moved)).max() < 0.01, masks
        # Select the second one and delete it with the key.
        page.mouse.click(*at(0.7, 0.7))
        page.keyboard.press("Delete")
        expect(canvas).to_have_attribute("data-masks", "1")
        assert len(page.evaluate("state.masks.value()")[0]) == 4
        page.click("#cam-cancel")
    finally:
        page.context.close()
    with relay.ctx.db.session() as s:
        cam = s.get(Camera, "cam-disabled")
        assert cam is not None and not cam.enabled and cam.privacy_masks == []  # cancelled: nothing saved


def test_approver_approves_a_raw_view_request_from_the_page(relay: Relay, browser: Browser) -> None:
    asked = httpx.post(f"{relay.base_url}/api/raw-requests", headers=relay.headers("investigator"),
                       json={"camera_id": "cam-test", "purpose": "criminal_investigation",
                             "case_ref": "TPE-CONSOLE-0001", "justification": "robbery at the corner"})
    assert asked.status_code == 201, asked.text
    request_id = asked.json()["id"]
    page = console(browser, relay, "approver")
    try:
        row = page.locator(f'#raw-table tr[data-request="{request_id}"]')
        expect(row).to_contain_text("TPE-CONSOLE-0001")
        row.locator("button.approve").click()
        expect(page.locator("#approvals-status")).to_have_text("Done.")
        expect(row).to_have_count(0)  # no longer pending
    finally:
        page.context.close()
    got = httpx.get(f"{relay.base_url}/api/raw-requests/{request_id}", headers=relay.headers("approver"))
    got = got.json()
    assert got["status"] == "approved" and got["approver"] == "approver"
    httpx.post(f"{relay.base_url}/api/raw-requests/{request_id}/revoke", headers=relay.headers("approver"),
               json={"reason": "test over"})


def test_live_view_sends_administrators_to_the_consoles_and_the_consoles_pass_axe(relay: Relay,
                                                                                  browser: Browser) -> None:
    page = browser.new_context(locale="en-US").new_page()
    try:
        page.goto(relay.base_url + "/")
        page.fill("#username", "admin")
        page.fill("#password", PASSWORD)
        page.click("#sign-in button[type=submit]")
        expect(page.locator("#to-console")).to_be_visible(timeout=20_000)
        expect(page.locator("#cameras-empty")).to_have_text(
            "Your roles include no live video; use the consoles.")
        page.click("#to-console")
        expect(page.locator("#tab-cameras")).to_be_visible()  # the same sign-in carries over
        assert axe(page) == [], "cameras"
        page.locator('#cam-table tr[data-camera="cam-test"] button.edit').click()
        assert axe(page) == [], "camera editor"
        for tab in ("policy", "users", "approvals"):
            page.click(f'#tabs .tab[data-tab="{tab}"]')
            expect(page.locator(f"#tab-{tab}")).to_be_visible()
            assert axe(page) == [], tab
    finally:
        page.context.close()
    page = console(browser, relay, "auditor", locale="zh-TW")
    try:
        expect(page.locator("#audit-table tbody tr").first).to_be_visible()
        assert axe(page) == [], "access log"
    finally:
        page.context.close()


# --- the consoles' API, without a browser ----------------------------------------------------------------

def test_still_of_an_unknown_camera_is_refused_and_logged_and_stills_are_bounded(relay: Relay) -> None:
    mark = relay.audit_mark()
    h = relay.headers("admin")
    r = httpx.get(f"{relay.base_url}/api/cameras/cam-disabled/still", headers=h)
    assert r.status_code == 404, r.text
    denied = relay.audit(after=mark, kind="view.still")
    assert [(e.camera_id, e.purpose, e.decision) for e in denied] == [("cam-disabled", "camera_configuration",
                                                                      "deny")]
    # Four stills at once wait on the camera; a fifth is refused at once (429), and none is a 500.
    async def many() -> list[int]:
        async with httpx.AsyncClient(base_url=relay.base_url, headers=h, timeout=60) as client:
            answers = await asyncio.gather(*(client.get("/api/cameras/cam-test/still") for _ in range(6)))
        return [a.status_code for a in answers]

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        statuses = pool.submit(asyncio.run, many()).result()
    assert statuses.count(200) >= 1 and statuses.count(429) >= 1 and set(statuses) <= {200, 429}, statuses


def test_policy_import_refuses_users_and_check_speaks_like_the_checker(relay: Relay) -> None:
    h = relay.headers("admin")
    users = "version: 1\nusers:\n  - {username: sneaky, roles: [police_operator]}\n"
    r = httpx.post(f"{relay.base_url}/api/console/policy/import", headers=h, json={"yaml": users})
    assert r.status_code == 400 and "Users page" in r.json()["detail"], r.text
    assert httpx.get(f"{relay.base_url}/api/users/sneaky", headers=h).status_code == 404
    bad = "version: 1\npurposes:\n  - id: ok_one\n    label: Fine\n  - id: 'not ok'\n    label: Bad\n"
    r = httpx.post(f"{relay.base_url}/api/console/policy/check", headers=h, json={"yaml": bad})
    assert r.status_code == 200 and r.json()["ok"] is False
    assert any(p.startswith("uploaded.yaml:5: purposes[1].id: ") for p in r.json()["problems"]), r.json()
    r = httpx.post(f"{relay.base_url}/api/console/policy/check", headers=h, json={"yaml": "a: [\n"})
    assert r.json()["ok"] is False and r.json()["problems"][0].startswith("uploaded.yaml:"), r.json()
    # The exported file carries no credentials (as `cctv-relay policy export`).
    cam = {"id": "cam-secret", "name": "With credentials", "source_url": "rtsp://cam:s3cr3t-pw@10.0.0.9/live",
           "source_password": "an0ther-s3cret"}
    assert httpx.post(f"{relay.base_url}/api/cameras", headers=h, json=cam).status_code == 201
    try:
        exported = httpx.get(f"{relay.base_url}/api/console/policy", headers=h)
    finally:
        httpx.delete(f"{relay.base_url}/api/cameras/cam-secret", headers=h)
    assert exported.status_code == 200 and "id: cam-secret" in exported.text, exported.text[:200]
    assert "s3cr3t" not in exported.text and "an0ther" not in exported.text


def test_access_review_flags_accounts_unused_for_90_days(relay: Relay) -> None:
    import datetime as dt

    from policies.models import User

    policy_user = "version: 1\nusers:\n  - {username: dormant, roles: [dashboard_viewer]}\n"
    files.apply(relay.ctx.db, relay.ctx.audit, files.load_text(policy_user), actor="tests")
    with relay.ctx.db.session() as s:
        user = s.query(User).filter_by(username="dormant").one()
        user.created_at = dt.datetime.now(dt.UTC) - dt.timedelta(days=120)
    r = httpx.get(f"{relay.base_url}/api/console/access-review", headers=relay.headers("auditor"))
    assert r.status_code == 200, r.text
    people = {u["username"]: u for u in r.json()["users"]}
    assert people["dormant"]["inactive"] is True and people["dormant"]["last_sign_in"] is None
    assert people["auditor"]["inactive"] is False and people["auditor"]["last_sign_in"] is not None
    assert people["dormant"]["rights"] == ["view"]
    r = httpx.get(f"{relay.base_url}/api/console/access-review", params={"inactive_days": 0},
                  headers=relay.headers("auditor"))
    assert r.status_code == 422
