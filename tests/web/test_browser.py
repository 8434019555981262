"""The dashboard in Debian's Chromium (Playwright): every role signs in, the filters work, a
ward opens, a CSV downloads, a live update arrives after an upload, the network view on nominal
and group pages draws and works from the keyboard, axe finds no serious or critical
accessibility violations, and no request leaves the machine. Screenshots of every page are
kept in test-artefacts/screenshots/."""

from __future__ import annotations

import csv
import io
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from placeharm.config import load_settings
from placeharm.services import auth, policy
from placeharm.services.policy import User
from placeharm.web.app import create_app

from .conftest import ROLES

CHROMIUM = os.environ.get("PLACEHARM_CHROMIUM", "/usr/lib/chromium/chromium")
SHOTS = Path(os.environ.get("PLACEHARM_TEST_ARTEFACTS", "test-artefacts")) / "screenshots"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WARD = "E05001111"
NOMINAL = "DEMO-N000001"  # an OCG principal with family and exploitation links
GROUP = "DEMO-G001"  # its group: more than 40 people within two links, so the cap bites

playwright = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"Chromium not found at {CHROMIUM}: .ci/run installs it")
    pytest.skip(f"Chromium not installed at {CHROMIUM}", allow_module_level=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(web_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    drop = tmp_path_factory.mktemp("drop")
    config = uvicorn.Config(
        create_app(load_settings(db=web_db), drop),
        host="127.0.0.1",
        port=port,
        log_level="warning",
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "the server did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Visit:
    """A signed-in page that refuses (and records) every request off this machine."""

    def __init__(self, browser: object, base: str, role: str) -> None:
        self.base = base
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.context = browser.new_context(
            viewport={"width": 1280, "height": 900},  # type: ignore[attr-defined]
            accept_downloads=True,
        )
        self.page = self.context.new_page()
        self.page.route("**/*", self._route)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.goto(f"{base}/login")
        self.page.fill("#username", role)
        self.page.fill("#password", f"{role}{auth.DEMO_PASSWORD_SUFFIX}")
        self.page.click("form.login button[type=submit]")
        self.page.wait_for_url(f"{base}/audit*" if role == "auditor" else f"{base}/overview*")
        # as a user would on the justification form; a script sends the page's CSRF token
        token = self.page.get_attribute('meta[name="csrf-token"]', "content")
        name, role_of = auth.DEMO_USERS[role]
        for purpose in policy.purposes(User(role, name, role_of)):
            stated = self.context.request.post(
                f"{base}/api/justification",
                form={"purpose": purpose, "reason": "investigation", "text": "browser test"},
                headers={"Origin": base, "X-CSRF-Token": token or ""},
            )
            assert stated.status == 200, stated.text()

    def _route(self, route: object) -> None:
        url = route.request.url  # type: ignore[attr-defined]
        if url.startswith(self.base):
            route.continue_()  # type: ignore[attr-defined]
        else:
            self.outside.append(url)
            route.abort()  # type: ignore[attr-defined]

    def open(self, path: str, shot: str) -> None:
        self.page.goto(self.base + path)
        self.page.wait_for_load_state("networkidle")
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{shot}.png"), full_page=True)

    def axe(self) -> list[dict]:
        from axe_playwright_python.sync_playwright import Axe

        results = Axe().run(self.page)
        return [
            v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")
        ]

    def close(self) -> None:
        assert not self.outside, f"requests left the machine: {self.outside}"
        assert not self.errors, f"browser errors: {self.errors}"
        self.context.close()


def _wait_until(condition: object, seconds: float) -> None:
    """Poll from Python: the pages' CSP forbids the string evaluation wait_for_function uses."""
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {seconds} s")
        time.sleep(0.02)


@pytest.mark.parametrize("role", ROLES)
def test_every_role_signs_in_and_pages_are_accessible(server: str, browser: object, role: str):
    visit = Visit(browser, server, role)
    pages = {
        "overview": "/overview",
        "ward": f"/ward/{WARD}",
        "chb": "/chb/DEMO-CHB1",
        "records": "/records?kind=crimes",
        "help": "/help",
        "hotspots": "/hotspots",  # issue 16
    }
    if role == "auditor":  # the audit log and help only
        pages = {"audit": "/audit", "help": "/help"}
    if role in ("officer", "analyst", "supervisor", "admin"):
        pages["nominals"] = "/records?kind=nominals"
        pages["nominal"] = f"/nominal/{NOMINAL}"
    if role not in ("partner", "auditor"):
        pages["group"] = f"/group/{GROUP}"
    if role == "admin":
        pages["admin"] = "/admin"
    for name, path in pages.items():
        visit.open(path, f"{role}-{name}")
        assert "OFFICIAL-SENSITIVE" in visit.page.inner_text("body")
        assert "DEMO DATA" in visit.page.inner_text("body")
        violations = visit.axe()
        assert not violations, (role, name, [(v["id"], v["help"]) for v in violations])
    visit.close()


def test_network_draws_and_works_from_the_keyboard(server: str, browser: object):
    visit = Visit(browser, server, "analyst")
    page = visit.page
    visit.open(f"/nominal/{NOMINAL}", "analyst-nominal-network-page")
    drawing = page.locator("svg.network-svg")
    assert drawing.count() == 1 and drawing.is_visible()
    nodes = page.locator("svg.network-svg a.node")
    rows = page.locator("#network-edges tbody tr")
    assert nodes.count() >= 2 and rows.count() >= nodes.count()
    assert page.locator("svg.network-svg path.edge-exploitation").count() >= 1
    page.locator(".network-wrap").screenshot(path=str(SHOTS / "analyst-nominal-network.png"))
    # Tab from the drawing's scroll region reaches the first node; Enter opens its page
    page.locator(".network-wrap").focus()
    page.keyboard.press("Tab")
    first = nodes.first
    assert page.locator("svg.network-svg a.node:focus").count() == 1
    label = first.get_attribute("aria-label") or ""
    target = first.get_attribute("href") or ""
    assert label.startswith(("Nominal ", "Group ")) and target
    page.locator(".network-wrap").screenshot(path=str(SHOTS / "analyst-nominal-network-focus.png"))
    page.keyboard.press("Enter")
    page.wait_for_url(f"**{target}")
    page.wait_for_load_state("networkidle")
    assert page.locator("svg.network-svg").count() == 1
    visit.open(f"/group/{GROUP}", "analyst-group-network-page")
    assert "Capped: showing 40 of the" in page.inner_text("#network-cap")
    page.locator(".network-wrap").screenshot(path=str(SHOTS / "analyst-group-network.png"))
    assert not visit.axe()
    visit.close()
    officer = Visit(browser, server, "officer")
    officer.open(f"/nominal/{NOMINAL}", "officer-nominal-network-page")
    assert officer.page.locator("svg.network-svg path.edge-exploitation").count() == 0
    officer.page.locator(".network-wrap").screenshot(
        path=str(SHOTS / "officer-nominal-network.png")
    )
    officer.close()


def test_filters_ward_and_csv_export(server: str, browser: object):
    visit = Visit(browser, server, "analyst")
    page = visit.page
    visit.open("/overview", "analyst-overview-default")
    page.fill("input[name=from]", "2021-12")
    page.fill("input[name=to]", "2022-02")
    page.click("details.more-filters summary")  # measures and crime types
    page.uncheck("input[name=measures][value=cannabis_farms]")
    page.uncheck("input[name=types][value='Anti-social behaviour']")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**/overview?*from=2021-12*")
    main = page.inner_text("main")
    assert "2021-12 to 2022-02" in main and "from 8 of 9 measures" in main
    page.screenshot(path=str(SHOTS / "analyst-overview-narrowed.png"), full_page=False)
    page.click(f"#ranking a[href^='/ward/{WARD}']")
    page.wait_for_url(f"**/ward/{WARD}*")
    page.wait_for_load_state("networkidle")
    assert "from=2021-12" in page.url  # the filters travel with the link
    assert "measures=" in page.url and "types=" in page.url
    assert page.is_checked("input[name=types][value=Drugs]")
    assert not page.is_checked("input[name=types][value='Anti-social behaviour']")
    page.screenshot(path=str(SHOTS / "analyst-ward-filtered.png"), full_page=True)
    assert page.locator("#map canvas").count() == 1  # the map drew, offline
    visit.open("/records?kind=intelligence", "analyst-records-intelligence")
    with page.expect_download() as download:
        page.click("a:has-text('as CSV')")  # "Export all N as CSV" (issue 15)
    saved = Path(download.value.path())
    text = saved.read_text()
    assert text.startswith("# OFFICIAL-SENSITIVE") and "intel_id" in text
    said = page.inner_text("a:has-text('as CSV')")
    rows = len(list(csv.reader(io.StringIO(text)))) - 2  # the marking line and the header
    assert said == f"Export all {rows:,} as CSV"  # every matching row, as the page says
    visit.close()


def test_live_update_arrives_after_an_upload(server: str, browser: object):
    watcher = Visit(browser, server, "officer")
    visit_admin = Visit(browser, server, "admin")
    watcher.open("/overview", "officer-overview-before-upload")
    _wait_until(lambda: "Live" in watcher.page.inner_text("#live-status"), 10)
    before = watcher.page.inner_text("#as-of")
    visit_admin.open("/admin", "admin-upload-form")
    # a file name with markup: the result must show it as text, never as HTML
    upload = Path(str(SHOTS.parent / "upload-<img src=x>.csv"))
    upload.write_text(
        "group_id,group_type,name,synthetic\nLIVE-G1,OCG,Live upload test group,true\n"
    )
    visit_admin.page.select_option("select[name=kind]", "groups")
    visit_admin.page.set_input_files("input[name=file]", str(upload))
    started = time.perf_counter()
    visit_admin.page.click("#upload button[type=submit]")
    visit_admin.page.wait_for_selector("#upload-result p", timeout=10_000)
    assert "inserted 1" in visit_admin.page.inner_text("#upload-result")
    assert visit_admin.page.locator("#upload-result img").count() == 0
    assert "<img src=x>" in visit_admin.page.inner_text("#upload-result")
    _wait_until(lambda: watcher.page.inner_text("#as-of") != before, 5)
    elapsed = time.perf_counter() - started
    watcher.page.screenshot(path=str(SHOTS / "officer-overview-after-upload.png"))
    assert elapsed < 3, f"the update took {elapsed:.2f} s to arrive"
    watcher.close()
    visit_admin.close()


@pytest.fixture(scope="module")
def tiled_server(web_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second server whose base map is a local PMTiles archive (pale blue at zoom 0, pale
    green at zoom 1: the colours show in the screenshot where no polygon covers them). Its
    bounds, as an extract cut for a force would have, keep MapLibre from asking for tiles
    east of Greenwich, which the archive does not hold."""
    from .tiles import png, write_pmtiles

    path = tmp_path_factory.mktemp("tiles") / "base.pmtiles"
    write_pmtiles(
        path,
        {(0, 0, 0): png((166, 206, 227)), (1, 0, 0): png((178, 223, 138))},
        bounds=(-8.0, 49.0, -0.5, 61.0),
    )
    port = _free_port()
    config = uvicorn.Config(
        create_app(load_settings(db=web_db, pmtiles=path)),
        host="127.0.0.1",
        port=port,
        log_level="warning",
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "the server did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


def test_maps_draw_the_local_pmtiles_base_map(tiled_server: str, browser: object):
    visit = Visit(browser, tiled_server, "analyst")
    tiles: list[tuple[str, int]] = []
    visit.page.on(
        "response",
        lambda r: tiles.append((r.url, r.status)) if "/tiles/" in r.url else None,
    )
    visit.open("/overview", "analyst-overview-pmtiles")
    _wait_until(lambda: any(status == 200 for _, status in tiles), 10)
    assert all(url.startswith(f"{tiled_server}/tiles/") for url, _ in tiles)
    assert (f"{tiled_server}/tiles/1/0/0", 200) in tiles  # Northumbria is in the NW quarter
    visit.page.wait_for_timeout(500)  # let the tile fade in before the screenshot
    visit.page.locator("#map").screenshot(path=str(SHOTS / "analyst-overview-pmtiles-map.png"))
    visit.page.screenshot(path=str(SHOTS / "analyst-overview-pmtiles.png"), full_page=True)
    tiles.clear()
    visit.open(f"/ward/{WARD}", "analyst-ward-pmtiles")
    _wait_until(lambda: any(status == 200 for _, status in tiles), 10)
    visit.page.wait_for_timeout(500)
    visit.page.locator("#map").screenshot(path=str(SHOTS / "analyst-ward-pmtiles-map.png"))
    violations = visit.axe()
    assert not violations, [(v["id"], v["help"]) for v in violations]
    visit.close()  # no request left the machine, no browser errors


def test_radius_search_draws_and_links_map_and_table(server: str, browser: object):
    visit = Visit(browser, server, "analyst")
    page = visit.page
    visit.open("/radius", "analyst-radius-form")
    page.fill("input[name=lat]", "54.9783")
    page.fill("input[name=lon]", "-1.6178")
    page.fill("input[name=radius_m]", "300")
    page.click("form.radius-form button[type=submit]")
    page.wait_for_url("**/radius?*lat=54.9783*")
    page.wait_for_load_state("networkidle")
    assert page.locator("#map canvas").count() == 1  # the map drew, offline
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / "analyst-radius.png"), full_page=False)
    # "Show" in the table opens the record's details on the map and marks its row
    address_id = page.locator("#row-addresses-0 th").inner_text()
    page.locator("#row-addresses-0 button.locate").click()
    popup = page.locator(".maplibregl-popup .radius-popup")
    popup.wait_for(timeout=5_000)
    assert f"Address {address_id}" in popup.inner_text()
    assert popup.locator("a[href^='/nominal/']").count() >= 1
    assert page.locator("#row-addresses-0.selected").count() == 1
    page.locator("#map").screenshot(path=str(SHOTS / "analyst-radius-popup.png"))
    violations = visit.axe()
    assert not violations, [(v["id"], v["help"]) for v in violations]
    visit.close()  # no request left the machine, no browser errors


def test_ward_map_point_details_from_keyboard_and_click_and_a_layer_switch(
    server: str, browser: object
):
    """Issue 15: from the map's link to the list of points, the keyboard opens a crime point's
    details on the map (street, crimes, month, type, outcome); a click on the same point opens
    them too; switching the crimes layer off leaves nothing of it to click."""
    visit = Visit(browser, server, "officer")
    page = visit.page
    visit.open(f"/ward/{WARD}?from=2021-11&to=2022-03", "officer-ward-map")
    assert page.locator("#map canvas").count() == 1
    page.focus("#main a[href='#points-list']")
    page.keyboard.press("Enter")
    page.locator("#points-list summary").first.focus()
    page.keyboard.press("Enter")  # opens the police.uk crimes list
    row = page.locator("#pt-crimes-0")
    street = row.locator("td").first.inner_text()
    assert street.startswith("On or near ")
    row.locator("button.show-point").focus()
    page.keyboard.press("Enter")
    popup = page.locator(".maplibregl-popup")
    _wait_until(lambda: popup.count() == 1, 10)
    text = popup.inner_text()
    assert "police.uk crimes" in text and street in text and "Latest outcomes" in text
    assert "2022-" in text or "2021-" in text  # its lines: month, type, outcome
    assert "selected" in (row.get_attribute("class") or "")
    page.wait_for_timeout(800)  # the map has eased to the point: 100 px above its centre
    page.locator("#map").screenshot(path=str(SHOTS / "officer-ward-map-details.png"))
    assert not visit.axe()
    page.locator(".maplibregl-popup-close-button").click()
    box = page.locator("#map").bounding_box()
    assert box is not None
    centre = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2 - 100)
    page.mouse.click(*centre)
    _wait_until(lambda: popup.count() == 1, 10)
    assert street in popup.inner_text()
    page.locator(".maplibregl-popup-close-button").click()
    page.uncheck("input[data-layer=crimes]")
    page.wait_for_timeout(300)
    page.mouse.click(*centre)
    page.wait_for_timeout(500)
    assert popup.count() == 0 or street not in popup.inner_text()
    visit.close()
