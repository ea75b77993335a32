"""The `youtube` source and its replier against a local YouTube Data API double: comments and replies heard once, the
channel's replies answer whom they address, a restart hears a late reply in an old thread, the day's quota is
counted in Pacific time and stops the reads, errors say what to renew, and a reply is posted exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr

from listener.model import Mention, RateLimited, SourceError
from listener.replying import Replier, ReplyError
from listener.youtube import YouTubeReplier, YouTubeSource
from storage import Store
from tests.conftest import T0, free_port, settings_from
from tests.youtubeapi import CHANNEL_ID, SCOPE, FakeYouTube, google_error, rate_limited

API_KEY = "AIzaSy-api-key-SENTINEL"
CLIENT_ID = "1234-client-SENTINEL.apps.googleusercontent.com"
CLIENT_SECRET = "GOCSPX-client-secret-SENTINEL"
REFRESH_TOKEN = "1//refresh-token-SENTINEL"
SECRETS = (API_KEY, CLIENT_SECRET, REFRESH_TOKEN)
SENT_AT = T0 + timedelta(minutes=1)  # YouTube's clock for the new replies
#: The next midnight in Pacific time after T0 (2026-03-02 09:00 UTC is 01:00 PST): 08:00 UTC the next day.
PACIFIC_MIDNIGHT = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)

GIULIA = "UgzGiuliaMokaPerde004AaABAg"  # a complaint the channel answered; Marco chimed in
TOM = "UgwTomBlendUK00000004AaABAg"  # a question, unanswered
LUCA = "UgxLucaDecaf000000004AaABAg"  # seven replies: more than the replies part carries
WELCOME = "UgzAuroraBenvenuti04AaABAg"  # the channel's own top-level comment; Elena asks under it


@pytest.fixture
def yt() -> Iterator[FakeYouTube]:
    double = FakeYouTube.load(
        api_key=API_KEY,
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        refresh_token=REFRESH_TOKEN,
        write_time=SENT_AT,
    )
    yield from double.serve()


def source(yt: FakeYouTube, **changes: Any) -> YouTubeSource:
    options: dict[str, Any] = {
        "name": "canale",
        "channel_id": CHANNEL_ID,
        "api_key": SecretStr(API_KEY),
        "base_url": yt.base_url,
        "token_uri": yt.token_uri,
    }
    return YouTubeSource(**(options | changes))


def answering(yt: FakeYouTube, **changes: Any) -> YouTubeSource:
    """A source with the channel owner's OAuth client: it can reply."""
    oauth = {
        "client_id": SecretStr(CLIENT_ID),
        "client_secret": SecretStr(CLIENT_SECRET),
        "refresh_token": SecretStr(REFRESH_TOKEN),
    }
    return source(yt, **(oauth | changes))


def calls(yt: FakeYouTube, resource: str, method: str = "GET") -> list[dict[str, Any]]:
    return [r for r in yt.requests if urlsplit(r["url"]).path.endswith(f"/{resource}") and r["method"] == method]


def no_secret_in(*texts: str) -> bool:
    return not any(secret in text for secret in SECRETS for text in texts)


def heard(yt: FakeYouTube, comment_id: str) -> Mention:
    return next(m for m in source(yt).poll(None, T0).mentions if m.platform_id == comment_id)


