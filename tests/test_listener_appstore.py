"""The `appstore` source and its replier against a local App Store Connect API double: reviews once each with their
ratings, developer responses as the brand's answers, Apple's JWT rules, Apple's refusals told plainly, and a
response posted exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import SecretStr

from listener.appstore import AppStoreReplier, AppStoreSource
from listener.model import Mention, RateLimited, SourceError
from listener.replying import Replier, ReplyError
from passaparola.config import ConfigError, dumps
from storage import Store
from tests.appstoreapi import APP, CLUB, ISSUER_ID, KEY_ID, FakeAppStore, offset_of, utc
from tests.conftest import T0, free_port, settings_from

# Test-only keys, made fresh for this run: no real key is ever committed.
KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())


def pem(key: Any) -> str:
    """A key as the .p8 file Apple hands out: PKCS#8 PEM, unencrypted."""
    raw = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return str(raw.decode("ascii"))


PEM = pem(KEY)
#: What must never show: the key's base64 body (any line of it) and the whole PEM.
KEY_LINES = [line for line in PEM.splitlines() if line and not line.startswith("-----")]

SANDRO = "00000071-aaaa-0001-0003-000000000003"  # answered, PUBLISHED, before passaparola listened
BEANS = "00000071-aaaa-0001-0002-000000000002"  # answered, PENDING_PUBLISH
GIULIA = "00000071-aaaa-0001-0006-000000000006"  # the newest: a double charge
MARCO = "00000071-aaaa-0001-0005-000000000005"  # a question
LONDON = "00000071-aaaa-0001-0004-000000000004"  # praise, in English
LUCIA = "00000071-aaaa-0001-0001-000000000001"  # older than the first poll's 30 days
AUSSIE = "00000072-aaaa-0002-0001-000000000001"  # Aurora Club, February 20: cannot log in
ANSWER_EN = "Sorry you couldn't log in! Your Aurora Club account is fixed: sign in with the email you gave us."
ANSWER = "Ciao Giulia, ci scusiamo: il secondo addebito è stato annullato, lo vedrai sull'estratto conto in 3-5 giorni."


@pytest.fixture
def apple() -> Iterator[FakeAppStore]:
    yield from FakeAppStore.from_fixtures(KEY.public_key()).serve()


def source(apple: FakeAppStore, **options: Any) -> AppStoreSource:
    made = AppStoreSource(
        name="appstore",
        issuer_id=ISSUER_ID,
        key_id=KEY_ID,
        private_key=SecretStr(PEM),
        apps=[APP, CLUB],
        app_names={APP: "Caffè Aurora", CLUB: "Aurora Club"},
        base_url=apple.base_url,
    )
    return replace(made, **options) if options else made


def replier(apple: FakeAppStore, **options: Any) -> AppStoreReplier:
    made = source(apple, **options).replier()
    assert made is not None
    return made


def heard(apple: FakeAppStore, review_id: str) -> Mention:
    return next(m for m in source(apple).poll(None, T0).mentions if m.platform_id == review_id)


def no_secret(text: str) -> None:
    assert PEM not in text and not [line for line in KEY_LINES if line in text], text


def refusal(error: pytest.ExceptionInfo[Exception]) -> str:
    message = str(error.value)
    no_secret(message)
    return message


def review_lists(apple: FakeAppStore) -> list[dict[str, str]]:
    return [r["query"] for r in apple.requests if r["path"].endswith("/customerReviews")]


# -- reading ---------------------------------------------------------------------------------------


