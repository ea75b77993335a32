"""The `feed` source against a local HTTP server: real-world-shaped feeds, conditional GET, hostile bodies, SSRF."""

from __future__ import annotations

import calendar
import logging
import random
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from listener.feed import PARSE_WORKERS, PARSERS, FeedSource, localized_date, parse_feed, plain_text, thread_of
from listener.fetch import PrivateAllowance, public_address
from listener.model import EVERYONE_IN_THREAD, RateLimited, SourceError
from passaparola.config import SourceSpec
from passaparola.pipeline import poll_source
from storage import Store
from tests.conftest import FIXTURES, T0, settings_from
from tests.feedserver import FeedServer, Route

FEEDS = FIXTURES / "feeds"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "feedparser-corpus"


@pytest.fixture
def server() -> Iterator[FeedServer]:
    yield from FeedServer().serve()


def source(server: FeedServer, path: str, **options: object) -> FeedSource:
    options.setdefault("allow_private", ["127.0.0.1"])  # the test server, by name, and nothing else
    return FeedSource(name="forum", url=server.url(path), **options)  # type: ignore[arg-type]


def route(name: str, **options: object) -> Route:
    return Route(body=(FEEDS / name).read_bytes(), **options)  # type: ignore[arg-type]


def test_discourse_posts_arrive_once_and_the_staff_answer_closes_its_topic(server: FeedServer, store: Store) -> None:
    server.routes["/posts.rss"] = route("discourse-posts.rss", etag='"v1"')
    feed = source(server, "/posts.rss", brand_authors=["aurora_staff"])
    poll = feed.poll(None, T0)
    assert [m.author.handle for m in poll.mentions] == ["lucia.t", "giulia_b", "marco_r"]
    assert poll.mentions[2].text == (
        "La macchina non si accende più — La mia Aurora Barista non si accende più da stamattina. Che faccio?"
    )
    assert poll.mentions[2].thread_id == "https://community.caffe-aurora.example/t/la-macchina-non-si-accende-piu/42"
    assert [r.author_handle for r in poll.replies] == ["aurora_staff"]
    result = store.save_poll("forum", "feed", poll, T0)
    assert (result.new_mentions, result.answered) == (3, 2)
    open_keys = [c.mention.author.handle for c in store.conversations.open_between(T0, T0 - timedelta(days=1))]
    assert open_keys == ["lucia.t"]  # topic 43 had no answer

    # A restart: a new source object with the stored cursor; the server says 304 and nothing is parsed.
    again = source(server, "/posts.rss", brand_authors=["aurora_staff"])
    parsed = PARSERS.parsed
    unchanged = again.poll(store.cursor("forum"), T0 + timedelta(minutes=5))
    assert unchanged.mentions == () and unchanged.details["not_modified"] is True
    assert server.conditional_hits["/posts.rss"] == 1 and PARSERS.parsed == parsed  # a 304 costs no parsing

    # The feed changes its ETag but not its entries: same ids, nothing stored twice.
    server.routes["/posts.rss"].etag = '"v2"'
    third = source(server, "/posts.rss", brand_authors=["aurora_staff"]).poll(store.cursor("forum"), T0)
    assert store.save_poll("forum", "feed", third, T0).new_mentions == 0


def test_google_alerts_keep_brand_talk_and_drop_the_northern_lights(server: FeedServer) -> None:
    server.routes["/alerts"] = route("google-alerts.atom", content_type="application/atom+xml")
    feed = source(server, "/alerts", platform="web", keywords=["aurora"], exclude=["aurora boreale"])
    poll = feed.poll(None, T0)
    assert len(poll.mentions) == 2 and poll.details == {"entries": 3, "kept": 2, "warning": ""}
    first = poll.mentions[0]
    assert first.text.startswith("Caffè Aurora apre il primo negozio a Torino — Il marchio di Caffè Aurora")
    assert "<b>" not in first.text and first.url == "https://news.example/aurora-torino"
    assert first.thread_id == "https://news.example/aurora-torino"
    assert first.platform == "web" and first.author.handle == "anonymous"


