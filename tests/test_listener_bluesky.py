"""The `bluesky` source and its replier against a local Bluesky double (a PDS with the AppView behind it, and a
Jetstream): each stream heard once, brand replies answer, cursors survive restarts, Bluesky's refusals say what to do,
and an answer lands in the right thread exactly once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from listener.bluesky import BlueskyReplier, BlueskySource
from listener.model import Mention, RateLimited, SourceError
from listener.replying import Replier, ReplyError
from storage import Store
from tests.blueskyapi import BRAND_DID, BRAND_HANDLE, FakeBluesky, cid_of, stamp, tid
from tests.conftest import T0, free_port, settings_from

APP_PASSWORD = "sent-inel-app0-pass"  # the sentinel: never in a message, a URL or a header but createSession's body
KEYWORDS = ["Caffè Aurora", "auroracaffe"]
POST = "app.bsky.feed.post"
MARCO = "at://did:plc:6nzwhlcpycnn7yd25qpohrek/app.bsky.feed.post/3mg2qsv4p222b"
GIULIA = "at://did:plc:33ff4wg3zdmpzag5mkbywlvw/app.bsky.feed.post/3mg2sijqdk22b"
TOM = "at://did:plc:m4ceimgdm2hj5ch7is66ewhq/app.bsky.feed.post/3mg2t3ckfw22b"
SOFIA = "at://did:plc:hblwevgk3rlcemwhnq7elbrg/app.bsky.feed.post/3mg2tmc5gk22b"
EMMA = "at://did:plc:ludb7krc7bran4o43iwvqayg/app.bsky.feed.post/3mg2uh4has22b"
DARIO = "at://did:plc:lxrqmqrkw77im7zveymkfdyv/app.bsky.feed.post/3mg2uyynsc22b"
DARIO_DID = "did:plc:lxrqmqrkw77im7zveymkfdyv"
ANNOUNCEMENT = f"at://{BRAND_DID}/app.bsky.feed.post/3mfyi6cjm222b"
ANSWER_TO_MARCO = f"at://{BRAND_DID}/app.bsky.feed.post/3mg2t2fwv2225"
FESTIVAL = f"at://{BRAND_DID}/app.bsky.feed.post/3mg2uq2kjk227"
SENT_AT = T0 + timedelta(minutes=2)  # the PDS's clock for new posts


@pytest.fixture
def fake() -> Iterator[FakeBluesky]:
    yield from FakeBluesky.from_fixture(password=APP_PASSWORD, write_time=SENT_AT).serve()


def source(fake: FakeBluesky, **options: Any) -> BlueskySource:
    settings: dict[str, Any] = {
        "name": "bsky",
        "handle": BRAND_HANDLE,
        "app_password": SecretStr(APP_PASSWORD),
        "keywords": KEYWORDS,
        "base_url": fake.base_url,
        "timeout_seconds": 3.0,
    }
    return BlueskySource(**{**settings, **options})


def replier(fake: FakeBluesky, **options: Any) -> BlueskyReplier:
    made = source(fake, **options).replier()
    assert made is not None
    return made


def heard(fake: FakeBluesky, uri: str) -> Mention:
    """The mention passaparola heard for ``uri`` on a first poll."""
    return next(m for m in source(fake).poll(None, T0).mentions if m.platform_id == uri)


def new_post(fake: FakeBluesky, did: str, text: str, at: datetime, **record: Any) -> str:
    """Someone posts ``text`` at ``at``; returns the post's URI."""
    rkey = tid(at, 9)
    body = {"$type": POST, "createdAt": stamp(at), "langs": ["it"], "text": text, **record}
    uri = f"at://{did}/{POST}/{rkey}"
    fake.posts.append(
        {
            "uri": uri,
            "cid": cid_of(body),
            "author": fake.basic(did),
            "record": body,
            "replyCount": 0,
            "repostCount": 0,
            "likeCount": 0,
            "quoteCount": 0,
            "indexedAt": stamp(at + timedelta(milliseconds=300)),
            "viewer": {},
            "labels": [],
        }
    )
    return uri


