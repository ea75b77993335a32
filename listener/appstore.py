"""`appstore`: the customer reviews of the brand's iOS apps, and its developer responses, through the App Store
Connect API.

Each poll reads every configured app's reviews newest first (``GET /v1/apps/{id}/customerReviews``, with the
response included), following ``links.next`` down to a day before the newest review the last poll saw: a review can
reach the API after its ``createdDate``, and a review already stored is stored once. A second, cheaper pass lists the
reviews of the last ``recheck_days`` that have a published response (``exists[publishedResponse]=true``), so an
answer typed in App Store Connect to a review heard earlier still marks it answered.

Authentication is Apple's: a JWT signed ES256 with the team's API key (the .p8 file), valid at most 20 minutes,
reused until shortly before it expires and sent only in the Authorization header. A refused reused token is
replaced by a freshly signed one once before the source gives up.

A developer response (published, or still waiting to be published) is the brand's reply to its review; there is at
most one per review, and `AppStoreReplier` writes it (``POST /v1/customerReviewResponses`` creates or overwrites).
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr

from listener.model import Author, BrandReply, Mention, Poll, RateLimited, SourceError
from listener.replying import ReplyError, ReplyProblem, SentReply

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.appstoreconnect.apple.com"
#: The ``aud`` every App Store Connect API token carries.
AUDIENCE = "appstoreconnect-v1"
#: Apple refuses tokens that expire more than 20 minutes ahead.
MAX_TOKEN_MINUTES = 20
#: A token is replaced when less than this is left of its life (a poll's requests must not outlive it).
REFRESH_MARGIN = timedelta(minutes=2)
#: The attributes (and the relationship) of a review that the source reads.
REVIEW_FIELDS = "rating,title,body,reviewerNickname,createdDate,territory,response"
#: The attributes of a developer response that the source and the replier read.
RESPONSE_FIELDS = "responseBody,lastModifiedDate,state"
#: The most reviews Apple returns in one page.
MAX_PAGE_SIZE = 200
#: The most App Store versions of an app whose reviews a poll asks for.
MAX_VERSIONS = 10
#: Response states that answer a review: published, or accepted and waiting for the App Store to publish it.
ANSWERING_STATES = ("PUBLISHED", "PENDING_PUBLISH")
#: How long a 429 pauses the source when Apple gives no Retry-After: its limit is a rolling hour, with no reset time.
RATE_LIMIT_PAUSE = timedelta(minutes=15)
#: At most this much of Apple's own words goes into a message.
APPLE_WORDS = 200
#: The main language of a territory, where it is beyond doubt (CAN, CHE, BEL... are not).
TERRITORY_LANGUAGES = {"ITA": "it", "SMR": "it", "USA": "en", "GBR": "en", "IRL": "en", "AUS": "en", "NZL": "en"}
#: The longest developer response, in characters (Apple publishes none; this is what App Store Connect accepts).
MAX_RESPONSE_CHARS = 5970
#: How far before ``since`` `AppStoreReplier.find` still accepts our response: Apple's clock and ours disagree.
CLOCK_SKEW = timedelta(minutes=1)

KEY_ID = re.compile(r"[A-Z0-9]{10}")
#: An App Store territory code (ISO 3166-1 alpha-3, "ITA").
TERRITORY = re.compile(r"[A-Z]{3}")
ISSUER_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
KEY_HELP = (
    "private_key must be the App Store Connect API key you downloaded (AuthKey_<key id>.p8: an EC P-256 private "
    'key in PEM, "-----BEGIN PRIVATE KEY-----"), as a secret reference: '
    'private_key = { file = "/run/secrets/asc_key.p8" }'
)


def load_key(private_key: SecretStr) -> ec.EllipticCurvePrivateKey:
    """The team key from the .p8 text, or ValueError saying what to give (never what was given)."""
    pem = private_key.get_secret_value().strip().replace("\\n", "\n")  # an env var may carry "\n" escapes
    if not pem:
        raise ValueError(f"private_key is required: {KEY_HELP}")
    if "-----BEGIN" not in pem:
        raise ValueError(f"private_key is not PEM text (a path or an id?): {KEY_HELP}")
    try:
        key = serialization.load_pem_private_key(pem.encode("utf-8"), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError(f"private_key cannot be read as an unencrypted private key: {KEY_HELP}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"private_key is not an EC P-256 key, so it cannot sign ES256: {KEY_HELP}")
    return key


class ConnectToken:
    """The App Store Connect API's bearer token: a JWT signed ES256 with the team key, reused until shortly before it
    expires. Shared by a source and its replier; safe across threads (the web app sends while the daemon polls)."""

    def __init__(self, issuer_id: str, key_id: str, key: ec.EllipticCurvePrivateKey, lifetime: timedelta) -> None:
        self.issuer_id = issuer_id
        self.key_id = key_id
        self._key = key
        self.lifetime = lifetime
        self._token = ""
        self._issued = 0
        self._expires = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ConnectToken(issuer_id={self.issuer_id!r}, key_id={self.key_id!r})"

    def bearer(self, now: datetime, fresh: bool = False) -> tuple[str, bool]:
        """A token valid at ``now``, and whether it was signed just now (a refused fresh token is not retried)."""
        moment = int(now.timestamp())
        with self._lock:
            usable = self._issued - 60 <= moment < self._expires - int(REFRESH_MARGIN.total_seconds())
            if self._token and usable and not fresh:
                return self._token, False
            expires = moment + int(self.lifetime.total_seconds())
            claims = {"iss": self.issuer_id, "iat": moment, "exp": expires, "aud": AUDIENCE}
            headers = {"kid": self.key_id, "typ": "JWT"}
            self._token = jwt.encode(claims, self._key, algorithm="ES256", headers=headers)
            self._issued, self._expires = moment, expires
            return self._token, True

    def scrub(self, text: str) -> str:
        """``text`` without the current token, whatever a server echoed."""
        return text.replace(self._token, "[token]") if self._token else text


def send(
    client: httpx.Client,
    token: ConnectToken,
    method: str,
    url: str,
    clock: Callable[[], datetime],
    **options: Any,
) -> httpx.Response:
    """One request with the bearer token. A 401 to a reused token is sent once more with a freshly signed one: the
    server's clock may be ahead of ours, and a 401 means nothing was done (a write included)."""
    bearer, minted = token.bearer(clock())
    response = client.request(method, url, headers={"Authorization": f"Bearer {bearer}"}, **options)
    if response.status_code == 401 and not minted:
        bearer, _ = token.bearer(clock(), fresh=True)
        response = client.request(method, url, headers={"Authorization": f"Bearer {bearer}"}, **options)
    return response