def test_the_first_poll_hears_threads_and_replies_and_the_channel_replies_answer_whom_they_address(
    yt: FakeYouTube, store: Store
) -> None:
    poll = source(yt).poll(None, T0)

    assert [m.platform_id.rsplit(".", 1)[-1] for m in poll.mentions] == [
        TOM,
        GIULIA,
        "9kMarco000000000001",
        "UgySofiaBlendTop00004AaABAg",
        LUCA,
        "9kAnna0000000000001",
        "9kKate0000000000002",
        "9kAnna0000000000003",
        "9kPaolo000000000004",
        "9kLuca0000000000006",
        "9kElena000000000001",
    ]
    giulia, marco = poll.mentions[1], poll.mentions[2]
    assert (giulia.author.handle, giulia.author.shown, giulia.author.platform_id) == (
        "giuliarossi",
        "@giuliarossi",
        "UCgiuliaRossi00000000001",
    )
    assert giulia.text.startswith("La moka nuova perde acqua") and giulia.metrics == {"likes": 7, "replies": 2}
    assert (giulia.thread_id, giulia.in_reply_to) == (GIULIA, "")
    assert giulia.url == f"https://www.youtube.com/watch?v=Au7oraMoka1&lc={GIULIA}"
    assert (marco.thread_id, marco.in_reply_to) == (GIULIA, GIULIA)  # a reply answers the thread's top comment
    assert marco.url == f"https://www.youtube.com/watch?v=Au7oraMoka1&lc={GIULIA}.9kMarco000000000001"
    assert [m.platform_id for m in poll.mentions if m.thread_id == LUCA][-1].endswith("9kLuca0000000000006")
    sofia = poll.mentions[3]
    assert sofia.text.endswith("complimenti a tutto il team! ☕")  # plain text, as typed, not HTML

    replies = {r.platform_id.rsplit(".", 1)[-1]: r for r in poll.replies}
    assert set(replies) == {"9kAurora00000000002", "9kAurora00000000005", "9kAurora00000000007", WELCOME}
    to_giulia = replies["9kAurora00000000002"]
    assert (to_giulia.in_reply_to, to_giulia.to_author_id, to_giulia.author_handle) == (
        GIULIA,
        "UCgiuliaRossi00000000001",
        "AuroraCaffe",
    )
    to_anna = replies["9kAurora00000000005"]  # "@annaneri Hi Anna, ...": answers Anna, not Luca
    assert (to_anna.in_reply_to, to_anna.to_author_id) == (f"{LUCA}.9kAnna0000000000003", "UCannaNeri00000000000006")
    assert replies[WELCOME].in_reply_to == "" and replies[WELCOME].to_author_id == ""  # the channel's own comment
    # Luca's thread has seven replies; the replies part carries five, so the thread's replies were read.
    [read] = calls(yt, "comments")
    assert read["query"] == {"part": "snippet", "parentId": LUCA, "maxResults": "100", "textFormat": "plainText"}

    result = store.save_poll("canale", "youtube", poll, T0)
    assert (result.new_mentions, result.answered) == (11, 5)
    states = {
        m.platform_id.rsplit(".", 1)[-1]: c.state
        for m in poll.mentions
        if (c := store.conversation(f"youtube:{m.platform_id}")) is not None
    }
    assert {k for k, state in states.items() if state == "answered"} == {
        GIULIA,  # the reply under her complaint
        LUCA,  # the channel's second reply in his thread, and his own later reply with it
        "9kLuca0000000000006",
        "9kAnna0000000000001",  # both of Anna's, by the reply that names her
        "9kAnna0000000000003",
    }
    complaint = store.conversation(f"youtube:{GIULIA}")
    assert complaint is not None and complaint.response_seconds == 30 * 60
    # Marco, Kate and Paolo spoke in answered threads, but nobody answered them; Tom, Sofia and Elena wait too.
    assert states["9kMarco000000000001"] == states["9kKate0000000000002"] == states[TOM] == "new"