def everything(fake: FakeBluesky) -> str:
    """Every request as text, except createSession's body (which has to carry the app password)."""
    kept = [{**r, "body": {} if r["nsid"] == "com.atproto.server.createSession" else r["body"]} for r in fake.requests]
    return json.dumps(kept) + json.dumps(fake.jetstream_requests)


# -- listening -------------------------------------------------------------------------------------------


def test_a_first_poll_hears_each_stream_once_and_the_brand_reply_answers_marco(fake: FakeBluesky, store: Store) -> None:
    poll = source(fake).poll(None, T0)

    assert [m.platform_id for m in poll.mentions] == [MARCO, GIULIA, TOM, SOFIA, EMMA, DARIO]  # oldest first
    assert FESTIVAL not in {m.platform_id for m in poll.mentions}  # the brand's own post with the keyword
    by_id = {m.platform_id: m for m in poll.mentions}
    tom = by_id[TOM]  # heard through the notifications only: a reply to the brand's announcement
    assert (tom.thread_id, tom.in_reply_to, tom.language_hint) == (ANNOUNCEMENT, ANNOUNCEMENT, "en")
    assert tom.author.handle == "tomreed.bsky.social" and tom.author.platform_id == "did:plc:m4ceimgdm2hj5ch7is66ewhq"
    assert tom.url == "https://bsky.app/profile/tomreed.bsky.social/post/3mg2t3ckfw22b"
    emma = by_id[EMMA]  # a quote: her own words, her own thread
    assert (emma.thread_id, emma.in_reply_to) == (EMMA, "")
    assert (emma.author.reach, emma.author.verified, emma.author.display_name) == (28700, True, "Emma Clarke")
    assert dict(emma.metrics) == {"like_count": 31, "repost_count": 4, "reply_count": 1, "quote_count": 0}
    assert by_id[SOFIA].author.reach == 15400 and not by_id[SOFIA].author.verified
    assert by_id[GIULIA].published_at == T0 - timedelta(minutes=50)  # createdAt, indexed 0.4 s later

    [answer] = poll.replies  # the brand's repost of Sofia is no reply, its announcement and festival post neither
    assert (answer.platform_id, answer.in_reply_to, answer.thread_id) == (ANSWER_TO_MARCO, MARCO, MARCO)
    assert (answer.to_author_id, answer.author_handle) == ("did:plc:6nzwhlcpycnn7yd25qpohrek", BRAND_HANDLE)

    result = store.save_poll("bsky", "bluesky", poll, T0)
    assert (result.new_mentions, result.answered) == (6, 1)
    marco = store.conversation(f"bluesky:{MARCO}")
    assert marco is not None and marco.state == "answered" and marco.response_seconds == 40 * 60
    giulia = store.conversation(f"bluesky:{GIULIA}")
    assert giulia is not None and giulia.state == "new"


def test_the_requests_are_bluesky_s_own_and_the_app_password_travels_only_to_sign_in(fake: FakeBluesky) -> None:
    source(fake).poll(None, T0)

    searches = fake.calls("app.bsky.feed.searchPosts")
    first = searches[0]["query"]
    assert (first["q"], first["sort"], first["since"]) == (["Caffè Aurora"], ["latest"], ["2026-03-01T09:00:00.000Z"])
    assert [s["query"].get("cursor") for s in searches if s["query"]["q"] == ["Caffè Aurora"]] == [None, ["2"], ["4"]]
    [notes, *_] = fake.calls("app.bsky.notification.listNotifications")
    assert sorted(notes["query"]["reasons"]) == ["mention", "quote", "reply"]  # no likes, follows, reposts
    [feed, *_] = fake.calls("app.bsky.feed.getAuthorFeed")
    assert (feed["query"]["actor"], feed["query"]["filter"]) == ([BRAND_DID], ["posts_with_replies"])
    [sign_in] = fake.calls("com.atproto.server.createSession")
    assert sign_in["body"] == {"identifier": BRAND_HANDLE, "password": APP_PASSWORD}
    reads = [r for r in fake.requests if r["nsid"] != "com.atproto.server.createSession"]
    assert reads and all(r["headers"]["Authorization"] == f"Bearer {fake.issued[0]}" for r in reads)
    assert APP_PASSWORD not in everything(fake) and APP_PASSWORD not in repr(source(fake))
    assert not any(fake.issued[0] in json.dumps(r["query"]) for r in fake.requests)  # the token: headers only


