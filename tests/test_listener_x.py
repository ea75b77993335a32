"""The `x` source against a local X API v2 server: data, answers, paging, rate limits, faults, budget, secrets."""

from __future__ import annotations

import logging
import random
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from pydantic import SecretStr

from listener import RateLimited, SourceError, XSource
from listener.x import build_query
from passaparola.config import SourceSpec
from passaparola.pipeline import poll_source
from rules import SourceFailing
from storage import Store
from tests.conftest import PASSAPAROLA, T0, cli_env, run_cli, settings_from
from tests.xapi import FakeX, epoch, serve

TOKEN = "SENTINEL-x-bearer-0123456789"


@pytest.fixture
def fake() -> Iterator[FakeX]:
    with serve(FakeX.from_fixture(TOKEN, T0)) as server:
        yield server


def source(fake: FakeX, **options: object) -> XSource:
    settings = dict(
        name="x",
        bearer_token=SecretStr(TOKEN),
        accounts=["AuroraCaffe", "AuroraAiuta"],
        keywords=["aurora", "caffè aurora", "#AuroraCaffe"],
        exclude=["boreale"],
        base_url=fake.base_url,
        page_size=10,
        read_timeout_seconds=2.0,
    )
    settings.update(options)
    return XSource(**settings)  # type: ignore[arg-type]


