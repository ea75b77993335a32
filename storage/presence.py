"""Who has a mention open, or is writing its reply, right now: the dashboard's collision notice.

A row per (mention, member), replaced each time they open the mention or check a draft; rows older than an hour
are dropped as new ones come, so the table stays the size of the team's last hour.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlite_utils import Database

from storage.times import iso
from storage.writes import writing

DOING = ("viewing", "answering")
KEPT = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Presence:
    member: str
    doing: str  # viewing or answering
    at: datetime


class Presences:
    def __init__(self, db: Database) -> None:
        self.db = db

    def mark(self, key: str, member: str, doing: str, at: datetime) -> None:
        """``member`` is ``doing`` (viewing, answering) mention ``key`` at ``at``; answering outlasts viewing."""
        if doing not in DOING:
            raise ValueError(f"doing={doing!r} is not one of {', '.join(DOING)}")
        with writing(self.db):
            self.db.execute(
                "INSERT INTO presence (key, member, doing, at) VALUES (?, ?, ?, ?) ON CONFLICT (key, member) DO "
                "UPDATE SET doing = CASE WHEN excluded.doing = 'viewing' AND presence.doing = 'answering' "
                "AND presence.at >= ? THEN 'answering' ELSE excluded.doing END, at = excluded.at",
                [key, member, doing, iso(at), iso(at - timedelta(minutes=5))],
            )
            self.db.execute("DELETE FROM presence WHERE at < ?", [iso(at - KEPT)])

    def others(self, keys: Sequence[str], member: str, since: datetime) -> dict[str, list[Presence]]:
        """Per mention of ``keys``: who else was there since ``since``, latest first."""
        rows = self.db.execute(
            "SELECT key, member, doing, at FROM presence WHERE at >= ? AND member != ? "
            "AND key IN (SELECT value FROM json_each(?)) ORDER BY at DESC",
            [iso(since), member, json.dumps(list(keys))],
        ).fetchall()
        found: dict[str, list[Presence]] = {}
        for key, who, doing, at in rows:
            found.setdefault(key, []).append(Presence(who, doing, datetime.fromisoformat(at)))
        return found