def test_a_restart_resumes_each_stream_from_its_cursor_and_stores_nothing_twice(
    fake: FakeBluesky, store: Store
) -> None:
    store.save_poll("bsky", "bluesky", source(fake).poll(None, T0), T0)
    nadia = "did:plc:oxc5rnfipti4dqpjh6ukyevn"
    later = new_post(fake, nadia, "Caffè Aurora, il decaffeinato è finito ovunque?", T0 + timedelta(minutes=3))
    fake.requests.clear()

    again = source(fake).poll(store.cursor("bsky"), T0 + timedelta(minutes=10))  # a new process: a new source

    result = store.save_poll("bsky", "bluesky", again, T0 + timedelta(minutes=10))
    assert result.new_mentions == 1 and {m.platform_id for m in again.mentions} >= {later}
    search = fake.calls("app.bsky.feed.searchPosts")[0]["query"]
    assert search["since"] == ["2026-03-02T08:50:00.000Z"]  # Dario's post at 08:55, less five minutes
    assert len(fake.calls("app.bsky.notification.listNotifications")) == 1  # the older page is not read again
    [profiles] = fake.calls("app.bsky.actor.getProfiles")
    assert profiles["query"]["actors"] == [nadia]  # the others' followers are kept in the cursor for a day
    assert again.cursor is not None and again.cursor["search"]["Caffè Aurora"] == stamp(T0 + timedelta(minutes=3))


def test_followers_are_looked_up_25_at_a_time_and_trusted_for_a_day(fake: FakeBluesky) -> None:
    fans = [f"did:plc:fan{chr(97 + n // 26)}{chr(97 + n % 26)}{'q' * 19}" for n in range(30)]
    for n, did in enumerate(fans):
        fake.profiles[did] = {
            **fake.profiles[DARIO_DID],
            "did": did,
            "handle": f"fan{n}.bsky.social",
            "displayName": f"Fan {n}",
            "followersCount": n,
        }
        new_post(fake, did, f"Caffè Aurora numero {n}", T0 - timedelta(minutes=60 - n))
    fake.page_size = 100
    plain = source(fake, streams=["search"], keywords=["Caffè Aurora"])

    first = plain.poll(None, T0)
    sizes = [len(r["query"]["actors"]) for r in fake.calls("app.bsky.actor.getProfiles")]
    assert sizes == [25, 9]  # 30 fans and Marco, Sofia, Emma, Dario
    fan = next(m for m in first.mentions if m.author.platform_id == fans[7])
    assert (fan.author.reach, fan.author.handle) == (7, "fan7.bsky.social")

    fake.requests.clear()
    plain.poll(first.cursor, T0 + timedelta(hours=23))  # hears Dario's post again (the five minutes of overlap)
    assert fake.calls("app.bsky.actor.getProfiles") == []
    stale = plain.poll(first.cursor, T0 + timedelta(hours=25))
    assert [r["query"]["actors"] for r in fake.calls("app.bsky.actor.getProfiles")] == [[DARIO_DID]]
    assert stale.cursor is not None and list(stale.cursor["profiles"]) == [DARIO_DID]  # the stale ones are gone


def test_a_long_running_daemon_signs_in_once_and_lets_the_sdk_refresh_the_session(fake: FakeBluesky) -> None:
    fake.access_seconds = 600  # shorter than the SDK's 15 minutes of margin: it refreshes before each call
    listening = source(fake, streams=["posts"])
    for minutes in (0, 1, 2):
        listening.poll(None, T0 + timedelta(minutes=minutes))
    assert len(fake.calls("com.atproto.server.createSession")) == 1  # 30 a 5 minutes is Bluesky's limit
    assert len(fake.calls("com.atproto.server.refreshSession")) >= 3