def test_new_posts_arrive_as_mentions_with_authors_and_reach(
    fake: FakeX, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    poll = source(fake).poll(None, T0)
    store.save_poll("x", "x", poll, T0)
    assert sorted(m.platform_id for m in poll.mentions) == ["3001", "3002", "3003", "3007"]
    anna = next(m for m in poll.mentions if m.platform_id == "3001")
    assert (anna.author.handle, anna.author.display_name, anna.author.reach) == ("anna_r", "Anna Rossi", 1200)
    assert anna.url == "https://x.com/anna_r/status/3001" and anna.language_hint == "it"
    assert anna.published_at == T0 - timedelta(minutes=120) and anna.metrics["impression_count"] == 410
    liam = next(m for m in poll.mentions if m.platform_id == "3002")
    assert liam.author.verified
    deleted = next(m for m in poll.mentions if m.platform_id == "3003")
    assert deleted.author.handle == "id2003"
    assert "post 3004 skipped" in caplog.text and "post 3003 has no author" in caplog.text


def test_brand_replies_answer_mentions_with_the_response_time(fake: FakeX, store: Store) -> None:
    store.save_poll("x", "x", source(fake).poll(None, T0), T0)
    direct = store.conversation("x:3001")
    by_thread = store.conversation("x:3007")
    assert direct is not None and direct.state == "answered" and direct.response_seconds == 20 * 60
    assert by_thread is not None and by_thread.state == "answered" and by_thread.response_seconds == 20 * 60
    assert store.db.execute("SELECT count(*) FROM brand_replies").fetchone()[0] == 2  # 3006 answers nobody


def test_requests_carry_the_query_fields_and_token(fake: FakeX) -> None:
    source(fake).poll(None, T0)
    search = next(q for p, q in fake.requests if p == "/2/tweets/search/recent")
    assert search["query"] == [
        '(aurora OR "caffè aurora" OR #AuroraCaffe) -boreale -from:AuroraCaffe -from:AuroraAiuta -is:retweet'
    ]
    assert "conversation_id" in search["tweet.fields"][0] and search["expansions"] == ["author_id"]
    assert {"/2/users/1000/mentions", "/2/users/1001/mentions", "/2/users/1000/tweets", "/2/users/1001/tweets"} <= set(
        fake.paths()
    )


def test_cursors_advance_per_stream_and_overlap_is_stored_once(fake: FakeX, store: Store) -> None:
    x = source(fake)
    first = x.poll(None, T0)
    assert first.cursor is not None
    assert first.cursor["streams"]["search"]["since_id"] == "3004"  # past the invalid post too
    assert first.cursor["streams"]["mentions:AuroraCaffe"]["since_id"] == "3007"
    store.save_poll("x", "x", first, T0)
    fake.requests.clear()
    second = x.poll(store.cursor("x"), T0 + timedelta(minutes=5))
    assert second.mentions == () and fake.paths().count("/2/users/by/username/AuroraCaffe") == 0
    assert next(q for p, q in fake.requests if p == "/2/tweets/search/recent")["since_id"] == ["3004"]
    assert store.db.execute("SELECT count(*) FROM mentions WHERE key = 'x:3001'").fetchone()[0] == 1


def test_retweets_are_never_mentions_but_quote_tweets_are(fake: FakeX, store: Store) -> None:
    # The mentions timeline lists retweets (search drops them only through -is:retweet, which a raw query may lack).
    retweets = [
        ("3101", "2002", "RT @anna_r: @AuroraCaffe il mio ordine è fermo da una settimana, mi aiutate?", "3001"),
        ("3102", "2001", "RT @AuroraAiuta: @anna_r rimborso avviato oggi, scusaci", "3008"),
    ]
    for post_id, author, text, original in retweets:
        fake.add(
            {
                "id": post_id,
                "text": text,
                "author_id": author,
                "conversation_id": post_id,
                "referenced_tweets": [{"type": "retweeted", "id": original}, {"type": "retweeted"}],
                "entities": {"mentions": [{"start": 3, "end": 14, "username": "AuroraAiuta", "id": "1001"}]},
                "lang": "it",
                "minutes_ago": 5,
                "channels": ["search", "mentions:1000", "mentions:1001"],
            }
        )
    fake.add(
        {
            "id": "3103",
            "text": "Finalmente una risposta, grazie @AuroraAiuta!",
            "author_id": "2002",
            "conversation_id": "3103",
            "referenced_tweets": [{"type": "quoted", "id": "3008"}],
            "lang": "it",
            "minutes_ago": 4,
            "channels": ["mentions:1001"],
        }
    )
    poll = source(fake, query="aurora").poll(None, T0)
    store.save_poll("x", "x", poll, T0)
    ids = {m.platform_id for m in poll.mentions}
    assert "3101" not in ids and "3102" not in ids and {"3001", "3007", "3103"} <= ids
    quote = next(m for m in poll.mentions if m.platform_id == "3103")
    assert quote.text == "Finalmente una risposta, grazie @AuroraAiuta!" and quote.author.handle == "liamb"
    assert store.conversation("x:3101") is None and store.conversation("x:3102") is None
    assert poll.cursor is not None and poll.cursor["streams"]["mentions:AuroraCaffe"]["since_id"] == "3102"
    reads = [q for p, q in fake.requests if p.endswith(("/mentions", "/tweets", "/search/recent"))]
    assert reads and all("referenced_tweets" in q["tweet.fields"][0].split(",") for q in reads)


def add_search_posts(fake: FakeX, count: int) -> None:
    for n in range(count):
        fake.add(
            {
                "id": str(5000 + n),
                "text": f"aurora post {n}",
                "author_id": "2002",
                "conversation_id": str(5000 + n),
                "lang": "en",
                "minutes_ago": 60 - n,
                "channels": ["search"],
            }
        )


def test_paging_reads_to_the_end_of_the_new_posts(fake: FakeX) -> None:
    add_search_posts(fake, 25)
    poll = source(fake, streams=["search"]).poll(None, T0)
    assert fake.paths().count("/2/tweets/search/recent") == 3  # 29 posts, pages of 10
    assert len(poll.mentions) == 28 and poll.cursor is not None  # all but the one without a time
    assert poll.cursor["streams"]["search"]["since_id"] == "5024"


def test_a_page_cap_keeps_the_old_cursor_so_nothing_is_skipped(fake: FakeX) -> None:
    add_search_posts(fake, 25)
    poll = source(fake, streams=["search"], max_pages=2).poll({"streams": {"search": {"since_id": "1"}}}, T0)
    assert poll.cursor is not None and poll.cursor["streams"]["search"]["since_id"] == "1"
    assert poll.details["truncated_streams"] == ["search"] and len(poll.mentions) == 20


def test_a_429_pauses_only_that_stream_until_the_reset(fake: FakeX, store: Store) -> None:
    reset = T0 + timedelta(minutes=15)
    fake.fault("/2/tweets/search/recent", status=429, reset=epoch(reset))
    x = source(fake)
    poll = x.poll(None, T0)
    assert {m.platform_id for m in poll.mentions} == {"3001", "3007"}  # from the mentions timelines
    assert poll.details["paused_streams"] == {"search": reset.isoformat()}
    store.save_poll("x", "x", poll, T0)
    fake.requests.clear()
    x.poll(store.cursor("x"), T0 + timedelta(minutes=14))
    assert "/2/tweets/search/recent" not in fake.paths() and "/2/users/1000/mentions" in fake.paths()
    resumed = x.poll(store.cursor("x"), T0 + timedelta(minutes=15))
    assert "/2/tweets/search/recent" in fake.paths() and "3002" in {m.platform_id for m in resumed.mentions}


def test_a_429_without_reset_backs_off_and_never_loops(fake: FakeX) -> None:
    fake.fault("/2/tweets/search/recent", status=429, times=100)
    poll = source(fake).poll(None, T0)
    assert fake.paths().count("/2/tweets/search/recent") == 1
    paused = poll.details["paused_streams"]["search"]
    assert T0 + timedelta(seconds=60) <= datetime.fromisoformat(paused) <= T0 + timedelta(seconds=180)


def test_when_every_stream_is_rate_limited_the_source_pauses(fake: FakeX, store: Store) -> None:
    reset = T0 + timedelta(minutes=15)
    for path in ("/2/tweets/search/recent", "/2/users/1000/", "/2/users/1001/"):
        fake.fault(path, status=429, reset=epoch(reset), times=2)
    spec = SourceSpec("x", "x", 60, source(fake))
    outcome = poll_source(spec, store, [], T0, 60, 900, random.Random(1))
    health = store.source_health("x")
    assert "rate-limited" in outcome.error and health.next_retry_at == reset and health.consecutive_failures == 0


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (500, "X answered 500: a server error; retrying later"),
        (401, "the bearer token is wrong, expired or revoked"),
        (403, "does not include this endpoint"),
    ],
)
def test_faults_mark_the_source_failing_with_what_to_fix(fake: FakeX, store: Store, status: int, message: str) -> None:
    fake.fault("/2/", status=status)
    outcome = poll_source(SourceSpec("x", "x", 60, source(fake)), store, [], T0, 60, 900, random.Random(1))
    health = store.source_health("x")
    assert message in outcome.error and health.consecutive_failures == 1
    assert health.next_retry_at is not None and health.next_retry_at > T0
    assert TOKEN not in health.last_error


