"""The `discourse` source against a local Discourse double: a staff answer answers the post it replies to, no more."""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Mapping
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from listener.discourse import DiscourseSource
from listener.model import EVERYONE_IN_THREAD, RateLimited, SourceError
from passaparola import config as configuration
from passaparola.config import ConfigError, SourceSpec
from passaparola.pipeline import poll_source
from storage import Store
from tests.conftest import T0, settings_from
from tests.discourseapi import FakeDiscourse, post

KEY = "discourse-api-key-SENTINEL-0123456789abcdef"

BROKEN = (42, "la-mia-aurora-barista-non-si-accende", "La mia Aurora Barista non si accende")
SWISS = (43, "spedite-le-capsule-aurora-in-svizzera", "Spedite le capsule Aurora in Svizzera?")
MOKA = (44, "meglio-la-moka-o-la-french-press", "Meglio la moka o la french press?")
QUOTE_OF_LUCA = (
    '<aside class="quote no-group" data-username="luca.p" data-post="3" data-topic="42"><div class="title">'
    '<div class="quote-controls"></div> luca.p:</div><blockquote><p>La spia rossa lampeggia tre volte</p>'
    "</blockquote></aside>"
)


def forum_posts() -> list[dict]:
    """Topic 42: three customers and a spammer, then staff replies to post 3 (Luca). Topic 43: a question, a
    second customer, then staff replies to the topic. Topic 44 is not about the brand; staff answers it too."""
    return [
        post(
            1001, BROKEN, 1, "marco_r", "<p>Da stamattina non si accende più. Che faccio?</p>", 60, name="Marco Rossi"
        ),
        post(1002, BROKEN, 2, "giulia_b", "<p>Stesso problema con la mia, comprata a gennaio.</p>", 55),
        post(1003, SWISS, 1, "lucia.t", "<p>Vorrei ordinare le capsule <b>Dolce</b> da Lugano.</p>", 50),
        post(1004, BROKEN, 3, "luca.p", "<p>La spia rossa lampeggia tre volte, poi niente.</p>", 45),
        post(1005, BROKEN, 4, "cheap-followers", "<p>10.000 follower a 5€ su <a href='#'>spam.example</a></p>", 40),
        post(1006, SWISS, 2, "piero", "<p>Anch'io, da Ginevra.</p>", 35),
        post(
            1007,
            BROKEN,
            5,
            "aurora_staff",
            QUOTE_OF_LUCA + "<p>Ciao Luca, tre lampeggi vuol dire decalcificazione: ti scriviamo in privato.</p>",
            30,
            reply_to=3,
            name="Assistenza Aurora",
        ),
        post(1008, SWISS, 3, "aurora_staff", "<p>Sì, spediamo in Svizzera: costi nella pagina Spedizioni.</p>", 20),
        post(1009, MOKA, 1, "chiara", "<p>Per l'espresso di casa cosa consigliate?</p>", 15),
        post(1010, MOKA, 2, "aurora_staff", "<p>Dipende dalla macinatura!</p>", 10, reply_to=1),
    ]


@pytest.fixture
def forum() -> Iterator[FakeDiscourse]:
    yield from FakeDiscourse(posts=forum_posts(), page_size=3).serve()


@pytest.fixture
def elsewhere() -> Iterator[FakeDiscourse]:
    """Another forum on another port: where a redirect leads."""
    yield from FakeDiscourse(posts=forum_posts()).serve()


def source(forum: FakeDiscourse, **options: object) -> DiscourseSource:
    options.setdefault("allow_private", ["127.0.0.1"])  # the double, by name, and nothing else
    options.setdefault("brand_authors", ["Aurora_Staff"])  # usernames match in any case
    options.setdefault("keywords", ["aurora"])
    return DiscourseSource(name="community", base_url=forum.base_url, **options)  # type: ignore[arg-type]


def states(store: Store) -> dict[str, str]:
    """Each stored mention's author and conversation state."""
    return {c.mention.author.handle: c.state for c in store.conversations.between(T0 - timedelta(days=1), T0)}


