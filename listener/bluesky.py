"""`bluesky`: what people post about the brand on Bluesky, and the brand's answers, through the `atproto` SDK.

Three streams, all read through the brand account's PDS (``base_url``, which proxies ``app.bsky`` reads to the
AppView), each with its own cursor in the stored one:

1. ``search``: ``app.bsky.feed.searchPosts`` for each keyword, ``sort=latest``, ``since`` the newest post the last
   poll saw (less five minutes: posts are indexed a little late), the brand's own posts left out;
2. ``notifications``: ``app.bsky.notification.listNotifications`` with the reasons ``mention``, ``reply`` and
   ``quote``, newest first down to the newest one already seen (never marked as read: people use the app too);
3. ``posts``: the brand's own posts (``app.bsky.feed.getAuthorFeed``); one that replies is a `BrandReply` answering
   its parent, so the mention it answers is answered wherever the reply was typed.

With ``jetstream_url`` set, each poll also reads Bluesky's Jetstream (every new post on the network, as JSON over a
websocket) from the stored ``time_us`` until it reaches the poll's time or ``listen_seconds`` pass, and keeps the
posts that contain a keyword: real-time listening that resumes where it stopped after a restart.

A post's key is its AT URI (``bluesky:at://did/app.bsky.feed.post/rkey``) whichever stream heard it; a reply's
``in_reply_to`` is its parent's URI and ``thread_id`` its root's, so brand replies and mentions line up. Authors'
followers (``reach``) come from ``app.bsky.actor.getProfiles``, 25 at a time, kept in the cursor for a day.

The app password signs in once per process (``createSession`` is limited to 30 a 5 minutes); the SDK refreshes the
session before it expires, and a session Bluesky still calls expired or invalid is signed in again once. The
tokens travel only in the Authorization header and never reach a message. Answering is `BlueskyReplier`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import regex
from atproto import Client, models
from atproto_client import exceptions
from atproto_client.models.common import XrpcError
from atproto_client.models.utils import get_or_create
from atproto_client.request import Request
from atproto_core.exceptions import AtProtocolError
from pydantic import SecretStr
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import connect

from listener.model import Author, BrandReply, Mention, Poll, RateLimited, SourceError
from listener.replying import ReplyError, ReplyProblem, SentReply

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_BASE_URL = "https://bsky.social"
POST_COLLECTION = "app.bsky.feed.post"
#: The notification reasons that are someone talking to or about the brand (likes, follows, reposts are not).
MENTION_REASONS = ("mention", "reply", "quote")
Stream = Literal["search", "notifications", "posts"]
#: How far back, before the newest item already seen, each poll reads again (the AppView indexes a little late).
OVERLAP = timedelta(minutes=5)
#: How long a profile's followers count is trusted, and how many profiles the cursor keeps.
PROFILE_TTL = timedelta(days=1)
PROFILE_CACHE_MAX = 5000
#: ``app.bsky.actor.getProfiles`` and ``app.bsky.feed.getPosts`` take at most 25 at a time.
BATCH = 25
#: A post's text: at most 300 graphemes and 3000 bytes of UTF-8 (the app.bsky.feed.post lexicon).
MAX_GRAPHEMES = 300
MAX_TEXT_BYTES = 3000
#: How far before ``since`` `BlueskyReplier.find` still accepts a post of ours (clocks disagree a little).
CLOCK_SKEW = timedelta(minutes=1)
#: When a 429 names no reset, or one already past, wait this long.
DEFAULT_PAUSE = timedelta(minutes=5)
#: At most this much of Bluesky's own words goes into a message.
WORDS = 200
#: Where to make an app password, for every message that asks for a new one.
APP_PASSWORDS = "Settings > Privacy and security > App passwords"
#: The atproto handle syntax (a domain name); a DID is accepted as well.
HANDLE = regex.compile(r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
#: What an app password looks like: four groups of four, e.g. ``abcd-efgh-ijkl-mnop``.
APP_PASSWORD = regex.compile(r"^[a-z0-9]{4}(-[a-z0-9]{4}){3}$")


# -- small readers -----------------------------------------------------------------------------------------


def at_time(value: str | None) -> datetime | None:
    """An atproto datetime (``2026-03-02T08:00:00.000Z``) as aware UTC, or None when absent or unreadable; a value
    without a zone (some clients write them) is taken as UTC."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def iso_z(moment: datetime) -> str:
    """``2026-03-02T08:00:00.000Z``: how atproto writes datetimes (milliseconds, ``Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def split_uri(uri: str) -> tuple[str, str, str]:
    """``at://did/collection/rkey`` as (did, collection, rkey); missing parts are ""."""
    parts = uri.removeprefix("at://").split("/")
    parts += [""] * (3 - len(parts))
    return parts[0], parts[1], parts[2]


def post_url(handle: str, uri: str) -> str:
    """The post in the Bluesky app: ``https://bsky.app/profile/{handle}/post/{rkey}`` (a DID works for a handle)."""
    did, _, rkey = split_uri(uri)
    return f"https://bsky.app/profile/{handle or did}/post/{rkey}" if rkey else ""


def graphemes(text: str) -> int:
    """User-perceived characters (extended grapheme clusters), as Bluesky counts a post's length."""
    return len(regex.findall(r"\X", text))


