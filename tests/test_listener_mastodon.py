"""The `mastodon` source and its replier against a local Mastodon instance: each stream once, Link paging, restart
cursors, reblogs, HTML as text, rate limits and refusals in words, answers posted exactly once as visible as what they
answer."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr

from listener.mastodon import MastodonReplier, MastodonSource, html_text, mastodon_length
from listener.model import Mention, RateLimited, SourceError
from listener.replying import Replier, ReplyError
from storage import Store
from tests.conftest import T0, settings_from
from tests.mastodonapi import FakeMastodon, reset_header, serve

TOKEN = "SENTINEL-mastodon-token-0123456789abcdef"
BRAND = "109301557102345678"
# Statuses of the fixture (ids on mastodon.social), oldest first.
ANNOUNCE = "116157579264000000"  # the brand's own post: #CaffeAurora, no mention of anyone
ANNA = "116158051123200000"  # complaint, mentions the brand; Anna is not searchable (indexable false)
MARCO = "116158169088000000"  # question with #CaffeAurora, mentions the brand
BRAND_TO_MARCO = "116158287052800000"  # the brand's answer to Marco
MARCO_THANKS = "116158326374400000"  # Marco's reply to the brand's answer
EMILY = "116158405017600000"  # praise in English, #CaffeAurora, with a content warning and a long link
REBLOG = "116158424678400001"  # the brand reblogging Emily's praise
GIULIA = "116158522982400002"  # a quote post saying "Aurora": heard only by search
LUISA = "116158581964800000"  # a direct message with a question
PAOLO = "116158640947200000"  # a complaint by someone not searchable, no mention, no hashtag
MARCO_ID = "110004470023301102"
ANNA_ID = "110004470023301101"
ANSWER = "Ciao Anna, ci scusiamo per il ritardo: ti scriviamo ora in privato per il rimborso."


@pytest.fixture
def fake() -> Iterator[FakeMastodon]:
    with serve(FakeMastodon.from_fixture(TOKEN)) as server:
        yield server


def source(fake: FakeMastodon, **options: Any) -> MastodonSource:
    settings: dict[str, Any] = dict(
        name="fediverso",
        instance=fake.base_url,
        access_token=SecretStr(TOKEN),
        hashtags=["CaffeAurora"],
        keywords=["aurora"],
        timeout_seconds=2.0,
    )
    settings.update(options)
    return MastodonSource(**settings)


def replier(fake: FakeMastodon, **options: Any) -> MastodonReplier:
    made = source(fake, **options).replier()
    assert made is not None
    return made


def heard(fake: FakeMastodon, status_id: str) -> Mention:
    """The mention the source heard for ``status_id`` on a first poll."""
    return next(m for m in source(fake).poll(None, T0).mentions if m.platform_id == status_id)


def queries(fake: FakeMastodon, path: str) -> list[dict[str, list[str]]]:
    """The query of every GET of ``path``, in order."""
    return [parse_qs(urlsplit(p).query) for p in fake.paths() if urlsplit(p).path == path]


def refusal(call: Callable[[], object]) -> ReplyError:
    with pytest.raises(ReplyError) as caught:
        call()
    assert TOKEN not in str(caught.value)
    return caught.value


def closed_port() -> str:
    with socket.socket() as probe:  # a port nobody listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


# -- listening -----------------------------------------------------------------------------------------


def test_the_first_poll_hears_each_stream_once_and_the_brand_reply_answers(fake: FakeMastodon, store: Store) -> None:
    poll = source(fake).poll(None, T0)

    # Marco's question came by notification and by hashtag, Anna's by notification and search: each is heard once.
    assert [m.platform_id for m in poll.mentions] == [ANNA, MARCO, MARCO_THANKS, EMILY, GIULIA, LUISA]
    assert PAOLO in fake.statuses  # on the instance, but search cannot see it: Paolo did not opt in to search
    anna = poll.mentions[0]
    assert anna.text == (
        "@AuroraCaffe il mio ordine n. 8812 è fermo da una settimana e nessuno risponde alle email.\n"
        "Pessimo servizio, sono delusa.\n\nQualcuno mi aiuta?"
    )
    assert (anna.author.platform_id, anna.author.handle, anna.author.display_name, anna.author.reach) == (
        ANNA_ID,
        "anna_r@mastodon.uno",
        "Anna Rossi",
        312,
    )
    assert anna.url == "https://mastodon.uno/@anna_r/116158051136571337"  # her server's link; the id is ours
    assert (anna.platform, anna.thread_id, anna.in_reply_to, anna.language_hint) == ("mastodon", ANNA, "", "it")
    thanks = poll.mentions[2]
    assert (thanks.in_reply_to, thanks.thread_id) == (BRAND_TO_MARCO, MARCO)  # the root, through the brand's reply
    emily = poll.mentions[3]
    assert emily.language_hint == "en" and emily.author.shown == "@emily@mastodon.online"
    assert dict(emily.metrics) == {"favourites_count": 23, "reblogs_count": 4, "replies_count": 0}

    # The brand's own announcement (in the hashtag) and its reblog of Emily are nobody's mention.
    [answer] = poll.replies
    assert (answer.platform_id, answer.in_reply_to, answer.to_author_id) == (BRAND_TO_MARCO, MARCO, MARCO_ID)
    assert (answer.author_handle, answer.thread_id) == ("AuroraCaffe", MARCO)
    assert answer.text.startswith("@marco Ciao Marco, sì:")

    saved = store.save_poll("fediverso", "mastodon", poll, T0)
    assert (saved.new_mentions, saved.answered) == (6, 1)
    marco = store.conversation(f"mastodon:{MARCO}")
    assert marco is not None and marco.state == "answered" and marco.response_seconds == 30 * 60
    still = store.conversation(f"mastodon:{ANNA}")
    assert still is not None and still.is_open
    assert poll.details["account"] == f"@AuroraCaffe@127.0.0.1:{fake.port}"


def test_status_html_becomes_the_text_a_reader_sees(fake: FakeMastodon) -> None:
    by_id = {m.platform_id: m for m in source(fake).poll(None, T0).mentions}
    # The content warning first; the link whole, though Mastodon splits it into invisible and ellipsis spans.
    assert by_id[EMILY].text == (
        "coffee review\n\nBest espresso I've had outside Naples: the Aurora Intenso beans are wonderful ☕️ "
        "https://www.caffeaurora.it/en/shop/intenso-1kg #CaffeAurora"
    )
    assert by_id[GIULIA].text == "Confermo, l'Aurora Intenso in moka è buonissimo."  # the hidden "RE: <link>" left out
    assert by_id[LUISA].text == (
        "@AuroraCaffe ciao, posso cambiare l'indirizzo di consegna dell'ordine 9031?\nGrazie & buona giornata"
    )
    assert by_id[MARCO_THANKS].text == "@AuroraCaffe perfetto, grazie mille! <3"  # an escaped < is the reader's <
    assert html_text("<p>uno   due\n tre</p><p></p><p>quattro<br>cinque<br/></p>") == "uno due tre\n\nquattro\ncinque"
    assert html_text('<p class="quote-inline">RE: <a href="x">x<br>y</a></p><p>mio</p>') == "mio"
    assert html_text("Misskey-style <b>bold</b> text<br>second") == "Misskey-style bold text\nsecond"


def test_link_paging_reads_back_then_a_restart_reads_forward_from_the_stored_cursor(
    fake: FakeMastodon, store: Store
) -> None:
    notifications = source(fake, streams=["notifications"], page_size=2, first_poll_pages=3, max_pages=5)
    first = notifications.poll(None, T0)
    assert [m.platform_id for m in first.mentions] == [ANNA, MARCO, MARCO_THANKS, LUISA]
    pages = queries(fake, "/api/v1/notifications")
    assert [p.get("max_id") for p in pages] == [None, ["41000131"], ["41000103"]]  # rel="next", as Mastodon links it
    assert all(p["types[]"] == ["mention"] and p["limit"] == ["2"] for p in pages)  # kept by the Link header
    assert store.save_poll("fediverso", "mastodon", first, T0).new_mentions == 4

    # Five mentions arrive while passaparola is down; the restart reads forward from the stored cursor.
    for minute in range(1, 6):
        fake.add_status(ANNA_ID, f"@AuroraCaffe sollecito n. {minute}", T0 + timedelta(minutes=minute), notify=True)
    fake.requests.clear()
    again = notifications.poll(store.cursor("fediverso"), T0 + timedelta(minutes=10))
    texts = [m.text for m in again.mentions]
    assert texts == [f"@AuroraCaffe sollecito n. {n}" for n in range(1, 6)]
    forward = [p.get("min_id") for p in queries(fake, "/api/v1/notifications")]
    assert forward == [["41000152"], ["41000166"], ["41000180"]]  # rel="prev" until a page that is not full
    assert store.save_poll("fediverso", "mastodon", again, T0).new_mentions == 5

    fake.requests.clear()
    quiet = notifications.poll(store.cursor("fediverso"), T0 + timedelta(minutes=15))
    assert quiet.mentions == () and len(queries(fake, "/api/v1/notifications")) == 1
    assert quiet.cursor is not None and quiet.cursor["streams"] == again.cursor["streams"]  # type: ignore[index]


def test_max_pages_bounds_a_poll_and_the_next_poll_carries_on_without_a_gap(fake: FakeMastodon) -> None:
    bounded = source(fake, streams=["hashtags"], page_size=2, max_pages=2)
    cursor = bounded.poll(None, T0).cursor
    for minute in range(1, 6):
        fake.add_status(MARCO_ID, f"Aurora n. {minute} #CaffeAurora", T0 + timedelta(minutes=minute))
    second = bounded.poll(cursor, T0 + timedelta(minutes=10))
    assert [m.text for m in second.mentions] == [f"Aurora n. {n} #CaffeAurora" for n in range(1, 5)]
    assert second.details["truncated_streams"] == ["hashtags:CaffeAurora"]
    third = bounded.poll(second.cursor, T0 + timedelta(minutes=15))
    assert [m.text for m in third.mentions] == ["Aurora n. 5 #CaffeAurora"]
    assert third.details["truncated_streams"] == []


def test_reblogs_are_never_mentions_nor_answers(fake: FakeMastodon) -> None:
    poll = source(fake, streams=["posts"]).poll(None, T0)
    assert fake.statuses[REBLOG]["reblog"]["id"] == EMILY  # the instance sent the brand's reblog of Emily's praise
    assert poll.mentions == ()  # neither the reblog nor the praise inside it
    assert [r.platform_id for r in poll.replies] == [BRAND_TO_MARCO]


def test_a_reply_typed_in_the_mastodon_app_marks_the_mention_answered(fake: FakeMastodon, store: Store) -> None:
    listening = source(fake)
    store.save_poll("fediverso", "mastodon", listening.poll(None, T0), T0)
    typed = fake.add_status(BRAND, f"@anna_r@mastodon.uno {ANSWER}", T0 + timedelta(minutes=20), reply_to=ANNA)
    poll = listening.poll(store.cursor("fediverso"), T0 + timedelta(minutes=25))
    [reply] = poll.replies
    assert (reply.platform_id, reply.in_reply_to, reply.to_author_id) == (typed["id"], ANNA, ANNA_ID)
    assert reply.text == f"@anna_r {ANSWER}"  # Mastodon shows a remote mention by its local part
    assert store.save_poll("fediverso", "mastodon", poll, T0 + timedelta(minutes=25)).answered == 1
    anna = store.conversation(f"mastodon:{ANNA}")
    assert anna is not None and anna.state == "answered" and anna.response_seconds == 200 * 60


def test_the_token_travels_only_in_the_authorization_header(fake: FakeMastodon) -> None:
    listening = source(fake)
    listening.poll(None, T0)
    answering = listening.replier()
    assert answering is not None
    answering.reply(heard(fake, ANNA), ANSWER, T0)
    assert fake.requests and all(TOKEN not in r["path"] for r in fake.requests)
    assert all(r["headers"]["Authorization"] == f"Bearer {TOKEN}" for r in fake.requests)
    assert TOKEN not in repr(listening) and TOKEN not in repr(answering)


def test_an_invalid_token_says_what_to_renew_and_never_shows_it(fake: FakeMastodon) -> None:
    wrong = "SENTINEL-revoked-token-9876"
    with pytest.raises(SourceError) as error:
        source(fake, access_token=SecretStr(wrong)).poll(None, T0)
    message = str(error.value)
    assert "The access token is invalid" in message and "Preferences > Development" in message
    assert "read and write:statuses" in message and wrong not in message and TOKEN not in message


def test_a_429_pauses_the_source_until_the_instance_says(fake: FakeMastodon) -> None:
    reset = T0 + timedelta(minutes=7)
    fake.fault("/api/v1/accounts/verify_credentials", status=429, headers={"X-RateLimit-Reset": reset_header(reset)})
    with pytest.raises(RateLimited) as limited:
        source(fake).poll(None, T0)
    assert limited.value.retry_at == reset and "Too many requests" in str(limited.value)

    # A limit met half-way: what was read is kept, and the next poll waits without asking the instance.
    fake.fault("/api/v1/timelines/tag/", status=429, headers={"X-RateLimit-Reset": reset_header(reset)})
    listening = source(fake)
    partial = listening.poll(None, T0)
    assert {m.platform_id for m in partial.mentions} == {ANNA, MARCO, MARCO_THANKS, LUISA}  # the notifications
    assert partial.cursor is not None and "hashtags:CaffeAurora" not in partial.cursor["streams"]
    assert partial.details["paused_until"] == reset.isoformat()
    asked = len(fake.requests)
    with pytest.raises(RateLimited) as waiting:
        listening.poll(partial.cursor, T0 + timedelta(minutes=1))
    assert waiting.value.retry_at == reset and len(fake.requests) == asked
    after = listening.poll(partial.cursor, reset)
    assert EMILY in {m.platform_id for m in after.mentions}  # the hashtag stream read at last


def test_a_429_without_a_readable_reset_waits_five_minutes(fake: FakeMastodon) -> None:
    fake.fault("/api/v1/accounts/verify_credentials", status=429, headers={"X-RateLimit-Reset": "soon"})
    with pytest.raises(RateLimited) as limited:
        source(fake).poll(None, T0)
    assert limited.value.retry_at == T0 + timedelta(minutes=5)


def test_missing_scopes_a_failing_instance_and_no_instance_say_what_to_do(fake: FakeMastodon) -> None:
    fake.scopes = {"write:statuses"}
    with pytest.raises(SourceError, match="give its application the read scope") as forbidden:
        source(fake).poll(None, T0)
    assert "outside the authorized scopes" in str(forbidden.value)
    fake.scopes = {"read", "write:statuses"}
    fake.fault("/api/v2/search", status=503, body={"error": "Service Unavailable"})
    with pytest.raises(SourceError, match=r"failed \(Service Unavailable\); will retry"):
        source(fake).poll(None, T0)
    with pytest.raises(SourceError, match=r"cannot reach 127\.0\.0\.1") as down:
        source(fake, instance=closed_port()).poll(None, T0)
    assert TOKEN not in str(down.value)


def test_a_hashtag_the_instance_answers_404_for_is_no_failure(fake: FakeMastodon) -> None:
    fake.fault("/api/v1/timelines/tag/", status=404)
    poll = source(fake).poll(None, T0)
    assert MARCO in {m.platform_id for m in poll.mentions}
    assert poll.cursor is not None and "hashtags:CaffeAurora" not in poll.cursor["streams"]


def test_another_instance_starts_afresh(fake: FakeMastodon) -> None:
    cursor = dict(source(fake).poll(None, T0).cursor or {})
    cursor["instance"] = "https://mastodon.uno"  # ids from another server mean nothing here
    poll = source(fake).poll(cursor, T0)
    assert len(poll.mentions) == 6 and all("min_id" not in q for q in queries(fake, "/api/v1/notifications"))


# -- answering ----------------------------------------------------------------------------------------


def test_a_reply_goes_in_reply_to_the_mention_mentioning_its_author_and_the_next_poll_hears_it(
    fake: FakeMastodon, store: Store
) -> None:
    listening = source(fake)
    poll = listening.poll(None, T0)
    store.save_poll("fediverso", "mastodon", poll, T0)
    anna = poll.mentions[0]
    answering = listening.replier()
    assert isinstance(answering, Replier) and isinstance(answering, MastodonReplier)
    assert (answering.channel, answering.cost_usd(ANSWER), answering.check(ANSWER)) == ("mastodon", 0.0, "")
    fake.write_time = T0 + timedelta(minutes=5)

    sent = answering.reply(anna, ANSWER, T0 + timedelta(minutes=5))

    [write] = fake.writes
    assert write["form"]["status"] == [f"@anna_r@mastodon.uno {ANSWER}"]  # Mastodon notifies only who is mentioned
    assert (write["form"]["in_reply_to_id"], write["form"]["visibility"]) == ([ANNA], ["public"])
    assert write["form"]["language"] == ["it"] and write["headers"]["Idempotency-Key"].startswith("passaparola-")
    assert fake.created == 1
    made = write["status"]
    assert (sent.platform_id, sent.url) == (made["id"], f"https://mastodon.social/@AuroraCaffe/{made['id']}")
    assert (sent.text, sent.published_at) == (f"@anna_r {ANSWER}", T0 + timedelta(minutes=5))
    assert answering.account == "AuroraCaffe"  # stored under the handle the poll gives the brand's replies

    later = listening.poll(store.cursor("fediverso"), T0 + timedelta(minutes=10))
    assert sent.platform_id not in {m.platform_id for m in later.mentions}
    [ours] = later.replies
    assert (ours.platform_id, ours.in_reply_to, ours.author_handle) == (sent.platform_id, ANNA, answering.account)
    store.save_poll("fediverso", "mastodon", later, T0 + timedelta(minutes=10))
    answered = store.conversation(f"mastodon:{ANNA}")
    assert answered is not None and answered.state == "answered"


@pytest.mark.parametrize(
    ("visibility", "public_as", "expected"),
    [
        ("direct", "public", "direct"),
        ("private", "public", "private"),
        ("unlisted", "public", "unlisted"),
        ("public", "unlisted", "unlisted"),
        ("public", "public", "public"),
    ],
)
def test_a_reply_is_never_more_visible_than_what_it_answers(
    fake: FakeMastodon, visibility: str, public_as: str, expected: str
) -> None:
    asked = fake.add_status(
        MARCO_ID, "@AuroraCaffe avete la decaffeinata in grani?", T0, visibility=visibility, notify=True
    )
    mention = heard(fake, asked["id"])
    sent = replier(fake, public_reply_visibility=public_as).reply(mention, "Sì, Marco: da oggi.", T0)
    [write] = fake.writes
    assert write["form"]["visibility"] == [expected] and write["form"]["in_reply_to_id"] == [asked["id"]]
    assert fake.statuses[sent.platform_id]["visibility"] == expected


def test_a_direct_message_is_answered_directly_and_a_draft_naming_the_author_is_kept(fake: FakeMastodon) -> None:
    luisa = heard(fake, LUISA)
    answering = replier(fake)
    answering.reply(luisa, "@luisa sì, scrivici il nuovo indirizzo qui.", T0)
    [write] = fake.writes
    assert write["form"]["visibility"] == ["direct"]
    assert write["form"]["status"] == ["@luisa sì, scrivici il nuovo indirizzo qui."]  # not named twice
    anna = heard(fake, ANNA)
    answering.reply(anna, "@anna_r ti scriviamo ora.", T0)  # her bare name would mean someone on mastodon.social
    assert fake.writes[-1]["form"]["status"] == ["@anna_r@mastodon.uno ti scriviamo ora."]


def test_a_post_that_got_no_answer_is_unknown_found_and_never_made_twice(fake: FakeMastodon) -> None:
    anna = heard(fake, ANNA)
    fake.write_time = T0 + timedelta(minutes=1)
    fake.stall_after_write = 2.0  # the instance makes the status, then the answer comes too late
    answering = replier(fake, timeout_seconds=0.5)
    error = refusal(lambda: answering.reply(anna, ANSWER, T0 + timedelta(minutes=1)))
    assert error.problem == "unknown" and error.transient and "may exist" in str(error)
    fake.stall_after_write = 0.0
    assert fake.created == 1
    made = fake.writes[0]["status"]

    found = answering.find(anna, ANSWER, T0, T0 + timedelta(minutes=2))
    assert found is not None and (found.platform_id, found.published_at) == (made["id"], T0 + timedelta(minutes=1))

    # Had the lookup missed it, the retried post carries the same Idempotency-Key: the same status, no second one.
    again = answering.reply(anna, ANSWER, T0 + timedelta(minutes=2))
    assert again.platform_id == made["id"] and fake.created == 1
    first, second = fake.writes
    assert first["headers"]["Idempotency-Key"] == second["headers"]["Idempotency-Key"] and second["repeat"]
    other = answering.reply(anna, "Anna, il rimborso è partito.", T0 + timedelta(minutes=3))
    assert other.platform_id != made["id"] and fake.created == 2  # another answer is another post


def test_find_matches_the_text_as_mastodon_shows_it_only_in_that_thread_and_pages_back(fake: FakeMastodon) -> None:
    anna = heard(fake, ANNA)
    typed = "Il rimborso & il nuovo ordine:  https://www.caffeaurora.it/ordini/8812?lang=it grazie!"
    ours = fake.add_status(BRAND, f"@anna_r@mastodon.uno {typed}", T0 - timedelta(minutes=30), reply_to=ANNA)
    for n in range(45):  # newer posts of the brand push ours to the second page
        fake.add_status(BRAND, f"Buongiorno n. {n}", T0 - timedelta(minutes=29) + timedelta(seconds=n))
    answering = replier(fake)
    fake.requests.clear()
    found = answering.find(anna, typed, T0 - timedelta(minutes=40), T0)
    assert found is not None and found.platform_id == ours["id"]
    assert found.text == f"@anna_r {' '.join(typed.split())}" and found.published_at == T0 - timedelta(minutes=30)
    pages = queries(fake, f"/api/v1/accounts/{BRAND}/statuses")
    assert len(pages) == 2 and pages[1]["max_id"]  # it followed rel="next"
    assert answering.find(anna, "Tutt'altra risposta", T0 - timedelta(minutes=40), T0) is None
    assert answering.find(heard(fake, LUISA), typed, T0 - timedelta(minutes=40), T0) is None  # another mention
    assert answering.find(anna, typed, T0 - timedelta(minutes=10), T0) is None  # older than asked for
    assert fake.created == 0


def test_the_character_limit_is_the_instances_own_counted_as_mastodon_counts(fake: FakeMastodon) -> None:
    fake.max_characters = 600
    answering = replier(fake)
    assert answering.check("a" * 600) == ""
    assert answering.check("a" * 601) == (
        f"601 characters as Mastodon counts them (links count 23); 127.0.0.1:{fake.port} allows 600: shorten it by 1"
    )
    link = "https://www.caffeaurora.it/" + "p" * 300
    assert answering.check("a" * 576 + " " + link) == ""  # the 327-character link counts 23
    assert answering.check("👍🏽" * 600) == "" and "shorten it by 1" in answering.check("👍🏽" * 601)
    assert answering.check("  ") and answering.check("")
    assert fake.paths().count("/api/v2/instance/") == 1  # read once, then kept
    assert mastodon_length("@anna_r@mastodon.uno ciao") == len("@anna_r ciao")


def test_a_draft_too_long_once_addressed_is_refused_before_posting(fake: FakeMastodon) -> None:
    anna = heard(fake, ANNA)
    answering = replier(fake)
    draft = "a" * 495
    assert answering.check(draft) == ""
    error = refusal(lambda: answering.reply(anna, draft, T0))
    assert error.problem == "too_long" and "@anna_r@mastodon.uno" in str(error) and "shorten it by 3" in str(error)
    assert fake.writes == []

    # The instance has the last word: its 422 is too_long too.
    limit = {"error": "Validation failed: Text character limit of 500 exceeded"}
    fake.fault("/api/v1/statuses", method="POST", status=422, body=limit)
    error = refusal(lambda: answering.reply(anna, "Ciao Anna!", T0))
    assert error.problem == "too_long" and "character limit of 500" in str(error) and fake.created == 0


@pytest.mark.parametrize(
    ("setup", "problem", "advice"),
    [
        ({"token": "SENTINEL-other-token"}, "expired_token", "Preferences > Development"),
        ({"scopes": {"read"}}, "permission", "write:statuses"),
        ({"deleted": True}, "deleted", "gone or not visible"),
        ({"fault": 429}, "rate_limited", "Too many requests"),
        ({"fault": 503}, "unavailable", "nothing was posted"),
        ({"closed": True}, "unavailable", "cannot reach"),
    ],
)
def test_refusals_say_what_to_do_and_post_nothing(
    fake: FakeMastodon, setup: dict[str, Any], problem: str, advice: str
) -> None:
    anna = heard(fake, ANNA)
    options: dict[str, Any] = {}
    reset = T0 + timedelta(minutes=9)
    if "token" in setup:
        options["access_token"] = SecretStr(setup["token"])
    if "scopes" in setup:
        fake.scopes = setup["scopes"]
    if setup.get("deleted"):
        fake.statuses.pop(ANNA)
    if setup.get("fault") == 429:
        fake.fault("/api/v1/statuses", method="POST", status=429, headers={"X-RateLimit-Reset": reset_header(reset)})
    elif setup.get("fault"):
        fake.fault("/api/v1/statuses", method="POST", status=setup["fault"])
    answering = replier(fake, **options)
    if setup.get("closed"):
        answering = replace(answering, instance=closed_port())
    error = refusal(lambda: answering.reply(anna, ANSWER, T0))
    assert error.problem == problem and advice in str(error), str(error)
    assert "SENTINEL" not in str(error) and fake.created == 0
    assert error.retry_at == (reset if problem == "rate_limited" else None)


def test_find_failures_are_unavailable_or_the_token(fake: FakeMastodon) -> None:
    anna = heard(fake, ANNA)
    assert refusal(lambda: replier(fake, access_token=SecretStr("x")).find(anna, ANSWER, T0, T0)).problem == (
        "expired_token"
    )
    fake.fault(f"/api/v1/accounts/{BRAND}/statuses", delay=1.5)
    error = refusal(lambda: replier(fake, timeout_seconds=0.5).find(anna, ANSWER, T0, T0))
    assert error.problem == "unavailable" and error.transient  # a lookup posts nothing


# -- configuration -----------------------------------------------------------------------------------


def test_the_config_reads_the_token_from_a_secret_and_names_what_is_wrong(tmp_path: Path) -> None:
    from passaparola.config import ConfigError, dumps

    text = (
        '[[sources]]\ntype = "mastodon"\nname = "fediverso"\ninstance = "mastodon.social"\n'
        'access_token = { env = "MASTODON_TOKEN" }\nhashtags = ["#CaffeAurora"]\n'
    )
    settings = settings_from(text, tmp_path, {"MASTODON_TOKEN": TOKEN})
    built = settings.sources[0].source
    assert isinstance(built, MastodonSource)
    assert (built.instance, built.hashtags, built.active_streams) == (
        "https://mastodon.social",
        ["CaffeAurora"],
        ["notifications", "hashtags", "posts"],
    )
    assert built.access_token.get_secret_value() == TOKEN and TOKEN not in dumps(settings)

    wrong = text.replace('"mastodon.social"', '"https://mastodon.social/@AuroraCaffe"') + 'streams = ["search"]\n'
    with pytest.raises(ConfigError) as caught:
        settings_from(wrong, tmp_path, {"MASTODON_TOKEN": TOKEN})
    assert any("must be the base URL of the brand account's server" in p for p in caught.value.problems)
    with pytest.raises(ConfigError) as missing:
        settings_from(text.replace('access_token = { env = "MASTODON_TOKEN" }\n', ""), tmp_path, {})
    assert any("access_token is required" in p and "write:statuses" in p for p in missing.value.problems)


def test_a_read_only_source_offers_no_replier_and_streams_need_their_words(fake: FakeMastodon) -> None:
    assert source(fake, answering=False).replier() is None
    with pytest.raises(ValueError, match="the search stream needs keywords"):
        source(fake, keywords=[], streams=["search"])
    with pytest.raises(ValueError, match="without # and without spaces"):
        source(fake, hashtags=["caffè aurora"])
    assert source(fake, hashtags=[], keywords=[]).active_streams == ["notifications", "posts"]
