"""The reading model's swaps: which retrained model is live, and the history of every attempt.

`ModelSwaps` shares the store's connection (``store.models``). The live model is the ``to_dir`` of the last
``swap`` or ``rollback``; a ``rejected`` candidate is recorded for the history and changes nothing.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from storage.times import iso
from storage.writes import writing

CHANGES = ("swap", "rollback")


class ModelSwaps:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(
        self,
        action: str,
        *,
        from_dir: str,
        to_dir: str,
        from_version: str,
        to_version: str,
        scores: dict[str, Any],
        reason: str,
        at: datetime,
    ) -> None:
        with writing(self.db):
            self.db.table("model_swaps").insert(
                {
                    "action": action,
                    "from_dir": from_dir,
                    "to_dir": to_dir,
                    "from_version": from_version,
                    "to_version": to_version,
                    "scores": json.dumps(scores),
                    "reason": reason,
                    "at": iso(at),
                }
            )

    def live(self) -> dict[str, Any] | None:
        """The last swap or rollback, or None while the shipped (or configured) model is in use."""
        rows = list(
            self.db.query(
                "SELECT * FROM model_swaps WHERE action IN (SELECT value FROM json_each(?)) ORDER BY id DESC LIMIT 1",
                [json.dumps(CHANGES)],
            )
        )
        return self._row(rows[0]) if rows else None

    def history(self, limit: int = 50) -> list[dict[str, Any]]:
        return [self._row(r) for r in self.db.query("SELECT * FROM model_swaps ORDER BY id DESC LIMIT ?", [limit])]

    @staticmethod
    def _row(row: dict[str, Any]) -> dict[str, Any]:
        return {**row, "scores": json.loads(row["scores"] or "{}")}