def language(langs: Iterable[str] | None) -> str:
    """The first of a post's ``langs`` as a two-letter code (``en-US`` is ``en``), or ""."""
    for lang in langs or ():
        code = str(lang).split("-")[0].strip().lower()
        if code:
            return code
    return ""


def published(record: models.AppBskyFeedPost.Record, indexed_at: str | None) -> datetime | None:
    """When a post was made: the earlier of its ``createdAt`` and when the AppView indexed it (Bluesky's own
    ``sortAt``), so a post dated in the future cannot jump the queue."""
    times = [t for t in (at_time(record.created_at), at_time(indexed_at)) if t is not None]
    return min(times) if times else None


def _same_text(a: str, b: str) -> bool:
    """Equal once Unicode-normalised and with runs of whitespace collapsed."""

    def norm(text: str) -> str:
        return " ".join(unicodedata.normalize("NFC", text).split())

    return norm(a) == norm(b)


# -- what XRPC errors mean ---------------------------------------------------------------------------------

#: What went wrong, for the source and the replier alike.
Trouble = Literal[
    "login",  # createSession refused the handle or app password
    "code",  # createSession asks for an emailed sign-in code: the account password, not an app password
    "token",  # the session was refused (expired, revoked, invalid) even after signing in again
    "rate_limited",
    "taken_down",  # the account is taken down, suspended or deactivated
    "forbidden",
    "missing",  # an actor or record Bluesky does not have
    "invalid",  # Bluesky refused the request as malformed (InvalidRequest)
    "server",  # Bluesky failed (5xx)
    "timeout",
    "unreachable",  # nothing was sent: connection refused, DNS, connect timeout
    "dropped",  # the request went out and the connection broke before an answer
    "shape",  # an answer the SDK could not read
    "other",
]
SESSION_ERRORS = frozenset({"ExpiredToken", "InvalidToken", "AuthenticationRequired"})
TAKEDOWN_ERRORS = frozenset({"AccountTakedown", "AccountDeactivated", "AccountSuspended"})


class SignInFailed(AtProtocolError):
    """``createSession`` failed: the error it raised, so that a 401 there reads as a refused app password."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True, slots=True)
class XrpcProblem:
    """One failed XRPC call, read once: what it means, the HTTP status (0 without an answer), the XRPC error name
    and message (at most 200 characters), when to retry (rate limits) and whether the request may have arrived."""

    kind: Trouble
    status: int = 0
    error: str = ""
    message: str = ""
    retry_at: datetime | None = None
    sent: bool = True
    signing_in: bool = False

    @property
    def words(self) -> str:
        """Bluesky's own words for a message: ``Error: message``, or the status."""
        said = ": ".join(p for p in (self.error, self.message) if p)
        return said or (f"HTTP {self.status}" if self.status else self.kind)


def _xrpc_error(error: exceptions.RequestErrorBase) -> tuple[int, str, str]:
    response = error.response
    if response is None:
        return 0, "", ""
    content = response.content
    if isinstance(content, XrpcError):
        return response.status_code, str(content.error or ""), str(content.message or "")[:WORDS]
    return response.status_code, "", ""


def _missing(message: str) -> bool:
    """Bluesky's words for an actor or record it does not have (``Profile not found``, ``Unable to resolve
    handle``, ``Could not locate record``)."""
    words = message.lower()
    return any(w in words for w in ("not found", "unable to resolve", "could not locate", "could not find"))


