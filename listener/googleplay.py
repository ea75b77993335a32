"""`googleplay`: the reviews of the brand's Android apps, and the developer's replies, through the Google Play
Developer API (Android Publisher v3, "Reply to Reviews").

Auth is a Google Cloud service account's JSON key: google-auth reads the key and signs the JWT assertion (RS256,
``aud`` the key's ``token_uri``, the ``androidpublisher`` scope), which goes to the key's ``token_uri`` for an access
token; the token is kept until two minutes before it expires and travels only in the Authorization header. The token
request is made here rather than by ``Credentials.refresh``: google-auth retries a failed token request with sleeps
(a poll never sleeps) and stamps the assertion with its own clock, where the poll's ``now`` is the one clock here.

Play lists only the reviews created or changed in the last seven days, newest first (by the user's comment's
``lastModified``), and only reviews with text. Each poll reads every package's list down to ``overlap_hours`` before
the newest review the last poll saw: what changed since is heard again (an edited review replaces the stored text and
stars; a reply typed in Play Console is heard as the brand's answer). The developer's reply is a `BrandReply`.

Answering (`GooglePlayReplier`): ``POST .../reviews/{reviewId}:reply``; a reply replaces the previous one.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qs, quote, urlencode, urlsplit
from zoneinfo import ZoneInfo

import httpx
from google.auth import jwt as google_jwt
from google.oauth2 import service_account
from pydantic import SecretStr

from listener.model import Author, BrandReply, Mention, Poll, RateLimited, SourceError
from listener.replying import ReplyError, ReplyProblem, SentReply

log = logging.getLogger(__name__)

#: The one OAuth scope of the Android Publisher API (reviews included).
SCOPE = "https://www.googleapis.com/auth/androidpublisher"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
#: Google accepts an assertion valid for at most an hour.
ASSERTION_LIFETIME = timedelta(hours=1)
#: A token this close to its expiry is replaced before use.
TOKEN_MARGIN = timedelta(minutes=2)
#: Play lists the reviews created or changed in the last week, no older.
LISTED = timedelta(days=7)
#: Play's limit for a reply ("more than approximately 350 characters will be rejected"), counted in UTF-16 units.
MAX_REPLY_CHARS = 350
#: How far before ``since`` `GooglePlayReplier.find` still accepts a reply: Google's clock and ours disagree a little.
CLOCK_SKEW = timedelta(minutes=1)
#: At most this much of Google's own message goes into an error.
WORDS = 200
#: The Play Developer API's quota day ends at midnight Pacific time.
QUOTA_DAY = ZoneInfo("America/Los_Angeles")
#: The ``errors[].reason`` values Google gives a spent quota (some APIs answer them with 403, not 429).
RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded", "dailyLimitExceeded"})
PACKAGE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+")
LANGUAGE = re.compile(r"[a-z]{2,3}([_-][A-Za-z0-9]{2,4})?")
#: A ``deviceMetadata.productName`` that gives the codename, then the model's name: "a52q (Galaxy A52)".
MARKETED = re.compile(r"\S+ \((.+)\)")
#: An HTML tag, which Play strips from replies.
TAG = re.compile(r"</?[A-Za-z][^<>]*>")
ADD_KEY = "IAM & Admin > Service accounts > the account > Keys > Add key > JSON"


# -- the service account and its token ---------------------------------------------------------------


def read_key(secret: SecretStr) -> dict[str, Any]:
    """The service account key's JSON, checked; a `ValueError` says what to give (and never quotes the key)."""
    raw = secret.get_secret_value().strip()
    if not raw:
        raise ValueError(
            'service_account is required: service_account = { file = "/run/secrets/play.json" }, the JSON key of '
            "a Google Cloud service account"
        )
    try:
        info = json.loads(raw)
    except json.JSONDecodeError:
        info = None
    if not isinstance(info, dict):
        raise ValueError(f"service_account is not a JSON key file: give the whole file Google Cloud made ({ADD_KEY})")
    if info.get("type") != "service_account":
        kind = info.get("type")
        raise ValueError(
            f"service_account is a key of type {kind if isinstance(kind, str) else 'unknown'!r}, not a service "
            f"account's: create a service account key ({ADD_KEY})"
        )
    missing = [name for name in ("client_email", "private_key", "token_uri") if not _text(info.get(name))]
    if missing:
        raise ValueError(f"service_account lacks {', '.join(missing)}: give the key file as downloaded")
    if urlsplit(info["token_uri"]).scheme not in ("http", "https"):
        raise ValueError("service_account's token_uri must be an http(s) URL: give the key file as downloaded")
    return info


