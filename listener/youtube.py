"""`youtube`: comments on the brand channel's videos, and the channel's own replies, through the YouTube Data API v3.

Each poll walks ``commentThreads?allThreadsRelatedToChannelId=`` newest first (``order=time``) down to ten minutes
before the newest top-level comment the last poll saw. A thread's ``replies`` part carries at most five replies: when
``totalReplyCount`` says there are more than that, and more than the cursor knew, the thread's replies are read with
``comments?parentId=``. Threads active in the last ``watch_days`` are looked up again by id (fifty a call) on every
poll, since a new reply does not bring an old thread back to the top of the walk: a customer who answers the brand a
day later is heard. Authors' subscriber counts (``channels?part=statistics``) are the reach, kept in the cursor for a
day.

A comment written by the channel itself is a brand reply. YouTube threads are two levels deep, so a reply by the
channel answers the thread's top-level comment and every earlier reply of that comment's author (``to_author_id`` is
that author, not `listener.model.EVERYONE_IN_THREAD`: anyone can reply in a thread, and the channel answering Giulia
answers nobody else). A reply that starts with another replier's ``@handle``, as YouTube writes it when one clicks
"Reply" under a reply, answers that person instead.

YouTube counts a quota of units a day per Google Cloud project (10,000 unless more was granted), reset at midnight
Pacific time: every list call costs 1, a reply 50. The cursor counts them as ``{"day": "2026-03-02", "units": n}``
(the Pacific date) and reads stop, saying so in `Poll.details`, once the day's units (less those kept for replies)
are spent; Google's own 403 ``quotaExceeded`` pauses the source until the next Pacific midnight.

Reads carry the API key in the ``X-Goog-Api-Key`` header (Google takes it there as well as in ``key=``), so it never
is part of a URL, and so of a log line. Writes need OAuth 2.0 of the channel owner: the refresh token is exchanged
with google-auth for an access token, cached until it expires, sent as a Bearer header. Without an API key, reads use
that token too.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import google.auth.exceptions
import google.auth.transport.requests
import httpx
import requests
from google.oauth2.credentials import Credentials
from pydantic import SecretStr

from listener.model import Author, BrandReply, Mention, Poll, RateLimited, SourceError
from listener.replying import ReplyError, ReplyProblem, SentReply

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://www.googleapis.com/youtube/v3"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
#: The one scope that lets the channel owner's token read and post comments.
SCOPE = "https://www.googleapis.com/auth/youtube.force-ssl"
#: YouTube's quota day ends at midnight in this zone.
PACIFIC = ZoneInfo("America/Los_Angeles")
#: Quota units a call costs: every list call 1, ``comments.insert`` 50.
LIST_UNITS = 1
INSERT_UNITS = 50
#: The longest comment YouTube takes, in characters.
MAX_COMMENT_CHARS = 10_000
#: How far back, before the newest top-level comment already seen, each walk reads again (comments held for review
#: and approved later keep the time they were written).
OVERLAP = timedelta(minutes=10)
#: How long an author's subscriber count is kept before it is asked again.
REACH_TTL = timedelta(days=1)
#: Ids one ``channels`` or ``commentThreads?id=`` call takes.
IDS_PER_CALL = 50
#: The pause after a 403 rateLimitExceeded or a 429 (a per-minute limit).
RATE_PAUSE = timedelta(minutes=1)
#: How much of Google's own words a message carries at most.
WORDS = 200
MASK = "[secret]"
#: How far before ``since`` `YouTubeReplier.find` still accepts a comment of ours (Google's clock and ours differ).
CLOCK_SKEW = timedelta(minutes=1)
_CHANNEL_ID = re.compile(r"^UC[0-9A-Za-z_-]{22}$")
_TAGS = re.compile(r"<[^>]+>")
_LEADING_HANDLE = re.compile(r"^\s*@([\w.\-·]+)")


# -- the quota day --------------------------------------------------------------------------------


def quota_day(now: datetime) -> str:
    """The Pacific date ``now`` falls on: the day YouTube counts units against."""
    return now.astimezone(PACIFIC).date().isoformat()


def next_reset(now: datetime) -> datetime:
    """The next midnight in Pacific time (aware UTC): when YouTube's daily quota starts again."""
    tomorrow = now.astimezone(PACIFIC).date() + timedelta(days=1)
    return datetime.combine(tomorrow, time(0), tzinfo=PACIFIC).astimezone(UTC)


def day_quota(saved: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """Today's units so far: what the cursor saved, unless it was another Pacific day's."""
    day = quota_day(now)
    if saved.get("day") != day:
        return {"day": day, "units": 0}
    return {"day": day, "units": _int(saved.get("units"))}


@dataclass
class QuotaLedger:
    """Units a replier spent, by Pacific day, until the source's next poll adds them to the cursor's count.

    The replier has no cursor of its own. A reply sent in the process that polls (the daemon's reply pass, or the web
    app `passaparola run` serves beside it: both use the source's one replier) is counted this way; one sent from
    another process (a web app or a CLI command of its own) is not, and reaches the count only through Google's
    quotaExceeded."""

    spent: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def spend(self, now: datetime, units: int) -> None:
        with self.lock:
            day = quota_day(now)
            self.spent[day] = self.spent.get(day, 0) + units

    def pending(self, day: str) -> int:
        """The units spent on ``day`` that no cursor counts yet."""
        with self.lock:
            return self.spent.get(day, 0)

    def settle(self, day: str, units: int) -> None:
        """``units`` of ``day`` are in a cursor now; other days' are dropped (their quota is gone)."""
        with self.lock:
            left = self.spent.get(day, 0) - units
            self.spent = {day: left} if left > 0 else {}


# -- reading Google's answers ---------------------------------------------------------------------


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def yt_time(value: Any) -> datetime:
    """YouTube's ``2026-03-02T08:00:00Z`` (fractions of a second allowed) as an aware UTC datetime."""
    moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone")
    return moment.astimezone(UTC)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _words(message: Any) -> str:
    """Google's message without its HTML (its quota message links the docs), short."""
    return " ".join(_TAGS.sub("", str(message or "")).split())[:WORDS]


Trouble = Literal[
    "key",  # the API key is wrong, expired, or its restrictions block the call
    "token",  # the OAuth access token is wrong or expired (401)
    "quota",  # the day's quota is spent
    "rate",  # too many requests a minute
    "comments_disabled",  # the video's comments are turned off
    "scope",  # the token lacks the youtube.force-ssl scope
    "forbidden",  # anything else 403 (the key's project has the API off, the account may not comment)
    "not_found",  # the channel, thread or comment is not there (404)
    "too_long",  # commentTextTooLong
    "cannot_reply",  # operationNotSupported, parentCommentIsPrivate: YouTube will not take a reply there
    "server",  # YouTube's own failure (5xx)
    "other",
]
QUOTA_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded", "dailyLimitExceededUnreg"})
RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
KEY_REASONS = frozenset({"keyInvalid", "keyExpired", "ipRefererBlocked", "accessNotConfigured"})


@dataclass(frozen=True, slots=True)
class GoogleProblem:
    """A Google API error answer read once for the source and the replier: what it means, the first reason, and
    Google's words (HTML removed, at most 200 characters)."""

    kind: Trouble
    status: int
    reason: str
    message: str


def google_body(response: httpx.Response) -> Any:
    """The JSON Google answered, or ``{}`` when the body is not JSON (a proxy's error page)."""
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}