@pytest.mark.parametrize(
    ("path", "fault", "message"),
    [
        (
            "/2/tweets/search/recent",
            {
                "raw": f"<html><body>Over capacity. Authorization: Bearer {TOKEN}</body></html>".encode(),
                "content_type": "text/html; charset=utf-8",
            },
            "X answered with a body that is not JSON (HTTP 200, text/html); X may be having an outage; "
            "passaparola retries",
        ),
        (
            "/2/users/by/",
            {"raw": b"", "content_type": "application/json"},
            "X answered with a body that is not JSON (HTTP 200, application/json)",
        ),
        (
            "/2/tweets/search/recent",
            {"body": ["not", "a", "page"]},
            "X answered with JSON of an unexpected shape (HTTP 200, application/json: the body is a list, "
            "not an object)",
        ),
        (
            "/2/tweets/search/recent",
            {"body": {"data": "3001", "meta": {"result_count": 1}}},
            "(HTTP 200, application/json: 'data' is a string, not a list)",
        ),
        (
            "/2/tweets/search/recent",
            {"body": {"data": [], "meta": [{"result_count": 0}]}},
            "'meta' is a list, not an object",
        ),
        ("/2/tweets/search/recent", {"body": {"status": "ok"}}, "it has neither 'meta' nor 'errors'"),
        ("/2/users/by/", {"body": {"data": [{"id": "1000"}]}}, "'data' is a list, not an object"),
        (
            "/2/users/by/",
            {"status": 500, "body": ["Internal Server Error"]},
            "X answered with an error body of an unexpected shape (HTTP 500, application/json)",
        ),
        ("/2/users/by/", {"status": 503, "body": {"errors": 5}}, "an error body of an unexpected shape (HTTP 503"),
    ],
    ids=[
        "html-200",
        "empty-200",
        "list-body",
        "data-string",
        "meta-list",
        "no-meta",
        "user-data-list",
        "500-list",
        "503-errors-int",
    ],
)
def test_garbage_from_x_is_named_not_called_unreachable(
    fake: FakeX, store: Store, path: str, fault: dict[str, Any], message: str
) -> None:
    fake.fault(path, **fault)
    outcome = poll_source(SourceSpec("x", "x", 60, source(fake)), store, [], T0, 60, 900, random.Random(1))
    health = store.source_health("x")
    assert (
        message in outcome.error and "cannot reach" not in outcome.error and not outcome.error.startswith("unexpected ")
    )
    assert health.consecutive_failures == 1 and TOKEN not in health.last_error and "Over capacity" not in outcome.error


