"""The `googleplay` source and its replier against a local Google Play double (tests/playapi.py): the week's reviews
once each with their stars, the developer's replies as the brand's answers, edits heard, the service account's token
bought with a verified RS256 assertion and kept, Play's refusals saying what to do, and a reply posted exactly once.

The service account keys are generated here (RSA 2048, with ``cryptography``): no real key is ever committed.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from listener.googleplay import GooglePlayReplier, GooglePlaySource, reply_id
from listener.model import Mention, Poll, RateLimited, SourceError
from listener.replying import Replier, ReplyError
from storage import Store
from tests.conftest import FIXTURES, T0, free_port, settings_from
from tests.playapi import EMAIL, GRANT, SCOPE, FakePlay, google_error, stamp

APP, CAPSULE = "it.auroracaffe.app", "it.auroracaffe.capsule"
MARTA, JAMES, LUCA, SARAH = (
    "gp:AOqpTOGaurora0001marta",
    "gp:AOqpTOGaurora0002james",
    "gp:AOqpTOGaurora0004luca",
    "gp:AOqpTOGaurora0005sarah",
)
TEXT = "Ciao Marta, ci dispiace! L'errore 502 è corretto nella 1.2.1: aggiorna l'app e, se succede ancora, scrivici."


@dataclass(frozen=True)
class Key:
    """A service account key as Google Cloud makes one: its id, the private key (PEM) and the public half."""

    kid: str
    private: rsa.RSAPrivateKey
    pem: str

    @property
    def sentinel(self) -> str:
        """A line from the middle of the private key: it must never appear anywhere."""
        return self.pem.splitlines()[8]


@functools.cache
def key(name: str) -> Key:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    return Key(kid=f"{name:0<40}"[:40], private=private, pem=pem)


def key_file(token_uri: str, signing: Key | None = None, kid: str = "") -> str:
    """The JSON key file of the service account, with ``token_uri`` the double's (``signing`` its private key)."""
    good = key("a1b2c3")
    signing = signing or good
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "aurora-care",
            "private_key_id": kid or good.kid,
            "private_key": signing.pem,
            "client_email": EMAIL,
            "client_id": "104211976543210987654",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/passaparola%40aurora-care.iam.gserviceaccount.com",
            "universe_domain": "googleapis.com",
        },
        indent=2,
    )


@pytest.fixture
def play() -> Iterator[FakePlay]:
    listed = json.loads((FIXTURES / "googleplay" / "reviews.json").read_text(encoding="utf-8"))
    translations = json.loads((FIXTURES / "googleplay" / "translations.json").read_text(encoding="utf-8"))
    good = key("a1b2c3")
    double = FakePlay(
        reviews={package: body["reviews"] for package, body in listed.items()},
        translations=translations,
        keys={good.kid: good.private.public_key()},
    )
    yield from double.serve()


def source(play: FakePlay, **changes: Any) -> GooglePlaySource:
    apps = GooglePlaySource(
        name="play",
        service_account=SecretStr(key_file(play.token_uri)),
        packages=(APP, CAPSULE),
        developer_name="Caffè Aurora",
        base_url=play.base_url,
    )
    return replace(apps, **changes)


def poll(apps: GooglePlaySource, play: FakePlay, cursor: Any = None, at: datetime = T0) -> Poll:
    """A poll at ``at``, with the double's clock (Google's) showing the same time."""
    play.now = at
    return apps.poll(cursor, at)


def review(result: Poll, review_id: str) -> Mention:
    return next(m for m in result.mentions if m.platform_id == review_id)


def reads(play: FakePlay) -> list[dict[str, Any]]:
    """The reviews lists Play was asked for."""
    return [r for r in play.requests if r["method"] == "GET" and urlsplit(r["path"]).path.endswith("/reviews")]


# -- reading ---------------------------------------------------------------------------------------------