def google_problem(response: httpx.Response, body: Any) -> GoogleProblem | None:
    """What went wrong, or None for a 2xx. Google's ``{"error": {"code", "message", "errors": [{"reason", "domain",
    "message"}], "details": [{"@type": "...ErrorInfo", "reason": "API_KEY_INVALID"}]}}`` is read by its reasons
    first (``errors[].reason``, then ``details[].reason``), by the status after."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    found = body.get("error") if isinstance(body, dict) else None
    error: dict[str, Any] = found if isinstance(found, dict) else {}
    listed: list[Any] = error["errors"] if isinstance(error.get("errors"), list) else []
    reasons = [str(e.get("reason", "")) for e in listed if isinstance(e, dict)]
    details: list[Any] = error["details"] if isinstance(error.get("details"), list) else []
    infos = [str(d.get("reason", "")) for d in details if isinstance(d, dict)]
    message = _words(error.get("message") or next((e.get("message") for e in listed if isinstance(e, dict)), ""))
    said = set(reasons)
    kind: Trouble = "other"
    if said & QUOTA_REASONS:
        kind = "quota"
    elif said & RATE_REASONS or status == 429:
        kind = "rate"
    elif "commentsDisabled" in said:
        kind = "comments_disabled"
    elif said & KEY_REASONS or any(i.startswith("API_KEY_") for i in infos) or "API key" in message:
        kind = "key"
    elif status == 401:
        kind = "token"
    elif "insufficientPermissions" in said or "ACCESS_TOKEN_SCOPE_INSUFFICIENT" in infos:
        kind = "scope"
    elif "commentTextTooLong" in said:
        kind = "too_long"
    elif said & {"operationNotSupported", "parentCommentIsPrivate"}:
        kind = "cannot_reply"
    elif status == 404:
        kind = "not_found"
    elif status == 403:
        kind = "forbidden"
    elif status >= 500:
        kind = "server"
    return GoogleProblem(kind, status, reasons[0] if reasons else (infos[0] if infos else ""), message)


# -- who the requests are from --------------------------------------------------------------------


class TokenTrouble(Exception):
    """The OAuth token could not be had: ``grant`` (renew the refresh token), ``client`` (client id or secret),
    ``scope`` or ``unavailable`` (the token endpoint could not be reached or failed; try again later)."""

    def __init__(self, kind: Literal["grant", "client", "scope", "unavailable"], message: str) -> None:
        super().__init__(message)
        self.kind = kind


class _TokenEndpointBusy(Exception):
    """The token endpoint failed in a way google-auth would retry, sleeping: we give up at once instead."""


_RETRYABLE_OAUTH = frozenset({"internal_failure", "server_error", "temporarily_unavailable"})


class _BoundedRequest:
    """google-auth's requests transport with our timeout on every call, no proxies from the environment, and no
    retries (google-auth sleeps between them; a poll must never sleep)."""

    def __init__(self, timeout: float) -> None:
        session = requests.Session()
        session.trust_env = False
        self._request = google.auth.transport.requests.Request(session)
        self._timeout = timeout

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        response = self._request(url, method=method, body=body, headers=headers, timeout=self._timeout, **kwargs)
        if response.status >= 500 or response.status in (408, 429):
            raise _TokenEndpointBusy(f"the token endpoint answered {response.status}")
        if response.status != 200:
            try:
                said = json.loads(response.data)
            except (TypeError, ValueError):
                said = {}
            if isinstance(said, dict) and (
                {str(said.get("error")), str(said.get("error_description"))} & _RETRYABLE_OAUTH
            ):
                raise _TokenEndpointBusy(f"the token endpoint answered {response.status} ({said.get('error')})")
        return response


@dataclass
class GoogleAuth:
    """The API key and the channel owner's OAuth client, shared by a source and its replier: one cached access
    token, refreshed with google-auth when it has expired (or YouTube refused it), and one way to mask them all."""

    api_key: SecretStr
    client_id: SecretStr
    client_secret: SecretStr
    refresh_token: SecretStr
    token_uri: str = DEFAULT_TOKEN_URI
    timeout_seconds: float = 20.0
    _credentials: Credentials | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _transport: _BoundedRequest | None = field(default=None, init=False, repr=False)

    @property
    def oauth(self) -> bool:
        return all(s.get_secret_value() for s in (self.client_id, self.client_secret, self.refresh_token))

    def mask(self, text: str) -> str:
        """``text`` without any secret: the key, the client's, the refresh token and the access token."""
        secrets = [s.get_secret_value() for s in (self.api_key, self.client_secret, self.refresh_token)]
        if self._credentials is not None and self._credentials.token:
            secrets.append(str(self._credentials.token))
        for secret in secrets:
            if secret:
                text = text.replace(secret, MASK)
        return text

    def read_headers(self) -> dict[str, str]:
        """How reads identify themselves: the API key when there is one (reads then spare the OAuth token)."""
        if self.api_key.get_secret_value():
            return {"X-Goog-Api-Key": self.api_key.get_secret_value()}
        return self.bearer()

    def bearer(self) -> dict[str, str]:
        """The ``Authorization`` header of the channel owner, refreshing the access token when it has expired.
        Raises `TokenTrouble`."""
        with self._lock:
            if self._credentials is None:
                self._credentials = Credentials(
                    token=None,
                    refresh_token=self.refresh_token.get_secret_value(),
                    token_uri=self.token_uri,
                    client_id=self.client_id.get_secret_value(),
                    client_secret=self.client_secret.get_secret_value(),
                    scopes=[SCOPE],
                )
            if not self._credentials.valid:
                self._refresh(self._credentials)
            return {"Authorization": f"Bearer {self._credentials.token}"}

    def forget(self) -> None:
        """Drop the cached access token (YouTube refused it): the next `bearer` asks for a new one."""
        with self._lock:
            if self._credentials is not None:
                self._credentials.token = None

    def _refresh(self, credentials: Credentials) -> None:
        if self._transport is None:
            self._transport = _BoundedRequest(self.timeout_seconds)
        try:
            credentials.refresh(self._transport)
        except google.auth.exceptions.RefreshError as error:
            said = error.args[1] if len(error.args) > 1 and isinstance(error.args[1], dict) else {}
            code = str(said.get("error") or "")
            words = self.mask(_words(error.args[0] if error.args else error))
            if code in ("invalid_client", "unauthorized_client"):
                raise TokenTrouble(
                    "client",
                    f"Google refused the OAuth client ({words}): copy client_id and client_secret again from the "
                    "OAuth client in Google Cloud console (APIs & Services > Credentials) and update the secrets",
                ) from None
            if code == "invalid_scope":
                raise TokenTrouble(
                    "scope",
                    f"Google refused the scope ({words}): the channel owner must authorize again granting "
                    f"{SCOPE}, then update refresh_token",
                ) from None
            raise TokenTrouble(
                "grant",
                f"Google refused the refresh token ({words}): the channel owner must authorize passaparola again "
                f"(scope {SCOPE}) and you update refresh_token; an OAuth app left in Testing loses its refresh "
                "tokens after 7 days, so publish it to Production",
            ) from None
        except (_TokenEndpointBusy, google.auth.exceptions.TransportError) as error:
            detail = str(error) if isinstance(error, _TokenEndpointBusy) else type(error.__cause__ or error).__name__
            raise TokenTrouble(
                "unavailable", f"Google's token endpoint could not give an access token ({self.mask(detail)}); retrying"
            ) from None


