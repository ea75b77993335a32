"""One definition of each action for every door (#24): the command line, the pages and the JSON API refuse the
same things with the same words, and the CLI's queue is the API's inbox, row for row."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from importlib import resources
from pathlib import Path

import pytest

from passaparola.actions import Actor, MentionActions, PeopleActions, Refusal, operator
from storage.board import InboxFilter
from tests.conftest import PASSAPAROLA, run_cli
from tests.webkit import NOW, Site, csrf_of, serve

GIULIA = Actor("giulia", "agent", "giulia", "session")


@pytest.fixture
def site(demo_db: Path, tmp_path: Path) -> Iterator[Site]:
    with serve(demo_db, tmp_path) as running:
        yield running


def cli_config(site: Site, folder: Path) -> Path:
    """The demo's configuration over the site's database, as an operator would write it."""
    demo = (resources.files("passaparola") / "demo.toml").read_text(encoding="utf-8")
    config = folder / "operator.toml"
    config.write_text(f'[storage]\npath = "{site.db}"\n\n{demo}', encoding="utf-8")
    return config


def cli(config: Path, *args: str) -> tuple[int, str]:
    done = run_cli([*PASSAPAROLA, *args[:2], "--config", str(config), *args[2:]])
    return done.returncode, (done.stdout + done.stderr).strip()


def test_the_cli_queue_is_the_api_inbox_row_for_row(site: Site, tmp_path: Path) -> None:
    api = site.client("agent")
    pages = [api.get("/api/inbox", params={"page": n}).json() for n in (1, 2)]
    inbox = [row for page in pages for row in page["items"]]
    assert pages[0]["total"] > 50  # the queue pages through everything the inbox holds
    code, out = cli(cli_config(site, tmp_path), "triage", "queue", "--json")
    assert code == 0
    queue = [json.loads(line) for line in out.splitlines()]
    assert len(queue) == pages[0]["total"]
    assert [row["key"] for row in queue[: len(inbox)]] == [row["key"] for row in inbox]
    for ours, theirs in zip(queue, inbox, strict=False):  # the same row, but time left counts from each clock
        assert {k: v for k, v in ours.items() if k != "minutes_left"} == {
            k: v for k, v in theirs.items() if k != "minutes_left"
        }


def test_closing_a_closed_mention_is_refused_alike_by_the_cli_and_the_api(site: Site, tmp_path: Path) -> None:
    api = site.client("supervisor")
    key = api.get("/api/inbox").json()["items"][0]["key"]
    assert api.post(f"/api/mentions/{key}/answered").status_code == 200
    refused = api.post(f"/api/mentions/{key}/ignore", json={"reason": "spam"})
    assert refused.status_code == 409
    code, out = cli(cli_config(site, tmp_path), "triage", "ignore", key, "--reason", "spam")
    assert code == 2 and out == f"passaparola: {refused.json()['error']}"
    assert site.store.conversation(key).state == "answered"  # the answer was not overwritten by "ignored"
    code, out = cli(cli_config(site, tmp_path), "triage", "answered", key, "--by", "marco")
    assert code == 2 and "already answered" in out


def test_an_unknown_mention_reads_the_same_at_every_door(site: Site, tmp_path: Path) -> None:
    api = site.client("agent").get("/api/mentions/x:nope")
    code, out = cli(cli_config(site, tmp_path), "alerts", "ack", "x:nope", "--by", "marco")
    assert api.status_code == 404 and code == 2 and out == f"passaparola: {api.json()['error']}"


def test_an_agents_assign_menu_offers_only_themselves(site: Site) -> None:
    giulia = site.login("giulia")
    key = giulia.get("/api/inbox").json()["items"][0]["key"]
    page = giulia.get(f"/mentions/{key}").text
    menu = page.split('name="member"', 1)[1].split("</select>", 1)[0]
    assert 'value="giulia"' in menu and 'value="marco"' not in menu
    supervisor = site.login("sara").get(f"/mentions/{key}").text
    assert 'value="marco"' in supervisor.split('name="member"', 1)[1].split("</select>", 1)[0]
    form = {"csrf": csrf_of(page), "action": "assign", "member": "giulia"}
    assert giulia.post(f"/mentions/{key}/act", data=form).status_code == 303  # what it offers, it may do


def test_the_actions_check_their_preconditions_once(site: Site) -> None:
    actions = MentionActions(site.settings, site.store)
    key = actions.store.board.inbox(InboxFilter(), limit=1)[0][0].mention.key
    with pytest.raises(Refusal) as other:
        actions.assign(GIULIA, key, "marco", NOW)
    assert other.value.status == 403
    with pytest.raises(Refusal) as nobody:
        actions.assign(GIULIA, key, "nessuno", NOW)
    assert nobody.value.status == 400 and "giulia" in str(nobody.value)
    with pytest.raises(Refusal) as future:
        actions.answered(operator("marco"), key, NOW, at=NOW + timedelta(hours=1))
    assert future.value.status == 400 and "future" in str(future.value)
    with pytest.raises(Refusal) as blank:
        actions.ignore(GIULIA, key, "   ", NOW)
    assert blank.value.status == 400
    with pytest.raises(Refusal) as too_many:
        actions.bulk(GIULIA, [key] * 51, "answered", NOW)
    assert too_many.value.status == 400 and "at most 50" in str(too_many.value)
    done = actions.bulk(GIULIA, [key, key, "x:nope"], "answered", NOW)
    assert done.done == [key] and [k for k, _ in done.refused] == ["x:nope"]  # a key twice is done once
    with pytest.raises(Refusal) as erase:
        PeopleActions(site.store).erase(GIULIA, "1", NOW)
    assert erase.value.status == 403 and "needs admin" in str(erase.value)
