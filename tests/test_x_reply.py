"""Answering an X mention as the brand, against the local X API v2 double: the post, X's refusals, the lost answer."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from listener import XSource
from listener.model import Author, Mention
from listener.replying import Replier, ReplyError, SentReply
from listener.x_reply import PRICE_PER_WRITE, XReplier
from passaparola.config import ConfigError, dumps
from tests.conftest import T0, settings_from
from tests.xapi import FakeX, epoch, serve

TOKEN = "SENTINEL-x-bearer-0123456789"
CONSUMER_KEY = "SENTINEL-consumer-key-1111"
CONSUMER_SECRET = "SENTINEL-consumer-secret-2222"
ACCESS_TOKEN = "1000-SENTINEL-access-token-3333"
ACCESS_TOKEN_SECRET = "SENTINEL-access-secret-4444"
SECRETS = (TOKEN, CONSUMER_KEY, CONSUMER_SECRET, ACCESS_TOKEN, ACCESS_TOKEN_SECRET)
ANSWER = "@anna_r Ciao Anna, ci scusiamo per il ritardo: ti scriviamo ora in DM con il rimborso."


@pytest.fixture
def fake() -> Iterator[FakeX]:
    x = FakeX.from_fixture(TOKEN, T0)
    x.consumer_key, x.consumer_secret = CONSUMER_KEY, CONSUMER_SECRET
    x.access_token, x.access_token_secret = ACCESS_TOKEN, ACCESS_TOKEN_SECRET
    with serve(x) as server:
        yield server


def source(fake: FakeX, **options: Any) -> XSource:
    settings: dict[str, Any] = dict(
        name="x",
        bearer_token=SecretStr(TOKEN),
        accounts=["AuroraCaffe", "AuroraAiuta"],
        keywords=["aurora"],
        base_url=fake.base_url,
        read_timeout_seconds=2.0,
        consumer_key=SecretStr(CONSUMER_KEY),
        consumer_secret=SecretStr(CONSUMER_SECRET),
        access_token=SecretStr(ACCESS_TOKEN),
        access_token_secret=SecretStr(ACCESS_TOKEN_SECRET),
    )
    settings.update(options)
    return XSource(**settings)


def replier(fake: FakeX, **options: Any) -> XReplier:
    made = source(fake, **options).replier()
    assert made is not None
    return made


def mention(platform_id: str = "3001") -> Mention:
    return Mention(
        platform="x",
        platform_id=platform_id,
        source="x",
        text="@AuroraCaffe il mio ordine è fermo da una settimana, mi aiutate?",
        published_at=T0 - timedelta(minutes=120),
        author=Author(platform="x", platform_id="2001", handle="anna_r"),
        url=f"https://x.com/anna_r/status/{platform_id}",
        thread_id="3001",
    )


def refusal(call: Callable[[], object]) -> ReplyError:
    """The `ReplyError` that ``call`` raises; its message must never carry a secret."""
    with pytest.raises(ReplyError) as caught:
        call()
    message = str(caught.value)
    assert message and not [s for s in SECRETS if s in message], message
    return caught.value


# -- posting -----------------------------------------------------------------------------------------


def test_a_reply_is_posted_in_the_mentions_thread_as_the_brand(fake: FakeX) -> None:
    x = source(fake)
    answering = x.replier()
    assert isinstance(answering, Replier) and (answering.channel, answering.account) == ("x", "AuroraCaffe")
    sent = answering.reply(mention(), ANSWER, T0)
    [post] = fake.writes
    assert post["text"] == ANSWER and post["author_id"] == "1000"
    assert post["referenced_tweets"] == [{"type": "replied_to", "id": "3001"}] and post["conversation_id"] == "3001"
    assert sent == SentReply(
        platform_id=post["id"], url=f"https://x.com/AuroraCaffe/status/{post['id']}", text=ANSWER, published_at=T0
    )
    # The next poll reads the brand's own posts and sees the answer, as for one typed on X.
    replies = {r.platform_id: r for r in x.poll(None, T0).replies}
    assert replies[post["id"]].in_reply_to == "3001" and replies[post["id"]].author_handle == "AuroraCaffe"


def test_the_reply_account_names_who_answers_and_the_link(fake: FakeX) -> None:
    answering = replier(fake, reply_account="@AuroraAiuta")
    sent = answering.reply(mention(), ANSWER, T0)
    assert answering.account == "AuroraAiuta" and sent.url == f"https://x.com/AuroraAiuta/status/{sent.platform_id}"


def test_the_same_text_twice_is_a_duplicate(fake: FakeX) -> None:
    answering = replier(fake)
    answering.reply(mention(), ANSWER, T0)
    error = refusal(lambda: answering.reply(mention(), ANSWER, T0))
    assert error.problem == "duplicate" and not error.transient and "duplicate content" in str(error)
    assert len(fake.writes) == 1


def test_a_reply_to_a_deleted_post_says_so(fake: FakeX) -> None:
    error = refusal(lambda: replier(fake).reply(mention("9999"), ANSWER, T0))
    assert error.problem == "deleted" and "deleted or not visible" in str(error) and fake.writes == []


def test_a_429_waits_until_x_rate_limit_reset(fake: FakeX) -> None:
    reset = T0 + timedelta(minutes=11)
    fake.fault("/2/tweets", status=429, reset=epoch(reset), method="POST")
    answering = replier(fake)
    error = refusal(lambda: answering.reply(mention(), ANSWER, T0))
    assert error.problem == "rate_limited" and error.transient and error.retry_at == reset
    assert fake.writes == []
    assert answering.reply(mention(), ANSWER, reset).platform_id == fake.writes[0]["id"]  # the limit has passed


def test_a_429_without_reset_waits_for_retry_after_or_a_window(fake: FakeX) -> None:
    fake.fault("/2/tweets", status=429, retry_after="120", method="POST")
    fake.fault("/2/tweets", status=429, method="POST")
    answering = replier(fake)
    assert refusal(lambda: answering.reply(mention(), ANSWER, T0)).retry_at == T0 + timedelta(seconds=120)
    assert refusal(lambda: answering.reply(mention(), ANSWER, T0)).retry_at == T0 + timedelta(minutes=15)


@pytest.mark.parametrize(
    "wrong",
    [
        {"access_token_secret": SecretStr("not-the-secret")},
        {"consumer_secret": SecretStr("not-the-app-secret")},
        {"access_token": SecretStr("1000-revoked")},
    ],
)
def test_wrong_or_revoked_credentials_are_an_expired_token(fake: FakeX, wrong: dict[str, Any]) -> None:
    error = refusal(lambda: replier(fake, **wrong).reply(mention(), ANSWER, T0))
    assert error.problem == "expired_token" and "Read and Write" in str(error) and fake.writes == []


def test_missing_credentials_are_an_expired_token(fake: FakeX) -> None:
    blank = SecretStr("")
    answering = XReplier("AuroraCaffe", blank, blank, blank, blank, base_url=fake.base_url)
    assert refusal(lambda: answering.reply(mention(), ANSWER, T0)).problem == "expired_token"
    assert fake.writes == []


def test_an_app_without_write_permission_is_told_what_to_grant(fake: FakeX) -> None:
    forbidden = {
        "title": "Forbidden",
        "type": "about:blank",
        "status": 403,
        "detail": "You are not permitted to perform this action.",
    }
    fake.fault("/2/tweets", status=403, body=forbidden, method="POST")
    error = refusal(lambda: replier(fake).reply(mention(), ANSWER, T0))
    assert error.problem == "permission" and "Read and Write" in str(error)
    assert "You are not permitted to perform this action." in str(error)


def test_x_saying_too_long_is_too_long_and_other_400s_are_refused(fake: FakeX) -> None:
    too_long = {
        "errors": [{"parameters": {"text": ["..."]}, "message": "Your Tweet text is too long."}],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.twitter.com/2/problems/invalid-request",
    }
    other = {**too_long, "errors": [{"parameters": {"reply_settings": ["x"]}, "message": "Bad reply_settings."}]}
    fake.fault("/2/tweets", status=400, body=too_long, method="POST")
    fake.fault("/2/tweets", status=400, body=other, method="POST")
    answering = replier(fake)
    assert refusal(lambda: answering.reply(mention(), ANSWER, T0)).problem == "too_long"
    error = refusal(lambda: answering.reply(mention(), ANSWER, T0))
    assert error.problem == "refused" and "Bad reply_settings." in str(error)


def test_a_server_error_or_no_server_is_unavailable_and_posts_nothing(fake: FakeX) -> None:
    fake.fault("/2/tweets", status=503, method="POST")
    error = refusal(lambda: replier(fake).reply(mention(), ANSWER, T0))
    assert error.problem == "unavailable" and error.transient and "503" in str(error)
    with socket.socket() as probe:  # a port nobody listens on: connection refused
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    error = refusal(lambda: replier(fake, base_url=closed).reply(mention(), ANSWER, T0))
    assert error.problem == "unavailable" and "cannot reach X" in str(error)
    assert fake.writes == []


def test_a_draft_x_would_refuse_is_not_sent(fake: FakeX) -> None:
    answering = replier(fake)
    error = refusal(lambda: answering.reply(mention(), "a" * 281, T0))
    assert error.problem == "too_long" and "shorten it by 1" in str(error)
    assert refusal(lambda: answering.reply(mention(), "  ", T0)).problem == "refused"
    assert "/2/tweets" not in fake.paths()


# -- the answer that never came ----------------------------------------------------------------------


def test_a_timeout_after_x_accepted_is_unknown_and_find_returns_the_post(fake: FakeX) -> None:
    fake.stall_after_write = 3.0
    answering = replier(fake, read_timeout_seconds=0.5)
    error = refusal(lambda: answering.reply(mention(), ANSWER, T0))
    assert error.problem == "unknown" and error.transient and "may be posted" in str(error)
    fake.stall_after_write = 0.0
    found = answering.find(mention(), ANSWER, T0 - timedelta(minutes=1), T0 + timedelta(minutes=1))
    [post] = fake.writes  # found, so the outbox records it instead of posting again
    assert found == SentReply(
        platform_id=post["id"], url=f"https://x.com/AuroraCaffe/status/{post['id']}", text=ANSWER, published_at=T0
    )


def test_a_connection_dropped_after_x_accepted_is_unknown(fake: FakeX) -> None:
    fake.drop_after_write = True
    error = refusal(lambda: replier(fake).reply(mention(), ANSWER, T0))
    assert error.problem == "unknown" and len(fake.writes) == 1


def test_find_matches_the_text_as_x_shows_it_and_only_in_that_thread(fake: FakeX) -> None:
    shown = "@anna_r Il rimborso &amp; il nuovo ordine: https://t.co/AbC123xyZ  grazie!"
    fake.add(
        {
            "id": "3900",
            "text": shown,
            "author_id": "1000",
            "conversation_id": "3001",
            "referenced_tweets": [{"type": "replied_to", "id": "3001"}],
            "minutes_ago": 2,
            "channels": ["tweets:1000"],
        }
    )
    answering = replier(fake)
    sent = "Il rimborso & il nuovo ordine: https://www.caffeaurora.it/ordini/8812?lang=it grazie!"
    found = answering.find(mention(), sent, T0 - timedelta(minutes=5), T0)
    assert found is not None and found.platform_id == "3900" and found.text == shown
    assert found.published_at == T0 - timedelta(minutes=2)
    assert answering.find(mention(), "Tutt'altra risposta", T0 - timedelta(minutes=5), T0) is None
    assert answering.find(mention("3002"), sent, T0 - timedelta(minutes=5), T0) is None  # another mention's thread
    assert answering.find(mention(), sent, T0 - timedelta(minutes=1), T0) is None  # posted before ``since``
    assert fake.paths().count("/2/users/me") == 1  # the account's id is asked once


def test_find_failures_say_what_to_do_and_a_timeout_is_unavailable(fake: FakeX) -> None:
    answering = replier(fake, read_timeout_seconds=0.5)
    fake.fault("/2/users/me", status=401)
    assert refusal(lambda: answering.find(mention(), ANSWER, T0, T0)).problem == "expired_token"
    fake.fault("/2/users/1000/tweets", delay=2.0, method="GET")
    error = refusal(lambda: answering.find(mention(), ANSWER, T0, T0))
    assert error.problem == "unavailable" and error.transient


# -- length and price --------------------------------------------------------------------------------


def test_check_counts_as_x_does() -> None:
    blank = SecretStr("")
    answering = XReplier("AuroraCaffe", blank, blank, blank, blank)
    assert answering.check("a" * 280) == ""
    assert answering.check("a" * 281) == (
        "281 characters as X counts them (links count 23, emoji 2); X allows 280: shorten it by 1"
    )
    long_link = "https://www.caffeaurora.it/" + "p" * 300
    assert answering.check("a" * 250 + " " + long_link) == ""  # the 327-character link counts 23
    assert answering.check("☕" * 140) == "" and "282 characters" in answering.check("☕" * 141)
    assert answering.check("日本" * 70) == "" and "shorten it by 2" in answering.check("日本" * 70 + "語")
    assert answering.check("") and answering.check(" \n ")


def test_a_link_makes_a_post_cost_more() -> None:
    blank = SecretStr("")
    answering = XReplier("AuroraCaffe", blank, blank, blank, blank)
    assert answering.cost_usd("Grazie Anna!") == PRICE_PER_WRITE["post"] == 0.015
    with_link = "Grazie Anna! Il tuo ordine: https://www.caffeaurora.it/ordini"
    assert answering.cost_usd(with_link) == PRICE_PER_WRITE["post_with_url"] == 0.2
    assert answering.cost_usd("Grazie Anna! Il tuo ordine: caffeaurora.it/ordini") == 0.2  # X links it too


# -- configuration -----------------------------------------------------------------------------------


def test_without_credentials_there_is_no_replier_and_three_of_four_are_refused(fake: FakeX) -> None:
    blank = SecretStr("")
    none = dict(consumer_key=blank, consumer_secret=blank, access_token=blank, access_token_secret=blank)
    assert source(fake, **none).replier() is None
    with pytest.raises(ValueError, match="needs all four of consumer_key, consumer_secret, access_token"):
        source(fake, access_token_secret=blank)
    with pytest.raises(ValueError, match="reply_account"):
        source(fake, accounts=[], streams=["search"])
    assert replier(fake, accounts=[], streams=["search"], reply_account="AuroraCaffe").account == "AuroraCaffe"
    with pytest.raises(ValueError, match="monthly_budget_usd"):
        source(fake, monthly_budget_usd=-1.0)
    assert "SENTINEL" not in repr(source(fake))


def test_the_credentials_come_from_secret_references(tmp_path: Any) -> None:
    text = (
        '[[sources]]\ntype = "x"\nbearer_token = { env = "XB" }\naccounts = ["AuroraCaffe"]\n'
        'streams = ["mentions"]\nmonthly_budget_usd = 25.0\n'
        'consumer_key = { env = "XCK" }\nconsumer_secret = { env = "XCS" }\naccess_token = { env = "XAT" }\n'
    )
    environ = {
        "XB": TOKEN,
        "XCK": CONSUMER_KEY,
        "XCS": CONSUMER_SECRET,
        "XAT": ACCESS_TOKEN,
        "XATS": ACCESS_TOKEN_SECRET,
    }
    settings = settings_from(text + 'access_token_secret = { env = "XATS" }\n', tmp_path, environ)
    x = settings.sources[0].source
    assert isinstance(x, XSource) and x.monthly_budget_usd == 25.0
    answering = x.replier()
    assert answering is not None and answering.account == "AuroraCaffe"
    assert answering.access_token_secret.get_secret_value() == ACCESS_TOKEN_SECRET
    shown = dumps(settings)
    assert not [s for s in SECRETS if s in shown] and '"access_token_secret": "**********"' in shown
    with pytest.raises(ConfigError) as caught:
        settings_from(text, tmp_path, environ)
    assert any("needs all four of consumer_key" in p for p in caught.value.problems)
