"""`make screenshots`: the dashboard as people see it, in pictures under ``var/screenshots/``.

The bundled demo is replayed once (the test kit's `tests.webkit.build_demo`: the same data, clock and people as the
browser tests), served on 127.0.0.1, and walked in Debian's chromium (Playwright drives it; it never downloads a
browser here) through two working days, in Italian and English, on a phone (390 by 844) and a laptop (1366 by 900):

- the agent's day (giulia): log in, the inbox, the ongoing burst, a mention, taking it, checking a draft reply,
  teaching the model;
- the supervisor's day (sara): log in, the inbox, the burst, a mention, handing it to a colleague, the cockpit,
  the advocates and why one scores, the sources; then the admin's sessions page.

Each step is one full-page PNG, named ``{day}-{language}-{width}-{step number}-{step}.png``. The browser tests
(tests/test_dashboard_browser.py) walk the same days and check each page: no sideways scroll, the inbox as cards
on a phone.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python tools/screenshots.py` as well as `python -m tools.screenshots`
    sys.path.insert(0, str(ROOT))

from tests.webkit import PASSWORD, build_demo, serve  # noqa: E402  (the test kit: the demo the tests see)

OUT = ROOT / "var" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: As the browser tests launch it: no sandbox as root, no traffic to Google's hosts (only 127.0.0.1 is reached).
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
LANGUAGES = ("it", "en")
#: (width, height): a phone and a laptop.
SCREENS = ((390, 844), (1366, 900))
#: What each step is told: the page, and the step's name.
Stop = Callable[[Page, str], None]


def log_in(page: Page, user: str, language: str) -> None:
    """The log-in form in ``language`` (remembered for the session), then the inbox."""
    page.goto(f"/login?lang={language}")
    page.fill("input[name=name]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("form.login button[type=submit]")
    page.wait_for_url("**/inbox")


def open_incident_and_mention(page: Page, stop: Stop) -> None:
    """From the inbox: the ongoing burst's mentions, then the first of them."""
    page.click("section.incidents a[href^='/inbox?incident=']")
    page.wait_for_url("**/inbox?incident=*")
    stop(page, "incident")
    page.locator("table.inbox tr.mention td.text a").first.click()
    page.wait_for_url("**/mentions/**")
    stop(page, "mention")


def agent_day(page: Page, stop: Stop, language: str) -> None:
    """Giulia's morning: the inbox, the burst, one mention she takes and drafts a reply to, then the Teach page."""
    page.goto(f"/login?lang={language}")
    stop(page, "login")
    log_in(page, "giulia", language)
    stop(page, "inbox")
    open_incident_and_mention(page, stop)
    page.click("button[value=assign]")  # an agent's menu offers herself only
    page.wait_for_selector("p.flash")
    stop(page, "assigned")
    page.fill("textarea[name=draft]", "grazie per la segnalazione, controlliamo subito")
    page.click("button[value=check]")
    page.wait_for_selector("p.verdict")
    stop(page, "draft-checked")
    page.fill("input[name=saved]", "ritardo")
    page.fill("input[name=reference]", "AUR-12345")
    page.click("button[value=fill]")
    page.wait_for_selector("p.verdict")
    stop(page, "saved-reply")
    page.goto("/teach")
    stop(page, "teach")


def supervisor_day(page: Page, stop: Stop, language: str) -> None:
    """Sara's day: the inbox and the burst, one mention handed to Marco, the cockpit, the advocates, the sources;
    then the admin looks at who is logged in."""
    log_in(page, "sara", language)
    stop(page, "inbox")
    open_incident_and_mention(page, stop)
    page.select_option("form:has(button[value=assign]) select[name=member]", "marco")
    page.click("button[value=assign]")
    page.wait_for_selector("p.flash")
    stop(page, "assigned")
    page.goto("/cockpit?days=7")
    stop(page, "cockpit")
    page.goto("/advocates")
    stop(page, "advocates")
    page.locator("table.advocates a[href$='/explain']").first.click()
    page.wait_for_url("**/explain")
    stop(page, "explanation")
    page.goto("/sources")
    stop(page, "sources")
    page.click("form[action='/logout'] button")
    page.wait_for_url("**/login")
    log_in(page, "admin", language)
    page.goto("/sessions")
    stop(page, "sessions")


DAYS: dict[str, Callable[[Page, Stop, str], None]] = {"agent": agent_day, "supervisor": supervisor_day}


def shoot(browser: Browser, url: str, out: Path, day: str, language: str, width: int, height: int) -> list[Path]:
    """One day in one language on one screen, a full-page PNG at each step."""
    context = browser.new_context(base_url=url, viewport={"width": width, "height": height})
    page = context.new_page()
    taken: list[Path] = []

    def stop(at: Page, step: str) -> None:
        path = out / f"{day}-{language}-{width}-{len(taken) + 1:02d}-{step}.png"
        at.screenshot(path=str(path), full_page=True)
        taken.append(path)

    try:
        DAYS[day](page, stop, language)
    finally:
        context.close()
    return taken


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=OUT, help="the folder for the PNGs (emptied first)")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print("Debian's chromium is missing: apt-get install chromium (`make screenshots` does)", file=sys.stderr)
        return 1
    out: Path = args.out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="passaparola-shots-") as work:
        folder = Path(work)
        db = build_demo(folder)
        taken: list[Path] = []
        # each day gets a fresh copy of the demo: one day's actions do not change what the next one sees
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            try:
                for day in DAYS:
                    for language in LANGUAGES:
                        for width, height in SCREENS:
                            run = folder / f"{day}-{language}-{width}"
                            run.mkdir()
                            with serve(db, run) as site:
                                taken += shoot(browser, site.url, out, day, language, width, height)
            finally:
                browser.close()
    print(f"{len(taken)} screenshots in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
