"""`Store`: passaparola's database over sqlite-utils, WAL, a busy timeout. Only `storage/` reads and writes SQL.

One concern per module, each a class over the same connection that `Store` composes, so no module grows into
everything: ``store.mentions`` (a poll saved in one transaction, tags, volumes, retention), ``store.conversations``
(states, triage, the audit trail), ``store.outbox``, ``store.inbound`` (queued webhook bodies), ``store.health``
(sources, heartbeat, jobs), ``store.people``, ``store.sessions``, ``store.models``, ``store.platform_counts`` and
``store.board`` (the web app's reads). `Store` itself opens and migrates the file and does what concerns the
database as a whole: counts, the maintenance job, backups.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from listener.model import OPEN_STATES, Conversation, Poll, SourceHealth
from notifiers.alert import Alert
from storage.backfills import Backfills
from storage.board import Board
from storage.conversations import Conversations
from storage.counts import PlatformCounts
from storage.health import Health
from storage.inbound import Inbound
from storage.mentions import Mentions, SaveResult
from storage.migrations import migrations
from storage.models import ModelSwaps
from storage.outbox import Outbox, OutboxItem
from storage.people import People
from storage.presence import Presences
from storage.replies import Replies
from storage.sessions import Sessions

__all__ = ["OutboxItem", "SaveResult", "StorageError", "Store"]


class StorageError(Exception):
    """The database cannot be used as asked. The message names the file and what to do."""


class Store:
    """Passaparola's database. Open it with `Store.open(path)`, or `Store.memory()` in tests."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.people = People(db)
        self.health = Health(db)
        self.conversations = Conversations(db)
        self.mentions = Mentions(db, self.people, self.conversations, self.health)
        self.outbox = Outbox(db)
        self.replies = Replies(db, self.conversations, self.mentions.insert_replies)
        self.inbound = Inbound(db)
        self.platform_counts = PlatformCounts(db)
        self.sessions = Sessions(db)
        self.presence = Presences(db)
        self.models = ModelSwaps(db)
        self.backfills = Backfills(db)
        self.board = Board(db, self.conversations.query)

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, busy_timeout_seconds: float = 10.0, shared: bool = False) -> Store:
        """Open (creating if needed) and migrate; refuse unusable files without touching them.

        ``shared=True`` lets several threads use the connection (the web app, which serialises them with a lock).
        """
        path = Path(path)
        directory = path.parent if str(path.parent) else Path(".")
        if not directory.is_dir():
            raise StorageError(f"database {path}: folder {directory} does not exist; create it or set storage.path")
        if path.exists() and not os.access(path, os.R_OK | os.W_OK):
            raise StorageError(f"database {path} is not readable and writable by this user; fix its permissions")
        if not path.exists() and not os.access(directory, os.W_OK | os.X_OK):
            raise StorageError(
                f"database {path}: folder {directory} is not writable; fix its permissions "
                "or set storage.path to a writable place"
            )
        connection = sqlite3.connect(str(path), timeout=busy_timeout_seconds, check_same_thread=not shared)
        try:
            connection.execute("PRAGMA schema_version").fetchone()
        except sqlite3.DatabaseError as error:
            connection.close()
            raise StorageError(
                f"database {path} is unreadable ({error}); it was left untouched: restore it "
                "from a backup, or point storage.path at a new file"
            ) from None
        store = cls(Database(connection))
        store._check_not_newer(path)
        store.db.enable_wal()
        store.db.execute("PRAGMA synchronous=NORMAL")
        store.db.execute("PRAGMA foreign_keys=ON")
        store._migrate()
        store.backfills.restore_abandoned()  # a killed bulk import's indexes
        return store

    def _migrate(self) -> None:
        """Apply pending migrations holding the write lock from the start (``BEGIN IMMEDIATE``).

        Two processes opening a fresh database at once (the daemon and the container's health check) would
        otherwise both read the schema and then both try to write it: SQLite refuses one at once with "database
        is locked", without waiting. ``BEGIN IMMEDIATE`` waits on the busy timeout instead; each migration runs in
        a savepoint inside it, and the second process finds nothing pending.
        """
        self.db.execute("BEGIN IMMEDIATE")
        try:
            migrations.apply(self.db)
        except BaseException:
            self.db.conn.rollback()
            raise
        self.db.conn.commit()

    @classmethod
    def memory(cls) -> Store:
        store = cls(Database(memory=True))
        store.db.execute("PRAGMA foreign_keys=ON")
        migrations.apply(store.db)
        return store

    def _check_not_newer(self, path: Path) -> None:
        known = {m.name for m in migrations._migrations}
        unknown = [m.name for m in migrations.applied(self.db) if m.name not in known]
        if unknown:
            raise StorageError(
                f"database {path} was written by a newer passaparola (unknown migration "
                f"{unknown[0]}); upgrade passaparola, or restore a backup made by this version"
            )

    def close(self) -> None:
        self.db.close()

    # -- the database as a whole ------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Row counts and open items, for `status` and the demo summary."""
        open_items = self.db.execute(
            f"SELECT count(*) FROM conversations WHERE state IN ({','.join('?' * len(OPEN_STATES))})", list(OPEN_STATES)
        ).fetchone()[0]
        pending = self.db.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0]
        return {
            "mentions": self.db.table("mentions").count,
            "authors": self.db.table("authors").count,
            "brand_replies": self.db.table("brand_replies").count,
            "open": open_items,
            "answered": self.db.execute("SELECT count(*) FROM conversations WHERE state = 'answered'").fetchone()[0],
            "alerts_sent": self.db.execute("SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL").fetchone()[0],
            "alerts_pending": pending,
        }

    def maintain(self, retention_cutoff: datetime | None) -> dict[str, int]:
        """The maintenance job: the retention window, then the query planner's statistics and a WAL checkpoint."""
        deleted = self.mentions.delete_published_before(retention_cutoff) if retention_cutoff else 0
        self.db.execute("PRAGMA optimize")
        busy, wal_pages, _ = self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        return {"deleted": deleted, "checkpoint_busy": busy, "wal_pages": wal_pages}

    def backup(self, destination: Path) -> int:
        """Copy the live database with SQLite's online backup (the daemon may keep writing); returns its size.

        The copy is written beside ``destination`` and renamed into place after an integrity check, so a
        destination is never overwritten (it must not exist) and never half-written.
        """
        if destination.exists():
            raise StorageError(f"backup {destination} already exists; choose a new name (nothing was overwritten)")
        folder = destination.parent if str(destination.parent) else Path(".")
        if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            raise StorageError(f"backup {destination}: folder {folder} is missing or not writable; choose another")
        partial = destination.with_name(f".{destination.name}.part")
        try:
            target = sqlite3.connect(str(partial))
            try:
                self.db.conn.backup(target, pages=1024)
                verdict = target.execute("PRAGMA integrity_check").fetchone()[0]
            finally:
                target.close()
            if verdict != "ok":
                raise StorageError(f"backup {destination}: the copy failed its integrity check ({verdict})")
            os.replace(partial, destination)
        except (OSError, sqlite3.Error) as error:
            raise StorageError(f"backup {destination} failed ({error}); nothing was written") from None
        finally:
            partial.unlink(missing_ok=True)
        return destination.stat().st_size

    def file_size(self) -> int:
        """Bytes the database uses (pages x page size), for `status`."""
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        return int(pages) * int(self.db.execute("PRAGMA page_size").fetchone()[0])

    # -- the hottest calls (dozens of callers each), kept here as one-line delegates --------------

    def save_poll(self, source: str, kind: str, poll: Poll, at: datetime, reread: Collection[str] = ()) -> SaveResult:
        """`Mentions.save_poll`: a poll's mentions, replies, answers, cursor and health in one transaction."""
        return self.mentions.save_poll(source, kind, poll, at, reread)

    def conversation(self, key: str) -> Conversation | None:
        """`Conversations.get`: one mention's conversation, or None for an unknown key."""
        return self.conversations.get(key)

    def enqueue(self, alerts: Iterable[Alert], at: datetime) -> int:
        """`Outbox.enqueue`: queue alerts once by key; returns how many are new."""
        return self.outbox.enqueue(alerts, at)

    def source_health(self, source: str) -> SourceHealth:
        """`Health.of`: one source's health."""
        return self.health.of(source)

    def cursor(self, source: str) -> Mapping[str, Any] | None:
        """`Health.cursor`: where a source's next poll resumes."""
        return self.health.cursor(source)

    # -- the people reads of `rules.base.StoreView` ----------------------------------------------

    def top_advocates(self, limit: int) -> list[tuple[str, float, str]]:
        return [(a.person.name, a.score, a.tier) for a in self.people.leaders(limit=limit)]

    def tiered_authors(self, tiers: Sequence[str]) -> dict[str, str]:
        return self.people.tiered_authors(tiers)
