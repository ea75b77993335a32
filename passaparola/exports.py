"""Advocate and testimonial lists as CSV or JSON files: safe to open in a spreadsheet, never half-written.

CSV is UTF-8 with a byte-order mark (Excel then reads accents and emoji right) and every text cell that a
spreadsheet would run as a formula (starting with = + - @, a tab or a carriage return) is prefixed with ``'``,
as OWASP advises for CSV injection. Files are written beside their destination and renamed into place.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from rules.advocates import AdvocateSettings, suggest_offer, testimonials
from storage.people import Leader
from storage.store import Store
from storage.times import iso

FORMATS = ("csv", "json")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

ADVOCATE_COLUMNS = (
    "person_id",
    "name",
    "handles",
    "channels",
    "score",
    "tier",
    "counted_mentions",
    "praised",
    "last_praise_at",
    "last_praise",
    "suggested_offer",
    "offer_consent",
)
TESTIMONIAL_COLUMNS = (
    "mention",
    "rank",
    "name",
    "handle",
    "channel",
    "published_at",
    "topics",
    "text",
    "link",
    "reuse_agreed",
)


class ExportError(Exception):
    """The export cannot be written where asked; the message names the path and what to do."""


def inert(value: Any) -> Any:
    """A cell a spreadsheet shows as text: formula starters get a leading apostrophe; booleans read yes/no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def advocate_rows(leaders: Sequence[Leader], settings: AdvocateSettings, now: datetime) -> list[dict[str, Any]]:
    rows = []
    for leader in leaders:
        person = leader.person
        suggestion = suggest_offer(person, leader.tier, leader.score, leader.praised, settings, now)
        rows.append(
            {
                "person_id": person.id,
                "name": person.name,
                "handles": list(person.handles),
                "channels": list(person.channels),
                "score": round(leader.score, 2),
                "tier": leader.tier,
                "counted_mentions": leader.counted,
                "praised": list(leader.praised),
                "last_praise_at": iso(leader.last_praise_at) if leader.last_praise_at else "",
                "last_praise": leader.last_praise,
                "suggested_offer": suggestion.text,
                "offer_consent": not person.opted_out,
            }
        )
    return rows


def advocate_export(
    store: Store,
    settings: AdvocateSettings,
    now: datetime,
    fmt: str,
    tiers: Sequence[str] = (),
    min_score: float | None = None,
    since: datetime | None = None,
    topic: str = "",
    channel: str = "",
) -> tuple[str, int]:
    """The advocate export (CLI and web) as text in ``fmt``, with how many people it holds."""
    leaders = store.people.leaders(tuple(tiers), min_score, since, topic, channel)
    return render(advocate_rows(leaders, settings, now), ADVOCATE_COLUMNS, fmt), len(leaders)


def testimonial_rows(
    store: Store,
    settings: AdvocateSettings,
    now: datetime,
    since: datetime,
    topic: str = "",
    channel: str = "",
    agreed_only: bool = False,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """The strongest praise since ``since`` (see `rules.advocates.testimonials`), filtered, with reuse agreement."""
    store.people.sync(now)
    said = [
        s
        for s in store.people.said(since)
        if (not channel or s.platform == channel) and (not topic or topic.lower() in map(str.lower, s.topics))
    ]
    ranked = testimonials(said, settings, now)
    agreed = store.people.testimonial_agreement(s.key for _, s in ranked)
    ranked = [r for r in ranked if agreed.get(r[1].key) or not agreed_only][:limit]
    names = {pid: p.name for pid, p in store.people.persons(s.person_id for _, s in ranked).items()}
    return [
        {
            "mention": said.key,
            "rank": rank,
            "name": names.get(said.person_id, ""),
            "handle": said.handle,
            "channel": said.platform,
            "published_at": iso(said.published_at),
            "topics": list(said.topics),
            "text": said.text,
            "link": said.url,
            "reuse_agreed": agreed.get(said.key, False),
        }
        for rank, said in ranked
    ]


def render(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], fmt: str) -> str:
    """The rows as CSV (lists joined with ``; ``, cells made inert) or as a JSON array."""
    if fmt == "json":
        return json.dumps(list(rows), ensure_ascii=False, indent=2) + "\n"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                name: inert("; ".join(map(str, value)) if isinstance(value, list) else value)
                for name, value in row.items()
            }
        )
    return buffer.getvalue()


def write_atomic(path: Path, text: str, fmt: str) -> None:
    """Write to a temporary file beside ``path`` and rename it into place: readers never see half a file."""
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ExportError(f"{path} is a folder; give a file name, e.g. {path / ('advocates.' + fmt)}")
    if not folder.is_dir():
        raise ExportError(f"cannot write {path}: folder {folder} does not exist; create it or choose another path")
    encoding = "utf-8-sig" if fmt == "csv" else "utf-8"
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
    except OSError as error:
        raise ExportError(f"cannot write in {folder} ({error.strerror}); choose a writable path") from None
    try:
        with os.fdopen(handle, "w", encoding=encoding, newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise ExportError(f"cannot write {path} ({error.strerror}); choose a writable path") from None