def test_an_expired_session_is_signed_in_again_once(fake: FakeBluesky) -> None:
    listening = source(fake, streams=["posts"])
    listening.poll(None, T0)
    fake.expire_tokens()  # Bluesky now answers ExpiredToken to the session the SDK believes fresh

    poll = listening.poll(None, T0 + timedelta(minutes=1))
    assert poll.replies and len(fake.calls("com.atproto.server.createSession")) == 2
    assert poll.details["sign_ins"] == 2

    fake.expire_every_token = True  # whatever it signs in with: one more sign-in, then a clear error
    with pytest.raises(SourceError, match="even after signing in again") as error:
        listening.poll(None, T0 + timedelta(minutes=2))
    assert "App passwords" in str(error.value) and "ExpiredToken" in str(error.value)
    assert len(fake.calls("com.atproto.server.createSession")) == 3
    assert APP_PASSWORD not in str(error.value)


@pytest.mark.parametrize(
    ("fault", "advice"),
    [
        (None, "create a new app password (Settings > Privacy and security > App passwords)"),
        (("AuthFactorTokenRequired", "A sign in code has been sent to your email address"), "emailed sign-in code"),
        (("AccountTakedown", "Account has been taken down"), "is taken down or deactivated"),
    ],
)
def test_a_refused_sign_in_names_what_to_renew_and_never_the_password(
    fake: FakeBluesky, fault: tuple[str, str] | None, advice: str
) -> None:
    if fault is None:
        fake.password = "abcd-efgh-ijkl-mnop"  # the secret in the config is an old app password
    else:
        fake.fault("com.atproto.server.createSession", 401, *fault)
    with pytest.raises(SourceError) as error:
        source(fake).poll(None, T0)
    message = str(error.value)
    assert advice in message and BRAND_HANDLE in message and APP_PASSWORD not in message
    if fault is None:
        assert "AuthenticationRequired: Invalid identifier or password" in message
    assert [r["nsid"] for r in fake.requests] == ["com.atproto.server.createSession"]


def test_a_rate_limit_pauses_the_source_until_bluesky_s_reset(fake: FakeBluesky) -> None:
    reset = T0 + timedelta(minutes=7)
    fake.fault("app.bsky.feed.searchPosts", 429, "RateLimitExceeded", "Rate Limit Exceeded", int(reset.timestamp()))
    with pytest.raises(RateLimited, match="Rate Limit Exceeded") as error:
        source(fake).poll(None, T0)
    assert error.value.retry_at == reset and "09:07 UTC" in str(error.value)

    later = T0 + timedelta(minutes=4)
    fake.fault(
        "com.atproto.server.createSession", 429, "RateLimitExceeded", "Rate Limit Exceeded", int(later.timestamp())
    )
    with pytest.raises(RateLimited, match=r"sign-ins \(30 a 5 minutes") as signing:
        source(fake).poll(None, T0)
    assert signing.value.retry_at == later


def test_bluesky_failing_or_unreachable_is_a_source_error_that_will_be_retried(fake: FakeBluesky) -> None:
    fake.fault("app.bsky.feed.getAuthorFeed", 502, "UpstreamFailure", "Upstream Failure")
    with pytest.raises(SourceError, match=r"Bluesky answered 502 \(UpstreamFailure: Upstream Failure\); will retry"):
        source(fake, streams=["posts"]).poll(None, T0)
    fake.fault("app.bsky.feed.getAuthorFeed", 500, "InternalServerError", "Internal Server Error")
    with pytest.raises(SourceError, match="answered 500"):
        source(fake, streams=["posts"]).poll(None, T0)
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(SourceError, match=f"could not be reached at {closed}"):
        source(fake, base_url=closed).poll(None, T0)
    with pytest.raises(SourceError, match="no such account"):
        source(fake, handle="nobody.bsky.social", app_password=SecretStr(""), streams=["posts"]).poll(None, T0)


