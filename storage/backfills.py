"""Checkpoints of the backfills (``passaparola import``, ``passaparola reanalyze``): where an interrupted run stopped.

A backfill saves its checkpoint inside the transaction that writes the chunk it records (`Backfills.save` joins
the open transaction as a savepoint), so the checkpoint never runs ahead of, or behind, what was stored. A run
that finishes clears its checkpoint.

A bulk import (a file larger than what is stored) also builds the secondary indexes and the full-text index of the
mentions it writes once, at its end, instead of row by row (`Backfills.defer_indexes`, `Backfills.restore_indexes`):
at a million mentions every row inserted otherwise lands on a different page of each of nineteen indexes, and that
was three quarters of an import's writing time (`tools/bench_backfill.py`). From before it drops them until
after it builds them again, the import holds an exclusive ``flock`` on ``<database>.bulk`` (an empty file kept
beside the database, as SQLite keeps ``-wal`` and ``-shm``): the kernel lets go of it when the process ends,
however it ends, so another process that opens the store knows whether dropped indexes are someone's work in
progress or a killed import's to build again.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from datetime import datetime

from sqlite_utils import Database

from storage.times import iso
from storage.writes import writing

#: The tables a bulk import writes many rows to, whose secondary indexes it builds at its end.
BULK_TABLES = ("mentions", "mention_tags", "conversations")
#: Indexes the write path itself reads (the mentions of a reply's thread; the follow-ups of a mention, read by the
#: cockpit's triggers on every new conversation): a daemon writing meanwhile needs them, so they stay.
KEPT_INDEXES = ("idx_mentions_platform_thread_id", "conversations_follows")
#: The full-text index's triggers (sqlite-utils' ``enable_fts``): without them rows go in unindexed, and the
#: full-text index is rebuilt from the mentions at the end.
FTS_TRIGGERS = ("mentions_ai", "mentions_au", "mentions_ad")


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
        self._bulk_lock: int | None = None  #: the file descriptor of ``<database>.bulk`` while this store holds it

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

    # -- bulk loading ------------------------------------------------------------------------------

    def _lock_file(self) -> str | None:
        """``<database>.bulk`` (None for a database in memory, which no other process can open)."""
        file = self.db.execute("PRAGMA database_list").fetchone()[2]
        return f"{file}.bulk" if file else None

    def _try_lock(self, kind: int) -> int | None:
        """A descriptor of the lock file holding ``kind`` (``fcntl.LOCK_EX`` or ``LOCK_SH``), or None if another
        open of it holds the lock (another process, or another store in this one)."""
        file = self._lock_file()
        if file is None:
            return -1
        descriptor = os.open(file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(descriptor, kind | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            return None
        return descriptor

    def _unlock(self) -> None:
        if self._bulk_lock is not None:
            if self._bulk_lock >= 0:
                os.close(self._bulk_lock)  # closing the only descriptor releases the flock
            self._bulk_lock = None

    def defer_indexes(self, at: datetime) -> int:
        """Take the bulk-import lock, then drop the secondary indexes of `BULK_TABLES` (not the unique ones, not
        `KEPT_INDEXES`) and the full-text triggers, each recorded with its SQL in the same transaction; returns how
        many were dropped, 0 when another bulk import holds the lock. Searches miss the rows written until
        `restore_indexes` and pages read slower meanwhile; every write stays correct."""
        if self._bulk_lock is None:
            self._bulk_lock = self._try_lock(fcntl.LOCK_EX)
            if self._bulk_lock is None:
                return 0
        marks = ", ".join("?" for _ in BULK_TABLES)
        with writing(self.db):
            found = self.db.execute(
                f"SELECT name, type, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL AND ("
                f"(type = 'index' AND tbl_name IN ({marks}) AND sql NOT LIKE 'CREATE UNIQUE%' "
                f"AND name NOT IN (SELECT value FROM json_each(?))) "
                f"OR (type = 'trigger' AND name IN (SELECT value FROM json_each(?))))",
                [*BULK_TABLES, json.dumps(KEPT_INDEXES), json.dumps(FTS_TRIGGERS)],
            ).fetchall()
            for name, kind, table, sql in found:
                self.db.execute(
                    "INSERT INTO deferred_schema (name, type, tbl_name, sql, deferred_at) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT(name) DO NOTHING",
                    [name, kind, table, sql, iso(at)],
                )
                self.db.execute(f'DROP {"INDEX" if kind == "index" else "TRIGGER"} "{name}"')
        return len(found)

    def deferred(self) -> int:
        """How many indexes and triggers a bulk import dropped and nobody has built again yet."""
        return int(self.db.execute("SELECT count(*) FROM deferred_schema").fetchone()[0])

    def holds_bulk_lock(self) -> bool:
        """Whether this store took the bulk-import lock (`defer_indexes`) and has not built the indexes since."""
        return self._bulk_lock is not None

    def restore_abandoned(self) -> int:
        """Build what a bulk import dropped if no bulk import holds the lock any more (it was killed); while one
        runs, leave its work alone. Returns how many were built."""
        if not self.deferred() or self._bulk_lock is not None:
            return 0
        probe = self._try_lock(fcntl.LOCK_SH)
        if probe is None:
            return 0  # a bulk import is writing: it builds them at its end
        try:
            return self.restore_indexes()
        finally:
            if probe >= 0:
                os.close(probe)

    def restore_indexes(self) -> int:
        """Build again what `defer_indexes` dropped (those present already are left), in one transaction: the
        indexes, the full-text triggers and the full-text index rebuilt from every mention; then the planner's
        statistics of those tables, where the database keeps any; then let go of the bulk-import lock. Returns how
        many were built."""
        try:
            return self._build_deferred()
        finally:
            self._unlock()

    def _build_deferred(self) -> int:
        with writing(self.db):
            rows = self.db.execute("SELECT name, type, sql FROM deferred_schema ORDER BY type, name").fetchall()
            if not rows:
                return 0
            present = {name for (name,) in self.db.execute("SELECT name FROM sqlite_master WHERE sql IS NOT NULL")}
            built = [name for name, _, _ in rows if name not in present]
            for name, _, sql in rows:
                if name not in present:
                    self.db.execute(sql)
            if any(kind == "trigger" for _, kind, _ in rows):
                self.db.execute("INSERT INTO mentions_fts(mentions_fts) VALUES ('rebuild')")
            if self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone():
                (limit,) = self.db.execute("PRAGMA analysis_limit").fetchone()
                self.db.execute("PRAGMA analysis_limit = 1000")  # sampled: seconds, not minutes, at a million
                for table in BULK_TABLES:
                    self.db.execute(f'ANALYZE "{table}"')
                self.db.execute(f"PRAGMA analysis_limit = {int(limit)}")
            self.db.execute("DELETE FROM deferred_schema")
        return len(built)
