"""The overview as a dashboard (issue 15) in Debian's Chromium (Playwright): choosing an area
in the table filters the cards in place (URL and table follow, clearable), an area clicked
on the map does the same, choosing a measure recolours the map, and the page keeps 0 axe
violations. Screenshots go to test-artefacts/screenshots/."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from .test_browser import SHOTS, Visit, browser, server  # noqa: F401 (fixtures)

WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def _axe_wcag(page: object) -> list[dict]:
    """Every WCAG 2.2 A/AA violation axe finds in the dashboard's parts (cards, chart, map
    tools and list, outcome rates, the ranking's first rows), whatever its impact. The whole
    page is in the axe test over every page."""
    from axe_playwright_python.sync_playwright import Axe

    options = {"runOnly": {"type": "tag", "values": WCAG_AA}}
    parts = {
        "include": [
            ["#dashboard"],
            [".map-side"],
            ["#outcomes"],
            ["#ranking thead"],
            ["#ranking tbody tr:nth-child(-n+5)"],
        ]
    }
    return list(Axe().run(page, context=parts, options=options).response["violations"])


def test_dashboard_cross_filters_from_table_and_map(
    server: str,  # noqa: F811
    browser: object,  # noqa: F811
):
    visit = Visit(browser, server, "leader")
    try:
        page = visit.page
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.goto(server + "/overview")
        page.locator("#map-tools").wait_for(state="visible")  # the map is drawn
        page.screenshot(path=str(SHOTS / "dashboard-desktop.png"), full_page=False)
        cards = page.locator("#dashboard .cards")
        force_harm = cards.locator(".card-value").first.text_content()
        assert "the force" in page.locator("#dash-h").text_content()
        # the third-ranked area's filter link in the table
        row = page.locator("#ranking tbody tr").nth(2)
        code = row.get_attribute("data-code")
        name = row.locator("td.name-col a").first.text_content()
        row.locator("a.filter-link").click()
        page.locator("#dashboard .focus-bar strong").filter(has_text=name).wait_for()
        assert cards.locator(".card-value").first.text_content() != force_harm
        assert parse_qs(urlsplit(page.url).query)["area"] == [code]
        assert page.locator(f'#ranking tr[data-code="{code}"]').get_attribute("aria-current")
        assert name in page.locator("#dash-h").text_content()
        assert page.locator("#outcomes").count() == 1
        assert not _axe_wcag(page), "axe: WCAG 2.2 AA violations on the filtered dashboard"
        page.screenshot(path=str(SHOTS / "dashboard-filtered.png"), full_page=False)
        # clearable: back to the force
        page.locator("#dashboard a.button-link", has_text="Clear filter").click()
        page.locator("#dash-h", has_text="the force").wait_for()
        assert "area" not in parse_qs(urlsplit(page.url).query)
        # the map: recolour by a measure, zoom to the harm, click an area
        page.select_option("#colour-by", index=1)
        label = page.locator("#colour-by option").nth(1).text_content()
        assert page.locator("#legend").text_content().startswith(label)
        page.click("#zoom-harm")
        page.wait_for_timeout(300)
        box = page.locator("#map canvas").bounding_box()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.locator("#dashboard .focus-bar").wait_for()
        assert "area" in parse_qs(urlsplit(page.url).query)
        page.set_viewport_size({"width": 390, "height": 844})  # a phone
        page.screenshot(path=str(SHOTS / "dashboard-mobile.png"), full_page=False)
    finally:
        visit.close()
