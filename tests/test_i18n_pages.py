"""Every page of the replayed demo speaks one language (#19): in Italian no English text of the catalogue shows,
in English no Italian one, and no message id or code (``sla_breach``, ``last_days``) shows raw.

What a page shows is its text outside ``<bdi>`` (what people, alerts and the config wrote is theirs), with the
attributes people read (``aria-label``, ``title``, ``data-label``...), less query parameters (``days=9``). A
catalogue text is looked for by its pieces around the ``{placeholders}``, word by word; pieces shorter than four
letters, and pieces the page's own language says too ("SLA", "Escalation", "Password"), cannot tell the
languages apart and are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from passaparola.web.i18n import LANGUAGES, MESSAGES
from passaparola.web.sayings import FINDINGS, REFUSALS, phrases, say
from rules.engagement import EngagementRules, ReplyContext, lint_reply
from tests.webkit import PASSWORD, Site, csrf_of, serve

READ_ATTRIBUTES = ("aria-label", "title", "alt", "placeholder", "data-label")
#: A message id or a code shown as such: lower-case words joined by underscores.
RAW_ID = re.compile(r"\b[a-z]+(?:_[a-z0-9]+)+\b")
#: A query parameter as a refusal names it (``days=9``): code people type, the same in both languages.
CODE = re.compile(r"\S+=\S*")
#: "1 ultimi giorni": one of something said with the plural.
ONE_PLURAL = re.compile(r"(?<![\d.,])\b1 (?:ultimi|giorni|ore|minuti|menzioni|allarmi|days|hours|minutes|mentions)\b")


class Shown(HTMLParser):
    """The text a person reads on a page, without what is isolated in ``<bdi>`` or typed in a ``<textarea>``."""

    SKIP = ("bdi", "script", "style", "textarea")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.hidden += 1
        if not self.hidden:
            self.parts += [value for name, value in attrs if name in READ_ATTRIBUTES and value]

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP and self.hidden:
            self.hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def shown(html: str) -> str:
    parser = Shown()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def words(text: str) -> str:
    return " ".join(text.split())


def pieces(text: str) -> list[str]:
    """The parts of a catalogue text between its placeholders, trimmed of punctuation and space."""
    return [words(p).strip(" .,:;()«»“”'\"·–-+") for p in re.split(r"\{\w+\}", text)]


def letters(text: str) -> int:
    return sum(ch.isalpha() for ch in text)


def found_in(piece: str, text: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(piece)}(?!\w)", text, re.I) is not None


def foreign(language: str) -> list[tuple[str, str]]:
    """(message id, piece) for each piece of the other language's catalogue a page in ``language`` must not show."""
    mine, other = LANGUAGES.index(language), 1 - LANGUAGES.index(language)
    own = [texts[mine] for texts in MESSAGES.values()]
    out = []
    for key, texts in MESSAGES.items():
        for piece in pieces(texts[other]):
            if letters(piece) >= 4 and not any(found_in(piece, t) for t in own):
                out.append((key, piece))
    return out


def problems(html: str, language: str, unwanted: list[tuple[str, str]]) -> list[str]:
    text = CODE.sub(" ", shown(html))
    found = [f"{key}: {piece!r}" for key, piece in unwanted if found_in(piece, text)]
    found += [f"raw id {raw!r}" for raw in sorted(set(RAW_ID.findall(text)))]
    found += [f"plural after 1: {slip!r}" for slip in ONE_PLURAL.findall(text)]
    return found


@pytest.fixture
def site(demo_db: Path, tmp_path: Path) -> Iterator[Site]:
    with serve(demo_db, tmp_path) as running:
        yield running


