"""`mastodon`: the brand account's mentions, hashtags and full-text search on its own instance, through Mastodon.py.

Four streams, each with its own cursor:

1. ``notifications``: the brand account's ``mention`` notifications (direct messages included): what people on any
   server say *to* the brand, whatever the search index holds;
2. ``hashtags``: each hashtag's public timeline, as the brand's instance knows it;
3. ``search``: full-text search of statuses for each keyword. On Mastodon 4.x it needs Elasticsearch/OpenSearch on
   the instance and finds only posts whose authors opted in to being searchable (``indexable``), plus posts the
   account has interacted with (its own, ones it was mentioned in, favourited, bookmarked);
4. ``posts``: the brand account's own statuses: every reply to somebody else is a `BrandReply`, wherever it was
   typed, so a mention answered in the Mastodon app counts as answered.

Ids are the brand instance's own: the same post has another id on every other instance, so a cursor is only good on
the instance it was read from (a source pointed at another instance starts afresh). The list endpoints page by the
``Link`` header Mastodon writes (``rel="next"`` older, ``rel="prev"`` newer): after the first poll each stream asks
for ``min_id`` = the newest id it stored and walks ``rel="prev"`` forward, at most ``max_pages`` pages, so a poll
that stops early leaves no gap. Search has no Link header: it is read newest first with ``offset`` until it reaches
what the last poll saw.

Mastodon.py never sleeps here (``ratelimit_method="throw"``): a 429 pauses the whole source until the
``X-RateLimit-Reset`` the instance sent (its limits are per account, so every stream would hit it). A reblog is
never a mention: the words are someone else's. The access token travels in the Authorization header only.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import urlsplit

import regex
import requests
import urllib3.exceptions
from mastodon import (
    Mastodon,
    MastodonAPIError,
    MastodonError,
    MastodonNetworkError,
    MastodonNotFoundError,
    MastodonRatelimitError,
)
from mastodon._url_regex import url_regex as MASTODON_URL  # the link pattern Mastodon's composer counts with
from pydantic import SecretStr

from listener.model import Author, BrandReply, Mention, Poll, RateLimited, SourceError
from listener.replying import ReplyError, ReplyProblem, SentReply

log = logging.getLogger(__name__)

Stream = Literal["notifications", "hashtags", "search", "posts"]
STREAMS: tuple[Stream, ...] = ("notifications", "hashtags", "search", "posts")
Visibility = Literal["public", "unlisted", "private", "direct"]
#: Narrowest first: a reply is never more visible than what it answers.
VISIBILITIES: tuple[Visibility, ...] = ("direct", "private", "unlisted", "public")

#: What an instance allows when it does not say (Mastodon's defaults): characters per status, characters a link
#: counts whatever its length.
DEFAULT_MAX_CHARACTERS = 500
DEFAULT_URL_CHARACTERS = 23
#: Mastodon's API limit is 300 requests per account per 5 minutes: the wait when a 429 names no reset.
RATE_WINDOW = timedelta(minutes=5)
#: The most statuses Mastodon sends per page of a timeline or search (notifications allow 80).
MAX_PAGE_SIZE = 40
#: How many replies the cursor remembers the conversation root of (newest kept).
MAX_THREADS = 2000
#: How far before ``since`` `MastodonReplier.find` still accepts a status of ours (the clocks disagree a little).
CLOCK_SKEW = timedelta(minutes=1)
#: At most this much of Mastodon's own message goes into an error.
WORDS = 200
USER_AGENT = "passaparola"

_T = TypeVar("_T")

# -- what a status says, as plain text ---------------------------------------------------------------

_BLOCK_TAGS = frozenset({"p", "div", "blockquote", "li", "ul", "ol", "pre", "h1", "h2", "h3", "h4", "h5", "h6"})
_VOID_TAGS = frozenset({"br", "img", "hr", "wbr", "input", "meta", "link", "source"})


class _Content(HTMLParser):
    """Paragraphs and line breaks of a status's HTML. Link text is kept whole (Mastodon splits a long URL into
    ``invisible`` and ``ellipsis`` spans that together spell it); the ``quote-inline`` "RE: <link>" paragraph
    Mastodon adds for old clients, and hides in its own interface, is left out."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.paragraphs: list[list[str]] = [[]]
        self.hidden = 0  # depth inside a hidden element

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.hidden:
            self.hidden += tag not in _VOID_TAGS
            return
        if "quote-inline" in (dict(attrs).get("class") or "").split() and tag not in _VOID_TAGS:
            self.hidden = 1
        elif tag == "br":
            self.paragraphs[-1].append("\n")
        elif tag in _BLOCK_TAGS:
            self.paragraphs.append([])

    def handle_endtag(self, tag: str) -> None:
        if self.hidden:
            self.hidden -= tag not in _VOID_TAGS
            if not self.hidden:
                self.paragraphs.append([])
            return
        if tag in _BLOCK_TAGS:
            self.paragraphs.append([])

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.paragraphs[-1].append(" ".join(data.split("\n")))


