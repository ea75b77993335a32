"""`facebook`: comments under the brand Page's recent posts, replies included, through the Graph API.

Each poll lists the Page's recent posts, then reads each post's comments newest first
(``filter=stream`` includes replies to comments) down to what the last poll saw. A comment by the Page itself is
a brand reply: it answers the comment it replies to. The Page access token travels in the Authorization
header, never in a URL, so it cannot end up in a log line.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import httpx
from pydantic import SecretStr

from listener.model import Author, BrandReply, Mention, Poll, RateLimited, SourceError

if TYPE_CHECKING:
    from listener.facebook_reply import FacebookReplier

COMMENT_FIELDS = "id,from{id,name},message,created_time,parent{id},permalink_url"
#: Graph error codes that mean "slow down" (application, user and Page rate limits).
RATE_LIMIT_CODES = {4, 17, 32, 613, 80001}
#: How far back, before the newest comment already seen, each poll reads again (late-arriving comments).
OVERLAP = timedelta(minutes=10)


def graph_time(value: str) -> datetime:
    """Graph's ``2026-03-02T08:00:00+0000`` as an aware datetime."""
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z")


def appsecret_proof(access_token: SecretStr, app_secret: SecretStr) -> dict[str, str]:
    """``{"appsecret_proof": HMAC-SHA256(token, key=app secret)}``, or nothing without an app secret: apps with
    "Require App Secret" on refuse every call without it, and the proof (unlike the secret) may travel."""
    secret = app_secret.get_secret_value()
    if not secret:
        return {}
    token = access_token.get_secret_value().encode("utf-8")
    return {"appsecret_proof": hmac.new(secret.encode("utf-8"), token, hashlib.sha256).hexdigest()}


def graph_call(
    url: str, params: Mapping[str, Any], access_token: SecretStr, app_secret: SecretStr
) -> tuple[str, dict[str, Any]]:
    """``url`` and the query to send with it: a ``paging.next`` link's own query moved into the parameters (httpx
    replaces a URL's query with ``params`` rather than merging them, which would lose the cursor), without any
    ``access_token`` Graph echoed into it (the token stays in the header), plus ``appsecret_proof``."""
    parts = urlsplit(url)
    query = {k: v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "access_token"}
    merged = {**query, **params, **appsecret_proof(access_token, app_secret)}
    return urlunsplit(parts._replace(query="")), merged


def regain(headers: Mapping[str, str]) -> timedelta:
    """Minutes until access returns, from the usage headers Graph sends with rate limits (else 10)."""
    minutes = 0
    for name in ("x-business-use-case-usage", "x-app-usage", "x-page-usage"):
        try:
            usage = json.loads(headers.get(name, "") or "{}")
        except json.JSONDecodeError:
            continue
        buckets = usage.values() if name == "x-business-use-case-usage" else [[usage]]
        for bucket in buckets:
            for entry in bucket if isinstance(bucket, list) else []:
                if isinstance(entry, dict):
                    minutes = max(minutes, int(entry.get("estimated_time_to_regain_access", 0) or 0))
    return timedelta(minutes=minutes or 10)


#: What a Graph error means, whether it answered a read or a write.
GraphTrouble = Literal["token", "rate_limited", "permission", "missing", "duplicate", "blocked", "server", "other"]


@dataclass(frozen=True, slots=True)
class GraphProblem:
    """A Graph error answer, read once for the source and the replier alike: what it means (``kind``), Graph's own
    words (at most 200 characters) and, for a rate limit, how long to wait."""

    kind: GraphTrouble
    status: int
    code: int | None
    subcode: int | None
    message: str
    wait: timedelta = timedelta(0)


def graph_body(response: httpx.Response) -> Any:
    """The JSON Graph answered, or ``{}`` when the body is not JSON (a proxy's error page)."""
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}