# -- the source -----------------------------------------------------------------------------------


class _QuotaSpent(Exception):
    """The day's units (less those kept for replies) are spent: stop reading until the Pacific midnight."""


class _CommentsOff(Exception):
    """The video's comments were turned off: its threads are skipped."""

    def __init__(self, video: str) -> None:
        super().__init__(video)
        self.video = video


def _same_text(a: str, b: str) -> bool:
    """Equal once Unicode-normalised and with runs of whitespace collapsed (YouTube trims and may re-space)."""

    def norm(text: str) -> str:
        return " ".join(unicodedata.normalize("NFC", text).split())

    return norm(a) == norm(b)


def _handle(display_name: str) -> tuple[str, str]:
    """``(handle, display name)`` from ``authorDisplayName``: YouTube gives ``@handle`` for channels with one (all,
    since 2023), which is a handle; a bare name is both, as for platforms that know names only."""
    name = display_name.strip()
    if name.startswith("@") and len(name) > 1:
        return name[1:], ""
    name = name or "someone on YouTube"
    return name, name


def watch_url(video_id: str, comment_id: str) -> str:
    """The comment's own link: the video, scrolled to the comment."""
    return f"https://www.youtube.com/watch?v={video_id}&lc={comment_id}" if video_id else ""


@dataclass
class _Walk:
    """What one poll heard and spent, as it goes."""

    quota: dict[str, Any]
    limit: int
    now: datetime
    threads: dict[str, dict[str, Any]]
    mentions: dict[str, Mention] = field(default_factory=dict)
    replies: dict[str, BrandReply] = field(default_factory=dict)
    disabled: set[str] = field(default_factory=set)
    read: set[str] = field(default_factory=set)