def html_text(content: str) -> str:
    """What a reader sees in a status's HTML ``content``: paragraphs apart by a blank line, ``<br>`` a line break,
    entities decoded, runs of spaces collapsed as a browser collapses them."""
    parser = _Content()
    parser.feed(content or "")
    parser.close()
    paragraphs = []
    for parts in parser.paragraphs:
        lines = [" ".join(line.split()) for line in "".join(parts).split("\n")]
        if any(lines):
            paragraphs.append("\n".join(lines).strip("\n"))
    return "\n\n".join(paragraphs)


def status_text(status: Mapping[str, Any]) -> str:
    """A status as passaparola stores it: the content warning (``spoiler_text``) first, then the words."""
    body = html_text(str(status.get("content") or ""))
    spoiler = " ".join(str(status.get("spoiler_text") or "").split())
    return f"{spoiler}\n\n{body}".strip() if spoiler else body


# -- how Mastodon counts a status ----------------------------------------------------------------------

_REMOTE_MENTION = re.compile(r"(^|[^/\w])@([a-z0-9_]+)@[a-z0-9.\-]+[a-z0-9]+", re.IGNORECASE)


def mastodon_length(text: str, url_characters: int = DEFAULT_URL_CHARACTERS) -> int:
    """``text``'s length as Mastodon counts it against the limit: user-perceived characters (grapheme clusters: an
    emoji with its modifiers is one), every http(s) link ``url_characters`` whatever its length, and a mention of
    someone on another instance only by its local part (``@anna@mastodon.uno`` counts as ``@anna``)."""
    counted = MASTODON_URL.sub(lambda m: m.group(0)[: m.start(3) - m.start(0)] + "x" * url_characters, text)
    counted = _REMOTE_MENTION.sub(r"\1@\2", counted)
    return len(regex.findall(r"\X", counted))


def _same_text(a: str, b: str) -> bool:
    """Equal as Mastodon shows them: NFC, whitespace collapsed, case kept, and a remote mention as its local part
    (the status's HTML says ``@anna`` where we typed ``@anna@mastodon.uno``)."""

    def norm(text: str) -> str:
        return " ".join(_REMOTE_MENTION.sub(r"\1@\2", unicodedata.normalize("NFC", text)).split())

    return norm(a) == norm(b)


# -- what went wrong, read once for the source and the replier alike ---------------------------------

