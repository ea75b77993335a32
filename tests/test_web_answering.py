"""Answering through the web app, over the demo plus a Facebook Page served by the local Graph double: the JSON API
and the pages send exactly once, keep the draft on a refusal, queue for approval, and show the audit; then the
reply box in Debian's Chromium, composed from a saved reply and sent, in Italian and in English."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from playwright.sync_api import Browser
from pydantic import SecretStr

from listener.facebook import FacebookSource
from passaparola.config import Settings, SourceSpec
from rules.saved_replies import SavedReply
from tests.conftest import FIXTURES, ROOT, T0
from tests.graphapi import PAGE_ID, FakeGraph
from tests.webkit import PASSWORD, Site, csrf_of, serve

TOKEN = "EAAG-page-token-SENTINEL"
LUISA = "facebook:2002_303"
GOOD = "Ciao Luisa, sì: le capsule nuove vanno su tutte le nostre macchine. giulia"
SAVED = SavedReply(
    "compatibilita", "Ciao $first_name, sì: le capsule vanno bene anche per l'ordine $reference. $signature", "it"
)
ARTIFACTS = ROOT / "var" / "test-artifacts"


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    page = json.loads((FIXTURES / "facebook" / "page.json").read_text(encoding="utf-8"))
    fake = FakeGraph(posts=page["posts"], comments=page["comments"], token=TOKEN)
    fake.write_time = T0
    yield from fake.serve()


def with_page(graph: FakeGraph, approval: bool = False) -> object:
    def configure(settings: Settings) -> Settings:
        source = FacebookSource(name="page", page_id=PAGE_ID, access_token=SecretStr(TOKEN), base_url=graph.base_url)
        members = tuple(replace(m, needs_approval=approval and m.name == "giulia") for m in settings.triage.members)
        users = [u.model_copy(update={"member": "sara"}) if u.name == "sara" else u for u in settings.web.users]
        return replace(
            settings,
            sources=(*settings.sources, SourceSpec("page", "facebook", 300, source)),
            triage=replace(settings.triage, members=members),
            engagement=replace(settings.engagement, saved=(SAVED,)),
            web=settings.web.model_copy(update={"users": users}),
        )

    return configure


@pytest.fixture
def site(demo_db: Path, tmp_path: Path, graph: FakeGraph) -> Iterator[Site]:
    with serve(demo_db, tmp_path, with_page(graph)) as running:  # type: ignore[arg-type]
        source = running.settings.sources[-1].source
        running.store.save_poll("page", "facebook", source.poll(None, T0), T0)
        yield running


def posted(graph: FakeGraph) -> list[str]:
    """The Page's answers under Luisa's comment, as the platform has them."""
    return [c["message"] for c in graph.replies("2002_303")]


def test_the_api_sends_once_per_idempotency_key_and_answers_the_mention(site: Site, graph: FakeGraph) -> None:
    giulia = site.login("giulia")
    headers = {"X-CSRF-Token": giulia.get("/api/me").json()["csrf"]}
    box = giulia.get(f"/api/mentions/{LUISA}/replies").json()
    assert box["can_send"] is True and box["channel"] == "facebook" and box["idempotency_key"]
    body = {"text": GOOD, "idempotency_key": box["idempotency_key"]}
    first = giulia.post(f"/api/mentions/{LUISA}/replies", json=body, headers=headers)
    assert first.status_code == 201, first.text
    sent = first.json()
    assert (sent["state"], sent["written_by"], sent["channel"]) == ("sent", "giulia", "facebook")
    assert sent["url"].startswith("https://www.facebook.com/") and sent["platform_id"]
    again = giulia.post(f"/api/mentions/{LUISA}/replies", json=body, headers=headers)
    assert again.json()["id"] == sent["id"] and posted(graph) == [GOOD]
    mention = giulia.get(f"/api/mentions/{LUISA}").json()
    assert mention["mention"]["state"] == "answered" and mention["mention"]["answered_by"] == "giulia"
    [audit] = mention["replies"]  # the conversation, exported, carries its replies' audit
    assert (audit["state"], audit["written_by"], audit["platform_id"]) == ("sent", "giulia", sent["platform_id"])


def test_the_api_refuses_a_blocked_reply_with_its_findings_and_a_channel_without_a_write_api(
    site: Site, graph: FakeGraph
) -> None:
    giulia = site.login("giulia")
    headers = {"X-CSRF-Token": giulia.get("/api/me").json()["csrf"]}
    blocked = giulia.post(f"/api/mentions/{LUISA}/replies", json={"text": "vanno bene"}, headers=headers)
    assert blocked.status_code == 422
    assert {"missing_greeting", "missing_signature"} <= {f["code"] for f in blocked.json()["findings"]}
    override = {"text": "vanno bene", "override_reason": "breve"}
    assert giulia.post(f"/api/mentions/{LUISA}/replies", json=override, headers=headers).status_code == 403
    assert posted(graph) == []

    demo = next(i for i in giulia.get("/api/inbox", params={"channel": "facebook"}).json()["items"])
    assert giulia.get(f"/api/mentions/{demo['key']}/replies").json()["can_send"] is False
    careful = "Ciao, ci dispiace: ti scriviamo in privato per la pratica AUR-12345. giulia"
    manual = giulia.post(f"/api/mentions/{demo['key']}/replies", json={"text": careful}, headers=headers)
    assert manual.status_code == 409 and "yourself" in manual.json()["error"]
    copied = giulia.post(
        f"/api/mentions/{demo['key']}/replies", json={"text": careful, "copied": True}, headers=headers
    )
    assert copied.status_code == 202 and copied.json()["state"] == "copied"
    assert site.store.conversation(demo["key"]).answered_by == "giulia"


def test_a_reply_needing_approval_waits_in_the_cockpit_until_a_supervisor_approves(
    demo_db: Path, tmp_path: Path, graph: FakeGraph
) -> None:
    with serve(demo_db, tmp_path, with_page(graph, approval=True)) as site:  # type: ignore[arg-type]
        source = site.settings.sources[-1].source
        site.store.save_poll("page", "facebook", source.poll(None, T0), T0)
        giulia = site.login("giulia")
        page = giulia.get(f"/mentions/{LUISA}")
        assert "passano da un supervisore" in page.text
        sent = giulia.post(f"/mentions/{LUISA}/reply", data={"csrf": csrf_of(page.text), "draft": GOOD, "do": "send"})
        assert sent.status_code == 303 and posted(graph) == []
        sara = site.login("sara")
        cockpit = sara.get("/cockpit")
        assert "Da approvare" in cockpit.text and LUISA.replace(":", "%3A") in cockpit.text
        [waiting] = sara.get("/api/replies/approvals").json()
        assert waiting["written_by"] == "giulia" and waiting["text"] == GOOD
        queue = sara.get("/approvals")
        edited = GOOD.replace("sì:", "sì, certo:")
        done = sara.post(
            f"/replies/{waiting['id']}/review", data={"csrf": csrf_of(queue.text), "text": edited, "do": "approve"}
        )
        assert done.status_code == 303 and posted(graph) == [edited]
        view = giulia.get(f"/mentions/{LUISA}").text
        assert "approvata da" in view and "sara" in view


def test_the_page_keeps_the_draft_when_the_house_rules_block_it(site: Site, graph: FakeGraph) -> None:
    giulia = site.login("giulia")
    page = giulia.get(f"/mentions/{LUISA}")
    draft = "vanno bene <b>tutte</b>"
    refused = giulia.post(f"/mentions/{LUISA}/reply", data={"csrf": csrf_of(page.text), "draft": draft, "do": "send"})
    assert refused.status_code == 422
    assert "vanno bene &lt;b&gt;tutte&lt;/b&gt;</textarea>" in refused.text  # kept, and escaped
    assert 'data-code="missing_greeting"' in refused.text and posted(graph) == []
    assert 'name="override_reason"' not in refused.text  # an agent cannot override


@pytest.mark.parametrize(
    ("lang", "sent_text"), [("it", "risposta inviata su facebook"), ("en", "reply sent on facebook")]
)
def test_composing_from_a_saved_reply_and_sending_in_the_browser(
    browser: Browser, site: Site, graph: FakeGraph, lang: str, sent_text: str
) -> None:
    context = browser.new_context(base_url=site.url, viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(f"/login?lang={lang}")
    page.fill("input[name=name]", "giulia")
    page.fill("input[name=password]", PASSWORD)
    page.click("form.login button[type=submit]")
    page.goto(f"/mentions/{LUISA}")
    page.fill("input[name=saved]", "compat")
    page.fill("input[name=reference]", "AUR-12345")
    page.click("button[value=fill]")
    draft = page.input_value("textarea[name=draft]")
    assert draft == "Ciao Luisa, sì: le capsule vanno bene anche per l'ordine AUR-12345. giulia"
    assert page.get_attribute("p.verdict", "data-verdict") == "ok"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"reply-box-{lang}-390.png"), full_page=True)
    page.click("button[value=send]")
    assert sent_text in page.inner_text(".flash")
    assert posted(graph) == [draft]
    assert page.locator("ul.reply-audit li[data-state=sent]").count() == 1
    context.close()


def test_a_refused_send_keeps_the_draft_and_says_what_to_do_in_the_pages_language(site: Site, graph: FakeGraph) -> None:
    graph.refuse_writes = "expired"
    giulia = site.login("giulia")
    page = giulia.get(f"/mentions/{LUISA}", params={"lang": "it"})
    sent = giulia.post(f"/mentions/{LUISA}/reply", data={"csrf": csrf_of(page.text), "draft": GOOD, "do": "send"})
    assert sent.status_code == 200 and 'data-problem="expired_token"' in sent.text
    assert "le credenziali del canale sono state rifiutate" in sent.text and posted(graph) == []
    later = giulia.get(f"/mentions/{LUISA}").text  # the next visit: the draft is back, with what to do
    assert f">{GOOD}</textarea>" in later and "La tua bozza è tornata" in later
    assert "renew the token" not in later and TOKEN not in later
    english = giulia.get(f"/mentions/{LUISA}", params={"lang": "en"}).text
    assert "Your draft is back" in english and "credentials were refused: renew the token" in english


def test_the_cockpit_shows_the_average_rating_per_place_and_its_trend(site: Site) -> None:
    ratings = site.client("supervisor").get("/api/cockpit").json()["ratings"]
    brera = next(r for r in ratings if r["place"] == "Milano Brera")
    assert (brera["channel"], brera["count"], brera["average"], brera["change"]) == ("gbp", 2, 3.5, None)
    assert {r["channel"] for r in ratings} == {"gbp", "appstore", "googleplay"}
    page = site.login("sara").get("/cockpit", params={"lang": "it"}).text
    assert 'id="ratings"' in page and "3,5 ★" in page and "Milano Brera" in page
