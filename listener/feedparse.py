"""Parsing feeds in worker processes: feedparser on bytes, under a time limit, in one pool every feed shares.

Some hostile inputs make feedparser's regular expressions take seconds, so parsing never runs in the daemon.
Every feed source shares one small pool of workers (pebble's `ProcessPool`: a parse past its time limit ends
its worker alone, and a fresh one takes its place), so memory does not grow with the number of feeds. A worker
is a fresh interpreter (spawn) that imports this module, feedparser and dateparser, nothing of the daemon: keep
this module's imports that small.
"""

from __future__ import annotations

import atexit
import calendar
import re
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from multiprocessing import get_context
from typing import Any

from pebble import ProcessPool

#: Longest author field handed to feedparser: its author parsing is where the known slow regular expressions are.
MAX_AUTHOR_FIELD = 512
_AUTHOR_TAGS = re.compile(
    rb"(<(?:author|dc:creator|managingEditor|webMaster|name)\b[^>]*>(?:<!\[CDATA\[)?)([^<\]]{%d})[^<\]]*"
    % MAX_AUTHOR_FIELD,
    re.I,
)
#: Feed-parse workers shared by every feed source (each about 30 MB); more feeds queue, they add no workers.
PARSE_WORKERS = 2

#: How dateparser reads a feed's date it is handed alone: Italian or English names, absolute dates only ("ieri" or
#: "qualche giorno fa" are no publication time), day, month and year all present, no zone meaning UTC as in feedparser.
_DATEPARSER_SETTINGS = {
    "PARSERS": ["absolute-time"],
    "REQUIRE_PARTS": ["day", "month", "year"],
    "TIMEZONE": "UTC",
    "TO_TIMEZONE": "UTC",
    "RETURN_AS_TIMEZONE_AWARE": True,
}


def localized_date(raw: str) -> time.struct_time | None:
    """A date with Italian or English day and month names, as UTC; None when it is not one (feedparser tries next).

    Reads RFC-822 shapes ("ven, 14 mar 2025 10:00:00 +0100") and plain ones ("domenica 1 giugno 2025 ore 9.15",
    "Thursday, September 4, 2025 6:05 PM GMT") with dateparser. Registered with feedparser, it runs before
    feedparser's own handlers, so it never raises.
    """
    import dateparser

    text = raw.strip()
    if not text or len(text) > 100:
        return None
    cleaned = _HOUR_WORD.sub(" ", text)  # "ore 9.15", "alle 9:15", "at 6:05": the word is not part of the time
    cleaned = _DOTTED_TIME.sub(r"\1:\2", cleaned)
    try:
        moment = dateparser.parse(cleaned, languages=["it", "en"], settings=_DATEPARSER_SETTINGS)
    except (ValueError, OverflowError, TypeError):
        return None
    return moment.astimezone(UTC).utctimetuple() if moment is not None else None


_HOUR_WORD = re.compile(r"\b(?:ore|alle|at)\b", re.IGNORECASE)
_DOTTED_TIME = re.compile(r"\b(\d{1,2})\.(\d{2})\b(?!\.\d)")


_date_handler_registered = False


def _register_date_handler(feedparser: Any) -> None:
    """Once per process: feedparser alone reads neither Italian names nor "March 14, 2025"."""
    global _date_handler_registered
    if not _date_handler_registered:
        feedparser.registerDateHandler(localized_date)
        _date_handler_registered = True


def _trim_authors(body: bytes) -> bytes:
    return _AUTHOR_TAGS.sub(rb"\1\2", body)


def parse_feed(body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """Runs in the worker: feedparser's result reduced to plain data (only plain data crosses processes)."""
    import feedparser

    _register_date_handler(feedparser)
    parsed = feedparser.parse(_trim_authors(body), response_headers=dict(headers))
    entries = []
    for entry in parsed.entries:
        reply = entry.get("thr_in-reply-to") if isinstance(entry.get("thr_in-reply-to"), dict) else {}
        when = entry.get("published_parsed") or entry.get("updated_parsed")
        raw_date = "" if when else str(entry.get("published") or entry.get("updated") or "")
        entries.append(
            {
                "id": entry.get("id") or entry.get("link") or "",
                "link": entry.get("link", ""),
                "title": entry.get("title", ""),
                "summary": entry.get("summary", ""),
                "author": entry.get("author", ""),
                "published": datetime.fromtimestamp(calendar.timegm(when), UTC).isoformat() if when else None,
                "unread_date": raw_date[:200],  # kept only to say which date could not be read
                "in_reply_to": str(reply.get("href", "")),
                "in_reply_to_ref": str(reply.get("ref", "")),
                "content": str((entry.get("content") or [{}])[0].get("value", "")),
            }
        )
    bozo = parsed.get("bozo_exception")
    return {
        "version": parsed.get("version", ""),
        "title": parsed.feed.get("title", ""),
        "bozo": f"{type(bozo).__name__}: {bozo}" if bozo else "",
        "entries": entries,
    }


class _SharedParsers:
    """The one pool of parse workers, started on the first parse and stopped at exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ProcessPool | None = None
        self.parsed = 0  # parses handed to the workers since start (a 304 costs none)

    def parse(self, body: bytes, headers: Mapping[str, str], timeout: float) -> dict[str, Any]:
        """Parse in a worker; raises `FutureTimeout` past ``timeout`` (that worker is ended and replaced)."""
        with self._lock:
            if self._pool is None or not self._pool.active:
                # spawn: a fresh interpreter that imports only this module (never a copy of the daemon's memory)
                self._pool = ProcessPool(max_workers=PARSE_WORKERS, context=get_context("spawn"))
            pool = self._pool
            self.parsed += 1
        return dict(pool.schedule(parse_feed, args=(body, dict(headers)), timeout=timeout).result())

    def stop(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.stop()
            pool.join(timeout=5)


PARSERS = _SharedParsers()
atexit.register(PARSERS.stop)