def xrpc_problem(error: BaseException, now: datetime) -> XrpcProblem:
    """What a failure of the SDK (or of httpx under it) means. A 401 at sign-in is the app password; elsewhere it is
    the session. ``sent`` is False only when the request cannot have reached Bluesky."""
    signing_in = isinstance(error, SignInFailed)
    if isinstance(error, SignInFailed):
        error = error.error
    if isinstance(error, exceptions.RateLimitExceededError):
        status, name, message = _xrpc_error(error)
        retry_at = error.reset_at
        if retry_at is None and error.retry_after is not None:
            retry_at = now + timedelta(seconds=error.retry_after)
        if retry_at is None or retry_at <= now:
            retry_at = now + DEFAULT_PAUSE
        return XrpcProblem("rate_limited", status, name, message, retry_at, signing_in=signing_in)
    if isinstance(error, exceptions.InvokeTimeoutError):
        before = isinstance(error.__cause__, httpx.ConnectTimeout | httpx.PoolTimeout)
        cause = type(error.__cause__ or error).__name__
        return XrpcProblem(
            "unreachable" if before else "timeout", message=cause, sent=not before, signing_in=signing_in
        )
    if isinstance(error, exceptions.RequestErrorBase):
        status, name, message = _xrpc_error(error)
        if status == 0:  # a transport failure (NetworkError without a response)
            before = isinstance(error.__cause__, httpx.ConnectError)
            cause = type(error.__cause__ or error).__name__
            kind: Trouble = "unreachable" if before else "dropped"
            return XrpcProblem(kind, message=cause, sent=not before, signing_in=signing_in)
        kind = "other"
        if name == "AuthFactorTokenRequired":
            kind = "code"
        elif name in TAKEDOWN_ERRORS:
            kind = "taken_down"
        elif status == 401 or name in SESSION_ERRORS:
            kind = "login" if signing_in else "token"
        elif status == 403:
            kind = "forbidden"
        elif status == 404 or name in ("NotFound", "RecordNotFound") or _missing(message):
            kind = "missing"
        elif status >= 500:
            kind = "server"
        elif status == 400:
            kind = "invalid"
        return XrpcProblem(kind, status, name, message, signing_in=signing_in)
    if isinstance(error, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return XrpcProblem("unreachable", message=str(error)[:WORDS], sent=False, signing_in=signing_in)
    if isinstance(error, httpx.HTTPError):  # e.g. the server closed the connection without answering
        return XrpcProblem("dropped", message=type(error).__name__, signing_in=signing_in)
    if isinstance(error, exceptions.LoginRequiredError):
        return XrpcProblem("token", message="not signed in", sent=False, signing_in=signing_in)
    if isinstance(error, exceptions.ModelError):
        return XrpcProblem("shape", message=str(error)[:WORDS], signing_in=signing_in)
    return XrpcProblem("other", message=f"{type(error).__name__}: {error}"[:WORDS], signing_in=signing_in)


#: What the SDK (and httpx under it) raise when a call fails.
FAILURES = (AtProtocolError, httpx.HTTPError)


def _session_refused(error: BaseException) -> bool:
    """A call refused because of the session (not the request): worth one fresh sign-in."""
    if not isinstance(error, exceptions.BadRequestError | exceptions.UnauthorizedError):
        return False
    status, name, _ = _xrpc_error(error)
    return name in ("ExpiredToken", "InvalidToken") or (status == 401 and name in ("", "AuthenticationRequired"))


# -- the session -------------------------------------------------------------------------------------------


class BlueskySession:
    """The brand account's XRPC client, signed in once and shared by the source and its replier.

    Bluesky limits ``createSession`` to 30 a 5 minutes and 300 a day per account, so a daemon polling every minute
    must not sign in each time: the client lives as long as the process, the SDK refreshes its tokens itself, and
    `call` signs in again (once) only when Bluesky refuses the session. Without an app password the client reads
    anonymously (the public reads: author feeds, profiles).
    """

    def __init__(self, handle: str, app_password: SecretStr, base_url: str, timeout_seconds: float) -> None:
        self.handle = handle
        self.base_url = base_url
        self.timeout_seconds = timeout_seconds
        self._password = app_password
        self._lock = threading.Lock()
        self._client: Client | None = None
        self.did = handle if handle.startswith("did:") else ""
        #: How many times this process signed in (``createSession``): for the source's health details.
        self.sign_ins = 0

    @property
    def signed(self) -> bool:
        return bool(self._password.get_secret_value())

    def scrub(self, message: str) -> str:
        """``message`` without the app password, whatever a server echoed."""
        secret = self._password.get_secret_value()
        return message.replace(secret, "[secret]") if secret else message

    def _open(self) -> Client:
        timeout = httpx.Timeout(self.timeout_seconds, connect=min(self.timeout_seconds, 10.0))
        return Client(base_url=self.base_url, request=Request(timeout=timeout, trust_env=False))

    def client(self) -> Client:
        """The signed-in client (signing in on first use). Raises `SignInFailed`."""
        with self._lock:
            if self._client is None:
                self._client = self._sign_in()
            return self._client

    def _sign_in(self) -> Client:
        client = self._open()
        if not self.signed:
            return client

        def learn(_event: Any, session: Any) -> None:
            self.did, self.handle = str(session.did), str(session.handle)

        client.on_session_change(learn)
        self.sign_ins += 1
        try:
            # The profile lookup the SDK offers after signing in is skipped: one request less, and the session
            # already names the account (its did and handle, learnt above).
            client.login(self.handle, self._password.get_secret_value(), fetch_bsky_profile=False)
        except Exception as error:
            client.request.close()
            raise SignInFailed(error) from error
        return client

    def _drop(self, client: Client) -> None:
        with self._lock:
            if self._client is client:
                self._client = None
        client.request.close()  # closing it twice, when another thread dropped it first, is harmless

    def call(self, action: Callable[[Client], T]) -> T:
        """``action(client)``; when Bluesky refuses the session (ExpiredToken, InvalidToken, a 401), sign in again
        once and repeat it. A refused call was not carried out, so repeating a write is safe."""
        client = self.client()
        try:
            return action(client)
        except (exceptions.BadRequestError, exceptions.UnauthorizedError) as error:
            if not self.signed or not _session_refused(error):
                raise
            log.info("bluesky session of %s refused (%s); signing in again", self.handle, _xrpc_error(error)[1])
        self._drop(client)
        return action(self.client())

    def brand_did(self) -> str:
        """The brand account's DID: from the session, or resolved from the handle when reading anonymously."""
        if not self.did:
            self.client()
        if not self.did:
            params = models.ComAtprotoIdentityResolveHandle.Params(handle=self.handle)
            self.did = self.call(lambda c: c.com.atproto.identity.resolve_handle(params)).did
        return self.did


# -- the source --------------------------------------------------------------------------------------------


@dataclass
class _Heard:
    """A post someone else wrote, before its author's profile (reach, handle for Jetstream) is known."""

    uri: str
    did: str
    handle: str
    name: str
    verified: bool
    record: models.AppBskyFeedPost.Record
    when: datetime
    metrics: dict[str, int]


def _counts(view: models.AppBskyFeedDefs.PostView) -> dict[str, int]:
    counts = {
        "like_count": view.like_count,
        "repost_count": view.repost_count,
        "reply_count": view.reply_count,
        "quote_count": view.quote_count,
    }
    return {k: int(v) for k, v in counts.items() if v is not None}


def _verified(author: Any) -> bool:
    verification = getattr(author, "verification", None)
    return getattr(verification, "verified_status", "") == "valid"


@dataclass
class BlueskySource:
    """Listens on Bluesky as the brand account: keyword search, the brand's notifications, its replies, Jetstream."""

    kind: ClassVar[str] = "bluesky"
    name: str = "bluesky"
    handle: str = ""
    app_password: SecretStr = field(default_factory=lambda: SecretStr(""), repr=False)
    keywords: list[str] = field(default_factory=list)
    streams: list[Stream] = field(default_factory=lambda: ["search", "notifications", "posts"])
    base_url: str = DEFAULT_BASE_URL
    page_size: int = 50
    max_pages: int = 5
    lookback_hours: float = 24.0
    timeout_seconds: float = 20.0
    jetstream_url: str = ""
    listen_seconds: float = 20.0

    def __post_init__(self) -> None:
        self.handle = self.handle.strip().lstrip("@").lower()
        self.keywords = [k.strip() for k in self.keywords if k.strip()]
        if not self.handle:
            raise ValueError('handle is required: the brand\'s Bluesky handle, e.g. handle = "auroracaffe.bsky.social"')
        if not (self.handle.startswith("did:") or HANDLE.match(self.handle)):
            raise ValueError(
                f"handle {self.handle!r} is not a Bluesky handle: write the whole domain, e.g. "
                '"auroracaffe.bsky.social" (no @, no email)'
            )
        password = self.app_password.get_secret_value()
        if password and not APP_PASSWORD.match(password):
            raise ValueError(
                "app_password does not look like an app password (xxxx-xxxx-xxxx-xxxx): never use the account "
                f"password; create one in Bluesky under {APP_PASSWORDS}"
            )
        needs_account = [s for s in self.streams if s in ("search", "notifications")]
        if needs_account and not password:
            raise ValueError(
                f'{" and ".join(needs_account)} need the account: app_password = {{ env = "BLUESKY_APP_PASSWORD" }} '
                f"(an app password, from {APP_PASSWORDS})"
            )
        if "search" in self.streams and not self.keywords:
            raise ValueError('search needs keywords, e.g. keywords = ["Caffè Aurora"]; or drop "search" from streams')
        if urlsplit(self.base_url).scheme not in ("http", "https"):
            raise ValueError("base_url must be an http(s) URL (the account's PDS, e.g. https://bsky.social)")
        if self.jetstream_url:
            if urlsplit(self.jetstream_url).scheme not in ("ws", "wss"):
                raise ValueError(
                    "jetstream_url must be a ws(s) URL, e.g. wss://jetstream2.us-east.bsky.network/subscribe"
                )
            if not self.keywords:
                raise ValueError("jetstream_url keeps the posts that contain a keyword: set keywords")
            if not 0 < self.listen_seconds <= 120:
                raise ValueError("listen_seconds must be more than 0 and at most 120")
        if not self.streams and not self.jetstream_url:
            raise ValueError("nothing to listen to: name streams, or set jetstream_url")
        if not 1 <= self.page_size <= 100:
            raise ValueError("page_size must be between 1 and 100 (Bluesky's limits)")
        if self.max_pages < 1:
            raise ValueError("max_pages must be at least 1")
        if self.lookback_hours < 0:
            raise ValueError("lookback_hours must be 0 or more")
        if self.timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be more than 0")
        self._session = BlueskySession(self.handle, self.app_password, self.base_url, self.timeout_seconds)
        self._replier: BlueskyReplier | None = None

    def replier(self) -> BlueskyReplier | None:
        """Answer as the brand account, with the same signed-in session; None without an app password."""
        if not self._session.signed:
            return None
        if self._replier is None:
            self._replier = BlueskyReplier(self._session, account=self.handle, max_pages=self.max_pages)
        return self._replier

    # -- talking to Bluesky ------------------------------------------------------------------------

    def _call(self, action: Callable[[Client, Any], T], argument: Any, now: datetime) -> T:
        """``action(client, argument)`` through the session; a failure is the `SourceError` that says what to do."""
        try:
            return self._session.call(lambda client: action(client, argument))
        except FAILURES as error:
            raise self._failure(xrpc_problem(error, now)) from None

    def _brand(self, now: datetime) -> str:
        try:
            return self._session.brand_did()
        except FAILURES as error:
            raise self._failure(xrpc_problem(error, now)) from None

    def _failure(self, problem: XrpcProblem) -> SourceError:
        """The `SourceError` (or `RateLimited`) that says what to do."""
        words = self._session.scrub(problem.words)
        who = self._session.handle
        if problem.kind == "rate_limited":
            retry_at = problem.retry_at or datetime.now(UTC) + DEFAULT_PAUSE  # xrpc_problem always names one
            when = f"{retry_at.astimezone(UTC):%H:%M} UTC"
            what = "sign-ins (30 a 5 minutes, 300 a day)" if problem.signing_in else "requests"
            return RateLimited(f"Bluesky limits {what} ({words}); resuming at {when}", retry_at)
        if problem.kind == "login":
            return SourceError(
                f"Bluesky refused the app password for {who} ({words}): create a new app password ({APP_PASSWORDS}) "
                "and update the secret"
            )
        if problem.kind == "code":
            return SourceError(
                f"Bluesky asks {who} for an emailed sign-in code ({words}): that is the account password; use an app "
                f"password ({APP_PASSWORDS}), which needs no code"
            )
        if problem.kind == "token":
            return SourceError(
                f"Bluesky refused the session of {who} even after signing in again ({words}): check that the app "
                f"password is still listed under {APP_PASSWORDS}, or create a new one and update the secret"
            )
        if problem.kind == "taken_down":
            return SourceError(
                f"the Bluesky account {who} is taken down or deactivated ({words}): nothing can be read or answered "
                "until Bluesky restores it (appeal through Bluesky moderation)"
            )
        if problem.kind == "missing":
            return SourceError(f"Bluesky has no such account or post ({words}): check handle in the config")
        if problem.kind == "timeout":
            return SourceError(f"Bluesky: no answer within {self.timeout_seconds:g} s; will retry")
        if problem.kind == "unreachable":
            return SourceError(f"Bluesky could not be reached at {self.base_url} ({words}); will retry")
        if problem.kind == "dropped":
            return SourceError(f"Bluesky closed the connection without answering ({words}); will retry")
        if problem.kind == "server":
            return SourceError(f"Bluesky answered {problem.status} ({words}); will retry")
        if problem.kind == "shape":
            return SourceError(f"Bluesky answered in a shape the atproto SDK could not read ({words}); update atproto")
        return SourceError(f"Bluesky refused the request ({words})")

    # -- polling -----------------------------------------------------------------------------------

    def poll(self, cursor: Mapping[str, Any] | None, now: datetime) -> Poll:
        state: dict[str, Any] = json.loads(json.dumps(dict(cursor or {})))  # a deep copy: the stored one stays
        heard: dict[str, _Heard] = {}
        replies: dict[str, BrandReply] = {}
        truncated: list[str] = []
        brand = self._brand(now)
        start = now - timedelta(hours=self.lookback_hours)
        if "search" in self.streams:
            newest = dict(state.get("search") or {})
            for keyword in self.keywords:
                seen = at_time(newest.get(keyword))
                latest, complete = self._search(keyword, (seen - OVERLAP) if seen else start, brand, heard, now)
                if latest and (seen is None or latest > seen):
                    newest[keyword] = iso_z(latest)
                if not complete:
                    truncated.append(f"search:{keyword}")
            state["search"] = {k: v for k, v in newest.items() if k in self.keywords}
        if "notifications" in self.streams:
            seen = at_time((state.get("notifications") or {}).get("newest"))
            latest, complete = self._notifications((seen - OVERLAP) if seen else start, brand, heard, now)
            if latest and (seen is None or latest > seen):
                state["notifications"] = {"newest": iso_z(latest)}
            if not complete:
                truncated.append("notifications")
        if "posts" in self.streams:
            seen = at_time((state.get("posts") or {}).get("newest"))
            latest, complete = self._posts((seen - OVERLAP) if seen else start, brand, replies, now)
            if latest and (seen is None or latest > seen):
                state["posts"] = {"newest": iso_z(latest)}
            if not complete:
                truncated.append("posts")
        details: dict[str, Any] = {"account": self._session.handle, "did": brand, "truncated_streams": truncated}
        if self.jetstream_url:
            saved = (state.get("jetstream") or {}).get("time_us")
            position, listened = self._listen(int(saved) if saved else None, brand, heard, now)
            state["jetstream"] = {"time_us": position}
            details["jetstream"] = listened
        profiles = self._profiles(state.get("profiles") or {}, {h.did for h in heard.values()}, now)
        state["profiles"] = profiles
        details["sign_ins"] = self._session.sign_ins
        mentions = sorted((self._mention(h, profiles) for h in heard.values()), key=lambda m: m.published_at)
        return Poll(
            mentions=tuple(mentions),
            replies=tuple(sorted(replies.values(), key=lambda r: r.published_at)),
            cursor=state,
            details=details,
        )

    def _search(
        self, keyword: str, since: datetime, brand: str, heard: dict[str, _Heard], now: datetime
    ) -> tuple[datetime | None, bool]:
        """Pages of ``searchPosts`` for ``keyword``, newest first, since ``since``: (the newest post's time, whether
        the last page was reached)."""
        latest: datetime | None = None
        token: str | None = None
        for _ in range(self.max_pages):
            params = models.AppBskyFeedSearchPosts.Params(
                q=keyword, sort="latest", since=iso_z(since), limit=self.page_size, cursor=token
            )
            page = self._call(lambda c, p: c.app.bsky.feed.search_posts(p), params, now)
            for view in page.posts:
                record = view.record
                if not isinstance(record, models.AppBskyFeedPost.Record) or view.author.did == brand:
                    continue
                when = published(record, view.indexed_at)
                if when is None:
                    continue
                latest = max(latest, when) if latest else when
                heard.setdefault(
                    view.uri,
                    _Heard(
                        view.uri,
                        view.author.did,
                        view.author.handle,
                        view.author.display_name or "",
                        _verified(view.author),
                        record,
                        when,
                        _counts(view),
                    ),
                )
            token = page.cursor
            if not token or not page.posts:
                return latest, True
        return latest, False

    def _notifications(
        self, floor: datetime, brand: str, heard: dict[str, _Heard], now: datetime
    ) -> tuple[datetime | None, bool]:
        """Mentions, replies and quotes of the brand, newest first, down to ``floor``."""
        latest: datetime | None = None
        token: str | None = None
        for _ in range(self.max_pages):
            params = models.AppBskyNotificationListNotifications.Params(
                limit=self.page_size, reasons=list(MENTION_REASONS), cursor=token
            )
            page = self._call(lambda c, p: c.app.bsky.notification.list_notifications(p), params, now)
            for item in page.notifications:
                indexed = at_time(item.indexed_at)
                if indexed is None:
                    continue
                if indexed < floor:
                    return latest, True
                latest = max(latest, indexed) if latest else indexed
                record = item.record
                if item.reason not in MENTION_REASONS or not isinstance(record, models.AppBskyFeedPost.Record):
                    continue
                if item.author.did == brand:
                    continue
                when = published(record, item.indexed_at) or indexed
                found = _Heard(
                    item.uri,
                    item.author.did,
                    item.author.handle,
                    item.author.display_name or "",
                    _verified(item.author),
                    record,
                    when,
                    {},
                )
                heard.setdefault(item.uri, found)
            token = page.cursor
            if not token or not page.notifications:
                return latest, True
        return latest, False

    def _posts(
        self, floor: datetime, brand: str, replies: dict[str, BrandReply], now: datetime
    ) -> tuple[datetime | None, bool]:
        """The brand's own posts, newest first, down to ``floor``: each reply is a `BrandReply` to its parent."""
        latest: datetime | None = None
        token: str | None = None
        for _ in range(self.max_pages):
            params = models.AppBskyFeedGetAuthorFeed.Params(
                actor=brand, filter="posts_with_replies", limit=self.page_size, cursor=token
            )
            page = self._call(lambda c, p: c.app.bsky.feed.get_author_feed(p), params, now)
            for item in page.feed:
                view = item.post
                if item.reason is not None or view.author.did != brand:  # a repost or a pin: not the brand's words
                    continue
                record = view.record
                indexed = at_time(view.indexed_at)
                if indexed is None or not isinstance(record, models.AppBskyFeedPost.Record):
                    continue
                if indexed < floor:
                    return latest, True
                latest = max(latest, indexed) if latest else indexed
                if record.reply is None:
                    continue
                parent, root = record.reply.parent.uri, record.reply.root.uri
                replies[view.uri] = BrandReply(
                    platform="bluesky",
                    platform_id=view.uri,
                    source=self.name,
                    published_at=published(record, view.indexed_at) or indexed,
                    author_handle=self.handle,
                    in_reply_to=parent,
                    thread_id=root,
                    to_author_id=split_uri(parent)[0],
                    text=record.text,
                    url=post_url(view.author.handle, view.uri),
                )
            token = page.cursor
            if not token or not page.feed:
                return latest, True
        return latest, False

    # -- Jetstream ---------------------------------------------------------------------------------

    def _jetstream(self, cursor_us: int) -> str:
        parts = urlsplit(self.jetstream_url)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("wantedCollections", "cursor")]
        query += [("wantedCollections", POST_COLLECTION), ("cursor", str(cursor_us))]
        return urlunsplit(parts._replace(query=urlencode(query)))

    def _listen(
        self, cursor_us: int | None, brand: str, heard: dict[str, _Heard], now: datetime
    ) -> tuple[int, dict[str, Any]]:
        """Read Jetstream from ``cursor_us`` (the poll's time on the first poll) until an event reaches the poll's
        time or ``listen_seconds`` pass; keep new posts containing a keyword. Returns the ``time_us`` to resume
        from and what was read. A connection that breaks midway keeps what it brought (the cursor is the last event
        read); one that cannot be opened fails the poll, and passaparola retries it with backoff."""
        now_us = int(now.timestamp() * 1_000_000)
        position = cursor_us if cursor_us is not None else now_us
        words = [k.casefold() for k in self.keywords]
        read = matched = 0
        ended = ""
        deadline = time.monotonic() + self.listen_seconds
        try:
            with connect(
                self._jetstream(position),
                open_timeout=self.timeout_seconds,
                close_timeout=2,
                proxy=None,
                max_size=2**20,
                user_agent_header="passaparola (atproto listener)",
            ) as stream:
                while (left := deadline - time.monotonic()) > 0:
                    try:
                        frame = stream.recv(timeout=left)
                    except TimeoutError:
                        break
                    try:
                        event = json.loads(frame)
                        time_us = int(event["time_us"])
                    except (ValueError, TypeError, KeyError):
                        continue
                    read += 1
                    position = max(position, time_us)
                    if self._keep(event, brand, words, heard):
                        matched += 1
                    if time_us >= now_us:
                        break  # caught up with the poll's time: what follows is the next poll's
        except ConnectionClosed as closed:
            ended = f"closed by Jetstream ({closed.rcvd.code if closed.rcvd else 'no close frame'})"
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as error:
            raise SourceError(
                f"Jetstream at {self.jetstream_url} could not be opened ({type(error).__name__}: {error}); "
                "passaparola retries with backoff"
            ) from None
        lag = max(0.0, (now_us - position) / 1_000_000)
        return position, {"events": read, "matched": matched, "lag_seconds": round(lag, 1), "ended": ended}

    def _keep(self, event: Mapping[str, Any], brand: str, words: list[str], heard: dict[str, _Heard]) -> bool:
        """Whether a Jetstream event is a new post by someone else containing a keyword (and keep it)."""
        commit = event.get("commit")
        if event.get("kind") != "commit" or not isinstance(commit, dict):
            return False
        if commit.get("operation") != "create" or commit.get("collection") != POST_COLLECTION:
            return False
        did, rkey, raw = str(event.get("did", "")), str(commit.get("rkey", "")), commit.get("record")
        if not did or not rkey or did == brand or not isinstance(raw, dict):
            return False
        if not any(word in str(raw.get("text", "")).casefold() for word in words):
            return False
        try:
            record = get_or_create(raw, models.AppBskyFeedPost.Record)
        except exceptions.ModelError:
            return False
        if not isinstance(record, models.AppBskyFeedPost.Record):
            return False
        seen_at = datetime.fromtimestamp(int(event["time_us"]) / 1_000_000, UTC)
        when = min(t for t in (at_time(record.created_at), seen_at) if t is not None)
        uri = f"at://{did}/{POST_COLLECTION}/{rkey}"
        heard.setdefault(uri, _Heard(uri, did, "", "", False, record, when, {}))
        return True

    # -- authors -----------------------------------------------------------------------------------

    def _profiles(self, cached: Mapping[str, Any], dids: set[str], now: datetime) -> dict[str, Any]:
        """The profile cache with every author of ``dids`` fresh (``getProfiles``, 25 at a time), entries older
        than a day dropped, at most `PROFILE_CACHE_MAX` kept (the newest)."""
        profiles = {
            did: entry
            for did, entry in cached.items()
            if isinstance(entry, dict) and (at := at_time(entry.get("at"))) is not None and now - at < PROFILE_TTL
        }
        wanted = sorted(did for did in dids if did not in profiles)
        for start in range(0, len(wanted), BATCH):
            params = models.AppBskyActorGetProfiles.Params(actors=wanted[start : start + BATCH])
            found = self._call(lambda c, p: c.app.bsky.actor.get_profiles(p), params, now)
            for profile in found.profiles:
                profiles[profile.did] = {
                    "handle": profile.handle,
                    "name": profile.display_name or "",
                    "followers": int(profile.followers_count or 0),
                    "verified": _verified(profile),
                    "at": iso_z(now),
                }
        if len(profiles) > PROFILE_CACHE_MAX:
            newest = sorted(profiles.items(), key=lambda item: str(item[1].get("at")), reverse=True)
            profiles = dict(newest[:PROFILE_CACHE_MAX])
        return profiles

    def _mention(self, heard: _Heard, profiles: Mapping[str, Any]) -> Mention:
        profile = profiles.get(heard.did) or {}
        handle = heard.handle or str(profile.get("handle") or "") or heard.did
        record = heard.record
        reply = record.reply
        return Mention(
            platform="bluesky",
            platform_id=heard.uri,
            source=self.name,
            text=record.text,
            published_at=heard.when,
            author=Author(
                platform="bluesky",
                platform_id=heard.did,
                handle=handle,
                display_name=heard.name or str(profile.get("name") or ""),
                reach=int(profile.get("followers") or 0),
                verified=heard.verified or bool(profile.get("verified")),
            ),
            url=post_url(handle, heard.uri),
            thread_id=reply.root.uri if reply else heard.uri,
            in_reply_to=reply.parent.uri if reply else "",
            language_hint=language(record.langs),
            metrics=heard.metrics,
        )


