"""`feed`: RSS and Atom (Discourse and other forums, blog comment feeds, review sites, Google Alerts).

Fetched with `listener.fetch.Fetcher` (timeouts, deadline, size cap, checked redirects, private addresses
refused), conditionally (ETag, Last-Modified: a 304 costs no parsing), then parsed from bytes by feedparser in a
worker process under a time limit, because some hostile inputs make feedparser's regular expressions take
seconds; every feed source shares one small pool of such workers (`listener.feedparse`), so memory does not
grow with the number of feeds. Malformed feeds keep what can be read; a body with no feed in it fails the poll
with the reason.

Google Alerts links go through ``google.com/url``: the real target is stored instead. Dates feedparser cannot
read (Italian day and month names, "March 14, 2025") are read by `localized_date`; a date nobody can read falls
back to the fetch time, marked ``metrics["published_at_guessed"] = 1`` and logged with the raw date.

A brand post answers what the feed says it answers (`reply_target`): the entry named by ``thr:in-reply-to``,
the comment a WordPress "In reply to NAME." / "In risposta a NAME" links to (or, unlinked, that author's
comments in the thread). Discourse's RSS carries no reply-to post, and feedparser's sanitizer drops the
data-* attributes of its quotes, so a Discourse staff post falls back to its topic. Only a brand post with none
of these answers everyone earlier in its thread, and only while ``brand_post_answers_thread`` is on.
"""

from __future__ import annotations

import hashlib
import html
import logging
import re
from collections.abc import Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from typing import Any, ClassVar
from urllib.parse import parse_qs, urldefrag, urlsplit

from pebble import ProcessExpired

from listener.feedparse import PARSE_WORKERS, PARSERS, localized_date, parse_feed
from listener.fetch import Fetcher, PrivateAllowance
from listener.model import EVERYONE_IN_THREAD, Author, BrandReply, Mention, Poll, SourceError

__all__ = ["PARSERS", "PARSE_WORKERS", "FeedSource", "localized_date", "parse_feed", "plain_text", "thread_of"]

_DISCOURSE_TOPIC = re.compile(r"^(/t/[^/]+/\d+)(?:/\d+)?/?$")
#: WordPress's threaded-comment prefix, linked in the body ("In reply to <a href=…#comment-12>Elena</a>.").
_REPLY_WORDS = r"(?:in\s+reply\s+to|in\s+risposta\s+a)"
_REPLY_LINK = re.compile(
    r"^(?:\s|<(?:p|div)\b[^>]*>)*" + _REPLY_WORDS + r"\s*<a\b[^>]*?\bhref\s*=\s*[\"']([^\"']+)[\"'][^>]*>(.*?)</a>",
    re.I | re.S,
)
#: The same prefix as plain text, in a title or body: "In risposta a Federico", "In reply to Ann: thanks".
_REPLY_NAME = re.compile(r"^" + _REPLY_WORDS + r"\s+(.{1,100}?)\s*(?:[.:,;!]\s|[.:,;!]?$)", re.I | re.S)
#: Hosts whose ``/url?url=…`` (or ``q=``) is a click-through redirect, as in every Google Alerts link.
_GOOGLE_REDIRECT_HOSTS = frozenset({"google.com", "www.google.com"})

log = logging.getLogger(__name__)

#: Tags a browser shows as a break between words; any other tag (b, i, a, span...) can sit inside a word.
# fmt: off
_BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption", "figure", "footer",
    "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "img", "li", "main", "nav", "ol", "p", "pre", "section",
    "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
})
# fmt: on
_TAG = "\x00"  # where an inline tag was, until the spaces around it are settled
_SPACE_BEFORE_CLOSING = re.compile(r"\s*(?:\x00\s*)+(?=[,;:!?)\]}»]|\.(?!\.))")  # "Aurora</b> ," -> "Aurora,"
_SPACE_AFTER_OPENING = re.compile(r"(?<=[(\[{«])\s*(?:\x00\s*)+")  # "(<b> Aurora" -> "(Aurora"


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.parts.append(" " if tag in _BLOCK_TAGS else _TAG)

    def handle_endtag(self, tag: str) -> None:
        self.parts.append(" " if tag in _BLOCK_TAGS else _TAG)

    def handle_data(self, data: str) -> None:
        self.parts.append(data.replace(_TAG, ""))


def plain_text(fragment: str) -> str:
    """What a person would read in an HTML fragment: tags dropped, entities decoded, spaces collapsed.

    Inline tags join what they separate ("l'<b>aurora</b>" is "l'aurora"), and the spaces a highlighted word
    leaves before punctuation go ("<b>Aurora</b> ," is "Aurora,"), as Google Alerts' titles need.
    """
    parser = _Text()
    parser.feed(fragment)
    parser.close()
    text = html.unescape("".join(parser.parts))  # feeds often escape twice; no entity decodes to _TAG
    text = _SPACE_AFTER_OPENING.sub("", _SPACE_BEFORE_CLOSING.sub("", text)).replace(_TAG, "")
    return " ".join(text.split())