def test_the_first_poll_hears_the_weeks_reviews_with_stars_language_and_the_developers_reply(
    play: FakePlay, store: Store
) -> None:
    result = poll(source(play), play)

    # Newest first, app by app; Elena's review of 20 February is older than a week: Play no longer lists it.
    assert [m.platform_id.removeprefix("gp:AOqpTOG") for m in result.mentions] == [
        "aurora0001marta",
        "aurora0002james",
        "aurora0003giulia",
        "aurora0004luca",
        "aurora0005sarah",
        "aurora0006anon",
        "aurora0007paolo",
        "capsule0001tom",
    ]
    marta = review(result, MARTA)
    assert marta.text.startswith("Da quando ho aggiornato l'app") and marta.text.endswith("inutilizzabile!")
    assert marta.published_at == datetime(2026, 3, 2, 8, 50, 0, 412000, tzinfo=UTC)
    assert marta.metrics == {"rating": 1, "app_version_code": 120, "android_os_version": 34, "thumbs_up": 3}
    assert (marta.platform, marta.source, marta.thread_id, marta.language_hint) == ("googleplay", "play", MARTA, "it")
    assert (marta.author.platform_id, marta.author.shown) == (MARTA, "Marta Rinaldi")
    assert (
        marta.url
        == "https://play.google.com/store/apps/details?id=it.auroracaffe.app&reviewId=gp%3AAOqpTOGaurora0001marta"
    )
    assert review(result, JAMES).language_hint == "en"  # Play's en_GB
    assert review(result, "gp:AOqpTOGcapsule0001tom").url.startswith(
        "https://play.google.com/store/apps/details?id=it.auroracaffe.capsule&"
    )

    [answer] = result.replies
    assert (answer.in_reply_to, answer.thread_id, answer.author_handle) == (LUCA, LUCA, "Caffè Aurora")
    assert answer.published_at == datetime(2026, 2, 28, 11, 15, tzinfo=UTC) and answer.text.startswith("Ciao Luca")
    saved = store.save_poll("play", "googleplay", result, T0)
    assert (saved.new_mentions, saved.new_replies, saved.answered) == (8, 1, 1)
    luca = store.conversation(f"googleplay:{LUCA}")
    assert luca is not None and luca.state == "answered" and luca.response_seconds == 75 * 60  # never a breach
    waiting = store.conversation(f"googleplay:{MARTA}")
    assert waiting is not None and waiting.state == "new"


def test_pages_follow_next_page_token_and_the_token_travels_only_in_the_header(play: FakePlay) -> None:
    result = poll(source(play, packages=(APP,), page_size=3), play)
    assert len(result.mentions) == 7 and result.details == {"packages": 1, "reviews": 7, "pages": 3}
    lists = reads(play)
    assert [r["query"].get("token") is None for r in lists] == [True, False, False]
    assert all(r["query"]["maxResults"] == "3" for r in lists)
    [token] = play.tokens  # one token for every page
    assert all(r["headers"]["Authorization"] == f"Bearer {token}" for r in lists)
    assert all(token not in r["path"] for r in play.requests)


def test_a_page_cap_stops_reading_and_says_which_app_it_cut_short(play: FakePlay) -> None:
    result = poll(source(play, packages=(APP,), page_size=2, max_pages=2), play)
    assert len(result.mentions) == 4 and len(reads(play)) == 2
    assert result.details["capped"].startswith("it.auroracaffe.app: more than 2 pages")


def test_a_restart_reads_back_only_to_the_overlap_and_stores_nothing_twice(play: FakePlay, store: Store) -> None:
    store.save_poll("play", "googleplay", poll(source(play, page_size=2), play), T0)
    cursor = store.cursor("play")
    assert cursor is not None
    assert cursor["newest"] == {APP: "2026-03-02T08:50:00.412000+00:00", CAPSULE: "2026-03-01T10:00:00+00:00"}

    fresh = copy.deepcopy(play.reviews[APP][2])
    fresh["reviewId"], fresh["authorName"] = "gp:AOqpTOGaurora0009nina", "Nina Russo"
    fresh["comments"][0]["userComment"].update(
        {"text": "\tThe app charged me twice for one cortado!", "lastModified": stamp(T0 + timedelta(minutes=20))}
    )
    play.reviews[APP].append(fresh)
    play.requests.clear()
    later = T0 + timedelta(minutes=30)
    again = poll(source(play, page_size=2, overlap_hours=2), play, cursor, later)  # a new process, the stored cursor

    # Back to 06:50 (two hours before Marta's 08:50): Nina, Marta, James; Giulia's of yesterday ends the reading.
    assert [m.platform_id for m in again.mentions] == [
        "gp:AOqpTOGaurora0009nina",
        MARTA,
        JAMES,
        "gp:AOqpTOGcapsule0001tom",
    ]
    assert len(reads(play)) == 3  # two pages of the app's list (of four), one of the capsule shop's
    saved = store.save_poll("play", "googleplay", again, later)
    assert (saved.new_mentions, saved.new_replies) == (1, 0)
    assert store.cursor("play")["newest"][APP] == (T0 + timedelta(minutes=20)).isoformat()  # type: ignore[index]


