"""Talking to the X API: tweepy's `Client` made safe, every fault in words, the shape checks of X's bodies.

tweepy 4.17's `Client` has no timeout and a hard-coded host, sleeps inside the request when asked to wait on
rate limits, and logs the bearer token at DEBUG. So: a requests adapter on ``client.session`` adds timeouts
and sends requests to ``base_url``; ``wait_on_rate_limit`` stays off and a 429 passes through to pause only its
stream until ``x-rate-limit-reset`` (or ``Retry-After``); a 5xx with ``Retry-After`` pauses the whole source
until then. Responses come back raw (``return_type=requests.Response``) so that a body that is not JSON, or JSON
of the wrong shape, is reported as what it is, with its status and content type, not as "cannot reach X". The
token is never put in a message (the CLI also masks it in every log record).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
import tweepy
from pydantic import SecretStr
from requests.adapters import HTTPAdapter

from listener.fetch import json_kind, retry_after
from listener.model import RateLimited, SourceError

DEFAULT_BASE_URL = "https://api.twitter.com"
#: The longest pause a ``Retry-After`` header may ask for: a broken proxy must not silence X for a day.
MAX_RETRY_AFTER = timedelta(hours=1)


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


def x_time(value: str) -> datetime:
    """A time as X writes it (``2026-02-23T10:00:00.000Z``), in UTC."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _retry_after(headers: Mapping[str, str], now: datetime) -> datetime | None:
    """When a ``Retry-After`` header asks us back, at most an hour away (the feeds' reading of the header)."""
    return retry_after(str(headers.get("retry-after") or ""), now, MAX_RETRY_AFTER)


def page_problem(body: Any) -> str:
    """What is wrong with the shape of a search or timeline page ("" if nothing), before any of it is trusted."""
    if not isinstance(body, dict):
        return f"the body is {json_kind(body)}, not an object"
    for name, kind in (("data", list), ("includes", dict), ("meta", dict), ("errors", list)):
        if body.get(name) is not None and not isinstance(body[name], kind):
            return f"'{name}' is {json_kind(body[name])}, not {json_kind(kind())}"
    if "meta" not in body and "errors" not in body:
        return "it has neither 'meta' nor 'errors'"
    users = (body.get("includes") or {}).get("users")
    if users is not None and not isinstance(users, list):
        return f"'includes.users' is {json_kind(users)}, not a list"
    meta = body.get("meta") or {}
    for name in ("next_token", "newest_id"):
        if meta.get(name) is not None and not isinstance(meta[name], str | int):
            return f"'meta.{name}' is {json_kind(meta[name])}, not a string"
    return ""


def user_problem(body: Any) -> str:
    """What is wrong with the shape of a user lookup ("" if nothing)."""
    if not isinstance(body, dict):
        return f"the body is {json_kind(body)}, not an object"
    if body.get("data") is not None and not isinstance(body["data"], dict):
        return f"'data' is {json_kind(body['data'])}, not an object"
    if "data" not in body and "errors" not in body:
        return "it has neither 'data' nor 'errors'"
    return ""


@dataclass
class XApi:
    """One source's way to X: the tweepy client, built once; each request's faults as `SourceError`s that say
    what to fix; the bearer token kept out of every message."""

    token: SecretStr = field(repr=False)
    base_url: str
    timeout: tuple[float, float]  # connect, read (seconds)
    rng: random.Random = field(default_factory=random.Random, repr=False)
    _client: tweepy.Client | None = field(default=None, init=False, repr=False)
    _adapter: _TimeoutRedirect | None = field(default=None, init=False, repr=False)

    def client(self) -> tweepy.Client:
        if self._client is None:
            client = tweepy.Client(
                bearer_token=self.token.get_secret_value(),
                return_type=requests.Response,
                wait_on_rate_limit=False,
            )
            adapter = _TimeoutRedirect(self.base_url, self.timeout)
            client.session.mount(DEFAULT_BASE_URL, adapter)
            self._adapter = adapter
            logging.getLogger("tweepy.client").addFilter(_MaskToken(self.token.get_secret_value()))
            self._client = client
        return self._client

    def resume_at(self, error: tweepy.TooManyRequests, now: datetime) -> datetime:
        """When a rate-limited stream may ask again: X's ``x-rate-limit-reset``, else ``Retry-After``, else backoff."""
        if error.reset_time:
            return datetime.fromtimestamp(error.reset_time, UTC)
        asked = _retry_after(error.response.headers, now)
        return asked or now + timedelta(seconds=60 + self.rng.random() * 120)

    def mask(self, text: str) -> str:
        """``text`` without the bearer token, for messages built from what X (or a proxy) sent back."""
        return text.replace(self.token.get_secret_value(), "**********")

    def call(
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
        return self.mask(header).split(";")[0].strip()[:60] or "no content type"

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
            detail = self.mask("; ".join(error.api_messages))[:200] or "forbidden"
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
                f"X answered {error.response.status_code}: {self.mask('; '.join(error.api_messages))[:200]}"
            ) from None
        except requests.Timeout:
            raise SourceError(f"X did not answer within {self.timeout[1]:g} s; retrying later") from None
        except requests.RequestException as error:
            raise SourceError(f"cannot reach X at {self.base_url} ({type(error).__name__}); retrying later") from None
        except ValueError as error:  # tweepy's int() of an x-rate-limit-reset that is not a number
            raise SourceError(
                f"X answered with something passaparola cannot read ({type(error).__name__}); "
                "X may be having an outage; passaparola retries"
            ) from None