def test_a_503_with_retry_after_pauses_the_source_until_then(fake: FakeX, store: Store) -> None:
    fake.fault("/2/tweets/search/recent", status=503, retry_after="120")
    with pytest.raises(RateLimited, match=r"X answered 503 .*2026-03-02T09:02:00\+00:00") as caught:
        source(fake).poll(None, T0)
    assert caught.value.retry_at == T0 + timedelta(seconds=120) and TOKEN not in str(caught.value)
    fake.fault("/2/tweets/search/recent", status=503, retry_after="120")
    outcome = poll_source(SourceSpec("x", "x", 60, source(fake)), store, [], T0, 60, 900, random.Random(1))
    health = store.source_health("x")
    assert "503" in outcome.error and health.next_retry_at == T0 + timedelta(seconds=120)


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        (format_datetime(T0 + timedelta(minutes=10), usegmt=True), T0 + timedelta(minutes=10)),
        ("86400", T0 + timedelta(hours=1)),  # capped: a broken proxy must not silence X for a day
        (format_datetime(T0 - timedelta(minutes=10), usegmt=True), None),  # already past: the usual backoff
    ],
)
def test_retry_after_may_be_an_http_date_and_is_capped(
    fake: FakeX, retry_after: str, expected: datetime | None
) -> None:
    fake.fault("/2/users/by/", status=503, retry_after=retry_after)
    with pytest.raises(SourceError) as caught:
        source(fake).poll(None, T0)
    assert getattr(caught.value, "retry_at", None) == expected


def test_a_503_with_a_garbled_retry_after_is_a_server_error(fake: FakeX) -> None:
    fake.fault("/2/tweets/search/recent", status=503, retry_after="soon")
    with pytest.raises(SourceError, match="X answered 503: a server error; retrying later") as caught:
        source(fake).poll(None, T0)
    assert not isinstance(caught.value, RateLimited)


def test_a_429_with_retry_after_but_no_reset_pauses_the_stream_that_long(fake: FakeX) -> None:
    fake.fault("/2/tweets/search/recent", status=429, retry_after="300")
    poll = source(fake).poll(None, T0)
    assert poll.details["paused_streams"] == {"search": (T0 + timedelta(seconds=300)).isoformat()}
    reset = T0 + timedelta(minutes=15)  # X's own x-rate-limit-reset wins over Retry-After
    fake.fault("/2/tweets/search/recent", status=429, reset=epoch(reset), retry_after="300")
    poll = source(fake).poll(None, T0)
    assert poll.details["paused_streams"] == {"search": reset.isoformat()}


