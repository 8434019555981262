"""Issue 15 in Debian's Chromium (Playwright): the briefing printed to PDF carries the marking
on every page and no controls, and draws its map and trend on the server; a shared link to a
filtered page survives signing in (after a wrong password too); the briefing and the records
page have no serious or critical axe violations. Screenshots and the PDF's pages are kept in
test-artefacts/screenshots/ to be looked at."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from placeharm.services import auth, pages

from .test_browser import SHOTS, WARD, Visit, browser, server  # noqa: F401 (fixtures)

PDFTOTEXT = shutil.which("pdftotext")
PDFTOPPM = shutil.which("pdftoppm")
BRIEFING = f"/ward/{WARD}?briefing=true&from=2021-11&to=2022-03"


def _pdf_pages(pdf: Path) -> list[str]:
    """The text of each page of a PDF (poppler's pdftotext; .ci/run installs poppler-utils)."""
    if PDFTOTEXT is None:
        pytest.fail("pdftotext (poppler-utils) is needed to read the printed briefing")
    text = subprocess.run(
        [PDFTOTEXT, "-layout", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout
    return [p for p in text.split("\f") if p.strip()]


def test_the_printed_briefing_is_marked_on_every_page_without_controls(
    server: str,  # noqa: F811
    browser: object,  # noqa: F811
    tmp_path: Path,
):
    visit = Visit(browser, server, "supervisor")
    try:
        visit.open(BRIEFING, "briefing-desktop")
        page = visit.page
        # drawn on the server: inline SVG in the HTML as sent, not by a script
        html = page.context.request.get(server + BRIEFING).text()
        assert html.count('<svg viewBox="0 0 ') >= 2 and '<path d="M' in html
        assert page.locator("svg.area-map path").count() > 1
        assert page.locator("svg.trend-chart rect").count() > 4
        assert "Westgate" in page.locator("svg.area-map").text_content()
        assert not visit.axe(), "axe: serious or critical violations on the briefing"
        pdf = tmp_path / "briefing.pdf"
        page.pdf(path=str(pdf), format="A4", print_background=True)
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(pdf, SHOTS / "briefing.pdf")
        texts = _pdf_pages(pdf)
        assert len(texts) >= 2, "the briefing should run to more than one page"
        for number, text in enumerate(texts, 1):
            assert pages.MARKING in text, f"page {number} has no marking"
            assert "Print" not in text.replace("Printed", ""), f"page {number} prints a control"
            assert "Sign out" not in text and "Apply" not in text
        assert "Where: Westgate" in texts[0] and "police.uk crimes" in "".join(texts)
        page.set_viewport_size({"width": 390, "height": 844})  # a phone
        page.screenshot(path=str(SHOTS / "briefing-mobile.png"), full_page=True)
        if PDFTOPPM:  # the pages as images, to look at
            subprocess.run(
                [PDFTOPPM, "-png", "-r", "60", str(pdf), str(SHOTS / "briefing-pdf")], check=True
            )
    finally:
        visit.close()


def test_the_pages_issue_15_changed_are_accessible(
    server: str,  # noqa: F811
    browser: object,  # noqa: F811
):
    visit = Visit(browser, server, "analyst")
    try:
        visit.open("/records?kind=crimes&area=Westgate&from=2021-11&to=2021-12", "records")
        page = visit.page
        assert page.locator("#area-names option").count() > 100
        assert "records match" in page.locator("#records-count").inner_text()
        assert not visit.axe(), "axe: serious or critical violations on the records page"
        visit.open("/records?kind=crimes&area=Nowhere", "records-no-area")
        assert not visit.axe(), "axe: on the records page naming no area (an alert)"
        for path, shot in (
            ("/overview?from=2021-11&to=2022-03&index=css:northumbria", "overview-i15"),
            (f"/ward/{WARD}?from=2021-11&to=2022-03&measures=drug_supply", "ward-i15"),
        ):
            visit.open(path, shot)
            assert not visit.axe(), f"axe: serious or critical violations on {path}"
    finally:
        visit.close()


def test_a_shared_filtered_link_survives_signing_in(
    server: str,  # noqa: F811
    browser: object,  # noqa: F811
):
    shared = "/overview?from=2021-11&to=2022-03&measures=drug_supply,cannabis_farms&by=ward"
    context = browser.new_context()  # type: ignore[attr-defined]
    try:
        page = context.new_page()
        page.goto(server + shared)  # signed out: the sign-in form, the link kept as `next`
        assert urlsplit(page.url).path == "/login"
        assert parse_qs(urlsplit(page.url).query)["next"] == [shared]
        page.fill("#username", "supervisor")
        page.fill("#password", "not the password")  # a slip first: the link must survive it
        page.click("form.login button[type=submit]")
        page.wait_for_url(f"{server}/login?*")
        assert parse_qs(urlsplit(page.url).query)["next"] == [shared]
        page.fill("#username", "supervisor")
        page.fill("#password", f"supervisor{auth.DEMO_PASSWORD_SUFFIX}")
        page.click("form.login button[type=submit]")
        page.wait_for_url(f"{server}/overview?*")
        assert page.url == server + shared
        assert page.locator('input[name="from"]').input_value() == "2021-11"
        checked = page.locator('input[name="measures"]:checked')
        assert sorted(checked.evaluate_all("els => els.map(e => e.value)")) == [
            "cannabis_farms",
            "drug_supply",
        ]
    finally:
        context.close()