def test_google_redirect_links_store_the_real_target_only_when_it_is_http(server: FeedServer) -> None:
    def entry(n: int, link: str) -> str:
        return (
            f"<entry><id>tag:google.com,2013:googlealerts/feed:{n}</id><title>Aurora {n}</title>"
            f"<link href='{link}'/><updated>2026-03-02T07:30:00Z</updated></entry>"
        )

    links = [
        "https://www.google.com/url?rct=j&amp;sa=t&amp;url=https://real.example/article&amp;ct=ga",
        "https://www.google.com/url?q=https://real.example/q%3Fid%3D7%26p%3D2&amp;sa=U",
        "https://google.com/url?url=http://plain.example/",
        "https://www.google.com/url?url=javascript:alert(1)&amp;ct=ga",
        "https://www.google.com/url?url=file:///etc/passwd",
        "https://www.google.com/url?rct=j&amp;sa=t",
        "https://www.google.com.evil.example/url?url=https://real.example/",
        "https://www.google.com/search?q=https://real.example/",
        "https://news.example/url?url=https://real.example/",
    ]
    body = "<?xml version='1.0' encoding='utf-8'?><feed xmlns='http://www.w3.org/2005/Atom'><title>t</title>"
    body += "".join(entry(n, link) for n, link in enumerate(links)) + "</feed>"
    server.routes["/alerts"] = Route(body=body.encode(), content_type="application/atom+xml")
    urls = [m.url for m in source(server, "/alerts", platform="web").poll(None, T0).mentions]
    assert urls == [
        "https://real.example/article",
        "https://real.example/q?id=7&p=2",
        "http://plain.example/",
        "https://www.google.com/url?url=javascript:alert(1)&ct=ga",  # not http(s): the redirect stays
        "https://www.google.com/url?url=file:///etc/passwd",
        "https://www.google.com/url?rct=j&sa=t",
        "https://www.google.com.evil.example/url?url=https://real.example/",  # not google.com
        "https://www.google.com/search?q=https://real.example/",  # not the /url redirect
        "https://news.example/url?url=https://real.example/",
    ]


@pytest.mark.parametrize(
    ("fragment", "text"),
    [
        ("Caffè <b>Aurora</b> , il bar di via Roma", "Caffè Aurora, il bar di via Roma"),
        ("Caffè <b>Aurora </b>. Nuovo negozio", "Caffè Aurora. Nuovo negozio"),
        ("Stanotte l&#39;<b>aurora</b> boreale", "Stanotte l'aurora boreale"),
        ("le capsule (<b> Aurora </b>) Intenso ?", "le capsule (Aurora) Intenso ?"),
        ("super<b>caffè</b>!", "supercaffè!"),
        ("<p>Prima riga</p><p>seconda riga</p>uno<br>due", "Prima riga seconda riga uno due"),
        ("Aurora <b>...</b> altro", "Aurora ... altro"),
    ],
    ids=["space-before-comma", "space-inside-tag", "apostrophe", "brackets", "inside-a-word", "blocks", "ellipsis"],
)
def test_plain_text_leaves_no_stray_spaces_where_tags_were(fragment: str, text: str) -> None:
    assert plain_text(fragment) == text


def test_google_alerts_titles_keep_no_space_before_punctuation(server: FeedServer) -> None:
    body = (
        (FEEDS / "google-alerts.atom")
        .read_bytes()
        .replace(b"&lt;/b&gt; apre il primo negozio", b"&lt;/b&gt; , il primo negozio")
    )
    server.routes["/alerts"] = Route(body=body, content_type="application/atom+xml")
    poll = source(server, "/alerts", platform="web", keywords=["aurora"], exclude=["aurora boreale"]).poll(None, T0)
    assert poll.mentions[0].text.startswith("Caffè Aurora, il primo negozio a Torino — Il marchio di Caffè Aurora")


