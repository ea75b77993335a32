"""The `facebook` source against a local Graph API double: comments once each, Page replies answer, errors clear."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from listener.facebook import FacebookSource
from listener.model import RateLimited, SourceError
from storage import Store
from tests.conftest import FIXTURES, T0, settings_from
from tests.graphapi import PAGE_ID, FakeGraph

TOKEN = "EAAG-page-token-SENTINEL"


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    page = json.loads((FIXTURES / "facebook" / "page.json").read_text(encoding="utf-8"))
    yield from FakeGraph(posts=page["posts"], comments=page["comments"]).serve()


def page(graph: FakeGraph) -> FacebookSource:
    return FacebookSource(name="page", page_id=PAGE_ID, access_token=SecretStr(TOKEN), base_url=graph.base_url)


def test_comments_and_replies_arrive_once_and_the_page_reply_answers(graph: FakeGraph, store: Store) -> None:
    poll = page(graph).poll(None, T0)
    assert [m.platform_id for m in poll.mentions] == ["2002_304", "2002_303", "2002_302", "2002_301", "2001_201"]
    anna = poll.mentions[3]
    assert (anna.author.handle, anna.thread_id, anna.in_reply_to) == ("Anna Verdi", "1000000001_2002", "")
    assert poll.mentions[2].in_reply_to == "2002_301"  # Marco's reply to Anna, read through filter=stream
    assert poll.mentions[0].author.handle == "someone on Facebook"  # no "from": kept, not dropped
    assert poll.mentions[1].url == ""  # a javascript: permalink is not a link
    [reply] = poll.replies
    assert (reply.in_reply_to, reply.author_handle) == ("2002_301", "Caffè Aurora")
    result = store.save_poll("page", "facebook", poll, T0)
    assert (result.new_mentions, result.answered) == (5, 1)
    answered = store.conversation("facebook:2002_301")
    assert answered is not None and answered.state == "answered" and answered.response_seconds == 40 * 60

    # A restart with the stored cursor reads only the newest page of each post and stores nothing twice.
    graph.requests.clear()
    again = page(graph).poll(store.cursor("page"), T0 + timedelta(minutes=5))
    assert store.save_poll("page", "facebook", again, T0).new_mentions == 0
    comment_pages = [path for path, _ in graph.requests if "/comments" in path]
    assert len(comment_pages) == 3  # post 2002: two pages reach 10 min before its newest comment; 2001: one
    assert not any("after=4" in path for path in comment_pages)  # the oldest page was not read again


def test_the_token_travels_in_the_header_never_in_a_url(graph: FakeGraph) -> None:
    page(graph).poll(None, T0)
    assert graph.requests and all(TOKEN not in path for path, _ in graph.requests)
    assert all(headers.get("Authorization") == f"Bearer {TOKEN}" for _, headers in graph.requests)
    assert TOKEN not in repr(page(graph))


def test_an_expired_token_says_what_to_do(graph: FakeGraph) -> None:
    graph.error = {
        "status": 400,
        "body": {"error": {"message": "Error validating access token", "type": "OAuthException", "code": 190}},
    }
    with pytest.raises(SourceError, match="create a new long-lived Page token") as error:
        page(graph).poll(None, T0)
    assert TOKEN not in str(error.value)


def test_a_rate_limit_pauses_the_source_until_graph_says(graph: FakeGraph) -> None:
    usage = {PAGE_ID: [{"type": "pages", "call_count": 100, "estimated_time_to_regain_access": 17}]}
    graph.error = {
        "status": 400,
        "body": {"error": {"message": "User request limit reached", "code": 17}},
        "headers": {"X-Business-Use-Case-Usage": json.dumps(usage)},
    }
    with pytest.raises(RateLimited) as error:
        page(graph).poll(None, T0)
    assert error.value.retry_at == T0 + timedelta(minutes=17)


def test_config_names_what_a_facebook_source_needs(tmp_path: Path) -> None:
    from passaparola.config import ConfigError

    with pytest.raises(ConfigError) as error:
        settings_from('[[sources]]\ntype = "facebook"\npage_id = "caffeaurora"\n', tmp_path)
    assert error.value.problems == [
        "sources[0]: page_id must be the Page's numeric id (Page settings > About > Page ID)"
    ]


def test_an_app_that_requires_the_app_secret_gets_appsecret_proof_on_every_call(graph: FakeGraph) -> None:
    graph.app_secret, graph.token = "app-secret-value", TOKEN
    with pytest.raises(SourceError, match="appsecret_proof"):
        page(graph).poll(None, T0)
    graph.requests.clear()
    proved = replace(page(graph), app_secret=SecretStr("app-secret-value"), verify_token=SecretStr("verify"))
    assert proved.poll(None, T0).mentions
    assert graph.requests and all("appsecret_proof=" in path for path, _ in graph.requests)
    assert not any("app-secret-value" in path for path, _ in graph.requests)  # the proof, never the secret