def apple_time(value: str) -> datetime:
    """Apple's ``2026-02-28T10:15:00-08:00`` (or with ``Z``, or fractions of a second) as an aware datetime."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no UTC offset")
    return moment


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one: Apple's documents are read, never trusted."""
    return value if isinstance(value, dict) else {}


def apple_body(response: httpx.Response) -> Any:
    """The JSON Apple answered, or None when the body is not JSON (a proxy's error page)."""
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


@dataclass(frozen=True, slots=True)
class AppleProblem:
    """An App Store Connect error answer: the status, the first error's ``code``, and Apple's words (at most 200
    characters), read once for the source and the replier alike."""

    status: int
    code: str
    words: str
    rate_limit: str = ""  # the X-Rate-Limit header, for messages
    retry_after: str = ""  # the Retry-After header, when a 429 carried one

    @property
    def shown(self) -> str:
        return f"{self.code}: {self.words}" if self.code and self.words else self.code or self.words


def apple_problem(response: httpx.Response, body: Any) -> AppleProblem:
    """What Apple said in ``{"errors": [{"status", "code", "title", "detail"}]}``, however little it said."""
    errors = body.get("errors") if isinstance(body, dict) else None
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    code = str(first.get("code", ""))
    words = str(first.get("detail") or first.get("title") or "")[:APPLE_WORDS]
    if not first:
        words = f"HTTP {response.status_code}, no App Store Connect error in the body"
    headers = response.headers
    return AppleProblem(
        response.status_code, code, words, headers.get("x-rate-limit", ""), headers.get("retry-after", "")
    )


