"""Offline feedback (phone calls, e-mails, exported reviews) from CSV or JSONL files, one mention a row.

Columns (CSV header or JSONL keys); ``id``, ``text``, ``published_at`` and ``author`` are required:

=============== ===========================================================================================
``id``          your id for the row; importing the same id again updates nothing and stores nothing twice
``text``        what the customer said
``published_at`` ISO 8601 with a time zone, e.g. ``2026-03-02T09:15:00+01:00``
``author``      the customer's name or handle
``channel``     phone, email, review, chat, store, site or other (default other)
``author_id``   your customer id (default: the author, lowercased), so one customer's rows link up
``url``         an http(s) link to the original, if any
``language``    a two-letter code, if known
``rating``      a review's stars, 1 to 5
=============== ===========================================================================================

Every row is checked on its own: a bad row is reported with its line and reason and the others go on. The file
is read as it is stored, a row at a time (of the rows before, only their ids are kept, to refuse a repeat); a cell
of any size is read; text past `listener.model.MAX_TEXT_CHARS` is cut, an over-long id refuses its row.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from listener.model import Author, Mention, clean_text

REQUIRED = ("id", "text", "published_at", "author")
OPTIONAL = ("channel", "author_id", "url", "language", "rating")
CHANNELS = ("phone", "email", "review", "chat", "store", "site", "other")
MAX_ID_CHARS = 200
#: Free text, where a lone surrogate is cleaned out; in any other field it names or links something and is refused.
FREE_TEXT = ("text", "author")


class ImportFileError(Exception):
    """The file as a whole cannot be read (not UTF-8, no header, unknown format); nothing is imported."""


@dataclass(frozen=True)
class Rejected:
    line: int
    reason: str


def lone_surrogate(value: str) -> bool:
    """Whether ``value`` holds half of a UTF-16 pair (a JSON ``"\\ud83d"``): SQLite cannot store it as UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def surrogate_problem(name: str) -> str:
    """The reason a field with a lone surrogate is refused, naming the field and the fix."""
    return (
        f'{name} holds a lone surrogate (half of an emoji, e.g. "\\ud83d" without its pair); '
        f"send {name} as UTF-8 text, or escape both halves of the pair (\\ud83d\\ude00)"
    )


#: How much of the file the UTF-8 check reads at a time.
_CHUNK_BYTES = 1 << 20


def _check_utf8(path: Path) -> None:
    """Refuse a file that is not UTF-8 before a row of it is stored, naming the first bad byte; read in chunks, so
    a file of any size costs one chunk of memory."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    try:
        with path.open("rb") as file:
            while chunk := file.read(_CHUNK_BYTES):
                pending = len(decoder.getstate()[0])
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as error:
                    bad = offset - pending + error.start
                    raise ImportFileError(f"{path}: not UTF-8 (byte {bad}); save the file as UTF-8") from None
                offset += len(chunk)
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                bad = offset - len(decoder.getstate()[0])
                raise ImportFileError(f"{path}: not UTF-8 (byte {bad}); save the file as UTF-8") from None
    except OSError as error:
        raise ImportFileError(f"{path}: cannot read it ({error.strerror})") from None


def _rows(path: Path, fmt: str) -> Iterator[tuple[int, Mapping[str, Any] | str]]:
    """The file's rows as it is read, one at a time: (line, row) or (line, why the row is refused)."""
    _check_utf8(path)
    # utf-8-sig: Excel writes a BOM. The file was checked; one changed since stops here, with the rows before kept.
    with path.open(encoding="utf-8-sig", newline="" if fmt == "csv" else None) as file:
        try:
            yield from (_csv_rows(path, file) if fmt == "csv" else _jsonl_rows(file))
        except UnicodeDecodeError as error:
            raise ImportFileError(f"{path}: not UTF-8 (changed while read, {error.reason})") from None


def _csv_rows(path: Path, file: TextIO) -> Iterator[tuple[int, Mapping[str, Any] | str]]:
    # csv refuses a cell over 128 KiB and stops the whole file there; no cell can outgrow the file, so let the
    # limit cover it (raised only: the limit is process-wide and others may rely on theirs).
    csv.field_size_limit(max(csv.field_size_limit(), path.stat().st_size + 1))
    reader = csv.DictReader(file)
    header = reader.fieldnames or []
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in REQUIRED + OPTIONAL]
    if missing or unknown:
        problems = [f"missing column(s) {', '.join(missing)}"] if missing else []
        problems += [f"unknown column(s) {', '.join(unknown)}"] if unknown else []
        raise ImportFileError(
            f"{path}: {'; '.join(problems)}; the columns are {', '.join(REQUIRED + OPTIONAL)} (first four required)"
        )
    for row in reader:
        if None in row:
            yield reader.line_num, "more cells than columns; quote cells that contain commas"
        else:
            yield reader.line_num, row