def test_threads_are_read_page_by_page_with_youtubes_page_tokens(yt: FakeYouTube) -> None:
    everything = source(yt).poll(None, T0)
    whole, whole_replies = [m.platform_id for m in everything.mentions], everything.replies
    yt.requests.clear()
    yt.page_size = 2  # two threads a page, two replies a page

    paged = source(yt, max_reply_pages=4).poll(None, T0)

    assert [m.platform_id for m in paged.mentions] == whole
    walk = calls(yt, "commentThreads")
    assert [r["query"].get("pageToken") is None for r in walk] == [True, False, False]
    assert all(
        r["query"] | {"pageToken": ""}
        == {
            "part": "snippet,replies",
            "allThreadsRelatedToChannelId": CHANNEL_ID,
            "order": "time",
            "maxResults": "100",
            "textFormat": "plainText",
            "pageToken": "",
        }
        for r in walk
    )
    assert [r.platform_id for r in paged.replies] == [r.platform_id for r in whole_replies]
    assert len(calls(yt, "comments")) == 4  # Luca's seven replies, two a page
    assert not paged.details["truncated"]

    yt.requests.clear()
    bounded = source(yt, max_pages=2).poll(None, T0)
    assert len(calls(yt, "commentThreads")) == 2  # a poll reads at most max_pages pages
    assert WELCOME not in {m.thread_id for m in bounded.mentions}


def test_a_restart_hears_a_late_reply_in_an_old_thread_and_stores_nothing_twice(yt: FakeYouTube, store: Store) -> None:
    first = source(yt).poll(None, T0)
    store.save_poll("canale", "youtube", first, T0)
    assert store.cursor("canale") is not None
    giulia_later = yt.add_reply(
        GIULIA, "@giuliarossi", "UCgiuliaRossi00000000001", "Fatto, vi ho scritto. Grazie!", T0 + timedelta(hours=1)
    )
    yt.requests.clear()

    # A new process: a fresh source, the stored cursor.
    later = T0 + timedelta(hours=2)
    again = source(yt).poll(store.cursor("canale"), later)

    # Tom's thread is inside the overlap; Giulia's, below it, is read again because its reply count grew.
    assert [m.platform_id for m in again.mentions] == [TOM, GIULIA, f"{GIULIA}.9kMarco000000000001", giulia_later["id"]]
    result = store.save_poll("canale", "youtube", again, later)
    assert result.new_mentions == 1  # only her new reply
    follow_up = store.conversation(f"youtube:{giulia_later['id']}")
    assert follow_up is not None and follow_up.state == "new"  # she wrote after the channel's answer: it waits
    assert (follow_up.mention.thread_id, follow_up.mention.in_reply_to) == (GIULIA, GIULIA)
    walk, by_id = calls(yt, "commentThreads")
    assert walk["query"]["allThreadsRelatedToChannelId"] == CHANNEL_ID  # one page: it stopped below the cursor
    assert set(by_id["query"]["id"].split(",")) == {GIULIA, LUCA, WELCOME, "UgySofiaBlendTop00004AaABAg"}
    assert "maxResults" not in by_id["query"] and "order" not in by_id["query"]  # Google refuses them with id
    assert not calls(yt, "comments")  # Luca's seven replies are known: not read again
    assert again.cursor is not None and again.cursor["threads"][GIULIA]["n"] == 3


def test_reach_is_the_authors_subscribers_asked_once_a_day(yt: FakeYouTube) -> None:
    poll = source(yt).poll(None, T0)
    reach = {m.author.handle: m.author.reach for m in poll.mentions}
    assert reach["tomreed"] == 15400 and reach["giuliarossi"] == 1200
    assert reach["marcobianchi"] == 0  # hiddenSubscriberCount
    [asked] = calls(yt, "channels")
    assert asked["query"]["part"] == "statistics"
    assert len(asked["query"]["id"].split(",")) == 9 and CHANNEL_ID not in asked["query"]["id"]

    yt.requests.clear()
    soon = source(yt).poll(poll.cursor, T0 + timedelta(hours=3))
    assert not calls(yt, "channels")  # the cursor knows them for a day
    assert next(m for m in soon.mentions if m.author.handle == "tomreed").author.reach == 15400

    yt.requests.clear()
    source(yt).poll(poll.cursor, T0 + timedelta(days=1, minutes=1))
    assert calls(yt, "channels")


