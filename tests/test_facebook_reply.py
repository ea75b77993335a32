"""Answering a Page comment as the Page, against the local Graph double: the reply lands in the comment's thread,
the next poll hears it as the brand's answer, Graph's refusals say what to do, and a timed-out post is found, not
posted twice."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr

from listener.facebook import FacebookSource
from listener.facebook_reply import FacebookReplier
from listener.model import Mention
from listener.replying import Replier, ReplyError
from storage import Store
from tests.conftest import FIXTURES, T0, free_port
from tests.graphapi import PAGE_ID, FakeGraph

TOKEN = "EAAG-page-token-SENTINEL"
APP_SECRET = "app-secret-SENTINEL"
POST = "1000000001_2002"
SENT_AT = T0 + timedelta(minutes=1)  # Graph's clock for the new comments


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    page = json.loads((FIXTURES / "facebook" / "page.json").read_text(encoding="utf-8"))
    double = FakeGraph(posts=page["posts"], comments=page["comments"], token=TOKEN, write_time=SENT_AT)
    yield from double.serve()


def source(graph: FakeGraph, **changes: Any) -> FacebookSource:
    page = FacebookSource(name="page", page_id=PAGE_ID, access_token=SecretStr(TOKEN), base_url=graph.base_url)
    return replace(page, **changes)


def secured(graph: FakeGraph) -> FacebookSource:
    """A source for an app with "Require App Secret" on (the webhook's secrets double as the proof's key)."""
    graph.app_secret = APP_SECRET
    return source(graph, app_secret=SecretStr(APP_SECRET), verify_token=SecretStr("verify"))


def heard(graph: FakeGraph, comment_id: str) -> Mention:
    """The mention passaparola heard for ``comment_id`` on its poll."""
    return next(m for m in source(graph).poll(None, T0).mentions if m.platform_id == comment_id)


def under(graph: FakeGraph, comment_id: str) -> list[dict[str, Any]]:
    """The comments stored on the server under ``comment_id``, newest first."""
    return [c for c in graph.comments[POST] if (c.get("parent") or {}).get("id") == comment_id]


def test_a_reply_lands_under_the_comment_as_the_page_and_the_next_poll_hears_it_as_the_answer(
    graph: FakeGraph, store: Store
) -> None:
    luisa = heard(graph, "2002_303")
    replier = source(graph).replier()
    assert isinstance(replier, Replier) and isinstance(replier, FacebookReplier)
    assert (replier.channel, replier.cost_usd("Ciao Luisa"), replier.check("Ciao Luisa")) == ("facebook", 0.0, "")

    sent = replier.reply(luisa, "Ciao Luisa, sì: tutte le Aurora dal 2020.", SENT_AT + timedelta(minutes=5))

    [write] = graph.writes
    assert urlsplit(write["path"]).path == "/v21.0/2002_303/comments"
    assert write["form"] == {"message": "Ciao Luisa, sì: tutte le Aurora dal 2020."}
    assert write["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert all(TOKEN not in path for path, _ in graph.requests)  # the write and the read-back alike
    [stored] = under(graph, "2002_303")
    assert stored["from"] == {"id": PAGE_ID, "name": "Caffè Aurora"}
    assert sent.platform_id == stored["id"] and sent.url == stored["permalink_url"]
    assert sent.url.startswith("https://www.facebook.com/")
    assert (sent.text, sent.published_at) == ("Ciao Luisa, sì: tutte le Aurora dal 2020.", SENT_AT)
    assert replier.account == "Caffè Aurora"  # stored under the name the poll gives the Page's comments

    poll = source(graph).poll(None, T0 + timedelta(minutes=10))
    assert sent.platform_id not in {m.platform_id for m in poll.mentions}  # our own reply is no new mention
    ours = next(r for r in poll.replies if r.platform_id == sent.platform_id)
    assert (ours.in_reply_to, ours.author_handle, ours.thread_id) == ("2002_303", replier.account, POST)
    store.save_poll("page", "facebook", poll, T0 + timedelta(minutes=10))
    luisa_now = store.conversation("facebook:2002_303")
    assert luisa_now is not None and luisa_now.state == "answered"


def test_appsecret_proof_travels_with_the_write_and_is_right(graph: FakeGraph) -> None:
    luisa = heard(graph, "2002_303")
    graph.app_secret = APP_SECRET
    with pytest.raises(ReplyError, match="appsecret_proof") as refused:  # the app requires it: no proof, no post
        source(graph).replier().reply(luisa, "Grazie!", T0)
    assert refused.value.problem == "refused" and not under(graph, "2002_303")

    sent = secured(graph).replier().reply(luisa, "Grazie!", T0)
    expected = hmac.new(APP_SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
    assert graph.writes[-1]["form"]["appsecret_proof"] == expected
    assert [c["id"] for c in under(graph, "2002_303")] == [sent.platform_id]
    everything = json.dumps(graph.writes) + json.dumps(graph.requests)
    assert APP_SECRET not in everything  # the proof travels, never the secret
    readback = parse_qs(urlsplit(graph.requests[-1][0]).query)
    assert readback["appsecret_proof"] == [expected] and sent.url  # the read-back proved itself too


def test_a_reply_to_a_reply_lands_under_the_top_level_comment(graph: FakeGraph) -> None:
    marco = heard(graph, "2002_302")  # Marco answered Anna's 2002_301
    assert marco.in_reply_to == "2002_301"
    sent = source(graph).replier().reply(marco, "Marco, ti scriviamo in privato.", T0)
    assert urlsplit(graph.writes[0]["path"]).path == "/v21.0/2002_301/comments"
    assert sent.platform_id in {c["id"] for c in under(graph, "2002_301")}
    poll = source(graph).poll(None, T0 + timedelta(minutes=10))
    ours = next(r for r in poll.replies if r.platform_id == sent.platform_id)
    assert ours.in_reply_to == "2002_301" and ours.thread_id == marco.thread_id  # same thread as Marco's words


@pytest.mark.parametrize(
    ("mode", "target", "problem", "advice"),
    [
        ("expired", "2002_303", "expired_token", "create a new long-lived Page token and update the secret"),
        ("permission", "2002_303", "permission", "pages_manage_engagement"),
        ("rate_limited", "2002_303", "rate_limited", "Application request limit reached"),
        ("unavailable", "2002_303", "unavailable", "nothing was posted"),
        ("", "2002_399", "deleted", "does not exist"),
    ],
)
def test_graph_refusals_say_what_to_do_and_never_hold_a_secret(
    graph: FakeGraph, mode: str, target: str, problem: str, advice: str
) -> None:
    luisa = heard(graph, "2002_303")
    replier = secured(graph).replier()
    graph.refuse_writes = mode
    before = len(graph.comments[POST])
    with pytest.raises(ReplyError) as error:
        replier.reply(replace(luisa, platform_id=target), "Ciao Luisa!", T0)
    assert error.value.problem == problem and advice in str(error.value)
    assert TOKEN not in str(error.value) and APP_SECRET not in str(error.value)
    assert len(graph.comments[POST]) == before  # nothing was posted
    if problem == "rate_limited":  # Graph's usage header said 7 minutes
        assert error.value.retry_at == T0 + timedelta(minutes=7) and error.value.transient
    else:
        assert error.value.retry_at is None


def test_a_wrong_token_is_an_expired_token_and_an_unreachable_graph_is_unavailable(graph: FakeGraph) -> None:
    luisa = heard(graph, "2002_303")
    with pytest.raises(ReplyError) as wrong:
        source(graph, access_token=SecretStr("EAAG-other-SENTINEL")).replier().reply(luisa, "Ciao!", T0)
    assert wrong.value.problem == "expired_token" and "Invalid OAuth access token" in str(wrong.value)
    assert "EAAG-other-SENTINEL" not in str(wrong.value)

    closed = source(graph, base_url=f"http://127.0.0.1:{free_port()}").replier()
    with pytest.raises(ReplyError) as down:
        closed.reply(luisa, "Ciao!", T0)
    assert down.value.problem == "unavailable" and down.value.transient
    with pytest.raises(ReplyError) as lookup:
        closed.find(luisa, "Ciao!", T0, T0)
    assert lookup.value.problem == "unavailable"
    assert not under(graph, "2002_303")


def test_a_post_that_got_no_answer_is_unknown_then_found_not_posted_again(graph: FakeGraph) -> None:
    luisa = heard(graph, "2002_303")
    graph.stall_seconds = 1.5  # Graph stores the comment, then the answer never comes in time
    replier = replace(secured(graph), timeout_seconds=0.3).replier()
    text = "Ciao Luisa,  sì:\ntutte le Aurora dal 2020."
    with pytest.raises(ReplyError) as error:
        replier.reply(luisa, text, T0)
    assert error.value.problem == "unknown" and "may exist" in str(error.value)
    graph.stall_seconds = 0
    [stored] = under(graph, "2002_303")
    # Newer replies from customers push ours to the second page of the thread.
    for n, name in enumerate(["Ugo", "Rita", "Ada"], start=1):
        when = (SENT_AT + timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%S+0000")
        graph.comments[POST].insert(
            0,
            {
                "id": f"2002_80{n}",
                "from": {"id": f"40{n}", "name": name},
                "message": text,  # same words, but not the Page's
                "created_time": when,
                "parent": {"id": "2002_303"},
            },
        )

    found = replier.find(luisa, "Ciao Luisa, sì: tutte le Aurora dal 2020.", T0, T0 + timedelta(minutes=5))
    assert found is not None and found.platform_id == stored["id"] and found.published_at == SENT_AT
    assert len(graph.writes) == 1  # the lookup posted nothing
    pages = [parse_qs(urlsplit(path).query) for path, _ in graph.requests if "2002_303/comments?" in path]
    assert [page.get("after") for page in pages] == [None, ["2"]]  # it followed paging.next, proof and all
    assert all(page["appsecret_proof"] and page["order"] == ["reverse_chronological"] for page in pages)
    assert replier.find(luisa, "Other words", T0, T0) is None
    assert replier.find(luisa, text, SENT_AT + timedelta(minutes=2), T0) is None  # older than asked for


def test_a_failed_read_back_still_reports_the_post_that_exists(graph: FakeGraph) -> None:
    luisa = heard(graph, "2002_303")
    graph.error = {"status": 500, "body": {"error": {"message": "An unknown error occurred", "code": 1}}}  # reads
    now = T0 + timedelta(minutes=3)
    sent = source(graph).replier().reply(luisa, "Ciao Luisa!", now)
    [stored] = under(graph, "2002_303")
    assert (sent.platform_id, sent.text, sent.published_at, sent.url) == (stored["id"], "Ciao Luisa!", now, "")


def test_a_reply_too_long_for_facebook_is_refused_before_posting(graph: FakeGraph) -> None:
    replier = source(graph).replier()
    assert replier.check("a" * 8001) == "8001 characters; Facebook allows 8000: shorten it"
    assert replier.check("a" * 8000) == ""
    assert replier.check("   ")
    with pytest.raises(ReplyError) as error:
        replier.reply(heard(graph, "2002_303"), "a" * 8001, T0)
    assert error.value.problem == "too_long" and graph.writes == []


def test_with_the_app_secret_on_a_poll_still_follows_every_page(graph: FakeGraph) -> None:
    """The proof added to a ``paging.next`` link must not replace the link's own cursor."""
    plain = [m.platform_id for m in source(graph).poll(None, T0).mentions]
    proved = [m.platform_id for m in secured(graph).poll(None, T0).mentions]
    assert proved == plain == ["2002_304", "2002_303", "2002_302", "2002_301", "2001_201"]