def test_a_staff_reply_to_post_3_answers_post_3_and_nobody_else(forum: FakeDiscourse, store: Store) -> None:
    poll = source(forum).poll(None, T0)
    assert [m.author.handle for m in poll.mentions] == [
        "piero",
        "cheap-followers",
        "luca.p",
        "lucia.t",
        "giulia_b",
        "marco_r",
    ]  # chiara's moka question names no brand
    luca, marco = poll.mentions[2], poll.mentions[5]
    assert luca.url == f"{forum.base_url}/t/la-mia-aurora-barista-non-si-accende/42/3"
    assert luca.thread_id == f"{forum.base_url}/t/42" and luca.platform == "forum"
    assert luca.text == "La mia Aurora Barista non si accende — La spia rossa lampeggia tre volte, poi niente."
    assert (marco.author.shown, marco.author.display_name) == ("@marco_r", "Marco Rossi")
    reply = next(r for r in poll.replies if r.url.endswith("/42/5"))
    assert (reply.in_reply_to, reply.to_author_id) == (luca.platform_id, "")  # exactly Luca's post
    assert reply.text == (  # the quote of Luca is his words, not the brand's
        "La mia Aurora Barista non si accende — Ciao Luca, tre lampeggi vuol dire decalcificazione: ti scriviamo in "
        "privato."
    )
    assert store.save_poll("community", "discourse", poll, T0).answered == 2
    assert states(store) == {
        "marco_r": "new",
        "giulia_b": "new",
        "luca.p": "answered",
        "cheap-followers": "new",  # the spam is not answered by an answer to Luca
        "lucia.t": "answered",
        "piero": "new",
    }
    answered = store.conversation(luca.key)
    assert answered is not None and answered.response_seconds == 15 * 60


def test_a_staff_reply_to_the_topic_answers_its_opening_post_only(forum: FakeDiscourse, store: Store) -> None:
    poll = source(forum).poll(None, T0)
    lucia = next(m for m in poll.mentions if m.author.handle == "lucia.t")
    topic_reply = next(r for r in poll.replies if r.url.endswith("/43/3"))
    assert (topic_reply.in_reply_to, topic_reply.to_author_id) == (lucia.platform_id, "")
    moka_reply = next(r for r in poll.replies if r.url.endswith("/44/2"))
    assert moka_reply.in_reply_to.endswith("/t/44/1")  # chiara's post, never stored: it answers nothing
    store.save_poll("community", "discourse", poll, T0)
    assert (states(store)["lucia.t"], states(store)["piero"]) == ("answered", "new")


def test_with_brand_post_answers_thread_a_topic_reply_answers_every_earlier_post(
    forum: FakeDiscourse, store: Store
) -> None:
    poll = source(forum, brand_post_answers_thread=True).poll(None, T0)
    topic_reply = next(r for r in poll.replies if r.url.endswith("/43/3"))
    assert topic_reply.to_author_id == EVERYONE_IN_THREAD
    assert store.save_poll("community", "discourse", poll, T0).answered == 3
    assert states(store) == {
        "marco_r": "new",  # a reply to post 3 still answers post 3 only: the reply structure wins
        "giulia_b": "new",
        "luca.p": "answered",
        "cheap-followers": "new",
        "lucia.t": "answered",
        "piero": "answered",
    }


def test_paging_goes_back_to_the_cursor_and_no_further(forum: FakeDiscourse, store: Store) -> None:
    first = source(forum).poll(None, T0)
    assert forum.paths() == [
        "/posts.json",
        "/posts.json?before=1008",
        "/posts.json?before=1005",
        "/posts.json?before=1002",
        "/posts.json?before=1001",
    ]
    assert first.cursor == {"last_id": 1010} and first.details == {"posts": 10, "pages": 5, "kept": 6}
    store.save_poll("community", "discourse", first, T0)

    forum.requests.clear()
    forum.posts.append(post(1011, BROKEN, 6, "giulia_b", "<p>Qualcuno mi risponde?</p>", 1, reply_to=2))
    second = source(forum).poll(store.cursor("community"), T0)  # a restart: a new source, the stored cursor
    assert forum.paths() == ["/posts.json"]  # 1011, 1010, 1009: the cursor is on the first page
    assert [m.url.rsplit("/", 2)[-2:] for m in second.mentions] == [["42", "6"]]
    assert second.mentions[0].in_reply_to == first.mentions[4].platform_id  # Giulia answers her own post 2
    assert second.replies == () and second.cursor == {"last_id": 1011}