def real_target(link: str) -> str:
    """The page a ``google.com/url`` redirect leads to, when it is http(s); any other link as it is."""
    parts = urlsplit(link)
    if parts.scheme not in ("http", "https") or parts.hostname not in _GOOGLE_REDIRECT_HOSTS or parts.path != "/url":
        return link
    query = parse_qs(parts.query)
    for candidate in query.get("url", []) + query.get("q", []):
        target = urlsplit(candidate)
        if target.scheme in ("http", "https") and target.hostname:
            return target.geturl()
    return link


def thread_of(link: str) -> str:
    """The conversation an entry belongs to: its page without the fragment; a Discourse topic without post number."""
    page, _ = urldefrag(link)
    parts = urlsplit(page)
    topic = _DISCOURSE_TOPIC.match(parts.path)
    return f"{parts.scheme}://{parts.netloc}{topic.group(1)}" if topic else page


@dataclass(frozen=True)
class ReplyTarget:
    """What a post says it answers: an entry (its id or link), else an author in its thread."""

    entry_id: str = ""
    link: str = ""
    author: str = ""

    def __bool__(self) -> bool:
        return bool(self.entry_id or self.link or self.author)


def reply_target(entry: Mapping[str, Any]) -> ReplyTarget:
    """The reply structure a feed gives for one entry, most precise first (see the module's docstring)."""
    if entry.get("in_reply_to_ref") or entry.get("in_reply_to"):
        return ReplyTarget(entry_id=entry.get("in_reply_to_ref", ""), link=entry.get("in_reply_to", ""))
    bodies = [str(entry.get("content", "")), str(entry.get("summary", ""))]
    for body in bodies:
        if linked := _REPLY_LINK.match(body):
            return ReplyTarget(link=html.unescape(linked.group(1)), author=plain_text(linked.group(2)))
    for text in [plain_text(str(entry.get("title", "")))] + [plain_text(b) for b in bodies]:
        if named := _REPLY_NAME.match(text):
            return ReplyTarget(author=named.group(1).strip())
    return ReplyTarget()