def test_italian_and_english_dates_are_read_and_an_unreadable_one_is_marked(
    server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.routes["/reviews"] = route("italian-reviews.rss")
    feed = FeedSource(name="recensioni", url=server.url("/reviews"), platform="review", allow_private=["127.0.0.1"])
    with caplog.at_level(logging.WARNING, logger="listener.feed"):
        poll = feed.poll(None, T0)
    when = {m.url.rsplit("/", 1)[1]: m.published_at for m in poll.mentions}
    assert when == {
        "101": datetime(2025, 3, 14, 9, 0, tzinfo=UTC),  # "ven, 14 mar 2025 10:00:00 +0100"
        "102": datetime(2025, 5, 7, 16, 30, tzinfo=UTC),  # "mer, 07 mag 2025 18:30:00 +0200"
        "103": datetime(2025, 6, 1, 9, 15, tzinfo=UTC),  # "domenica 1 giugno 2025 ore 9.15": no zone, read as UTC
        "104": datetime(2025, 9, 4, 18, 5, tzinfo=UTC),  # "Thursday, September 4, 2025 6:05 PM GMT"
        "105": datetime(2025, 12, 11, 7, 0, tzinfo=UTC),  # "gio, 11 dic 25 08:00:00 CET"
        "106": T0,  # "qualche giorno fa": the fetch time, as a last resort, and marked
    }
    marked = {m.url.rsplit("/", 1)[1]: dict(m.metrics) for m in poll.mentions if m.metrics}
    assert marked == {"106": {"published_at_guessed": 1}}
    assert poll.details["undated"] == 1
    assert "recensioni" in caplog.text and "'qualche giorno fa'" in caplog.text


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ven, 14 mar 2025 10:00:00 +0100", datetime(2025, 3, 14, 9, 0, tzinfo=UTC)),
        ("mar, 04 feb 2025 10:00:00 +01:00", datetime(2025, 2, 4, 9, 0, tzinfo=UTC)),  # "mar" the day, Tuesday
        ("Venerdì, 14 Marzo 2025 10:00", datetime(2025, 3, 14, 10, 0, tzinfo=UTC)),
        ("14 agosto 2025", datetime(2025, 8, 14, tzinfo=UTC)),
        ("sab, 1 set 2025 08:00 CEST", datetime(2025, 9, 1, 6, 0, tzinfo=UTC)),
        ("lunedi 3 nov. 2025 23:59:59 Z", datetime(2025, 11, 3, 23, 59, 59, tzinfo=UTC)),
        ("Mon, 02 Mar 2026 07:00:00 +0000", datetime(2026, 3, 2, 7, 0, tzinfo=UTC)),
        ("March 14, 2025 12:30 AM", datetime(2025, 3, 14, 0, 30, tzinfo=UTC)),
        ("31 feb 2025", None),  # no such day
        ("14 brumaio 2025", None),  # no such month
        ("foo, 14 mar 2025", None),  # no such day name
        ("14 mar 2025 25:00", None),
        ("14 mar 2025 10:00 XYZ", None),  # a zone we do not know is not guessed
        ("", None),
    ],
)
def test_localized_dates(raw: str, expected: datetime | None) -> None:
    parsed = localized_date(raw)
    assert (datetime.fromtimestamp(calendar.timegm(parsed), UTC) if parsed else None) == expected


@pytest.mark.parametrize(
    ("status", "retry_after", "paused"),
    [
        (503, "120", timedelta(seconds=120)),
        (429, "120", timedelta(seconds=120)),
        (503, format_datetime(T0 + timedelta(minutes=45), usegmt=True), timedelta(minutes=45)),
        (503, "99999999999999999999", timedelta(hours=6)),  # capped
        (503, format_datetime(T0 + timedelta(days=30), usegmt=True), timedelta(hours=6)),
    ],
    ids=["seconds", "429", "http-date", "capped-seconds", "capped-date"],
)
def test_retry_after_pauses_the_feed_as_long_as_the_server_asks(
    server: FeedServer, store: Store, status: int, retry_after: str, paused: timedelta
) -> None:
    server.routes["/busy"] = Route(status=status, headers={"Retry-After": retry_after})
    with pytest.raises(RateLimited) as error:
        source(server, "/busy").poll(None, T0)
    assert error.value.retry_at == T0 + paused
    assert f"answered {status}" in str(error.value) and "Retry-After" in str(error.value)

    spec = SourceSpec("busy", "feed", 60, source(server, "/busy"))
    outcome = poll_source(spec, store, [], T0, 30, 900, random.Random(1))
    health = store.source_health("busy")
    assert outcome.error and health.next_retry_at == T0 + paused and health.consecutive_failures == 0


@pytest.mark.parametrize("retry_after", ["soon", "0", format_datetime(T0 - timedelta(minutes=5), usegmt=True)])
def test_an_unusable_retry_after_falls_back_to_the_usual_backoff(server: FeedServer, retry_after: str) -> None:
    server.routes["/busy"] = Route(status=503, headers={"Retry-After": retry_after})
    with pytest.raises(SourceError, match="answered 503") as error:
        source(server, "/busy").poll(None, T0)
    assert not isinstance(error.value, RateLimited)