def test_first_poll_hears_each_review_with_its_rating_and_the_responses_as_answers(
    apple: FakeAppStore, store: Store
) -> None:
    poll = source(apple).poll(None, T0)

    ids = [m.platform_id for m in poll.mentions]
    assert ids[:5] == [GIULIA, MARCO, LONDON, SANDRO, BEANS]  # newest first
    assert LUCIA not in ids  # older than backfill_days (30): the first poll does not reach back to January
    assert len(ids) == len(set(ids)) == 7  # the Aurora Club app too, each review once
    giulia = poll.mentions[0]
    assert giulia.text.startswith("Pagamento addebitato due volte\nHo ordinato un cappuccino")
    assert (giulia.metrics, giulia.language_hint, giulia.thread_id, giulia.url) == ({"rating": 1}, "it", GIULIA, "")
    assert giulia.published_at == datetime(2026, 3, 2, 8, 40, tzinfo=UTC)  # Apple's -08:00 read as UTC
    assert (giulia.author.handle, giulia.author.shown) == ("giuliaB_88", "giuliaB_88")  # a nickname, not an @handle
    london = poll.mentions[2]
    assert (london.metrics, london.language_hint) == ({"rating": 5}, "en")
    # The same nickname on the other app is another author; on the same app it is the same one after a restart.
    club_giulia = next(m for m in poll.mentions if m.platform_id == "00000072-aaaa-0002-0002-000000000002")
    assert club_giulia.author.platform_id != giulia.author.platform_id
    assert source(apple).poll(None, T0).mentions[0].author == giulia.author
    aussie = next(m for m in poll.mentions if m.platform_id == AUSSIE)
    assert aussie.language_hint == "en"

    answers = {r.in_reply_to: r for r in poll.replies}
    assert set(answers) == {SANDRO, BEANS}  # the published response, and the one waiting to be published
    sandro = answers[SANDRO]
    assert sandro.author_handle == "Developer Response" and sandro.text.startswith("Ciao Sandro, ci dispiace!")
    assert sandro.published_at == utc("2026-02-28T16:00:00-08:00") and sandro.thread_id == SANDRO
    assert sandro.to_author_id == poll.mentions[3].author.platform_id

    result = store.save_poll("appstore", "appstore", poll, T0)
    assert (result.new_mentions, result.answered) == (7, 2)
    answered = store.conversation(f"appstore:{SANDRO}")
    assert answered is not None and answered.state == "answered"  # answered before we saw it: nothing is due
    assert answered.response_seconds == (5 * 60 + 45) * 60
    beans = store.conversation(f"appstore:{BEANS}")
    assert beans is not None and beans.state == "answered"
    giulia_now = store.conversation(f"appstore:{GIULIA}")
    assert giulia_now is not None and giulia_now.is_open
    assert poll.details["apps"] == 2 and poll.details["rate_limit_remaining"] > 0


def test_the_listing_asks_apple_for_what_it_reads_and_follows_links_next(apple: FakeAppStore) -> None:
    poll = source(apple, page_size=2, apps=[APP], app_names={}).poll(None, T0)
    assert [m.platform_id for m in poll.mentions] == [GIULIA, MARCO, LONDON, SANDRO, BEANS]
    first, *following = review_lists(apple)
    assert first == {
        "sort": "-createdDate",
        "limit": "2",
        "include": "response",
        "fields[customerReviews]": "rating,title,body,reviewerNickname,createdDate,territory,response",
        "fields[customerReviewResponses]": "responseBody,lastModifiedDate,state",
    }
    new_pass = [q for q in following if "exists[publishedResponse]" not in q]
    assert [offset_of(q["cursor"]) for q in new_pass] == [2, 4]  # Apple's cursor, from links.next
    assert all({k: v for k, v in q.items() if k != "cursor"} == first for q in new_pass)  # the query travels on
    # The third page holds Lucia's January review: below the floor, so paging stops there.
    recheck = [q for q in following if q.get("exists[publishedResponse]") == "true"]
    assert recheck and all(q["sort"] == "-createdDate" for q in recheck)


def test_a_restart_reads_only_back_to_a_day_before_the_newest_review_and_stores_nothing_twice(
    apple: FakeAppStore, store: Store
) -> None:
    reading = source(apple, page_size=2, apps=[APP], app_names={})
    store.save_poll("appstore", "appstore", reading.poll(None, T0), T0)
    cursor = store.cursor("appstore")
    assert cursor == {"newest": {APP: "2026-03-02T00:40:00-08:00"}}

    apple.requests.clear()
    later = T0 + timedelta(minutes=10)
    apple.clock = later
    apple.add_review(
        APP,
        "00000071-aaaa-0001-0007-000000000007",
        later - timedelta(minutes=2),
        rating=2,
        title="Ordine mai arrivato",
        body="Ho pagato alle 9 ma al bancone di via Tortona non risultava nessun ordine.",
        reviewerNickname="ele.s",
    )
    again = replace(reading).poll(store.cursor("appstore"), later)  # a fresh process: same config, stored cursor
    result = store.save_poll("appstore", "appstore", again, later)
    assert result.new_mentions == 1 and again.mentions[0].text.startswith("Ordine mai arrivato")
    new_pass = [q for q in review_lists(apple) if "exists[publishedResponse]" not in q]
    # A day before Giulia's review lies in the third page (Sandro's, of February 28): Lucia's is not read again.
    assert [offset_of(q["cursor"]) if "cursor" in q else 0 for q in new_pass] == [0, 2, 4]
    assert len(apple.reviews[APP]) == 7
    assert store.cursor("appstore") == {"newest": {APP: "2026-03-02T01:08:00-08:00"}}