def graph_problem(response: httpx.Response, body: Any) -> GraphProblem | None:
    """What went wrong, or None for a 200 carrying no ``error``. One definition of Graph's codes: 190 the token,
    4/17/32/613/80001 (or 429) a rate limit, 10/200 (or 403) a permission, 100 with subcode 33 an object that is
    gone or hidden, 506 or "duplicate" a repeated text, 368 a block for abuse, 1/2 or 5xx Graph's own failure."""
    status = response.status_code
    if status == 200 and isinstance(body, dict) and "error" not in body:
        return None
    error = body.get("error", {}) if isinstance(body, dict) else {}
    error = error if isinstance(error, dict) else {}
    code, subcode = error.get("code"), error.get("error_subcode")
    code = code if isinstance(code, int) else None
    subcode = subcode if isinstance(subcode, int) else None
    message = str(error.get("message", ""))[:200]
    kind: GraphTrouble = "other"
    wait = timedelta(0)
    if code == 190 or status == 401:
        kind = "token"
    elif code in RATE_LIMIT_CODES or status == 429:
        kind, wait = "rate_limited", regain(response.headers)
    elif code in (10, 200) or status == 403:
        kind = "permission"
    elif code == 100 and subcode == 33:
        kind = "missing"
    elif code == 506 or "duplicate" in message.lower():
        kind = "duplicate"
    elif code == 368:
        kind = "blocked"
    elif code in (1, 2) or status >= 500:
        kind = "server"
    return GraphProblem(kind, status, code, subcode, message, wait)


