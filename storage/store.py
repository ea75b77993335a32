"""`Store`: the only code that reads and writes SQL. One class over sqlite-utils, WAL, a busy timeout.

A poll is saved in one transaction (mentions, authors, brand replies, answers, cursor, health): a crash
anywhere loses nothing and duplicates nothing, and re-ingesting the same post is a no-op for everything
passaparola derived from it.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from listener.model import (
    OPEN_STATES,
    Author,
    BrandReply,
    Conversation,
    Mention,
    Poll,
    SourceHealth,
)
from notifiers.alert import Alert, TargetOutcome
from storage.board import Board
from storage.counts import PlatformCounts
from storage.migrations import migrations
from storage.models import ModelSwaps
from storage.people import People, delete_mentions
from storage.sessions import Sessions
from storage.times import iso, parse_time

#: Tag names stored in their own columns; any other tag goes to ``mention_tags.extra``.
TAG_COLUMNS = (
    "language",
    "sentiment",
    "sentiment_probs",
    "model_version",
    "needs_answer",
    "needs_answer_reason",
    "topics",
    "route",
)


class StorageError(Exception):
    """The database cannot be used as asked. The message names the file and what to do."""


@dataclass(frozen=True, slots=True)
class SaveResult:
    """What one saved poll changed: new mentions and replies, and mentions newly answered."""

    new_mentions: int
    new_replies: int
    answered: int


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A queued alert; ``reached`` names the targets (URLs of its route) that have it already."""

    alert: Alert
    attempts: int
    held_reason: str = ""
    reached: frozenset[str] = frozenset()


