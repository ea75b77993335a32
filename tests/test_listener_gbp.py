"""The `gbp` source and its replier against a local Google Business Profile double: reviews with their stars, the
owner's replies as answers, edits and deletions between polls, Google's refusals in words that say what to do, and
an answer that is posted once even when Google's reply to the PUT never comes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from pydantic import SecretStr

from listener.gbp import GoogleBusinessReplier, GoogleBusinessSource, google_time, original_text
from listener.model import Mention, Poll, RateLimited, SourceError
from listener.replying import Replier, ReplyError
from storage import Store
from tests.conftest import FIXTURES, T0, settings_from
from tests.gbpapi import SCOPE, FakeGBP, google_error

ACCOUNT, BRERA, ROMA = "1122334455", "2233445566", "3344556677"
CLIENT_ID = "123456789012-aurora.apps.googleusercontent.com"
CLIENT_SECRET = "GOCSPX-client-secret-SENTINEL"
REFRESH_TOKEN = "1//refresh-token-SENTINEL"
GIULIA = "AbFvOqnGiuliaB1aNc0Mpl41nTa"  # Brera, 1 star: the complaint
MARCO = "AbFvOqmMarcoR0ss1Dom4ndaAvn"  # Brera, 3 stars: a question
LUCA = "AbFvOqlLucaVerdiMacch1naPrd"  # Brera, 2 stars, already answered by the owner
EMMA = "AbFvOqkEmmaClarkeBestEspr3s"  # Brera, 5 stars, English, translated by Google
ANON = "AbFvOqjAn0nymousF0urStars0n"  # Brera, 4 stars, no words, anonymous
TOM = "AbFvOqiTomBakerSundayTra1nQ"  # Roma, 4 stars, a question in English
SARA = "AbFvOqhSaraContiP1stacchi0X"  # Roma, 5 stars, answered
OLIVER = "AbFvOqgOliverSmithCardMach1"  # Roma, 1 star, English complaint
SENT_AT = T0 + timedelta(minutes=30)  # Google's clock for the owner's new replies


@pytest.fixture
def gbp() -> Iterator[FakeGBP]:
    data = json.loads((FIXTURES / "gbp" / "reviews.json").read_text(encoding="utf-8"))
    double = FakeGBP(
        account_id=data["account"].removeprefix("accounts/"),
        reviews={location: place["reviews"] for location, place in data["locations"].items()},
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        refresh_token=REFRESH_TOKEN,
        write_time=SENT_AT,
    )
    yield from double.serve()


def source(gbp: FakeGBP, **changes: Any) -> GoogleBusinessSource:
    shops = GoogleBusinessSource(
        name="gbp",
        account_id=ACCOUNT,
        locations=[BRERA, ROMA],
        location_names={BRERA: "Caffè Aurora Milano Brera", ROMA: "Caffè Aurora Roma Termini"},
        location_urls={BRERA: "https://g.page/r/CaffeAuroraBrera/review"},
        client_id=CLIENT_ID,
        client_secret=SecretStr(CLIENT_SECRET),
        refresh_token=SecretStr(REFRESH_TOKEN),
        token_uri=gbp.token_uri,
        base_url=gbp.base_url,
        owner_name="Caffè Aurora",
    )
    return replace(shops, **changes)


def by_id(poll: Poll) -> dict[str, Mention]:
    return {m.platform_id: m for m in poll.mentions}


def list_calls(gbp: FakeGBP, location: str) -> list[dict[str, str]]:
    """The query of every reviews list the double was asked for at ``location``."""
    suffix = f"/locations/{location}/reviews"
    return [r["query"] for r in gbp.api_requests() if r["method"] == "GET" and r["path"].endswith(suffix)]


def no_secret(message: str) -> bool:
    return "SENTINEL" not in message and CLIENT_SECRET not in message and REFRESH_TOKEN not in message


# -- polling ---------------------------------------------------------------------------------------------------------


def test_the_first_poll_hears_every_review_with_its_stars_and_the_owner_replies_answer(
    gbp: FakeGBP, store: Store
) -> None:
    poll = source(gbp).poll(None, T0)

    assert [m.platform_id for m in poll.mentions] == [GIULIA, MARCO, LUCA, EMMA, ANON, TOM, SARA, OLIVER]
    heard = by_id(poll)
    giulia = heard[GIULIA]
    assert giulia.text.startswith("Ho aspettato 25 minuti per un cappuccino tiepido")
    assert (giulia.platform, giulia.metrics, giulia.published_at) == (
        "gbp",
        {"rating": 1},
        google_time("2026-03-02T07:41:12.518Z"),
    )
    assert giulia.thread_id == f"accounts/{ACCOUNT}/locations/{BRERA}/reviews/{GIULIA}"
    assert giulia.url == "https://g.page/r/CaffeAuroraBrera/review" and heard[TOM].url == ""  # Roma has no link
    assert (giulia.author.handle, giulia.author.shown) == ("Giulia Bianchi", "Giulia Bianchi")
    assert heard[EMMA].text == "Best espresso in Milan, and the staff are lovely!"  # her words, not Google's Italian
    assert (heard[ANON].text, heard[ANON].metrics) == ("★★★★☆", {"rating": 4})  # stars only: never an empty text
    assert heard[ANON].author.handle == "Google user (anonymous)"
    assert heard[ANON].author.platform_id == f"review-{ANON}"  # an anonymous reviewer is nobody else
    assert len({m.author.platform_id for m in poll.mentions}) == 8

    luca, sara = poll.replies
    assert (luca.platform_id, luca.in_reply_to, luca.author_handle) == (f"{LUCA}/reply", LUCA, "Caffè Aurora")
    assert luca.published_at == google_time("2026-03-01T17:05:10.250Z") and luca.text.startswith("Ciao Luca")
    assert (luca.thread_id, luca.to_author_id) == (heard[LUCA].thread_id, heard[LUCA].author.platform_id)
    assert sara.in_reply_to == SARA

    result = store.save_poll("gbp", "gbp", poll, T0)
    assert (result.new_mentions, result.answered) == (8, 2)
    answered = store.conversation(f"gbp:{LUCA}")
    assert answered is not None and answered.state == "answered"
    assert answered.response_seconds == 44 * 60 + 25  # answered before we listened: no breach
    complaint = store.conversation(f"gbp:{GIULIA}")
    assert complaint is not None and complaint.state == "new" and complaint.mention.metrics == {"rating": 1}
    brera = poll.details["locations"][BRERA]
    assert (brera["name"], brera["average_rating"], brera["total_reviews"]) == ("Caffè Aurora Milano Brera", 3.0, 5)


def test_the_access_token_comes_from_the_token_uri_once_and_travels_only_in_the_header(gbp: FakeGBP) -> None:
    shops = source(gbp)
    shops.poll(None, T0)
    shops.poll(None, T0 + timedelta(minutes=5))

    [exchange] = gbp.token_requests()  # one refresh, kept for the next poll
    form = {k: v[0] for k, v in parse_qs(exchange["body"]).items()}
    assert exchange["method"] == "POST"
    assert form == {
        "grant_type": "refresh_token",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH_TOKEN,
    }
    calls = gbp.api_requests()
    assert len(calls) == 4 and all(c["headers"]["Authorization"] == f"Bearer {gbp.issued[0]}" for c in calls)
    assert not any("SENTINEL" in c["url"] for c in calls)
    assert CLIENT_SECRET not in repr(shops) and REFRESH_TOKEN not in repr(shops)


def test_a_token_about_to_expire_is_renewed_before_the_poll(gbp: FakeGBP) -> None:
    gbp.expires_in = 120  # less than the five minutes of margin: never reused
    shops = source(gbp)
    shops.poll(None, T0)
    shops.poll(None, T0 + timedelta(minutes=1))
    assert len(gbp.token_requests()) == 2 and len(gbp.issued) == 2
    assert gbp.api_requests()[-1]["headers"]["Authorization"] == f"Bearer {gbp.issued[1]}"


def test_paging_follows_next_page_token_newest_updated_first(gbp: FakeGBP) -> None:
    poll = source(gbp, page_size=2).poll(None, T0)
    assert len(poll.mentions) == 8
    brera = list_calls(gbp, BRERA)
    assert [c.get("pageToken") is not None for c in brera] == [False, True, True]
    assert all(c["pageSize"] == "2" and c["orderBy"] == "updateTime desc" for c in brera)
    assert len(list_calls(gbp, ROMA)) == 2


def test_a_restart_with_the_stored_cursor_reads_only_what_changed(gbp: FakeGBP, store: Store) -> None:
    store.save_poll("gbp", "gbp", source(gbp, page_size=2).poll(None, T0), T0)
    gbp.add(BRERA, "AbFvOqoFederica5porcoTav0l1", "Federica Neri", "TWO", "Tavolino sporco e bagno chiuso.", T0)
    gbp.requests.clear()

    later = T0 + timedelta(minutes=15)
    again = source(gbp, page_size=2).poll(store.cursor("gbp"), later)  # a new process: only the cursor survives

    assert store.save_poll("gbp", "gbp", again, later).new_mentions == 1
    assert "AbFvOqoFederica5porcoTav0l1" in by_id(again)
    # Brera: down to an hour before 07:41, its newest already seen: two pages of three. Roma: one page of two.
    assert len(list_calls(gbp, BRERA)) == 2 and len(list_calls(gbp, ROMA)) == 1
    assert EMMA not in by_id(again) and OLIVER not in by_id(again)
    new = store.conversation("gbp:AbFvOqoFederica5porcoTav0l1")
    assert new is not None and new.state == "new" and new.mention.metrics == {"rating": 2}


def test_an_edited_review_updates_the_stored_words_and_stars_and_keeps_the_conversation(
    gbp: FakeGBP, store: Store
) -> None:
    store.save_poll("gbp", "gbp", source(gbp).poll(None, T0), T0)
    store.conversations.assign([(f"gbp:{GIULIA}", "sofia", "", False)], T0)
    gbp.edit(
        GIULIA, T0 + timedelta(minutes=20), comment="Mi hanno richiamato e si sono scusati. Due stelle.", stars="TWO"
    )
    gbp.edit(LUCA, T0 + timedelta(minutes=21), comment="Sostituita in due giorni, grazie!", stars="FOUR")

    later = T0 + timedelta(minutes=25)
    poll = source(gbp).poll(store.cursor("gbp"), later)
    assert by_id(poll)[GIULIA].metrics == {"rating": 2}
    assert store.save_poll("gbp", "gbp", poll, later).new_mentions == 0  # the same reviews, not new ones

    giulia = store.conversation(f"gbp:{GIULIA}")
    assert giulia is not None
    assert (giulia.mention.text, giulia.mention.metrics) == (
        "Mi hanno richiamato e si sono scusati. Due stelle.",
        {"rating": 2},
    )
    assert (giulia.state, giulia.assignee) == ("assigned", "sofia")  # still Sofia's
    written = google_time("2026-03-02T07:41:12Z")  # storage keeps whole seconds
    assert giulia.mention.published_at == written  # written then, edited later: the clock started then
    luca = store.conversation(f"gbp:{LUCA}")
    assert luca is not None and luca.state == "answered" and luca.mention.metrics == {"rating": 4}
    assert luca.mention.text == "Sostituita in due giorni, grazie!"


def test_a_deleted_review_is_named_removed_after_the_full_scan_and_closed(gbp: FakeGBP, store: Store) -> None:
    shops = source(gbp, full_scan_every=3)
    first = shops.poll(None, T0)
    store.save_poll("gbp", "gbp", first, T0)
    gbp.delete(MARCO)  # Marco took his question back
    gbp.delete(SARA)  # an answered review gone too

    second = shops.poll(store.cursor("gbp"), T0 + timedelta(minutes=5))
    assert second.removed == () and not second.details["full_scan"]  # a short read cannot tell
    store.save_poll("gbp", "gbp", second, T0 + timedelta(minutes=5))
    third = shops.poll(store.cursor("gbp"), T0 + timedelta(minutes=10))
    assert third.details["full_scan"] and set(third.removed) == {f"gbp:{MARCO}", f"gbp:{SARA}"}
    store.save_poll("gbp", "gbp", third, T0 + timedelta(minutes=10))

    marco = store.conversation(f"gbp:{MARCO}")
    assert marco is not None and (marco.state, marco.state_reason) == ("ignored", "deleted on the platform")
    sara = store.conversation(f"gbp:{SARA}")
    assert sara is not None and sara.state == "answered"  # the answer stays on record
    known = store.cursor("gbp")
    assert known is not None and MARCO not in known["known"][BRERA] and GIULIA in known["known"][BRERA]
    assert shops.poll(known, T0 + timedelta(minutes=15)).removed == ()  # told once


def test_a_full_scan_cut_short_by_its_page_limit_removes_nothing_it_did_not_reach(gbp: FakeGBP) -> None:
    shops = source(gbp, page_size=2, max_pages=1, max_full_pages=2, full_scan_every=1)
    first = shops.poll(None, T0)
    assert first.details["locations"][BRERA]["read_to_the_end"] is False  # five reviews, two pages of two
    gbp.delete(ANON)  # the oldest in Brera: beyond what a full scan reads
    gbp.delete(OLIVER)
    second = shops.poll(first.cursor, T0 + timedelta(minutes=5))
    assert second.removed == (f"gbp:{OLIVER}",)


def test_a_read_stopped_by_max_pages_makes_the_next_poll_a_full_scan(gbp: FakeGBP) -> None:
    shops = source(gbp, page_size=1, max_pages=1)
    first = shops.poll(None, T0)
    for n in range(3):  # three new reviews: one page of one cannot reach back to what was seen
        gbp.add(ROMA, f"AbFvOqpNew{n}xxxxxxxxxxxxxxxx", f"Cliente {n}", "FIVE", "Ottimo!", T0 + timedelta(minutes=n))
    second = shops.poll(first.cursor, T0 + timedelta(minutes=5))
    assert second.details["behind"] and len(list_calls(gbp, ROMA)) == 3 + 1
    third = shops.poll(second.cursor, T0 + timedelta(minutes=10))
    assert third.details["full_scan"] and "AbFvOqpNew0xxxxxxxxxxxxxxxx" in by_id(third)  # the gap is filled


# -- what Google refuses ---------------------------------------------------------------------------------------------


def test_a_revoked_refresh_token_says_to_make_a_new_one(gbp: FakeGBP) -> None:
    gbp.revoked = True
    with pytest.raises(SourceError) as error:
        source(gbp).poll(None, T0)
    message = str(error.value)
    assert "invalid_grant" in message and "make a new refresh token" in message and SCOPE in message
    assert no_secret(message) and not gbp.api_requests() and len(gbp.token_requests()) == 1


def test_a_wrong_client_secret_says_to_check_the_oauth_client(gbp: FakeGBP) -> None:
    with pytest.raises(SourceError, match="check client_id and client_secret") as error:
        source(gbp, client_secret=SecretStr("GOCSPX-other-SENTINEL")).poll(None, T0)
    assert "invalid_client" in str(error.value) and no_secret(str(error.value))


def test_a_busy_token_endpoint_fails_the_poll_at_once_without_sleeping(gbp: FakeGBP) -> None:
    gbp.token_status = 503
    started = time.monotonic()
    with pytest.raises(SourceError, match="will retry") as error:
        source(gbp).poll(None, T0)
    assert time.monotonic() - started < 1.0 and len(gbp.token_requests()) == 1  # google-auth alone would retry
    assert not isinstance(error.value, RateLimited) and "503" in str(error.value)


def test_a_refused_access_token_is_dropped_and_the_next_poll_gets_a_new_one(gbp: FakeGBP) -> None:
    shops = source(gbp)
    shops.poll(None, T0)
    gbp.revoke_access_tokens()
    with pytest.raises(SourceError, match="Google refused the access token") as error:
        shops.poll(None, T0 + timedelta(minutes=5))
    assert "UNAUTHENTICATED" in str(error.value) and no_secret(str(error.value))
    assert len(shops.poll(None, T0 + timedelta(minutes=10)).mentions) == 8
    assert len(gbp.issued) == 2


def test_a_location_the_account_does_not_manage_is_named(gbp: FakeGBP) -> None:
    gbp.forbidden = {ROMA}
    with pytest.raises(SourceError) as error:
        source(gbp).poll(None, T0)
    message = str(error.value)
    assert "Caffè Aurora Roma Termini (location 3344556677)" in message and "PERMISSION_DENIED" in message
    assert "owner or manager" in message and no_secret(message)


def test_a_refresh_token_without_the_business_scope_says_so(gbp: FakeGBP) -> None:
    gbp.scope = "openid https://www.googleapis.com/auth/userinfo.email"
    with pytest.raises(SourceError) as error:
        source(gbp).poll(None, T0)
    assert f"lacks the scope {SCOPE}" in str(error.value) and "make a new refresh token" in str(error.value)


@pytest.mark.parametrize(("retry_after", "wait"), [("120", timedelta(minutes=2)), ("", timedelta(minutes=1))])
def test_an_exhausted_quota_pauses_the_source(gbp: FakeGBP, retry_after: str, wait: timedelta) -> None:
    gbp.quota_exhausted, gbp.retry_after = True, retry_after
    with pytest.raises(RateLimited) as error:
        source(gbp).poll(None, T0)
    assert error.value.retry_at == T0 + wait
    assert "RESOURCE_EXHAUSTED" in str(error.value) and no_secret(str(error.value))


def test_a_google_outage_fails_the_poll_to_be_retried(gbp: FakeGBP) -> None:
    gbp.error = {"status": 503, "body": google_error(503, "UNAVAILABLE", "The service is currently unavailable.")}
    with pytest.raises(SourceError, match="will retry") as error:
        source(gbp).poll(None, T0)
    assert not isinstance(error.value, RateLimited) and "UNAVAILABLE" in str(error.value)


# -- answering -------------------------------------------------------------------------------------------------------


def test_the_owner_reply_lands_on_the_review_and_the_next_poll_hears_it_as_the_answer(
    gbp: FakeGBP, store: Store
) -> None:
    shops = source(gbp)
    first = shops.poll(None, T0)
    store.save_poll("gbp", "gbp", first, T0)
    replier = shops.replier()
    assert isinstance(replier, Replier) and isinstance(replier, GoogleBusinessReplier)
    assert (replier.channel, replier.account, replier.cost_usd("Ciao"), replier.check("Ciao")) == (
        "gbp",
        "Caffè Aurora",
        0.0,
        "",
    )
    text = "Ciao Giulia, ci dispiace molto: ti scriviamo per rimediare."

    sent = replier.reply(by_id(first)[GIULIA], text, T0 + timedelta(minutes=31))

    [write] = gbp.writes
    assert write == {
        "path": f"/v4/accounts/{ACCOUNT}/locations/{BRERA}/reviews/{GIULIA}/reply",
        "body": {"comment": text},
    }
    assert (sent.platform_id, sent.text, sent.published_at) == (f"{GIULIA}/reply", text, SENT_AT)
    assert sent.url == "https://g.page/r/CaffeAuroraBrera/review"
    assert len(gbp.token_requests()) == 1  # the source's token, shared

    later = T0 + timedelta(minutes=40)
    poll = shops.poll(store.cursor("gbp"), later)
    ours = next(r for r in poll.replies if r.in_reply_to == GIULIA)
    assert (ours.platform_id, ours.author_handle, ours.text, ours.published_at) == (
        sent.platform_id,
        replier.account,
        text,
        SENT_AT,
    )
    store.save_poll("gbp", "gbp", poll, later)
    giulia = store.conversation(f"gbp:{GIULIA}")
    assert giulia is not None and giulia.state == "answered" and giulia.response_seconds is not None


def test_a_reply_that_got_no_answer_is_unknown_then_found_not_posted_again(gbp: FakeGBP) -> None:
    mention = by_id(source(gbp).poll(None, T0))[MARCO]
    gbp.stall_seconds = 1.5  # Google stores the reply, then the answer never comes in time
    replier = source(gbp, timeout_seconds=0.3).replier()
    text = "Ciao Marco,  sì:\nabbiamo latte di avena e di soia."
    with pytest.raises(ReplyError) as error:
        replier.reply(mention, text, T0)
    assert error.value.problem == "unknown" and error.value.transient and "may exist" in str(error.value)
    gbp.stall_seconds = 0

    found = replier.find(mention, "Ciao Marco, sì: abbiamo latte di avena e di soia.", T0, T0 + timedelta(minutes=5))
    assert found is not None and (found.platform_id, found.published_at) == (f"{MARCO}/reply", SENT_AT)
    assert len(gbp.writes) == 1  # the lookup posted nothing
    assert replier.find(mention, "Altre parole", T0, T0) is None
    assert replier.find(mention, text, SENT_AT + timedelta(minutes=2), T0) is None  # older than asked for
    assert replier.find(by_id(source(gbp).poll(None, T0))[TOM], text, T0, T0) is None  # no reply on Tom's review


def test_a_reply_google_would_refuse_as_too_long_is_told_before_sending(gbp: FakeGBP) -> None:
    mention = by_id(source(gbp).poll(None, T0))[GIULIA]
    replier = source(gbp).replier()
    text = "è" * 2100  # 2,100 characters, 4,200 bytes: Google counts bytes
    assert "4200 bytes; Google allows 4096" in replier.check(text)
    with pytest.raises(ReplyError) as error:
        replier.reply(mention, text, T0)
    assert error.value.problem == "too_long" and not gbp.writes
    with pytest.raises(ReplyError) as empty:
        replier.reply(mention, "   ", T0)
    assert empty.value.problem == "refused" and not gbp.writes


@pytest.mark.parametrize(
    ("setup", "problem", "advice"),
    [
        ("deleted", "deleted", "the review is gone"),
        ("forbidden", "permission", "owner or manager"),
        ("quota", "rate_limited", "RESOURCE_EXHAUSTED"),
        ("outage", "unavailable", "nothing was posted"),
        ("revoked", "expired_token", "make a new refresh token"),
        ("access", "expired_token", "Google refused the access token"),
    ],
)
def test_google_refusals_of_a_reply_say_what_to_do_and_never_hold_a_secret(
    gbp: FakeGBP, setup: str, problem: str, advice: str
) -> None:
    mention = by_id(source(gbp).poll(None, T0))[GIULIA]
    replier = source(gbp).replier()
    if setup == "deleted":
        gbp.delete(GIULIA)
    elif setup == "forbidden":
        gbp.forbidden = {BRERA}
    elif setup == "quota":
        gbp.quota_exhausted, gbp.retry_after = True, "90"
    elif setup == "outage":
        gbp.error = {"status": 500, "body": google_error(500, "INTERNAL", "Internal error encountered.")}
    elif setup == "revoked":
        gbp.revoked = True
    else:
        replier.token.get(T0)  # a token in hand, which Google then stops accepting
        gbp.revoke_access_tokens()
    with pytest.raises(ReplyError) as error:
        replier.reply(mention, "Ciao Giulia, ci dispiace.", T0)
    assert error.value.problem == problem and advice in str(error.value)
    assert no_secret(str(error.value)) and not gbp.writes
    assert error.value.retry_at == (T0 + timedelta(seconds=90) if setup == "quota" else None)


def test_a_mention_that_is_no_polled_review_is_refused_not_sent(gbp: FakeGBP) -> None:
    mention = by_id(source(gbp).poll(None, T0))[GIULIA]
    with pytest.raises(ReplyError) as error:
        source(gbp).replier().reply(replace(mention, thread_id="1000000001_2002"), "Ciao", T0)
    assert error.value.problem == "refused" and not gbp.writes


# -- configuration and Google's text ---------------------------------------------------------------------------------


CONFIG = """
[[sources]]
type = "gbp"
name = "negozi"
account_id = "1122334455"
locations = ["2233445566", "3344556677"]
location_names = { "2233445566" = "Milano Brera" }
client_id = "123456789012-aurora.apps.googleusercontent.com"
client_secret = { env = "GBP_CLIENT_SECRET" }
refresh_token = { env = "GBP_REFRESH_TOKEN" }
"""


def test_a_toml_table_with_secret_references_builds_the_source(tmp_path: Path) -> None:
    from passaparola.config import ConfigError, dumps

    environ = {"GBP_CLIENT_SECRET": CLIENT_SECRET, "GBP_REFRESH_TOKEN": REFRESH_TOKEN}
    settings = settings_from(CONFIG, tmp_path, environ)
    [spec] = settings.sources
    built = spec.source
    assert isinstance(built, GoogleBusinessSource) and built.name == "negozi"
    assert built.refresh_token.get_secret_value() == REFRESH_TOKEN and built.label(BRERA) == (
        "Milano Brera (location 2233445566)"
    )
    assert (built.token_uri, built.base_url) == (
        "https://oauth2.googleapis.com/token",
        "https://mybusiness.googleapis.com",
    )
    assert built.replier().account == "Owner"
    assert no_secret(dumps(settings))  # the effective configuration masks them

    mistakes = [
        ('account_id = "1122334455"', 'account_id = "accounts/1122334455"', "the number in accounts/{number}"),
        ('name = "negozi"', 'name = "negozi"\npage_size = 100', "between 1 and 50"),
        ('{ "2233445566" = "Milano Brera" }', '{ "999" = "Torino" }', "999, which is not in locations"),
        ('refresh_token = { env = "GBP_REFRESH_TOKEN" }', "", 'refresh_token = { env = "GBP_REFRESH_TOKEN" }'),
    ]
    for before, after, words in mistakes:
        with pytest.raises(ConfigError) as error:
            settings_from(CONFIG.replace(before, after), tmp_path, environ)
        assert any(words in problem for problem in error.value.problems), error.value.problems


def test_google_translations_keep_the_original_words_and_times_keep_their_precision() -> None:
    translated = "(Translated by Google) Great coffee\n\n(Original)\nCaffè ottimo, servizio lento."
    assert original_text(translated) == "Caffè ottimo, servizio lento."
    assert original_text("Great coffee, slow service.\n\n(Translated by Google)\nCaffè ottimo.") == (
        "Great coffee, slow service."
    )
    assert original_text("Il caffè (Original) della casa è buono.") == "Il caffè (Original) della casa è buono."
    assert google_time("2026-03-02T07:41:12.518123456Z") == google_time("2026-03-02T07:41:12.518123Z")
    assert google_time("2026-03-02T08:41:12+01:00") == google_time("2026-03-02T07:41:12Z")