def test_an_edited_review_replaces_the_stored_words_and_stars(play: FakePlay, store: Store) -> None:
    store.save_poll("play", "googleplay", poll(source(play), play), T0)
    edited_at = T0 + timedelta(hours=1)
    play.edit(SARAH, "\tUpdate: 1.2.1 fixed the crash, thanks! Five stars now.", 5, edited_at)

    again = poll(source(play), play, store.cursor("play"), T0 + timedelta(hours=2))
    sarah = review(again, SARAH)
    assert (sarah.text, sarah.metrics["rating"], sarah.published_at) == (
        "Update: 1.2.1 fixed the crash, thanks! Five stars now.",
        5,
        edited_at,
    )
    assert store.save_poll("play", "googleplay", again, T0 + timedelta(hours=2)).new_mentions == 0
    stored = store.conversation(f"googleplay:{SARAH}")
    assert (
        stored is not None and stored.mention.text.startswith("Update: 1.2.1") and stored.mention.metrics["rating"] == 5
    )


def test_a_review_changed_after_the_developers_reply_waits_for_a_new_answer(play: FakePlay, store: Store) -> None:
    play.edit(LUCA, "\tDopo una settimana ancora niente punti. Una stella.", 1, T0 - timedelta(hours=1))
    result = poll(source(play), play)
    [old_answer] = result.replies
    assert old_answer.thread_id == LUCA and old_answer.in_reply_to == ""  # it answered the earlier words
    store.save_poll("play", "googleplay", result, T0)
    luca = store.conversation(f"googleplay:{LUCA}")
    assert luca is not None and luca.state == "new"


def test_asking_for_a_translation_keeps_the_customers_own_words(play: FakePlay) -> None:
    result = poll(source(play, packages=(APP,), translation_language="it"), play)
    james = review(result, JAMES)
    assert james.text.startswith("Can I pre-order at the Milano Centrale kiosk") and james.language_hint == "en"
    assert all(r["query"]["translationLanguage"] == "it" for r in reads(play))


def test_a_poll_after_more_than_a_week_says_what_may_have_been_missed(play: FakePlay) -> None:
    cursor = {"newest": {APP: "2026-02-20T22:00:00+00:00"}, "polled_at": "2026-02-21T09:00:00+00:00"}
    result = poll(source(play, packages=(APP,)), play, cursor)
    assert len(result.mentions) == 7  # all Play still lists
    assert result.details["missed"] == (
        "no poll since 2026-02-21 09:00 UTC: Google Play lists only the last week's reviews, so reviews changed "
        "before 2026-02-23 09:00 UTC were not heard"
    )


# -- the service account and its token --------------------------------------------------------------------


def test_the_assertion_is_signed_with_the_key_for_the_play_scope(play: FakePlay) -> None:
    poll(source(play), play)
    [sent] = play.assertions
    assert sent["header"] == {"alg": "RS256", "typ": "JWT", "kid": key("a1b2c3").kid}
    issued = int(T0.timestamp())
    assert sent["claims"] == {"iss": EMAIL, "scope": SCOPE, "aud": play.token_uri, "iat": issued, "exp": issued + 3600}


