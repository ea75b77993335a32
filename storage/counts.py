"""Platform counts: how many posts a platform itself counted per UTC hour for a source's query (X's recent counts).

They are the history passaparola did not hear: on the first day of a source its own stored mentions cover an hour
or two (or a back-filled sample), while X counts the same query back seven days. The volume baseline reads them for
the hours before passaparola first stored a mention of that source; from then on its own history takes over.
`PlatformCounts` shares the store's connection (``store.platform_counts``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlite_utils import Database

from listener.model import HourCount
from storage.times import iso
from storage.writes import writing

HOUR = timedelta(hours=1)


def _hour(text: str) -> datetime:
    """A stored hour ("2026-03-02T08:00:00+00:00", or its first 13 characters) as an aware datetime."""
    return datetime.fromisoformat(f"{text[:13]}:00:00+00:00")


class PlatformCounts:
    def __init__(self, db: Database) -> None:
        self.db = db

    def save(self, source: str, counts: Iterable[HourCount]) -> int:
        """Store a fetch; an hour fetched again replaces its count, so re-fetching is harmless. Returns the rows."""
        rows = [(source, iso(c.hour), c.count) for c in counts]
        if rows:
            with writing(self.db):
                self.db.conn.executemany(
                    "INSERT INTO platform_counts (source, hour, count) VALUES (?, ?, ?) "
                    "ON CONFLICT (source, hour) DO UPDATE SET count = excluded.count",
                    rows,
                )
        return len(rows)

    def of(self, source: str) -> dict[datetime, int]:
        """Every stored hour of one source (for `status` and tests)."""
        rows = self.db.execute("SELECT hour, count FROM platform_counts WHERE source = ? ORDER BY hour", [source])
        return {_hour(hour): count for hour, count in rows.fetchall()}

    def own_history_began(self, source: str) -> datetime | None:
        """When passaparola first stored a mention of ``source`` (None: never): its own history starts there."""
        row = self.db.execute("SELECT min(first_seen_at) FROM mentions WHERE source = ?", [source]).fetchone()
        return datetime.fromisoformat(row[0]) if row and row[0] else None

    def uncovered(self, since: datetime, until: datetime) -> dict[datetime, int]:
        """Per whole hour in [since, until) before passaparola's own history of a source began: the posts that
        source's platform counted beyond those passaparola stored for it that hour (never below zero), summed over
        sources. Every such hour is a key, zero included: the baseline needs to know how far history reaches.

        Adding this to the stored mentions per hour gives, for those hours, the larger of what the platform counted
        and what the back-fill brought (each undercounts in its own way; the larger is the better estimate), plus
        the other sources' mentions as stored. Hours from the start of a source's own history are left out: there
        passaparola's own count is the one the live window is compared with.
        """
        first, last = iso(since), iso(until - HOUR)
        sources = [
            row[0]
            for row in self.db.execute(
                "SELECT DISTINCT source FROM platform_counts WHERE hour >= ? AND hour <= ?", [first, last]
            ).fetchall()
        ]
        extra: dict[datetime, int] = {}
        for source in sources:
            began = self.own_history_began(source)
            rows = self.db.execute(
                "SELECT hour, count FROM platform_counts WHERE source = ? AND hour >= ? AND hour <= ? "
                "AND (? IS NULL OR hour < ?) ORDER BY hour",
                [source, first, last, iso(began) if began else None, iso(began) if began else None],
            ).fetchall()
            if not rows:
                continue
            # "+source": read the few hours through the published_at index, not every mention of the source.
            own = dict(
                self.db.execute(
                    "SELECT substr(published_at, 1, 13) AS hour, count(*) FROM mentions "
                    "WHERE +source = ? AND published_at >= ? AND published_at < ? GROUP BY hour",
                    [source, rows[0][0], iso(_hour(rows[-1][0]) + HOUR)],
                ).fetchall()
            )
            for hour, count in rows:
                at = _hour(hour)
                extra[at] = extra.get(at, 0) + max(count - own.get(hour[:13], 0), 0)
        return extra

    def platforms(self) -> list[str]:
        """The kinds of the sources that have counts ("x"), for saying where a baseline came from."""
        rows = self.db.execute(
            "SELECT DISTINCT kind FROM sources WHERE name IN (SELECT DISTINCT source FROM platform_counts) "
            "AND kind != '' ORDER BY kind"
        )
        return [row[0] for row in rows.fetchall()]