def test_without_an_app_password_it_reads_the_public_posts_and_cannot_answer(fake: FakeBluesky) -> None:
    public = source(fake, app_password=SecretStr(""), streams=["posts"])
    assert public.replier() is None
    poll = public.poll(None, T0)
    assert [r.platform_id for r in poll.replies] == [ANSWER_TO_MARCO]
    assert fake.calls("com.atproto.server.createSession") == []
    assert all("Authorization" not in r["headers"] for r in fake.requests)


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"handle": "AuroraCaffe"}, 'write the whole domain, e.g. "auroracaffe.bsky.social"'),
        ({"app_password": SecretStr("la-mia-password-vera")}, "never use the account password"),
        ({"app_password": SecretStr("")}, "search and notifications need the account"),
        ({"keywords": []}, "search needs keywords"),
        ({"jetstream_url": "https://jetstream2.us-east.bsky.network/subscribe"}, "must be a ws(s) URL"),
        ({"streams": [], "jetstream_url": ""}, "nothing to listen to"),
        ({"page_size": 101}, "between 1 and 100"),
    ],
)
def test_a_wrong_configuration_says_what_to_write(options: dict[str, Any], problem: str) -> None:
    settings: dict[str, Any] = {"name": "bsky", "handle": BRAND_HANDLE, "app_password": SecretStr(APP_PASSWORD)}
    with pytest.raises(ValueError) as error:
        BlueskySource(**{**settings, "keywords": KEYWORDS, **options})
    assert problem in str(error.value) and "la-mia-password-vera" not in str(error.value)


def test_the_config_takes_the_app_password_as_a_secret_reference(tmp_path: Path) -> None:
    from passaparola.config import ConfigError

    text = (
        '[[sources]]\ntype = "bluesky"\nhandle = "@AuroraCaffe.bsky.social"\n'
        'app_password = { env = "BLUESKY_APP_PASSWORD" }\nkeywords = ["Caffè Aurora"]\n'
        'jetstream_url = "wss://jetstream2.us-east.bsky.network/subscribe"\n'
    )
    [spec] = settings_from(text, tmp_path, {"BLUESKY_APP_PASSWORD": APP_PASSWORD}).sources
    built = spec.source
    assert isinstance(built, BlueskySource) and built.handle == BRAND_HANDLE
    assert built.app_password.get_secret_value() == APP_PASSWORD and APP_PASSWORD not in repr(built)
    assert built.replier() is not None
    with pytest.raises(ConfigError) as error:
        settings_from('[[sources]]\ntype = "bluesky"\nhandle = "auroracaffe.bsky.social"\n', tmp_path)
    assert error.value.problems == [
        'sources[0]: search and notifications need the account: app_password = { env = "BLUESKY_APP_PASSWORD" } '
        "(an app password, from Settings > Privacy and security > App passwords)"
    ]


# -- Jetstream -------------------------------------------------------------------------------------------