def test_the_quota_is_counted_like_google_counts_it_replies_included(yt: FakeYouTube) -> None:
    channel = answering(yt)
    poll = channel.poll(None, T0)
    assert poll.cursor is not None
    assert poll.cursor["quota"] == {"day": "2026-03-02", "units": yt.used} and yt.used == 3
    assert poll.details["read_units_limit"] == 9000  # 1000 kept for replies

    tom = next(m for m in poll.mentions if m.platform_id == TOM)
    replier = channel.replier()
    assert replier is not None and replier.units("Hi Tom!") == 50
    replier.reply(tom, "Hi Tom! Yes, from April.", SENT_AT)
    again = channel.poll(poll.cursor, T0 + timedelta(minutes=10))
    # The reply's 50 units, then a walk of one page and one look at the four watched threads.
    assert again.cursor is not None and again.cursor["quota"]["units"] == yt.used == 3 + 50 + 2


def test_the_calls_of_a_failed_poll_count_in_the_next_one(yt: FakeYouTube) -> None:
    channel = source(yt)
    yt.fault = {"path": "comments", "status": 500, "body": google_error(500, "backendError", "Backend Error")}
    with pytest.raises(SourceError, match="will retry"):
        channel.poll(None, T0)  # the walk's page and Luca's replies were called, and Google counted them
    yt.fault = None
    poll = channel.poll(None, T0 + timedelta(minutes=5))
    assert poll.cursor is not None and poll.cursor["quota"]["units"] == yt.used == 2 + 3


def test_reads_stop_when_the_days_units_are_spent_until_the_pacific_midnight(yt: FakeYouTube) -> None:
    tight = source(yt, daily_quota_units=1)
    poll = tight.poll(None, T0)
    assert yt.used == 1 and len(yt.requests) == 1  # the first page; Luca's replies would pass the quota
    assert [m.platform_id for m in poll.mentions][:2] == [TOM, GIULIA]
    assert poll.details["quota_spent"] == "2026-03-02"
    assert poll.details["resumes_at"] == PACIFIC_MIDNIGHT.isoformat()
    assert poll.cursor is not None and poll.cursor["newest"] == ""  # a walk cut short moves nothing on

    for when in (T0 + timedelta(hours=5), PACIFIC_MIDNIGHT - timedelta(minutes=1)):  # 07:59 UTC: 23:59 in California
        yt.requests.clear()
        stopped = tight.poll(poll.cursor, when)
        assert yt.requests == [] and stopped.mentions == () and stopped.details["quota_spent"] == "2026-03-02"

    yt.requests.clear()
    new_day = tight.poll(poll.cursor, PACIFIC_MIDNIGHT)
    assert len(yt.requests) == 1 and new_day.cursor is not None
    assert new_day.cursor["quota"] == {"day": "2026-03-03", "units": 1}


@pytest.mark.parametrize(
    ("now", "reset"),
    [
        (T0, PACIFIC_MIDNIGHT),
        (datetime(2026, 3, 10, 12, 0, tzinfo=UTC), datetime(2026, 3, 11, 7, 0, tzinfo=UTC)),  # daylight saving time
    ],
)
def test_googles_quota_exceeded_pauses_the_source_until_the_pacific_midnight(
    yt: FakeYouTube, now: datetime, reset: datetime
) -> None:
    yt.quota = 0
    with pytest.raises(RateLimited) as error:
        source(yt).poll(None, now)
    assert error.value.retry_at == reset
    assert "daily quota is spent" in str(error.value) and "midnight Pacific time" in str(error.value)
    assert "<a href" not in str(error.value)  # Google's HTML link is dropped


def test_a_rate_limit_pauses_for_a_minute(yt: FakeYouTube) -> None:
    yt.fault = {"path": "commentThreads", "status": 403, "body": rate_limited()}
    with pytest.raises(RateLimited) as error:
        source(yt).poll(None, T0)
    assert error.value.retry_at == T0 + timedelta(minutes=1)


