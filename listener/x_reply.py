"""Answering an X mention as the brand: a reply post through the X API v2, as the brand account's user context.

Posting needs OAuth 1.0a user context (the app's API key and secret, the brand account's access token and secret,
with Read and Write permission); the source's bearer token reads only. The client is tweepy's, made safe the way
`listener.x_api` makes the read client safe: a requests adapter sends every request to ``base_url`` with timeouts,
tweepy never sleeps on a 429, and no secret is put in a message.

Length is counted as X counts it (``twitter-text``: a link counts 23, an emoji or a CJK character 2), so a draft that
X would refuse is told before anything is sent. A send whose answer never came (a read timeout, a connection that
dropped after the request went out) is ``unknown``: the post may exist, and `XReplier.find` looks for it in the
brand account's own timeline before the outbox tries again.
"""

from __future__ import annotations

import functools
import html
import importlib.resources
import logging
import re
import sys
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
import tweepy
from pydantic import SecretStr
from urllib3.exceptions import ProtocolError

from listener.model import Mention
from listener.replying import ReplyError, ReplyProblem, SentReply
from listener.x_api import DEFAULT_BASE_URL, _retry_after, _TimeoutRedirect, x_time

log = logging.getLogger(__name__)
_IMPORTING = threading.Lock()


@functools.cache
def _twitter_text() -> types.ModuleType:
    """``twitter_text``, imported on first use: building its emoji table takes a fifth of a second.

    It reads its emoji list with ``pkg_resources.resource_string`` as it is imported, and setuptools 82 removed
    ``pkg_resources`` (the running image need not have setuptools at all). So, unless a real one is loaded, a
    stand-in that offers only ``resource_string`` is put in place for the import and taken away after it.
    """
    with _IMPORTING:
        return _import_twitter_text()


def _import_twitter_text() -> types.ModuleType:
    if "pkg_resources" in sys.modules:
        import twitter_text

        return twitter_text

    def resource_string(module: str, name: str) -> bytes:
        loaded = sys.modules[module]
        package = module if hasattr(loaded, "__path__") else module.rpartition(".")[0]
        return importlib.resources.files(package).joinpath(name).read_bytes()

    stand_in = types.ModuleType("pkg_resources")
    stand_in.resource_string = resource_string  # type: ignore[attr-defined]
    sys.modules["pkg_resources"] = stand_in
    try:
        import twitter_text

        return twitter_text
    finally:
        if sys.modules.get("pkg_resources") is stand_in:
            del sys.modules["pkg_resources"]


def parse_tweet(text: str) -> Any:
    """twitter-text's ``parse_tweet``: ``weightedLength`` and ``valid``, as X counts (X's defaults, version 3)."""
    return _twitter_text().parse_tweet(text)


def extract_urls(text: str) -> list[str]:
    """The links in ``text`` as X finds them (with or without ``https://``, on domains X knows)."""
    return list(_twitter_text().extract_urls(text))


#: X pay-per-use prices for writes, USD a request: docs.x.com/x-api/getting-started/pricing ("Content: Create" and
#: "Content: Create (with URL)"), as read in 2026.
PRICE_PER_WRITE = {"post": 0.015, "post_with_url": 0.200}
#: The longest post X takes from an account without a paid subscription, counted as X counts it.
MAX_WEIGHTED_LENGTH = 280
#: How long to wait after a 429 that says neither ``x-rate-limit-reset`` nor ``Retry-After`` (X's 15-minute window).
RATE_LIMIT_FALLBACK = timedelta(minutes=15)
#: The brand's posts read at most while looking for one reply (100 each): a send is looked for within minutes.
FIND_MAX_PAGES = 5
FIND_TWEET_FIELDS = ["created_at", "referenced_tweets", "conversation_id"]
#: How many of X's own words an error message carries at most.
WORDS = 200
MASK = "**********"
_LEADING_MENTIONS = re.compile(r"^(?:\s*@\w+)+\s*")


def _plain(text: str) -> str:
    """``text`` as X may hand it back: entities decoded (X escapes ``&``, ``<``, ``>``), whitespace collapsed."""
    return " ".join(html.unescape(text).split())