# -- answering ---------------------------------------------------------------------------------------------


@dataclass
class BlueskyReplier:
    """Posts the brand's answers in the mention's thread, as the brand account (see `listener.replying.Replier`).

    The reply is an ``app.bsky.feed.post`` record created with ``com.atproto.repo.createRecord`` whose ``reply``
    names the thread's root and the mention as parent (both as uri + cid, read with ``app.bsky.feed.getPosts``).
    @handles and links in the text become facets, so they notify and link as in the app. `find` reads the brand's
    own repository (``com.atproto.repo.listRecords``) rather than the author feed: the PDS has a new post at once,
    the AppView a moment later, and a lookup that missed it would post it twice.
    """

    session: BlueskySession = field(repr=False)
    account: str = ""
    max_pages: int = 5
    channel: str = field(default="bluesky", init=False)

    # -- the Replier protocol --------------------------------------------------------------------

    def check(self, text: str) -> str:
        """Why Bluesky would refuse ``text`` as a post, or "" when it can be posted."""
        if not text.strip():
            return "the reply is empty: write something to post"
        count = graphemes(text)
        if count > MAX_GRAPHEMES:
            return f"{count} characters; Bluesky allows {MAX_GRAPHEMES}: shorten it"
        size = len(text.encode("utf-8"))
        if size > MAX_TEXT_BYTES:
            return f"{size} bytes of text; Bluesky allows {MAX_TEXT_BYTES}: shorten it"
        return ""

    def cost_usd(self, text: str) -> float:
        """Bluesky posts are free."""
        return 0.0

    def reply(self, mention: Mention, text: str, now: datetime) -> SentReply:
        """Post ``text`` under ``mention`` in its thread; the post's AT URI is the brand reply's id."""
        if problem := self.check(text):
            raise ReplyError("too_long" if text.strip() else "refused", problem)
        root, parent = self._refs(mention, now)
        facets = self._read(lambda c, t: c.detect_facets(t), text, now) or None
        lang = str(mention.tags.get("language") or mention.language_hint or "")
        record = models.AppBskyFeedPost.Record(
            text=text,
            created_at=iso_z(now),
            reply=models.AppBskyFeedPost.ReplyRef(root=root, parent=parent),
            langs=[lang] if lang else None,
            facets=facets,
        )
        try:
            created = self.session.call(lambda c: c.app.bsky.feed.post.create(self.session.brand_did(), record))
        except FAILURES as error:
            raise self._failure(xrpc_problem(error, now), now, wrote=True) from None
        return SentReply(platform_id=created.uri, url=post_url(self.account, created.uri), text=text, published_at=now)

    def find(self, mention: Mention, text: str, since: datetime, now: datetime) -> SentReply | None:
        """The brand's post replying to ``mention`` with ``text``, created at or after ``since`` (less a minute of
        clock skew): the brand's repository newest first, at most ``max_pages`` pages. Raises `ReplyError`."""
        earliest = since - CLOCK_SKEW
        token: str | None = None
        for _ in range(self.max_pages):
            page = self._read(
                lambda c, t: c.app.bsky.feed.post.list(self.session.brand_did(), cursor=t, limit=100), token, now
            )
            for uri, record in page.records.items():
                created = at_time(getattr(record, "created_at", None))
                if created is None:
                    continue
                if created < earliest:
                    return None  # newest first (record keys are times): everything further is older still
                reply = getattr(record, "reply", None)
                if reply is None or reply.parent.uri != mention.platform_id or not _same_text(record.text, text):
                    continue
                return SentReply(
                    platform_id=uri, url=post_url(self.account, uri), text=record.text, published_at=created
                )
            token = page.cursor
            if not token or not page.records:
                return None
        return None

    # -- talking to Bluesky ------------------------------------------------------------------------

    def _read(self, action: Callable[[Client, Any], T], argument: Any, now: datetime) -> T:
        """``action(client, argument)`` for a reply; any failure is a `ReplyError` (a timeout is ``unavailable``: a
        read posts nothing)."""
        try:
            return self.session.call(lambda client: action(client, argument))
        except FAILURES as error:
            raise self._failure(xrpc_problem(error, now), now, wrote=False) from None

    def _refs(
        self, mention: Mention, now: datetime
    ) -> tuple[models.ComAtprotoRepoStrongRef.Main, models.ComAtprotoRepoStrongRef.Main]:
        """(root, parent) of the answer: the mention is the parent; the root is the mention's own root (as the
        mention's record names it), or the mention when it starts the thread."""
        params = models.AppBskyFeedGetPosts.Params(uris=[mention.platform_id])
        found = self._read(lambda c, p: c.app.bsky.feed.get_posts(p), params, now)
        view = next((p for p in found.posts if p.uri == mention.platform_id), None)
        if view is None:
            raise ReplyError("deleted", "the post is gone, or not visible to the brand account: nothing was posted")
        if view.viewer is not None and view.viewer.reply_disabled:
            raise ReplyError(
                "refused", "the author allows replies only from some people (a thread gate): answer another way"
            )
        author_viewer = view.author.viewer
        if author_viewer is not None and author_viewer.blocked_by:
            raise ReplyError("refused", f"@{view.author.handle} blocks the brand account: the reply could not be seen")
        parent = models.ComAtprotoRepoStrongRef.Main(uri=view.uri, cid=view.cid)
        record = view.record
        reply = record.reply if isinstance(record, models.AppBskyFeedPost.Record) else None
        root = models.ComAtprotoRepoStrongRef.Main(uri=reply.root.uri, cid=reply.root.cid) if reply else parent
        return root, parent

    # -- what Bluesky's errors mean --------------------------------------------------------------

    def _failure(self, problem: XrpcProblem, now: datetime, wrote: bool) -> ReplyError:
        """What a failed call means for the reply. Only a write that may have reached Bluesky is ``unknown``."""
        words = self.session.scrub(problem.words)
        kind = problem.kind
        if kind in ("login", "token", "code"):
            return self._error(
                "expired_token",
                f"Bluesky refused the app password of {self.account} ({words}): create a new app password "
                f"({APP_PASSWORDS}) and update the secret",
            )
        if kind == "rate_limited":
            retry_at = problem.retry_at or now + DEFAULT_PAUSE
            when = f"{retry_at.astimezone(UTC):%H:%M} UTC"
            return self._error("rate_limited", f"Bluesky asks us to wait ({words}); trying again at {when}", retry_at)
        if kind in ("taken_down", "forbidden"):
            return self._error("permission", f"Bluesky does not let {self.account} post ({words})")
        if kind == "missing":
            return self._error("deleted", f"the post is gone ({words}): nothing was posted")
        if kind == "unreachable":
            return self._error("unavailable", f"Bluesky could not be reached ({words}); nothing was posted")
        uncertain = kind in ("timeout", "dropped", "shape") or (kind == "server" and problem.status in (502, 504))
        if wrote and uncertain and problem.sent:
            return self._error(
                "unknown",
                f"Bluesky did not confirm the post ({words}); it may exist, so the thread is looked up before any "
                "retry",
            )
        if kind in ("server", "timeout", "dropped", "shape"):
            return self._error("unavailable", f"Bluesky did not answer as it should ({words}); nothing was posted")
        if kind == "invalid" and "longer than" in problem.message:
            return self._error("too_long", f"Bluesky refused the length ({words}): shorten it")
        return self._error("refused", f"Bluesky refused the reply ({words})")

    def _error(self, problem: ReplyProblem, message: str, retry_at: datetime | None = None) -> ReplyError:
        return ReplyError(problem, self.session.scrub(message), retry_at)