@dataclass
class FacebookSource:
    """The brand's Facebook Page: comments (and replies) on its latest ``max_posts`` posts."""

    kind: ClassVar[str] = "facebook"
    name: str
    page_id: str = ""
    access_token: SecretStr = field(default_factory=lambda: SecretStr(""), repr=False)
    base_url: str = "https://graph.facebook.com"
    version: str = "v21.0"
    max_posts: int = 10
    max_pages: int = 5
    timeout_seconds: float = 20.0
    # The Page webhook (optional; the web app serves it at /webhooks/facebook/<name>): the app secret that
    # signs each notification, and the token you typed when subscribing.
    app_secret: SecretStr = field(default_factory=lambda: SecretStr(""), repr=False)
    verify_token: SecretStr = field(default_factory=lambda: SecretStr(""), repr=False)

    @property
    def webhook(self) -> bool:
        return bool(self.app_secret.get_secret_value())

    def __post_init__(self) -> None:
        if bool(self.app_secret.get_secret_value()) != bool(self.verify_token.get_secret_value()):
            raise ValueError("the webhook needs both app_secret and verify_token (as secret references), or neither")
        if not self.page_id.isdigit():
            raise ValueError("page_id must be the Page's numeric id (Page settings > About > Page ID)")
        if not self.access_token.get_secret_value():
            raise ValueError('access_token is required: access_token = { env = "FACEBOOK_PAGE_TOKEN" }')
        if urlsplit(self.base_url).scheme not in ("http", "https"):
            raise ValueError("base_url must be an http(s) URL")
        if not self.version.startswith("v"):
            raise ValueError(f"version {self.version!r} must look like v21.0")
        if not 1 <= self.max_posts <= 100:
            raise ValueError("max_posts must be between 1 and 100")

    def _get(self, client: httpx.Client, path_or_url: str, params: Mapping[str, Any], now: datetime) -> dict:
        url = path_or_url if "://" in path_or_url else f"{self.base_url.rstrip('/')}/{self.version}/{path_or_url}"
        url, query = graph_call(url, params, self.access_token, self.app_secret)
        try:
            response = client.get(url, params=query or None)
        except httpx.TimeoutException:
            raise SourceError(f"Graph API: no answer within {self.timeout_seconds:g} s; will retry") from None
        except httpx.HTTPError as error:
            raise SourceError(f"Graph API: {type(error).__name__}: {error}") from None
        body = graph_body(response)
        problem = graph_problem(response, body)
        if problem is None:
            return body
        message = problem.message
        if problem.kind == "token":
            raise SourceError(
                f"Graph API refused the Page access token ({message or response.status_code}); "
                "create a new long-lived Page token and update the secret"
            )
        if problem.kind == "rate_limited":
            raise RateLimited(f"Graph API rate limit ({message or problem.code})", now + problem.wait)
        if problem.kind == "permission":
            raise SourceError(
                f"Graph API: permission missing ({message}); the token needs pages_read_engagement and "
                "pages_read_user_content, and the MODERATE task on the Page"
            )
        raise SourceError(f"Graph API answered {response.status_code} ({message or 'no error message'})")

    @staticmethod
    def _regain(headers: Mapping[str, str]) -> timedelta:
        """Minutes until access returns, from Graph's usage headers (see `regain`)."""
        return regain(headers)

    def replier(self) -> FacebookReplier:
        """Answer the Page's comments as the Page: the Page token this source reads with can also write (given
        pages_manage_engagement), so a configured Facebook source can always reply."""
        from listener.facebook_reply import FacebookReplier

        return FacebookReplier(
            page_id=self.page_id,
            access_token=self.access_token,
            app_secret=self.app_secret,
            base_url=self.base_url,
            version=self.version,
            timeout_seconds=self.timeout_seconds,
        )

    def _pages(self, client: httpx.Client, path: str, params: Mapping[str, Any], now: datetime) -> Iterator[dict]:
        body = self._get(client, path, params, now)
        for _ in range(self.max_pages):
            yield from body.get("data", [])
            following = body.get("paging", {}).get("next")
            if not following:
                return
            body = self._get(client, following, {}, now)

    def poll(self, cursor: Mapping[str, Any] | None, now: datetime) -> Poll:
        seen = dict((cursor or {}).get("newest", {}))
        mentions: list[Mention] = []
        replies: list[BrandReply] = []
        headers = {"Authorization": f"Bearer {self.access_token.get_secret_value()}"}
        with httpx.Client(timeout=self.timeout_seconds, headers=headers, trust_env=False) as client:
            posts = self._get(
                client, f"{self.page_id}/published_posts", {"fields": "id,created_time", "limit": self.max_posts}, now
            ).get("data", [])
            for post in posts[: self.max_posts]:
                post_id = str(post["id"])
                since = graph_time(seen[post_id]) - OVERLAP if post_id in seen else None
                params = {"filter": "stream", "order": "reverse_chronological", "fields": COMMENT_FIELDS, "limit": 100}
                for comment in self._pages(client, f"{post_id}/comments", params, now):
                    when = graph_time(comment["created_time"])
                    if since is not None and when < since:
                        break
                    if post_id not in seen or when > graph_time(seen[post_id]):
                        seen[post_id] = comment["created_time"]
                    self._read(comment, post_id, when, mentions, replies)
        keep = {str(p["id"]) for p in posts}  # forget posts that fell out of the recent list
        return Poll(
            mentions=tuple(mentions),
            replies=tuple(replies),
            cursor={"newest": {k: v for k, v in seen.items() if k in keep}},
            details={"posts": len(posts)},
        )

    def _read(
        self, comment: dict, post_id: str, when: datetime, mentions: list[Mention], replies: list[BrandReply]
    ) -> None:
        url = str(comment.get("permalink_url", ""))
        heard = read_comment(
            self.page_id,
            self.name,
            comment_id=str(comment["id"]),
            post_id=post_id,
            parent=str((comment.get("parent") or {}).get("id", "")),
            author=comment.get("from") or {},
            text=str(comment.get("message", "")),
            when=when,
            url=url if urlsplit(url).scheme in ("http", "https") else "",
        )
        if isinstance(heard, BrandReply):
            replies.append(heard)
        else:
            mentions.append(heard)


def read_comment(
    page_id: str,
    source: str,
    comment_id: str,
    post_id: str,
    parent: str,
    author: Mapping[str, Any],
    text: str,
    when: datetime,
    url: str,
) -> Mention | BrandReply:
    """One Page comment, polled or pushed by webhook: the Page's own comment is a brand reply answering ``parent``."""
    if str(author.get("id", "")) == page_id:
        return BrandReply(
            platform="facebook",
            platform_id=comment_id,
            source=source,
            published_at=when,
            author_handle=str(author.get("name", "Page")),
            in_reply_to=parent,
            thread_id=post_id,
            text=text,
            url=url,
        )
    name = str(author.get("name", "")) or "someone on Facebook"
    return Mention(
        platform="facebook",
        platform_id=comment_id,
        source=source,
        text=text,
        published_at=when,
        author=Author("facebook", str(author.get("id", "")) or "unknown", name, display_name=name),
        url=url,
        thread_id=post_id,
        in_reply_to=parent,
    )