def test_wordpress_comments_are_answered_by_the_brand_in_the_same_post(server: FeedServer, store: Store) -> None:
    server.routes["/comments"] = route("wordpress-comments.rss")
    poll = source(server, "/comments", platform="web", brand_authors=["Caffè Aurora"]).poll(None, T0)
    assert [m.text for m in poll.mentions] == [
        "Buonissima, ma quando arriva in formato compostabile?",
        "Is it available in the UK shop too?",
    ]
    assert store.save_poll("blog", "feed", poll, T0).answered == 1  # Tom wrote after the brand's answer


def wordpress_open(store: Store) -> list[str]:
    return sorted(c.mention.author.handle.lower() for c in store.conversations.open_between(T0, T0 - timedelta(days=1)))


def test_a_wordpress_reply_answers_only_the_comment_it_replies_to(server: FeedServer, store: Store) -> None:
    server.routes["/comments"] = route("wordpress-reply-comments.rss")
    poll = source(server, "/comments", platform="web", brand_authors=["Caffè Aurora"]).poll(None, T0)
    [reply] = poll.replies
    federico = next(m for m in poll.mentions if m.author.platform_id == "federico")
    assert (reply.in_reply_to, reply.to_author_id) == (federico.platform_id, "")  # the linked comment, exactly
    result = store.save_poll("blog", "feed", poll, T0)
    assert (result.new_mentions, result.answered) == (5, 1)
    assert wordpress_open(store) == ["cheap-followers", "giorgia", "luca", "sara"]  # the spam is not answered


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"<title>Di: Caff\xc3\xa8 Aurora</title>", b"<title>In risposta a Federico</title>"),  # a theme's title
        (b"In risposta a <a href", b"In reply to <a href"),  # an English-language blog
    ],
    ids=["title", "english"],
)
def test_a_wordpress_reply_prefix_in_the_title_or_in_english_names_who_is_answered(
    server: FeedServer, store: Store, old: bytes, new: bytes
) -> None:
    body = (FEEDS / "wordpress-reply-comments.rss").read_bytes()
    if old.startswith(b"<title>"):  # no link to the parent at all: only the name, in the title
        body = re.sub(rb"<content:encoded>.*?</content:encoded>", b"", body, count=1, flags=re.S)
        body = body.replace(b"In risposta a Federico. ", b"")
    assert old in body
    server.routes["/comments"] = Route(body=body.replace(old, new, 1))
    poll = source(server, "/comments", platform="web", brand_authors=["Caffè Aurora"]).poll(None, T0)
    assert store.save_poll("blog", "feed", poll, T0).answered == 1
    assert wordpress_open(store) == ["cheap-followers", "giorgia", "luca", "sara"]


def test_thr_in_reply_to_decides_what_a_brand_entry_answers(server: FeedServer, store: Store) -> None:
    def entry(n: int, author: str, minute: int, extra: str = "") -> str:
        return (
            f"<entry><id>tag:blog.example,2026:c{n}</id><title>Aurora {n}</title><author><name>{author}</name></author>"
            f"<link href='https://blog.example/post/#c{n}'/><updated>2026-03-02T08:{minute:02d}:00Z</updated>"
            f"{extra}</entry>"
        )

    answer = "<thr:in-reply-to ref='tag:blog.example,2026:c2' href='https://blog.example/post/#c2'/>"
    body = (
        "<?xml version='1.0' encoding='utf-8'?><feed xmlns='http://www.w3.org/2005/Atom' "
        "xmlns:thr='http://purl.org/syndication/thread/1.0'><title>Comments</title>"
        + entry(1, "anna", 0)
        + entry(2, "bruno", 5)
        + entry(3, "carla", 10)
        + entry(4, "Aurora", 20, answer)
        + "</feed>"
    )
    server.routes["/atom"] = Route(body=body.encode(), content_type="application/atom+xml")
    poll = source(server, "/atom", platform="web", brand_authors=["aurora"]).poll(None, T0)
    assert poll.replies[0].to_author_id == "" and poll.replies[0].thread_id == "https://blog.example/post/"
    assert store.save_poll("blog", "feed", poll, T0).answered == 1
    assert wordpress_open(store) == ["anna", "carla"]