def test_a_slow_answer_times_out(fake: FakeX) -> None:
    fake.fault("/2/users/by/", delay=1.5)
    with pytest.raises(SourceError, match=r"did not answer within 0\.5 s"):
        source(fake, read_timeout_seconds=0.5).poll(None, T0)


def test_an_unknown_account_is_named(fake: FakeX) -> None:
    with pytest.raises(SourceError, match="X has no account @NotOurs; fix accounts"):
        source(fake, accounts=["NotOurs"], streams=["mentions"]).poll(None, T0)


def test_the_monthly_budget_stops_reading_and_alerts_ops(fake: FakeX, store: Store) -> None:
    x = source(fake, monthly_read_budget=3)
    first = x.poll(None, T0)
    store.save_poll("x", "x", first, T0)
    assert first.details["reads_this_month"] >= 3 and first.details["estimated_cost_usd"] > 0
    fake.requests.clear()
    second = x.poll(store.cursor("x"), T0 + timedelta(minutes=5))
    store.save_poll("x", "x", second, T0 + timedelta(minutes=5))
    assert fake.paths() == [] and second.details["budget_exhausted"] == "2026-03"
    alerts = list(SourceFailing().evaluate(store, T0 + timedelta(minutes=6)))
    assert [a.key for a in alerts] == ["source_budget:x:2026-03"] and alerts[0].route == "ops"


