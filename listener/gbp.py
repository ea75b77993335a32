"""`gbp`: the reviews of the brand's own Google Business Profile locations, and the owner's answers to them.

Reads ``GET /v4/accounts/{account}/locations/{location}/reviews`` (the My Business API v4, still the reviews API)
newest-updated first, down to the newest ``updateTime`` the last poll saw (less an hour of overlap), so a review its
author edited (same id, newer ``updateTime``, new words or stars) comes again and storage updates what it holds. The
owner's reply (``reviewReply``) is a brand reply answering its review: a review answered before passaparola first saw
it is answered, never a breach. Every ``full_scan_every`` polls the whole list is read (bounded), and reviews seen
before that are gone (deleted by their author, or removed by Google) go into `Poll.removed`.

Access is OAuth 2.0 as a Google account that manages the locations (scope ``business.manage``): google-auth trades
the refresh token for an access token at ``token_uri``, through a transport here that has timeouts and never lets
google-auth sleep between retries; the token is kept until shortly before it expires and travels only in the
Authorization header. `GoogleBusinessReplier` answers a review with ``PUT /v4/{review}/reply``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import cached_property
from typing import Any, ClassVar, Literal
from urllib.parse import quote, urlsplit

import google.auth.exceptions
import google.auth.transport
import httpx
from google.oauth2.credentials import Credentials
from pydantic import SecretStr

from listener.model import Author, BrandReply, Mention, Poll, RateLimited, SourceError
from listener.replying import ReplyError, ReplyProblem, SentReply

log = logging.getLogger(__name__)

SCOPE = "https://www.googleapis.com/auth/business.manage"
#: Google's stars, as the API spells them.
STARS = {"ONE": 1, "TWO": 2, "THREE": 3, "FOUR": 4, "FIVE": 5}
#: How far back, before the newest review already seen, each poll reads again (Google lists late, now and then).
OVERLAP = timedelta(hours=1)
#: An access token is renewed this long before Google says it expires.
RENEW_EARLY = timedelta(minutes=5)
#: The longest owner reply Google accepts, in UTF-8 bytes (an accented letter counts two, an emoji four).
MAX_REPLY_BYTES = 4096
#: How long a quota pause lasts when Google says nothing about it (its quotas are per minute).
DEFAULT_WAIT = timedelta(minutes=1)
#: How far before ``since`` `GoogleBusinessReplier.find` still accepts our reply: Google's clock and ours disagree.
CLOCK_SKEW = timedelta(minutes=1)
#: At most this much of Google's own message goes into an error.
GOOGLE_WORDS = 200
#: Token endpoint answers google-auth would retry after sleeping; here they fail the refresh at once instead.
BUSY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
BUSY_ERRORS = frozenset({"internal_failure", "server_error", "temporarily_unavailable"})

_TRANSLATED = re.compile(r"\((?:Translated by Google|Traduzione di Google|Tradotto da Google)\)", re.IGNORECASE)
_ORIGINAL = re.compile(r"\((?:Original|Originale)\)", re.IGNORECASE)


def google_time(value: str) -> datetime:
    """Google's RFC 3339 time (``2026-03-02T08:15:30.123Z``, 0 to 9 fractional digits) as an aware UTC datetime."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    head, dot, rest = text.partition(".")
    if dot:  # Python keeps microseconds: cut nanoseconds, keep the offset
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[:digits][:6].ljust(6, '0')}{rest[digits:]}"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone")
    return moment.astimezone(UTC)


def original_text(comment: str) -> str:
    """The reviewer's own words out of a comment Google translated for the account.

    Google sends either ``(Translated by Google) <translation>\\n\\n(Original)\\n<original>`` or
    ``<original>\\n\\n(Translated by Google)\\n<translation>`` (the markers in the account's language); the original
    is what the customer wrote, and what a reply should answer.
    """
    original = _ORIGINAL.search(comment)
    if original and _TRANSLATED.search(comment[: original.start()]):
        return comment[original.end() :].strip()
    translated = _TRANSLATED.search(comment)
    if translated and translated.start() > 0:
        return comment[: translated.start()].strip()
    return comment.strip()


def stars_text(rating: int | None) -> str:
    """What stands for the text of a review that has only stars: ``★★★★☆``."""
    return "★" * rating + "☆" * (5 - rating) if rating else "☆☆☆☆☆"


def reply_id(review_id: str) -> str:
    """The platform id of the owner's reply to a review: one reply per review, so the review's id names it."""
    return f"{review_id}/reply"