def test_without_reply_structure_the_policy_decides_whether_a_brand_post_answers_its_thread(
    server: FeedServer, store: Store
) -> None:
    server.routes["/posts.rss"] = route("discourse-posts.rss")
    assert source(server, "/posts.rss", brand_authors=["aurora_staff"]).poll(None, T0).replies[0].to_author_id == (
        EVERYONE_IN_THREAD
    )
    quiet = source(server, "/posts.rss", brand_authors=["aurora_staff"], brand_post_answers_thread=False)
    poll = quiet.poll(None, T0)
    assert (poll.replies[0].in_reply_to, poll.replies[0].to_author_id) == ("", "")
    assert store.save_poll("forum", "feed", poll, T0).answered == 0


def test_entry_ids_do_not_move_across_polls_or_hosts_of_the_same_feed() -> None:
    body = (FEEDS / "discourse-posts.rss").read_bytes()
    first = parse_feed(body, {"content-type": "application/rss+xml", "content-location": "https://x.example/a"})
    second = parse_feed(body, {"content-type": "application/rss+xml", "content-location": "https://x.example/a"})
    assert [e["id"] for e in first["entries"]] == [e["id"] for e in second["entries"]]
    assert thread_of("https://blog.example/post/#comment-3") == "https://blog.example/post/"


@pytest.mark.parametrize(
    ("route_options", "source_options", "reason"),
    [
        ({"body": b"<rss>" + b"x" * 300_000}, {"max_bytes": 100_000}, "more than 100,000 bytes"),
        ({"body": b"\0" * 20_000_000, "gzip": True}, {"max_bytes": 1_000_000}, "(after decompression)"),
        ({"body": b"<rss version='2.0'>" * 40, "drip_seconds": 0.05}, {"deadline_seconds": 1.0}, "still sending"),
        (
            {"body": b"<!doctype html><html><body><p>Welcome</p></body></html>", "content_type": "text/html"},
            {},
            "is not a readable feed",
        ),
        ({"body": b"", "status": 503}, {}, "answered 503"),
    ],
    ids=["oversized", "gzip-bomb", "slow-drip", "html-page", "server-error"],
)
def test_bad_bodies_end_the_poll_within_the_limits_with_a_reason(
    server: FeedServer, route_options: dict, source_options: dict, reason: str
) -> None:
    server.routes["/bad"] = Route(**route_options)
    started = time.monotonic()
    with pytest.raises(SourceError) as error:
        source(server, "/bad", **source_options).poll(None, T0)
    assert reason in str(error.value)
    assert time.monotonic() - started < 10


def test_hostile_and_wrong_charset_feeds_keep_what_can_be_read(server: FeedServer) -> None:
    hostile = (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>t</title>"
        "<item><title>&lt;script&gt;alert(1)&lt;/script&gt;Aurora rocks</title>"
        f"<author>{'A' * 65_536}</author><link>javascript:alert(1)</link><guid>g1</guid>"
        "<description>&lt;img src=x onerror=alert(1)&gt;capsule ottime</description></item>"
        "</channel></rss>"
    ).encode()
    server.routes["/hostile"] = Route(body=hostile)
    started = time.monotonic()
    [mention] = source(server, "/hostile").poll(None, T0).mentions
    assert time.monotonic() - started < 10
    assert "<" not in mention.text and "capsule ottime" in mention.text
    assert mention.url == "" and len(mention.author.handle) <= 200  # javascript: link dropped, author cut

    latin1 = "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>t</title>"
    latin1 += "<item><title>Caffè buonissimo</title><guid>g2</guid></item></channel></rss>"
    server.routes["/latin1"] = Route(body=latin1.encode("latin-1"))
    poll = source(server, "/latin1").poll(None, T0)
    assert len(poll.mentions) == 1 and poll.details["warning"]  # read, with the encoding problem noted


def test_private_addresses_are_refused_unless_allowed_and_no_request_is_sent(server: FeedServer) -> None:
    server.routes["/posts.rss"] = route("discourse-posts.rss")
    guarded = FeedSource(name="forum", url=server.url("/posts.rss"))
    with pytest.raises(SourceError, match=re.escape("127.0.0.1, which is not a public address; refused")):
        guarded.poll(None, T0)
    assert server.hits["/posts.rss"] == 0
    for address in ("10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1"):
        assert not public_address(address), address
    for address in ("::ffff:127.0.0.1", "fc00::1", "fe80::1%eth0", "224.0.0.1", "127.1.2.3"):
        assert not public_address(address), address
    assert public_address("93.184.216.34") and public_address("2606:4700::1111")


