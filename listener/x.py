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

tweepy 4.17's `Client` has no timeout and a hard-coded host, sleeps inside the request when asked to wait on
rate limits, and logs the bearer token at DEBUG. So: a requests adapter on ``client.session`` adds timeouts
and sends requests to ``base_url``; ``wait_on_rate_limit`` stays off and a 429 pauses only its stream until
``x-rate-limit-reset`` (or ``Retry-After``); a 5xx with ``Retry-After`` pauses the whole source until then.
Responses come back raw (``return_type=requests.Response``) so that a body that is not JSON, or JSON of the
wrong shape, is reported as what it is, with its status and content type, not as "cannot reach X". The
token is never put in a message (the CLI also masks it in every log record).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Literal

import requests
import tweepy
from pydantic import SecretStr
from requests.adapters import HTTPAdapter

from listener.fetch import retry_after
from listener.model import Author, BrandReply, HourCount, Mention, Poll, RateLimited, SourceError

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.twitter.com"
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
#: Pay-per-use prices (USD a post read, since February 2026): owned reads are cheaper than search.
PRICE_PER_READ = {"search": 0.005, "mentions": 0.001, "posts": 0.001}
#: The longest pause a ``Retry-After`` header may ask for: a broken proxy must not silence X for a day.
MAX_RETRY_AFTER = timedelta(hours=1)
Stream = Literal["search", "mentions", "posts"]
#: Tweet counts: X's own hourly counts of the query, seven days back, for the volume baseline's first days.
COUNTS_PATH = "/2/tweets/counts/recent"
COUNTS_REACH = timedelta(days=7)
#: Only whole hours that ended at least this long ago are asked for (X wants ``end_time`` 10 s in the past).
COUNTS_LAG = timedelta(seconds=30)
COUNTS_MAX_PAGES = 10
#: A plan without tweet counts is asked again after a day: plans change, but not by the minute.
NO_COUNTS_PAUSE = timedelta(days=1)
#: After any other failed counts fetch: the next try comes with the next hour, as it would anyway.
COUNTS_RETRY = timedelta(hours=1)
HOUR = timedelta(hours=1)