def rate_limit_remaining(headers: Mapping[str, str]) -> int | None:
    """``user-hour-rem`` from ``X-Rate-Limit: user-hour-lim:3600;user-hour-rem:0;``, when Apple sent it."""
    for part in headers.get("x-rate-limit", "").split(";"):
        name, _, value = part.partition(":")
        if name.strip() == "user-hour-rem" and value.strip().isdigit():
            return int(value.strip())
    return None


def retry_time(retry_after: str, now: datetime) -> datetime:
    """When to try again after a 429: ``Retry-After`` (seconds or a date, at most an hour), else 15 minutes (Apple's
    limit is a rolling hour and names no reset time)."""
    value = retry_after.strip()
    wait = RATE_LIMIT_PAUSE
    if value.isdigit():
        wait = timedelta(seconds=int(value))
    elif value:
        try:
            wait = email.utils.parsedate_to_datetime(value) - now
        except (TypeError, ValueError):
            wait = RATE_LIMIT_PAUSE
    return now + min(max(wait, timedelta(seconds=1)), timedelta(hours=1))


def same_text(a: str, b: str) -> bool:
    """Equal once Unicode-normalised and with runs of whitespace collapsed (a response may come back re-spaced)."""

    def norm(text: str) -> str:
        return " ".join(unicodedata.normalize("NFC", text).split())

    return norm(a) == norm(b)


def reviewer(app_id: str, nickname: str) -> Author:
    """The author of a review. Apple gives a nickname and no id, so the id is derived from the app and the
    nickname: the same nickname on the same app is the same author across polls and restarts (on two apps, two)."""
    name = nickname.strip()
    digest = hashlib.sha256(f"{app_id}\n{name}".encode()).hexdigest()[:16]
    shown = name or "someone on the App Store"
    return Author("appstore", f"{app_id}:{digest}", shown, display_name=shown)


