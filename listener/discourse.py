"""`discourse`: a Discourse forum's latest posts through its public JSON API, with the reply-to post of each.

Discourse's RSS says nothing about what a post replies to, so through `listener.feed` a staff answer can only
answer its whole topic. ``GET /posts.json`` says it: each post carries ``reply_to_post_number``. So here a brand
post answers exactly the post it replies to; one written as a reply to the topic answers the topic's opening post,
and every earlier post in the topic only where ``brand_post_answers_thread`` is on (off by default).

Each poll reads the forum's latest posts newest first (Discourse serves 50 a page, ``?before=<post id>`` for the
next), down to the newest post the last poll saw, at most ``max_pages`` pages. When a burst is bigger than that,
the rest is kept in the cursor as a backlog and read by the next polls, after the new posts: nothing is skipped.

Fetched with `listener.fetch.Fetcher`, as feeds are (timeouts, a deadline and a size cap per page, checked
redirects, private addresses refused unless ``allow_private`` lists them, ``Retry-After`` honoured). The optional
``api_key`` travels in the ``Api-Key`` header, never in a URL or a message; with a key no redirect is followed,
so the key cannot be carried to another address.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

from pydantic import SecretStr

from listener.feed import plain_text
from listener.fetch import Fetcher, FetchError, PrivateAllowance, json_kind
from listener.model import EVERYONE_IN_THREAD, Author, BrandReply, Mention, Poll, SourceError

log = logging.getLogger(__name__)

#: A quote of another post (``[quote="marco_r, post:1, topic:42"]`` cooked): someone else's words, not this post's.
_QUOTE = re.compile(r"<aside\b[^>]*\bclass\s*=\s*[\"'][^\"']*\bquote\b[^\"']*[\"'][^>]*>.*?</aside>", re.I | re.S)
#: Statuses in the fetcher's message that mean the forum refused us: each gets a hint at what to fix.
_REFUSED = re.compile(r"\banswered (401|403|404)\b")


def _int(value: Any) -> int | None:
    """``value`` if it is a JSON integer (not a boolean), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _time(value: Any) -> datetime | None:
    """Discourse's ``2026-03-02T08:00:00.000Z`` as an aware datetime; None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _unexpected(url: str, status: int, kind: str, what: str) -> SourceError:
    return SourceError(
        f"{url} answered with JSON of an unexpected shape (HTTP {status}, {kind}: {what}); "
        "is base_url a Discourse forum? passaparola retries"
    )


def post_problem(post: Mapping[str, Any]) -> str:
    """What keeps one post of ``latest_posts`` from being read ("" if nothing), before any of it is trusted."""
    for name in ("topic_id", "post_number"):
        if (_int(post.get(name)) or 0) < 1:
            return f"'{name}' is {json_kind(post.get(name))}, not a positive integer"
    if post.get("reply_to_post_number") is not None and (_int(post["reply_to_post_number"]) or 0) < 1:
        return f"'reply_to_post_number' is {json_kind(post['reply_to_post_number'])}, not a post number or null"
    if _time(post.get("created_at")) is None:
        return f"'created_at' is {post.get('created_at')!r:.40}, not an ISO time with its zone"
    for name in ("username", "name", "cooked", "topic_slug", "topic_title"):
        if post.get(name) is not None and not isinstance(post[name], str):
            return f"'{name}' is {json_kind(post[name])}, not a string"
    return ""


@dataclass
class DiscourseSource:
    """A Discourse forum: its latest posts (all public categories, or ``categories``), the brand's among them.

    ``brand_authors`` are usernames (any case). ``allow_private`` is false, or the hosts ("intranet.example",
    "intranet.example:8443") and networks ("10.1.2.0/24") this source may reach though they are not public, as
    for feeds. ``api_key`` (a secret reference) and ``api_username`` read what only members see.
    """

    kind: ClassVar[str] = "discourse"
    name: str
    base_url: str
    keywords: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    brand_authors: list[str] = field(default_factory=list)
    categories: list[int] = field(default_factory=list)
    brand_post_answers_thread: bool = False
    api_key: SecretStr = field(default_factory=lambda: SecretStr(""), repr=False)
    api_username: str = ""
    allow_private: bool | list[str] = False
    max_pages: int = 5
    timeout_seconds: float = 10.0
    deadline_seconds: float = 30.0
    max_bytes: int = 5_000_000
    max_redirects: int = 3

    def __post_init__(self) -> None:
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"base_url {self.base_url!r} is not an http(s) URL; give the forum's address, "
                'e.g. "https://community.example"'
            )
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("base_url: give the forum's address alone, without query, fragment or credentials")
        self.base_url = f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")
        if self.api_username and not self.api_key.get_secret_value():
            raise ValueError('api_username needs an api_key: api_key = { env = "DISCOURSE_API_KEY" }')
        if not 1 <= self.max_pages <= 50:
            raise ValueError("max_pages must be between 1 and 50 (Discourse serves 50 posts a page)")
        if self.max_redirects > 5 or min(self.timeout_seconds, self.deadline_seconds, self.max_bytes) <= 0:
            raise ValueError("limits must be positive, and max_redirects at most 5")
        self._allowance = PrivateAllowance.parse(self.allow_private)
        if self._allowance.everything:
            log.warning(
                "discourse %s: allow_private = true lets every redirect hop reach any private address; deprecated, "
                'list the hosts or networks it needs instead, e.g. allow_private = ["%s"]',
                self.name,
                parts.hostname,
            )
        if self.api_key.get_secret_value() and parts.scheme == "http":
            log.warning(
                "discourse %s: the api_key travels unencrypted over http; use the forum's https address", self.name
            )
        # Where ids are rooted: the forum without scheme, so the same forum over http and https is one forum.
        host = (parts.hostname or "").lower() + (f":{parts.port}" if parts.port else "")
        self._forum = f"{host}{parts.path}".rstrip("/")

    # -- fetching --------------------------------------------------------------------------------

    @property
    def fetcher(self) -> Fetcher:
        redirects = 0 if self.api_key.get_secret_value() else self.max_redirects  # the key goes nowhere else
        return Fetcher(self.timeout_seconds, self.deadline_seconds, self.max_bytes, redirects, self._allowance)

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if key := self.api_key.get_secret_value():
            headers["Api-Key"] = key
            if self.api_username:
                headers["Api-Username"] = self.api_username
        return headers

    def _page(self, before: int | None, now: datetime) -> tuple[list[dict[str, Any]], int]:
        """One page of ``/posts.json`` (ids below ``before``): the posts that have an id, and how many had none."""
        url = f"{self.base_url}/posts.json" + (f"?before={before}" if before is not None else "")
        try:
            fetched = self.fetcher.get(url, self._headers(), now)
        except FetchError as error:
            raise SourceError(self._explain(str(error))) from None
        kind = (fetched.headers.get("content-type") or "").split(";")[0].strip()[:60] or "no content type"
        try:
            body = json.loads(fetched.body)
        except (ValueError, UnicodeDecodeError):
            raise SourceError(
                f"{url} answered with a body that is not JSON (HTTP {fetched.status}, {kind}); "
                "is base_url the forum's address? passaparola retries"
            ) from None
        if not isinstance(body, dict):
            raise _unexpected(url, fetched.status, kind, f"the body is {json_kind(body)}, not an object")
        posts = body.get("latest_posts")
        if not isinstance(posts, list):
            what = "it has no 'latest_posts'" if posts is None else f"'latest_posts' is {json_kind(posts)}, not a list"
            raise _unexpected(url, fetched.status, kind, what)
        usable = [p for p in posts if isinstance(p, dict) and (_int(p.get("id")) or 0) > 0]
        if posts and not usable:
            raise _unexpected(url, fetched.status, kind, f"none of its {len(posts)} posts has an integer 'id'")
        return usable, len(posts) - len(usable)

    def _explain(self, message: str) -> str:
        """The fetcher's message, with what to do about a refusal or a redirect the key must not follow."""
        if self.api_key.get_secret_value() and "more than 0 redirects" in message:
            return (
                f"{message.split(': more than')[0]} redirects elsewhere, and with an api_key passaparola follows no "
                "redirect (the key would travel with it): set base_url to the forum's final address"
            )
        refused = _REFUSED.search(message)
        if refused and refused.group(1) == "404":
            return f"{message} (is base_url the forum's address, as a browser shows its home page?)"
        if refused:
            fix = "check api_key and api_username" if self.api_key.get_secret_value() else "the forum needs an api_key"
            return f"{message} (the forum refused to show its posts: {fix})"
        return message

    def _read(
        self, before: int | None, after: int | None, budget: int, now: datetime
    ) -> tuple[list[dict[str, Any]], int, int, int | None]:
        """Posts with ``after < id < before``, newest first, in at most ``budget`` pages.

        Returns the posts, the pages read, the posts without an id, and where to go on from (a ``before``) when the
        budget ran out first; None when it got down to ``after`` or to the forum's first post.
        """
        posts: list[dict[str, Any]] = []
        pages = skipped = 0
        while pages < budget:
            page, unusable = self._page(before, now)
            pages, skipped = pages + 1, skipped + unusable
            if not page:
                return posts, pages, skipped, None
            lowest = min(p["id"] for p in page)
            posts += [p for p in page if (after is None or p["id"] > after) and (before is None or p["id"] < before)]
            if (after is not None and lowest <= after) or lowest <= 1:
                return posts, pages, skipped, None
            if before is not None and lowest >= before:
                raise SourceError(
                    f"{self.base_url}/posts.json ignored ?before={before} (it answered the same posts again); "
                    "is base_url a Discourse forum?"
                )
            before = lowest
        return posts, pages, skipped, before

    # -- polling ---------------------------------------------------------------------------------

    def poll(self, cursor: Mapping[str, Any] | None, now: datetime) -> Poll:
        state = dict(cursor or {})
        last = _int(state.get("last_id"))
        backlog = state.get("backlog")
        bounds = [_int(b) for b in backlog] if isinstance(backlog, list) and len(backlog) == 2 else []
        gap = (bounds[0], bounds[1]) if bounds and bounds[0] is not None and bounds[1] is not None else None
        posts, pages, skipped, rest = self._read(None, last, self.max_pages, now)
        newest = max([p["id"] for p in posts], default=last)
        if rest is not None and last is not None:  # a burst: the rest, down to what we saw, waits for the next polls
            gap = (rest, gap[1] if gap else last)
            log.warning(
                "discourse %s: more new posts than %d pages hold; the older ones (ids %d to %d) are read by the next "
                "polls, after the new ones (raise max_pages or poll more often if this lasts)",
                self.name,
                self.max_pages,
                gap[1] + 1,
                gap[0] - 1,
            )
        elif gap and pages < self.max_pages:
            older, more, unusable, rest = self._read(gap[0], gap[1], self.max_pages - pages, now)
            posts, pages, skipped = posts + older, pages + more, skipped + unusable
            gap = None if rest is None else (rest, gap[1])
        if gap and gap[0] - gap[1] <= 1:
            gap = None  # no post id lies between: nothing is left to read
        mentions, replies, unread = self._items(posts)
        next_cursor: dict[str, Any] = {"last_id": newest} if newest is not None else {}
        details: dict[str, Any] = {"posts": len(posts), "pages": pages, "kept": len(mentions)}
        if skipped + unread:
            details["skipped"] = skipped + unread  # posts of a shape passaparola cannot read, logged one by one
        if gap:
            next_cursor["backlog"] = list(gap)
            details["backlog"] = f"post ids {gap[1] + 1} to {gap[0] - 1} still to read"
        return Poll(mentions=tuple(mentions), replies=tuple(replies), cursor=next_cursor, details=details)

    # -- reading posts ---------------------------------------------------------------------------

    def ident(self, topic_id: int, post_number: int) -> str:
        """A post's platform id: the forum, its topic and its number there, which is all a reply names."""
        return f"{self._forum}/t/{topic_id}/{post_number}"

    def _about_brand(self, text: str) -> bool:
        lowered = text.lower()
        if any(term.lower() in lowered for term in self.exclude):
            return False
        return not self.keywords or any(term.lower() in lowered for term in self.keywords)

    def _items(self, posts: list[dict[str, Any]]) -> tuple[list[Mention], list[BrandReply], int]:
        """Mentions and brand replies from raw posts; posts of a shape that cannot be read are logged and counted."""
        brand = {a.lower() for a in self.brand_authors}
        mentions: list[Mention] = []
        replies: list[BrandReply] = []
        unread = 0
        for post in posts:
            problem = post_problem(post)
            if problem:
                log.warning("discourse %s: post %s skipped: %s", self.name, post["id"], problem)
                unread += 1
                continue
            if self.categories and post.get("category_id") not in self.categories:
                continue
            item = self._item(post, brand)
            if isinstance(item, BrandReply):
                replies.append(item)
            elif item is not None:
                mentions.append(item)
        return mentions, replies, unread

    def _item(self, post: dict[str, Any], brand: set[str]) -> Mention | BrandReply | None:
        topic, number = int(post["topic_id"]), int(post["post_number"])
        replied = _int(post.get("reply_to_post_number"))
        slug = quote(str(post.get("topic_slug") or "topic"), safe="-._~%")
        url = f"{self.base_url}/t/{slug}/{topic}/{number}"
        thread = f"{self.base_url}/t/{topic}"  # without the slug, which changes when the title is edited
        published = _time(post["created_at"])
        assert published is not None  # post_problem checked it
        username = str(post.get("username") or "") or "anonymous"
        title = plain_text(str(post.get("topic_title") or ""))
        body = plain_text(_QUOTE.sub(" ", str(post.get("cooked") or "")))
        text = " — ".join(part for part in (title, body) if part)
        name = str(post.get("name") or "")
        name = "" if name.lower() == username.lower() else name  # a name that only repeats the username adds nothing
        if username.lower() in brand:
            if replied:
                answers, everyone = self.ident(topic, replied), False
            elif number > 1:  # a reply to the topic: its opening post, and everyone only if the policy says so
                answers, everyone = self.ident(topic, 1), self.brand_post_answers_thread
            else:
                answers, everyone = "", False  # the brand opened the topic: it answers nobody
            return BrandReply(
                platform="forum",
                platform_id=self.ident(topic, number),
                source=self.name,
                published_at=published,
                author_handle=username,
                in_reply_to=answers,
                thread_id=thread,
                to_author_id=EVERYONE_IN_THREAD if everyone else "",
                text=text,
                url=url,
            )
        if not self._about_brand(text):
            return None
        return Mention(
            platform="forum",
            platform_id=self.ident(topic, number),
            source=self.name,
            text=text,
            published_at=published,
            author=Author("forum", f"{self._forum}/u/{username.lower()}", username, display_name=name),
            url=url,
            thread_id=thread,
            in_reply_to=self.ident(topic, replied) if replied else "",
        )