class _MaskToken(logging.Filter):
    """Masks the bearer token in tweepy's own records (it logs request headers at DEBUG)."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.token in message:
            record.msg, record.args = message.replace(self.token, "**********"), None
        return True


class _TimeoutRedirect(HTTPAdapter):
    """Gives every request a timeout and sends it to ``base_url`` instead of tweepy's hard-coded host.

    It remembers the last answer's status and content type: when tweepy itself trips over an error body of
    the wrong shape, that is all there is to say what came back.
    """

    def __init__(self, base_url: str, timeout: tuple[float, float]) -> None:
        super().__init__(max_retries=0)
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.last_status = 0
        self.last_type = ""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if request.url and self.base_url != DEFAULT_BASE_URL:
            request.url = self.base_url + request.url[len(DEFAULT_BASE_URL) :]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        self.last_status, self.last_type = 0, ""
        response = super().send(request, **kwargs)
        self.last_status, self.last_type = response.status_code, response.headers.get("content-type") or ""
        return response


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


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


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


def _retry_after(headers: Mapping[str, str], now: datetime) -> datetime | None:
    """When a ``Retry-After`` header asks us back, at most an hour away (the feeds' reading of the header)."""
    return retry_after(str(headers.get("retry-after") or ""), now, MAX_RETRY_AFTER)


def _json_kind(value: Any) -> str:
    """What a JSON value is, in words: "a list", "a string"... (for messages about a body's shape)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def _page_problem(body: Any) -> str:
    """What is wrong with the shape of a search or timeline page ("" if nothing), before any of it is trusted."""
    if not isinstance(body, dict):
        return f"the body is {_json_kind(body)}, not an object"
    for name, kind in (("data", list), ("includes", dict), ("meta", dict), ("errors", list)):
        if body.get(name) is not None and not isinstance(body[name], kind):
            return f"'{name}' is {_json_kind(body[name])}, not {_json_kind(kind())}"
    if "meta" not in body and "errors" not in body:
        return "it has neither 'meta' nor 'errors'"
    users = (body.get("includes") or {}).get("users")
    if users is not None and not isinstance(users, list):
        return f"'includes.users' is {_json_kind(users)}, not a list"
    meta = body.get("meta") or {}
    for name in ("next_token", "newest_id"):
        if meta.get(name) is not None and not isinstance(meta[name], str | int):
            return f"'meta.{name}' is {_json_kind(meta[name])}, not a string"
    return ""


def _counts_problem(body: Any) -> str:
    """What is wrong with the shape of a tweet counts page ("" if nothing)."""
    if not isinstance(body, dict):
        return f"the body is {_json_kind(body)}, not an object"
    for name, kind in (("data", list), ("meta", dict), ("errors", list)):
        if body.get(name) is not None and not isinstance(body[name], kind):
            return f"'{name}' is {_json_kind(body[name])}, not {_json_kind(kind())}"
    if "meta" not in body and "data" not in body and "errors" not in body:
        return "it has neither 'data' nor 'meta'"
    token = (body.get("meta") or {}).get("next_token")
    if token is not None and not isinstance(token, str | int):
        return f"'meta.next_token' is {_json_kind(token)}, not a string"
    return ""


def _start_of_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _stamp(moment: datetime) -> str:
    """A time as X's ``start_time``/``end_time`` want it: ``YYYY-MM-DDTHH:mm:ssZ``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bucket(bucket: Any) -> HourCount | None:
    """One bucket of a counts page as a whole hour; None for a partial hour or a bucket of the wrong shape."""
    try:
        start, end, count = _time(bucket["start"]), _time(bucket["end"]), bucket["tweet_count"]
        if not isinstance(count, int) or isinstance(count, bool) or end - start != HOUR:
            return None
        return HourCount(start, count)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


class _NoCounts(Exception):
    """X answered 403 to tweet counts: the plan does not include them. Not a failure of the poll."""


def _user_problem(body: Any) -> str:
    """What is wrong with the shape of a user lookup ("" if nothing)."""
    if not isinstance(body, dict):
        return f"the body is {_json_kind(body)}, not an object"
    if body.get("data") is not None and not isinstance(body["data"], dict):
        return f"'data' is {_json_kind(body['data'])}, not an object"
    if "data" not in body and "errors" not in body:
        return "it has neither 'data' nor 'errors'"
    return ""


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

    def __post_init__(self) -> None:
        self.accounts = [a.lstrip("@") for a in self.accounts]
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
        self._client: tweepy.Client | None = None
        self._adapter: _TimeoutRedirect | None = None
        self._rng = random.Random()

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
        if self._client is None:
            client = tweepy.Client(
                bearer_token=self.bearer_token.get_secret_value(),
                return_type=requests.Response,
                wait_on_rate_limit=False,
            )
            adapter = _TimeoutRedirect(self.base_url, (self.connect_timeout_seconds, self.read_timeout_seconds))
            client.session.mount(DEFAULT_BASE_URL, adapter)
            self._adapter = adapter
            logging.getLogger("tweepy.client").addFilter(_MaskToken(self.bearer_token.get_secret_value()))
            self._client = client
        return self._client

    # -- polling ---------------------------------------------------------------------------------

    def poll(self, cursor: Mapping[str, Any] | None, now: datetime) -> Poll:
        state: dict[str, Any] = {"streams": {}, "user_ids": {}, "budget": {}, **dict(cursor or {})}
        month = now.strftime("%Y-%m")
        budget: dict[str, Any] = dict(state["budget"])
        if budget.get("month") != month:
            budget = {"month": month, "reads": 0, "cost_usd": 0.0}
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
            if self.monthly_read_budget and budget["reads"] >= self.monthly_read_budget:
                exhausted = True
                break
            try:
                user_id = self._user_id(account, state, now) if account else ""
                pages, newest, complete = self._read(stream, user_id, stream_state.get("since_id"), now)
            except tweepy.TooManyRequests as error:
                reset = self._resume_at(error, now)
                stream_state["paused_until"] = reset.isoformat()
                state["streams"][key] = stream_state
                paused[key] = reset.isoformat()
                log.warning("x source %s: stream %s rate-limited until %s", self.name, key, reset.isoformat())
                continue
            reads = 0
            for page in pages:
                reads += self._collect(page, stream, mentions, replies)
            budget["reads"] += reads
            budget["cost_usd"] = round(budget["cost_usd"] + reads * PRICE_PER_READ[stream], 4)
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
        history, counts_note = self._history(state, now) if not exhausted else ((), "")
        details = {
            "reads_this_month": budget["reads"],
            "estimated_cost_usd": budget["cost_usd"],
            "monthly_read_budget": self.monthly_read_budget,
            "paused_streams": paused,
            "truncated_streams": truncated,
            "budget_exhausted": month if exhausted else "",
            "tweet_counts": counts_note,
        }
        return Poll(
            mentions=tuple(mentions.values()),
            replies=tuple(replies.values()),
            cursor=state,
            details=details,
            history=history,
        )

    # -- tweet counts: history for the volume baseline ------------------------------------------------

    def _history(self, state: dict[str, Any], now: datetime) -> tuple[tuple[HourCount, ...], str]:
        """X's hourly counts of `counts_query`: seven days back on the first poll, then only the whole hours since
        the last one fetched (so at most once an hour). Never fails the poll: a plan without counts is told once and
        asked again after a day, a 429 waits for its reset, anything else for the next hour.

        Returns the hours and a note for the source's health ("" when all is well).
        """
        counts: dict[str, Any] = dict(state.get("counts") or {})
        paused = counts.get("paused_until")
        if paused and datetime.fromisoformat(paused) > now:
            return (), "no access on this plan" if counts.get("no_access") else f"paused until {paused}"
        end = _start_of_hour(now - COUNTS_LAG)
        start = _start_of_hour(now - COUNTS_REACH) + HOUR  # X refuses a start_time more than seven days back
        if counts.get("until"):
            start = max(start, datetime.fromisoformat(counts["until"]))
        if start >= end:
            return (), ""
        note = ""
        found: list[HourCount] = []
        try:
            found, complete = self._read_counts(start, end, now)
        except _NoCounts as error:
            if not counts.get("no_access"):
                log.warning(
                    "x source %s: your X plan has no access to tweet counts; spike baselines will build from "
                    "passaparola's own history (X answered 403: %s). passaparola asks again in a day",
                    self.name,
                    error,
                )
            counts.update(no_access=True, paused_until=(now + NO_COUNTS_PAUSE).isoformat())
            note = "no access on this plan"
        except tweepy.TooManyRequests as error:
            reset = self._resume_at(error, now)
            counts["paused_until"] = reset.isoformat()
            log.warning("x source %s: tweet counts rate-limited until %s", self.name, reset.isoformat())
            note = f"paused until {reset.isoformat()}"
        except RateLimited as error:
            counts["paused_until"] = error.retry_at.isoformat()
            log.warning("x source %s: tweet counts paused until %s: %s", self.name, error.retry_at.isoformat(), error)
            note = f"paused until {error.retry_at.isoformat()}"
        except SourceError as error:
            counts["paused_until"] = (now + COUNTS_RETRY).isoformat()
            log.warning("x source %s: tweet counts not read, next try in an hour: %s", self.name, error)
            note = f"not read: {error}"[:300]
        else:
            if counts.pop("no_access", None):
                log.info("x source %s: X's tweet counts are available now; spike baselines use them", self.name)
            counts.pop("paused_until", None)
            # A page cap that stopped early: carry on from the last hour received, never skip hours.
            reached = max((c.hour + HOUR for c in found), default=start)
            counts["until"] = end.isoformat() if complete else max(reached, start).isoformat()
            if not complete and reached <= start:
                counts["paused_until"] = (now + COUNTS_RETRY).isoformat()
        state["counts"] = counts
        return tuple(found), note

    def _read_counts(self, start: datetime, end: datetime, now: datetime) -> tuple[list[HourCount], bool]:
        """Every page of hourly counts in [start, end), following ``meta.next_token`` up to `COUNTS_MAX_PAGES`:
        (the whole hours, whether it reached the last page)."""
        client = self.client()

        def request(**params: Any) -> requests.Response:
            # tweepy 4.17's get_recent_tweets_count does not know next_token; its request() sends what it is given.
            try:
                return client.request("GET", COUNTS_PATH, params={k: v for k, v in params.items() if v is not None})
            except tweepy.Forbidden as error:
                raise _NoCounts(self._mask("; ".join(error.api_messages))[:200] or "Forbidden") from None

        found: list[HourCount] = []
        token: str | None = None
        for _ in range(COUNTS_MAX_PAGES):
            body = self._call(
                now,
                _counts_problem,
                request,
                query=self.counts_query,
                granularity="hour",
                start_time=_stamp(start),
                end_time=_stamp(end),
                next_token=token,
            )
            for bucket in body.get("data") or []:
                hour = _bucket(bucket)
                if hour is None:
                    log.debug(
                        "x source %s: counts bucket skipped (partial or of the wrong shape): %r", self.name, bucket
                    )
                    continue
                found.append(hour)
            token = (body.get("meta") or {}).get("next_token")
            if not token:
                return found, True
            token = str(token)
        return found, False

    def _jobs(self) -> list[tuple[Stream, str | None]]:
        jobs: list[tuple[Stream, str | None]] = []
        if "search" in self.streams:
            jobs.append(("search", None))
        for stream in ("mentions", "posts"):
            if stream in self.streams:
                jobs += [(stream, account) for account in self.accounts]
        return jobs

    def _resume_at(self, error: tweepy.TooManyRequests, now: datetime) -> datetime:
        """When a rate-limited stream may ask again: X's ``x-rate-limit-reset``, else ``Retry-After``, else backoff."""
        if error.reset_time:
            return datetime.fromtimestamp(error.reset_time, UTC)
        asked = _retry_after(error.response.headers, now)
        return asked or now + timedelta(seconds=60 + self._rng.random() * 120)

    def _mask(self, text: str) -> str:
        """``text`` without the bearer token, for messages built from what X (or a proxy) sent back."""
        return text.replace(self.bearer_token.get_secret_value(), "**********")

    def _call(
        self,
        now: datetime,
        problem: Callable[[Any], str],
        method: Callable[..., requests.Response],
        *args: Any,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """One request, its body checked by ``problem``; faults become `SourceError`s that say what to fix.

        A 429 passes through (it pauses one stream); a 5xx with ``Retry-After`` is `RateLimited` until then.
        """
        response = self._send(now, method, *args, **kwargs)
        kind = self._content_type(response.headers.get("content-type") or "")
        try:
            body = response.json()
        except ValueError:
            raise SourceError(
                f"X answered with a body that is not JSON (HTTP {response.status_code}, {kind}); "
                "X may be having an outage; passaparola retries"
            ) from None
        wrong = problem(body)
        if wrong:
            raise SourceError(
                f"X answered with JSON of an unexpected shape (HTTP {response.status_code}, {kind}: {wrong}); "
                "X may be having an outage or have changed its API; passaparola retries"
            )
        return dict(body)

    def _content_type(self, header: str) -> str:
        """A content type fit for a message: no parameters, no token, not too long."""
        return self._mask(header).split(";")[0].strip()[:60] or "no content type"

    def _send(
        self, now: datetime, method: Callable[..., requests.Response], *args: Any, **kwargs: Any
    ) -> requests.Response:
        """The request itself; tweepy's exceptions become `SourceError`s (429 passes through)."""
        try:
            return method(*args, **kwargs)
        except (AttributeError, TypeError):
            adapter = self._adapter
            if adapter is None or adapter.last_status < 400:
                raise  # not tweepy reading an error body: a bug, which must show as one
            raise SourceError(
                f"X answered with an error body of an unexpected shape (HTTP {adapter.last_status}, "
                f"{self._content_type(adapter.last_type)}); X may be having an outage; passaparola retries"
            ) from None
        except tweepy.TooManyRequests:
            raise
        except tweepy.Unauthorized:
            raise SourceError(
                "X answered 401 Unauthorized: the bearer token is wrong, expired or revoked; "
                "create a new one in the developer portal and update the secret"
            ) from None
        except tweepy.Forbidden as error:
            detail = self._mask("; ".join(error.api_messages))[:200] or "forbidden"
            raise SourceError(
                f"X answered 403 Forbidden ({detail}): the app's plan or access level does not "
                "include this endpoint; check the project's access in the developer portal"
            ) from None
        except tweepy.TwitterServerError as error:
            status = error.response.status_code
            retry_at = _retry_after(error.response.headers, now)
            if retry_at is not None:
                raise RateLimited(
                    f"X answered {status} and asked to be called again at {retry_at.isoformat()} (Retry-After); "
                    "passaparola waits until then",
                    retry_at,
                ) from None
            raise SourceError(f"X answered {status}: a server error; retrying later") from None
        except tweepy.HTTPException as error:
            raise SourceError(
                f"X answered {error.response.status_code}: {self._mask('; '.join(error.api_messages))[:200]}"
            ) from None
        except requests.Timeout:
            raise SourceError(f"X did not answer within {self.read_timeout_seconds:g} s; retrying later") from None
        except requests.RequestException as error:
            raise SourceError(f"cannot reach X at {self.base_url} ({type(error).__name__}); retrying later") from None
        except ValueError as error:  # tweepy's int() of an x-rate-limit-reset that is not a number
            raise SourceError(
                f"X answered with something passaparola cannot read ({type(error).__name__}); "
                "X may be having an outage; passaparola retries"
            ) from None

    def _user_id(self, account: str, state: dict[str, Any], now: datetime) -> str:
        if account in state["user_ids"]:
            return str(state["user_ids"][account])
        body = self._call(now, _user_problem, self.client().get_user, username=account)
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
                body = self._call(
                    now, _page_problem, client.search_recent_tweets, self.search_query, next_token=token, **common
                )
            elif stream == "mentions":
                body = self._call(
                    now, _page_problem, client.get_users_mentions, user_id, pagination_token=token, **common
                )
            else:
                body = self._call(
                    now,
                    _page_problem,
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
            published_at=_time(post["created_at"]),
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
            published_at=_time(post["created_at"]),
            author_handle=handle,
            in_reply_to=replied_to,
            thread_id=str(post.get("conversation_id") or ""),
            to_author_id=to_user,
            text=str(post.get("text") or ""),
            url=f"https://x.com/{handle}/status/{post_id}",
        )