def test_a_crash_mid_run_neither_loses_nor_duplicates(
    fake: FakeX, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = source(fake)
    monkeypatch.setattr(store.conversations, "apply_answers", lambda *a: (_ for _ in ()).throw(RuntimeError("killed")))
    with pytest.raises(RuntimeError):
        store.save_poll("x", "x", x.poll(None, T0), T0)
    monkeypatch.undo()
    assert store.cursor("x") is None and store.db.execute("SELECT count(*) FROM mentions").fetchone()[0] == 0
    store.save_poll("x", "x", x.poll(store.cursor("x"), T0), T0)
    store.save_poll("x", "x", x.poll(store.cursor("x"), T0 + timedelta(minutes=1)), T0 + timedelta(minutes=1))
    assert store.db.execute("SELECT count(*) FROM mentions").fetchone()[0] == 4


def test_the_token_never_shows_in_tweepy_debug_logs(fake: FakeX, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake.fault("/2/tweets/search/recent", status=500)
    with pytest.raises(SourceError) as caught:
        source(fake).poll(None, T0)
    assert "Making API request" in caplog.text  # tweepy did log its headers...
    assert TOKEN not in caplog.text and TOKEN not in str(caught.value)  # ...masked


def test_the_token_never_shows_in_cli_output_at_debug(fake: FakeX, tmp_path: Path) -> None:
    config = tmp_path / "p.toml"
    config.write_text(
        f'[storage]\npath = "{tmp_path / "p.db"}"\n[[sources]]\ntype = "x"\nbearer_token = {{ env = "X_TOKEN" }}\n'
        f'accounts = ["AuroraCaffe"]\nkeywords = ["aurora"]\nbase_url = "{fake.base_url}"\n',
        encoding="utf-8",
    )
    fake.fault("/2/users/1000/tweets", status=401)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli([*PASSAPAROLA, *args], env=cli_env(X_TOKEN=TOKEN))

    result = cli("-v", "run", "--once", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "401 Unauthorized" in result.stderr and TOKEN not in result.stdout + result.stderr
    status = cli("status", "--config", str(config))
    assert "source x (x): last success never" in status.stdout and "FAILING x1: X answered 401" in status.stdout
    fake.faults.clear()
    with sqlite3.connect(tmp_path / "p.db") as raw:  # as if the backoff had passed
        raw.execute("UPDATE sources SET next_retry_at = '2000-01-01T00:00:00+00:00'")
    assert cli("run", "--once", "--config", str(config)).returncode == 0
    status = cli("status", "--config", str(config))
    assert "reads_this_month=" in status.stdout and "estimated_cost_usd=" in status.stdout
    check = cli("check", "--config", str(config))
    assert check.returncode == 0 and TOKEN not in check.stdout and '"bearer_token": "**********"' in check.stdout


def test_check_rejects_a_query_longer_than_x_allows(tmp_path: Path) -> None:
    from passaparola.config import ConfigError

    long_words = ", ".join(f'"keyword{n:03d}"' for n in range(60))
    with pytest.raises(ConfigError) as caught:
        settings_from(
            f'[[sources]]\ntype = "x"\nbearer_token = {{ env = "T" }}\naccounts = ["A"]\nkeywords = [{long_words}]\n',
            tmp_path,
            environ={"T": "t"},
        )
    assert caught.value.problems == [
        "sources[0]: the search query is 858 characters; X allows 512: use fewer keywords or exclusions"
    ]


def test_query_builder_quotes_phrases_and_excludes_the_brand() -> None:
    assert build_query(["aurora"], [], ["AuroraCaffe"]) == "aurora -from:AuroraCaffe -is:retweet"
    assert build_query(["a", "b c"], ["d e"], []) == '(a OR "b c") -"d e" -is:retweet'


def test_rate_limited_is_a_source_error() -> None:
    assert issubclass(RateLimited, SourceError)


# -- tweet counts: X's own hourly history of the query, for the volume baseline's first days -------------------

COUNTS = "/2/tweets/counts/recent"
#: At T0 (09:00) X's seven days reach back to 23 February 09:00; the first whole hour inside them starts at 10:00,
#: and the last one asked for ends at 08:00 (08:00-09:00 may be asked for only from 09:00:10 on).
FIRST_HOUR = datetime(2026, 2, 23, 10, tzinfo=UTC)
WEEK = [FIRST_HOUR + timedelta(hours=n) for n in range(166)]


def hourly(fake: FakeX) -> dict[datetime, int]:
    """Eight days of counts on the double (one more than X reaches), 3 to 7 posts an hour."""
    fake.hour_counts = {T0 - timedelta(hours=n): 3 + n % 5 for n in range(1, 8 * 24)}
    return fake.hour_counts


def test_tweet_counts_bring_the_past_seven_days_by_the_hour_on_the_first_poll(fake: FakeX) -> None:
    counts = hourly(fake)
    poll = source(fake).poll(None, T0)
    [asked] = [q for p, q in fake.requests if p == COUNTS]
    assert asked == {
        "query": [
            '(aurora OR "caffè aurora" OR #AuroraCaffe) -boreale -from:AuroraCaffe -from:AuroraAiuta -is:retweet'
        ],
        "granularity": ["hour"],
        "start_time": ["2026-02-23T10:00:00Z"],
        "end_time": ["2026-03-02T08:00:00Z"],
    }  # the search query, and none of search's fields, expansions, page size or since_id
    assert [(c.hour, c.count) for c in poll.history] == [(h, counts[h]) for h in WEEK]
    assert poll.cursor is not None and poll.cursor["counts"] == {"until": "2026-03-02T08:00:00+00:00"}
    assert poll.details["tweet_counts"] == "" and len(poll.mentions) == 4
    fake.requests.clear()
    source(fake, keywords=[], streams=["mentions"]).poll(None, T0)  # no search: the accounts' mentions are counted
    assert [q["query"] for p, q in fake.requests if p == COUNTS] == [
        ["(@AuroraCaffe OR @AuroraAiuta) -from:AuroraCaffe -from:AuroraAiuta -is:retweet"]
    ]


def test_tweet_counts_follow_next_token_to_the_last_page(fake: FakeX) -> None:
    counts = hourly(fake)
    fake.counts_page_size = 50
    poll = source(fake, streams=["mentions"]).poll(None, T0)
    pages = [q for p, q in fake.requests if p == COUNTS]
    assert [q.get("next_token") for q in pages] == [None, ["50"], ["100"], ["150"]]
    assert [(c.hour, c.count) for c in poll.history] == [(h, counts[h]) for h in WEEK]
    assert poll.cursor is not None and poll.cursor["counts"]["until"] == "2026-03-02T08:00:00+00:00"


def test_after_the_first_poll_only_new_whole_hours_are_asked_for_at_most_once_an_hour(
    fake: FakeX, store: Store
) -> None:
    hourly(fake)
    spec = SourceSpec("x", "x", 60, source(fake, streams=["mentions"]))
    asked = []
    for minutes in (0, 20, 40, 61, 62):
        fake.now = T0 + timedelta(minutes=minutes)
        fake.requests.clear()
        assert poll_source(spec, store, [], fake.now, 60, 900, random.Random(1)).error == ""
        asked.append([(q["start_time"][0], q["end_time"][0]) for p, q in fake.requests if p == COUNTS])
    assert asked == [
        [("2026-02-23T10:00:00Z", "2026-03-02T08:00:00Z")],
        [("2026-03-02T08:00:00Z", "2026-03-02T09:00:00Z")],
        [],
        [("2026-03-02T09:00:00Z", "2026-03-02T10:00:00Z")],
        [],
    ]
    stored = store.platform_counts.of("x")
    assert list(stored) == [*WEEK, T0 - timedelta(hours=1), T0] and stored[T0 - timedelta(hours=1)] == 4


def test_a_refetched_hour_replaces_its_count(fake: FakeX, store: Store) -> None:
    counts = hourly(fake)
    spec = SourceSpec("x", "x", 60, source(fake, streams=["mentions"]))
    poll_source(spec, store, [], T0, 60, 900, random.Random(1))
    hour = T0 - timedelta(hours=5)
    assert store.platform_counts.of("x") == {h: counts[h] for h in WEEK}
    fake.hour_counts[hour] = 99
    store.db.execute("UPDATE sources SET cursor = NULL")  # a lost cursor: the same seven days come again
    poll_source(spec, store, [], T0, 60, 900, random.Random(1))
    assert store.platform_counts.of("x") == {**{h: counts[h] for h in WEEK}, hour: 99}
    assert store.db.execute("SELECT count(*) FROM platform_counts").fetchone()[0] == len(WEEK)


def test_a_plan_without_tweet_counts_is_told_once_and_the_poll_goes_on(
    fake: FakeX, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="listener.x")
    hourly(fake)
    fake.counts_access = False
    spec = SourceSpec("x", "x", 60, source(fake))
    outcome = poll_source(spec, store, [], T0, 60, 900, random.Random(1))
    assert outcome.error == "" and outcome.new_mentions == 4 and COUNTS in fake.paths()
    told = "your X plan has no access to tweet counts; spike baselines will build from passaparola's own history"
    assert caplog.text.count(told) == 1 and "client" not in store.source_health("x").last_error
    assert store.source_health("x").details["tweet_counts"] == "no access on this plan"
    assert store.platform_counts.of("x") == {}
    for at, asks in ((T0 + timedelta(hours=2), False), (T0 + timedelta(days=1, minutes=1), True)):
        fake.now = at
        fake.requests.clear()
        assert poll_source(spec, store, [], at, 60, 900, random.Random(1)).error == ""
        assert (COUNTS in fake.paths()) is asks  # not again for a day; then again, quietly
    assert caplog.text.count(told) == 1 and store.source_health("x").consecutive_failures == 0
    fake.counts_access = True  # the plan changed
    fake.now = T0 + timedelta(days=2, minutes=2)
    poll_source(spec, store, [], fake.now, 60, 900, random.Random(1))
    assert len(store.platform_counts.of("x")) == 167 and store.source_health("x").details["tweet_counts"] == ""
    assert "X's tweet counts are available now" in caplog.text


def test_a_429_on_tweet_counts_waits_for_the_reset_and_spares_the_poll(fake: FakeX) -> None:
    hourly(fake)
    reset = T0 + timedelta(minutes=15)
    fake.fault(COUNTS, status=429, reset=epoch(reset))
    x = source(fake)
    poll = x.poll(None, T0)
    assert {m.platform_id for m in poll.mentions} == {"3001", "3002", "3003", "3007"} and poll.history == ()
    assert poll.details["tweet_counts"] == f"paused until {reset.isoformat()}" and poll.details["paused_streams"] == {}
    fake.now = T0 + timedelta(minutes=14)
    fake.requests.clear()
    later = x.poll(poll.cursor, fake.now)
    assert COUNTS not in fake.paths() and later.history == ()
    fake.now = reset
    resumed = x.poll(later.cursor, reset)
    assert [q["start_time"] for p, q in fake.requests if p == COUNTS] == [["2026-02-23T10:00:00Z"]]
    assert len(resumed.history) == 167 and resumed.details["tweet_counts"] == ""
    fake.now = T0
    fake.fault(COUNTS, status=429, retry_after="300")  # no x-rate-limit-reset: Retry-After says how long
    poll = source(fake).poll(None, T0)
    assert poll.details["tweet_counts"] == f"paused until {(T0 + timedelta(seconds=300)).isoformat()}"


@pytest.mark.parametrize(
    ("fault", "note"),
    [
        ({"status": 500}, "not read: X answered 500: a server error; retrying later"),
        ({"body": {"data": {"tweet_count": 3}}}, "not read: X answered with JSON of an unexpected shape"),
    ],
    ids=["500", "data-object"],
)
def test_other_tweet_counts_faults_spare_the_poll_and_wait_an_hour(
    fake: FakeX, store: Store, fault: dict[str, Any], note: str
) -> None:
    hourly(fake)
    fake.fault(COUNTS, **fault)
    spec = SourceSpec("x", "x", 60, source(fake))
    assert poll_source(spec, store, [], T0, 60, 900, random.Random(1)).new_mentions == 4
    health = store.source_health("x")
    assert health.details["tweet_counts"].startswith(note) and health.consecutive_failures == 0
    fake.now = T0 + timedelta(minutes=30)
    fake.requests.clear()
    poll_source(spec, store, [], fake.now, 60, 900, random.Random(1))
    assert COUNTS not in fake.paths()
    fake.now = T0 + timedelta(hours=1)  # the next hour: asked again, the seven days moved on by an hour
    poll_source(spec, store, [], fake.now, 60, 900, random.Random(1))
    assert list(store.platform_counts.of("x")) == [*WEEK[1:], T0 - timedelta(hours=1)]


def test_the_double_answers_tweet_counts_as_x_does(fake: FakeX) -> None:
    counts = hourly(fake)
    url, auth = fake.base_url + COUNTS, {"Authorization": f"Bearer {TOKEN}"}
    assert requests.get(url, params={"query": "aurora"}, timeout=5).status_code == 401
    bad = requests.get(url, params={"query": "aurora", "granularity": "week"}, headers=auth, timeout=5)
    assert bad.status_code == 400 and bad.json() == {
        "errors": [
            {
                "parameters": {"granularity": ["week"]},
                "message": "The `granularity` query parameter value [week] is not one of [minute,hour,day]",
            }
        ],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.twitter.com/2/problems/invalid-request",
    }
    old = requests.get(url, params={"query": "aurora", "start_time": "2026-02-23T08:00:00Z"}, headers=auth, timeout=5)
    assert old.status_code == 400 and "'start_time' must be on or after 2026-02-23T09:00Z" in old.text
    days = requests.get(url, params={"query": "aurora", "granularity": "day"}, headers=auth, timeout=5).json()
    assert [(b["start"], b["end"]) for b in days["data"][:2]] == [
        ("2026-02-23T09:00:00.000Z", "2026-02-24T00:00:00.000Z"),  # partial at the start, as X sends it
        ("2026-02-24T00:00:00.000Z", "2026-02-25T00:00:00.000Z"),
    ]
    assert days["data"][-1]["end"] == "2026-03-02T08:59:30.000Z" and "next_token" not in days["meta"]
    whole = [n for h, n in counts.items() if T0 - timedelta(days=7) <= h <= T0 - timedelta(hours=2)]
    assert days["meta"]["total_tweet_count"] == sum(whole)  # only the whole hours inside a bucket count