def test_jetstream_keeps_posts_with_a_keyword_and_resumes_from_its_cursor_after_a_restart(
    fake: FakeBluesky, store: Store
) -> None:
    luca, chiara = fake.events[0], fake.events[6]
    with fake.jetstream() as url:
        live = {"streams": [], "jetstream_url": url, "listen_seconds": 3.0}
        early = T0 - timedelta(minutes=3, seconds=20)
        first = source(fake, **live).poll(None, early)  # the first poll starts at its own time, not at the past
        store.save_poll("bsky", "bluesky", first, early)
        assert [m.text for m in first.mentions] == [luca["commit"]["record"]["text"]]
        luca_heard = first.mentions[0]
        assert luca_heard.platform_id == f"at://{luca['did']}/{POST}/{luca['commit']['rkey']}"
        assert (luca_heard.author.handle, luca_heard.author.reach) == ("lucaferri.bsky.social", 230)
        assert first.cursor is not None and set(first.cursor) == {"jetstream", "profiles"}
        assert first.cursor["jetstream"] == {"time_us": luca["time_us"]}

        restarted = source(fake, **live)  # a new process, the stored cursor
        second = restarted.poll(store.cursor("bsky"), T0 + timedelta(seconds=90))
        result = store.save_poll("bsky", "bluesky", second, T0 + timedelta(seconds=90))

    assert result.new_mentions == 1  # Chiara; Luca's post came again (the cursor is inclusive) and is known
    assert [m.author.handle for m in second.mentions] == ["lucaferri.bsky.social", "chiaraverdi.bsky.social"]
    assert second.mentions[1].platform_id == f"at://{chiara['did']}/{POST}/{chiara['commit']['rkey']}"
    # the brand's own post, a like, a delete, an identity event and the unrelated posts are not mentions
    early_us = int(early.timestamp() * 1_000_000)
    assert fake.jetstream_requests == [
        f"/subscribe?wantedCollections=app.bsky.feed.post&cursor={early_us}",
        f"/subscribe?wantedCollections=app.bsky.feed.post&cursor={luca['time_us']}",
    ]
    assert second.cursor is not None and second.cursor["jetstream"]["time_us"] == fake.events[7]["time_us"]
    assert second.details["jetstream"]["events"] == 7  # all but the like, which was not asked for


def test_a_jetstream_that_cannot_be_opened_fails_the_poll_to_be_retried(fake: FakeBluesky) -> None:
    closed = f"ws://127.0.0.1:{free_port()}/subscribe"
    with pytest.raises(SourceError, match=r"could not be opened .*retries with backoff"):
        source(fake, streams=[], jetstream_url=closed).poll({"jetstream": {"time_us": 1}}, T0)


# -- answering -------------------------------------------------------------------------------------------


def test_a_reply_lands_in_the_thread_once_and_the_next_poll_hears_it_as_the_answer(
    fake: FakeBluesky, store: Store
) -> None:
    first = source(fake).poll(None, T0)
    store.save_poll("bsky", "bluesky", first, T0)
    tom = next(m for m in first.mentions if m.platform_id == TOM)
    answering = replier(fake)
    assert isinstance(answering, Replier)
    assert (answering.channel, answering.account, answering.cost_usd("Hi Tom")) == ("bluesky", BRAND_HANDLE, 0.0)
    text = (
        "Hi Tom! Yes, they fit every Original machine. Questions? @auroraaiuta.bsky.social https://caffeaurora.it/faq"
    )

    sent = answering.reply(tom, text, SENT_AT)

    [write] = fake.writes
    record = write["record"]
    announcement, tom_view = fake.post(ANNOUNCEMENT), fake.post(TOM)
    assert announcement is not None and tom_view is not None
    root, parent = record["reply"]["root"], record["reply"]["parent"]
    assert (root["uri"], root["cid"]) == (ANNOUNCEMENT, announcement["cid"])  # the thread's root, from Tom's record
    assert (parent["uri"], parent["cid"]) == (TOM, tom_view["cid"])
    assert (record["text"], record["createdAt"], record["langs"]) == (text, "2026-03-02T09:02:00.000Z", ["en"])
    mention, link = sorted(record["facets"], key=lambda f: f["index"]["byteStart"])
    assert mention["features"] == [
        {"$type": "app.bsky.richtext.facet#mention", "did": "did:plc:vqlztjrrl3dvc2qs2zltxzbt"}
    ]
    start, end = mention["index"]["byteStart"], mention["index"]["byteEnd"]
    assert text.encode()[start:end] == b"@auroraaiuta.bsky.social"
    assert link["features"][0]["uri"] == "https://caffeaurora.it/faq"
    [create] = fake.calls("com.atproto.repo.createRecord")
    assert create["body"]["repo"] == BRAND_DID and create["body"]["collection"] == POST
    assert sent.platform_id == write["uri"] and sent.url.startswith(f"https://bsky.app/profile/{BRAND_HANDLE}/post/")
    assert (sent.text, sent.published_at) == (text, SENT_AT)

    later = source(fake).poll(store.cursor("bsky"), SENT_AT + timedelta(minutes=1))
    ours = next(r for r in later.replies if r.platform_id == sent.platform_id)
    assert (ours.in_reply_to, ours.thread_id, ours.to_author_id) == (TOM, ANNOUNCEMENT, tom.author.platform_id)
    store.save_poll("bsky", "bluesky", later, SENT_AT + timedelta(minutes=1))
    tom_now = store.conversation(f"bluesky:{TOM}")
    assert tom_now is not None and tom_now.state == "answered"
    assert len(fake.writes) == 1 and APP_PASSWORD not in everything(fake)