@pytest.mark.parametrize("style", ["modern", "legacy"])
def test_a_wrong_api_key_says_to_renew_it_and_never_shows_it(yt: FakeYouTube, style: str) -> None:
    yt.key_error = style
    wrong = "AIzaSy-other-key-SENTINEL"
    with pytest.raises(SourceError) as error:
        source(yt, api_key=SecretStr(wrong)).poll(None, T0)
    assert "refused the API key" in str(error.value) and "update the api_key secret" in str(error.value)
    assert wrong not in str(error.value) and not isinstance(error.value, RateLimited)


def test_the_api_key_travels_in_a_header_never_in_a_url(yt: FakeYouTube) -> None:
    channel = source(yt)
    channel.poll(None, T0)
    assert yt.requests and all(r["headers"].get("X-Goog-Api-Key") == API_KEY for r in yt.requests)
    assert all(API_KEY not in r["url"] and "key" not in r["query"] for r in yt.requests)
    assert no_secret_in(repr(channel), repr(answering(yt)), repr(answering(yt).replier()))


def test_what_youtube_echoes_is_masked_and_a_server_error_says_it_will_retry(yt: FakeYouTube) -> None:
    echo = f"Backend Error for key {API_KEY}"
    yt.fault = {"path": "commentThreads", "status": 503, "body": google_error(503, "backendError", echo, "global")}
    with pytest.raises(SourceError) as error:
        source(yt).poll(None, T0)
    assert "answered 503" in str(error.value) and "will retry" in str(error.value)
    assert no_secret_in(str(error.value)) and "[secret]" in str(error.value)


def test_a_wrong_channel_id_says_where_to_find_the_right_one(yt: FakeYouTube) -> None:
    with pytest.raises(SourceError, match=r"no channel UCsomebodyElse0000000001 .*Advanced settings"):
        source(yt, channel_id="UCsomebodyElse0000000001").poll(None, T0)


def test_without_an_api_key_reads_use_the_owners_token_cached_and_renewed_once_refused(yt: FakeYouTube) -> None:
    channel = answering(yt, api_key=SecretStr(""))
    channel.poll(None, T0)
    channel.poll(None, T0 + timedelta(minutes=5))
    assert len(yt.token_requests) == 1  # one access token for both polls
    [asked] = yt.token_requests
    assert (asked["grant_type"], asked["refresh_token"], asked["scope"]) == ("refresh_token", REFRESH_TOKEN, SCOPE)
    bearer = {r["headers"].get("Authorization") for r in yt.requests if "/youtube/v3/" in r["url"]}
    assert len(bearer) == 1 and next(iter(bearer)).startswith("Bearer ya29.")
    assert not any("X-Goog-Api-Key" in r["headers"] for r in yt.requests)

    yt.expire_tokens()  # Google no longer takes the cached token: a fresh one, and the poll goes on
    assert channel.poll(None, T0 + timedelta(minutes=10)).mentions
    assert len(yt.token_requests) == 2


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"refresh_token": "1//revoked-SENTINEL"}, "update refresh_token"),
        ({"client_secret": "GOCSPX-other-SENTINEL"}, "client_id and client_secret"),
    ],
)
def test_a_refused_refresh_token_or_client_says_what_to_renew(
    yt: FakeYouTube, change: dict[str, str], names: str
) -> None:
    for option, value in change.items():
        setattr(yt, option, value)  # Google no longer knows what passaparola holds
    channel = answering(yt, api_key=SecretStr(""))
    with pytest.raises(SourceError) as polled:
        channel.poll(None, T0)
    assert names in str(polled.value) and no_secret_in(str(polled.value))
    if "refresh_token" in change:
        assert "invalid_grant" in str(polled.value) and "Testing" in str(polled.value)
    tom = heard(yt, TOM)
    replier = channel.replier()
    assert replier is not None
    with pytest.raises(ReplyError) as replied:
        replier.reply(tom, "Hi Tom!", T0)
    assert replied.value.problem == "expired_token" and no_secret_in(str(replied.value))
    assert yt.writes == []