def test_a_burst_bigger_than_max_pages_is_read_by_the_next_polls(
    forum: FakeDiscourse, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    forum.page_size = 2
    quiet = forum.posts[:2]
    burst, forum.posts = forum.posts[2:], quiet
    store.save_poll("community", "discourse", source(forum).poll(None, T0), T0)
    forum.posts = quiet + burst  # eight posts since: four pages of two, two pages a poll
    with caplog.at_level(logging.WARNING, logger="listener.discourse"):
        second = source(forum, max_pages=2, keywords=[]).poll(store.cursor("community"), T0)
    assert second.cursor == {"last_id": 1010, "backlog": [1007, 1002]}
    assert second.details["backlog"] == "post ids 1003 to 1006 still to read"
    assert "(ids 1003 to 1006) are read by the next polls" in caplog.text
    heard = [m.platform_id for m in second.mentions] + [r.platform_id for r in second.replies]
    cursor: Mapping[str, Any] | None = second.cursor
    for _ in range(2):
        forum.requests.clear()
        later = source(forum, max_pages=2, keywords=[]).poll(cursor, T0)
        assert forum.paths()[0] == "/posts.json"  # the newest first, every time
        heard += [m.platform_id for m in later.mentions] + [r.platform_id for r in later.replies]
        cursor = later.cursor
    assert cursor == {"last_id": 1010}  # the backlog is done
    assert sorted(heard) == sorted(source(forum).ident(p["topic_id"], p["post_number"]) for p in burst)


@pytest.mark.parametrize(
    ("retry_after", "paused"),
    [
        ("120", timedelta(seconds=120)),
        (format_datetime(T0 + timedelta(minutes=45), usegmt=True), timedelta(minutes=45)),
    ],
    ids=["seconds", "http-date"],
)
def test_a_429_pauses_the_source_as_long_as_discourse_asks(
    forum: FakeDiscourse, store: Store, retry_after: str, paused: timedelta
) -> None:
    forum.retry_after = retry_after
    with pytest.raises(RateLimited) as error:
        source(forum).poll(None, T0)
    assert error.value.retry_at == T0 + paused and "answered 429" in str(error.value)
    outcome = poll_source(
        SourceSpec("community", "discourse", 60, source(forum)), store, [], T0, 30, 900, random.Random(1)
    )
    health = store.source_health("community")
    assert outcome.error and health.next_retry_at == T0 + paused and health.consecutive_failures == 0


@pytest.mark.parametrize(
    ("body", "kind", "reason"),
    [
        (b"<!doctype html><html><body>Welcome</body></html>", "text/html", "not JSON (HTTP 200, text/html)"),
        (b'{"topic_list": {"topics": []}}', "application/json", "it has no 'latest_posts'"),
        (b'{"latest_posts": {"id": 1}}', "application/json", "'latest_posts' is an object, not a list"),
        (b"[1, 2]", "application/json", "the body is a list, not an object"),
        (b'{"latest_posts": [{"post": 1}, "x"]}', "application/json", "none of its 2 posts has an integer 'id'"),
    ],
    ids=["html-page", "other-json", "posts-not-a-list", "list", "posts-without-ids"],
)
def test_a_body_that_is_not_discourses_fails_the_poll_naming_what_was_wrong(
    forum: FakeDiscourse, body: bytes, kind: str, reason: str
) -> None:
    forum.garbage, forum.garbage_type = body, kind
    with pytest.raises(SourceError) as error:
        source(forum).poll(None, T0)
    assert reason in str(error.value) and "/posts.json" in str(error.value)


def test_a_post_of_the_wrong_shape_is_skipped_and_named(forum: FakeDiscourse, caplog: pytest.LogCaptureFixture) -> None:
    forum.posts[3]["created_at"] = "ieri"
    forum.posts[4]["topic_id"] = None
    with caplog.at_level(logging.WARNING, logger="listener.discourse"):
        poll = source(forum).poll(None, T0)
    assert "post 1004 skipped: 'created_at'" in caplog.text and "post 1005 skipped: 'topic_id' is null" in caplog.text
    assert len(poll.mentions) == 4 and poll.details["skipped"] == 2 and poll.cursor == {"last_id": 1010}


def test_the_api_key_travels_in_headers_only_and_never_shows(
    forum: FakeDiscourse, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    forum.api_key, forum.api_username = KEY, "passaparola"
    with pytest.raises(SourceError, match=r"answered 403\b.*the forum needs an api_key"):
        source(forum).poll(None, T0)
    wrong = source(forum, api_key=SecretStr("wrong-key-0123456789"), api_username="passaparola")
    with pytest.raises(SourceError, match="check api_key and api_username") as refused:
        wrong.poll(None, T0)
    assert "wrong-key" not in str(refused.value)

    caplog.set_level(logging.DEBUG)  # httpx and httpcore log every request at DEBUG
    keyed = source(forum, api_key=SecretStr(KEY), api_username="passaparola")
    assert len(keyed.poll(None, T0).mentions) == 6
    _, headers = forum.requests[-1]
    assert (headers["Api-Key"], headers["Api-Username"]) == (KEY, "passaparola")
    assert all(KEY not in p for p in forum.paths()) and KEY not in repr(keyed)
    forum.garbage = b"<html>oops</html>"
    with pytest.raises(SourceError) as failed:
        keyed.poll(None, T0)
    assert "HTTP Request" in caplog.text  # httpx did log the requests...
    assert KEY not in caplog.text and KEY not in str(failed.value)  # ...without the key

    settings = settings_from(
        '[[sources]]\ntype = "discourse"\nbase_url = "https://community.example"\n'
        'api_key = { env = "DISCOURSE_API_KEY" }\napi_username = "passaparola"\n',
        tmp_path,
        environ={"DISCOURSE_API_KEY": KEY},
    )
    dumped = configuration.dumps(settings)
    assert '"api_key": "**********"' in dumped and KEY not in dumped


def test_with_an_api_key_no_redirect_is_followed(forum: FakeDiscourse, elsewhere: FakeDiscourse) -> None:
    forum.redirect = elsewhere.base_url
    with pytest.raises(SourceError, match=r"redirects elsewhere.*set base_url to the forum's final address"):
        source(forum, api_key=SecretStr(KEY)).poll(None, T0)
    assert elsewhere.requests == []  # the key never reached it
    assert len(source(forum).poll(None, T0).mentions) == 6  # without a key, the checked redirect is followed
    assert "Api-Key" not in elsewhere.requests[0][1]


def test_private_addresses_are_refused_unless_allowed(forum: FakeDiscourse) -> None:
    with pytest.raises(SourceError, match="not a public address"):
        source(forum, allow_private=False).poll(None, T0)
    assert forum.requests == []


def test_through_the_pipeline_the_conversations_follow_the_staff_answers(forum: FakeDiscourse, tmp_path: Path) -> None:
    config = f"""
[storage]
path = "{tmp_path / "p.db"}"

[[sources]]
type = "discourse"
name = "community"
base_url = "{forum.base_url}/"
brand_authors = ["aurora_staff"]
keywords = ["aurora"]
allow_private = ["127.0.0.1"]
"""
    [spec] = settings_from(config, tmp_path).sources
    assert (spec.type, spec.source.brand_post_answers_thread) == ("discourse", False)
    store = Store.open(tmp_path / "p.db")
    try:
        outcome = poll_source(spec, store, [], T0, 30, 900, random.Random(1))
        assert (outcome.new_mentions, outcome.answered, outcome.error) == (6, 2, "")
        assert states(store) == {
            "marco_r": "new",
            "giulia_b": "new",
            "luca.p": "answered",
            "cheap-followers": "new",
            "lucia.t": "answered",
            "piero": "new",
        }
        assert store.source_health("community").details == {"posts": 10, "pages": 5, "kept": 6}

        later = T0 + timedelta(minutes=5)
        forum.posts += [
            post(1011, SWISS, 4, "aurora_staff", "<p>Sì Piero, anche a Ginevra.</p>", -4, reply_to=2),
            post(1012, BROKEN, 6, "aurora_staff", "<p>Marco, Giulia: vi scriviamo noi.</p>", -5),  # to the topic
        ]
        outcome = poll_source(spec, store, [], later, 30, 900, random.Random(1))
        assert (outcome.new_mentions, outcome.answered) == (0, 2)
        assert states(store) == {
            "marco_r": "answered",  # the reply to the topic answers its opening post...
            "giulia_b": "new",  # ...and nobody else in it, though she was named
            "luca.p": "answered",
            "cheap-followers": "new",
            "lucia.t": "answered",
            "piero": "answered",
        }
        assert store.cursor("community") == {"last_id": 1012}
    finally:
        store.close()


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ('base_url = "ftp://community.example"', "base_url 'ftp://community.example' is not an http(s) URL"),
        ('base_url = "https://community.example/?x=1"', "without query, fragment or credentials"),
        ('base_url = "https://community.example"\napi_username = "bot"', "api_username needs an api_key"),
        ('base_url = "https://community.example"\nmax_pages = 0', "max_pages must be between 1 and 50"),
        ('base_url = "https://community.example"\ncategory = [5]', "unknown key for type 'discourse'"),
    ],
    ids=["scheme", "query", "username-alone", "max-pages", "unknown-key"],
)
def test_config_problems_name_the_key_and_the_fix(tmp_path: Path, table: str, problem: str) -> None:
    with pytest.raises(ConfigError) as error:
        settings_from(f'[[sources]]\ntype = "discourse"\n{table}\n', tmp_path)
    assert len(error.value.problems) == 1 and problem in error.value.problems[0], error.value.problems


def test_categories_keep_only_their_posts(forum: FakeDiscourse) -> None:
    forum.posts[2]["category_id"] = forum.posts[5]["category_id"] = 7  # topic 43 lives in another category
    poll = source(forum, categories=[7]).poll(None, T0)
    assert [m.author.handle for m in poll.mentions] == ["piero", "lucia.t"]
    assert poll.cursor == {"last_id": 1010}  # the cursor moves over every category
