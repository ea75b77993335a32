"""The `x` source: X API v2 through tweepy, with three streams, each with its own ``since_id``.

1. ``search``: recent search for the brand's keywords, hashtags and handles, minus exclusions and the brand's
   own posts and retweets (or a raw query the user writes);
2. ``mentions``: each brand account's mentions timeline (the cheap owned read);
3. ``posts``: each brand account's own posts; every reply marks what it replied to as answered, wherever it
   was typed, and a post in the same conversation addressed to a mention's author counts too.

Beside the streams, X's own hourly counts of the search query (``/2/tweets/counts/recent``, seven days back on the
first poll, then each new whole hour) come with the poll as `Poll.history`: the volume baseline's first days, before
passaparola has history of its own. A plan without counts (403) is told once in the log and never fails the poll.

A retweet (``referenced_tweets`` of type ``retweeted``) is never a mention, whichever stream brings it: the
mentions timeline lists retweets, and a retweet of a complaint would raise SLA alerts, a retweet of the brand's
own apology would count as praise. A quote tweet says something of its own, so it is a mention.

The talk with X itself (tweepy's client made safe, faults in words, body shapes) is in `listener.x_api`, the
tweet counts in `listener.x_counts`, the monthly read budget in `listener.x_budget`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

import tweepy
from pydantic import SecretStr

from listener.model import Author, BrandReply, Mention, Poll, RateLimited, SourceError
from listener.x_api import DEFAULT_BASE_URL, MAX_RETRY_AFTER, XApi, page_problem, user_problem, x_time
from listener.x_budget import PRICE_PER_READ, budget_spent, month_budget, spend
from listener.x_counts import (
    COUNTS_LAG,
    COUNTS_MAX_PAGES,
    COUNTS_PATH,
    COUNTS_REACH,
    COUNTS_RETRY,
    HOUR,
    NO_COUNTS_PAUSE,
    counts_history,
)
from listener.x_reply import XReplier

__all__ = [  # what callers import from here, wherever it is defined now
    "COUNTS_LAG",
    "COUNTS_MAX_PAGES",
    "COUNTS_PATH",
    "COUNTS_REACH",
    "COUNTS_RETRY",
    "DEFAULT_BASE_URL",
    "EXPANSIONS",
    "HOUR",
    "MAX_QUERY_CHARS",
    "MAX_RETRY_AFTER",
    "NO_COUNTS_PAUSE",
    "PRICE_PER_READ",
    "TWEET_FIELDS",
    "USER_FIELDS",
    "Stream",
    "XSource",
    "build_query",
]

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 512  # recent search, pay-per-use and Basic plans
TWEET_FIELDS = [
    "author_id",
    "created_at",
    "conversation_id",
    "in_reply_to_user_id",
    "referenced_tweets",
    "lang",
    "public_metrics",
    "entities",
]
USER_FIELDS = ["username", "name", "public_metrics", "verified"]
EXPANSIONS = ["author_id"]
Stream = Literal["search", "mentions", "posts"]


def build_query(keywords: list[str], exclude: list[str], accounts: list[str]) -> str:
    """``(a OR "b c" OR #d OR @e) -f -"g h" -from:brand -is:retweet``: brand talk, not the brand's own."""

    def term(word: str) -> str:
        return f'"{word}"' if " " in word else word

    included = " OR ".join(term(w) for w in keywords)
    parts = [f"({included})" if len(keywords) > 1 else included]
    parts += [f"-{term(w)}" for w in exclude]
    parts += [f"-from:{a}" for a in accounts]
    parts.append("-is:retweet")
    return " ".join(parts)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _referenced(post: dict[str, Any], kind: str) -> str:
    """The id of the post that ``post`` references as ``kind`` (replied_to, quoted), or ""."""
    references = post.get("referenced_tweets") or []
    return next((str(r.get("id") or "") for r in references if isinstance(r, dict) and r.get("type") == kind), "")


def _is_retweet(post: dict[str, Any]) -> bool:
    """Whether ``post`` is a retweet: the retweeter's words are someone else's, so it is never a mention."""
    return any(isinstance(r, dict) and r.get("type") == "retweeted" for r in post.get("referenced_tweets") or [])


@dataclass
class XSource:
    """Listens on X (API v2, app bearer token): keyword search, the brand's mentions, the brand's replies."""

    kind: ClassVar[str] = "x"
    name: str = "x"
    bearer_token: SecretStr = field(default_factory=lambda: SecretStr(""), repr=False)
    accounts: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    query: str = ""
    streams: list[Stream] = field(default_factory=lambda: ["search", "mentions", "posts"])
    base_url: str = DEFAULT_BASE_URL
    page_size: int = 100
    max_pages: int = 5
    connect_timeout_seconds: float = 5.0
    read_timeout_seconds: float = 20.0
    monthly_read_budget: int = 0
    #: The user context of the brand account that answers (OAuth 1.0a): X's API key and secret, and the account's
    #: access token and secret with Read and Write permission. None of them: replies are copied and posted by hand.
    consumer_key: SecretStr = field(default_factory=lambda: SecretStr(""), repr=False)
    consumer_secret: SecretStr = field(default_factory=lambda: SecretStr(""), repr=False)
    access_token: SecretStr = field(default_factory=lambda: SecretStr(""), repr=False)
    access_token_secret: SecretStr = field(default_factory=lambda: SecretStr(""), repr=False)
    reply_account: str = ""  # the handle that answers; default: the first of ``accounts``
    monthly_budget_usd: float = 0.0  # the month's spend limit for reads and writes together (0: no limit)

    def __post_init__(self) -> None:
        self.accounts = [a.lstrip("@") for a in self.accounts]
        self.reply_account = self.reply_account.lstrip("@")
        self._replier: XReplier | None = None
        given = [bool(s.get_secret_value()) for s in self._reply_credentials()]
        if any(given) and not all(given):
            raise ValueError(
                "replying from passaparola needs all four of consumer_key, consumer_secret, access_token, "
                "access_token_secret (secret references), or none"
            )
        if all(given) and not (self.reply_account or self.accounts):
            raise ValueError(
                'replying needs the account that answers: set reply_account = "AuroraCaffe" (or list accounts)'
            )
        if self.monthly_budget_usd < 0:
            raise ValueError("monthly_budget_usd must be 0 (no limit) or more")
        if not self.bearer_token.get_secret_value():
            raise ValueError('bearer_token is required: bearer_token = { env = "X_BEARER_TOKEN" }')
        if ("mentions" in self.streams or "posts" in self.streams) and not self.accounts:
            raise ValueError('accounts is empty: name the brand\'s X accounts, e.g. accounts = ["AuroraCaffe"]')
        if "search" in self.streams:
            if not self.query and not self.keywords:
                raise ValueError('search needs keywords (or a raw query); or drop "search" from streams')
            length = len(self.search_query)
            if length > MAX_QUERY_CHARS:
                raise ValueError(
                    f"the search query is {length} characters; X allows {MAX_QUERY_CHARS}: "
                    "use fewer keywords or exclusions"
                )
        if not 10 <= self.page_size <= 100:
            raise ValueError("page_size must be between 10 and 100 (X's limits)")
        if not self.base_url.startswith(("https://", "http://")):
            raise ValueError("base_url must be an http(s) URL")
        self._api = XApi(self.bearer_token, self.base_url, (self.connect_timeout_seconds, self.read_timeout_seconds))

    @property
    def search_query(self) -> str:
        return self.query or build_query(self.keywords, self.exclude, self.accounts)

    @property
    def counts_query(self) -> str:
        """What tweet counts count: the search query itself (counts take the same operators, and none of search's
        fields, expansions, page size or ``since_id``); with no search configured, mentions of the brand's accounts."""
        if self.query or self.keywords:
            return self.search_query
        return build_query([f"@{a}" for a in self.accounts], [], self.accounts)

    def client(self) -> tweepy.Client:
        return self._api.client()

    def _reply_credentials(self) -> tuple[SecretStr, SecretStr, SecretStr, SecretStr]:
        return (self.consumer_key, self.consumer_secret, self.access_token, self.access_token_secret)

    def replier(self) -> XReplier | None:
        """How this source answers on X as the brand, or None without the user-context credentials a post needs."""
        if not all(s.get_secret_value() for s in self._reply_credentials()):
            return None
        if self._replier is None:
            self._replier = XReplier(
                account=self.reply_account or self.accounts[0],
                consumer_key=self.consumer_key,
                consumer_secret=self.consumer_secret,
                access_token=self.access_token,
                access_token_secret=self.access_token_secret,
                base_url=self.base_url,
                timeout=(self.connect_timeout_seconds, self.read_timeout_seconds),
            )
        return self._replier

    # -- polling ---------------------------------------------------------------------------------

    def poll(self, cursor: Mapping[str, Any] | None, now: datetime) -> Poll:
        state: dict[str, Any] = {"streams": {}, "user_ids": {}, "budget": {}, **dict(cursor or {})}
        budget = month_budget(state["budget"], now)
        mentions: dict[str, Mention] = {}
        replies: dict[str, BrandReply] = {}
        paused: dict[str, str] = {}
        truncated: list[str] = []
        exhausted = False
        for stream, account in self._jobs():
            key = stream if account is None else f"{stream}:{account}"
            stream_state = dict(state["streams"].get(key, {}))
            until = stream_state.get("paused_until")
            if until and datetime.fromisoformat(until) > now:
                paused[key] = until
                continue
            if budget_spent(budget, self.monthly_read_budget):
                exhausted = True
                break
            try:
                user_id = self._user_id(account, state, now) if account else ""
                pages, newest, complete = self._read(stream, user_id, stream_state.get("since_id"), now)
            except tweepy.TooManyRequests as error:
                reset = self._api.resume_at(error, now)
                stream_state["paused_until"] = reset.isoformat()
                state["streams"][key] = stream_state
                paused[key] = reset.isoformat()
                log.warning("x source %s: stream %s rate-limited until %s", self.name, key, reset.isoformat())
                continue
            reads = 0
            for page in pages:
                reads += self._collect(page, stream, mentions, replies)
            spend(budget, stream, reads)
            stream_state.pop("paused_until", None)
            if complete and newest:
                stream_state["since_id"] = newest
            elif not complete:
                truncated.append(key)
            state["streams"][key] = stream_state
        jobs = [k if a is None else f"{k}:{a}" for k, a in self._jobs()]
        if paused and len(paused) == len(jobs) and not mentions and not replies:
            earliest = min(datetime.fromisoformat(p) for p in paused.values())
            raise RateLimited(f"every X stream is rate-limited; resuming at {earliest.isoformat()}", earliest)
        state["budget"] = budget
        history, counts_note = (
            counts_history(self._api, self.name, self.counts_query, state, now) if not exhausted else ((), "")
        )
        details = {
            "reads_this_month": budget["reads"],
            "estimated_cost_usd": budget["cost_usd"],
            "monthly_read_budget": self.monthly_read_budget,
            "paused_streams": paused,
            "truncated_streams": truncated,
            "budget_exhausted": budget["month"] if exhausted else "",
            "tweet_counts": counts_note,
        }
        return Poll(
            mentions=tuple(mentions.values()),
            replies=tuple(replies.values()),
            cursor=state,
            details=details,
            history=history,
        )

    def _jobs(self) -> list[tuple[Stream, str | None]]:
        jobs: list[tuple[Stream, str | None]] = []
        if "search" in self.streams:
            jobs.append(("search", None))
        for stream in ("mentions", "posts"):
            if stream in self.streams:
                jobs += [(stream, account) for account in self.accounts]
        return jobs

    def _user_id(self, account: str, state: dict[str, Any], now: datetime) -> str:
        if account in state["user_ids"]:
            return str(state["user_ids"][account])
        body = self._api.call(now, user_problem, self.client().get_user, username=account)
        user_id = (body.get("data") or {}).get("id")
        if not user_id:
            raise SourceError(f"X has no account @{account}; fix accounts in the config")
        state["user_ids"][account] = str(user_id)
        return str(user_id)

    def _read(
        self, stream: Stream, user_id: str, since_id: str | None, now: datetime
    ) -> tuple[list[dict[str, Any]], str, bool]:
        """All pages of new posts (up to ``max_pages``): (pages, newest id, whether it reached the end)."""
        client = self.client()
        common = {
            "tweet_fields": TWEET_FIELDS,
            "user_fields": USER_FIELDS,
            "expansions": EXPANSIONS,
            "max_results": self.page_size,
            "since_id": since_id,
        }
        pages: list[dict[str, Any]] = []
        token: str | None = None
        newest = ""
        for _ in range(self.max_pages):
            if stream == "search":
                body = self._api.call(
                    now, page_problem, client.search_recent_tweets, self.search_query, next_token=token, **common
                )
            elif stream == "mentions":
                body = self._api.call(
                    now, page_problem, client.get_users_mentions, user_id, pagination_token=token, **common
                )
            else:
                body = self._api.call(
                    now,
                    page_problem,
                    client.get_users_tweets,
                    user_id,
                    pagination_token=token,
                    exclude=["retweets"],
                    **common,
                )
            meta = body.get("meta") or {}
            newest = newest or str(meta.get("newest_id") or "")
            pages.append(body)
            token = meta.get("next_token")
            if not token:
                return pages, newest, True
        return pages, newest, False

    def _collect(
        self, page: dict[str, Any], stream: Stream, mentions: dict[str, Mention], replies: dict[str, BrandReply]
    ) -> int:
        """Turn one page into mentions or replies; retweets are nobody's words; invalid posts are logged and skipped."""
        for error in page.get("errors") or []:
            log.warning(
                "x source %s: the API reported a partial error for %s: %s",
                self.name,
                error.get("resource_id") or error.get("value") or "?",
                error.get("title") or error.get("detail"),
            )
        users = {
            str(u["id"]): u
            for u in (page.get("includes") or {}).get("users") or []
            if isinstance(u, dict) and u.get("id")
        }
        own = {a.lower() for a in self.accounts}
        posts = page.get("data") or []
        for post in posts:
            post_id = str(post.get("id") or "") if isinstance(post, dict) else ""
            try:
                if _is_retweet(post):
                    log.debug("x source %s: retweet %s skipped: a retweet is not a mention", self.name, post_id)
                    continue
                author = users.get(str(post.get("author_id")))
                handle = str((author or {}).get("username") or "")
                if stream == "posts" or handle.lower() in own:
                    reply = self._reply(post, handle or (self.accounts[0] if self.accounts else ""))
                    if reply is not None:
                        replies[reply.key] = reply
                    continue
                mention = self._mention(post, author)
                mentions[mention.key] = mention
            except (AttributeError, KeyError, TypeError, ValueError) as error:  # a post (or a field) of the wrong shape
                log.warning(
                    "x source %s: post %s skipped: %s (%s)",
                    self.name,
                    post_id or "without id",
                    type(error).__name__,
                    error,
                )
        return len(posts)

    def _mention(self, post: dict[str, Any], author: dict[str, Any] | None) -> Mention:
        post_id = str(post["id"])
        if author is None:
            log.warning("x source %s: post %s has no author in includes (deleted or suspended)", self.name, post_id)
        author_id = str(post.get("author_id") or "unknown")
        handle = str((author or {}).get("username") or f"id{author_id}")
        metrics = (author or {}).get("public_metrics") or {}
        replied_to = _referenced(post, "replied_to")
        return Mention(
            platform="x",
            platform_id=post_id,
            source=self.name,
            text=str(post["text"]),
            published_at=x_time(post["created_at"]),
            url=f"https://x.com/{handle}/status/{post_id}",
            thread_id=str(post.get("conversation_id") or post_id),
            in_reply_to=replied_to,
            language_hint=str(post.get("lang") or ""),
            metrics={k: _int(v) for k, v in (post.get("public_metrics") or {}).items()},
            author=Author(
                platform="x",
                platform_id=author_id,
                handle=handle,
                display_name=str((author or {}).get("name") or ""),
                reach=_int(metrics.get("followers_count")),
                verified=bool((author or {}).get("verified")),
            ),
        )

    def _reply(self, post: dict[str, Any], handle: str) -> BrandReply | None:
        replied_to = _referenced(post, "replied_to")
        to_user = str(post.get("in_reply_to_user_id") or "")
        if not replied_to and not to_user:
            return None  # a post of its own, not an answer to anybody
        post_id = str(post["id"])
        return BrandReply(
            platform="x",
            platform_id=post_id,
            source=self.name,
            published_at=x_time(post["created_at"]),
            author_handle=handle,
            in_reply_to=replied_to,
            thread_id=str(post.get("conversation_id") or ""),
            to_author_id=to_user,
            text=str(post.get("text") or ""),
            url=f"https://x.com/{handle}/status/{post_id}",
        )