def test_a_reply_lands_in_the_thread_as_the_channel_and_the_next_poll_hears_it_as_the_answer(
    yt: FakeYouTube, store: Store
) -> None:
    assert source(yt).replier() is None  # an API key alone cannot post
    channel = answering(yt)
    first = channel.poll(None, T0)
    store.save_poll("canale", "youtube", first, T0)
    tom = next(m for m in first.mentions if m.platform_id == TOM)
    replier = channel.replier()
    assert isinstance(replier, Replier) and isinstance(replier, YouTubeReplier)
    assert (replier.channel, replier.account, replier.cost_usd("Hi"), replier.check("Hi")) == (
        "youtube",
        "AuroraCaffe",  # as the polled replies are stored
        0.0,
        "",
    )

    sent = replier.reply(tom, "Hi Tom! Yes, the Aurora blend reaches the UK in April.", SENT_AT)

    [write] = yt.writes
    assert parse_qs(urlsplit(write["url"]).query) == {"part": ["snippet"]}
    assert write["body"] == {
        "snippet": {"parentId": TOM, "textOriginal": "Hi Tom! Yes, the Aurora blend reaches the UK in April."}
    }
    assert write["headers"]["Authorization"].startswith("Bearer ya29.")
    assert all(no_secret_in(r["url"]) for r in yt.requests)
    stored = yt.comments[TOM][-1]
    assert sent.platform_id == stored["id"] and sent.published_at == SENT_AT
    assert sent.url == f"https://www.youtube.com/watch?v=Au7oraBlend&lc={stored['id']}"

    later = T0 + timedelta(minutes=10)
    poll = channel.poll(store.cursor("canale"), later)
    assert sent.platform_id not in {m.platform_id for m in poll.mentions}
    ours = next(r for r in poll.replies if r.platform_id == sent.platform_id)
    assert (ours.in_reply_to, ours.thread_id, ours.author_handle) == (TOM, TOM, replier.account)
    store.save_poll("canale", "youtube", poll, later)
    answered = store.conversation(f"youtube:{TOM}")
    assert answered is not None and answered.state == "answered"


def test_a_reply_to_a_reply_goes_under_the_threads_top_comment(yt: FakeYouTube) -> None:
    marco = heard(yt, f"{GIULIA}.9kMarco000000000001")
    replier = answering(yt).replier()
    assert replier is not None
    replier.reply(marco, "@marcobianchi Ciao Marco, scrivici anche tu a aiuto@caffeaurora.it", SENT_AT)
    assert yt.writes[0]["body"]["snippet"]["parentId"] == GIULIA  # YouTube threads are two levels deep
    poll = source(yt).poll(None, T0 + timedelta(minutes=10))
    ours = next(r for r in poll.replies if r.text.startswith("@marcobianchi"))
    assert (ours.in_reply_to, ours.to_author_id) == (marco.platform_id, "UCmarcoBianchi0000000002")


def test_a_reply_that_got_no_answer_is_unknown_then_found_not_posted_again(yt: FakeYouTube) -> None:
    tom = heard(yt, TOM)
    replier = answering(yt, timeout_seconds=0.3).replier()
    assert replier is not None
    yt.stall_seconds = 1.5  # YouTube stores the reply, then the answer never comes in time
    text = "Hi Tom,  yes:\nthe Aurora blend reaches the UK in April."
    with pytest.raises(ReplyError) as error:
        replier.reply(tom, text, SENT_AT)
    assert error.value.problem == "unknown" and "may exist" in str(error.value) and error.value.transient
    yt.stall_seconds = 0
    stored = yt.comments[TOM][-1]
    yt.add_reply(TOM, "@katelowe", "UCkateLowe00000000000008", text, SENT_AT + timedelta(minutes=1))  # not ours
    yt.page_size = 1  # ours on the first page, Kate's copy on the second

    found = replier.find(tom, "Hi Tom, yes: the Aurora blend reaches the UK in April.", T0, SENT_AT)

    assert found is not None and (found.platform_id, found.published_at) == (stored["id"], SENT_AT)
    assert len(yt.writes) == 1  # the lookup posted nothing
    looked = [r for r in calls(yt, "comments") if r["query"]["parentId"] == TOM]
    assert [r["query"].get("pageToken") is None for r in looked] == [True, False]
    assert all(r["headers"]["Authorization"].startswith("Bearer ") for r in looked)  # textOriginal is the owner's
    assert replier.find(tom, "Other words", T0, SENT_AT) is None
    assert replier.find(tom, text, SENT_AT + timedelta(minutes=5), SENT_AT) is None  # older than asked for


