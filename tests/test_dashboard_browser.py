"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright, against the web app serving
the replayed demo on 127.0.0.1. Screenshots of each step are kept in var/test-artifacts/ for people to look at.

The agent's and the supervisor's working days are the walks `make screenshots` takes (tools/screenshots.py), here
in both languages on a phone and a laptop, each page checked: nothing scrolls sideways, and on a phone the inbox
is one card a mention with its checkbox, sentiment and owner on screen."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.conftest import ROOT
from tests.webkit import PASSWORD, Site, serve
from tools.screenshots import SCREENS, agent_day, supervisor_day

ARTIFACTS = ROOT / "var" / "test-artifacts"


@pytest.fixture
def site(demo_db: Path, tmp_path: Path) -> Iterator[Site]:
    with serve(demo_db, tmp_path) as running:
        yield running


@pytest.fixture
def page(browser: Browser, site: Site, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(base_url=site.url, accept_downloads=True, viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    dialogs: list[str] = []
    opened.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    errors: list[str] = []
    opened.on("pageerror", lambda e: errors.append(str(e)))
    yield opened
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    opened.screenshot(path=str(ARTIFACTS / f"{request.node.name}-end.png"), full_page=True)
    context.close()
    assert dialogs == [], f"a script ran: {dialogs}"
    assert errors == []


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def log_in(page: Page, name: str) -> None:
    page.goto("/inbox")
    assert "/login" in page.url
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.login button[type=submit]")
    page.wait_for_url("**/inbox")


def open_count(page: Page) -> int:
    page.goto("/cockpit?days=7")
    return int(page.inner_text("#open-count b"))


def test_a_supervisor_works_the_inbox_in_sla_order(page: Page, site: Site) -> None:
    log_in(page, "sara")
    shot(page, "inbox")
    rows = page.locator("table.inbox tbody tr.mention")
    keys = [rows.nth(i).get_attribute("data-key") for i in range(rows.count())]
    api = site.client("agent")
    listed = [i["key"] for n in (1, 2) for i in api.get("/api/inbox", params={"page": n}).json()["items"]]
    burst = set(page.locator("section.incidents input[name=keys]").evaluate_all("inputs => inputs.map(i => i.value)"))
    assert burst  # the demo's burst is one incident row, its mentions not listed again (#19)
    assert keys == [k for k in listed if k not in burst][:50]
    assert len(keys) == min(50, site.store.counts()["open"] - len(burst)) > 0
    before = open_count(page)
    shot(page, "cockpit-before")

    first = keys[0]
    page.goto("/inbox")
    page.click(f"tr[data-key='{first}'] td.text a")
    page.select_option("select[name=member]", "marco")
    page.click("button[value=assign]")
    assert page.inner_text("dd.assignee") == "marco"
    page.select_option("select[name=label]", "positive")
    page.click("button[value=sentiment]")
    assert page.inner_text("dd.sentiment") == "positivo"
    page.click("button[value=answered]")
    assert "risposta data" in page.inner_text("dd.state")
    shot(page, "mention-answered")

    page.goto("/inbox")
    assert page.locator(f"tr[data-key='{first}']").count() == 0
    assert open_count(page) == before - 1
    stored = site.store.conversation(first)
    assert stored.state == "answered" and stored.assignee == "marco" and stored.mention.tags["sentiment"] == "positive"


def test_bulk_assign_from_the_inbox(page: Page, site: Site) -> None:
    log_in(page, "sara")
    page.goto("/inbox?channel=x")
    rows = page.locator("table.inbox tbody tr.mention")
    keys = [rows.nth(i).get_attribute("data-key") for i in range(min(rows.count(), 3))]
    assert keys
    for key in keys:
        page.check(f"input[name=keys][value='{key}']")
    page.select_option("fieldset.bulk select[name=action]", "assign")
    page.select_option("fieldset.bulk select[name=member]", "paolo")
    page.click("fieldset.bulk button")
    assert f"{len(keys)} ✓" in page.inner_text("p.flash")
    assert all(site.store.conversation(k).assignee == "paolo" for k in keys)


def test_the_cockpit_marks_the_demo_complaint_spike(page: Page, site: Site) -> None:
    log_in(page, "sara")
    page.goto("/cockpit?lang=en")
    shot(page, "cockpit")
    assert page.locator("svg.chart g.spike").count() >= 1
    last_bars = page.locator("svg.chart g.bar")
    negative_recent = page.locator("svg.chart g.bar rect.negative")
    assert last_bars.count() == 49 and negative_recent.count() > 0
    assert page.locator("table.workload tbody tr").count() == len(site.settings.triage.members)
    assert page.locator("table.alerts tbody tr").count() > 0


def test_a_hostile_mention_shows_as_text_and_runs_nothing(page: Page) -> None:
    log_in(page, "sara")
    page.goto("/mentions/facebook:fa-00154")
    shot(page, "hostile-mention")
    quote = page.inner_text("blockquote.text")
    assert "<script>alert('xss')</script>" in quote and "<b>leak</b>" in quote
    assert page.locator("blockquote.text b").count() == 0 and page.locator("main script").count() == 0
    # the dialogs and page errors collected by the fixture must stay empty


def test_export_advocates_from_the_leaderboard(page: Page) -> None:
    log_in(page, "sara")
    page.goto("/advocates")
    shot(page, "advocates")
    with page.expect_download() as waiting:
        page.click("text=Esporta CSV")
    download = waiting.value
    assert download.suggested_filename.startswith("advocates-") and download.suggested_filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8-sig"))))
    assert rows and rows[0]["name"] and float(rows[0]["score"]) >= float(rows[-1]["score"])
    page.click("table.advocates tbody tr:first-child >> text=Perché")
    assert page.locator("table.terms tbody tr").count() >= 1


def test_an_agent_sees_no_supervisor_pages_and_the_phone_layout_works(browser: Browser, site: Site) -> None:
    context = browser.new_context(base_url=site.url, viewport={"width": 390, "height": 844}, is_mobile=True)
    phone = context.new_page()
    log_in(phone, "giulia")
    assert phone.locator("header nav a").all_inner_texts() == ["Da rispondere", "Insegna"]  # no supervisor pages
    shot(phone, "inbox-phone")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 2, "the page scrolls sideways on a phone"
    response = phone.goto("/cockpit")
    assert response is not None and response.status == 403
    context.close()


@pytest.mark.parametrize(("lang", "width"), [("it", 390), ("en", 1366)])
def test_a_person_teaches_the_model_in_one_click_on_the_teach_page(
    browser: Browser, site: Site, lang: str, width: int
) -> None:
    context = browser.new_context(base_url=site.url, viewport={"width": width, "height": 900})
    page = context.new_page()
    log_in(page, "giulia")
    page.goto(f"/teach?lang={lang}")
    cards = page.locator("ol.teach li")
    before = cards.count()
    assert 0 < before <= 10
    shot(page, f"teach-{lang}-{width}")
    assert page.evaluate("document.documentElement.scrollWidth") <= width + 2
    first = cards.first.locator("p.teach-text").inner_text()
    label = {"it": "negativo", "en": "negative"}[lang]
    cards.first.locator(f"button:has-text('{label}')").click()
    page.wait_for_url("**/teach")
    assert first not in [c.inner_text() for c in page.locator("ol.teach li p.teach-text").all()]
    assert site.store.mentions.corrections()[-1]["label"] == "negative"
    context.close()


def no_sideways_scroll(page: Page, where: str) -> None:
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"{where}: the page is {width[0]} px wide on a {width[1]} px screen"


def inbox_rows_are_cards(page: Page, where: str, width: int) -> None:
    """Each mention of the inbox is a card: no table row, and its checkbox, sentiment and owner inside the screen."""
    rows = page.locator("table.inbox tr.mention")
    assert rows.count() > 0, where
    for i in range(min(rows.count(), 3)):
        row = rows.nth(i)
        assert row.evaluate("r => getComputedStyle(r).display") != "table-row", where
        for part in ("input[name=keys]", "td.sentiment .badge", "td.assignee", "td.priority", "td.left"):
            box = row.locator(part).bounding_box()
            assert box is not None and row.locator(part).is_visible(), f"{where}: {part} hidden"
            assert box["x"] >= 0 and box["x"] + box["width"] <= width, f"{where}: {part} off-screen at {box}"


def checked_day(browser: Browser, site: Site, day: str, language: str, width: int, height: int) -> list[str]:
    """Walk ``day`` as `make screenshots` does, checking every page it stops at; the steps seen."""
    context = browser.new_context(base_url=site.url, viewport={"width": width, "height": height})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    seen: list[str] = []

    def stop(at: Page, step: str) -> None:
        where = f"{day} {language} {width}: {step} ({at.url})"
        assert at.locator("html").get_attribute("lang") == language, where
        no_sideways_scroll(at, where)
        if width < 700 and step in ("inbox", "incident"):
            inbox_rows_are_cards(at, where, width)
        if step == "assigned":  # the flash names the action done, in the page's language
            flash = at.inner_text("p.flash")
            assert ("Assegnata a " if language == "it" else "Assigned to ") in flash, f"{where}: {flash}"
        if step == "draft-checked":
            assert at.locator("ul.findings li").count() > 0, where
        if step == "saved-reply":  # the saved reply filled in: the author's name, the reference, the signature
            draft = at.input_value("textarea[name=draft]")
            assert "AUR-12345" in draft and draft.rstrip().endswith("giulia"), f"{where}: {draft}"
        if step == "cockpit":
            charts = at.locator("svg.chart")
            assert charts.count() == 5, where  # volume, response times, SLA, workload, complaint topics
            for i in range(charts.count()):
                svg = charts.nth(i)
                assert svg.get_attribute("role") == "img", where
                assert svg.locator("title").first.text_content() and svg.locator("desc").text_content(), where
                box = svg.bounding_box()
                assert box is not None and box["x"] + box["width"] <= width, where
        seen.append(step)

    try:
        {"agent": agent_day, "supervisor": supervisor_day}[day](page, stop, language)
        if width < 700:
            shot(page, f"{day}-{language}-{width}-last")
    finally:
        context.close()
    assert errors == []
    return seen


DAYS = [(language, width, height) for language in ("it", "en") for width, height in SCREENS]


@pytest.mark.parametrize(("language", "width", "height"), DAYS)
def test_the_agents_day_reads_on_a_phone_and_a_laptop(
    browser: Browser, site: Site, language: str, width: int, height: int
) -> None:
    seen = checked_day(browser, site, "agent", language, width, height)
    assert seen == ["login", "inbox", "incident", "mention", "assigned", "draft-checked", "saved-reply", "teach"]


@pytest.mark.parametrize(("language", "width", "height"), DAYS)
def test_the_supervisors_day_reads_on_a_phone_and_a_laptop(
    browser: Browser, site: Site, language: str, width: int, height: int
) -> None:
    seen = checked_day(browser, site, "supervisor", language, width, height)
    assert seen == [
        "inbox", "incident", "mention", "assigned", "cockpit", "advocates", "explanation", "sources", "sessions"
    ]  # fmt: skip
