"""`feed`: RSS and Atom (Discourse and other forums, blog comment feeds, review sites, Google Alerts).

Fetched with `listener.fetch.Fetcher` (timeouts, deadline, size cap, checked redirects, private addresses
refused), conditionally (ETag, Last-Modified: a 304 costs no parsing), then parsed from bytes by feedparser in a
worker process under a time limit, because some hostile inputs make feedparser's regular expressions take
seconds. Malformed feeds keep what can be read; a body with no feed in it fails the poll with the reason.
"""

from __future__ import annotations

import calendar
import hashlib
import html
import re
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from multiprocessing import get_context
from typing import Any, ClassVar
from urllib.parse import urldefrag, urlsplit

from listener.fetch import Fetcher
from listener.model import EVERYONE_IN_THREAD, Author, BrandReply, Mention, Poll, SourceError

#: Longest author field handed to feedparser: its author parsing is where the known slow regular expressions are.
MAX_AUTHOR_FIELD = 512
_AUTHOR_TAGS = re.compile(
    rb"(<(?:author|dc:creator|managingEditor|webMaster|name)\b[^>]*>(?:<!\[CDATA\[)?)([^<\]]{%d})[^<\]]*"
    % MAX_AUTHOR_FIELD,
    re.I,
)
_DISCOURSE_TOPIC = re.compile(r"^(/t/[^/]+/\d+)(?:/\d+)?/?$")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def plain_text(fragment: str) -> str:
    """What a person would read in an HTML fragment: tags dropped, entities decoded, spaces collapsed."""
    parser = _Text()
    parser.feed(fragment)
    parser.close()
    return " ".join(html.unescape(" ".join(parser.parts)).split())


def _trim_authors(body: bytes) -> bytes:
    return _AUTHOR_TAGS.sub(rb"\1\2", body)


def parse_feed(body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """Runs in the worker: feedparser's result reduced to plain data (only plain data crosses processes)."""
    import feedparser

    parsed = feedparser.parse(_trim_authors(body), response_headers=dict(headers))
    entries = []
    for entry in parsed.entries:
        when = entry.get("published_parsed") or entry.get("updated_parsed")
        entries.append(
            {
                "id": entry.get("id") or entry.get("link") or "",
                "link": entry.get("link", ""),
                "title": entry.get("title", ""),
                "summary": entry.get("summary", ""),
                "author": entry.get("author", ""),
                "published": datetime.fromtimestamp(calendar.timegm(when), UTC).isoformat() if when else None,
                "in_reply_to": (entry.get("thr_in-reply-to") or {}).get("href", "")
                if isinstance(entry.get("thr_in-reply-to"), dict)
                else "",
            }
        )
    bozo = parsed.get("bozo_exception")
    return {
        "version": parsed.get("version", ""),
        "title": parsed.feed.get("title", ""),
        "bozo": f"{type(bozo).__name__}: {bozo}" if bozo else "",
        "entries": entries,
    }


def thread_of(link: str) -> str:
    """The conversation an entry belongs to: its page without the fragment; a Discourse topic without post number."""
    page, _ = urldefrag(link)
    parts = urlsplit(page)
    topic = _DISCOURSE_TOPIC.match(parts.path)
    return f"{parts.scheme}://{parts.netloc}{topic.group(1)}" if topic else page


@dataclass
class FeedSource:
    """One RSS or Atom feed. Brand posts in a thread answer everything said before them in that thread."""

    kind: ClassVar[str] = "feed"
    name: str
    url: str
    platform: str = "forum"
    keywords: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    brand_authors: list[str] = field(default_factory=list)
    allow_private: bool = False
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
        self._pool: ProcessPoolExecutor | None = None

    @property
    def fetcher(self) -> Fetcher:
        return Fetcher(
            self.timeout_seconds, self.deadline_seconds, self.max_bytes, self.max_redirects, self.allow_private
        )

    def _parse(self, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
        try:
            return self._pool.submit(parse_feed, body, headers).result(timeout=self.parse_timeout_seconds)
        except (FutureTimeout, BrokenProcessPool):
            pool, self._pool = self._pool, None
            for process in list(getattr(pool, "_processes", {}).values()):
                process.kill()  # a parse stuck in a regular expression: the worker goes, a fresh one comes
            pool.shutdown(wait=False, cancel_futures=True)
            raise SourceError(
                f"{self.url}: parsing took longer than {self.parse_timeout_seconds:g} s (a hostile or broken feed); "
                "skipped this time"
            ) from None

    def poll(self, cursor: Mapping[str, Any] | None, now: datetime) -> Poll:
        cursor = dict(cursor or {})
        conditional = {}
        if cursor.get("etag"):
            conditional["If-None-Match"] = cursor["etag"]
        if cursor.get("last_modified"):
            conditional["If-Modified-Since"] = cursor["last_modified"]
        fetched = self.fetcher.get(self.url, conditional)
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
        return Poll(mentions=tuple(mentions), replies=tuple(replies), cursor=next_cursor, details=details)

    def _about_brand(self, text: str) -> bool:
        lowered = text.lower()
        if any(term.lower() in lowered for term in self.exclude):
            return False
        return not self.keywords or any(term.lower() in lowered for term in self.keywords)

    def _items(self, entries: list[dict[str, Any]], now: datetime) -> tuple[list[Mention], list[BrandReply]]:
        brand = {a.lower() for a in self.brand_authors}
        mentions: list[Mention] = []
        replies: list[BrandReply] = []
        for entry in entries:
            if not entry["id"]:
                continue  # neither guid nor link: nothing stable to know it by
            ident = hashlib.sha256(f"{self.url}\0{entry['id']}".encode()).hexdigest()[:32]
            link = entry["link"] if urlsplit(entry["link"]).scheme in ("http", "https") else ""
            published = datetime.fromisoformat(entry["published"]) if entry["published"] else now
            thread = thread_of(entry["in_reply_to"] or link) if (entry["in_reply_to"] or link) else ""
            author = plain_text(entry["author"])[:200] or "anonymous"
            title, summary = plain_text(entry["title"]), plain_text(entry["summary"])
            if title in (f"By: {author}", f"Di: {author}") or summary.startswith(title):
                title = ""  # WordPress comment titles name the author; some feeds repeat the title in the body
            text = " — ".join(p for p in (title, summary) if p)
            if author.lower() in brand:
                replies.append(
                    BrandReply(
                        platform=self.platform,
                        platform_id=ident,
                        source=self.name,
                        published_at=published,
                        author_handle=author,
                        thread_id=thread,
                        to_author_id=EVERYONE_IN_THREAD,
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
                )
            )
        return mentions, replies