def test_more_new_reviews_than_max_pages_are_said_and_a_broken_cursor_reads_as_new(apple: FakeAppStore) -> None:
    capped = source(apple, page_size=1, max_pages=2, apps=[APP], app_names={}, recheck_days=0).poll(None, T0)
    assert [m.platform_id for m in capped.mentions] == [GIULIA, MARCO] and capped.details["capped"] == [APP]
    assert len(review_lists(apple)) == 2  # the cap holds: no third page
    assert capped.cursor == {"newest": {APP: "2026-03-02T00:40:00-08:00"}}

    broken = source(apple, apps=[APP], app_names={}).poll({"newest": {APP: "ieri"}}, T0)
    assert len(broken.mentions) == 5 and broken.cursor == capped.cursor  # back to backfill_days, then on as usual


def test_an_answer_typed_in_app_store_connect_later_still_closes_the_review(apple: FakeAppStore, store: Store) -> None:
    reading = source(apple)
    store.save_poll("appstore", "appstore", reading.poll(None, T0), T0)
    apple.responses[AUSSIE] = {
        "type": "customerReviewResponses",
        "id": "00000072-bbbb-0002-0001-000000000001",
        "attributes": {
            "responseBody": "Sorry about that! Sign in with the email you used at the café: we sent you a link.",
            "lastModifiedDate": "2026-03-03T02:00:00-08:00",
            "state": "PUBLISHED",
        },
    }
    later = T0 + timedelta(days=1, hours=2)
    apple.clock = later
    apple.requests.clear()
    poll = reading.poll(store.cursor("appstore"), later)
    # The review is from February 20, far below the day of overlap: only the pass over answered reviews reads it.
    assert AUSSIE in {r.in_reply_to for r in poll.replies}
    assert any(q.get("exists[publishedResponse]") == "true" for q in review_lists(apple))
    store.save_poll("appstore", "appstore", poll, later)
    aussie = store.conversation(f"appstore:{AUSSIE}")
    assert aussie is not None and aussie.state == "answered"


# -- the token -------------------------------------------------------------------------------------


def test_every_request_carries_a_valid_apple_jwt_in_the_header_reused_until_it_nearly_expires(
    apple: FakeAppStore,
) -> None:
    reading = source(apple)
    reading.poll(None, T0)
    assert apple.refused == [] and apple.tokens
    first = apple.tokens[0]
    assert first["header"] == {"alg": "ES256", "kid": KEY_ID, "typ": "JWT"}
    claims = first["claims"]
    assert (claims["iss"], claims["aud"], claims["iat"]) == (ISSUER_ID, "appstoreconnect-v1", int(T0.timestamp()))
    assert claims["exp"] - claims["iat"] <= 20 * 60
    assert len({t["token"] for t in apple.tokens}) == 1  # one token for the whole poll
    assert all("eyJ" not in r["url"] and "Bearer" not in r["url"] for r in apple.requests)  # never in a URL

    apple.clock = T0 + timedelta(minutes=5)
    reading.poll(None, T0 + timedelta(minutes=5))
    assert len({t["token"] for t in apple.tokens}) == 1  # still good: reused

    apple.clock = T0 + timedelta(minutes=19)
    reading.poll(None, T0 + timedelta(minutes=19))
    assert len({t["token"] for t in apple.tokens}) == 2  # less than two minutes left: a new one
    assert apple.tokens[-1]["claims"]["iat"] == int((T0 + timedelta(minutes=19)).timestamp())