@dataclass
class AppStoreSource:
    """The customer reviews of the brand's apps on the App Store, with the developer responses that answer them."""

    kind: ClassVar[str] = "appstore"
    name: str
    issuer_id: str = ""
    key_id: str = ""
    private_key: SecretStr = field(default_factory=lambda: SecretStr(""), repr=False)
    apps: list[str] = field(default_factory=list)
    app_names: dict[str, str] = field(default_factory=dict)
    #: How developer responses are stored as the brand's replies (the App Store shows "Developer Response").
    account: str = "Developer Response"
    #: Answer from passaparola with the same key (its role must be Admin, App Manager or Customer Support).
    answering: bool = True
    base_url: str = DEFAULT_BASE_URL
    page_size: int = MAX_PAGE_SIZE
    max_pages: int = 5
    backfill_days: int = 30
    overlap_hours: int = 24
    recheck_days: int = 14
    token_minutes: int = MAX_TOKEN_MINUTES
    timeout_seconds: float = 20.0
    #: Learn each review's app version: a review names none, so the newest this many App Store versions of each app
    #: are asked for their reviews (``GET /v1/appStoreVersions/{id}/customerReviews``), a request or more each per
    #: poll. 0 asks nothing: the reviews keep only their territory.
    versions: int = 0

    def __post_init__(self) -> None:
        self.issuer_id, self.key_id = self.issuer_id.strip(), self.key_id.strip()
        if not ISSUER_ID.fullmatch(self.issuer_id):
            raise ValueError(
                "issuer_id must be the team's Issuer ID, a UUID shown above the keys in App Store Connect "
                "(Users and Access > Integrations > App Store Connect API)"
            )
        if not KEY_ID.fullmatch(self.key_id):
            raise ValueError("key_id must be the API key's 10-character Key ID (the <key id> of AuthKey_<key id>.p8)")
        key = load_key(self.private_key)
        self.apps = [str(app).strip() for app in self.apps]
        if not self.apps or not all(app.isdigit() for app in self.apps):
            raise ValueError(
                'apps must list the apps\' numeric Apple IDs as strings, e.g. apps = ["1234567890"] '
                "(App Store Connect > the app > App Information > Apple ID)"
            )
        if unknown := sorted(set(self.app_names) - set(self.apps)):
            raise ValueError(f"app_names names apps that are not in apps: {', '.join(unknown)}")
        if urlsplit(self.base_url).scheme not in ("http", "https"):
            raise ValueError("base_url must be an http(s) URL")
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        if not 1 <= self.max_pages <= 50:
            raise ValueError("max_pages must be between 1 and 50")
        if not 1 <= self.token_minutes <= MAX_TOKEN_MINUTES:
            raise ValueError(f"token_minutes must be between 1 and {MAX_TOKEN_MINUTES}: Apple refuses longer tokens")
        if self.backfill_days < 1 or self.overlap_hours < 0 or self.recheck_days < 0:
            raise ValueError("backfill_days must be at least 1, overlap_hours and recheck_days at least 0")
        if not 0 <= self.versions <= MAX_VERSIONS:
            raise ValueError(f"versions must be between 0 (the app version is not read) and {MAX_VERSIONS}")
        self._token = ConnectToken(self.issuer_id, self.key_id, key, timedelta(minutes=self.token_minutes))
        self._replier: AppStoreReplier | None = None

    def label(self, app_id: str) -> str:
        """How messages name an app: its label and id, or the id alone."""
        return f"{self.app_names[app_id]} ({app_id})" if app_id in self.app_names else app_id

    def replier(self) -> AppStoreReplier | None:
        """Write developer responses with the key this source reads with, unless ``answering`` is off."""
        if not self.answering:
            return None
        if self._replier is None:
            self._replier = AppStoreReplier(
                token=self._token, base_url=self.base_url, timeout_seconds=self.timeout_seconds, account=self.account
            )
        return self._replier

    # -- polling ---------------------------------------------------------------------------------

    def poll(self, cursor: Mapping[str, Any] | None, now: datetime) -> Poll:
        started = time.monotonic()

        def clock() -> datetime:  # the token must be valid when each request leaves, not only at the start
            return now + timedelta(seconds=time.monotonic() - started)

        newest = self._newest(cursor)
        reviews: dict[str, tuple[str, dict[str, Any]]] = {}
        responses: dict[str, dict[str, Any]] = {}
        capped: list[str] = []
        remaining: list[int] = []
        with httpx.Client(timeout=self.timeout_seconds, trust_env=False) as client:
            for app in self.apps:
                seen = newest.get(app)
                floor = (
                    apple_time(seen) - timedelta(hours=self.overlap_hours)
                    if seen
                    else now - timedelta(days=self.backfill_days)
                )
                top, complete = self._read(client, app, floor, {}, clock, reviews, responses, remaining)
                if not complete:
                    capped.append(app)
                if top is not None and (seen is None or top > apple_time(seen)):
                    newest[app] = top.isoformat()
                if self.recheck_days:
                    answered = {"exists[publishedResponse]": "true"}
                    since = now - timedelta(days=self.recheck_days)
                    self._read(client, app, since, answered, clock, reviews, responses, remaining)
            version_of, unversioned = self._versions(client, reviews, clock, remaining)
        mentions, replies = self._heard(reviews, responses, version_of)
        details: dict[str, Any] = {"apps": len(self.apps), "reviews_read": len(reviews)}
        if unversioned:
            details["versions_unread"] = unversioned
        if remaining:
            details["rate_limit_remaining"] = remaining[-1]
        if capped:
            details["capped"] = capped
            log.warning(
                "appstore %s: more new reviews than max_pages=%d pages of %d for %s; older ones of this stretch are "
                "not read",
                self.name,
                self.max_pages,
                self.page_size,
                ", ".join(self.label(a) for a in capped),
            )
        return Poll(
            mentions=tuple(mentions),
            replies=tuple(replies),
            cursor={"newest": {app: newest[app] for app in self.apps if app in newest}},
            details=details,
        )

    def _newest(self, cursor: Mapping[str, Any] | None) -> dict[str, str]:
        """The newest ``createdDate`` stored for each app; one that cannot be read counts as none (and is logged)."""
        stored = (cursor or {}).get("newest")
        newest: dict[str, str] = {}
        for app, value in (stored if isinstance(stored, dict) else {}).items():
            try:
                apple_time(str(value))
            except ValueError:
                log.warning("appstore %s: unreadable cursor %r for app %s; reading it as new", self.name, value, app)
                continue
            newest[str(app)] = str(value)
        return newest

    def _read(
        self,
        client: httpx.Client,
        app: str,
        floor: datetime,
        extra: Mapping[str, str],
        clock: Callable[[], datetime],
        reviews: dict[str, tuple[str, dict[str, Any]]],
        responses: dict[str, dict[str, Any]],
        remaining: list[int],
    ) -> tuple[datetime | None, bool]:
        """Read ``app``'s reviews newest first down to ``floor``, following ``links.next`` (which carries the query
        and Apple's ``cursor``) at most ``max_pages`` times: the newest ``createdDate`` seen, and whether the reading
        reached ``floor`` or the end of the list."""
        url = f"{self.base_url.rstrip('/')}/v1/apps/{app}/customerReviews"
        query: Mapping[str, str] | None = {
            "sort": "-createdDate",
            "limit": str(self.page_size),
            "include": "response",
            "fields[customerReviews]": REVIEW_FIELDS,
            "fields[customerReviewResponses]": RESPONSE_FIELDS,
            **extra,
        }
        top: datetime | None = None
        for _ in range(self.max_pages):
            body = self._get(client, url, query, app, clock, remaining)
            for item in body.get("included") or []:
                if isinstance(item, dict) and item.get("type") == "customerReviewResponses" and item.get("id"):
                    responses[str(item["id"])] = item
            for item in body["data"]:
                when = self._created(item)
                if when is None:
                    continue
                if when < floor:
                    return top, True
                top = when if top is None or when > top else top
                reviews[str(item["id"])] = (app, item)  # the later reading of a review knows more of its answer
            links = as_dict(body.get("links"))
            if not links.get("next"):
                return top, True
            url, query = self._next(str(links["next"])), None  # the link's own query, cursor included
        return top, False

    def _created(self, item: Any) -> datetime | None:
        """A review's ``createdDate``, or None (logged) for an item that is not a review Apple could have sent."""
        if not isinstance(item, dict) or item.get("type") != "customerReviews" or not item.get("id"):
            log.warning("appstore %s: skipped an item that is not a customer review", self.name)
            return None
        attributes = as_dict(item.get("attributes"))
        try:
            return apple_time(str(attributes.get("createdDate", "")))
        except ValueError:
            log.warning("appstore %s: review %s has no readable createdDate; skipped", self.name, item["id"])
            return None

    def _versions(
        self,
        client: httpx.Client,
        reviews: Mapping[str, tuple[str, dict[str, Any]]],
        clock: Callable[[], datetime],
        remaining: list[int],
    ) -> tuple[dict[str, str], str]:
        """Each heard review's app version (``versionString``), where one of the app's newest `versions` App Store
        versions lists it; and, when Apple refused to say, why (the reviews are kept without a version)."""
        found: dict[str, str] = {}
        refused: list[str] = []
        if not self.versions:
            return found, ""
        for app in self.apps:
            heard = {
                rid: apple_time(str(item["attributes"]["createdDate"]))
                for rid, (of, item) in reviews.items()
                if of == app
            }
            if not heard:
                continue
            try:
                for version_id, version in self._newest_versions(client, app, clock, remaining):
                    url = f"{self.base_url.rstrip('/')}/v1/appStoreVersions/{version_id}/customerReviews"
                    query: Mapping[str, str] | None = {
                        "sort": "-createdDate",
                        "limit": str(self.page_size),
                        "fields[customerReviews]": "createdDate",
                    }
                    for _ in range(self.max_pages):
                        body = self._get(client, url, query, app, clock, remaining)
                        dates = [self._created(item) for item in body["data"]]
                        for item, when in zip(body["data"], dates, strict=True):
                            if when is not None and str(item["id"]) in heard:
                                found[str(item["id"])] = version
                        links = as_dict(body.get("links"))
                        if not links.get("next") or any(d is not None and d < min(heard.values()) for d in dates):
                            break
                        url, query = self._next(str(links["next"])), None
            except SourceError as error:  # the reviews are what matters: they are kept, without their version
                log.warning("appstore %s: no app versions for %s: %s", self.name, self.label(app), error)
                refused.append(str(error))
        return found, "; ".join(refused)

    def _newest_versions(
        self, client: httpx.Client, app: str, clock: Callable[[], datetime], remaining: list[int]
    ) -> list[tuple[str, str]]:
        """The app's newest `versions` App Store versions, as (id, ``versionString``), newest ``createdDate`` first."""
        url = f"{self.base_url.rstrip('/')}/v1/apps/{app}/appStoreVersions"
        query = {"fields[appStoreVersions]": "versionString,createdDate", "limit": str(MAX_PAGE_SIZE)}
        listed: list[tuple[datetime, str, str]] = []
        for item in self._get(client, url, query, app, clock, remaining)["data"]:
            attributes = as_dict(item.get("attributes")) if isinstance(item, dict) else {}
            version = str(attributes.get("versionString") or "").strip()
            try:
                created = apple_time(str(attributes.get("createdDate", "")))
            except ValueError:
                continue
            if item.get("type") == "appStoreVersions" and item.get("id") and version:
                listed.append((created, str(item["id"]), version))
        listed.sort(reverse=True)
        return [(ident, version) for _, ident, version in listed[: self.versions]]

    def _heard(
        self,
        reviews: Mapping[str, tuple[str, dict[str, Any]]],
        responses: Mapping[str, dict[str, Any]],
        version_of: Mapping[str, str],
    ) -> tuple[list[Mention], list[BrandReply]]:
        mentions: list[Mention] = []
        replies: list[BrandReply] = []
        for review_id, (app, item) in reviews.items():
            attributes = as_dict(item.get("attributes"))
            created = apple_time(str(attributes["createdDate"]))
            title, body = str(attributes.get("title") or "").strip(), str(attributes.get("body") or "").strip()
            rating = attributes.get("rating")
            territory = str(attributes.get("territory") or "")
            author = reviewer(app, str(attributes.get("reviewerNickname") or ""))
            mentions.append(
                Mention(
                    platform="appstore",
                    platform_id=review_id,
                    source=self.name,
                    text="\n".join(part for part in (title, body) if part),
                    published_at=created,
                    author=author,
                    thread_id=review_id,
                    language_hint=TERRITORY_LANGUAGES.get(territory, ""),
                    metrics={"rating": rating} if isinstance(rating, int) and 1 <= rating <= 5 else {},
                    place=self.app_names.get(app, app),  # the cockpit's ratings are per app
                    facts={
                        **({"territory": territory} if TERRITORY.fullmatch(territory) else {}),
                        **({"app_version": version_of[review_id]} if review_id in version_of else {}),
                    },
                )
            )
            if (answer := self._answer(item, responses, review_id, author)) is not None:
                replies.append(answer)
        return mentions, replies

    def _answer(
        self, item: Mapping[str, Any], responses: Mapping[str, dict[str, Any]], review_id: str, author: Author
    ) -> BrandReply | None:
        """The developer response to a review, as the brand's reply, when it was included and answers it."""
        linked = as_dict(as_dict(item.get("relationships")).get("response")).get("data")
        response = responses.get(str(linked.get("id", ""))) if isinstance(linked, dict) else None
        if response is None:
            return None
        attributes = as_dict(response.get("attributes"))
        state = str(attributes.get("state", ""))
        if state not in ANSWERING_STATES:
            log.info("appstore %s: response %s is %s; not counted as an answer", self.name, response["id"], state)
            return None
        try:
            published = apple_time(str(attributes.get("lastModifiedDate", "")))
        except ValueError:
            log.warning("appstore %s: response %s has no readable lastModifiedDate", self.name, response["id"])
            return None
        return BrandReply(
            platform="appstore",
            platform_id=str(response["id"]),
            source=self.name,
            published_at=published,
            author_handle=self.account,
            in_reply_to=review_id,
            thread_id=review_id,
            to_author_id=author.platform_id,
            text=str(attributes.get("responseBody") or ""),
        )

    # -- talking to Apple ------------------------------------------------------------------------

    def _get(
        self,
        client: httpx.Client,
        url: str,
        params: Mapping[str, str] | None,
        app: str,
        clock: Callable[[], datetime],
        remaining: list[int],
    ) -> dict[str, Any]:
        try:
            response = send(client, self._token, "GET", url, clock, params=params)
        except httpx.TimeoutException:
            raise SourceError(
                f"App Store Connect API: no answer within {self.timeout_seconds:g} s; will retry"
            ) from None
        except httpx.HTTPError as error:
            raise SourceError(f"App Store Connect API could not be reached ({type(error).__name__})") from None
        if (left := rate_limit_remaining(response.headers)) is not None:
            remaining.append(left)
        body = apple_body(response)
        if response.status_code == 200 and isinstance(body, dict) and isinstance(body.get("data"), list):
            return body
        if response.status_code == 200:
            kind = response.headers.get("content-type", "no content type")
            raise SourceError(f"App Store Connect API answered a body that is not a list of reviews (HTTP 200, {kind})")
        raise self._refusal(apple_problem(response, body), app, clock())

    def _refusal(self, problem: AppleProblem, app: str, now: datetime) -> SourceError:
        words = self._token.scrub(problem.shown)
        if problem.status == 401:
            return SourceError(
                f"App Store Connect refused the API token ({words}): check issuer_id and key_id against Users and "
                "Access > Integrations > App Store Connect API; a revoked key needs a new key, its .p8 file in the "
                "secret and its key_id"
            )
        if problem.status == 403:
            return SourceError(
                f"App Store Connect API: the key may not read the customer reviews of app {self.label(app)} ({words}); "
                "give the key a role that can see them (Admin, App Manager or Customer Support)"
            )
        if problem.status == 404:
            return SourceError(
                f"App Store Connect has no app {self.label(app)} for this key's team ({words}): apps lists the apps' "
                "Apple IDs (App Store Connect > the app > App Information)"
            )
        if problem.status == 429:
            retry_at = retry_time(problem.retry_after, now)
            return RateLimited(
                f"App Store Connect API rate limit reached ({problem.rate_limit or words}); paused until "
                f"{retry_at.astimezone(UTC):%H:%M} UTC",
                retry_at,
            )
        if problem.status >= 500:
            return SourceError(f"App Store Connect API failed (HTTP {problem.status}, {words}); will retry")
        return SourceError(f"App Store Connect API refused the request (HTTP {problem.status}, {words})")

    def _next(self, link: str) -> str:
        """A ``links.next`` URL, sent to ``base_url`` whatever host it names (a proxy, a test server): the token
        never travels anywhere else."""
        base, target = urlsplit(self.base_url), urlsplit(link)
        if (target.scheme, target.netloc) == (base.scheme, base.netloc):
            return link
        return urlunsplit(base._replace(path=base.path.rstrip("/") + target.path, query=target.query))