@pytest.mark.parametrize(
    ("arrange", "problem", "advice"),
    [
        ("quota", "rate_limited", "after midnight Pacific time"),
        ("gone", "deleted", "gone or hidden"),
        ("disabled", "refused", "comments may be turned off"),
        ("scope", "permission", SCOPE),
        ("server", "unavailable", "nothing was posted"),
    ],
)
def test_youtubes_refusals_say_what_to_do_and_never_hold_a_secret(
    yt: FakeYouTube, arrange: str, problem: str, advice: str
) -> None:
    tom = heard(yt, TOM)
    replier = answering(yt).replier()
    assert replier is not None
    if arrange == "quota":
        yt.quota = yt.used
    elif arrange == "gone":
        yt.threads = [t for t in yt.threads if t["id"] != TOM]
    elif arrange == "disabled":
        yt.comments_disabled.add("Au7oraBlend")
    elif arrange == "scope":
        yt.granted = ("https://www.googleapis.com/auth/youtube.readonly",)
    else:
        echo = f"Backend Error ({CLIENT_SECRET})"
        yt.fault = {
            "path": "comments",
            "method": "POST",
            "status": 500,
            "body": google_error(500, "backendError", echo),
        }
    with pytest.raises(ReplyError) as error:
        replier.reply(tom, "Hi Tom!", T0)
    assert error.value.problem == problem and advice in str(error.value)
    assert no_secret_in(str(error.value))
    assert yt.comments.get(TOM, []) == []  # nothing was posted
    if problem == "rate_limited":
        assert error.value.retry_at == PACIFIC_MIDNIGHT
    else:
        assert error.value.retry_at is None


def test_an_unreachable_youtube_is_unavailable_and_nothing_is_posted(yt: FakeYouTube) -> None:
    tom = heard(yt, TOM)
    channel = answering(yt)
    replier = channel.replier()
    assert replier is not None
    replier.reply(tom, "Hi Tom!", SENT_AT)  # a token is cached
    replier.base_url = f"http://127.0.0.1:{free_port()}/youtube/v3"
    with pytest.raises(ReplyError) as down:
        replier.reply(tom, "Hi again, Tom!", SENT_AT)
    assert down.value.problem == "unavailable" and down.value.transient
    with pytest.raises(ReplyError) as lookup:
        replier.find(tom, "Hi again, Tom!", T0, SENT_AT)
    assert lookup.value.problem == "unavailable"
    assert len(yt.writes) == 1


def test_a_reply_too_long_for_youtube_is_refused_before_posting(yt: FakeYouTube) -> None:
    replier = answering(yt).replier()
    assert replier is not None
    assert replier.check("a" * 10_000) == ""
    assert replier.check("a" * 10_001).startswith("10001 characters")
    assert replier.check("☕" * 10_000) == ""  # one unit each
    assert replier.check("😀" * 5_001).startswith("10002 characters (an emoji counts 2)")
    assert replier.check("  \n")
    with pytest.raises(ReplyError) as error:
        replier.reply(heard(yt, TOM), "a" * 10_001, T0)
    assert error.value.problem == "too_long" and yt.writes == []