def test_a_reply_to_a_post_that_starts_a_thread_names_it_as_root_and_parent(fake: FakeBluesky) -> None:
    giulia = heard(fake, GIULIA)
    replier(fake).reply(giulia, "Giulia, ci scusiamo: ti scriviamo in privato per il rimborso.", SENT_AT)
    [write] = fake.writes
    giulia_view = fake.post(GIULIA)
    assert giulia_view is not None
    refs = {name: (ref["uri"], ref["cid"]) for name, ref in write["record"]["reply"].items() if name != "$type"}
    assert refs == {"root": (GIULIA, giulia_view["cid"]), "parent": (GIULIA, giulia_view["cid"])}
    assert write["record"]["langs"] == ["it"]
    assert "facets" not in write["record"]


def test_a_post_that_got_no_answer_is_unknown_then_found_not_posted_again(fake: FakeBluesky) -> None:
    giulia = heard(fake, GIULIA)
    fake.stall_after_write = 2.0  # the PDS stores the post, then the answer never comes in time
    answering = replier(fake, timeout_seconds=0.5)
    text = "Giulia,  ci scusiamo:\nti scriviamo in privato per il rimborso."
    with pytest.raises(ReplyError) as error:
        answering.reply(giulia, text, SENT_AT)
    assert error.value.problem == "unknown" and error.value.transient and "may exist" in str(error.value)
    fake.stall_after_write = 0.0
    [write] = fake.writes
    # Newer posts of the brand push ours to the second page of its repository
    for n in range(3):
        fake.write_time = SENT_AT + timedelta(minutes=n + 1)
        fake.create(BRAND_DID, {"$type": POST, "text": f"Buongiorno {n}", "createdAt": stamp(fake.write_time)})

    found = answering.find(giulia, "Giulia, ci scusiamo: ti scriviamo in privato per il rimborso.", SENT_AT, T0)
    assert found is not None and found.platform_id == write["uri"] and found.published_at == SENT_AT
    assert len(fake.calls("com.atproto.repo.createRecord")) == 1  # the lookup posted nothing
    pages = [r["query"].get("cursor") for r in fake.calls("com.atproto.repo.listRecords")]
    assert len(pages) == 2 and pages[0] is None  # it followed the cursor of the brand's own repository
    assert answering.find(giulia, "Altre parole", SENT_AT, T0) is None
    assert answering.find(replace(giulia, platform_id=SOFIA), text, SENT_AT, T0) is None  # another thread
    assert answering.find(giulia, text, SENT_AT + timedelta(minutes=2), T0) is None  # older than asked for


def test_check_counts_graphemes_and_bytes_as_bluesky_does(fake: FakeBluesky) -> None:
    answering = replier(fake)
    family = "👩‍👩‍👧‍👦"  # one grapheme, seven code points, 25 bytes
    assert answering.check("é" * 300) == "" and answering.check("e\u0301" * 300) == ""  # composed or not: 300
    assert answering.check("e\u0301" * 301) == "301 characters; Bluesky allows 300: shorten it"
    assert answering.check(family * 120) == ""  # 120 graphemes, 840 code points, 3000 bytes
    assert answering.check(family * 121) == "3025 bytes of text; Bluesky allows 3000: shorten it"
    assert answering.check("   ") == "the reply is empty: write something to post"
    with pytest.raises(ReplyError) as error:
        answering.reply(heard(fake, GIULIA), "a" * 301, SENT_AT)
    assert error.value.problem == "too_long" and fake.writes == []


