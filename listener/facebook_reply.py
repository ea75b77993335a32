"""Answering a Facebook Page comment as the Page, through the Graph API.

A reply is ``POST /{version}/{comment-id}/comments`` with ``message``; the Page access token travels in the
Authorization header (never in a URL) and, when the app requires it, ``appsecret_proof`` in the form body. The token
needs pages_manage_engagement and pages_read_engagement, and the person who made it the MODERATE task on the Page.

Facebook comments are two levels deep: a reply to a reply is shown under the top-level comment. So a mention that
is itself a reply (its ``in_reply_to`` is the parent comment) is answered under that parent, where the conversation
is, and where `find` looks for it. Graph's errors are read by `listener.facebook.graph_problem`, the same definition
the source polls with.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from listener.facebook import GraphProblem, appsecret_proof, graph_body, graph_call, graph_problem, graph_time
from listener.model import Mention
from listener.replying import ReplyError, ReplyProblem, SentReply

#: The longest comment Graph accepts, in characters.
MAX_COMMENT_CHARS = 8000
#: What the read-back of a new comment and the thread lookup ask for.
REPLY_FIELDS = "id,from{id,name},message,created_time,permalink_url"
#: How far before ``since`` `find` still accepts a comment of ours: Graph's clock and ours disagree a little.
CLOCK_SKEW = timedelta(minutes=1)
#: At most this much of Graph's own message goes into a `ReplyError`.
GRAPH_WORDS = 200


def _same_text(a: str, b: str) -> bool:
    """Equal once Unicode-normalised and with runs of whitespace collapsed (Graph trims and may re-space)."""

    def norm(text: str) -> str:
        return " ".join(unicodedata.normalize("NFC", text).split())

    return norm(a) == norm(b)


def _link(value: Any) -> str:
    url = str(value or "")
    return url if urlsplit(url).scheme in ("http", "https") else ""


@dataclass
class FacebookReplier:
    """Posts the brand's answers under Page comments, as the Page (see `listener.replying.Replier`)."""

    page_id: str
    access_token: SecretStr = field(repr=False)
    app_secret: SecretStr = field(default_factory=lambda: SecretStr(""), repr=False)
    base_url: str = "https://graph.facebook.com"
    version: str = "v21.0"
    timeout_seconds: float = 20.0
    #: The Page's name as its replies are stored; "Page" (as `read_comment` names a nameless Page comment) until
    #: Graph tells us the real one, which every read-back and lookup does.
    account: str = "Page"
    max_pages: int = 5
    channel: str = field(default="facebook", init=False)

    # -- the Replier protocol --------------------------------------------------------------------

    def check(self, text: str) -> str:
        """Why Graph would refuse ``text`` as a comment, or "" when it can be posted."""
        if not text.strip():
            return "the reply is empty: write something to post"
        if len(text) > MAX_COMMENT_CHARS:
            return f"{len(text)} characters; Facebook allows {MAX_COMMENT_CHARS}: shorten it"
        return ""

    def cost_usd(self, text: str) -> float:
        """Graph writes are free."""
        return 0.0

    def target(self, mention: Mention) -> str:
        """The comment to post under: the mention itself, or its parent when the mention is a reply (Facebook
        keeps replies one level deep, so the answer lands in the same thread either way)."""
        parent = mention.in_reply_to
        return parent if parent and parent != mention.thread_id else mention.platform_id

    def reply(self, mention: Mention, text: str, now: datetime) -> SentReply:
        """Post ``text`` under ``mention`` (or its parent), then read the new comment back for its link and time.

        Once Graph has accepted the post, a failed read-back still returns a `SentReply` (with the text sent and
        ``now``): the comment exists, and reporting a failure would invite posting it twice."""
        if problem := self.check(text):
            raise ReplyError("too_long" if text.strip() else "refused", problem)
        url = self._url(f"{self.target(mention)}/comments")
        with self._client() as client:
            try:
                response = client.post(url, data={"message": text, **self._proof()})
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol) as error:
                raise self._error("unavailable", f"Graph API could not be reached ({type(error).__name__})") from None
            except httpx.HTTPError as error:  # the request went out: Graph may have posted it
                raise self._error(
                    "unknown",
                    f"Graph API: the post got no answer ({type(error).__name__}, limit {self.timeout_seconds:g} s); "
                    "the comment may exist, so the thread is looked up before any retry",
                ) from None
            body = graph_body(response)
            trouble = graph_problem(response, body)
            if trouble is not None:
                if response.status_code == 504:  # a gateway gave up waiting: Graph may have posted it
                    raise self._error("unknown", "Graph API: the gateway timed out (504); the comment may exist")
                raise self._from_graph(trouble, now)
            new_id = str(body.get("id", "")) if isinstance(body, dict) else ""
            if not new_id:
                raise self._error("unknown", "Graph API accepted the post without naming the new comment")
            return self._read_back(client, new_id, text, now)

    def find(self, mention: Mention, text: str, since: datetime, now: datetime) -> SentReply | None:
        """The Page's comment with ``text`` under the comment we reply under, posted at or after ``since`` (less a
        minute of clock skew), newest first, reading at most ``max_pages`` pages. Raises `ReplyError`."""
        earliest = since - CLOCK_SKEW
        params: Mapping[str, Any] = {
            "filter": "stream",
            "order": "reverse_chronological",
            "fields": REPLY_FIELDS,
            "limit": 100,
        }
        with self._client() as client:
            body = self._get(client, self._url(f"{self.target(mention)}/comments"), params, now)
            for _ in range(self.max_pages):
                for comment in body.get("data", []) if isinstance(body.get("data"), list) else []:
                    if not isinstance(comment, dict):
                        continue
                    try:
                        when = graph_time(str(comment.get("created_time", "")))
                    except ValueError:
                        continue
                    if when < earliest:
                        return None  # newest first: everything further down is older still
                    sender = comment.get("from")
                    author: Mapping[str, Any] = sender if isinstance(sender, dict) else {}
                    if str(author.get("id", "")) != self.page_id:
                        continue
                    if not _same_text(str(comment.get("message", "")), text):
                        continue
                    self._learn(author)
                    return SentReply(
                        platform_id=str(comment.get("id", "")),
                        url=_link(comment.get("permalink_url")),
                        text=str(comment.get("message", "")),
                        published_at=when,
                    )
                paging = body.get("paging")
                following = paging.get("next") if isinstance(paging, dict) else None
                if not following:
                    return None
                body = self._get(client, str(following), {}, now)
        return None

    # -- talking to Graph ------------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.access_token.get_secret_value()}"}
        return httpx.Client(timeout=self.timeout_seconds, headers=headers, trust_env=False)

    def _url(self, path: str) -> str:
        return f"{self.base_url.rstrip('/')}/{self.version}/{path}"

    def _proof(self) -> dict[str, str]:
        return appsecret_proof(self.access_token, self.app_secret)

    def _get(self, client: httpx.Client, url: str, params: Mapping[str, Any], now: datetime) -> dict:
        """One lookup; any failure is a `ReplyError` (a timeout is ``unavailable``: a read posts nothing)."""
        url, query = graph_call(url, params, self.access_token, self.app_secret)
        try:
            response = client.get(url, params=query)
        except httpx.TimeoutException:
            raise self._error(
                "unavailable", f"Graph API: no answer within {self.timeout_seconds:g} s; will look again"
            ) from None
        except httpx.HTTPError as error:
            raise self._error("unavailable", f"Graph API could not be reached ({type(error).__name__})") from None
        body = graph_body(response)
        trouble = graph_problem(response, body)
        if trouble is not None:
            raise self._from_graph(trouble, now)
        return body if isinstance(body, dict) else {}

    def _read_back(self, client: httpx.Client, new_id: str, text: str, now: datetime) -> SentReply:
        fallback = SentReply(platform_id=new_id, url="", text=text, published_at=now)
        try:
            comment = self._get(client, self._url(new_id), {"fields": REPLY_FIELDS}, now)
            published = graph_time(str(comment["created_time"]))
        except (ReplyError, KeyError, ValueError):
            return fallback
        if isinstance(comment.get("from"), dict):
            self._learn(comment["from"])
        return SentReply(
            platform_id=str(comment.get("id") or new_id),
            url=_link(comment.get("permalink_url")),
            text=str(comment.get("message") or text),
            published_at=published,
        )

    def _learn(self, author: Mapping[str, Any]) -> None:
        """Take the Page's name from Graph, so replies sent from here are stored as the polled ones are."""
        if str(author.get("id", "")) == self.page_id and (name := str(author.get("name", "")).strip()):
            self.account = name

    # -- what Graph's errors mean ----------------------------------------------------------------

    def _from_graph(self, trouble: GraphProblem, now: datetime) -> ReplyError:
        words = trouble.message or f"HTTP {trouble.status}"
        if trouble.kind == "token":
            return self._error(
                "expired_token",
                f"Graph refused the Page access token ({words}): create a new long-lived Page token and update the "
                "secret",
            )
        if trouble.kind == "rate_limited":
            retry_at = now + trouble.wait
            when = f"{retry_at.astimezone(UTC):%H:%M} UTC"
            return self._error("rate_limited", f"Graph asks us to wait ({words}); trying again at {when}", retry_at)
        if trouble.kind == "permission":
            return self._error(
                "permission",
                f"Graph: the Page token may not reply ({words}); it needs pages_manage_engagement and "
                "pages_read_engagement, and the MODERATE task on the Page",
            )
        if trouble.kind == "missing":
            return self._error("deleted", f"the comment is gone, hidden or not visible to the Page ({words})")
        if trouble.kind == "duplicate":
            return self._error("duplicate", f"Facebook refuses the same text twice ({words})")
        if trouble.kind == "server":
            return self._error("unavailable", f"Graph API failed ({words}); nothing was posted")
        return self._error("refused", f"Graph API refused the reply ({words})")

    def _error(self, problem: ReplyProblem, message: str, retry_at: datetime | None = None) -> ReplyError:
        """A `ReplyError` whose message cannot carry the token or the app secret, whatever Graph echoed."""
        for secret in (self.access_token.get_secret_value(), self.app_secret.get_secret_value()):
            if secret:
                message = message.replace(secret, "[secret]")
        return ReplyError(problem, message, retry_at)