#: ``token`` 401, ``permission`` 403, ``missing`` 404, ``too_long`` a 422 over the character limit, ``invalid`` any
#: other 422, ``rate_limited`` 429, ``server`` 5xx or an answer that is not JSON, ``unreachable`` no connection (the
#: request never left), ``no_answer`` the request left and nothing readable came back.
Trouble = Literal[
    "token", "permission", "missing", "too_long", "invalid", "rate_limited", "server", "unreachable", "no_answer",
    "other",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Problem:
    """A Mastodon failure in words: what it means, the HTTP status (0 without one), the instance's own
    ``{"error": ...}`` (at most `WORDS` characters) and, for a rate limit, when it resets."""

    kind: Trouble
    status: int
    words: str
    retry_at: datetime | None = None


def reset_time(headers: Mapping[str, str], now: datetime) -> datetime:
    """When a rate limit ends: ``X-RateLimit-Reset`` as Mastodon writes it (ISO 8601, ``2026-03-02T09:05:00.000000Z``;
    GoToSocial sends epoch seconds), or a 5-minute window when it is missing, unreadable or already past."""
    value = str(headers.get("X-RateLimit-Reset") or "").strip()
    reset: datetime | None = None
    try:
        reset = datetime.fromtimestamp(int(value), UTC) if value.isdigit() else datetime.fromisoformat(value)
    except (ValueError, OverflowError, OSError):
        reset = None
    if reset is None or reset.tzinfo is None or reset <= now:
        return now + RATE_WINDOW
    return reset.astimezone(UTC)


def _network_kind(error: BaseException) -> Trouble:
    """``unreachable`` when the request never left (refused, unknown host, TLS or connect timeout), else
    ``no_answer`` (a read timeout, a connection dropped after sending): Mastodon.py keeps requests' exception as
    the context of its `MastodonNetworkError`."""
    cause = error.__context__ or error.__cause__
    if isinstance(cause, requests.exceptions.ConnectTimeout | requests.exceptions.SSLError):
        return "unreachable"
    if isinstance(cause, requests.exceptions.ConnectionError) and not isinstance(cause, requests.exceptions.Timeout):
        reason = getattr(cause.args[0], "reason", None) if cause.args else None
        if isinstance(reason, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ConnectTimeoutError):
            return "unreachable"
    return "no_answer"


def read_problem(error: MastodonError, last: requests.Response | None, now: datetime) -> Problem:
    """What a Mastodon.py exception means. ``last`` is the last answer the instance sent (Mastodon.py's 429 carries
    neither status nor headers): its ``X-RateLimit-Reset`` says when to come back."""
    if isinstance(error, MastodonRatelimitError):
        if last is not None and last.status_code == 429:
            return Problem("rate_limited", 429, _words(last), reset_time(last.headers, now))
        # Mastodon.py also throws this when it cannot read a reset header, even on an answer that succeeded.
        return Problem("server", last.status_code if last is not None else 0, "unreadable X-RateLimit-Reset header")
    if isinstance(error, MastodonNetworkError):
        return Problem(_network_kind(error), 0, type(error.__context__ or error).__name__)
    if isinstance(error, MastodonAPIError):
        args = error.args
        status = args[1] if len(args) > 1 and isinstance(args[1], int) else 0
        words = str(args[3] if len(args) > 3 and args[3] else (args[2] if len(args) > 2 else ""))[:WORDS]
        if status == 401:
            return Problem("token", status, words)
        if status == 403:
            return Problem("permission", status, words)
        if status == 404 or isinstance(error, MastodonNotFoundError):
            return Problem("missing", status or 404, words)
        if status == 422:
            return Problem("too_long" if "character limit" in words.lower() else "invalid", status, words)
        if status == 429:
            return Problem("rate_limited", status, words, reset_time(last.headers if last is not None else {}, now))
        if status >= 500 or status == 0:  # 0: an answer Mastodon.py could not parse (a proxy's error page)
            return Problem("server", status, words or "an answer that is not JSON")
        return Problem("other", status, words)
    return Problem("other", 0, type(error).__name__)


def _words(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("error", ""))[:WORDS] if isinstance(body, dict) else ""


class _Instance:
    """One Mastodon.py client for one instance and token, made safe for a daemon: it never sleeps on a rate limit
    (``throw``), checks no versions (no extra calls), ignores the environment's proxies and ``.netrc``, bounds every
    request by ``timeout`` seconds and keeps the last answer, whose headers a 429 is read from."""

    def __init__(self, base_url: str, token: SecretStr, timeout: float) -> None:
        self.last: requests.Response | None = None
        self._token = token
        session = requests.Session()
        session.trust_env = False
        session.hooks["response"].append(self._keep)
        self.api = Mastodon(
            access_token=token.get_secret_value(),
            api_base_url=base_url,
            request_timeout=timeout,
            ratelimit_method="throw",
            version_check_mode="none",
            session=session,
            user_agent=USER_AGENT,
        )

    def _keep(self, response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        self.last = response
        return response

    def call(self, now: datetime, method: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """``method(*args, **kwargs)``; a failure comes back as `_Failed` with its `Problem`."""
        self.last = None
        try:
            return method(*args, **kwargs)
        except MastodonError as error:
            raise _Failed(read_problem(error, self.last, now)) from None

    def following(self, now: datetime, page: Any, direction: Literal["next", "prev"]) -> Any:
        """The page the ``Link`` header (or, for search, the offset) points to, or None at the end."""
        if not getattr(page, f"_pagination_{direction}", None):
            return None
        return self.call(now, self.api.fetch_next if direction == "next" else self.api.fetch_previous, page)

    def scrub(self, message: str) -> str:
        secret = self._token.get_secret_value()
        return message.replace(secret, "[secret]") if secret else message


class _Failed(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.words)
        self.problem = problem


def _host(instance: str) -> str:
    return urlsplit(instance).netloc


def normalise_instance(value: str) -> str:
    """``mastodon.social`` or ``https://mastodon.social/`` as ``https://mastodon.social``; ValueError otherwise."""
    text = value.strip().rstrip("/")
    if text and "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
        raise ValueError(
            f"instance {value!r} must be the base URL of the brand account's server, e.g. "
            'instance = "https://mastodon.social"'
        )
    return text


def _int(value: Any) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


def _when(value: Any) -> datetime:
    """Mastodon.py's aware ``created_at`` (or the ISO text) as aware UTC."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        raise ValueError(f"created_at {value!r} has no time zone")
    return moment.astimezone(UTC)


def _id(value: Any) -> str:
    return str(value) if value not in (None, "") else ""


def _newer(a: str, b: str) -> bool:
    """Whether status/notification id ``a`` is newer than ``b``: Mastodon ids are numbers (snowflakes) as text."""
    if a.isdigit() and b.isdigit():
        return int(a) > int(b)
    return (len(a), a) > (len(b), b)


def _sort_key(value: str) -> tuple[int, str]:
    return (len(value), value)


_HASHTAG = re.compile(r"^\w+$")


# -- the source ------------------------------------------------------------------------------------


@dataclass
class MastodonSource:
    """The brand account on its Mastodon instance: its mentions, hashtags, keyword search and its own replies."""

    kind: ClassVar[str] = "mastodon"
    name: str
    #: The brand account's server, e.g. ``https://mastodon.social``.
    instance: str = ""
    #: An application token of the brand account (Preferences > Development), scopes ``read`` and ``write:statuses``.
    access_token: SecretStr = field(default_factory=lambda: SecretStr(""), repr=False)
    hashtags: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    #: Empty: notifications and posts, plus hashtags and search when they are configured.
    streams: list[Stream] = field(default_factory=list)
    page_size: int = MAX_PAGE_SIZE
    max_pages: int = 5
    #: How many pages back the very first poll of a stream reads (history from before passaparola listened).
    first_poll_pages: int = 1
    timeout_seconds: float = 20.0
    #: Whether passaparola posts the answers (the token has ``write:statuses``); false: copy and post by hand.
    answering: bool = True
    #: How an answer to a public post is posted: ``public``, or ``unlisted`` to keep answers off public timelines.
    public_reply_visibility: Literal["public", "unlisted"] = "public"

    def __post_init__(self) -> None:
        self.instance = normalise_instance(self.instance)
        if not self.access_token.get_secret_value():
            raise ValueError(
                'access_token is required: access_token = { env = "MASTODON_TOKEN" } (the brand account\'s '
                "Preferences > Development > New application, scopes read and write:statuses)"
            )
        self.hashtags = [h.strip().lstrip("#") for h in self.hashtags]
        bad = [h for h in self.hashtags if not _HASHTAG.match(h)]
        if bad:
            raise ValueError(f'hashtags {bad!r}: write each without # and without spaces, e.g. hashtags = ["caffè"]')
        self.keywords = [" ".join(k.split()) for k in self.keywords]
        if any(not k for k in self.keywords):
            raise ValueError("keywords must not be empty strings")
        unknown = [s for s in self.streams if s not in STREAMS]
        if unknown:
            raise ValueError(f"streams {unknown!r}: use some of {', '.join(STREAMS)}")
        if "hashtags" in self.streams and not self.hashtags:
            raise ValueError('the hashtags stream needs hashtags = ["..."]; or drop "hashtags" from streams')
        if "search" in self.streams and not self.keywords:
            raise ValueError('the search stream needs keywords = ["..."]; or drop "search" from streams')
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE} (Mastodon's most per page)")
        if not 1 <= self.max_pages <= 50:
            raise ValueError("max_pages must be between 1 and 50")
        if not 1 <= self.first_poll_pages <= self.max_pages:
            raise ValueError("first_poll_pages must be between 1 and max_pages")
        if not 0 < self.timeout_seconds <= 120:
            raise ValueError("timeout_seconds must be more than 0 and at most 120")
        if self.public_reply_visibility not in ("public", "unlisted"):
            raise ValueError('public_reply_visibility must be "public" or "unlisted"')
        self._client: _Instance | None = None
        self._replier: MastodonReplier | None = None

    @property
    def active_streams(self) -> list[Stream]:
        if self.streams:
            return [s for s in STREAMS if s in self.streams]
        wanted = {"notifications", "posts"}
        if self.hashtags:
            wanted.add("hashtags")
        if self.keywords:
            wanted.add("search")
        return [s for s in STREAMS if s in wanted]

    def replier(self) -> MastodonReplier | None:
        """Answer as the brand account with the same token, or None with ``answering = false``."""
        if not self.answering:
            return None
        if self._replier is None:
            self._replier = MastodonReplier(
                instance=self.instance,
                access_token=self.access_token,
                timeout_seconds=self.timeout_seconds,
                public_reply_visibility=self.public_reply_visibility,
                max_pages=self.max_pages,
            )
        return self._replier

    # -- polling ---------------------------------------------------------------------------------

    def _instance(self) -> _Instance:
        if self._client is None:
            self._client = _Instance(self.instance, self.access_token, self.timeout_seconds)
        return self._client

    def poll(self, cursor: Mapping[str, Any] | None, now: datetime) -> Poll:
        state: dict[str, Any] = {"streams": {}, "threads": {}, **dict(cursor or {})}
        if state.get("instance") not in (None, self.instance):  # ids mean nothing on another server
            log.warning("mastodon source %s: instance changed to %s; reading afresh", self.name, self.instance)
            state = {"streams": {}, "threads": {}}
        state["instance"] = self.instance
        until = state.get("paused_until")
        if until and datetime.fromisoformat(until) > now:
            raise RateLimited(f"Mastodon rate limit on {_host(self.instance)}; resuming at {until}", _when(until))
        state.pop("paused_until", None)
        client = self._instance()
        try:
            me = client.call(now, client.api.account_verify_credentials)
        except _Failed as failed:
            raise self._source_error(failed.problem, client, "the brand account", now) from None
        me_id, me_acct = _id(me.get("id")), str(me.get("acct") or me.get("username") or "")
        heard: dict[str, Mapping[str, Any]] = {}
        streams = dict(state["streams"])
        truncated: list[str] = []
        paused: Problem | None = None
        for stream, target in self._jobs():
            key = stream if target is None else f"{stream}:{target}"
            try:
                statuses, newest, complete = self._read(client, stream, target, streams.get(key, {}), me_id, now)
            except _Failed as failed:
                if failed.problem.kind != "rate_limited":
                    raise self._source_error(failed.problem, client, key, now) from None
                paused = failed.problem  # the limit is the account's: every other stream would meet it too
                break
            for status in statuses:
                heard[_id(status.get("id"))] = status
            if newest:
                streams[key] = {"min_id": newest}
            if not complete:
                truncated.append(key)
        if paused is not None:
            if not heard:
                raise self._source_error(paused, client, "the streams", now)
            resume = paused.retry_at or now + RATE_WINDOW
            state["paused_until"] = resume.isoformat()  # keep what was read; wait before the next poll
        threads = dict(state["threads"])
        mentions, replies = self._collect(heard, me_id, me_acct, threads)
        kept = sorted(threads, key=_sort_key)[-MAX_THREADS:]
        state["threads"] = {k: threads[k] for k in kept}
        state["streams"] = streams
        return Poll(
            mentions=tuple(mentions),
            replies=tuple(replies),
            cursor=state,
            details={
                "account": f"@{me_acct}@{_host(self.instance)}",
                "streams": list(self.active_streams),
                "truncated_streams": truncated,
                "paused_until": state.get("paused_until", ""),
            },
        )

    def _jobs(self) -> list[tuple[Stream, str | None]]:
        jobs: list[tuple[Stream, str | None]] = []
        for stream in self.active_streams:
            if stream == "hashtags":
                jobs += [("hashtags", tag) for tag in self.hashtags]
            elif stream == "search":
                jobs += [("search", word) for word in self.keywords]
            else:
                jobs.append((stream, None))
        return jobs

    def _read(
        self,
        client: _Instance,
        stream: Stream,
        target: str | None,
        stream_state: Mapping[str, Any],
        me_id: str,
        now: datetime,
    ) -> tuple[list[Mapping[str, Any]], str, bool]:
        """One stream's new statuses: (statuses, the newest id for the cursor or "", whether it read to the end)."""
        since = str(stream_state.get("min_id") or "")
        api = client.api
        if stream == "search":
            return self._search(client, str(target), since, now)
        if stream == "notifications":
            first: Callable[..., Any] = api.notifications
            options: dict[str, Any] = {"types": ["mention"]}
        elif stream == "hashtags":
            first, options = api.timeline_hashtag, {"hashtag": target}
        else:
            first, options = api.account_statuses, {"id": me_id}
        options["limit"] = self.page_size
        try:
            pages = list(self._pages(client, first, options, since, now))
        except _Failed as failed:
            if stream == "hashtags" and failed.problem.kind == "missing":  # a tag nobody has used here yet
                return [], since, True
            raise
        items = [item for page in pages for item in page]
        newest = max((_id(i.get("id")) for i in items), key=_sort_key, default=since)
        complete = not since or len(pages) < self.max_pages or len(pages[-1]) < self.page_size
        if stream == "notifications":
            statuses = [n["status"] for n in items if n.get("type") == "mention" and n.get("status")]
        else:
            statuses = list(items)
        return statuses, newest, complete

    def _pages(
        self, client: _Instance, first: Callable[..., Any], options: dict[str, Any], since: str, now: datetime
    ) -> Iterator[list[Any]]:
        """The first poll reads the newest page (and ``first_poll_pages - 1`` older ones, through ``rel="next"``);
        later polls start at ``min_id`` and walk ``rel="prev"`` towards the newest, ``max_pages`` at most."""
        if since:
            page = client.call(now, first, min_id=since, **options)
            direction: Literal["next", "prev"] = "prev"
            budget = self.max_pages
        else:
            page = client.call(now, first, **options)
            direction, budget = "next", self.first_poll_pages
        for count in range(budget):
            if not page:
                return
            yield list(page)
            if count + 1 == budget or (direction == "prev" and len(page) < options["limit"]):
                return  # the page limit, or a short page: nothing newer yet
            page = client.following(now, page, direction)

    def _search(
        self, client: _Instance, word: str, since: str, now: datetime
    ) -> tuple[list[Mapping[str, Any]], str, bool]:
        """Statuses matching ``word``, newest first, page by page (``offset``) until one the last poll saw."""
        budget = self.max_pages if since else self.first_poll_pages
        found: list[Mapping[str, Any]] = []
        page = client.call(
            now,
            client.api.search_v2,
            word,
            resolve=False,
            result_type="statuses",
            exclude_unreviewed=False,
            limit=self.page_size,
        )
        complete = True
        for count in range(budget):
            statuses = list((page or {}).get("statuses") or [])
            fresh = [s for s in statuses if not since or _newer(_id(s.get("id")), since)]
            found += fresh
            if len(statuses) < self.page_size or len(fresh) < len(statuses):
                break  # the end of the results, or back where the last poll stopped
            if count + 1 == budget:
                complete = not since
                break
            page = client.following(now, page, "next")
            if page is None:
                break
        newest = max((_id(s.get("id")) for s in found), key=_sort_key, default=since)
        return found, newest, complete

    # -- statuses into mentions and replies ------------------------------------------------------

    def _collect(
        self, heard: Mapping[str, Mapping[str, Any]], me_id: str, me_acct: str, threads: dict[str, str]
    ) -> tuple[list[Mention], list[BrandReply]]:
        """Oldest first, so that a reply finds its parent's conversation root among those just read."""
        mentions: list[Mention] = []
        replies: list[BrandReply] = []
        for status_id in sorted(heard, key=_sort_key):
            status = heard[status_id]
            try:
                if status.get("reblog"):
                    log.debug("mastodon source %s: reblog %s skipped: a reblog is not a mention", self.name, status_id)
                    continue
                parent = _id(status.get("in_reply_to_id"))
                root = threads.get(parent, parent) if parent else status_id
                if parent:
                    threads[status_id] = root
                account = status.get("account") or {}
                if _id(account.get("id")) == me_id:
                    reply = self._reply(status, me_id, me_acct, root)
                    if reply is not None:
                        replies.append(reply)
                    continue
                mentions.append(self._mention(status, root))
            except (AttributeError, KeyError, TypeError, ValueError) as error:  # a status of the wrong shape
                log.warning(
                    "mastodon source %s: status %s skipped: %s (%s)", self.name, status_id, type(error).__name__, error
                )
        return mentions, replies

    def _mention(self, status: Mapping[str, Any], root: str) -> Mention:
        account = status["account"]
        metrics = {
            "favourites_count": _int(status.get("favourites_count")),
            "reblogs_count": _int(status.get("reblogs_count")),
            "replies_count": _int(status.get("replies_count")),
        }
        if account.get("bot"):
            metrics["bot"] = 1  # the account says it is automated
        status_id = _id(status["id"])
        return Mention(
            platform="mastodon",
            platform_id=status_id,
            source=self.name,
            text=status_text(status),
            published_at=_when(status["created_at"]),
            author=Author(
                platform="mastodon",
                platform_id=_id(account["id"]),
                handle=str(account.get("acct") or account.get("username") or ""),
                display_name=str(account.get("display_name") or ""),
                reach=_int(account.get("followers_count")),
            ),
            url=str(status.get("url") or status.get("uri") or ""),
            thread_id=root,
            in_reply_to=_id(status.get("in_reply_to_id")),
            language_hint=str(status.get("language") or ""),
            metrics=metrics,
        )

    def _reply(self, status: Mapping[str, Any], me_id: str, me_acct: str, root: str) -> BrandReply | None:
        parent = _id(status.get("in_reply_to_id"))
        to_author = _id(status.get("in_reply_to_account_id"))
        if not parent or to_author == me_id:
            return None  # a post of its own, or the next post of the brand's own thread
        return BrandReply(
            platform="mastodon",
            platform_id=_id(status["id"]),
            source=self.name,
            published_at=_when(status["created_at"]),
            author_handle=me_acct,
            in_reply_to=parent,
            thread_id=root,
            to_author_id=to_author,
            text=status_text(status),
            url=str(status.get("url") or status.get("uri") or ""),
        )

    def _source_error(self, problem: Problem, client: _Instance, what: str, now: datetime) -> SourceError:
        """What a failed read means for whoever runs passaparola; a rate limit is `RateLimited`."""
        host = _host(self.instance)
        words = problem.words or (f"HTTP {problem.status}" if problem.status else "no answer")
        if problem.kind == "rate_limited":
            retry_at = problem.retry_at or now + RATE_WINDOW
            return RateLimited(
                client.scrub(f"Mastodon rate limit on {host} ({words}); resuming at {retry_at.isoformat()}"), retry_at
            )
        if problem.kind == "token":
            message = (
                f"{host} refused the access token ({words}): create a new access token for the brand account in "
                "Preferences > Development (scopes read and write:statuses) and update the secret"
            )
        elif problem.kind == "permission":
            message = (
                f"{host}: the access token may not read {what} ({words}); give its application the read scope "
                "(read:notifications, read:statuses, read:search, read:accounts)"
            )
        elif problem.kind == "server":
            message = f"{host} failed ({words}); will retry"
        elif problem.kind in ("unreachable", "no_answer"):
            message = f"cannot reach {host} within {self.timeout_seconds:g} s ({words}); will retry"
        else:
            message = f"{host} refused reading {what} (HTTP {problem.status}: {words})"
        return SourceError(client.scrub(message))


# -- answering ---------------------------------------------------------------------------------------


def addressed(text: str, acct: str) -> str:
    """``text`` with ``@acct`` in front unless it already names them (Mastodon notifies, and a direct message
    reaches, only the accounts a status mentions). A draft that starts with the bare ``@name`` of someone on
    another instance gets the full ``@name@instance``: a bare name means someone on the brand's own server."""
    if not acct:
        return text
    username = acct.split("@", 1)[0]
    names_them = re.compile(rf"(?<![\w@/])@{re.escape(acct)}(?![\w@.\-]*\w)", re.IGNORECASE)
    if names_them.search(text):
        return text
    if "@" in acct:
        bare = re.compile(rf"^(\s*)@{re.escape(username)}(?![\w@])", re.IGNORECASE)
        if bare.match(text):
            return bare.sub(lambda m: f"{m.group(1)}@{acct}", text, count=1)
    return f"@{acct} {text.lstrip()}"


def idempotency_key(mention: Mention, text: str) -> str:
    """The same answer to the same mention is the same key: within the hour Mastodon keeps it, a repeated post
    returns the status already made instead of making another."""
    digest = hashlib.sha256(f"{mention.key}\n{unicodedata.normalize('NFC', text)}".encode()).hexdigest()
    return f"passaparola-{digest[:40]}"


def reply_visibility(original: str, public_as: str = "public") -> Visibility:
    """A reply as visible as what it answers and never more: a direct message is answered directly, followers-only
    stays followers-only, unlisted stays unlisted, public is ``public_as``; anything unknown is answered directly."""
    if original == "public":
        return "unlisted" if public_as == "unlisted" else "public"
    return next((v for v in VISIBILITIES[:3] if v == original), "direct")


@dataclass
class MastodonReplier:
    """Posts the brand's answers as replies on Mastodon (see `listener.replying.Replier`)."""

    instance: str
    access_token: SecretStr = field(repr=False)
    timeout_seconds: float = 20.0
    public_reply_visibility: str = "public"
    max_pages: int = 5
    #: The brand account's ``acct`` as its replies are stored; learned from the instance on the first post or lookup.
    account: str = ""
    channel: str = field(default="mastodon", init=False)

    def __post_init__(self) -> None:
        self.instance = normalise_instance(self.instance)
        self._client: _Instance | None = None
        self._limits: tuple[int, int] | None = None
        self._me: str = ""

    # -- the Replier protocol --------------------------------------------------------------------

    def limits(self) -> tuple[int, int]:
        """(characters per status, characters a link counts) from ``/api/v2/instance``, read once and kept; Mastodon's
        defaults (500, 23) while the instance cannot be asked (asked again next time)."""
        if self._limits is not None:
            return self._limits
        client = self._instance()
        try:
            info = client.call(datetime.now(UTC), client.api.instance_v2)
            statuses = ((info or {}).get("configuration") or {}).get("statuses") or {}
            most = _int(statuses.get("max_characters")) or DEFAULT_MAX_CHARACTERS
            per_url = _int(statuses.get("characters_reserved_per_url")) or DEFAULT_URL_CHARACTERS
        except (_Failed, AttributeError, TypeError) as error:
            log.warning("mastodon: cannot read the character limit of %s (%s); using 500", self.instance, error)
            return (DEFAULT_MAX_CHARACTERS, DEFAULT_URL_CHARACTERS)
        self._limits = (most, per_url)
        return self._limits

    def check(self, text: str) -> str:
        """Why the instance would refuse ``text``, counted as Mastodon counts it, or "" when it can be posted."""
        if not text.strip():
            return "the reply is empty: write something to post"
        most, per_url = self.limits()
        length = mastodon_length(text, per_url)
        if length > most:
            return (
                f"{length} characters as Mastodon counts them (links count {per_url}); {_host(self.instance)} "
                f"allows {most}: shorten it by {length - most}"
            )
        return ""

    def cost_usd(self, text: str) -> float:
        """Mastodon's API is free."""
        return 0.0

    def reply(self, mention: Mention, text: str, now: datetime) -> SentReply:
        """Reply to ``mention`` as the brand: the original is read first (is it still there, how visible is it, who
        wrote it), then ``POST /api/v1/statuses`` with ``in_reply_to_id``, the matching visibility and an
        ``Idempotency-Key``, so a retried post within the hour is the same status, never a second one."""
        if not text.strip():
            raise ReplyError("refused", "the reply is empty: write something to post")
        client = self._instance()
        try:
            original = client.call(now, client.api.status, mention.platform_id)
        except _Failed as failed:
            raise self._error(failed.problem, now, posting=False) from None
        acct = str((original.get("account") or {}).get("acct") or mention.author.handle)
        final = addressed(text.strip(), acct)
        most, per_url = self.limits()
        if (length := mastodon_length(final, per_url)) > most:
            added = f" with the @{acct} passaparola adds to notify them" if final != text.strip() else ""
            raise ReplyError(
                "too_long",
                f"{length} characters as Mastodon counts them{added}; {_host(self.instance)} allows {most}: "
                f"shorten it by {length - most}",
            )
        visibility = reply_visibility(str(original.get("visibility") or ""), self.public_reply_visibility)
        language = str(original.get("language") or "") or None
        try:
            posted = client.call(
                now,
                client.api.status_post,
                final,
                in_reply_to_id=mention.platform_id,
                visibility=visibility,
                language=language,
                idempotency_key=idempotency_key(mention, final),
            )
        except _Failed as failed:
            raise self._error(failed.problem, now, posting=True) from None
        try:
            self._learn(posted.get("account") or {})
            return SentReply(
                platform_id=_id(posted["id"]),
                url=_link(posted.get("url") or posted.get("uri")),
                text=status_text(posted) or final,
                published_at=_when(posted["created_at"]),
            )
        except (AttributeError, KeyError, TypeError, ValueError):
            raise self._error(
                Problem("no_answer", 200, "an answer without the new status"), now, posting=True
            ) from None

    def find(self, mention: Mention, text: str, since: datetime, now: datetime) -> SentReply | None:
        """The brand's status answering ``mention`` (``in_reply_to_id``) with ``text`` (as typed, or with the @mention
        `reply` adds), posted at or after ``since`` less a minute, newest first, ``max_pages`` pages of the
        account's statuses at most. Raises `ReplyError` when the lookup itself fails."""
        client = self._instance()
        earliest = since - CLOCK_SKEW
        wanted = [text.strip(), addressed(text.strip(), mention.author.handle)]
        try:
            me = client.call(now, client.api.account_verify_credentials)
            self._learn(me)
            page = client.call(now, client.api.account_statuses, _id(me.get("id")), limit=MAX_PAGE_SIZE)
            for _ in range(self.max_pages):
                if not page:
                    return None
                for status in page:
                    when = _when(status.get("created_at"))
                    if when < earliest:
                        return None  # newest first: everything further down is older still
                    if _id(status.get("in_reply_to_id")) != mention.platform_id or status.get("reblog"):
                        continue
                    shown = status_text(status)
                    if any(_same_text(shown, w) for w in wanted):
                        return SentReply(
                            platform_id=_id(status["id"]),
                            url=_link(status.get("url") or status.get("uri")),
                            text=shown,
                            published_at=when,
                        )
                page = client.following(now, page, "next")
        except _Failed as failed:
            raise self._error(failed.problem, now, posting=False) from None
        except (KeyError, TypeError, ValueError):
            raise ReplyError("unavailable", f"{_host(self.instance)} answered the lookup in an unknown shape") from None
        return None

    # -- talking to the instance -------------------------------------------------------------------

    def _instance(self) -> _Instance:
        if self._client is None:
            self._client = _Instance(self.instance, self.access_token, self.timeout_seconds)
        return self._client

    def _learn(self, account: Mapping[str, Any]) -> None:
        if acct := str(account.get("acct") or "").strip():
            self.account = acct

    def _error(self, problem: Problem, now: datetime, posting: bool) -> ReplyError:
        """The `ReplyError` for ``problem``; ``posting`` when it answered the post itself (a lost answer may mean the
        status exists). Its message cannot carry the token, whatever the instance echoed."""
        code, message, retry_at = self._meaning(problem, now, posting)
        return ReplyError(code, self._instance().scrub(message), retry_at)

    def _meaning(self, problem: Problem, now: datetime, posting: bool) -> tuple[ReplyProblem, str, datetime | None]:
        host = _host(self.instance)
        words = problem.words or (f"HTTP {problem.status}" if problem.status else "no answer")
        if problem.kind == "token":
            renew = "Preferences > Development (scopes read and write:statuses) and update the secret"
            return "expired_token", f"{host} refused the access token ({words}): create a new one in {renew}", None
        if problem.kind == "permission":
            scopes = "its application needs the write:statuses scope (and read): make a new token with both"
            return "permission", f"{host}: the access token may not post ({words}); {scopes}", None
        if problem.kind == "missing":
            return "deleted", f"the post to answer is gone or not visible to the brand account ({words})", None
        if problem.kind == "too_long":
            return "too_long", f"{host} says the reply is too long ({words}): shorten it", None
        if problem.kind == "rate_limited":
            retry_at = problem.retry_at or now + RATE_WINDOW
            when = f"{retry_at.astimezone(UTC):%H:%M} UTC"
            return "rate_limited", f"{host} asks us to wait ({words}); trying again at {when}", retry_at
        if problem.kind == "unreachable":
            return "unavailable", f"cannot reach {host} ({words}); nothing was posted", None
        lost = problem.kind == "no_answer" or (problem.kind == "server" and problem.status in (0, 200, 504))
        if posting and lost:
            return (
                "unknown",
                f"{host}: the post got no answer ({words}, limit {self.timeout_seconds:g} s); the reply may exist, "
                "so the brand's statuses are looked up before any retry (and the same Idempotency-Key makes a repeat "
                "within the hour the same status)",
                None,
            )
        if problem.kind in ("server", "no_answer"):
            return "unavailable", f"{host} failed ({words}); nothing was posted", None
        return "refused", f"{host} refused the reply (HTTP {problem.status}: {words})", None


def _link(value: Any) -> str:
    url = str(value or "")
    return url if urlsplit(url).scheme in ("http", "https") else ""