def test_a_video_whose_comments_were_turned_off_is_skipped_and_said(yt: FakeYouTube) -> None:
    yt.after_threads_page = lambda: yt.comments_disabled.add("Au7oraBlend")  # turned off just after the listing
    poll = source(yt).poll(None, T0)
    assert poll.details["comments_disabled"] == ["Au7oraBlend"]
    heard_threads = {m.thread_id for m in poll.mentions}
    assert LUCA not in heard_threads and {TOM, GIULIA, WELCOME} <= heard_threads
    assert poll.cursor is not None and LUCA not in poll.cursor["threads"]


def test_config_takes_secret_references_and_names_what_is_wrong(tmp_path: Path) -> None:
    from passaparola.config import ConfigError

    settings = settings_from(
        "[[sources]]\n"
        'type = "youtube"\n'
        'name = "canale"\n'
        f'channel_id = "{CHANNEL_ID}"\n'
        'api_key = { env = "YOUTUBE_API_KEY" }\n',
        tmp_path,
        environ={"YOUTUBE_API_KEY": API_KEY},
    )
    [spec] = settings.sources
    assert isinstance(spec.source, YouTubeSource) and spec.source.api_key.get_secret_value() == API_KEY
    assert spec.source.replier() is None

    with pytest.raises(ConfigError) as error:
        settings_from(
            '[[sources]]\ntype = "youtube"\nchannel_id = "@AuroraCaffe"\napi_key = { env = "K" }\n',
            tmp_path,
            environ={"K": API_KEY},
        )
    assert error.value.problems == [
        "sources[0]: channel_id must be the channel's id, UC followed by 22 characters (YouTube Studio > Settings > "
        "Channel > Advanced settings), not its @handle"
    ]
    with pytest.raises(ConfigError) as partial:
        settings_from(
            f'[[sources]]\ntype = "youtube"\nchannel_id = "{CHANNEL_ID}"\nclient_id = {{ env = "C" }}\n',
            tmp_path,
            environ={"C": CLIENT_ID},
        )
    assert "all three of client_id, client_secret and refresh_token" in partial.value.problems[0]


def test_a_reply_the_days_quota_cannot_pay_for_is_refused_before_it_is_stored(yt: FakeYouTube, tmp_path: Path) -> None:
    from dataclasses import replace

    from passaparola.actions import Actor, Refusal, ReplyActions
    from passaparola.config import SourceSpec

    channel = answering(yt, daily_quota_units=2_000, reply_reserve_units=100)
    store = Store.memory()
    poll = channel.poll(None, T0)
    store.save_poll("canale", "youtube", poll, T0)
    tom = next(m for m in poll.mentions if m.platform_id == TOM)
    settings = settings_from('[[triage.members]]\nname = "giulia"\nlanguages = ["it"]\n', tmp_path)
    settings = replace(settings, sources=(SourceSpec("canale", "youtube", 300, channel),))
    actions = ReplyActions(settings, store)
    giulia = Actor("giulia", "agent", "giulia", "session")
    text = "Hi Tom, sorry: the new blend ships to the UK next week. giulia"
    used = store.cursor("canale")["quota"]["units"]  # type: ignore[index]
    assert used + 50 <= 2_000  # today's reads leave room: the reply goes
    sent = actions.attempt(actions.send(giulia, tom.key, text, T0).id, T0)
    assert sent is not None and sent.state == "sent"

    spent = {**store.cursor("canale"), "quota": {"day": "2026-03-02", "units": 1_990}}  # type: ignore[dict-item]
    store.health.record_success("canale", "youtube", spent, {}, 0, T0.isoformat())
    with pytest.raises(Refusal, match=r"youtube quota: 20\d\d of 2000 units spent today and a reply costs 50"):
        actions.send(giulia, tom.key, text.replace("next week", "on Monday"), T0)
    assert len([w for w in yt.requests if w["method"] == "POST" and "comments" in w["url"]]) == 1
    store.close()