def test_bluesky_s_own_length_check_is_too_long(fake: FakeBluesky) -> None:
    answering = replier(fake)
    giulia = heard(fake, GIULIA)
    answering.check = lambda text: ""  # type: ignore[method-assign]  # a draft that passed an older count
    with pytest.raises(ReplyError) as error:
        answering.reply(giulia, "a" * 301, SENT_AT)
    assert error.value.problem == "too_long" and "300 graphemes" in str(error.value) and fake.writes == []


@pytest.mark.parametrize(
    ("uri", "problem", "words"),
    [
        (DARIO, "refused", "thread gate"),  # Dario allows no replies
        (f"at://{BRAND_DID}/{POST}/3mg2zzzzzzz2b", "deleted", "the post is gone"),
    ],
)
def test_a_post_that_cannot_be_answered_is_refused_before_writing(
    fake: FakeBluesky, uri: str, problem: str, words: str
) -> None:
    dario = heard(fake, DARIO)
    with pytest.raises(ReplyError) as error:
        replier(fake).reply(replace(dario, platform_id=uri), "Dario, ci scusiamo.", SENT_AT)
    assert error.value.problem == problem and words in str(error.value) and fake.writes == []


def test_write_refusals_say_what_to_do_and_never_hold_the_password(fake: FakeBluesky) -> None:
    giulia = heard(fake, GIULIA)
    answering = replier(fake)
    reset = T0 + timedelta(minutes=9)
    fake.fault("com.atproto.repo.createRecord", 429, "RateLimitExceeded", "Rate Limit Exceeded", int(reset.timestamp()))
    with pytest.raises(ReplyError) as limited:
        answering.reply(giulia, "Ciao Giulia!", SENT_AT)
    assert limited.value.problem == "rate_limited" and limited.value.retry_at == reset

    fake.fault("com.atproto.repo.createRecord", 500, "InternalServerError", "Internal Server Error")
    with pytest.raises(ReplyError) as failed:
        answering.reply(giulia, "Ciao Giulia!", SENT_AT)
    assert failed.value.problem == "unavailable" and "nothing was posted" in str(failed.value)

    fake.expire_tokens()  # an expired session is signed in again and the post goes out, once
    sent = answering.reply(giulia, "Ciao Giulia!", SENT_AT)
    assert [w["uri"] for w in fake.writes] == [sent.platform_id]

    fake.password = "abcd-efgh-ijkl-mnop"  # the app password was revoked: no session survives
    fake.expire_every_token = True
    with pytest.raises(ReplyError) as revoked:
        answering.reply(giulia, "Ciao di nuovo!", SENT_AT)
    assert revoked.value.problem == "expired_token" and "App passwords" in str(revoked.value)
    for error in (limited, failed, revoked):
        assert APP_PASSWORD not in str(error.value)
    assert len(fake.writes) == 1


def test_an_unreachable_pds_is_unavailable_for_the_reply_and_the_lookup(fake: FakeBluesky) -> None:
    giulia = heard(fake, GIULIA)
    closed = replier(fake, base_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ReplyError) as down:
        closed.reply(giulia, "Ciao!", SENT_AT)
    assert down.value.problem == "unavailable" and down.value.transient
    with pytest.raises(ReplyError) as lookup:
        closed.find(giulia, "Ciao!", SENT_AT, SENT_AT)
    assert lookup.value.problem == "unavailable" and fake.writes == []


def test_the_replier_shares_the_source_s_session(fake: FakeBluesky) -> None:
    listening = source(fake)
    listening.poll(None, T0)
    answering = listening.replier()
    assert answering is not None and answering is listening.replier()
    answering.reply(heard(fake, GIULIA), "Ciao Giulia!", SENT_AT)
    # one sign-in for this source's polls and replies; ``heard`` used a source of its own
    assert len(fake.calls("com.atproto.server.createSession")) == 2