def _same_text(a: str, b: str) -> bool:
    """Equal once Unicode-normalised and with runs of whitespace collapsed (Google trims and may re-space)."""

    def norm(text: str) -> str:
        return " ".join(unicodedata.normalize("NFC", text).split())

    return norm(a) == norm(b)


def _scrub(message: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            message = message.replace(secret, "[secret]")
    return message


# -- what Google's errors mean ---------------------------------------------------------------------------------------

GoogleTrouble = Literal["token", "scope", "api_disabled", "permission", "missing", "rate_limited", "server", "other"]


@dataclass(frozen=True, slots=True)
class GoogleProblem:
    """An error answer of a Google API (``{"error": {"code", "message", "status", "details"}}``), read once for the
    source and the replier: what it means (``kind``), Google's words and, for a quota, when to try again."""

    kind: GoogleTrouble
    http: int
    status: str
    message: str
    reasons: tuple[str, ...] = ()
    retry_at: datetime | None = None

    @property
    def words(self) -> str:
        """``STATUS: message``, or the HTTP status when Google said nothing."""
        said = ": ".join(part for part in (self.status, self.message) if part)
        return said or f"HTTP {self.http}"


def _wait(response: httpx.Response, details: list[Any], now: datetime) -> datetime:
    """When a quota pause ends: ``Retry-After`` (seconds or a date), else a ``RetryInfo.retryDelay``, else a
    minute; never more than an hour away."""
    wait: timedelta | None = None
    header = response.headers.get("retry-after", "").strip()
    if header.isdigit():
        wait = timedelta(seconds=int(header))
    elif header:
        try:
            wait = parsedate_to_datetime(header).astimezone(UTC) - now
        except (TypeError, ValueError):
            wait = None
    if wait is None:
        for detail in details:
            delay = str(detail.get("retryDelay", "")) if isinstance(detail, dict) else ""
            if delay.endswith("s"):
                try:
                    wait = timedelta(seconds=float(delay[:-1]))
                except ValueError:
                    continue
                break
    wait = wait if wait is not None and wait > timedelta(0) else DEFAULT_WAIT
    return now + min(wait, timedelta(hours=1))


def google_problem(response: httpx.Response, now: datetime) -> GoogleProblem | None:
    """What went wrong, or None for a 2xx. One reading of Google's errors: 401 the token; 403 a scope missing from
    the refresh token (``ACCESS_TOKEN_SCOPE_INSUFFICIENT``), the API not enabled in the Cloud project
    (``SERVICE_DISABLED``) or a location the account does not manage; 404 gone; 429 a quota; 5xx Google's own."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = {}
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    listed = error.get("details")
    details: list[Any] = listed if isinstance(listed, list) else []
    reasons = tuple(str(d["reason"]) for d in details if isinstance(d, dict) and d.get("reason"))
    name = str(error.get("status", ""))
    message = str(error.get("message", ""))[:GOOGLE_WORDS]
    kind: GoogleTrouble = "other"
    retry_at = None
    if status == 401 or name == "UNAUTHENTICATED":
        kind = "token"
    elif status == 429 or name == "RESOURCE_EXHAUSTED":
        kind, retry_at = "rate_limited", _wait(response, details, now)
    elif "ACCESS_TOKEN_SCOPE_INSUFFICIENT" in reasons or "insufficient authentication scopes" in message.lower():
        kind = "scope"
    elif "SERVICE_DISABLED" in reasons or "has not been used in project" in message:
        kind = "api_disabled"
    elif status == 403 or name == "PERMISSION_DENIED":
        kind = "permission"
    elif status == 404 or name == "NOT_FOUND":
        kind = "missing"
    elif status >= 500:
        kind = "server"
    return GoogleProblem(kind, status, name, message, reasons, retry_at)


# -- the access token ------------------------------------------------------------------------------------------------


class TokenTrouble(Exception):
    """The refresh token could not be traded for an access token. ``kind``: ``grant`` (the refresh token is expired,
    revoked or wrong: renew it), ``client`` (client id or secret wrong), ``unavailable`` (try again later)."""

    def __init__(self, kind: Literal["grant", "client", "unavailable"], message: str) -> None:
        super().__init__(message)
        self.kind = kind


class _Response(google.auth.transport.Response):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    @property
    def data(self) -> bytes:
        return self._response.content


class _Transport(google.auth.transport.Request):
    """google-auth's way out to the token endpoint, on httpx: a timeout on every call, no proxy from the environment,
    and a busy answer (5xx, 429, ``server_error``) fails at once, where google-auth would sleep and retry."""

    def __init__(self, timeout_seconds: float) -> None:
        self.timeout_seconds = timeout_seconds

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> _Response:
        try:
            with httpx.Client(timeout=self.timeout_seconds, trust_env=False) as client:
                response = client.request(method, url, content=body, headers=dict(headers or {}))
        except httpx.TimeoutException:
            raise TokenTrouble(
                "unavailable", f"the token endpoint gave no answer within {self.timeout_seconds:g} s"
            ) from None
        except httpx.HTTPError as error:
            raise TokenTrouble(
                "unavailable", f"the token endpoint could not be reached ({type(error).__name__})"
            ) from None
        try:
            said = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            said = {}
        code = str(said.get("error", "")) if isinstance(said, dict) else ""
        if response.status_code in BUSY_STATUSES or code in BUSY_ERRORS:
            raise TokenTrouble("unavailable", f"the token endpoint answered {response.status_code} ({code or 'busy'})")
        return _Response(response)


class GoogleToken:
    """The Google account's access token, shared by a source and its replier: refreshed with google-auth when
    missing or about to expire (by the caller's clock), otherwise reused. Thread-safe: the daemon polls while the
    web app replies."""

    def __init__(
        self, client_id: str, client_secret: SecretStr, refresh_token: SecretStr, token_uri: str, timeout: float
    ) -> None:
        self._credentials = Credentials(
            None,
            refresh_token=refresh_token.get_secret_value(),
            client_id=client_id,
            client_secret=client_secret.get_secret_value(),
            token_uri=token_uri,
        )
        self._transport = _Transport(timeout)
        self._secrets = (client_secret.get_secret_value(), refresh_token.get_secret_value())
        self._lock = threading.Lock()
        self._token = ""
        self._until: datetime | None = None

    @property
    def secrets(self) -> tuple[str, ...]:
        """What no message may hold: the client secret, the refresh token and the access token in use."""
        return (*self._secrets, self._token)

    def get(self, now: datetime) -> str:
        """A valid access token at ``now``. Raises `TokenTrouble`."""
        with self._lock:
            if self._token and self._until is not None and now < self._until:
                return self._token
            self._refresh(now)
            return self._token

    def forget(self) -> None:
        """Drop the token (Google refused it): the next call gets a new one."""
        with self._lock:
            self._token, self._until = "", None

    def _refresh(self, now: datetime) -> None:
        try:
            self._credentials.refresh(self._transport)
        except TokenTrouble as trouble:
            raise TokenTrouble(trouble.kind, _scrub(str(trouble), self._secrets)) from None
        except google.auth.exceptions.RefreshError as error:
            said = error.args[1] if len(error.args) > 1 and isinstance(error.args[1], dict) else {}
            code = str(said.get("error", ""))
            words = _scrub(str(error.args[0] if error.args else error), self._secrets)[:GOOGLE_WORDS]
            if code in ("invalid_client", "unauthorized_client"):
                raise TokenTrouble("client", words) from None
            if error.retryable:
                raise TokenTrouble("unavailable", words) from None
            raise TokenTrouble("grant", words) from None  # invalid_grant, reauthentication needed
        except (google.auth.exceptions.GoogleAuthError, KeyError, TypeError, ValueError) as error:
            raise TokenTrouble(
                "unavailable", f"the token endpoint's answer was unusable ({type(error).__name__})"
            ) from None
        token = self._credentials.token
        if not isinstance(token, str) or not token:
            raise TokenTrouble("unavailable", "the token endpoint answered without an access token")
        lifetime = timedelta(hours=1)
        if self._credentials.expiry is not None:  # naive UTC, by the machine's clock
            lifetime = self._credentials.expiry - datetime.now(UTC).replace(tzinfo=None)
        self._token, self._until = token, now + lifetime - RENEW_EARLY


# -- a review, as passaparola hears it -------------------------------------------------------------------------------


def _reviewer_id(review_id: str, reviewer: Mapping[str, Any]) -> str:
    """A stable id for a reviewer: the API gives none. A named reviewer with a profile photo is known by the photo's
    address (its size suffix cut), hashed; anyone else (anonymous, no photo) is one author per review."""
    photo = str(reviewer.get("profilePhotoUrl", "")).split("=")[0]
    if photo and not reviewer.get("isAnonymous"):
        seed = f"{reviewer.get('displayName', '')}\n{photo}"
        return "p" + hashlib.sha256(seed.encode("utf-8")).hexdigest()[:16]
    return f"review-{review_id}"


def read_review(
    review: Mapping[str, Any], source: str, url: str, owner: str, place: str = ""
) -> tuple[Mention, BrandReply | None] | None:
    """One review as a mention, and the owner's reply as the brand's answer to it; None when the review lacks its
    id, name or times (logged, skipped: it never stops the poll)."""
    review_id = str(review.get("reviewId", ""))
    name = str(review.get("name", ""))
    try:
        updated = google_time(str(review["updateTime"]))
        created = google_time(str(review.get("createTime") or review["updateTime"]))
    except (KeyError, ValueError):
        log.warning("gbp source %s: review %r skipped: no usable createTime/updateTime", source, review_id)
        return None
    if not review_id or not name.endswith(f"/reviews/{review_id}"):
        log.warning("gbp source %s: review %r skipped: its name %r does not name it", source, review_id, name)
        return None
    raw = review.get("reviewer")
    reviewer: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
    anonymous = bool(reviewer.get("isAnonymous"))
    shown = str(reviewer.get("displayName", "")).strip()
    shown = "Google user (anonymous)" if anonymous or not shown else shown
    author_id = _reviewer_id(review_id, reviewer)
    rating = STARS.get(str(review.get("starRating", "")))
    text = original_text(str(review.get("comment", "") or ""))
    mention = Mention(
        platform="gbp",
        platform_id=review_id,
        source=source,
        text=text or stars_text(rating),
        published_at=created if created <= updated else updated,
        author=Author("gbp", author_id, shown, display_name=shown),
        url=url,
        thread_id=name,
        metrics={"rating": rating} if rating else {},
        place=place,
    )
    answer = review.get("reviewReply")
    if not isinstance(answer, dict) or not str(answer.get("comment", "")).strip():
        return mention, None
    try:
        answered = google_time(str(answer.get("updateTime") or review["updateTime"]))
    except (KeyError, ValueError):
        answered = updated
    reply = BrandReply(
        platform="gbp",
        platform_id=reply_id(review_id),
        source=source,
        published_at=answered,
        author_handle=owner,
        in_reply_to=review_id,
        thread_id=name,
        to_author_id=author_id,
        text=str(answer["comment"]),
        url=url,
    )
    return mention, reply


# -- the source ------------------------------------------------------------------------------------------------------


def _is_time(value: Any) -> bool:
    """Whether a cursor's stored time still reads as one (a cursor edited by hand is read again from the top)."""
    try:
        google_time(str(value))
    except ValueError:
        return False
    return True


def _http_url(value: str) -> bool:
    return urlsplit(value).scheme in ("http", "https") and bool(urlsplit(value).netloc)


@dataclass
class _Read:
    """What one location's read found."""

    mentions: list[Mention] = field(default_factory=list)
    replies: list[BrandReply] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)  # newest-updated first
    newest: tuple[datetime, str] | None = None
    complete: bool = False  # read to the end of the list
    caught_up: bool = False  # reached what the last poll had seen
    average: float | None = None
    total: int | None = None


@dataclass
class GoogleBusinessSource:
    """The reviews of the brand's Google Business Profile locations, with the owner's answers."""

    kind: ClassVar[str] = "gbp"
    name: str
    #: The number in ``accounts/{account_id}`` (the Business Profile account, or location group, holding them).
    account_id: str = ""
    #: The numbers in ``locations/{id}``, one per shop.
    locations: list[str] = field(default_factory=list)
    #: Labels for the locations (id → "Milano Brera"), used in messages and health.
    location_names: dict[str, str] = field(default_factory=dict)
    #: Each location's reviews page on Google (id → link), given to its reviews as their link.
    location_urls: dict[str, str] = field(default_factory=dict)
    client_id: str = ""
    client_secret: SecretStr = field(default_factory=lambda: SecretStr(""), repr=False)
    refresh_token: SecretStr = field(default_factory=lambda: SecretStr(""), repr=False)
    token_uri: str = "https://oauth2.googleapis.com/token"
    base_url: str = "https://mybusiness.googleapis.com"
    #: The name the owner's answers are stored under (Google shows them as the business's response).
    owner_name: str = "Owner"
    page_size: int = 50
    max_pages: int = 5
    full_scan_every: int = 12
    max_full_pages: int = 100
    max_known: int = 5000
    timeout_seconds: float = 20.0

    def __post_init__(self) -> None:
        if not self.account_id.isdigit():
            raise ValueError(
                "account_id must be the number in accounts/{number} (the Business Profile account that holds the "
                'locations), e.g. account_id = "1234567890"'
            )
        if not self.locations or not all(isinstance(x, str) and x.isdigit() for x in self.locations):
            raise ValueError('locations must list the numbers in locations/{number}, e.g. locations = ["1111111111"]')
        if len(set(self.locations)) != len(self.locations):
            raise ValueError("locations lists a location twice: list each once")
        for option, mapping in (("location_names", self.location_names), ("location_urls", self.location_urls)):
            if stray := sorted(set(mapping) - set(self.locations)):
                raise ValueError(f"{option} names {', '.join(stray)}, which is not in locations: add it or remove it")
        if bad := sorted(k for k, v in self.location_urls.items() if not _http_url(v)):
            raise ValueError(f"location_urls: the link of {', '.join(bad)} must be an http(s) URL")
        if not self.client_id.strip():
            raise ValueError("client_id is required: the OAuth client's id (Google Cloud console > Credentials)")
        for secret in ("client_secret", "refresh_token"):
            value: SecretStr = getattr(self, secret)
            if not value.get_secret_value():
                raise ValueError(
                    f'{secret} is required, as a secret reference: {secret} = {{ env = "GBP_{secret.upper()}" }}'
                )
        for option in ("token_uri", "base_url"):
            if not _http_url(getattr(self, option)):
                raise ValueError(f"{option} must be an http(s) URL")
        if not self.owner_name.strip():
            raise ValueError("owner_name must not be empty: it is how the owner's answers are stored")
        if not 1 <= self.page_size <= 50:
            raise ValueError("page_size must be between 1 and 50 (Google's largest page)")
        if self.max_pages < 1 or self.max_full_pages < self.max_pages:
            raise ValueError("max_pages must be at least 1, and max_full_pages at least max_pages")
        if self.full_scan_every < 1:
            raise ValueError("full_scan_every must be at least 1 (1: every poll reads the whole list)")
        if self.max_known < 1:
            raise ValueError("max_known must be at least 1")
        if self.timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be more than 0")

    @cached_property
    def token(self) -> GoogleToken:
        """The access token, shared with the replier."""
        return GoogleToken(self.client_id, self.client_secret, self.refresh_token, self.token_uri, self.timeout_seconds)

    def label(self, location: str) -> str:
        """How messages name a location: its label and number, or the number."""
        name = self.location_names.get(location, "")
        return f"{name} (location {location})" if name else f"location {location}"

    def replier(self) -> GoogleBusinessReplier:
        """Answer reviews as the owner: the Google account that reads (scope business.manage) may also reply."""
        return GoogleBusinessReplier(
            token=self.token, base_url=self.base_url, timeout_seconds=self.timeout_seconds, account=self.owner_name
        )

    # -- polling ---------------------------------------------------------------------------------------------------

    def poll(self, cursor: Mapping[str, Any] | None, now: datetime) -> Poll:
        old = dict(cursor or {})
        newest = {k: str(v) for k, v in dict(old.get("newest") or {}).items() if k in self.locations and _is_time(v)}
        known = {k: [str(i) for i in v] for k, v in dict(old.get("known") or {}).items() if k in self.locations}
        since_full = int(old.get("since_full_scan", 0) or 0)
        full = since_full + 1 >= self.full_scan_every
        access = self._access_token(now)
        headers = {"Authorization": f"Bearer {access}", "Accept": "application/json"}
        mentions: list[Mention] = []
        replies: list[BrandReply] = []
        removed: list[str] = []
        heard: set[str] = set()
        answered: set[str] = set()
        behind = False
        shown: dict[str, Any] = {}
        with httpx.Client(timeout=self.timeout_seconds, headers=headers, trust_env=False) as client:
            for location in self.locations:
                whole = full or location not in newest
                read = self._read(client, location, None if whole else newest[location], whole, now)
                for mention in read.mentions:
                    if mention.platform_id not in heard:
                        heard.add(mention.platform_id)
                        mentions.append(mention)
                replies.extend(r for r in read.replies if r.platform_id not in answered)
                answered.update(r.platform_id for r in read.replies)
                before = known.get(location, [])
                if whole and read.complete:
                    present = set(read.ids)
                    removed.extend(f"gbp:{i}" for i in before if i not in present)
                    known[location] = list(dict.fromkeys(read.ids))[: self.max_known]
                else:
                    known[location] = list(dict.fromkeys(read.ids + before))[: self.max_known]
                if not whole and not (read.caught_up or read.complete):
                    behind = True
                if read.newest is not None and (
                    location not in newest or read.newest[0] > google_time(newest[location])
                ):
                    newest[location] = read.newest[1]
                shown[location] = {
                    "name": self.location_names.get(location, ""),
                    "average_rating": read.average,
                    "total_reviews": read.total,
                    **({} if not whole else {"read_to_the_end": read.complete}),
                }
        # A read that stopped at max_pages before reaching the last poll's newest review left a gap: the next poll
        # reads the whole list (a full scan), which fills it.
        since_full = self.full_scan_every if behind else (0 if full else since_full + 1)
        return Poll(
            mentions=tuple(mentions),
            replies=tuple(replies),
            cursor={"newest": newest, "known": known, "since_full_scan": since_full},
            details={"locations": shown, "full_scan": full, "behind": behind},
            removed=tuple(dict.fromkeys(removed)),
        )

    def _read(self, client: httpx.Client, location: str, since: str | None, whole: bool, now: datetime) -> _Read:
        """One location's reviews, newest-updated first: the whole list (up to ``max_full_pages``) or down to an hour
        before ``since`` (up to ``max_pages``)."""
        read = _Read()
        stop = google_time(since) - OVERLAP if since else None
        url = f"{self.base_url.rstrip('/')}/v4/accounts/{self.account_id}/locations/{location}/reviews"
        link = self.location_urls.get(location, "")
        params: dict[str, Any] = {"pageSize": self.page_size, "orderBy": "updateTime desc"}
        for _ in range(self.max_full_pages if whole else self.max_pages):
            body = self._get(client, url, params, location, now)
            if read.average is None and isinstance(body.get("averageRating"), int | float):
                read.average = float(body["averageRating"])
            if read.total is None and isinstance(body.get("totalReviewCount"), int):
                read.total = int(body["totalReviewCount"])
            listed = body.get("reviews")
            for review in listed if isinstance(listed, list) else []:
                if not isinstance(review, dict):
                    continue
                place = self.location_names.get(location, location)  # the cockpit's ratings are per place
                heard = read_review(review, self.name, link, self.owner_name, place)
                if heard is None:
                    continue
                mention, reply = heard
                updated_text = str(review["updateTime"])
                updated = google_time(updated_text)
                if stop is not None and updated < stop:
                    read.caught_up = True
                    return read
                if read.newest is None or updated > read.newest[0]:
                    read.newest = (updated, updated_text)
                read.ids.append(mention.platform_id)
                read.mentions.append(mention)
                if reply is not None:
                    read.replies.append(reply)
            following = body.get("nextPageToken")
            if not following:
                read.complete = True
                return read
            params = {**params, "pageToken": str(following)}
        return read

    def _access_token(self, now: datetime) -> str:
        try:
            return self.token.get(now)
        except TokenTrouble as trouble:
            raise SourceError(token_advice(trouble)) from None

    def _get(self, client: httpx.Client, url: str, params: Mapping[str, Any], location: str, now: datetime) -> dict:
        try:
            response = client.get(url, params=params)
        except httpx.TimeoutException:
            raise SourceError(
                f"Google Business Profile: no answer within {self.timeout_seconds:g} s; will retry"
            ) from None
        except httpx.HTTPError as error:
            raise SourceError(
                f"Google Business Profile could not be reached ({type(error).__name__}); will retry"
            ) from None
        problem = google_problem(response, now)
        if problem is not None:
            raise self._failure(problem, location)
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if not isinstance(body, dict):
            kind = response.headers.get("content-type", "no content type").split(";")[0]
            raise SourceError(
                f"Google Business Profile answered with a body that is not a JSON object (HTTP "
                f"{response.status_code}, {kind}); will retry"
            )
        return body

    def _failure(self, problem: GoogleProblem, location: str) -> SourceError:
        where = self.label(location)
        words = _scrub(problem.words, self.token.secrets)
        if problem.kind == "token":
            self.token.forget()
            return SourceError(
                f"Google refused the access token ({words}); a new one is fetched on the next poll. If this repeats, "
                "the refresh token was revoked: make a new one for the Google account that manages the locations "
                f"(scope {SCOPE}) and update the refresh_token secret"
            )
        if problem.kind == "rate_limited":
            assert problem.retry_at is not None
            return RateLimited(
                f"Google Business Profile quota exhausted ({words}); paused until {problem.retry_at:%H:%M} UTC. A "
                "Cloud project without approved Business Profile API access has a quota of 0: request access",
                problem.retry_at,
            )
        if problem.kind == "scope":
            return SourceError(
                f"Google: the refresh token lacks the scope {SCOPE} ({words}); make a new refresh token with that "
                "scope and update the refresh_token secret"
            )
        if problem.kind == "api_disabled":
            return SourceError(
                f"Google: the My Business API is not enabled for the OAuth client's Cloud project ({words}); enable "
                "mybusiness.googleapis.com in the Google Cloud console (the project needs approved Business Profile "
                "API access)"
            )
        if problem.kind == "permission":
            return SourceError(
                f"Google: the Google account cannot see the reviews of {where} in account {self.account_id} "
                f"({words}); make it an owner or manager of that location, or remove {location} from locations"
            )
        if problem.kind == "missing":
            return SourceError(
                f"Google has no {where} in account {self.account_id} ({words}); check account_id and locations "
                "(the numbers in accounts/…/locations/…)"
            )
        if problem.kind == "server":
            return SourceError(f"Google Business Profile failed ({problem.http}, {words}); will retry")
        return SourceError(f"Google Business Profile answered {problem.http} ({words}) for {where}")


def token_advice(trouble: TokenTrouble) -> str:
    """What to do when the refresh token could not be traded, in words for the source's health."""
    if trouble.kind == "grant":
        return (
            f"Google refused the refresh token ({trouble}): the Google account that manages the locations must "
            f"authorise again: make a new refresh token (OAuth consent with scope {SCOPE}) and update the "
            "refresh_token secret; a consent screen left in Testing makes refresh tokens expire after 7 days"
        )
    if trouble.kind == "client":
        return (
            f"Google refused the OAuth client ({trouble}): check client_id and client_secret (Google Cloud console > "
            "APIs & Services > Credentials)"
        )
    return f"Google's token endpoint: {trouble}; will retry"


# -- answering -------------------------------------------------------------------------------------------------------


@dataclass
class GoogleBusinessReplier:
    """Posts the owner's answer to a review (see `listener.replying.Replier`). Google keeps one reply per review: a
    second answer replaces the first, so sending the same text again never shows it twice."""

    token: GoogleToken = field(repr=False)
    base_url: str = "https://mybusiness.googleapis.com"
    timeout_seconds: float = 20.0
    #: The owner's name as its answers are stored (the source's ``owner_name``, as the poll stores them).
    account: str = "Owner"
    channel: str = field(default="gbp", init=False)

    def check(self, text: str) -> str:
        """Why Google would refuse ``text`` as the owner's reply, or "" when it can be posted."""
        if not text.strip():
            return "the reply is empty: write something to post"
        size = len(text.encode("utf-8"))
        if size > MAX_REPLY_BYTES:
            return (
                f"{size} bytes; Google allows {MAX_REPLY_BYTES} bytes (an accented letter counts 2, an emoji 4): "
                "shorten it"
            )
        return ""

    def cost_usd(self, text: str) -> float:
        """Business Profile API calls are free."""
        return 0.0

    def reply(self, mention: Mention, text: str, now: datetime) -> SentReply:
        """Put ``text`` as the owner's reply to the review (replacing any reply there). Raises `ReplyError`."""
        if problem := self.check(text):
            raise ReplyError("too_long" if text.strip() else "refused", problem)
        url = self._url(mention) + "/reply"
        with self._client(now) as client:
            try:
                response = client.put(url, json={"comment": text})
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol) as error:
                raise self._error("unavailable", f"Google could not be reached ({type(error).__name__})") from None
            except httpx.HTTPError as error:  # the request went out: Google may have stored the reply
                raise self._error(
                    "unknown",
                    f"Google: the reply got no answer ({type(error).__name__}, limit {self.timeout_seconds:g} s); it "
                    "may exist, so the review is looked up before any retry",
                ) from None
            trouble = google_problem(response, now)
            if trouble is not None:
                if response.status_code == 504:  # a gateway gave up waiting: Google may have stored it
                    raise self._error("unknown", "Google: the gateway timed out (504); the reply may exist")
                raise self._from_google(trouble)
        try:
            body = response.json()
            published = google_time(str(body["updateTime"]))
            posted = str(body.get("comment") or text)
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError):
            published, posted = now, text  # Google accepted it: report the reply that exists
        return SentReply(
            platform_id=reply_id(mention.platform_id), url=mention.url, text=posted, published_at=published
        )

    def find(self, mention: Mention, text: str, since: datetime, now: datetime) -> SentReply | None:
        """The owner's reply on the review, if it has ``text`` and was put at or after ``since`` (less a minute of
        clock skew); None when the review has another reply, none, or is gone. Raises `ReplyError`."""
        url = self._url(mention)
        with self._client(now) as client:
            try:
                response = client.get(url)
            except httpx.TimeoutException:
                raise self._error(
                    "unavailable", f"Google: no answer within {self.timeout_seconds:g} s; will look again"
                ) from None
            except httpx.HTTPError as error:
                raise self._error("unavailable", f"Google could not be reached ({type(error).__name__})") from None
        trouble = google_problem(response, now)
        if trouble is not None:
            if trouble.kind == "missing":
                return None
            raise self._from_google(trouble)
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise self._error("unavailable", "Google answered the review lookup with a body that is not JSON") from None
        answer = body.get("reviewReply") if isinstance(body, dict) else None
        if not isinstance(answer, dict) or not _same_text(str(answer.get("comment", "")), text):
            return None
        try:
            published = google_time(str(answer.get("updateTime", "")))
        except ValueError:
            return None
        if published < since - CLOCK_SKEW:
            return None
        return SentReply(
            platform_id=reply_id(mention.platform_id),
            url=mention.url,
            text=str(answer["comment"]),
            published_at=published,
        )

    # -- talking to Google -----------------------------------------------------------------------------------------

    def _url(self, mention: Mention) -> str:
        """The review's address, from the review name the poll stored as the mention's thread."""
        parts = mention.thread_id.split("/")
        shape = len(parts) == 6 and (parts[0], parts[2], parts[4]) == ("accounts", "locations", "reviews")
        if not shape or parts[5] != mention.platform_id or not all(parts):
            raise ReplyError("refused", f"{mention.key} is not a Google review this source polled (no review name)")
        return f"{self.base_url.rstrip('/')}/v4/{'/'.join(quote(p, safe='') for p in parts)}"

    def _client(self, now: datetime) -> httpx.Client:
        try:
            access = self.token.get(now)
        except TokenTrouble as trouble:
            if trouble.kind == "unavailable":
                raise self._error("unavailable", f"Google's token endpoint: {trouble}; nothing was posted") from None
            raise self._error("expired_token", token_advice(trouble)) from None
        headers = {"Authorization": f"Bearer {access}", "Accept": "application/json"}
        return httpx.Client(timeout=self.timeout_seconds, headers=headers, trust_env=False)

    def _from_google(self, trouble: GoogleProblem) -> ReplyError:
        words = trouble.words
        if trouble.kind == "token":
            self.token.forget()
            return self._error(
                "expired_token",
                f"Google refused the access token ({words}); if this repeats, make a new refresh token for the Google "
                "account that manages the location and update the refresh_token secret",
            )
        if trouble.kind == "rate_limited":
            retry_at = trouble.retry_at
            when = f"{retry_at:%H:%M} UTC" if retry_at else "later"
            return self._error("rate_limited", f"Google asks us to wait ({words}); trying again at {when}", retry_at)
        if trouble.kind == "scope":
            return self._error("permission", f"the refresh token lacks the scope {SCOPE} ({words}): make a new one")
        if trouble.kind in ("permission", "api_disabled"):
            return self._error(
                "permission",
                f"Google: the Google account may not answer this location's reviews ({words}); it must be an owner or "
                "manager of the location, and mybusiness.googleapis.com enabled in the Cloud project",
            )
        if trouble.kind == "missing":
            return self._error(
                "deleted", f"the review is gone from Google (deleted by its author, or removed) ({words})"
            )
        if trouble.kind == "server":
            return self._error("unavailable", f"Google failed ({words}); nothing was posted")
        return self._error("refused", f"Google refused the reply ({words})")

    def _error(self, problem: ReplyProblem, message: str, retry_at: datetime | None = None) -> ReplyError:
        """A `ReplyError` whose message cannot carry a secret, whatever Google echoed."""
        return ReplyError(problem, _scrub(message, self.token.secrets), retry_at)