def _jsonl_rows(file: TextIO) -> Iterator[tuple[int, Mapping[str, Any] | str]]:
    # A line ends at a line break only: JSON may hold U+2028 or U+2029 unescaped inside a string.
    for number, line in enumerate(file, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            yield number, f"not valid JSON ({error.msg} at column {error.colno})"
            continue
        yield number, item if isinstance(item, dict) else "not a JSON object; write one {...} per line"


def mention_from_row(row: Mapping[str, Any], now: datetime, platform: str = "import") -> Mention:
    """Build the mention (on ``platform``: imports, or ``site`` for the intake webhook) or raise `ValueError`
    naming the field and the fix. A lone surrogate is cleaned out of free text and refuses any other field."""
    unknown = [k for k in row if k not in REQUIRED + OPTIONAL]
    if unknown:
        shown = ", ".join(ascii(k) if lone_surrogate(str(k)) else str(k) for k in unknown)
        raise ValueError(f"unknown field(s) {shown}; use {', '.join(REQUIRED + OPTIONAL)}")
    values = {k: ("" if row.get(k) is None else str(row[k]).strip()) for k in REQUIRED + OPTIONAL}
    for name, value in values.items():
        if lone_surrogate(value):
            if name not in FREE_TEXT:
                raise ValueError(surrogate_problem(name))
            values[name] = clean_text(value)
    for name in REQUIRED:
        if not values[name]:
            raise ValueError(f"{name} is empty; every row needs {', '.join(REQUIRED)}")
    if len(values["id"]) > MAX_ID_CHARS:
        raise ValueError(f"id is longer than {MAX_ID_CHARS} characters")
    try:
        published = datetime.fromisoformat(values["published_at"])
    except ValueError:
        raise ValueError(
            f"published_at {values['published_at'][:40]!r} is not an ISO 8601 time; "
            "write e.g. 2026-03-02T09:15:00+01:00"
        ) from None
    if published.tzinfo is None:
        raise ValueError(f"published_at {values['published_at']!r} has no time zone; add one, e.g. +01:00 or Z")
    if published > now + timedelta(days=1):
        raise ValueError(f"published_at {values['published_at']!r} is in the future; check the date")
    channel = values["channel"] or "other"
    if channel not in CHANNELS:
        raise ValueError(f"channel {channel!r} is not one of {', '.join(CHANNELS)}")
    url = values["url"]
    if url and urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"url {url[:60]!r} is not an http(s) link; leave it empty or fix it")
    language = values["language"].lower()
    if language and (len(language) != 2 or not language.isalpha()):
        raise ValueError(f"language {language!r} is not a two-letter code such as it or en")
    metrics = {}
    if values["rating"]:
        if values["rating"] not in ("1", "2", "3", "4", "5"):
            raise ValueError(f"rating {values['rating']!r} is not a whole number from 1 to 5")
        metrics["rating"] = int(values["rating"])
    author = values["author"][:200]
    return Mention(
        platform=platform,
        platform_id=values["id"],
        source=channel,
        text=values["text"],
        published_at=published,
        author=Author(platform, (values["author_id"] or author).lower()[:200], author, display_name=author),
        url=url,
        language_hint=language,
        metrics=metrics,
    )


def import_format(path: Path, fmt: str | None = None) -> str:
    """``fmt``, or the format the file's extension names (``.jsonl``, ``.ndjson``, ``.json``: jsonl; else csv)."""
    chosen = fmt or ("jsonl" if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else "csv")
    if chosen not in ("csv", "jsonl"):
        raise ImportFileError(f"format {chosen!r} is not csv or jsonl")
    return chosen


def import_rows(path: Path, now: datetime, fmt: str | None = None) -> Iterator[tuple[int, Mention | Rejected]]:
    """Each row as (line, mention) or (line, rejected), one at a time, so a large file is judged as it is stored.

    The file is checked to be UTF-8, and its header read, before this returns: `ImportFileError` comes at once, before
    anything is stored. A repeated id is rejected on its later lines.
    """
    rows = _rows(path, import_format(path, fmt))
    first = next(rows, None)

    def judged() -> Iterator[tuple[int, Mention | Rejected]]:
        seen: dict[str, int] = {}
        for line, row in itertools.chain([first] if first is not None else [], rows):
            if isinstance(row, str):
                yield line, Rejected(line, row)
                continue
            try:
                mention = mention_from_row(row, now)
            except ValueError as error:
                yield line, Rejected(line, str(error))
                continue
            if mention.platform_id in seen:
                repeated = f"id {mention.platform_id!r} is repeated (first on line {seen[mention.platform_id]})"
                yield line, Rejected(line, repeated)
                continue
            seen[mention.platform_id] = line
            yield line, mention

    return judged()


def read_import(path: Path, now: datetime, fmt: str | None = None) -> tuple[list[Mention], list[Rejected]]:
    """The valid rows as mentions, and each rejected row with its line number and reason."""
    mentions: list[Mention] = []
    rejected: list[Rejected] = []
    for _, row in import_rows(path, now, fmt):
        if isinstance(row, Rejected):
            rejected.append(row)
        else:
            mentions.append(row)
    return mentions, rejected