@dataclass(frozen=True, slots=True)
class PlayProblem:
    """What a Google answer (or its absence) means, read once for the source and the replier alike."""

    kind: Literal[
        "key",  # the key or the token was refused: a new key is needed
        "clock",  # the assertion's times were refused: this machine's clock is off
        "permission",  # the service account may not do this on this app
        "api_disabled",  # the Android Publisher API is off in the key's Cloud project
        "rate_limited",  # a quota is spent: wait until ``retry_at``
        "missing",  # no such app or review
        "invalid",  # Google refused the request itself (400)
        "server",  # Google failed (5xx): nothing was done
        "gateway",  # a gateway gave up waiting (504): a write may have happened
        "garbled",  # a success status without Google's JSON (a proxy's page)
        "unreachable",  # no connection: nothing was sent
        "no_answer",  # the request went out and no answer came back in time
        "other",
    ]
    status: int
    message: str
    reasons: frozenset[str] = frozenset()
    retry_at: datetime | None = None


class PlayFailure(Exception):
    """A call to Google did not succeed; `problem` says how."""

    def __init__(self, problem: PlayProblem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def wait_until(headers: Mapping[str, str], message: str, reasons: frozenset[str], now: datetime) -> datetime:
    """When a spent quota comes back: ``Retry-After`` (seconds or a date, at most a day); else a per-minute limit
    the next minute, a daily one Play's next quota day (midnight Pacific), and otherwise the next whole hour (the
    reviews API's own quota: 200 reads an hour per app)."""
    after = (headers.get("retry-after") or "").strip()
    if after:
        moment: datetime | None = None
        if after.isdigit():
            moment = now + timedelta(seconds=int(after))
        else:
            try:
                moment = parsedate_to_datetime(after)
            except (TypeError, ValueError):
                moment = None
            if moment is not None and moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
        if moment is not None and now < moment <= now + timedelta(days=1):
            return moment.astimezone(UTC)
    text = message.lower()
    if "per minute" in text:
        return now.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    if "per day" in text or "daily" in text or "dailyLimitExceeded" in reasons:
        local = now.astimezone(QUOTA_DAY)
        midnight = datetime(local.year, local.month, local.day, tzinfo=QUOTA_DAY) + timedelta(days=1)
        return midnight.astimezone(UTC)
    return now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


def json_of(response: httpx.Response) -> Any:
    """The JSON Google answered, or None when the body is not JSON."""
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None


def play_problem(response: httpx.Response, body: Any, now: datetime) -> PlayProblem | None:
    """What Google's answer means, or None for a success. Google's errors are ``{"error": {"code", "message",
    "status", "errors": [{"domain", "reason"}], "details": [{"reason"}]}}``; Play answers an account without the
    app's permission 403 (and, for some calls, 401 with reason ``permissionDenied``)."""
    status = response.status_code
    error = body.get("error") if isinstance(body, dict) else None
    if 200 <= status < 300:
        if isinstance(body, dict) and error is None:
            return None
        if not isinstance(body, dict):
            kind = response.headers.get("content-type", "no content type")
            return PlayProblem("garbled", status, f"HTTP {status} with a body that is not Google's JSON ({kind})")
    message, reasons = f"HTTP {status}", set()
    if isinstance(error, dict):
        message = str(error.get("message") or message)[:WORDS]
        if error.get("status"):
            reasons.add(str(error["status"]))
        for item in [*(error.get("errors") or []), *(error.get("details") or [])]:
            if isinstance(item, dict) and item.get("reason"):
                reasons.add(str(item["reason"]))
    found = frozenset(reasons)
    if status == 429 or "RESOURCE_EXHAUSTED" in found or found & RATE_REASONS:
        return PlayProblem("rate_limited", status, message, found, wait_until(response.headers, message, found, now))
    if status == 401 and "permissionDenied" in found:
        return PlayProblem("permission", status, message, found)
    if status == 401:
        return PlayProblem("key", status, message, found)
    if status == 403 and found & {"accessNotConfigured", "SERVICE_DISABLED"}:
        return PlayProblem("api_disabled", status, message, found)
    if status == 403:
        return PlayProblem("permission", status, message, found)
    if status == 404:
        return PlayProblem("missing", status, message, found)
    if status == 504:
        return PlayProblem("gateway", status, message, found)
    if status >= 500:
        return PlayProblem("server", status, message, found)
    if status == 400:
        return PlayProblem("invalid", status, message, found)
    return PlayProblem("other", status, message, found)


class PlayAuth:
    """The service account's access token for the Android Publisher scope, shared by a source and its replier.

    The assertion is signed by google-auth with the key; the token it buys is kept until `TOKEN_MARGIN` before it
    expires, by the ``now`` of the calls (the poll's clock). One lock: the daemon polls while the web app replies.
    """

    def __init__(self, key: SecretStr, timeout_seconds: float) -> None:
        info = read_key(key)
        try:
            credentials = service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])
        except Exception:  # google-auth and cryptography name the key's faults in their own words: never show them
            raise ValueError(
                f"service_account's private_key cannot be read: create a new key ({ADD_KEY}) and give its file"
            ) from None
        self.email = str(info["client_email"])
        self.token_uri = str(info["token_uri"])
        self.timeout_seconds = timeout_seconds
        self._signer = credentials.signer
        self._private_key = str(info["private_key"])
        self._token = ""
        self._expires_at: datetime | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PlayAuth({self.email!r})"

    def secrets(self) -> tuple[str, ...]:
        """What no message may carry: the private key and the current access token."""
        return tuple(s for s in (self._private_key, self._token) if s)

    def mask(self, message: str) -> str:
        for secret in self.secrets():
            message = message.replace(secret, "[secret]")
        return message

    def token(self, now: datetime) -> tuple[str, bool]:
        """A valid access token, and whether it was bought just now (a refusal of a fresh one is the key's)."""
        with self._lock:
            if self._token and self._expires_at is not None and now < self._expires_at - TOKEN_MARGIN:
                return self._token, False
            self._token, self._expires_at = self._mint(now)
            return self._token, True

    def forget(self, token: str) -> None:
        """Drop ``token`` (Google refused it before its time: revoked), so the next call buys a new one."""
        with self._lock:
            if self._token == token:
                self._token, self._expires_at = "", None

    def assertion(self, now: datetime) -> str:
        """The signed JWT the token endpoint takes: the account, the scope, ``aud`` the key's ``token_uri``."""
        issued = int(now.timestamp())
        claims = {
            "iss": self.email,
            "scope": SCOPE,
            "aud": self.token_uri,
            "iat": issued,
            "exp": issued + int(ASSERTION_LIFETIME.total_seconds()),
        }
        return google_jwt.encode(self._signer, claims).decode("ascii")

    def _mint(self, now: datetime) -> tuple[str, datetime]:
        form = {"grant_type": JWT_GRANT, "assertion": self.assertion(now)}
        try:
            with httpx.Client(timeout=self.timeout_seconds, trust_env=False) as client:
                response = client.post(self.token_uri, data=form)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol) as error:
            problem = f"Google's token endpoint could not be reached ({type(error).__name__})"
            raise PlayFailure(PlayProblem("unreachable", 0, problem)) from None
        except httpx.HTTPError as error:
            problem = f"Google's token endpoint gave no answer ({type(error).__name__}, {self.timeout_seconds:g} s)"
            raise PlayFailure(PlayProblem("unreachable", 0, problem)) from None
        body = json_of(response)
        body = body if isinstance(body, dict) else {}
        token, lifetime = body.get("access_token"), body.get("expires_in")
        if response.status_code == 200 and isinstance(token, str) and token and isinstance(lifetime, int | float):
            return token, now + timedelta(seconds=float(lifetime))
        code = str(body.get("error") or f"HTTP {response.status_code}")
        words = (f"{code}: {body['error_description']}" if body.get("error_description") else code)[:WORDS]
        if code == "invalid_grant" and "iat" in words:
            raise PlayFailure(PlayProblem("clock", response.status_code, words))
        if code in ("invalid_grant", "invalid_client", "unauthorized_client", "access_denied"):
            raise PlayFailure(PlayProblem("key", response.status_code, words))
        if response.status_code >= 500:
            raise PlayFailure(PlayProblem("server", response.status_code, f"Google's token endpoint failed ({words})"))
        raise PlayFailure(PlayProblem("other", response.status_code, f"Google's token endpoint refused ({words})"))