def test_apple_refuses_an_expired_or_too_long_or_foreign_token(apple: FakeAppStore) -> None:
    def claims(**changes: Any) -> dict[str, Any]:
        now = int(T0.timestamp())
        return {"iss": ISSUER_ID, "iat": now - 60, "exp": now + 600, "aud": "appstoreconnect-v1", **changes}

    now = int(T0.timestamp())
    tokens = {
        "expired": jwt.encode(claims(exp=now - 1), KEY, algorithm="ES256", headers={"kid": KEY_ID}),
        "too long": jwt.encode(claims(exp=now + 30 * 60), KEY, algorithm="ES256", headers={"kid": KEY_ID}),
        "other key": jwt.encode(claims(), OTHER_KEY, algorithm="ES256", headers={"kid": KEY_ID}),
        "other kid": jwt.encode(claims(), KEY, algorithm="ES256", headers={"kid": "ZZZZZZZZZZ"}),
        "other audience": jwt.encode(claims(aud="appstoreconnect-v2"), KEY, algorithm="ES256", headers={"kid": KEY_ID}),
    }
    for name, token in tokens.items():
        answer = httpx.get(
            f"{apple.base_url}/v1/apps/{APP}/customerReviews", headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 401, name
        [error] = answer.json()["errors"]
        assert (error["status"], error["code"]) == ("401", "NOT_AUTHORIZED"), name
    good = jwt.encode(claims(), KEY, algorithm="ES256", headers={"kid": KEY_ID})
    assert httpx.get(
        f"{apple.base_url}/v1/apps/{APP}/customerReviews", headers={"Authorization": f"Bearer {good}"}
    ).is_success


def test_a_reused_token_apple_calls_expired_is_replaced_by_a_fresh_one(apple: FakeAppStore) -> None:
    reading = source(apple, apps=[APP], app_names={}, recheck_days=0)
    reading.poll(None, T0)
    stale = apple.tokens[-1]["token"]
    apple.clock = T0 + timedelta(minutes=21)  # Apple's clock is ahead of ours: our token has expired there
    poll = reading.poll(None, T0 + timedelta(minutes=5))
    assert poll.mentions and apple.refused == ["expired"]
    fresh = apple.tokens[-1]
    assert fresh["token"] != stale and fresh["claims"]["iat"] == int((T0 + timedelta(minutes=5)).timestamp())


def test_a_wrong_key_fails_the_poll_with_what_to_renew_and_no_secret(apple: FakeAppStore) -> None:
    wrong = source(apple, private_key=SecretStr(pem(OTHER_KEY)))
    with pytest.raises(SourceError) as error:
        wrong.poll(None, T0)
    message = refusal(error)
    assert "NOT_AUTHORIZED" in message and "issuer_id and key_id" in message and "revoked key" in message
    assert pem(OTHER_KEY) not in message and apple.refused == ["invalid token: InvalidSignatureError"]
    assert len(apple.requests) == 1  # a freshly signed token that is refused is not sent again


# -- Apple's refusals ------------------------------------------------------------------------------


def test_a_key_that_may_not_see_an_apps_reviews_names_the_app_and_the_roles(apple: FakeAppStore) -> None:
    apple.forbidden.add(CLUB)
    with pytest.raises(SourceError) as error:
        source(apple).poll(None, T0)
    message = refusal(error)
    assert "Aurora Club (1234567891)" in message and "FORBIDDEN_ERROR" in message
    assert "Admin, App Manager or Customer Support" in message


def test_an_app_the_team_does_not_have_names_the_app_id(apple: FakeAppStore) -> None:
    with pytest.raises(SourceError) as error:
        source(apple, apps=[APP, "999999999"], app_names={}).poll(None, T0)
    message = refusal(error)
    assert "no app 999999999" in message and "Apple ID" in message and "NOT_FOUND" in message


def test_a_rate_limit_pauses_the_source(apple: FakeAppStore) -> None:
    apple.rate_limited = True
    with pytest.raises(RateLimited) as error:
        source(apple).poll(None, T0)
    # A rolling hour, no reset time: try again in 15 minutes (from when Apple said so, a moment into the poll).
    assert timedelta(minutes=15) <= error.value.retry_at - T0 < timedelta(minutes=15, seconds=5)
    assert "user-hour-lim:3600;user-hour-rem:0;" in refusal(error)
    apple.retry_after = "120"
    with pytest.raises(RateLimited) as told:
        source(apple).poll(None, T0)
    assert timedelta(seconds=120) <= told.value.retry_at - T0 < timedelta(seconds=125)


def test_a_server_error_or_no_server_fails_the_poll_to_be_retried(apple: FakeAppStore) -> None:
    apple.error = {"status": 503, "body": {"errors": [{"status": "503", "code": "UNEXPECTED_ERROR", "title": "down"}]}}
    with pytest.raises(SourceError, match=r"failed \(HTTP 503, UNEXPECTED_ERROR: down\); will retry"):
        source(apple).poll(None, T0)
    with pytest.raises(SourceError, match="could not be reached"):
        source(apple, base_url=f"http://127.0.0.1:{free_port()}").poll(None, T0)


# -- configuration and secrets ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("", "private_key is required"),
        ("/home/ops/keys/asc.p8", "not PEM text"),
        ("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----", "cannot be read"),
        (pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)), "not an EC P-256 key"),
        (pem(ec.generate_private_key(ec.SECP384R1())), "not an EC P-256 key"),
    ],
)
def test_a_key_that_is_not_an_apple_p8_is_refused_at_start_saying_what_to_give(key: str, says: str) -> None:
    with pytest.raises(ValueError) as error:
        AppStoreSource(name="a", issuer_id=ISSUER_ID, key_id=KEY_ID, private_key=SecretStr(key), apps=[APP])
    message = str(error.value)
    assert says in message and "AuthKey_<key id>.p8" in message and 'private_key = { file = "' in message
    assert not key or key.strip() not in message


