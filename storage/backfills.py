"""Checkpoints of the backfills (``passaparola import``, ``passaparola reanalyze``): where an interrupted run stopped.

A backfill saves its checkpoint inside the transaction that writes the chunk it records (`Backfills.save` joins
the open transaction as a savepoint), so the checkpoint never runs ahead of, or behind, what was stored. A run
that finishes clears its checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlite_utils import Database

from storage.times import iso
from storage.writes import writing


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The position (an import's last stored line, a reanalysis' last key) and how many items were done by then."""

    name: str
    detail: str
    position: str
    done: int
    updated_at: str


class Backfills:
    def __init__(self, db: Database) -> None:
        self.db = db

    def checkpoint(self, name: str) -> Checkpoint | None:
        """Where the backfill ``name`` stopped, or None when it never ran or finished."""
        row = self.db.execute(
            "SELECT name, detail, position, done, updated_at FROM backfill_checkpoints WHERE name = ?", [name]
        ).fetchone()
        return Checkpoint(str(row[0]), str(row[1]), str(row[2]), int(row[3]), str(row[4])) if row else None

    def save(self, name: str, detail: str, position: str, done: int, at: datetime) -> None:
        """Record the position; call it inside the chunk's transaction (`storage.writes.writing`)."""
        with writing(self.db):
            self.db.execute(
                "INSERT INTO backfill_checkpoints (name, detail, position, done, updated_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET detail = excluded.detail, position = excluded.position, "
                "done = excluded.done, updated_at = excluded.updated_at",
                [name, detail, position, done, iso(at)],
            )

    def clear(self, name: str) -> None:
        """The backfill finished: the next run starts from the beginning."""
        with writing(self.db):
            self.db.execute("DELETE FROM backfill_checkpoints WHERE name = ?", [name])