def call(
    client: httpx.Client,
    auth: PlayAuth,
    method: str,
    url: str,
    now: datetime,
    params: Mapping[str, Any] | None = None,
    body: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One request to the Android Publisher API with the service account's token in the header; a token Google
    refuses before its expiry (revoked) is replaced once. Raises `PlayFailure`."""
    token, fresh = auth.token(now)
    while True:
        try:
            response = client.request(
                method, url, params=params, json=body, headers={"Authorization": f"Bearer {token}"}
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol) as error:
            problem = PlayProblem("unreachable", 0, f"Google Play could not be reached ({type(error).__name__})")
            raise PlayFailure(problem) from None
        except httpx.HTTPError as error:
            words = f"Google Play gave no answer ({type(error).__name__}, limit {client.timeout.read or 0:g} s)"
            raise PlayFailure(PlayProblem("no_answer", 0, words)) from None
        data = json_of(response)
        trouble = play_problem(response, data, now)
        if trouble is None:
            return data if isinstance(data, dict) else {}
        if trouble.kind == "key" and not fresh:
            auth.forget(token)
            token, fresh = auth.token(now)
            continue
        raise PlayFailure(trouble)


def timestamp(value: Any) -> datetime | None:
    """Google's ``{"seconds": "1772442000", "nanos": 0}`` as an aware datetime, or None when it is not one."""
    if not isinstance(value, dict):
        return None
    try:
        seconds = int(value.get("seconds", ""))
        nanos = int(value.get("nanos", 0) or 0)
        return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=nanos // 1000)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def review_url(package: str, review_id: str) -> str:
    """Where the review is on Google Play."""
    return "https://play.google.com/store/apps/details?" + urlencode({"id": package, "reviewId": review_id})


def reply_id(review_id: str, edited: datetime) -> str:
    """A developer reply's id: the review's, and the second it took effect (a reply replaces the one before)."""
    return f"{review_id}:reply:{int(edited.timestamp())}"


def review_text(comment: Mapping[str, Any]) -> str:
    """The customer's own words: the original when Play translated them; a tab (Play's separator between a review's
    title and its text) becomes a line break."""
    text = str(comment.get("originalText") or comment.get("text") or "")
    parts = [part.strip() for part in text.split("\t")]
    return "\n".join(part for part in parts if part)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _moment(value: Any) -> datetime | None:
    """A stored ISO time (from the cursor), or None when there is none or it cannot be read."""
    try:
        moment = datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def review_facts(user: Mapping[str, Any]) -> dict[str, str]:
    """What the user comment says about the phone the review was written on: the app's version (its name, else its
    code), the device (``deviceMetadata``'s maker and model, "Samsung Galaxy A52", else Play's codename ``device``,
    "a52q") and the Android SDK
    level (``androidOsVersion``, 34 for Android 14). Play may leave any of them out."""
    facts: dict[str, str] = {}
    version = _text(user.get("appVersionName")).strip()
    code = _int(user.get("appVersionCode"))
    if version or code is not None:
        facts["app_version"] = version or str(code)
    metadata = user.get("deviceMetadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    maker, model = _text(metadata.get("manufacturer")).strip(), _text(metadata.get("productName")).strip()
    if named := MARKETED.fullmatch(model):  # "a52q (Galaxy A52)": the codename, then the name people know
        model = named.group(1).strip()
    if model and maker and not model.lower().startswith(maker.lower()):
        model = f"{maker} {model}"
    if device := model or _text(user.get("device")).strip():
        facts["device"] = device
    if (sdk := _int(user.get("androidOsVersion"))) is not None and sdk > 0:
        facts["android"] = str(sdk)
    return facts


def read_review(
    package: str, review: Mapping[str, Any], source: str, developer: str
) -> tuple[Mention | None, BrandReply | None]:
    """One Play review: the customer's comment as a mention, the developer's comment as the brand's reply to it.

    A reply older than the review's last edit answers earlier words: it is kept, but answers nothing (the customer
    changed the review after it, so the new words wait for an answer)."""
    review_id = str(review.get("reviewId") or "")
    user: Mapping[str, Any] = {}
    developer_comment: Mapping[str, Any] = {}
    for comment in review.get("comments") or []:
        if isinstance(comment, dict) and isinstance(comment.get("userComment"), dict) and not user:
            user = comment["userComment"]
        if isinstance(comment, dict) and isinstance(comment.get("developerComment"), dict):
            developer_comment = comment["developerComment"]
    written = timestamp(user.get("lastModified"))
    if not review_id or written is None:
        log.warning("Google Play review %r of %s has no id or no time: skipped", review_id, package)
        return None, None
    url = review_url(package, review_id)
    name = str(review.get("authorName") or "").strip() or "someone on Google Play"
    metrics: dict[str, int] = {}
    for key, name_in_play in (
        ("rating", "starRating"),
        ("app_version_code", "appVersionCode"),
        ("android_os_version", "androidOsVersion"),
        ("thumbs_up", "thumbsUpCount"),
    ):
        if (number := _int(user.get(name_in_play))) is not None:
            metrics[key] = number
    if not 1 <= metrics.get("rating", 1) <= 5:
        del metrics["rating"]
    language = str(user.get("reviewerLanguage") or "").replace("-", "_").split("_")[0].lower()
    mention = Mention(
        platform="googleplay",
        platform_id=review_id,
        source=source,
        text=review_text(user),
        published_at=written,
        author=Author("googleplay", review_id, name, display_name=name),
        url=url,
        thread_id=review_id,
        language_hint=language if LANGUAGE.fullmatch(language) else "",
        metrics=metrics,
        place=package,  # the cockpit's ratings are per app
        facts=review_facts(user),
    )
    answered = timestamp(developer_comment.get("lastModified"))
    if answered is None:
        return mention, None
    reply = BrandReply(
        platform="googleplay",
        platform_id=reply_id(review_id, answered),
        source=source,
        published_at=answered,
        author_handle=developer,
        in_reply_to=review_id if answered >= written else "",
        thread_id=review_id,
        to_author_id=review_id,
        text=str(developer_comment.get("text") or ""),
        url=url,
    )
    return mention, reply


# -- the source -----------------------------------------------------------------------------------------


@dataclass
class GooglePlaySource:
    """The reviews of the brand's Android apps on Google Play, and the developer's replies to them."""

    kind: ClassVar[str] = "googleplay"
    name: str
    service_account: SecretStr = field(default_factory=lambda: SecretStr(""), repr=False)
    packages: tuple[str, ...] = ()
    #: The developer name Play shows above the replies: how the brand's replies are stored.
    developer_name: str = "Google Play developer"
    #: Ask Play to translate the reviews (e.g. "it"); the stored text stays the customer's own.
    translation_language: str = ""
    overlap_hours: float = 48.0
    page_size: int = 100
    max_pages: int = 5
    timeout_seconds: float = 20.0
    base_url: str = "https://androidpublisher.googleapis.com"

    def __post_init__(self) -> None:
        self._auth = PlayAuth(self.service_account, self.timeout_seconds)
        if not self.packages:
            raise ValueError('packages is required: the apps\' package names, e.g. packages = ["it.auroracaffe.app"]')
        for package in self.packages:
            if not PACKAGE.fullmatch(package):
                raise ValueError(
                    f"packages: {package!r} is not a package name; copy it from Play Console (e.g. it.auroracaffe.app)"
                )
        if len(set(self.packages)) != len(self.packages):
            raise ValueError("packages: a package is listed twice; list each app once")
        if self.translation_language and not LANGUAGE.fullmatch(self.translation_language):
            raise ValueError(f"translation_language {self.translation_language!r} must be a language code like it")
        if not self.developer_name.strip():
            raise ValueError("developer_name must not be empty: write the developer name Play shows")
        if urlsplit(self.base_url).scheme not in ("http", "https"):
            raise ValueError("base_url must be an http(s) URL")
        if not 1 <= self.page_size <= 100:
            raise ValueError("page_size must be between 1 and 100")
        if not 1 <= self.max_pages <= 50:
            raise ValueError("max_pages must be between 1 and 50")
        if not 0 <= self.overlap_hours <= 24 * 7:
            raise ValueError("overlap_hours must be between 0 and 168 (Play lists a week)")
        if self.timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")

    @property
    def service_account_email(self) -> str:
        return self._auth.email

    def replier(self) -> GooglePlayReplier:
        """Answer the reviews as the developer: the service account that reads them can reply (with the app's
        "Reply to reviews" permission), so a configured source can always answer."""
        return GooglePlayReplier(
            auth=self._auth,
            packages=self.packages,
            base_url=self.base_url,
            timeout_seconds=self.timeout_seconds,
            account=self.developer_name,
        )

    def poll(self, cursor: Mapping[str, Any] | None, now: datetime) -> Poll:
        state = dict(cursor or {})
        newest: dict[str, str] = {k: str(v) for k, v in dict(state.get("newest") or {}).items()}
        mentions: list[Mention] = []
        replies: list[BrandReply] = []
        pages, capped = 0, []
        with httpx.Client(timeout=self.timeout_seconds, trust_env=False) as client:
            for package in self.packages:
                seen = _moment(newest.get(package))
                since = seen - timedelta(hours=self.overlap_hours) if seen else None
                latest, read, complete = self._read(client, package, since, now, mentions, replies)
                pages += read
                if not complete:
                    capped.append(package)
                if latest is not None and (seen is None or latest > seen):
                    newest[package] = latest.isoformat()
        details: dict[str, Any] = {"packages": len(self.packages), "reviews": len(mentions), "pages": pages}
        if capped:
            details["capped"] = (
                f"{', '.join(capped)}: more than {self.max_pages} pages of reviews changed; older ones were not read "
                "(raise max_pages)"
            )
        last_poll = _moment(state.get("polled_at"))
        if last_poll is not None and now - last_poll > LISTED:
            details["missed"] = (
                f"no poll since {last_poll:%Y-%m-%d %H:%M} UTC: Google Play lists only the last week's reviews, so "
                f"reviews changed before {now - LISTED:%Y-%m-%d %H:%M} UTC were not heard"
            )
        return Poll(
            mentions=tuple(mentions),
            replies=tuple(replies),
            cursor={"newest": {k: v for k, v in newest.items() if k in self.packages}, "polled_at": now.isoformat()},
            details=details,
        )

    def _read(
        self,
        client: httpx.Client,
        package: str,
        since: datetime | None,
        now: datetime,
        mentions: list[Mention],
        replies: list[BrandReply],
    ) -> tuple[datetime | None, int, bool]:
        """Read ``package``'s reviews newest first, page by page, down to ``since``: the newest review's time, the
        pages read, and whether the reading got to ``since`` or the end of the list (not stopped by ``max_pages``)."""
        params: dict[str, Any] = {"maxResults": self.page_size}
        if self.translation_language:
            params["translationLanguage"] = self.translation_language
        url = f"{self.base_url.rstrip('/')}/androidpublisher/v3/applications/{quote(package)}/reviews"
        latest: datetime | None = None
        token = ""
        for page in range(1, self.max_pages + 1):
            body = self._get(client, url, {**params, **({"token": token} if token else {})}, package, now)
            listed = body.get("reviews")
            for review in listed if isinstance(listed, list) else []:
                mention, reply = read_review(package, review, self.name, self.developer_name)
                if mention is None:
                    continue
                if since is not None and mention.published_at < since:
                    return latest, page, True
                latest = mention.published_at if latest is None else max(latest, mention.published_at)
                mentions.append(mention)
                replies.extend([reply] if reply else [])
            paging = body.get("tokenPagination")
            token = str(paging.get("nextPageToken") or "") if isinstance(paging, dict) else ""
            if not token:
                return latest, page, True
        return latest, self.max_pages, False

    def _get(
        self, client: httpx.Client, url: str, params: Mapping[str, Any], package: str, now: datetime
    ) -> dict[str, Any]:
        try:
            return call(client, self._auth, "GET", url, now, params=params)
        except PlayFailure as failure:
            raise self._error(failure.problem, package, now) from None

    def _error(self, problem: PlayProblem, package: str, now: datetime) -> SourceError:
        email, words = self._auth.email, problem.message
        if problem.kind == "key":
            message = (
                f"Google refused the service account key of {email} ({words}); create a new key for it in Google "
                f"Cloud ({ADD_KEY}) and update the secret"
            )
        elif problem.kind == "clock":
            message = (
                f"Google refused the service account's signed request ({words}); set this machine's clock right (NTP): "
                "Google accepts it only within minutes of its own time"
            )
        elif problem.kind == "permission":
            message = (
                f"Google Play: the service account {email} may not read the reviews of {package} ({words}); invite "
                'it in Play Console (Users and permissions) with "Reply to reviews" and "View app information" for '
                "the app, or fix the package name"
            )
        elif problem.kind == "api_disabled":
            message = (
                f"Google Play: the Google Play Android Developer API is off in the Cloud project of {email} "
                f"({words}); enable it there"
            )
        elif problem.kind == "rate_limited":
            retry_at = problem.retry_at or now + timedelta(hours=1)
            return RateLimited(
                self._auth.mask(
                    f"Google Play's reviews quota is spent ({words}); reading again at {retry_at:%Y-%m-%d %H:%M} UTC"
                ),
                retry_at,
            )
        elif problem.kind == "missing":
            message = f"Google Play has no app {package} for {email} ({words}); check the package name"
        elif problem.kind in ("unreachable", "no_answer"):
            message = f"{words}; will retry"
        elif problem.kind in ("server", "gateway"):
            message = f"Google Play failed ({words}); will retry"
        else:
            message = f"Google Play answered {problem.status} for {package} ({words})"
        return SourceError(self._auth.mask(message))


# -- answering --------------------------------------------------------------------------------------------


def play_length(text: str) -> int:
    """The length of ``text`` as Google Play counts it: UTF-16 code units, so an emoji beyond the basic plane counts
    2. Play says only "approximately 350 characters"; this count is the stricter of the two readings, so a reply it
    lets through fits either way."""
    return len(text.encode("utf-16-le")) // 2


def _same_text(a: str, b: str) -> bool:
    """Equal once HTML tags are stripped (Play strips them), Unicode-normalised, whitespace runs collapsed."""

    def norm(text: str) -> str:
        return " ".join(unicodedata.normalize("NFC", TAG.sub("", text)).split())

    return norm(a) == norm(b)


@dataclass
class GooglePlayReplier:
    """Posts the developer's reply under a Play review (see `listener.replying.Replier`); a reply replaces the
    review's previous one, and is free."""

    auth: PlayAuth = field(repr=False)
    packages: tuple[str, ...]
    base_url: str = "https://androidpublisher.googleapis.com"
    timeout_seconds: float = 20.0
    account: str = "Google Play developer"
    channel: str = field(default="googleplay", init=False)

    def check(self, text: str) -> str:
        """Why Play would refuse ``text`` (or change it), or "" when it can be posted as it is."""
        if not text.strip():
            return "the reply is empty: write something to post"
        if tag := TAG.search(text):
            return f"Google Play strips HTML tags from replies ({tag.group(0)}): write plain text"
        count = play_length(text)
        if count > MAX_REPLY_CHARS:
            how = "" if count == len(text) else " as Google Play counts them (an emoji counts 2)"
            return f"{count} characters{how}; Google Play allows {MAX_REPLY_CHARS}: shorten it"
        return ""

    def cost_usd(self, text: str) -> float:
        """Replies through the Play Developer API are free (within 2,000 a day per app)."""
        return 0.0

    def package_of(self, mention: Mention) -> str:
        """The app a review belongs to, from the review's link (the source writes it), among the configured ones."""
        named = parse_qs(urlsplit(mention.url).query).get("id", [""])[0]
        if named in self.packages:
            return named
        if not named and len(self.packages) == 1:
            return self.packages[0]
        raise ReplyError("refused", f"cannot tell which of {', '.join(self.packages)} the review belongs to")

    def reply(self, mention: Mention, text: str, now: datetime) -> SentReply:
        """Post ``text`` as the developer's reply to the review ``mention`` is; Play answers with the text it applied
        and the time it took effect."""
        if problem := self.check(text):
            raise ReplyError("too_long" if problem.endswith("shorten it") else "refused", problem)
        package = self.package_of(mention)
        with self._client() as client:
            try:
                body = call(
                    client, self.auth, "POST", self._url(package, mention, ":reply"), now, body={"replyText": text}
                )
            except PlayFailure as failure:
                raise self._error(failure.problem, package, now, wrote=True) from None
        result = body.get("result")
        edited = timestamp(result.get("lastEdited")) if isinstance(result, dict) else None
        if not isinstance(result, dict) or edited is None:
            raise self._error(
                PlayProblem("garbled", 200, "Google Play accepted the reply without saying when it took effect"),
                package,
                now,
                wrote=True,
            )
        return SentReply(
            platform_id=reply_id(mention.platform_id, edited),
            url=mention.url or review_url(package, mention.platform_id),
            text=str(result.get("replyText") or text),
            published_at=edited,
        )

    def find(self, mention: Mention, text: str, since: datetime, now: datetime) -> SentReply | None:
        """The review's developer reply, when it has ``text`` and took effect at or after ``since`` (less a minute of
        clock skew): Play keeps one reply per review, so one read says. Raises `ReplyError`."""
        package = self.package_of(mention)
        with self._client() as client:
            try:
                review = call(client, self.auth, "GET", self._url(package, mention, ""), now)
            except PlayFailure as failure:
                raise self._error(failure.problem, package, now, wrote=False) from None
        for comment in review.get("comments") or []:
            developer = comment.get("developerComment") if isinstance(comment, dict) else None
            if not isinstance(developer, dict):
                continue
            edited = timestamp(developer.get("lastModified"))
            if edited is None or edited < since - CLOCK_SKEW or not _same_text(str(developer.get("text", "")), text):
                return None
            return SentReply(
                platform_id=reply_id(mention.platform_id, edited),
                url=mention.url or review_url(package, mention.platform_id),
                text=str(developer.get("text", "")),
                published_at=edited,
            )
        return None

    def _client(self) -> httpx.Client:
        return httpx.Client(timeout=self.timeout_seconds, trust_env=False)

    def _url(self, package: str, mention: Mention, verb: str) -> str:
        review = quote(mention.platform_id, safe="")
        return f"{self.base_url.rstrip('/')}/androidpublisher/v3/applications/{quote(package)}/reviews/{review}{verb}"

    def _error(self, problem: PlayProblem, package: str, now: datetime, wrote: bool) -> ReplyError:
        """What Google's answer means for the reply; ``wrote`` when the request was a post that may have landed."""
        words, email = problem.message, self.auth.email

        def error(kind: ReplyProblem, message: str, retry_at: datetime | None = None) -> ReplyError:
            return ReplyError(kind, self.auth.mask(message), retry_at)

        if problem.kind == "key":
            return error(
                "expired_token",
                f"Google refused the service account key of {email} ({words}): create a new key for it in Google "
                f"Cloud ({ADD_KEY}) and update the secret",
            )
        if problem.kind == "permission":
            return error(
                "permission",
                f'Google Play: {email} may not reply to the reviews of {package} ({words}): give it "Reply to '
                'reviews" for the app in Play Console (Users and permissions)',
            )
        if problem.kind == "api_disabled":
            return error(
                "permission",
                f"Google Play: the Google Play Android Developer API is off in the Cloud project of {email} "
                f"({words}): enable it there",
            )
        if problem.kind == "rate_limited":
            retry_at = problem.retry_at or now + timedelta(hours=1)
            return error(
                "rate_limited",
                f"Google Play's quota is spent ({words}; replies: 2,000 a day per app); trying again at "
                f"{retry_at:%Y-%m-%d %H:%M} UTC",
                retry_at,
            )
        if problem.kind == "clock":
            return error(
                "refused",
                f"Google refused the service account's signed request ({words}): set this machine's clock right (NTP)",
            )
        if problem.kind == "missing":
            return error("deleted", f"the review is gone from Google Play, or is not {package}'s ({words})")
        if problem.kind == "invalid" and ("long" in words.lower() or str(MAX_REPLY_CHARS) in words):
            return error("too_long", f"Google Play refused the reply as too long ({words}): shorten it")
        if problem.kind in ("no_answer", "gateway", "garbled") and wrote:
            return error("unknown", f"{words}; the reply may have been posted, so the review is read before any retry")
        if problem.kind in ("server", "unreachable", "no_answer", "gateway", "garbled"):
            outcome = "nothing was posted" if wrote else "will look again"
            return error("unavailable", f"Google Play: {words}; {outcome}")
        return error("refused", f"Google Play refused the reply ({words})")