def test_the_toml_example_builds_with_the_key_from_a_file_and_never_shows_it(
    tmp_path: Path, apple: FakeAppStore
) -> None:
    key_file = tmp_path / "asc_key.p8"
    key_file.write_text(PEM, encoding="utf-8")
    text = f"""
[[sources]]
type = "appstore"
name = "app"
issuer_id = "{ISSUER_ID}"
key_id = "{KEY_ID}"
private_key = {{ file = "{key_file}" }}
apps = ["{APP}", "{CLUB}"]
app_names = {{ "{APP}" = "Caffè Aurora", "{CLUB}" = "Aurora Club" }}
base_url = "{apple.base_url}"
"""
    settings = settings_from(text, tmp_path)
    [spec] = settings.sources
    built = spec.source
    assert isinstance(built, AppStoreSource) and built.apps == [APP, CLUB]
    assert len(built.poll(None, T0).mentions) == 7  # the PEM read from the file signs what Apple accepts
    replying = built.replier()
    for shown in (repr(built), repr(replying), dumps(settings)):
        no_secret(shown)

    with pytest.raises(ConfigError) as bad:  # the path itself instead of a reference to the file
        settings_from(text.replace(f'{{ file = "{key_file}" }}', '"/run/secrets/asc_key.p8"'), tmp_path)
    [problem] = bad.value.problems
    assert problem.startswith("sources[0]") and "not PEM text" in problem, problem


# -- answering -------------------------------------------------------------------------------------


def test_a_response_is_posted_once_and_heard_as_the_brands_answer(apple: FakeAppStore, store: Store) -> None:
    reading = source(apple)
    store.save_poll("appstore", "appstore", reading.poll(None, T0), T0)
    aussie = heard(apple, AUSSIE)
    answering = reading.replier()
    assert isinstance(answering, Replier) and isinstance(answering, AppStoreReplier)
    assert (answering.channel, answering.account, answering.cost_usd(ANSWER_EN), answering.check(ANSWER_EN)) == (
        "appstore",
        "Developer Response",
        0.0,
        "",
    )
    apple.clock = T0 + timedelta(minutes=3)
    sent = answering.reply(aussie, ANSWER_EN, T0 + timedelta(minutes=3))

    [write] = apple.writes
    assert write["path"] == "/v1/customerReviewResponses"
    assert write["body"] == {
        "data": {
            "type": "customerReviewResponses",
            "attributes": {"responseBody": ANSWER_EN},
            "relationships": {"review": {"data": {"type": "customerReviews", "id": AUSSIE}}},
        }
    }
    assert write["headers"]["Authorization"].startswith("Bearer ey") and apple.refused == []
    stored = apple.responses[AUSSIE]
    assert stored["attributes"]["state"] == "PENDING_PUBLISH"
    assert (sent.platform_id, sent.text, sent.url) == (stored["id"], ANSWER_EN, "")
    assert sent.published_at == T0 + timedelta(minutes=3)

    later = T0 + timedelta(days=2)
    apple.clock = later
    pending = reading.poll(store.cursor("appstore"), later)
    assert AUSSIE not in {r.in_reply_to for r in pending.replies}  # an old review: heard once Apple publishes it
    apple.publish(AUSSIE)
    poll = reading.poll(store.cursor("appstore"), later)
    ours = next(r for r in poll.replies if r.in_reply_to == AUSSIE)
    assert (ours.platform_id, ours.author_handle, ours.text) == (sent.platform_id, answering.account, ANSWER_EN)
    assert ours.to_author_id == aussie.author.platform_id
    store.save_poll("appstore", "appstore", poll, later)
    aussie_now = store.conversation(f"appstore:{AUSSIE}")
    assert aussie_now is not None and aussie_now.state == "answered"