def test_the_token_is_kept_until_it_nearly_expires_and_a_revoked_one_is_replaced(play: FakePlay) -> None:
    apps = source(play)
    poll(apps, play)
    poll(apps, play, at=T0 + timedelta(minutes=50))
    assert len(play.assertions) == 1
    poll(apps, play, at=T0 + timedelta(minutes=59))  # two minutes from the end of its hour: a new one
    assert len(play.assertions) == 2
    play.revoke()  # Google forgets it early
    assert len(poll(apps, play, at=T0 + timedelta(minutes=65)).mentions) == 8
    assert len(play.assertions) == 3


@pytest.mark.parametrize("fault", ["the key was deleted in Google Cloud", "another private key signed"])
def test_a_deleted_or_wrong_key_says_to_create_a_new_one(play: FakePlay, fault: str) -> None:
    apps = source(play)
    if fault.startswith("the key"):
        play.keys.clear()
    else:
        apps = source(play, service_account=SecretStr(key_file(play.token_uri, signing=key("d4e5f6"))))
    with pytest.raises(SourceError) as error:
        poll(apps, play)
    message = str(error.value)
    assert "invalid_grant: Invalid JWT Signature." in message and "create a new key for it in Google Cloud" in message
    assert EMAIL in message and key("a1b2c3").sentinel not in message and key("d4e5f6").sentinel not in message
    assert play.requests == []  # no token, no call


def test_a_clock_google_disagrees_with_is_named(play: FakePlay) -> None:
    play.now = T0 + timedelta(hours=3)
    with pytest.raises(SourceError, match="set this machine's clock right"):
        source(play).poll(None, T0)


@pytest.mark.parametrize(
    ("key_text", "words"),
    [
        ("", "service_account is required"),
        ("SENTINEL-not-json", "service_account is not a JSON key file"),
        ('{"type": "authorized_user", "refresh_token": "1//SENTINEL"}', "of type 'authorized_user'"),
        ('{"type": "service_account", "client_email": "a@b.iam.gserviceaccount.com"}', "lacks private_key, token_uri"),
        (
            json.dumps(
                {
                    "type": "service_account",
                    "client_email": EMAIL,
                    "token_uri": "https://oauth2.googleapis.com/token",
                    "private_key": "-----BEGIN PRIVATE KEY-----\nSENTINEL\n-----END PRIVATE KEY-----\n",
                }
            ),
            "private_key cannot be read: create a new key",
        ),
    ],
)
def test_a_key_that_is_no_service_account_key_is_refused_at_start(key_text: str, words: str) -> None:
    with pytest.raises(ValueError) as error:
        GooglePlaySource(name="play", service_account=SecretStr(key_text), packages=(APP,))
    assert words in str(error.value) and "SENTINEL" not in str(error.value)


def test_the_key_comes_from_a_secrets_file_and_never_shows(play: FakePlay, tmp_path: Path) -> None:
    from passaparola.config import ConfigError
    from passaparola.config.settings import dumps

    secret = tmp_path / "play.json"
    secret.write_text(key_file(play.token_uri) + "\n", encoding="utf-8")
    table = f'[[sources]]\ntype = "googleplay"\nname = "play"\nservice_account = {{ file = "{secret}" }}\n'
    settings = settings_from(table + f'packages = ["{APP}"]\nbase_url = "{play.base_url}"\n', tmp_path)
    [spec] = settings.sources
    assert isinstance(spec.source, GooglePlaySource) and spec.source.service_account_email == EMAIL
    assert poll(spec.source, play).mentions
    shown = dumps(settings) + repr(spec.source) + repr(spec.source.replier())
    assert key("a1b2c3").sentinel not in shown and "private_key" not in shown
    assert all(token not in shown for token in play.tokens)

    with pytest.raises(ConfigError) as error:
        settings_from(table + 'packages = ["Aurora App"]\n', tmp_path)
    assert error.value.problems == [
        "sources[0]: packages: 'Aurora App' is not a package name; copy it from Play Console (e.g. it.auroracaffe.app)"
    ]


# -- Play's refusals ----------------------------------------------------------------------------------


def test_an_app_the_account_was_not_invited_to_names_the_package_and_the_permission(play: FakePlay) -> None:
    play.visible = {APP, CAPSULE}
    with pytest.raises(SourceError) as error:
        poll(source(play, packages=(APP, "it.auroracaffe.beta")), play)
    message = str(error.value)
    assert "it.auroracaffe.beta" in message and "(The caller does not have permission)" in message
    assert 'Play Console (Users and permissions) with "Reply to reviews"' in message and EMAIL in message