@dataclass
class AppStoreReplier:
    """Writes the brand's developer response to an App Store review (see `listener.replying.Replier`).

    A review has at most one response: posting again overwrites it, so a repeated send replaces our own text with
    itself rather than answering twice.
    """

    token: ConnectToken = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    timeout_seconds: float = 20.0
    account: str = "Developer Response"
    channel: str = field(default="appstore", init=False)

    def check(self, text: str) -> str:
        """Why App Store Connect would refuse ``text`` as a response, or "" when it can be posted."""
        if not text.strip():
            return "the response is empty: write something to post"
        if len(text) > MAX_RESPONSE_CHARS:
            return f"{len(text)} characters; the App Store allows {MAX_RESPONSE_CHARS}: shorten it"
        return ""

    def cost_usd(self, text: str) -> float:
        """The App Store Connect API is free."""
        return 0.0

    def reply(self, mention: Mention, text: str, now: datetime) -> SentReply:
        """Post ``text`` as the developer response to the review ``mention`` is (it overwrites any earlier one).
        Apple publishes it after a while: until then its state is PENDING_PUBLISH."""
        if problem := self.check(text):
            raise ReplyError("too_long" if text.strip() else "refused", problem)
        payload = {
            "data": {
                "type": "customerReviewResponses",
                "attributes": {"responseBody": text},
                "relationships": {"review": {"data": {"type": "customerReviews", "id": mention.platform_id}}},
            }
        }
        url = f"{self.base_url.rstrip('/')}/v1/customerReviewResponses"
        with self._client() as client:
            try:
                response = send(client, self.token, "POST", url, lambda: now, json=payload)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol) as error:
                raise self._error(
                    "unavailable", f"App Store Connect could not be reached ({type(error).__name__})"
                ) from None
            except httpx.HTTPError as error:  # the request went out: Apple may have stored the response
                raise self._error(
                    "unknown",
                    f"App Store Connect: the response got no answer ({type(error).__name__}, limit "
                    f"{self.timeout_seconds:g} s); it may exist, so the review is looked up before any retry",
                ) from None
        body = apple_body(response)
        if response.status_code not in (200, 201):
            if response.status_code == 504:  # a gateway gave up waiting: Apple may have stored it
                raise self._error("unknown", "App Store Connect: the gateway timed out (504); the response may exist")
            raise self._from_apple(apple_problem(response, body), now)
        sent = self._sent(body, now)
        if sent is None:
            raise self._error("unknown", "App Store Connect accepted the response without naming it")
        return sent if sent.text else replace(sent, text=text)

    def find(self, mention: Mention, text: str, since: datetime, now: datetime) -> SentReply | None:
        """The review's response when it is ours with ``text``, last modified at or after ``since`` (less a minute of
        clock skew); None when the review has no response, or another one. Raises `ReplyError`."""
        url = f"{self.base_url.rstrip('/')}/v1/customerReviews/{mention.platform_id}/response"
        with self._client() as client:
            try:
                response = send(
                    client,
                    self.token,
                    "GET",
                    url,
                    lambda: now,
                    params={"fields[customerReviewResponses]": RESPONSE_FIELDS},
                )
            except httpx.TimeoutException:
                raise self._error(
                    "unavailable", f"App Store Connect: no answer within {self.timeout_seconds:g} s; will look again"
                ) from None
            except httpx.HTTPError as error:
                raise self._error(
                    "unavailable", f"App Store Connect could not be reached ({type(error).__name__})"
                ) from None
        body = apple_body(response)
        if response.status_code == 404:
            return None  # no response to this review (or no review): nothing of ours is there
        if response.status_code != 200:
            raise self._from_apple(apple_problem(response, body), now)
        found = self._sent(body, now, dated=True)
        if found is None or not same_text(found.text, text) or found.published_at < since - CLOCK_SKEW:
            return None
        return found

    # -- helpers ---------------------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        return httpx.Client(timeout=self.timeout_seconds, trust_env=False)

    @staticmethod
    def _sent(body: Any, now: datetime, dated: bool = False) -> SentReply | None:
        """A ``customerReviewResponses`` document as a `SentReply`; without ``lastModifiedDate`` it is dated ``now``
        (or, when ``dated``, not taken at all)."""
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or data.get("type") != "customerReviewResponses" or not data.get("id"):
            return None
        attributes = as_dict(data.get("attributes"))
        try:
            published = apple_time(str(attributes.get("lastModifiedDate", "")))
        except ValueError:
            if dated:
                return None
            published = now
        return SentReply(
            platform_id=str(data["id"]), url="", text=str(attributes.get("responseBody") or ""), published_at=published
        )

    def _from_apple(self, problem: AppleProblem, now: datetime) -> ReplyError:
        words = problem.shown
        if problem.status == 401:
            return self._error(
                "expired_token",
                f"App Store Connect refused the API token ({words}): check issuer_id and key_id, and that the key is "
                "not revoked (a revoked key needs a new .p8 file and key_id)",
            )
        if problem.status == 403:
            return self._error(
                "permission",
                f"App Store Connect: the API key may not answer reviews ({words}); its role must be Admin, App Manager "
                "or Customer Support",
            )
        if problem.status == 404 or problem.code.startswith("ENTITY_ERROR.RELATIONSHIP"):
            return self._error("deleted", f"the review is gone or not visible to this key ({words})")
        if problem.status == 429:
            retry_at = retry_time(problem.retry_after, now)
            return self._error(
                "rate_limited",
                f"App Store Connect asks us to wait ({problem.rate_limit or words}); trying again at "
                f"{retry_at.astimezone(UTC):%H:%M} UTC",
                retry_at,
            )
        if problem.status >= 500:
            return self._error(
                "unavailable", f"App Store Connect failed (HTTP {problem.status}, {words}); nothing was posted"
            )
        return self._error("refused", f"App Store Connect refused the response (HTTP {problem.status}, {words})")

    def _error(self, problem: ReplyProblem, message: str, retry_at: datetime | None = None) -> ReplyError:
        """A `ReplyError` whose message cannot carry the token, whatever Apple echoed."""
        return ReplyError(problem, self.token.scrub(message), retry_at)