@dataclass
class YouTubeSource:
    """The brand's YouTube channel: comments and replies on its videos, the channel's own replies answering them."""

    kind: ClassVar[str] = "youtube"
    name: str
    channel_id: str = ""
    api_key: SecretStr = field(default_factory=lambda: SecretStr(""), repr=False)
    # The channel owner's OAuth 2.0 client and refresh token (scope youtube.force-ssl): replies from passaparola,
    # and reads when there is no API key. None of them: replies are copied and posted by hand.
    client_id: SecretStr = field(default_factory=lambda: SecretStr(""), repr=False)
    client_secret: SecretStr = field(default_factory=lambda: SecretStr(""), repr=False)
    refresh_token: SecretStr = field(default_factory=lambda: SecretStr(""), repr=False)
    token_uri: str = DEFAULT_TOKEN_URI
    base_url: str = DEFAULT_BASE_URL
    #: The channel's handle as its comments show it, without "@" (learned from them when left empty).
    account: str = ""
    daily_quota_units: int = 10_000
    #: Units the reads leave for replies when the source can reply (50 a reply).
    reply_reserve_units: int = 1_000
    max_pages: int = 5
    max_reply_pages: int = 3
    watch_days: int = 7
    max_watched_threads: int = 100
    timeout_seconds: float = 20.0

    def __post_init__(self) -> None:
        self.account = self.account.strip().lstrip("@")
        if not _CHANNEL_ID.match(self.channel_id):
            raise ValueError(
                "channel_id must be the channel's id, UC followed by 22 characters (YouTube Studio > Settings > "
                "Channel > Advanced settings), not its @handle"
            )
        given = [bool(s.get_secret_value()) for s in (self.client_id, self.client_secret, self.refresh_token)]
        if any(given) and not all(given):
            raise ValueError(
                "OAuth needs all three of client_id, client_secret and refresh_token (secret references), or none"
            )
        if not self.api_key.get_secret_value() and not all(given):
            raise ValueError(
                'api_key is required: api_key = { env = "YOUTUBE_API_KEY" } (or the OAuth client_id, client_secret '
                "and refresh_token of the channel owner)"
            )
        for option in ("base_url", "token_uri"):
            if urlsplit(getattr(self, option)).scheme not in ("http", "https"):
                raise ValueError(f"{option} must be an http(s) URL")
        if self.daily_quota_units < 1:
            raise ValueError("daily_quota_units must be the project's daily quota (10000 unless Google granted more)")
        if self.reply_reserve_units < 0 or (all(given) and self.reply_reserve_units >= self.daily_quota_units):
            raise ValueError("reply_reserve_units must be 0 or more, and less than daily_quota_units")
        if not 1 <= self.max_pages <= 50 or not 1 <= self.max_reply_pages <= 50:
            raise ValueError("max_pages and max_reply_pages must be between 1 and 50")
        if self.watch_days < 0 or not 0 <= self.max_watched_threads <= 1000:
            raise ValueError("watch_days must be 0 or more, max_watched_threads between 0 and 1000")
        if self.timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be more than 0")
        self._auth = GoogleAuth(
            self.api_key, self.client_id, self.client_secret, self.refresh_token, self.token_uri, self.timeout_seconds
        )
        self._ledger = QuotaLedger()
        self._replier: YouTubeReplier | None = None

    @property
    def read_limit(self) -> int:
        """The day's units reads may spend: the quota, less what is kept for replies when this source can reply."""
        return self.daily_quota_units - (self.reply_reserve_units if self._auth.oauth else 0)

    def replier(self) -> YouTubeReplier | None:
        """How this source answers as the channel, or None without the channel owner's OAuth client and token."""
        if not self._auth.oauth:
            return None
        if self._replier is None:
            self._replier = YouTubeReplier(
                channel_id=self.channel_id,
                auth=self._auth,
                ledger=self._ledger,
                base_url=self.base_url,
                timeout_seconds=self.timeout_seconds,
                account=self.account or self.channel_id,
                daily_quota_units=self.daily_quota_units,
            )
        return self._replier

    # -- polling ---------------------------------------------------------------------------------

    def poll(self, cursor: Mapping[str, Any] | None, now: datetime) -> Poll:
        state = dict(cursor or {})
        quota = day_quota(state.get("quota") or {}, now)
        earlier = self._ledger.pending(quota["day"])  # replies sent, and failed polls' calls, since the last poll
        quota["units"] += earlier
        before = quota["units"]
        threads = {
            str(k): dict(v)
            for k, v in (state.get("threads") or {}).items()
            if isinstance(v, dict) and _recent(v.get("at"), now, self.watch_days)
        }
        walk = _Walk(quota=quota, limit=self.read_limit, now=now, threads=threads)
        newest = str(state.get("newest") or "")
        spent = truncated = False
        with httpx.Client(timeout=self.timeout_seconds, trust_env=False) as client:
            try:
                newest, truncated = self._walk(client, walk, newest)
                self._watched(client, walk)
            except _QuotaSpent:
                spent = True
            except SourceError:  # no cursor is stored: the calls made are counted by the next poll
                self._ledger.spend(now, quota["units"] - before)
                raise
            reach = self._reach(client, walk, dict(state.get("reach") or {}))
        self._ledger.settle(quota["day"], earlier)
        watched = sorted(walk.threads.items(), key=lambda item: str(item[1].get("at", "")), reverse=True)
        if spent:
            log.warning("youtube source %s: the day's %d units are spent; reading resumes", self.name, walk.limit)
        return Poll(
            mentions=tuple(
                replace(m, author=replace(m.author, reach=reach.get(m.author.platform_id, {}).get("n", 0)))
                for m in walk.mentions.values()
            ),
            replies=tuple(walk.replies.values()),
            cursor={
                "newest": newest,
                "threads": dict(watched[: self.max_watched_threads]),
                "quota": quota,
                "reach": reach,
            },
            details={
                "quota_day": quota["day"],
                "units_today": quota["units"],
                "daily_quota_units": self.daily_quota_units,
                "read_units_limit": walk.limit,
                "quota_spent": quota["day"] if spent else "",
                "resumes_at": next_reset(now).isoformat() if spent else "",
                "threads_read": len(walk.read),
                "watched_threads": min(len(watched), self.max_watched_threads),
                "comments_disabled": sorted(walk.disabled),
                "truncated": truncated,
            },
        )

    def _walk(self, client: httpx.Client, walk: _Walk, newest: str) -> tuple[str, bool]:
        """The channel's threads newest first down to the overlap before ``newest``: (the new newest, whether
        ``max_pages`` ran out first). A walk the quota stops keeps ``newest`` as it was, so nothing is skipped."""
        stop = yt_time(newest) - OVERLAP if newest else None
        params: dict[str, Any] = {
            "part": "snippet,replies",
            "allThreadsRelatedToChannelId": self.channel_id,
            "order": "time",
            "maxResults": 100,
            "textFormat": "plainText",
        }
        seen = newest
        for _ in range(self.max_pages):
            body = self._get(client, walk, "commentThreads", params)
            for item in body.get("items") or []:
                if not isinstance(item, dict):
                    continue
                top = ((item.get("snippet") or {}).get("topLevelComment") or {}).get("snippet") or {}
                try:
                    published = yt_time(top.get("publishedAt"))
                except ValueError:
                    log.warning("youtube source %s: thread %s has no publishedAt: skipped", self.name, item.get("id"))
                    continue
                if stop is not None and published < stop:
                    return seen, False
                if not seen or published > yt_time(seen):
                    seen = _stamp(published)
                self._thread(client, walk, item)
            token = body.get("nextPageToken")
            if not token:
                return seen, False
            params = {**params, "pageToken": str(token)}
        if newest:
            log.warning(
                "youtube source %s: more new threads than %d pages since the last poll; the oldest are skipped",
                self.name,
                self.max_pages,
            )
        return seen, bool(newest)

    def _watched(self, client: httpx.Client, walk: _Walk) -> None:
        """Look up again, by id, the recent threads the walk did not reach: a new reply does not bring a thread back
        to the top, so this is how a customer answering the brand a day later is heard."""
        ids = sorted(
            (t for t in walk.threads if t not in walk.read),
            key=lambda t: str(walk.threads[t].get("at", "")),
            reverse=True,
        )[: self.max_watched_threads]
        for start in range(0, len(ids), IDS_PER_CALL):
            chunk = ids[start : start + IDS_PER_CALL]
            params = {"part": "snippet,replies", "id": ",".join(chunk), "textFormat": "plainText"}
            body = self._get(client, walk, "commentThreads", params)
            found = {str(item.get("id")): item for item in body.get("items") or [] if isinstance(item, dict)}
            for thread_id in chunk:
                item = found.get(thread_id)
                if item is None:  # deleted, held, or its video's comments turned off
                    walk.threads.pop(thread_id, None)
                    continue
                total = _int((item.get("snippet") or {}).get("totalReplyCount"))
                if total != _int(walk.threads[thread_id].get("n")):
                    self._thread(client, walk, item)

    def _thread(self, client: httpx.Client, walk: _Walk, item: dict[str, Any]) -> None:
        """One thread: its top-level comment, and its replies when there are new ones (all of them, read with
        ``comments?parentId`` when the five of the ``replies`` part are not all)."""
        thread_id = str(item.get("id") or "")
        snippet = item.get("snippet") or {}
        top = snippet.get("topLevelComment") or {}
        if not thread_id or not isinstance(top, dict):
            return
        walk.read.add(thread_id)
        video = str(snippet.get("videoId") or (top.get("snippet") or {}).get("videoId") or "")
        total = _int(snippet.get("totalReplyCount"))
        known = walk.threads.get(thread_id)
        comments = [top]
        if total and (known is None or _int(known.get("n")) != total):
            given = [c for c in (item.get("replies") or {}).get("comments") or [] if isinstance(c, dict)]
            if total > len(given):
                try:
                    given = self._all_replies(client, walk, thread_id, video)
                except _CommentsOff as off:
                    walk.disabled.add(off.video)
                    walk.threads.pop(thread_id, None)
                    return
            comments += given
        latest = self._read(thread_id, video, total, comments, walk)
        walk.threads[thread_id] = {"n": total, "at": _stamp(max(latest, _last(known)))}

    def _all_replies(self, client: httpx.Client, walk: _Walk, thread_id: str, video: str) -> list[dict[str, Any]]:
        params: dict[str, Any] = {
            "part": "snippet",
            "parentId": thread_id,
            "maxResults": 100,
            "textFormat": "plainText",
        }
        found: list[dict[str, Any]] = []
        for _ in range(self.max_reply_pages):
            body = self._get(client, walk, "comments", params, video=video)
            found += [c for c in body.get("items") or [] if isinstance(c, dict)]
            token = body.get("nextPageToken")
            if not token:
                break
            params = {**params, "pageToken": str(token)}
        return found

    def _read(self, thread_id: str, video: str, total: int, comments: list[dict[str, Any]], walk: _Walk) -> datetime:
        """Turn a thread's comments (top-level first) into mentions and brand replies; returns the latest time."""
        dated: list[tuple[datetime, dict[str, Any]]] = []
        for comment in comments:
            try:
                dated.append((yt_time((comment.get("snippet") or {}).get("publishedAt")), comment))
            except ValueError:
                log.warning("youtube source %s: comment %s has no publishedAt: skipped", self.name, comment.get("id"))
        if not dated:
            return walk.now - timedelta(days=self.watch_days + 1)
        top = comments[0]
        top_author = str(((top.get("snippet") or {}).get("authorChannelId") or {}).get("value") or "")
        speakers: dict[str, tuple[str, str]] = {}  # handle (lower case) -> (channel id, latest comment id)
        first = dated[:1] if dated[0][1] is top else []  # the top-level comment, then the replies by time
        ordered = first + sorted(dated[len(first) :], key=lambda pair: pair[0])
        for when, comment in ordered:
            comment_id = str(comment.get("id") or "")
            snippet = comment.get("snippet") or {}
            author_id = str((snippet.get("authorChannelId") or {}).get("value") or "")
            handle, display = _handle(str(snippet.get("authorDisplayName") or ""))
            text = str(snippet.get("textDisplay") or snippet.get("textOriginal") or "")
            is_top = comment is top
            url = watch_url(video or str(snippet.get("videoId") or ""), comment_id)
            if author_id == self.channel_id:
                self.account = self.account or handle
                if self._replier is not None and self._replier.account == self.channel_id:
                    self._replier.account = self.account
                answers, to_author = self._addressed(text, speakers, thread_id, top_author, is_top)
                walk.replies[comment_id] = BrandReply(
                    platform="youtube",
                    platform_id=comment_id,
                    source=self.name,
                    published_at=when,
                    author_handle=self.account,
                    in_reply_to=answers,
                    thread_id=thread_id,
                    to_author_id=to_author,
                    text=text,
                    url=url,
                )
            else:
                metrics = {"likes": _int(snippet.get("likeCount"))}
                if is_top:
                    metrics["replies"] = total
                walk.mentions[comment_id] = Mention(
                    platform="youtube",
                    platform_id=comment_id,
                    source=self.name,
                    text=text,
                    published_at=when,
                    author=Author("youtube", author_id or "unknown", handle, display_name=display),
                    url=url,
                    thread_id=thread_id,
                    in_reply_to="" if is_top else str(snippet.get("parentId") or thread_id),
                    metrics=metrics,
                )
                speakers[handle.lower()] = (author_id, comment_id)
        return max(when for when, _ in dated)

    def _addressed(
        self, text: str, speakers: Mapping[str, tuple[str, str]], thread_id: str, top_author: str, is_top: bool
    ) -> tuple[str, str]:
        """``(in_reply_to, to_author_id)`` of a comment by the channel: a top-level one answers nobody; a reply
        answers the ``@handle`` it starts with, when that person spoke earlier in the thread, else the thread's
        top-level comment and its author's earlier replies."""
        if is_top:
            return "", ""
        named = _LEADING_HANDLE.match(text)
        if named and (speaker := speakers.get(named.group(1).lower())) and speaker[0] != top_author:
            return speaker[1], speaker[0]
        if top_author == self.channel_id:  # the channel's own thread: a reply without a name answers nobody
            return "", ""
        return thread_id, top_author

    def _reach(self, client: httpx.Client, walk: _Walk, saved: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Subscriber counts of the poll's authors, from the cursor when asked less than a day ago, else from
        ``channels?part=statistics`` (fifty a call) while the quota lasts; a hidden count is 0."""
        reach = {
            k: dict(v)
            for k, v in saved.items()
            if isinstance(v, dict) and _recent(v.get("at"), walk.now, REACH_TTL.days)
        }
        wanted = sorted({m.author.platform_id for m in walk.mentions.values()} - set(reach) - {"unknown"})
        for start in range(0, len(wanted), IDS_PER_CALL):
            chunk = wanted[start : start + IDS_PER_CALL]
            try:
                body = self._get(client, walk, "channels", {"part": "statistics", "id": ",".join(chunk)})
            except _QuotaSpent:
                break
            except SourceError as error:  # reach is worth less than the comments heard: keep them, reach 0
                log.warning("youtube source %s: subscriber counts not read: %s", self.name, error)
                break
            counts = {
                str(item.get("id")): item.get("statistics") or {}
                for item in body.get("items") or []
                if isinstance(item, dict)
            }
            for channel in chunk:
                stats = counts.get(channel) or {}
                hidden = bool(stats.get("hiddenSubscriberCount"))
                reach[channel] = {"n": 0 if hidden else _int(stats.get("subscriberCount")), "at": walk.now.isoformat()}
        return reach

    # -- talking to YouTube ----------------------------------------------------------------------

    def _get(
        self, client: httpx.Client, walk: _Walk, path: str, params: Mapping[str, Any], video: str = ""
    ) -> dict[str, Any]:
        """One list call (1 unit, counted before it is sent: Google counts failed calls too). A 401 on a cached
        OAuth token gets one more try with a fresh token. Raises `SourceError`, `RateLimited`, `_QuotaSpent`,
        `_CommentsOff`."""
        url = f"{self.base_url.rstrip('/')}/{path}"
        for attempt in (1, 2):
            if walk.quota["units"] + LIST_UNITS > walk.limit:
                raise _QuotaSpent()
            headers = self._headers()
            walk.quota["units"] += LIST_UNITS
            try:
                response = client.get(url, params=dict(params), headers=headers)
            except httpx.TimeoutException:
                raise SourceError(f"YouTube API: no answer within {self.timeout_seconds:g} s; will retry") from None
            except httpx.HTTPError as error:
                raise SourceError(
                    self._auth.mask(f"YouTube API could not be reached ({type(error).__name__})")
                ) from None
            body = google_body(response)
            problem = google_problem(response, body)
            if problem is None:
                return body if isinstance(body, dict) else {}
            if problem.kind == "token" and "Authorization" in headers and attempt == 1:
                self._auth.forget()
                continue
            raise self._error(problem, walk.now, video)
        raise AssertionError("unreachable")  # pragma: no cover

    def _headers(self) -> dict[str, str]:
        try:
            return self._auth.read_headers()
        except TokenTrouble as trouble:
            raise SourceError(str(trouble)) from None

    def _error(self, problem: GoogleProblem, now: datetime, video: str) -> SourceError | _CommentsOff:
        words = self._auth.mask(problem.message or f"HTTP {problem.status}")
        if problem.kind == "quota":
            reset = next_reset(now)
            return RateLimited(
                f"YouTube's daily quota is spent ({words}); reading resumes at midnight Pacific time, "
                f"{reset.isoformat()}",
                reset,
            )
        if problem.kind == "rate":
            return RateLimited(f"YouTube asks to slow down ({words}); trying again in a minute", now + RATE_PAUSE)
        if problem.kind == "comments_disabled" and video:
            return _CommentsOff(video)
        if problem.kind == "key":
            return SourceError(
                f"YouTube refused the API key ({words}): create a new key in Google Cloud console (APIs & Services > "
                "Credentials) for a project with YouTube Data API v3 enabled, and update the api_key secret"
            )
        if problem.kind == "token":
            return SourceError(
                f"YouTube refused the channel owner's access token ({words}): authorize again as the channel owner "
                "and update refresh_token"
            )
        if problem.kind == "not_found" and problem.reason == "channelNotFound":
            return SourceError(
                f"YouTube has no channel {self.channel_id} ({words}): set channel_id to the channel's UC… id "
                "(YouTube Studio > Settings > Channel > Advanced settings)"
            )
        if problem.kind == "scope":
            return SourceError(
                f"YouTube: the channel owner's token lacks the scope ({words}): authorize again granting {SCOPE}, "
                "then update refresh_token"
            )
        if problem.kind in ("forbidden", "comments_disabled"):
            return SourceError(
                f"YouTube forbade reading the channel's comments ({problem.reason or problem.status}: {words}): check "
                "channel_id, and that the key's project has YouTube Data API v3 enabled"
            )
        if problem.kind == "server":
            return SourceError(f"YouTube API answered {problem.status} ({words}); will retry")
        return SourceError(f"YouTube API answered {problem.status} ({problem.reason or 'no reason'}: {words})")


def _last(known: Mapping[str, Any] | None) -> datetime:
    try:
        return yt_time((known or {}).get("at"))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def _recent(value: Any, now: datetime, days: int) -> bool:
    """Whether the time ``value`` is within ``days`` before ``now``."""
    try:
        return yt_time(value) >= now - timedelta(days=days)
    except ValueError:
        return False


# -- answering ------------------------------------------------------------------------------------


def _units_left(problem: GoogleProblem, now: datetime) -> tuple[ReplyProblem, str, datetime | None]:
    if problem.kind == "quota":
        reset = next_reset(now)
        return (
            "rate_limited",
            f"YouTube's daily quota is spent ({problem.message}); a reply costs {INSERT_UNITS} units, so it is sent "
            f"after midnight Pacific time, {reset.isoformat()}",
            reset,
        )
    return "rate_limited", f"YouTube asks to slow down ({problem.message}); trying again in a minute", now + RATE_PAUSE


@dataclass
class YouTubeReplier:
    """Posts the brand's answers in a comment thread, as the channel (see `listener.replying.Replier`).

    Every reply goes under the thread's top-level comment (``parentId`` is the thread id): YouTube threads are two
    levels deep, so a reply to a reply lands in the same thread, where its author is notified."""

    channel_id: str
    auth: GoogleAuth = field(repr=False)
    ledger: QuotaLedger = field(default_factory=QuotaLedger, repr=False)
    base_url: str = DEFAULT_BASE_URL
    timeout_seconds: float = 20.0
    #: The channel's handle as its replies are stored: the source's, learned from YouTube's answers when unknown.
    account: str = ""
    max_pages: int = 5
    daily_quota_units: int = 10_000
    channel: str = field(default="youtube", init=False)

    # -- the Replier protocol --------------------------------------------------------------------

    def check(self, text: str) -> str:
        """Why YouTube would refuse ``text``, or "". Counted cautiously, in UTF-16 units as YouTube's comment box
        counts: an emoji counts 2."""
        if not text.strip():
            return "the reply is empty: write something to post"
        length = len(text.encode("utf-16-le")) // 2
        if length > MAX_COMMENT_CHARS:
            return f"{length} characters (an emoji counts 2); YouTube allows {MAX_COMMENT_CHARS}: shorten it"
        return ""

    def cost_usd(self, text: str) -> float:
        """YouTube bills nothing: a reply costs quota units instead (see `units`)."""
        return 0.0

    def units(self, text: str) -> int:
        """The quota units posting ``text`` costs (comments.insert: 50), whatever its length."""
        return INSERT_UNITS

    def quota_problem(self, cursor: Mapping[str, Any] | None, text: str, now: datetime) -> str:
        """Why the day's quota cannot pay for posting ``text`` (the source's count in its ``cursor``, plus what this
        process spent since), or "": checked before a reply is stored, so nothing is posted that Google would refuse."""
        day = quota_day(now)
        used = day_quota(dict((cursor or {}).get("quota") or {}), now)["units"] + self.ledger.pending(day)
        units = self.units(text)
        if used + units <= self.daily_quota_units:
            return ""
        return (
            f"youtube quota: {used} of {self.daily_quota_units} units spent today and a reply costs {units}; the day "
            f"ends at midnight Pacific time ({next_reset(now):%H:%M} UTC): send it then, raise daily_quota_units if "
            "Google granted more, or post it yourself and mark the mention answered"
        )

    def target(self, mention: Mention) -> str:
        """The thread to post in: the mention's thread (a reply's parent is the thread's top-level comment)."""
        return mention.thread_id or mention.in_reply_to or mention.platform_id

    def reply(self, mention: Mention, text: str, now: datetime) -> SentReply:
        """Post ``text`` in the mention's thread as the channel; YouTube's refusals come back as `ReplyError`s.

        A request that went out and got no answer is ``unknown``: the comment may exist, and `find` looks for it."""
        if mention.platform != "youtube":
            raise ReplyError("refused", f"the mention is on {mention.platform}, not YouTube: answer it there")
        if problem := self.check(text):
            raise ReplyError("too_long" if text.strip() else "refused", problem)
        url = f"{self.base_url.rstrip('/')}/comments"
        payload = {"snippet": {"parentId": self.target(mention), "textOriginal": text}}
        with self._client() as client:
            for attempt in (1, 2):
                headers = self._bearer()
                self.ledger.spend(now, INSERT_UNITS)
                try:
                    response = client.post(url, params={"part": "snippet"}, json=payload, headers=headers)
                except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol) as e:
                    raise self._error("unavailable", f"YouTube API could not be reached ({type(e).__name__})") from None
                except httpx.HTTPError as error:  # the request went out: YouTube may have posted it
                    raise self._error(
                        "unknown",
                        f"YouTube API: the reply got no answer ({type(error).__name__}, limit "
                        f"{self.timeout_seconds:g} s); the comment may exist, so the thread is looked up before any "
                        "retry",
                    ) from None
                body = google_body(response)
                trouble = google_problem(response, body)
                if trouble is None:
                    return self._sent(body, mention, text, now)
                if trouble.kind == "token" and attempt == 1:  # not posted: a fresh token, once
                    self.auth.forget()
                    continue
                if response.status_code == 504:
                    raise self._error("unknown", "YouTube API: the gateway timed out (504); the comment may exist")
                raise self._from_google(trouble, now)
        raise AssertionError("unreachable")  # pragma: no cover

    def find(self, mention: Mention, text: str, since: datetime, now: datetime) -> SentReply | None:
        """The channel's reply with ``text`` in the mention's thread, posted at or after ``since`` (less a minute of
        clock skew): the newest such, among at most ``max_pages`` pages of the thread's replies."""
        earliest = since - CLOCK_SKEW
        url = f"{self.base_url.rstrip('/')}/comments"
        params: dict[str, Any] = {
            "part": "snippet",
            "parentId": self.target(mention),
            "maxResults": 100,
            "textFormat": "plainText",
        }
        best: tuple[datetime, dict[str, Any]] | None = None
        with self._client() as client:
            for _ in range(self.max_pages):
                body = self._get(client, url, params, now)
                for comment in body.get("items") or []:
                    snippet = comment.get("snippet") if isinstance(comment, dict) else None
                    if not isinstance(snippet, dict):
                        continue
                    if str((snippet.get("authorChannelId") or {}).get("value") or "") != self.channel_id:
                        continue
                    if not _same_text(str(snippet.get("textOriginal") or snippet.get("textDisplay") or ""), text):
                        continue
                    try:
                        when = yt_time(snippet.get("publishedAt"))
                    except ValueError:
                        continue
                    if when >= earliest and (best is None or when > best[0]):
                        best = (when, comment)
                token = body.get("nextPageToken")
                if not token:
                    break
                params = {**params, "pageToken": str(token)}
        if best is None:
            return None
        return self._sent(best[1], mention, text, now)

    # -- the parts -------------------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        return httpx.Client(timeout=self.timeout_seconds, trust_env=False)

    def _bearer(self) -> dict[str, str]:
        try:
            return self.auth.bearer()
        except TokenTrouble as trouble:
            problem: ReplyProblem = "unavailable"
            if trouble.kind in ("grant", "client"):
                problem = "expired_token"
            elif trouble.kind == "scope":
                problem = "permission"
            raise self._error(problem, str(trouble)) from None

    def _get(self, client: httpx.Client, url: str, params: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        """One lookup (1 unit); a timeout is ``unavailable``: a read posts nothing."""
        for attempt in (1, 2):
            headers = self._bearer()
            self.ledger.spend(now, LIST_UNITS)
            try:
                response = client.get(url, params=dict(params), headers=headers)
            except httpx.TimeoutException:
                raise self._error(
                    "unavailable", f"YouTube API: no answer within {self.timeout_seconds:g} s; will look again"
                ) from None
            except httpx.HTTPError as error:
                raise self._error("unavailable", f"YouTube API could not be reached ({type(error).__name__})") from None
            body = google_body(response)
            trouble = google_problem(response, body)
            if trouble is None:
                return body if isinstance(body, dict) else {}
            if trouble.kind == "token" and attempt == 1:
                self.auth.forget()
                continue
            raise self._from_google(trouble, now)
        raise AssertionError("unreachable")  # pragma: no cover

    def _sent(self, comment: Any, mention: Mention, text: str, now: datetime) -> SentReply:
        """The `SentReply` for a comment resource YouTube gave back (the text sent and ``now`` where it says less)."""
        comment = comment if isinstance(comment, dict) else {}
        snippet = comment.get("snippet") if isinstance(comment.get("snippet"), dict) else {}
        new_id = str(comment.get("id") or "")
        if not new_id:
            raise self._error("unknown", "YouTube accepted the reply without naming the new comment; looking it up")
        ours = str((snippet.get("authorChannelId") or {}).get("value") or "") == self.channel_id
        if ours and snippet.get("authorDisplayName") and self.account in ("", self.channel_id):
            self.account = _handle(str(snippet["authorDisplayName"]))[0]
        video = str(snippet.get("videoId") or "") or _video_of(mention.url)
        try:
            published = yt_time(snippet.get("publishedAt"))
        except ValueError:
            published = now
        return SentReply(
            platform_id=new_id,
            url=watch_url(video, new_id),
            text=str(snippet.get("textOriginal") or text),
            published_at=published,
        )

    def _from_google(self, trouble: GoogleProblem, now: datetime) -> ReplyError:
        words = trouble.message or f"HTTP {trouble.status}"
        if trouble.kind in ("quota", "rate"):
            problem, message, retry_at = _units_left(trouble, now)
            return self._error(problem, message, retry_at)
        if trouble.kind in ("token", "key"):
            return self._error(
                "expired_token",
                f"YouTube refused the channel owner's access token ({words}): authorize again as the channel owner "
                "and update refresh_token",
            )
        if trouble.kind in ("scope", "forbidden"):
            return self._error(
                "permission",
                f"YouTube: the token may not post as the channel ({trouble.reason or trouble.status}: {words}); the "
                f"channel owner must authorize with the scope {SCOPE}, signed in as the channel {self.channel_id}",
            )
        if trouble.kind == "not_found":
            return self._error("deleted", f"the comment to answer is gone or hidden ({words})")
        if trouble.kind in ("cannot_reply", "comments_disabled"):
            return self._error(
                "refused",
                f"YouTube does not take a reply in this thread ({trouble.reason}: {words}): comments may be turned "
                "off on the video, or the comment is private; answer the author elsewhere",
            )
        if trouble.kind == "too_long":
            return self._error("too_long", f"YouTube says the reply is too long ({words}): shorten it")
        if trouble.kind == "server":
            return self._error("unavailable", f"YouTube API failed ({trouble.status}: {words}); nothing was posted")
        return self._error("refused", f"YouTube refused the reply ({trouble.reason or trouble.status}: {words})")

    def _error(self, problem: ReplyProblem, message: str, retry_at: datetime | None = None) -> ReplyError:
        """A `ReplyError` whose message cannot carry a secret, whatever Google echoed."""
        return ReplyError(problem, self.auth.mask(message), retry_at)


def _video_of(url: str) -> str:
    """The ``v`` of a watch link."""
    return (parse_qs(urlsplit(url).query).get("v") or [""])[0]


__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_TOKEN_URI",
    "INSERT_UNITS",
    "LIST_UNITS",
    "MAX_COMMENT_CHARS",
    "SCOPE",
    "GoogleAuth",
    "GoogleProblem",
    "QuotaLedger",
    "YouTubeReplier",
    "YouTubeSource",
    "day_quota",
    "google_problem",
    "next_reset",
    "quota_day",
]