@pytest.mark.parametrize(
    ("status", "body", "advice"),
    [
        (
            401,  # Play's own quirk: 401 for a missing permission
            google_error(
                401,
                "The current user has insufficient permissions to perform the requested operation.",
                "",
                "permissionDenied",
                domain="androidpublisher",
            ),
            "invite it in Play Console (Users and permissions)",
        ),
        (
            403,
            google_error(
                403,
                "Google Play Android Developer API has not been used in project 104211976543 before or it is "
                "disabled. Enable it by visiting https://console.developers.google.com/apis/api/"
                "androidpublisher.googleapis.com/overview?project=104211976543 then retry.",
                "PERMISSION_DENIED",
                "accessNotConfigured",
                domain="usageLimits",
            ),
            "Android Developer API is off in the Cloud project",
        ),
        (500, google_error(500, "Internal error encountered.", "INTERNAL", "backendError"), "will retry"),
    ],
)
def test_other_refusals_say_what_to_fix(play: FakePlay, status: int, body: dict[str, Any], advice: str) -> None:
    play.fault = {"status": status, "body": body}
    with pytest.raises(SourceError) as error:
        poll(source(play), play)
    assert advice in str(error.value) and not isinstance(error.value, RateLimited)
    assert len(play.assertions) == 1  # a refusal that is not the token's buys no new token


@pytest.mark.parametrize(
    ("status", "limit", "retry_after", "until"),
    [
        (429, "Get reviews requests per hour", "120", T0 + timedelta(minutes=19)),
        (429, "Get reviews requests per hour", "", T0 + timedelta(hours=1)),
        (429, "Queries per minute", "", T0 + timedelta(minutes=18)),
        (429, "Queries per day", "", datetime(2026, 3, 3, 8, 0, tzinfo=UTC)),  # midnight in California
        (403, "Get reviews requests per hour", "", T0 + timedelta(hours=1)),  # the older 403 rateLimitExceeded
    ],
)
def test_a_spent_quota_pauses_the_source_until_google_says_or_the_quota_comes_back(
    play: FakePlay, status: int, limit: str, retry_after: str, until: datetime
) -> None:
    message = (
        f"Quota exceeded for quota metric 'Queries' and limit '{limit}' of service 'androidpublisher.googleapis.com' "
        "for consumer 'project_number:104211976543'."
    )
    state = "RESOURCE_EXHAUSTED" if status == 429 else "PERMISSION_DENIED"
    play.fault = {
        "status": status,
        "body": google_error(status, message, state, "rateLimitExceeded"),
        "headers": {"Retry-After": retry_after} if retry_after else {},
    }
    with pytest.raises(RateLimited) as error:
        poll(source(play), play, at=T0 + timedelta(minutes=17))
    assert error.value.retry_at == until
    assert f"reading again at {until:%Y-%m-%d %H:%M} UTC" in str(error.value)


