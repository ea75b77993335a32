"""Inbound: webhook bodies the web app verified and queued, for the daemon to ingest through the polling path.

The web app only verifies and queues, so it answers fast; a body is kept once per dedupe key, so a platform's
retry or a replay is stored once. `Inbound` shares the store's connection (``store.inbound``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlite_utils import Database

from storage.times import iso
from storage.writes import writing


class Inbound:
    def __init__(self, db: Database) -> None:
        self.db = db

    def receive(self, channel: str, source: str, items: Sequence[tuple[str, str]], at: datetime) -> list[bool]:
        """Queue verified webhook bodies as (dedupe key, body), in one transaction.

        Returns, per item, True when it is new and False when that key was received before (a retry, a replay).
        """
        fresh = []
        with writing(self.db):
            for key, body in items:
                before = self.db.conn.total_changes
                self.db.execute(
                    "INSERT OR IGNORE INTO inbound (channel, source, dedupe_key, body, received_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [channel, source, key, body, iso(at)],
                )
                fresh.append(self.db.conn.total_changes > before)
        return fresh

    def pending(self, limit: int = 100) -> list[tuple[int, str, str, str]]:
        """(id, channel, source, body) of queued bodies not yet ingested, oldest first."""
        rows = self.db.execute(
            "SELECT id, channel, source, body FROM inbound WHERE processed_at IS NULL ORDER BY id LIMIT ?", [limit]
        )
        return [tuple(row) for row in rows.fetchall()]

    def processed(self, ident: int, at: datetime, error: str = "") -> None:
        """One body is done (``error`` says why it could not be ingested): it is never offered again."""
        with writing(self.db):
            self.db.execute(
                "UPDATE inbound SET processed_at = ?, error = ? WHERE id = ?", [iso(at), error[:1000], ident]
            )