def _gist(text: str) -> str:
    """``text`` without its links (X may show them as t.co links) and the @handles it starts with (X may add the
    replied-to author's)."""
    plain = _plain(text)
    for url in sorted(set(extract_urls(plain)), key=len, reverse=True):
        plain = plain.replace(url, " ")
    return " ".join(_LEADING_MENTIONS.sub("", plain).split())


def same_text(posted: str, text: str) -> bool:
    """Whether ``posted`` (as X lists it) is ``text`` (as passaparola sent it)."""
    return _plain(posted) == _plain(text) or (bool(_gist(text)) and _gist(posted) == _gist(text))


@dataclass
class XReplier:
    """Posts the brand's replies on X as ``account``, with OAuth 1.0a user-context credentials; see `Replier`."""

    account: str
    consumer_key: SecretStr = field(repr=False)
    consumer_secret: SecretStr = field(repr=False)
    access_token: SecretStr = field(repr=False)
    access_token_secret: SecretStr = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    timeout: tuple[float, float] = (5.0, 20.0)  # connect, read (seconds)
    channel: str = field(default="x", init=False)
    _client: tweepy.Client | None = field(default=None, init=False, repr=False)
    _adapter: _TimeoutRedirect | None = field(default=None, init=False, repr=False)
    _user_id: str = field(default="", init=False, repr=False)

    def __post_init__(self) -> None:
        self.account = self.account.lstrip("@")

    # -- before sending --------------------------------------------------------------------------

    def check(self, text: str) -> str:
        """Why X would refuse ``text`` (empty, too long as X counts it, characters X does not take), or ""."""
        if not text.strip():
            return "the reply is empty: write the answer first"
        parsed = parse_tweet(text)
        length = int(parsed.weightedLength)
        if length > MAX_WEIGHTED_LENGTH:
            return (
                f"{length} characters as X counts them (links count 23, emoji 2); X allows {MAX_WEIGHTED_LENGTH}: "
                f"shorten it by {length - MAX_WEIGHTED_LENGTH}"
            )
        if not parsed.valid:
            return "it contains characters X does not accept (such as control characters): remove them"
        return ""

    def cost_usd(self, text: str) -> float:
        """What X bills for posting ``text``: a post with a link costs more than one without."""
        return PRICE_PER_WRITE["post_with_url"] if extract_urls(text) else PRICE_PER_WRITE["post"]

    # -- talking to X ----------------------------------------------------------------------------

    def client(self) -> tweepy.Client:
        """tweepy's client for the brand account's user context, sent to ``base_url`` with timeouts."""
        if self._client is None:
            client = tweepy.Client(
                consumer_key=self.consumer_key.get_secret_value(),
                consumer_secret=self.consumer_secret.get_secret_value(),
                access_token=self.access_token.get_secret_value(),
                access_token_secret=self.access_token_secret.get_secret_value(),
                return_type=requests.Response,
                wait_on_rate_limit=False,
            )
            adapter = _TimeoutRedirect(self.base_url, self.timeout)
            client.session.mount(DEFAULT_BASE_URL, adapter)
            self._adapter = adapter
            self._client = client
        return self._client

    def mask(self, text: str) -> str:
        """``text`` without any of the four credentials, for messages built from what X (or a proxy) sent."""
        for secret in (self.consumer_key, self.consumer_secret, self.access_token, self.access_token_secret):
            value = secret.get_secret_value()
            if value:
                text = text.replace(value, MASK)
        return text

    def reply(self, mention: Mention, text: str, now: datetime) -> SentReply:
        """Post ``text`` as the brand's reply to ``mention``; X's refusals come back as `ReplyError`s."""
        if mention.platform != "x":
            raise ReplyError("refused", f"the mention is on {mention.platform}, not X: answer it there")
        problem = self.check(text)
        if problem:
            raise ReplyError("refused" if not text.strip() else "too_long", problem)
        response = self._send(
            now,
            True,
            self.client().create_tweet,
            text=text,
            in_reply_to_tweet_id=mention.platform_id,
            user_auth=True,
        )
        try:
            data = response.json()["data"]
            post_id, posted = str(data["id"]), str(data["text"])
        except (ValueError, KeyError, TypeError):
            raise ReplyError(
                "unknown",
                f"X answered {response.status_code} without the new post's id: the reply may be posted; "
                "passaparola looks for it in the account's posts before trying again",
            ) from None
        if not post_id:
            raise ReplyError("unknown", f"X answered {response.status_code} with an empty post id: looking it up")
        return SentReply(platform_id=post_id, url=self._url(post_id), text=posted, published_at=now)

    def find(self, mention: Mention, text: str, since: datetime, now: datetime) -> SentReply | None:
        """Our reply to ``mention`` with ``text``, among the account's posts since ``since``, if X lists it."""
        user_id = self._me(now)
        token: str | None = None
        for _ in range(FIND_MAX_PAGES):
            body = self._body(
                now,
                self.client().get_users_tweets,
                user_id,
                start_time=since,
                tweet_fields=FIND_TWEET_FIELDS,
                max_results=100,
                pagination_token=token,
                user_auth=True,
            )
            for post in body.get("data") or []:
                found = self._match(post, mention, text, since)
                if found is not None:
                    return found
            token = (body.get("meta") or {}).get("next_token")
            if not token:
                return None
        log.warning(
            "x replier @%s: reply to %s not found in %d pages of posts", self.account, mention.key, FIND_MAX_PAGES
        )
        return None

    # -- the parts -------------------------------------------------------------------------------

    def _url(self, post_id: str) -> str:
        return f"https://x.com/{self.account}/status/{post_id}"

    def _match(self, post: Any, mention: Mention, text: str, since: datetime) -> SentReply | None:
        if not isinstance(post, dict):
            return None
        references = post.get("referenced_tweets") or []
        answers = any(
            isinstance(r, dict) and r.get("type") == "replied_to" and str(r.get("id")) == mention.platform_id
            for r in references
        )
        if not answers or not same_text(str(post.get("text") or ""), text):
            return None
        try:
            published = x_time(str(post["created_at"]))
        except (KeyError, ValueError):
            published = since
        if published < since.astimezone(UTC).replace(microsecond=0):
            return None
        post_id = str(post.get("id") or "")
        return SentReply(platform_id=post_id, url=self._url(post_id), text=str(post["text"]), published_at=published)

    def _me(self, now: datetime) -> str:
        """The user id of the account the access token belongs to (asked once): its posts are where ours are."""
        if not self._user_id:
            data = self._body(now, self.client().get_me, user_auth=True).get("data")
            if not isinstance(data, dict) or not data.get("id"):
                raise ReplyError("unavailable", "X did not say which account the access token belongs to; retrying")
            username = str(data.get("username") or "")
            if username and username.lower() != self.account.lower():
                log.warning(
                    "x replier: the access token is @%s's, not @%s's: replies are posted as @%s",
                    username,
                    self.account,
                    username,
                )
            self._user_id = str(data["id"])
        return self._user_id

    def _body(
        self, now: datetime, method: Callable[..., requests.Response], *args: Any, **kwargs: Any
    ) -> dict[str, Any]:
        response = self._send(now, False, method, *args, **kwargs)
        try:
            body = response.json()
        except ValueError:
            raise ReplyError(
                "unavailable", f"X answered {response.status_code} with a body that is not JSON; retrying later"
            ) from None
        if not isinstance(body, dict) or not isinstance(body.get("data", {}), dict | list):
            raise ReplyError(
                "unavailable", f"X answered {response.status_code} with JSON of an unexpected shape; retrying later"
            )
        return body

    def _words(self, error: tweepy.HTTPException) -> str:
        """X's own words about ``error``, masked and short."""
        return self.mask("; ".join(str(m) for m in error.api_messages))[:WORDS]

    def _send(
        self, now: datetime, posting: bool, method: Callable[..., requests.Response], *args: Any, **kwargs: Any
    ) -> requests.Response:
        """One request; whatever went wrong becomes a `ReplyError` saying what to do. ``posting``: the request
        creates a post, so a lost answer may mean it exists."""
        try:
            return method(*args, **kwargs)
        except tweepy.TooManyRequests as error:
            retry_at = (
                datetime.fromtimestamp(error.reset_time, UTC)
                if error.reset_time
                else _retry_after(error.response.headers, now) or now + RATE_LIMIT_FALLBACK
            )
            raise ReplyError(
                "rate_limited",
                f"X asked to wait (429 Too Many Requests) until {retry_at.isoformat()}; passaparola tries again then",
                retry_at,
            ) from None
        except tweepy.Unauthorized:
            raise ReplyError(
                "expired_token",
                "X refused the account's access token (401): create new user-context keys with Read and Write "
                "permission and update the secrets",
            ) from None
        except tweepy.Forbidden as error:
            raise self._forbidden(self._words(error)) from None
        except tweepy.BadRequest as error:
            words = self._words(error)
            problem: ReplyProblem = "too_long" if "too long" in words.lower() else "refused"
            raise ReplyError(problem, f"X refused the reply (400): {words or 'invalid request'}") from None
        except tweepy.TwitterServerError as error:
            status = error.response.status_code
            raise ReplyError(
                "unavailable",
                f"X answered {status}: a server error, nothing was posted; passaparola tries again later",
                _retry_after(error.response.headers, now),
            ) from None
        except tweepy.HTTPException as error:
            raise ReplyError(
                "refused", f"X answered {error.response.status_code}: {self._words(error) or 'refused'}"
            ) from None
        except (requests.ReadTimeout, requests.exceptions.ChunkedEncodingError) as error:
            raise self._lost(posting, error) from None
        except requests.ConnectionError as error:
            if error.args and isinstance(error.args[0], ProtocolError):  # sent, then the connection dropped
                raise self._lost(posting, error) from None
            raise ReplyError(
                "unavailable", f"cannot reach X at {self.base_url} ({type(error).__name__}); nothing was posted"
            ) from None
        except requests.RequestException as error:
            raise ReplyError(
                "unavailable", f"cannot reach X at {self.base_url} ({type(error).__name__}); nothing was posted"
            ) from None
        except (AttributeError, TypeError, ValueError) as error:  # tweepy tripping over an error body or a header
            raise self._garbled(error, now) from None

    def _forbidden(self, words: str) -> ReplyError:
        said = words.lower()
        if "duplicate" in said:
            return ReplyError(
                "duplicate", f"X refuses the same text twice from the account ({words}): change the wording"
            )
        if "deleted" in said or "not visible" in said:
            return ReplyError(
                "deleted",
                f"X says the post to answer is gone ({words}): mark the mention ignored or answer elsewhere",
            )
        if "too long" in said:
            return ReplyError("too_long", f"X says the reply is too long ({words}): shorten it")
        return ReplyError(
            "permission",
            f"X forbade the post (403: {words or 'forbidden'}): give the app Read and Write permission in the "
            "developer portal (User authentication settings), then create new access tokens and update the secrets",
        )

    def _lost(self, posting: bool, error: Exception) -> ReplyError:
        if posting:
            return ReplyError(
                "unknown",
                f"X did not answer within {self.timeout[1]:g} s ({type(error).__name__}): the reply may be posted; "
                "passaparola looks for it in the account's posts before trying again",
            )
        return ReplyError("unavailable", f"X did not answer within {self.timeout[1]:g} s; passaparola retries")

    def _garbled(self, error: Exception, now: datetime) -> ReplyError:
        adapter = self._adapter
        if adapter is None or adapter.last_status < 400:
            raise error  # not tweepy reading an error answer: a bug, which must show as one
        status = adapter.last_status
        if status == 429:
            return ReplyError(
                "rate_limited",
                "X asked to wait (429) without a readable reset time; trying again in 15 minutes",
                now + RATE_LIMIT_FALLBACK,
            )
        if status >= 500:
            return ReplyError("unavailable", f"X answered {status} with a body passaparola cannot read; retrying")
        return ReplyError("refused", f"X answered {status} with a body passaparola cannot read")