def test_an_unreachable_google_fails_the_poll_and_says_it_will_retry(play: FakePlay) -> None:
    nowhere = source(play, base_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(SourceError, match="Google Play could not be reached"):
        poll(nowhere, play)


def test_the_token_endpoint_double_refuses_what_google_refuses(play: FakePlay) -> None:
    good, other = key("a1b2c3"), key("d4e5f6")
    issued = int(T0.timestamp())
    claims = {"iss": EMAIL, "scope": SCOPE, "aud": play.token_uri, "iat": issued, "exp": issued + 3600}

    def ask(changes: dict[str, Any], signing: Key = good, kid: str = good.kid) -> str:
        assertion = jwt.encode({**claims, **changes}, signing.private, algorithm="RS256", headers={"kid": kid})
        answer = httpx.post(play.token_uri, data={"grant_type": GRANT, "assertion": assertion}, trust_env=False)
        return answer.json().get("error_description", "") if answer.status_code == 400 else "ok"

    assert ask({}) == "ok"
    assert ask({}, signing=other) == ask({}, kid=other.kid) == "Invalid JWT Signature."
    assert ask({"aud": "https://oauth2.googleapis.com/token"}).startswith("Invalid JWT: Failed audience check")
    assert ask({"scope": ""}) == "Invalid OAuth scope or ID token audience provided."
    assert ask({"exp": issued + 7200}).startswith("Invalid JWT: Token must be a short-lived token")
    assert ask({"iat": issued - 7200, "exp": issued - 3600}).startswith("Invalid JWT: Token must be a short-lived")
    assert ask({"iss": "someone@else.iam.gserviceaccount.com"}) == "Invalid grant: account not found"


# -- answering ----------------------------------------------------------------------------------------


def heard(play: FakePlay, apps: GooglePlaySource, review_id: str) -> Mention:
    return review(poll(apps, play), review_id)


def test_a_reply_is_posted_once_and_the_next_poll_hears_it_as_the_brands_answer(play: FakePlay, store: Store) -> None:
    apps = source(play)
    first = poll(apps, play)
    store.save_poll("play", "googleplay", first, T0)
    marta = review(first, MARTA)
    replier = apps.replier()
    assert isinstance(replier, Replier) and isinstance(replier, GooglePlayReplier)
    assert (replier.channel, replier.account, replier.cost_usd(TEXT), replier.check(TEXT)) == (
        "googleplay",
        "Caffè Aurora",
        0.0,
        "",
    )

    sent_at = T0 + timedelta(minutes=5)
    play.now = sent_at
    sent = replier.reply(marta, TEXT, sent_at)
    [write] = play.writes
    assert urlsplit(write["path"]).path == (
        "/androidpublisher/v3/applications/it.auroracaffe.app/reviews/gp%3AAOqpTOGaurora0001marta:reply"
    )
    assert (
        write["body"] == {"replyText": TEXT}
        and write["headers"]["Authorization"] == f"Bearer {next(iter(play.tokens))}"
    )
    assert play.developer_reply(MARTA) == {"text": TEXT, "lastModified": stamp(sent_at)}
    assert (sent.text, sent.published_at, sent.url) == (TEXT, sent_at, marta.url)
    assert len(play.assertions) == 1  # the replier shares the source's token

    later = T0 + timedelta(minutes=10)
    again = poll(apps, play, store.cursor("play"), later)
    ours = next(r for r in again.replies if r.in_reply_to == MARTA)
    assert (ours.platform_id, ours.author_handle, ours.published_at) == (sent.platform_id, replier.account, sent_at)
    assert store.save_poll("play", "googleplay", again, later).answered == 1
    answered = store.conversation(f"googleplay:{MARTA}")
    assert answered is not None and answered.state == "answered" and answered.response_seconds == 15 * 60


def test_a_new_reply_replaces_the_developers_previous_one(play: FakePlay) -> None:
    apps = source(play)
    luca = heard(play, apps, LUCA)
    play.now = T0 + timedelta(minutes=3)
    sent = apps.replier().reply(luca, "Ciao Luca, i punti sono di nuovo sul tuo conto. Buona colazione!", play.now)
    [comment] = [c for c in play.find(LUCA)[1]["comments"] if "developerComment" in c]  # type: ignore[index]
    assert (
        comment["developerComment"]["text"]
        == sent.text
        == "Ciao Luca, i punti sono di nuovo sul tuo conto. Buona colazione!"
    )
    assert sent.platform_id == reply_id(LUCA, play.now) != reply_id(LUCA, datetime(2026, 2, 28, 11, 15, tzinfo=UTC))


def test_check_counts_as_play_does_and_a_reply_too_long_is_never_sent(play: FakePlay) -> None:
    apps = source(play)
    replier = apps.replier()
    assert replier.check("a" * 350) == "" and replier.check("☕" * 350) == ""  # U+2615: one unit each
    assert replier.check("a" * 351) == "351 characters; Google Play allows 350: shorten it"
    assert replier.check("a" * 340 + "😀" * 6) == (
        "352 characters as Google Play counts them (an emoji counts 2); Google Play allows 350: shorten it"
    )
    assert replier.check(" \n ") == "the reply is empty: write something to post"
    assert replier.check("Ciao <b>Marta</b>") == "Google Play strips HTML tags from replies (<b>): write plain text"
    marta = heard(play, apps, MARTA)
    with pytest.raises(ReplyError) as error:
        replier.reply(marta, "a" * 351, T0)
    assert error.value.problem == "too_long" and play.writes == []


def test_a_reply_that_got_no_answer_is_unknown_then_found_not_posted_again(play: FakePlay) -> None:
    apps = source(play, timeout_seconds=0.4)
    marta = heard(play, apps, MARTA)
    replier = apps.replier()
    play.stall_seconds = 1.5  # Play stores the reply, then the answer never comes in time
    sent_at = T0 + timedelta(minutes=5)
    play.now = sent_at
    with pytest.raises(ReplyError) as error:
        replier.reply(marta, TEXT, sent_at)
    assert error.value.problem == "unknown" and "may have been posted" in str(error.value)
    play.stall_seconds = 0

    found = replier.find(marta, TEXT.replace(": ", ":\n"), sent_at - timedelta(minutes=1), sent_at)
    assert found is not None and (found.platform_id, found.published_at) == (reply_id(MARTA, sent_at), sent_at)
    assert len(play.writes) == 1  # the lookup posted nothing
    [lookup] = [r for r in play.requests if r["method"] == "GET" and "/reviews/" in r["path"]]
    assert urlsplit(lookup["path"]).path.endswith("/reviews/gp%3AAOqpTOGaurora0001marta")
    assert replier.find(marta, "Altre parole", T0, sent_at) is None
    assert replier.find(marta, TEXT, sent_at + timedelta(minutes=10), sent_at) is None  # older than asked for
    assert replier.find(review(poll(apps, play), JAMES), TEXT, T0, sent_at) is None  # no reply there


@pytest.mark.parametrize(
    ("mode", "problem", "advice"),
    [
        ("permission", "permission", 'give it "Reply to reviews" for the app in Play Console'),
        ("quota", "rate_limited", "trying again at 2026-03-03 08:00 UTC"),  # the quota day ends at midnight Pacific
        ("unavailable", "unavailable", "nothing was posted"),
        ("gateway", "unknown", "may have been posted"),
    ],
)
def test_plays_refusals_of_a_reply_say_what_to_do_and_never_hold_a_secret(
    play: FakePlay, mode: str, problem: str, advice: str
) -> None:
    apps = source(play)
    marta = heard(play, apps, MARTA)
    play.refuse_writes = mode
    with pytest.raises(ReplyError) as error:
        apps.replier().reply(marta, TEXT, T0)
    assert error.value.problem == problem and advice in str(error.value)
    assert key("a1b2c3").sentinel not in str(error.value) and all(t not in str(error.value) for t in play.tokens)
    assert play.developer_reply(MARTA) is None
    assert error.value.retry_at == (datetime(2026, 3, 3, 8, 0, tzinfo=UTC) if problem == "rate_limited" else None)


def test_a_gone_review_a_deleted_key_and_no_google_say_so(play: FakePlay) -> None:
    apps = source(play)
    marta = heard(play, apps, MARTA)
    with pytest.raises(ReplyError) as gone:
        apps.replier().reply(replace(marta, platform_id="gp:AOqpTOGgone"), TEXT, T0)
    assert gone.value.problem == "deleted" and "Review not found." in str(gone.value)

    nowhere = source(play, base_url=f"http://127.0.0.1:{free_port()}").replier()
    for attempt in (lambda: nowhere.reply(marta, TEXT, T0), lambda: nowhere.find(marta, TEXT, T0, T0)):
        with pytest.raises(ReplyError) as down:
            attempt()
        assert down.value.problem == "unavailable" and down.value.transient

    play.keys.clear()
    with pytest.raises(ReplyError) as deleted:
        source(play).replier().reply(marta, TEXT, T0)  # a fresh process: no token kept
    assert deleted.value.problem == "expired_token" and "create a new key for it in Google Cloud" in str(deleted.value)

    assert [urlsplit(w["path"]).path.rsplit("/", 1)[-1] for w in play.writes] == ["gp%3AAOqpTOGgone:reply"]