@dataclass
class FeedSource:
    """One RSS or Atom feed. A brand post answers what the feed says it answers; failing that, its thread.

    ``allow_private`` is false, or a list of hosts ("intranet.example", "intranet.example:8443") and networks
    ("10.1.2.0/24") this source may reach though they are not public, at any redirect hop. ``true`` still
    means "any private address at any hop", deprecated: it is logged at start-up.
    """

    kind: ClassVar[str] = "feed"
    name: str
    url: str
    platform: str = "forum"
    keywords: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    brand_authors: list[str] = field(default_factory=list)
    allow_private: bool | list[str] = False
    brand_post_answers_thread: bool = True
    timeout_seconds: float = 10.0
    deadline_seconds: float = 30.0
    max_bytes: int = 5_000_000
    max_redirects: int = 3
    parse_timeout_seconds: float = 10.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"url {self.url!r} is not an http(s) URL; give the feed's full address")
        if self.platform not in ("forum", "review", "web"):
            raise ValueError(f"platform {self.platform!r} is not one of forum, review, web")
        if self.max_redirects > 5 or min(self.timeout_seconds, self.deadline_seconds, self.max_bytes) <= 0:
            raise ValueError("limits must be positive, and max_redirects at most 5")
        self._allowance = PrivateAllowance.parse(self.allow_private)
        if self._allowance.everything:
            log.warning(
                "feed %s: allow_private = true lets every redirect hop reach any private address; deprecated, "
                'list the hosts or networks it needs instead, e.g. allow_private = ["%s"]',
                self.name,
                parts.hostname,
            )

    @property
    def fetcher(self) -> Fetcher:
        return Fetcher(self.timeout_seconds, self.deadline_seconds, self.max_bytes, self.max_redirects, self._allowance)

    def _parse(self, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
        try:
            return PARSERS.parse(body, headers, self.parse_timeout_seconds)
        except FutureTimeout:
            raise SourceError(
                f"{self.url}: parsing took longer than {self.parse_timeout_seconds:g} s (a hostile or broken feed); "
                "skipped this time"
            ) from None
        except ProcessExpired as error:
            raise SourceError(f"{self.url}: the parse worker ended ({error}); skipped this time") from None

    def poll(self, cursor: Mapping[str, Any] | None, now: datetime) -> Poll:
        cursor = dict(cursor or {})
        conditional = {}
        if cursor.get("etag"):
            conditional["If-None-Match"] = cursor["etag"]
        if cursor.get("last_modified"):
            conditional["If-Modified-Since"] = cursor["last_modified"]
        fetched = self.fetcher.get(self.url, conditional, now)
        if fetched.status == 304:
            return Poll(cursor=cursor, details={"not_modified": True, "entries": 0})
        headers = {k.lower(): v for k, v in fetched.headers.items()}
        headers.pop("content-encoding", None)  # httpx decoded it already
        headers["content-location"] = self.url  # the same base every time, so entry ids never move
        result = self._parse(fetched.body, headers)
        if not result["version"] and not result["entries"]:
            reason = result["bozo"] or "no RSS or Atom in the body"
            raise SourceError(f"{self.url} is not a readable feed ({reason[:200]}); check the URL")
        mentions, replies = self._items(result["entries"], now)
        next_cursor = {"etag": headers.get("etag", ""), "last_modified": headers.get("last-modified", "")}
        details = {"entries": len(result["entries"]), "kept": len(mentions), "warning": result["bozo"][:200]}
        undated = [e for e in result["entries"] if e["published"] is None]
        if undated:
            details["undated"] = len(undated)  # their time is the fetch time: say so where people look
        unread = [e["unread_date"] for e in undated if e["unread_date"]]
        if unread:
            log.warning(
                "feed %s (%s): %d entries have a date that cannot be read, e.g. %r; they carry the fetch time, "
                "marked published_at_guessed. If the format is common, teach it to listener.feed.localized_date",
                self.name,
                self.url,
                len(unread),
                unread[0],
            )
        return Poll(mentions=tuple(mentions), replies=tuple(replies), cursor=next_cursor, details=details)

    def _about_brand(self, text: str) -> bool:
        lowered = text.lower()
        if any(term.lower() in lowered for term in self.exclude):
            return False
        return not self.keywords or any(term.lower() in lowered for term in self.keywords)

    def _ident(self, entry_id: str) -> str:
        return hashlib.sha256(f"{self.url}\0{entry_id}".encode()).hexdigest()[:32]

    def _answers(self, target: ReplyTarget, by_link: Mapping[str, str]) -> tuple[str, str]:
        """``(in_reply_to, to_author_id)`` for a brand post: the entry it answers, else the author it addresses."""
        if target.entry_id:
            return self._ident(target.entry_id), ""  # ids are hashed alike, so an entry from an earlier poll matches
        parent = by_link.get(target.link)
        if parent:
            return parent, ""
        if target.author:
            return "", target.author.lower()
        return "", ""  # it answers an entry this feed no longer carries: nothing it could be taken for

    def _items(self, entries: list[dict[str, Any]], now: datetime) -> tuple[list[Mention], list[BrandReply]]:
        brand = {a.lower() for a in self.brand_authors}
        mentions: list[Mention] = []
        replies: list[BrandReply] = []
        by_link: dict[str, str] = {}
        for entry in entries:
            if entry["id"] and entry["link"]:
                by_link.setdefault(entry["link"], self._ident(entry["id"]))
        for entry in entries:
            if not entry["id"]:
                continue  # neither guid nor link: nothing stable to know it by
            ident = self._ident(entry["id"])
            link = real_target(entry["link"]) if urlsplit(entry["link"]).scheme in ("http", "https") else ""
            published = datetime.fromisoformat(entry["published"]) if entry["published"] else now
            guessed = {} if entry["published"] else {"published_at_guessed": 1}  # the fetch time, a last resort
            thread = thread_of(entry["in_reply_to"] or link) if (entry["in_reply_to"] or link) else ""
            author = plain_text(entry["author"])[:200] or "anonymous"
            title, summary = plain_text(entry["title"]), plain_text(entry["summary"])
            if title in (f"By: {author}", f"Di: {author}") or summary.startswith(title):
                title = ""  # WordPress comment titles name the author; some feeds repeat the title in the body
            text = " — ".join(p for p in (title, summary) if p)
            if author.lower() in brand:
                target = reply_target(entry)
                if target:
                    in_reply_to, to_author = self._answers(target, by_link)
                else:  # no reply structure: the source's policy decides, as before
                    in_reply_to, to_author = "", EVERYONE_IN_THREAD if self.brand_post_answers_thread else ""
                replies.append(
                    BrandReply(
                        platform=self.platform,
                        platform_id=ident,
                        source=self.name,
                        published_at=published,
                        author_handle=author,
                        in_reply_to=in_reply_to,
                        thread_id=thread,
                        to_author_id=to_author,
                        text=text,
                        url=link,
                    )
                )
                continue
            if not self._about_brand(text):
                continue
            mentions.append(
                Mention(
                    platform=self.platform,
                    platform_id=ident,
                    source=self.name,
                    text=text,
                    published_at=published,
                    author=Author(self.platform, author.lower(), author, display_name=author),
                    url=link,
                    thread_id=thread,
                    metrics=guessed,
                )
            )
        return mentions, replies