def test_posting_again_overwrites_the_one_response_a_review_has(apple: FakeAppStore) -> None:
    sandro = heard(apple, SANDRO)
    before = apple.responses[SANDRO]["id"]
    sent = replier(apple).reply(sandro, "Ciao Sandro, la versione 4.2.2 è disponibile.", T0)
    assert sent.platform_id == before and apple.responses[SANDRO]["attributes"]["responseBody"].endswith(
        "4.2.2 è disponibile."
    )
    assert sum(1 for r in apple.responses.values() if r["id"] == before) == 1


def test_a_post_that_got_no_answer_is_unknown_then_found_not_posted_again(apple: FakeAppStore) -> None:
    giulia = heard(apple, GIULIA)
    apple.stall_seconds = 1.5  # Apple stores the response, then the answer never comes in time
    answering = replier(apple, timeout_seconds=0.3)
    with pytest.raises(ReplyError) as error:
        answering.reply(giulia, ANSWER, T0)
    assert error.value.problem == "unknown" and "looked up before any retry" in refusal(error)
    apple.stall_seconds = 0

    found = answering.find(giulia, ANSWER.replace(": ", ":  "), T0, T0 + timedelta(minutes=5))
    assert found is not None and found.platform_id == apple.responses[GIULIA]["id"] and found.published_at == T0
    assert len(apple.writes) == 1  # the lookup posted nothing
    [lookup] = [r for r in apple.requests if r["method"] == "GET" and r["path"].endswith("/response")]
    assert lookup["path"] == f"/v1/customerReviews/{GIULIA}/response"
    assert answering.find(giulia, "Altre parole", T0, T0) is None
    assert answering.find(giulia, ANSWER, T0 + timedelta(minutes=2), T0) is None  # older than asked for
    assert answering.find(heard(apple, MARCO), ANSWER, T0, T0) is None  # a review without a response: 404


@pytest.mark.parametrize(
    ("mode", "review", "problem", "advice"),
    [
        ("permission", GIULIA, "permission", "Admin, App Manager or Customer Support"),
        ("rate_limited", GIULIA, "rate_limited", "user-hour-rem:0"),
        ("unavailable", GIULIA, "unavailable", "nothing was posted"),
        ("", "00000071-dead-0000-0000-000000000000", "deleted", "is not a valid id for this relationship"),
    ],
)
def test_apples_refusals_of_a_response_say_what_to_do(
    apple: FakeAppStore, mode: str, review: str, problem: str, advice: str
) -> None:
    giulia = heard(apple, GIULIA)
    apple.refuse_writes = mode
    with pytest.raises(ReplyError) as error:
        replier(apple).reply(replace(giulia, platform_id=review), ANSWER, T0)
    assert error.value.problem == problem and advice in refusal(error)
    assert GIULIA not in apple.responses  # nothing was posted
    assert error.value.retry_at == (T0 + timedelta(minutes=15) if problem == "rate_limited" else None)


def test_a_wrong_key_cannot_answer_and_an_unreachable_apple_is_unavailable(apple: FakeAppStore) -> None:
    giulia = heard(apple, GIULIA)
    with pytest.raises(ReplyError) as wrong:
        replier(apple, private_key=SecretStr(pem(OTHER_KEY))).reply(giulia, ANSWER, T0)
    assert wrong.value.problem == "expired_token" and "NOT_AUTHORIZED" in refusal(wrong)
    closed = replier(apple, base_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ReplyError) as down:
        closed.reply(giulia, ANSWER, T0)
    assert down.value.problem == "unavailable" and down.value.transient
    with pytest.raises(ReplyError) as lookup:
        closed.find(giulia, ANSWER, T0, T0)
    assert lookup.value.problem == "unavailable"
    assert GIULIA not in apple.responses


def test_a_response_too_long_for_the_app_store_is_refused_before_posting(apple: FakeAppStore) -> None:
    answering = replier(apple)
    assert answering.check("a" * 5970) == ""
    assert answering.check("a" * 5971) == "5971 characters; the App Store allows 5970: shorten it"
    assert answering.check("  \n ")
    with pytest.raises(ReplyError) as error:
        answering.reply(heard(apple, GIULIA), "a" * 5971, T0)
    assert error.value.problem == "too_long" and apple.writes == []


def test_without_answering_the_source_offers_no_replier_and_the_pem_never_shows(apple: FakeAppStore) -> None:
    assert source(apple, answering=False).replier() is None
    reading = source(apple)
    for shown in (repr(reading), repr(reading.replier()), str(vars(reading))):
        no_secret(shown)