class Store:
    """Passaparola's database. Open it with `Store.open(path)`, or `Store.memory()` in tests."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.people = People(db)
        self.platform_counts = PlatformCounts(db)
        self.sessions = Sessions(db)
        self.models = ModelSwaps(db)
        self.board = Board(db, self._conversations)

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

    # -- ingest ----------------------------------------------------------------------------------

    def known(self, keys: Iterable[str]) -> set[str]:
        """Which of these mention keys are stored already (so only new ones are tagged)."""
        keys = list(keys)
        if not keys:
            return set()
        rows = self.db.execute(
            "SELECT key FROM mentions WHERE key IN (SELECT value FROM json_each(?))", [json.dumps(keys)]
        )
        return {row[0] for row in rows}

    def save_poll(self, source: str, kind: str, poll: Poll, at: datetime) -> SaveResult:
        """Write a poll's mentions, replies, answers, cursor and health in one transaction.

        Mentions by erased authors are dropped: they are never stored again.
        """
        now = iso(at)
        erased = self.people.suppressed(m.author.key for m in poll.mentions)
        if erased:
            poll = replace(poll, mentions=tuple(m for m in poll.mentions if m.author.key not in erased))
        with self.db.atomic():
            new_keys = {m.key for m in poll.mentions} - self.known(m.key for m in poll.mentions)
            self._upsert_authors([m.author for m in poll.mentions], now)
            self.db.table("mentions").upsert_all(
                (self._mention_row(m, now) for m in poll.mentions), pk="key", batch_size=500
            )
            self.db.execute(
                "UPDATE mentions SET first_seen_at = ? WHERE key IN (SELECT value FROM json_each(?))",
                [now, json.dumps(sorted(new_keys))],
            )
            fresh = [m for m in poll.mentions if m.key in new_keys]
            self.db.table("mention_tags").insert_all(
                (self._tags_row(m.key, m.tags, now) for m in fresh if m.tags), pk="key", ignore=True
            )
            self.db.table("conversations").insert_all(
                ({"key": m.key, "state": "new", "updated_at": now} for m in fresh), pk="key", ignore=True
            )
            new_replies = self._insert_replies(poll.replies, now)
            answered = self._apply_answers(sorted(new_keys), [r.key for r in poll.replies], now)
            self._record_success(source, kind, poll.cursor, poll.details, len(new_keys), now)
        return SaveResult(new_mentions=len(new_keys), new_replies=new_replies, answered=answered)

    def _upsert_authors(self, authors: Sequence[Author], now: str) -> None:
        unique = {a.key: a for a in authors}
        existing = {
            row[0]
            for row in self.db.execute(
                "SELECT key FROM authors WHERE key IN (SELECT value FROM json_each(?))", [json.dumps(list(unique))]
            )
        }
        self.db.table("authors").upsert_all(
            (
                {
                    "key": a.key,
                    "platform": a.platform,
                    "platform_id": a.platform_id,
                    "handle": a.handle,
                    "display_name": a.display_name,
                    "reach": a.reach,
                    "verified": int(a.verified),
                    "updated_at": now,
                    **({} if a.key in existing else {"first_seen_at": now}),
                }
                for a in unique.values()
            ),
            pk="key",
            batch_size=500,
        )

    @staticmethod
    def _mention_row(m: Mention, now: str) -> dict[str, Any]:
        return {
            "key": m.key,
            "platform": m.platform,
            "platform_id": m.platform_id,
            "source": m.source,
            "author_key": m.author.key,
            "text": m.text,
            "url": m.url,
            "published_at": iso(m.published_at),
            "thread_id": m.thread_id,
            "in_reply_to": m.in_reply_to,
            "language_hint": m.language_hint,
            "metrics": json.dumps(dict(m.metrics)),
            "updated_at": now,
        }

    @staticmethod
    def _tags_row(key: str, tags: Mapping[str, Any], now: str) -> dict[str, Any]:
        row: dict[str, Any] = {"key": key, "tagged_at": now, **dict.fromkeys(TAG_COLUMNS)}
        extra = {}
        for name, value in tags.items():
            if name in TAG_COLUMNS:
                row[name] = json.dumps(value) if isinstance(value, (list, dict, tuple)) else value
            elif value is not None:
                extra[name] = value
        row["extra"] = json.dumps(extra, default=str)
        return row

    def _insert_replies(self, replies: Sequence[BrandReply], now: str) -> int:
        before = self.db.conn.total_changes
        self.db.table("brand_replies").insert_all(
            (
                {
                    "key": r.key,
                    "platform": r.platform,
                    "platform_id": r.platform_id,
                    "source": r.source,
                    "in_reply_to": r.in_reply_to,
                    "thread_id": r.thread_id,
                    "to_author_id": r.to_author_id,
                    "author_handle": r.author_handle,
                    "text": r.text,
                    "url": r.url,
                    "published_at": iso(r.published_at),
                    "first_seen_at": now,
                }
                for r in replies
            ),
            pk="key",
            ignore=True,
            batch_size=500,
        )
        return self.db.conn.total_changes - before

    def _apply_answers(self, mention_keys: Sequence[str], reply_keys: Sequence[str], now: str) -> int:
        """Mark open mentions answered by the earliest brand reply that answers them.

        A reply answers a mention when it replies to it directly, or when it is a later brand post in the
        same thread addressed to the mention's author, or to everyone in it (``to_author_id`` ``'*'``, the
        `listener.model.EVERYONE_IN_THREAD` of forum answers). Only mentions or replies touched now are examined.
        """
        if not mention_keys and not reply_keys:
            return 0
        rows = self.db.execute(
            """
            WITH new_m AS (SELECT value AS key FROM json_each(:mentions)),
                 new_b AS (SELECT value AS key FROM json_each(:replies)),
            pairs AS (
                SELECT m.key AS mk, m.published_at AS mp, b.key AS bk, b.published_at AS bp
                FROM new_m JOIN mentions m ON m.key = new_m.key
                JOIN brand_replies b ON b.platform = m.platform AND b.in_reply_to = m.platform_id
                UNION
                SELECT m.key, m.published_at, b.key, b.published_at
                FROM new_m JOIN mentions m ON m.key = new_m.key JOIN authors a ON a.key = m.author_key
                JOIN brand_replies b ON b.platform = m.platform AND b.thread_id = m.thread_id
                WHERE m.thread_id != '' AND b.to_author_id IN (a.platform_id, '*') AND b.published_at >= m.published_at
                UNION
                SELECT m.key, m.published_at, b.key, b.published_at
                FROM new_b JOIN brand_replies b ON b.key = new_b.key
                JOIN mentions m ON m.platform = b.platform AND m.platform_id = b.in_reply_to
                UNION
                SELECT m.key, m.published_at, b.key, b.published_at
                FROM new_b JOIN brand_replies b ON b.key = new_b.key
                JOIN mentions m ON m.platform = b.platform AND m.thread_id = b.thread_id
                JOIN authors a ON a.key = m.author_key
                WHERE b.thread_id != '' AND b.to_author_id IN (a.platform_id, '*') AND b.published_at >= m.published_at
            )
            SELECT mk, mp, bk, bp FROM pairs JOIN conversations c ON c.key = pairs.mk
            WHERE c.state IN ('new', 'assigned', 'reopened')
            ORDER BY mk, bp
            """,
            {"mentions": json.dumps(list(mention_keys)), "replies": json.dumps(list(reply_keys))},
        ).fetchall()
        first: dict[str, tuple[str, str, str]] = {}
        for mention_key, published_at, reply_key, reply_at in rows:
            first.setdefault(mention_key, (published_at, reply_key, reply_at))
        for mention_key, (published_at, reply_key, reply_at) in first.items():
            seconds = max((datetime.fromisoformat(reply_at) - datetime.fromisoformat(published_at)).total_seconds(), 0)
            self.db.execute(
                "UPDATE conversations SET state = 'answered', answered_at = ?, answer_key = ?, response_seconds = ?, "
                "answered_by = COALESCE(NULLIF(answered_by, ''), assignee, ''), updated_at = ? WHERE key = ?",
                [reply_at, reply_key, seconds, now, mention_key],
            )
            self._event(mention_key, now, "answered", "", f"brand reply {reply_key}")
        return len(first)

    # -- sources ---------------------------------------------------------------------------------

    def cursor(self, source: str) -> Mapping[str, Any] | None:
        row = self.db.execute("SELECT cursor FROM sources WHERE name = ?", [source]).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def _record_success(
        self, source: str, kind: str, cursor: Mapping[str, Any] | None, details: Mapping[str, Any], new: int, now: str
    ) -> None:
        self.db.execute(
            """
            INSERT INTO sources (name, kind, cursor, details, last_attempt_at, last_success_at,
                                 consecutive_failures, last_error, next_retry_at, mentions_total, updated_at)
            VALUES (:name, :kind, :cursor, :details, :now, :now, 0, '', NULL, :new, :now)
            ON CONFLICT(name) DO UPDATE SET kind = :kind, cursor = COALESCE(:cursor, cursor), details = :details,
                last_attempt_at = :now, last_success_at = :now, consecutive_failures = 0, last_error = '',
                next_retry_at = NULL, mentions_total = mentions_total + :new, updated_at = :now
            """,
            {
                "name": source,
                "kind": kind,
                "cursor": json.dumps(dict(cursor)) if cursor is not None else None,
                "details": json.dumps(dict(details), default=str),
                "now": now,
                "new": new,
            },
        )

    def record_failure(
        self, source: str, kind: str, error: str, at: datetime, retry_at: datetime, counted: bool = True
    ) -> int:
        """Record a failed poll and when to retry; return the consecutive failures so far.

        ``counted=False`` (a rate limit: the platform works, it asks us to wait) pauses without counting.
        """
        now = iso(at)
        with self.db.atomic():
            self.db.execute(
                """
                INSERT INTO sources (name, kind, last_attempt_at, consecutive_failures, last_error,
                                     next_retry_at, updated_at)
                VALUES (:name, :kind, :now, :step, :error, :retry, :now)
                ON CONFLICT(name) DO UPDATE SET kind = :kind, last_attempt_at = :now,
                    consecutive_failures = consecutive_failures + :step, last_error = :error,
                    failures_total = failures_total + 1,
                    next_retry_at = :retry, updated_at = :now
                """,
                {
                    "name": source,
                    "kind": kind,
                    "now": now,
                    "error": error[:1000],
                    "retry": iso(retry_at),
                    "step": int(counted),
                },
            )
        return self.source_health(source).consecutive_failures

    def source_health(self, source: str) -> SourceHealth:
        row = self.db.execute("SELECT * FROM sources WHERE name = ?", [source]).fetchone()
        if row is None:
            return SourceHealth(name=source, kind="")
        return self._health(
            dict(zip([d[0] for d in self.db.execute("SELECT * FROM sources LIMIT 0").description], row, strict=True))
        )

    def all_source_health(self) -> list[SourceHealth]:
        return [self._health(row) for row in self.db.table("sources").rows_where(order_by="name")]

    @staticmethod
    def _health(row: Mapping[str, Any]) -> SourceHealth:
        return SourceHealth(
            name=row["name"],
            kind=row["kind"] or "",
            last_attempt_at=parse_time(row["last_attempt_at"]),
            last_success_at=parse_time(row["last_success_at"]),
            consecutive_failures=row["consecutive_failures"] or 0,
            last_error=row["last_error"] or "",
            next_retry_at=parse_time(row["next_retry_at"]),
            mentions_total=row["mentions_total"] or 0,
            details=json.loads(row.get("details") or "{}"),
            failures_total=row.get("failures_total") or 0,
        )

    # -- analysis: tags, corrections, reanalysis ---------------------------------------------------

    def tags(self, key: str) -> dict[str, Any] | None:
        """The derived fields of one mention, a person's sentiment correction applied (``corrected`` says so)."""
        rows = list(
            self.db.query(
                "SELECT t.*, sc.label AS corrected_label FROM mentions m LEFT JOIN mention_tags t ON t.key = m.key "
                "LEFT JOIN sentiment_corrections sc ON sc.key = m.key WHERE m.key = ?",
                [key],
            )
        )
        if not rows:
            return None
        row = rows[0]
        tags: dict[str, Any] = {name: row[name] for name in TAG_COLUMNS if row.get(name) is not None}
        for name in ("sentiment_probs", "topics"):
            if name in tags:
                tags[name] = json.loads(tags[name])
        tags.update(json.loads(row.get("extra") or "{}"))
        if row["corrected_label"]:
            tags["sentiment"], tags["corrected"] = row["corrected_label"], True
        return tags

    def correct_sentiment(self, key: str, label: str, by: str, at: datetime) -> None:
        """Record a person's label; raises `KeyError` for an unknown mention."""
        with self.db.atomic():
            found = list(
                self.db.query(
                    "SELECT t.sentiment FROM mentions m LEFT JOIN mention_tags t ON t.key = m.key WHERE m.key = ?",
                    [key],
                )
            )
            if not found:
                raise KeyError(key)
            self.db.table("sentiment_corrections").upsert(
                {
                    "key": key,
                    "label": label,
                    "model_label": found[0]["sentiment"],
                    "corrected_by": by,
                    "corrected_at": iso(at),
                },
                pk="key",
            )

    def corrections(self) -> list[dict[str, Any]]:
        """Every corrected mention as labelled data: text, label, language (for retraining)."""
        return list(
            self.db.query(
                "SELECT m.text, sc.label, COALESCE(t.language, m.language_hint, '') AS language, sc.key, "
                "m.platform, m.source, json_extract(m.metrics, '$.rating') AS stars "
                "FROM sentiment_corrections sc JOIN mentions m ON m.key = sc.key "
                "LEFT JOIN mention_tags t ON t.key = sc.key ORDER BY sc.corrected_at, sc.key"
            )
        )

    def mention_texts(self, after_key: str = "", limit: int = 500) -> list[tuple[str, str, str, str, Any]]:
        """(key, text, platform, source, rating) pages in key order, for reanalysis."""
        rows = self.db.execute(
            "SELECT key, text, platform, source, json_extract(metrics, '$.rating') FROM mentions "
            "WHERE key > ? ORDER BY key LIMIT ?",
            [after_key, limit],
        )
        return [tuple(row) for row in rows.fetchall()]

    def replace_tags(self, tags: Mapping[str, Mapping[str, Any]], at: datetime) -> int:
        """Overwrite the derived fields of these mentions (corrections live apart and are kept).

        Returns how many of them the model now labels differently.
        """
        now = iso(at)
        with self.db.atomic():
            before = dict(
                self.db.execute(
                    "SELECT key, sentiment FROM mention_tags WHERE key IN (SELECT value FROM json_each(?))",
                    [json.dumps(list(tags))],
                ).fetchall()
            )
            self.db.table("mention_tags").upsert_all(
                (self._tags_row(key, t, now) for key, t in tags.items()), pk="key", batch_size=500
            )
        return sum(before.get(key) != t.get("sentiment") for key, t in tags.items())

    # -- reading for rules -----------------------------------------------------------------------

    def _conversations(
        self, where: str, params: Sequence[Any], order: str = "m.published_at", limit: int = -1, offset: int = 0
    ) -> list[Conversation]:
        """Mentions with author, tags and state: the one query every reader of conversations shares."""
        rows = self.db.execute(
            f"""
            SELECT m.*, c.state, c.state_reason, c.answered_at, c.response_seconds, c.assignee, c.priority, c.team,
                   c.target_minutes, c.warn_at, c.due_at, c.follows_key, c.answered_by, c.breach_handed_on,
                   c.acknowledged_at, c.acknowledged_by,
                   a.platform_id AS a_id, a.handle AS a_handle, a.display_name AS a_name, a.reach AS a_reach,
                   a.verified AS a_verified, t.needs_answer, COALESCE(sc.label, t.sentiment) AS sentiment,
                   t.language, t.topics, json_extract(t.extra, '$.topic_sentiment') AS topic_sentiment,
                   json_extract(t.extra, '$.kind') AS kind
            FROM conversations c
            JOIN mentions m ON m.key = c.key
            JOIN authors a ON a.key = m.author_key
            LEFT JOIN mention_tags t ON t.key = m.key
            LEFT JOIN sentiment_corrections sc ON sc.key = m.key
            WHERE {where}
            ORDER BY {order}
            LIMIT {int(limit)} OFFSET {int(offset)}
            """,
            list(params),
        )
        names = [d[0] for d in rows.description]
        return [self._conversation(dict(zip(names, row, strict=True))) for row in rows.fetchall()]

    def open_conversations(self, published_before: datetime, published_after: datetime) -> list[Conversation]:
        """Open mentions (not answered, not ignored) published in the window, oldest first."""
        return self._conversations(
            f"c.state IN ({','.join('?' * len(OPEN_STATES))}) AND m.published_at <= ? AND m.published_at > ?",
            [*OPEN_STATES, iso(published_before), iso(published_after)],
        )

    def due_conversations(self, now: datetime, due_after: datetime) -> list[Conversation]:
        """Open mentions whose warning time has come, due after ``due_after``, most urgent first."""
        return self._conversations(
            f"c.state IN ({','.join('?' * len(OPEN_STATES))}) AND c.warn_at <= ? AND c.due_at > ?",
            [*OPEN_STATES, iso(now), iso(due_after)],
            order="c.due_at",
        )

    def conversations_between(self, start: datetime, end: datetime) -> list[Conversation]:
        """Every mention published in (start, end], whatever its state, oldest first."""
        return self._conversations("m.published_at > ? AND m.published_at <= ?", [iso(start), iso(end)])

    def conversation(self, key: str) -> Conversation | None:
        found = self._conversations("c.key = ?", [key])
        return found[0] if found else None

    def hourly_counts(self, since: datetime, until: datetime) -> dict[datetime, int]:
        """Mentions per UTC hour published in [since, until), for baselines."""
        rows = self.db.execute(
            "SELECT substr(published_at, 1, 13) AS hour, count(*) FROM mentions "
            "WHERE published_at >= ? AND published_at < ? GROUP BY hour",
            [iso(since), iso(until)],
        )
        return {datetime.fromisoformat(f"{hour}:00:00+00:00"): count for hour, count in rows.fetchall()}

    def last_alert_at(self, kind: str, route: str) -> datetime | None:
        """When an alert of this kind was last queued for this route (cooldowns)."""
        row = self.db.execute("SELECT max(created_at) FROM outbox WHERE kind = ? AND route = ?", [kind, route])
        return parse_time(row.fetchone()[0])

    def source_activity(self, since: datetime) -> dict[str, tuple[list[datetime], datetime]]:
        """Per source: the UTC hours since ``since`` in which it brought new mentions, and when it last did."""
        hours: dict[str, list[datetime]] = {}
        for source, hour in self.db.execute(
            "SELECT source, substr(first_seen_at, 1, 13) AS hour FROM mentions WHERE first_seen_at >= ? "
            "GROUP BY source, hour ORDER BY source, hour",
            [iso(since)],
        ).fetchall():
            hours.setdefault(source, []).append(datetime.fromisoformat(f"{hour}:00:00+00:00"))
        last = dict(
            self.db.execute(
                "SELECT source, max(first_seen_at) FROM mentions WHERE source IN (SELECT value FROM json_each(?)) "
                "GROUP BY source",
                [json.dumps(list(hours))],
            ).fetchall()
        )
        return {source: (found, datetime.fromisoformat(last[source])) for source, found in hours.items()}

    def open_counts(self, now: datetime) -> tuple[int, int]:
        """Open mentions, and how many of them are past their deadline."""
        states = ",".join("?" * len(OPEN_STATES))
        row = self.db.execute(
            f"SELECT count(*), sum(due_at IS NOT NULL AND due_at <= ?) FROM conversations WHERE state IN ({states})",
            [iso(now), *OPEN_STATES],
        ).fetchone()
        return int(row[0]), int(row[1] or 0)

    def top_advocates(self, limit: int) -> list[tuple[str, float, str]]:
        return [(a.person.name, a.score, a.tier) for a in self.people.leaders(limit=limit)]

    def tiered_authors(self, tiers: Sequence[str]) -> dict[str, str]:
        return self.people.tiered_authors(tiers)

    def pending_alerts(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0])

    @staticmethod
    def _conversation(row: Mapping[str, Any]) -> Conversation:
        tags = {name: row[name] for name in ("needs_answer", "sentiment", "language") if row[name] is not None}
        if row["topics"]:
            tags["topics"] = json.loads(row["topics"])
        if row["topic_sentiment"]:
            tags["topic_sentiment"] = json.loads(row["topic_sentiment"])
        if row["kind"]:
            tags["kind"] = row["kind"]
        mention = Mention(
            platform=row["platform"],
            platform_id=row["platform_id"],
            source=row["source"],
            text=row["text"],
            published_at=datetime.fromisoformat(row["published_at"]),
            url=row["url"] or "",
            thread_id=row["thread_id"] or "",
            in_reply_to=row["in_reply_to"] or "",
            language_hint=row["language_hint"] or "",
            metrics=json.loads(row["metrics"] or "{}"),
            author=Author(
                platform=row["platform"],
                platform_id=row["a_id"],
                handle=row["a_handle"],
                display_name=row["a_name"] or "",
                reach=row["a_reach"] or 0,
                verified=bool(row["a_verified"]),
            ),
            tags=tags,
        )
        return Conversation(
            mention=mention,
            state=row["state"],
            answered_at=parse_time(row["answered_at"]),
            response_seconds=row["response_seconds"],
            assignee=row["assignee"] or "",
            state_reason=row["state_reason"] or "",
            seen_at=parse_time(row["first_seen_at"]),
            priority=row["priority"] or "normal",
            team=row["team"] or "",
            target_minutes=row["target_minutes"],
            warn_at=parse_time(row["warn_at"]),
            due_at=parse_time(row["due_at"]),
            follows_key=row["follows_key"] or "",
            answered_by=row["answered_by"] or "",
            breach_handed_on=bool(row["breach_handed_on"]),
            acknowledged_at=parse_time(row["acknowledged_at"]),
            acknowledged_by=row["acknowledged_by"] or "",
        )

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

    # -- triage ----------------------------------------------------------------------------------

    def untriaged(self, limit: int = 1000) -> list[Conversation]:
        """Stored mentions triage has not settled yet, oldest first, each with the answered mention it follows up.

        A follow-up is a later mention by the same author in the same thread after we answered them there.
        """
        found = self._conversations("c.triaged_at IS NULL", [], limit=limit)
        if not found:
            return []
        follows = dict(
            self.db.execute(
                """
                SELECT m.key, (SELECT p.key FROM mentions p JOIN conversations pc ON pc.key = p.key
                               WHERE p.platform = m.platform AND p.thread_id = m.thread_id
                                 AND p.author_key = m.author_key AND p.key != m.key AND pc.state = 'answered'
                                 AND pc.answered_at <= m.published_at
                               ORDER BY pc.answered_at DESC LIMIT 1)
                FROM mentions m WHERE m.key IN (SELECT value FROM json_each(?)) AND m.thread_id != ''
                """,
                [json.dumps([c.mention.key for c in found])],
            ).fetchall()
        )
        return [replace(c, follows_key=follows.get(c.mention.key) or "") for c in found]

    def settle(self, settled: Sequence[Conversation], at: datetime) -> None:
        """Store triage's verdicts (priority, team, deadlines, follow-up, ignored by policy) in one transaction.

        Only a still-new mention changes state: one answered meanwhile keeps its answer.
        """
        now = iso(at)
        with self.db.atomic():
            for c in settled:
                self.db.execute(
                    """
                    UPDATE conversations SET priority = :priority, team = :team, target_minutes = :target,
                        warn_at = :warn, due_at = :due, follows_key = :follows, triaged_at = :now, updated_at = :now,
                        state = CASE WHEN state = 'new' AND :state IN ('ignored', 'reopened')
                                     THEN :state ELSE state END,
                        state_reason = CASE WHEN state = 'new' AND (:state = 'ignored' OR :reason != '')
                                            THEN :reason ELSE state_reason END
                    WHERE key = :key
                    """,
                    {
                        "key": c.mention.key,
                        "priority": c.priority,
                        "team": c.team,
                        "target": c.target_minutes,
                        "warn": iso(c.warn_at) if c.warn_at else None,
                        "due": iso(c.due_at) if c.due_at else None,
                        "follows": c.follows_key,
                        "state": c.state,
                        "reason": c.state_reason,
                        "now": now,
                    },
                )
                if c.state == "reopened":
                    self._event(c.mention.key, now, "reopened", "", f"follows up {c.follows_key}")

    def open_items(self) -> list[Conversation]:
        """Every settled conversation still waiting for an answer, most urgent first."""
        states = ",".join("?" * len(OPEN_STATES))
        return self._conversations(
            f"c.state IN ({states}) AND c.triaged_at IS NOT NULL",
            list(OPEN_STATES),
            order="c.due_at, m.published_at",
        )

    def workloads(self) -> dict[str, int]:
        """Open items per assignee."""
        states = ",".join("?" * len(OPEN_STATES))
        rows = self.db.execute(
            f"SELECT assignee, count(*) FROM conversations WHERE state IN ({states}) AND assignee != '' "
            "GROUP BY assignee",
            list(OPEN_STATES),
        )
        return dict(rows.fetchall())

    def last_answerers(self, author_keys: Iterable[str], since: datetime) -> dict[str, str]:
        """author key -> the member who answered that author last, since ``since``."""
        rows = self.db.execute(
            """
            SELECT m.author_key, c.answered_by FROM conversations c JOIN mentions m ON m.key = c.key
            WHERE m.author_key IN (SELECT value FROM json_each(?)) AND c.state = 'answered'
              AND c.answered_by != '' AND c.answered_at >= ?
            ORDER BY c.answered_at
            """,
            [json.dumps(sorted(set(author_keys))), iso(since)],
        )
        return dict(rows.fetchall())  # later rows win: the most recent answerer

    def assign(self, moves: Iterable[tuple[str, str, str, bool]], at: datetime) -> int:
        """Apply (key, member, reason, breach) moves: a member takes the item, or "" puts it back in the queue."""
        now = iso(at)
        count = 0
        with self.db.atomic():
            for key, member, reason, breach in moves:
                self.db.execute(
                    """
                    UPDATE conversations SET assignee = :member, assigned_at = :now, updated_at = :now,
                        breach_handed_on = MAX(COALESCE(breach_handed_on, 0), :breach),
                        state = CASE WHEN :member != '' AND state = 'new' THEN 'assigned'
                                     WHEN :member = '' AND state = 'assigned' THEN 'new' ELSE state END
                    WHERE key = :key AND state IN ('new', 'assigned', 'reopened')
                    """,
                    {"key": key, "member": member, "now": now, "breach": int(breach)},
                )
                count += self.db.conn.execute("SELECT changes()").fetchone()[0]
                self._event(key, now, "assigned" if member else "released", member, reason)
        return count

    def _require_mention(self, key: str) -> Conversation:
        found = self.conversation(key)
        if found is None:
            raise KeyError(key)
        return found

    def mark_answered(self, key: str, by: str, at: datetime, answered_at: datetime | None = None) -> Conversation:
        """A person says the mention was answered (channels with no reply signal: imports, intake, phone).

        Raises `KeyError` for an unknown mention; an already answered one keeps its first answer.
        """
        with self.db.atomic():
            current = self._require_mention(key)
            if current.state != "answered":
                when = answered_at or at
                seconds = max((when - current.mention.published_at).total_seconds(), 0)
                self.db.execute(
                    "UPDATE conversations SET state = 'answered', answered_at = ?, answered_by = ?, "
                    "response_seconds = ?, answer_key = '', updated_at = ? WHERE key = ?",
                    [iso(when), by, seconds, iso(at), key],
                )
                self._event(key, iso(at), "answered", by, "marked by hand")
        return self._require_mention(key)

    def mark_ignored(self, key: str, reason: str, by: str, at: datetime) -> Conversation:
        """Close a mention without an answer, with the reason (spam, not for us...). `KeyError` if unknown."""
        with self.db.atomic():
            self._require_mention(key)
            self.db.execute(
                "UPDATE conversations SET state = 'ignored', state_reason = ?, updated_at = ? WHERE key = ?",
                [reason, iso(at), key],
            )
            self._event(key, iso(at), "ignored", by, reason)
        return self._require_mention(key)

    def acknowledge(self, key: str, by: str, at: datetime) -> Conversation:
        """Someone has taken charge of a breach: its escalation ladder stops. `KeyError` if unknown."""
        with self.db.atomic():
            self._require_mention(key)
            self.db.execute(
                "UPDATE conversations SET acknowledged_at = COALESCE(acknowledged_at, ?), "
                "acknowledged_by = COALESCE(NULLIF(acknowledged_by, ''), ?), updated_at = ? WHERE key = ?",
                [iso(at), by, iso(at), key],
            )
            self._event(key, iso(at), "acknowledged", by, "")
        return self._require_mention(key)

    def set_away(self, member: str, away: bool, by: str, at: datetime) -> None:
        with self.db.atomic():
            self.db.table("member_status").upsert(
                {"name": member, "away": int(away), "updated_by": by, "updated_at": iso(at)}, pk="name"
            )

    def away_overrides(self) -> dict[str, bool]:
        """member -> away, as people set it at run time (over the config's ``away``)."""
        return {name: bool(away) for name, away in self.db.execute("SELECT name, away FROM member_status")}

    def events(self, key: str) -> list[tuple[datetime, str, str, str]]:
        """(at, event, member, detail) of one mention, oldest first: its audit trail."""
        rows = self.db.execute(
            "SELECT at, event, member, detail FROM conversation_events WHERE key = ? ORDER BY at, id", [key]
        )
        return [(datetime.fromisoformat(at), event, member or "", detail or "") for at, event, member, detail in rows]

    def _event(self, key: str, now: str, event: str, member: str, detail: str) -> None:
        self.db.execute(
            "INSERT INTO conversation_events (key, at, event, member, detail) VALUES (?, ?, ?, ?, ?)",
            [key, now, event, member, detail[:500]],
        )

    # -- outbox ----------------------------------------------------------------------------------

    def enqueue(self, alerts: Iterable[Alert], at: datetime) -> int:
        """Queue alerts; an alert whose key was ever queued is ignored. Returns how many are new."""
        now = iso(at)
        with self.db.atomic():
            before = self.db.conn.total_changes
            self.db.table("outbox").insert_all(
                (
                    {
                        "key": a.key,
                        "kind": a.kind,
                        "level": a.level,
                        "title": a.title,
                        "body": a.body,
                        "route": a.route,
                        "mentions": json.dumps(list(a.mentions)),
                        "html": a.html or None,
                        "created_at": now,
                        "attempts": 0,
                        "next_attempt_at": now,
                    }
                    for a in alerts
                ),
                pk="key",
                ignore=True,
            )
            return self.db.conn.total_changes - before

    def alert_mention(self, alert_key: str) -> str | None:
        """The first mention an alert in the outbox is about (acknowledging by alert key)."""
        row = self.db.execute("SELECT mentions FROM outbox WHERE key = ?", [alert_key]).fetchone()
        mentions = json.loads(row[0] or "[]") if row else []
        return mentions[0] if mentions else None

    def due_alerts(self, at: datetime, limit: int = 100) -> list[OutboxItem]:
        rows = list(
            self.db.table("outbox").rows_where(
                "sent_at IS NULL AND next_attempt_at <= ?", [iso(at)], order_by="created_at, rowid", limit=limit
            )
        )
        reached = self._reached([r["key"] for r in rows])
        return [
            OutboxItem(
                Alert(
                    key=r["key"],
                    kind=r["kind"],
                    title=r["title"],
                    body=r["body"],
                    level=r["level"],
                    route=r["route"],
                    mentions=tuple(json.loads(r["mentions"] or "[]")),
                    html=r["html"] or "",
                ),
                attempts=r["attempts"],
                held_reason=r["held_reason"] or "",
                reached=frozenset(reached.get(r["key"], ())),
            )
            for r in rows
        ]

    def _reached(self, keys: Sequence[str]) -> dict[str, set[str]]:
        """The targets each of these alerts already reached (a partly delivered alert is retried for the rest)."""
        rows = self.db.execute(
            "SELECT alert_key, target FROM outbox_targets WHERE sent_at IS NOT NULL "
            "AND alert_key IN (SELECT value FROM json_each(?))",
            [json.dumps(list(keys))],
        ).fetchall()
        reached: dict[str, set[str]] = {}
        for key, target in rows:
            reached.setdefault(key, set()).add(target)
        return reached

    def _record_targets(self, key: str, at: str, targets: Sequence[TargetOutcome]) -> None:
        """Per target of one attempt: reached (never sent to again) or failed (attempts and error kept)."""
        for t in targets:
            self.db.execute(
                "INSERT INTO outbox_targets (alert_key, target, attempts, last_attempt_at, last_error, sent_at) "
                "VALUES (?, ?, 1, ?, ?, ?) ON CONFLICT (alert_key, target) DO UPDATE SET "
                "attempts = attempts + 1, last_attempt_at = excluded.last_attempt_at, "
                "last_error = excluded.last_error, sent_at = coalesce(sent_at, excluded.sent_at)",
                [key, t.target, at, None if t.ok else t.detail[:1000], at if t.ok else None],
            )

    def mark_sent(self, key: str, at: datetime, targets: Sequence[TargetOutcome] = ()) -> None:
        """The alert reached everyone; ``targets`` are the destinations this last attempt reached."""
        with self.db.atomic():
            self._record_targets(key, iso(at), targets)
            self.db.execute(
                "UPDATE outbox SET sent_at = ?, attempts = attempts + 1, last_attempt_at = ? WHERE key = ?",
                [iso(at), iso(at), key],
            )

    def mark_reached(self, key: str, at: datetime, targets: Sequence[TargetOutcome]) -> None:
        """Some targets have the alert and the others were not tried yet: keep who has it, count no attempt."""
        with self.db.atomic():
            self._record_targets(key, iso(at), targets)

    def last_sent_at(self, kind: str, route: str) -> datetime | None:
        """When an alert of this kind last reached this route (cooldowns; a folded alert reached it in a summary)."""
        row = self.db.execute(
            "SELECT max(sent_at) FROM outbox WHERE kind = ? AND route = ? AND folded_into IS NULL", [kind, route]
        )
        return parse_time(row.fetchone()[0])

    def sent_since(self, route: str, since: datetime) -> list[datetime]:
        """When each alert that reached this route after ``since`` was sent (the rate cap)."""
        rows = self.db.execute(
            "SELECT sent_at FROM outbox WHERE route = ? AND sent_at > ? AND folded_into IS NULL", [route, iso(since)]
        )
        return [datetime.fromisoformat(row[0]) for row in rows.fetchall()]

    def hold(self, key: str, until: datetime, reason: str) -> None:
        """Keep a queued alert back until ``until`` (quiet hours, cooldown, rate cap); no attempt is counted."""
        with self.db.atomic():
            self.db.execute(
                "UPDATE outbox SET next_attempt_at = ?, held_reason = ? WHERE key = ?", [iso(until), reason, key]
            )

    def fold(self, keys: Sequence[str], summary: Alert, at: datetime) -> None:
        """Queue one summary for held alerts and close them as folded into it, in one transaction."""
        with self.db.atomic():
            self.enqueue([summary], at)
            self.db.execute(
                "UPDATE outbox SET sent_at = ?, folded_into = ? WHERE key IN (SELECT value FROM json_each(?))",
                [iso(at), summary.key, json.dumps(list(keys))],
            )

    def mark_failed(
        self, key: str, at: datetime, error: str, retry_at: datetime, targets: Sequence[TargetOutcome] = ()
    ) -> None:
        """Retry the alert at ``retry_at``; the ``targets`` this attempt reached are kept and not sent to again."""
        with self.db.atomic():
            self._record_targets(key, iso(at), targets)
            self.db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_attempt_at = ?, last_error = ?, "
                "next_attempt_at = ? WHERE key = ?",
                [iso(at), error[:1000], iso(retry_at), key],
            )

    # -- inbound: webhook bodies queued by the web app ----------------------------------------------

    def receive(self, channel: str, source: str, items: Sequence[tuple[str, str]], at: datetime) -> list[bool]:
        """Queue verified webhook bodies as (dedupe key, body), in one transaction.

        Returns, per item, True when it is new and False when that key was received before (a retry, a replay).
        """
        fresh = []
        with self.db.atomic():
            for key, body in items:
                before = self.db.conn.total_changes
                self.db.execute(
                    "INSERT OR IGNORE INTO inbound (channel, source, dedupe_key, body, received_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [channel, source, key, body, iso(at)],
                )
                fresh.append(self.db.conn.total_changes > before)
        return fresh

    def pending_inbound(self, limit: int = 100) -> list[tuple[int, str, str, str]]:
        """(id, channel, source, body) of queued bodies not yet ingested, oldest first."""
        rows = self.db.execute(
            "SELECT id, channel, source, body FROM inbound WHERE processed_at IS NULL ORDER BY id LIMIT ?", [limit]
        )
        return [tuple(row) for row in rows.fetchall()]

    def processed_inbound(self, ident: int, at: datetime, error: str = "") -> None:
        with self.db.atomic():
            self.db.execute(
                "UPDATE inbound SET processed_at = ?, error = ? WHERE id = ?", [iso(at), error[:1000], ident]
            )

    # -- retention -------------------------------------------------------------------------------

    def delete_published_before(self, cutoff: datetime, batch: int = 5000) -> int:
        """The retention window: delete mentions published before ``cutoff`` with what was derived from them.

        Authors left with nothing said go too, and people left with no author. Alert history stays (it holds no
        more than the alert said). Works in batches so the daemon's other
        jobs and the web app are never locked out for long.
        """
        deleted = 0
        while True:
            keys = [
                row[0]
                for row in self.db.execute(
                    "SELECT key FROM mentions WHERE published_at < ? LIMIT ?", [iso(cutoff), batch]
                ).fetchall()
            ]
            if not keys:
                break
            with self.db.atomic():
                deleted += delete_mentions(self.db, keys, with_alerts=False)["mentions"]
        if deleted:
            self.people.prune_silent()
        return deleted

    def maintain(self, retention_cutoff: datetime | None) -> dict[str, int]:
        """The maintenance job: the retention window, then the query planner's statistics and a WAL checkpoint."""
        deleted = self.delete_published_before(retention_cutoff) if retention_cutoff else 0
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

    # -- daemon ----------------------------------------------------------------------------------

    def beat(self, at: datetime) -> None:
        """Record the loop's heartbeat (read by the health check)."""
        with self.db.atomic():
            self.db.table("daemon").upsert({"name": "heartbeat", "value": iso(at), "updated_at": iso(at)}, pk="name")

    def heartbeat(self) -> datetime | None:
        row = self.db.execute("SELECT value FROM daemon WHERE name = 'heartbeat'").fetchone()
        return parse_time(row[0]) if row else None

    def record_job(self, name: str, seconds: float, ok: bool, at: datetime) -> None:
        """The last run of a daemon job (duration, success), for /metrics."""
        value = json.dumps({"seconds": round(seconds, 6), "ok": ok, "at": iso(at)})
        with self.db.atomic():
            self.db.table("daemon").upsert({"name": f"job:{name}", "value": value, "updated_at": iso(at)}, pk="name")

    def jobs(self) -> dict[str, dict[str, Any]]:
        rows = self.db.execute("SELECT name, value FROM daemon WHERE name LIKE 'job:%'").fetchall()
        return {name.removeprefix("job:"): json.loads(value) for name, value in rows}