def visit(site: Site, language: str) -> dict[str, httpx.Response]:
    """Every page of the demo in ``language``, as people reach them: forms posted, actions done, refusals met."""
    pages: dict[str, httpx.Response] = {}
    anonymous = site.client()
    pages["login"] = anonymous.get("/login", params={"lang": language})
    token = csrf_of(pages["login"].text)
    pages["login failed"] = anonymous.post("/login", data={"csrf": token, "name": "admin", "password": "wrong"})

    admin = site.login("admin")
    api = site.client("admin")
    pages["inbox"] = admin.get("/inbox", params={"lang": language})  # remembered for the session from here on
    pages["inbox, every state"] = admin.get("/inbox", params={"state": "all"})
    incident = re.search(r'data-incident="([^"]+)"', pages["inbox"].text)
    assert incident, "the demo's burst shows as an incident"
    pages["an incident"] = admin.get("/inbox", params={"incident": incident.group(1)})
    key = api.get("/api/inbox").json()["items"][0]["key"]
    answered = api.get("/api/inbox", params={"state": "answered"}).json()["items"][0]["key"]
    pages["a mention"] = admin.get(f"/mentions/{key}")
    token = csrf_of(pages["a mention"].text)
    pages["a draft checked"] = admin.post(f"/mentions/{key}/lint", data={"csrf": token, "draft": "ok " * 120})
    pages["after an action"] = admin.post(
        f"/mentions/{key}/act", data={"csrf": token, "action": "sentiment", "label": "neutral"}, follow_redirects=True
    )
    pages["after a refusal"] = admin.post(
        f"/mentions/{key}/act", data={"csrf": token, "action": "ignore", "reason": " "}, follow_redirects=True
    )
    pages["after a bulk action"] = admin.post(
        "/inbox/bulk",
        data={"csrf": token, "action": "answered", "keys": [key, answered], "back": "/inbox"},
        follow_redirects=True,
    )
    pages["an answered mention"] = admin.get(f"/mentions/{answered}")
    pages["cockpit"] = admin.get("/cockpit")
    pages["cockpit, a week"] = admin.get("/cockpit", params={"days": "7"})
    pages["advocates"] = admin.get("/advocates")
    for n, person in enumerate(re.findall(r'href="/advocates/(\d+)/explain"', pages["advocates"].text)[:3]):
        pages[f"explanation {n + 1}"] = admin.get(f"/advocates/{person}/explain")
    pages["sources"] = admin.get("/sources")
    pages["teach"] = admin.get("/teach")
    pages["sessions"] = admin.get("/sessions")
    pages["password"] = admin.get("/password")
    token = csrf_of(pages["password"].text)
    pages["password refused"] = admin.post(
        "/password", data={"csrf": token, "current": PASSWORD, "new": "x" * 20, "again": "y" * 20}
    )
    pages["error: no such mention"] = admin.get("/mentions/x:404")
    pages["error: no such person"] = admin.get("/advocates/999999/explain")
    pages["error: a bad parameter"] = admin.get("/cockpit", params={"days": "9"})
    pages["approvals"] = admin.get("/approvals")
    agent = site.login("giulia")
    agent.get("/inbox", params={"lang": language})
    pages["error: not for an agent"] = agent.get("/cockpit")
    other = api.get("/api/inbox").json()["items"][1]["key"]
    view = agent.get(f"/mentions/{other}")
    token = csrf_of(view.text)
    reply = f"/mentions/{other}/reply"
    pages["a reply blocked"] = agent.post(reply, data={"csrf": token, "draft": "ok", "do": "copied"})
    pages["a reply with no write api"] = agent.post(reply, data={"csrf": token, "draft": "ok", "do": "send"})
    pages["a saved reply filled"] = agent.post(
        f"/mentions/{other}/fill", data={"csrf": token, "saved": "grazie", "draft": ""}
    )
    pages["a saved reply missing its reference"] = agent.post(
        f"/mentions/{other}/fill", data={"csrf": token, "saved": "consegna-in-ritardo", "draft": ""}
    )
    careful = "Ciao, ci dispiace: ti scriviamo in privato per la pratica AUR-12345. giulia"
    pages["a reply posted by hand"] = agent.post(
        reply, data={"csrf": token, "draft": careful, "do": "copied"}, follow_redirects=True
    )
    return pages


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_page_speaks_one_language(site: Site, language: str) -> None:
    unwanted = foreign(language)
    assert len(unwanted) > 100  # the check has teeth: most of the catalogue differs between the languages
    pages = visit(site, language)
    codes = {name: response.status_code for name, response in pages.items()}
    assert codes["error: no such mention"] == 404 and codes["error: not for an agent"] == 403, codes
    assert all(code < 500 for code in codes.values()), codes
    assert f'<html lang="{language}">' in pages["cockpit"].text
    found = {name: problems(response.text, language, unwanted) for name, response in pages.items()}
    assert {name: listed for name, listed in found.items() if listed} == {}


def test_the_check_sees_english_on_an_italian_page() -> None:
    page = "<p>Cruscotto</p><p>1 ultimi giorni · sla_breach · <b>No answer</b> after · Open now: 3</p>"
    found = problems(page + "<bdi>Mentions per hour, by a customer</bdi>", "it", foreign("it"))
    assert "open_now: 'Open now'" in found and "raw id 'sla_breach'" in found
    assert "plural after 1: '1 ultimi'" in found
    assert not any("Mentions per hour" in f for f in found)  # what people wrote is theirs


def test_the_draft_checks_findings_read_back_in_both_languages() -> None:
    """Every finding `rules.engagement` writes is said from the catalogue (its phrases follow the rule's English)."""
    rules = EngagementRules(banned=("gratis",), discouraged={"purtroppo": "ci dispiace"})
    contexts = [
        ReplyContext(channel="x", team="billing", complaint=True, url="https://x.com/a/status/1"),
        ReplyContext(channel="facebook", team="care", complaint=False, signature="Giulia"),
    ]
    drafts = ["gratis purtroppo " * 30, "Ciao, ecco qui. Giulia", "ok"]
    findings = [f for c in contexts for d in drafts for f in lint_reply(d, c, rules)]
    assert {f.code for f in findings} >= set(FINDINGS)
    for f in findings:
        for language in LANGUAGES:
            assert say(phrases("finding", f.code), f.message, language), (f.code, f.message)


def test_the_refusals_people_meet_on_the_pages_read_back() -> None:
    samples = [
        "no mention 'x:1'; keys look like x:1234567890 (see the inbox or the triage queue)",
        "x:1 is already answered; only open mentions can be marked answered",
        "agents assign mentions to themselves only; ask a supervisor",
        "say why it needs no answer: reason=spam, not about us...",
        "giulia is agent; this needs supervisor or above",
        "missing or wrong CSRF token; reload the page and try again",
        "the draft is empty; write the reply first",
        "select at least one mention",
    ]
    for sample in samples:
        assert say(REFUSALS, sample, "it"), sample