def test_redirects_are_checked_at_every_hop(server: FeedServer) -> None:
    server.routes["/feed"] = route("discourse-posts.rss")
    server.routes["/moved"] = Route(status=301, location="/feed")
    assert len(source(server, "/moved").poll(None, T0).mentions) == 4
    server.routes["/to-file"] = Route(status=302, location="file:///etc/passwd")
    with pytest.raises(SourceError, match="only http and https"):
        source(server, "/to-file").poll(None, T0)
    for hop in range(5):
        server.routes[f"/loop{hop}"] = Route(status=302, location=f"/loop{hop + 1}")
    with pytest.raises(SourceError, match="more than 3 redirects"):
        source(server, "/loop0").poll(None, T0)


@pytest.fixture
def canary() -> Iterator[FeedServer]:
    """A second server on 127.0.0.1 (another port: another service) whose feed must never be fetched."""
    for running in FeedServer().serve():
        running.routes["/canary"] = route("discourse-posts.rss")
        yield running


@pytest.mark.parametrize(
    ("allowed", "target"),
    [
        (["127.0.0.1:{port}"], "http://127.0.0.1:{canary}/canary"),  # same address, a port not listed
        (["127.0.0.1"], "http://localhost:{canary}/canary"),  # a host name not listed
        (["127.0.0.1"], "http://127.0.0.2:{canary}/canary"),  # another loopback address
        (["127.0.0.1"], "http://[::1]:{canary}/canary"),
    ],
    ids=["other-port", "other-name", "other-loopback", "ipv6-loopback"],
)
def test_a_redirect_may_only_reach_private_hosts_the_source_lists(
    server: FeedServer, canary: FeedServer, store: Store, allowed: list[str], target: str
) -> None:
    server.routes["/feed"] = Route(status=302, location=target.format(canary=canary.port))
    feed = source(server, "/feed", allow_private=[a.format(port=server.port) for a in allowed])
    spec = SourceSpec("forum", "feed", 60, feed)
    outcome = poll_source(spec, store, [], T0, 30, 900, random.Random(1))
    assert "not in this source's allow_private" in outcome.error and "redirected there from" in outcome.error
    assert server.hits["/feed"] == 1 and canary.hits["/canary"] == 0
    assert store.counts()["mentions"] == 0


def test_listed_hosts_ports_and_networks_are_reachable_at_every_hop(server: FeedServer, canary: FeedServer) -> None:
    server.routes["/feed"] = Route(status=302, location=canary.url("/canary"))
    for allowed in (["127.0.0.1"], [f"127.0.0.1:{server.port}", f"127.0.0.1:{canary.port}"], ["127.0.0.0/8"]):
        assert len(source(server, "/feed", allow_private=allowed).poll(None, T0).mentions) == 4, allowed
    assert canary.hits["/canary"] == 3
    with pytest.raises(SourceError, match="not in this source's allow_private"):  # the feed's own URL, too
        source(server, "/feed", allow_private=["intranet.example", "10.1.2.0/24"]).poll(None, T0)


def test_allow_private_true_still_means_any_and_is_logged_as_deprecated(
    server: FeedServer, canary: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.routes["/feed"] = Route(status=302, location=f"http://localhost:{canary.port}/canary")
    with caplog.at_level(logging.WARNING, logger="listener.feed"):
        feed = source(server, "/feed", allow_private=True)
    assert "allow_private = true" in caplog.text and "deprecated" in caplog.text
    assert PrivateAllowance.parse(True).describe() == "any private address"
    try:
        feed.poll(None, T0)
    except SourceError as error:  # localhost may resolve to ::1 first, where nothing listens: not refused, though
        assert "allow_private" not in str(error)


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ("intra net", "is not a host name, an IP address or a network"),
        ("10.1.2.0/33", "is not a network"),
        ("intranet.example:99999", "is not a port number"),
    ],
)
def test_bad_allow_private_entries_are_config_problems(tmp_path: Path, entry: str, problem: str) -> None:
    from passaparola.config import ConfigError

    text = (
        f'[[sources]]\ntype = "feed"\nname = "f"\nurl = "https://intranet.example/feed"\nallow_private = ["{entry}"]\n'
    )
    with pytest.raises(ConfigError) as error:
        settings_from(text, tmp_path)
    assert len(error.value.problems) == 1 and problem in error.value.problems[0], error.value.problems
    good = text.replace(f'"{entry}"', '"intranet.example", "10.1.2.0/24", "[fd00::1]:8443"')
    allowance = PrivateAllowance.parse(settings_from(good, tmp_path).sources[0].source.allow_private)
    assert allowance.describe() == "intranet.example, fd00::1:8443, 10.1.2.0/24"


def test_a_hostile_feed_never_stalls_the_daemon(server: FeedServer, store: Store) -> None:
    server.routes["/drip"] = Route(body=b"<rss>" * 200, drip_seconds=0.05)
    server.routes["/posts.rss"] = route("discourse-posts.rss")
    bad = SourceSpec("drip", "feed", 60, source(server, "/drip", deadline_seconds=1.0))
    good = SourceSpec("forum", "feed", 60, source(server, "/posts.rss"))
    rng = random.Random(1)
    outcomes = [poll_source(spec, store, [], T0, 60, 900, rng) for spec in (bad, good)]
    assert "still sending after 1 s" in outcomes[0].error and outcomes[1].new_mentions == 4
    assert store.source_health("drip").consecutive_failures == 1


def test_config_validates_feed_sources(tmp_path: Path) -> None:
    from passaparola.config import ConfigError

    with pytest.raises(ConfigError) as error:
        settings_from('[[sources]]\ntype = "feed"\nurl = "file:///etc/passwd"\n', tmp_path)
    assert error.value.problems == [
        "sources[0]: url 'file:///etc/passwd' is not an http(s) URL; give the feed's full address"
    ]
    settings = settings_from(
        '[[sources]]\ntype = "feed"\nname = "f"\nurl = "https://forum.example/posts.rss"\n', tmp_path
    )
    assert settings.sources[0].source.allow_private is False


@pytest.mark.skipif(not CORPUS.is_dir(), reason="feedparser's corpus lives in ../shared/data beside the checkout")
def test_feedparsers_own_corpus_never_raises() -> None:
    files = sorted(CORPUS.rglob("*.xml"))
    assert len(files) > 100
    for path in files:
        result = parse_feed(path.read_bytes(), {"content-type": "application/xml"})
        assert isinstance(result["entries"], list)


def big_feed(entries: int) -> bytes:
    items = "".join(
        f"<item><title>Caffè Aurora {i}</title><link>https://blog.example/p/{i}</link>"
        f"<description>{'la macchina Aurora non parte ' * 40}</description></item>"
        for i in range(entries)
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{items}</channel></rss>'.encode()


def test_a_parse_past_its_time_limit_is_skipped_and_the_next_feed_parses(server: FeedServer) -> None:
    server.routes["/huge"] = Route(body=big_feed(3000))
    server.routes["/posts.rss"] = route("discourse-posts.rss")
    with pytest.raises(SourceError, match=r"parsing took longer than 0.05 s"):
        source(server, "/huge", parse_timeout_seconds=0.05, max_bytes=50_000_000).poll(None, T0)
    assert len(source(server, "/posts.rss").poll(None, T0).mentions) == 4  # a fresh worker took its place


def test_every_feed_source_shares_one_small_pool_of_parse_workers(server: FeedServer) -> None:
    """31 feeds once started 31 workers of about 130 MB each; now they queue for the same few."""
    import multiprocessing
    from concurrent.futures import ThreadPoolExecutor

    server.routes["/posts.rss"] = route("discourse-posts.rss")
    feeds = [source(server, "/posts.rss") for _ in range(12)]
    with ThreadPoolExecutor(6) as polls:
        counts = list(polls.map(lambda feed: len(feed.poll(None, T0).mentions), feeds))
    assert counts == [4] * 12
    assert 1 <= len(multiprocessing.active_children()) <= PARSE_WORKERS


def test_the_command_spawned_workers_import_is_free_of_the_daemon() -> None:
    """A spawned worker re-imports its parent's main module: the ``passaparola`` command's must be light."""
    import subprocess
    import sys

    script = Path(sys.executable).parent / "passaparola"
    assert "from passaparola.__main__ import main" in script.read_text()
    heavy = "('spacy', 'numpy', 'passaparola.cli')"
    probe = f"import sys, passaparola.__main__; print(sorted(m for m in {heavy} if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout == "[]\n"
