"""Conversations: each stored mention's state (new, assigned, reopened, answered, ignored), what triage settled
for it, who answered it, its audit trail, and the members away. The one query every reader of conversations
shares is `Conversations.query` (the dashboard's `Board` reads through it too).

`Conversations` shares the store's connection (``store.conversations``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from listener.model import OPEN_STATES, Author, Conversation, Mention
from storage.times import iso, parse_time
from storage.writes import writing


class Conversations:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- reading ---------------------------------------------------------------------------------

    def query(
        self,
        where: str,
        params: Sequence[Any],
        order: str = "m.published_at",
        limit: int = -1,
        offset: int = 0,
        index: str = "",
    ) -> list[Conversation]:
        """Mentions with author, tags and state: the one query every reader of conversations shares. ``index``
        names the conversations index to read by (``INDEXED BY``, and ``CROSS JOIN`` so the conversations stay the
        outer loop), where the planner's statistics mislead it: it would walk a million mentions by date and look
        each up in the index."""
        rows = self.db.execute(
            f"""
            SELECT m.*, c.state, c.state_reason, c.answered_at, c.response_seconds, c.assignee, c.priority, c.team,
                   c.target_minutes, c.warn_at, c.due_at, c.follows_key, c.answered_by, c.breach_handed_on,
                   c.acknowledged_at, c.acknowledged_by,
                   a.platform_id AS a_id, a.handle AS a_handle, a.display_name AS a_name, a.reach AS a_reach,
                   a.verified AS a_verified, t.needs_answer, COALESCE(sc.label, t.sentiment) AS sentiment,
                   t.language, t.topics, json_extract(t.extra, '$.topic_sentiment') AS topic_sentiment,
                   json_extract(t.extra, '$.kind') AS kind
            FROM conversations c {f"INDEXED BY {index} CROSS" if index else ""}
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
        return [self._row(dict(zip(names, row, strict=True))) for row in rows.fetchall()]

    def get(self, key: str) -> Conversation | None:
        """One mention's conversation, or None for an unknown key."""
        found = self.query("c.key = ?", [key])
        return found[0] if found else None

    def open_between(self, published_before: datetime, published_after: datetime) -> list[Conversation]:
        """Open mentions (not answered, not ignored) published in the window, oldest first."""
        return self.query(
            f"c.state IN ({','.join('?' * len(OPEN_STATES))}) AND m.published_at <= ? AND m.published_at > ?",
            [*OPEN_STATES, iso(published_before), iso(published_after)],
        )

    def due(self, now: datetime, due_after: datetime) -> list[Conversation]:
        """Open mentions whose warning time has come, due after ``due_after``, most urgent first."""
        return self.query(
            f"c.state IN ({','.join('?' * len(OPEN_STATES))}) AND c.warn_at <= ? AND c.due_at > ?",
            [*OPEN_STATES, iso(now), iso(due_after)],
            order="c.due_at",
        )

    def between(self, start: datetime, end: datetime) -> list[Conversation]:
        """Every mention published in (start, end], whatever its state, oldest first."""
        return self.query("m.published_at > ? AND m.published_at <= ?", [iso(start), iso(end)])

    def negative_between(self, start: datetime, end: datetime, open_only: bool = False) -> list[Conversation]:
        """The negative mentions (a person's correction first) published in (start, end], oldest first; with
        ``open_only`` only those still waiting for an answer. What `between` holds, filtered in SQL."""
        where = "m.published_at > ? AND m.published_at <= ? AND COALESCE(sc.label, t.sentiment) = 'negative'"
        params: list[Any] = [iso(start), iso(end)]
        if open_only:
            where += f" AND c.state IN ({','.join('?' * len(OPEN_STATES))})"
            params += OPEN_STATES
        return self.query(where, params)

    def count_between(self, start: datetime, end: datetime) -> int:
        """How many conversations `between` would return, counted in SQL."""
        row = self.db.execute(
            "SELECT count(*) FROM conversations c JOIN mentions m ON m.key = c.key "
            "JOIN authors a ON a.key = m.author_key WHERE m.published_at > ? AND m.published_at <= ?",
            [iso(start), iso(end)],
        ).fetchone()
        return int(row[0])

    def sentiment_counts(self, start: datetime, end: datetime) -> tuple[int, int, datetime | None]:
        """Of the mentions `between` would return, those with a sentiment (a person's correction first): how many,
        how many negative, and when the first of them was published (None for none). Counted in SQL, from the
        mentions alone: every stored mention has its conversation and its author (`storage.mentions.Mentions.save_poll`
        writes them together, `storage.people.delete_mentions` deletes them together)."""
        row = self.db.execute(
            """
            SELECT count(*), sum(s = 'negative'), min(published_at) FROM (
                SELECT m.published_at, COALESCE(sc.label, t.sentiment) AS s FROM mentions m
                LEFT JOIN mention_tags t ON t.key = m.key LEFT JOIN sentiment_corrections sc ON sc.key = m.key
                WHERE m.published_at > ? AND m.published_at <= ?
            ) WHERE s IS NOT NULL AND s != ''
            """,
            [iso(start), iso(end)],
        ).fetchone()
        return int(row[0]), int(row[1] or 0), datetime.fromisoformat(row[2]) if row[2] else None

    def open_counts(self, now: datetime) -> tuple[int, int]:
        """Open mentions, and how many of them are past their deadline."""
        states = ",".join("?" * len(OPEN_STATES))
        row = self.db.execute(
            f"SELECT count(*), sum(due_at IS NOT NULL AND due_at <= ?) FROM conversations WHERE state IN ({states})",
            [iso(now), *OPEN_STATES],
        ).fetchone()
        return int(row[0]), int(row[1] or 0)

    @staticmethod
    def _row(row: Mapping[str, Any]) -> Conversation:
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
            place=row["place"] or "",
            facts=json.loads(row.get("facts") or "{}"),
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

    # -- ingest: new mentions and the brand replies that answer them ----------------------------

    def start(self, keys: Sequence[str], now: str) -> None:
        """Every newly stored mention starts as a new conversation (inside the poll's transaction)."""
        self.db.table("conversations").insert_all(
            ({"key": key, "state": "new", "updated_at": now} for key in keys), pk="key", ignore=True
        )

    def apply_answers(self, mention_keys: Sequence[str], reply_keys: Sequence[str], now: str) -> int:
        """Mark open mentions answered by the earliest brand reply that answers them.

        A holding reply (passaparola's out-of-hours acknowledgement) answers nothing: the customer still waits for a
        person. A reply answers a mention when it replies to it directly, or when it is a later brand post in the
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
                WHERE b.holding = 0
                UNION
                SELECT m.key, m.published_at, b.key, b.published_at
                FROM new_m JOIN mentions m ON m.key = new_m.key JOIN authors a ON a.key = m.author_key
                JOIN brand_replies b ON b.platform = m.platform AND b.thread_id = m.thread_id
                WHERE m.thread_id != '' AND b.to_author_id IN (a.platform_id, '*') AND b.published_at >= m.published_at
                  AND b.holding = 0
                UNION
                SELECT m.key, m.published_at, b.key, b.published_at
                FROM new_b JOIN brand_replies b ON b.key = new_b.key
                JOIN mentions m ON m.platform = b.platform AND m.platform_id = b.in_reply_to
                WHERE b.holding = 0
                UNION
                SELECT m.key, m.published_at, b.key, b.published_at
                FROM new_b JOIN brand_replies b ON b.key = new_b.key
                JOIN mentions m ON m.platform = b.platform AND m.thread_id = b.thread_id
                JOIN authors a ON a.key = m.author_key
                WHERE b.thread_id != '' AND b.to_author_id IN (a.platform_id, '*') AND b.published_at >= m.published_at
                  AND b.holding = 0
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

    def close_removed(self, keys: Sequence[str], now: str) -> int:
        """Mentions the platform deleted: an open one is closed as ignored (nobody can answer it any more); what was
        stored, and an answered one's answer, stay as they were."""
        if not keys:
            return 0
        rows = self.db.execute(
            "SELECT key FROM conversations WHERE key IN (SELECT value FROM json_each(?)) "
            "AND state IN ('new', 'assigned', 'reopened')",
            [json.dumps(list(keys))],
        ).fetchall()
        for (key,) in rows:
            self.db.execute(
                "UPDATE conversations SET state = 'ignored', state_reason = 'deleted on the platform', updated_at = ? "
                "WHERE key = ?",
                [now, key],
            )
            self._event(key, now, "ignored", "", "deleted on the platform")
        return len(rows)

    # -- triage ----------------------------------------------------------------------------------

    def untriaged(self, limit: int = 1000) -> list[Conversation]:
        """Stored mentions triage has not settled yet, oldest first, each with the answered mention it follows up.

        A follow-up is a later mention by the same author in the same thread after we answered them there. The
        thread's mentions are read by their index, then their conversations (``CROSS JOIN`` keeps that order): the
        planner would otherwise walk every answered conversation, seconds at a million mentions.
        """
        # By the partial index of the untriaged: ordered by publication, the planner would walk every mention.
        found = self.query(
            "c.triaged_at IS NULL", [], order="m.published_at, m.key", limit=limit, index="conversations_untriaged"
        )
        if not found:
            return []
        follows = dict(
            self.db.execute(
                """
                SELECT m.key, (SELECT p.key FROM mentions p INDEXED BY idx_mentions_platform_thread_id
                               CROSS JOIN conversations pc ON pc.key = p.key
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
        with writing(self.db):
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
        return self.query(
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
        """author key -> the member who answered that author last, since ``since`` (`author_answerers`, m021)."""
        rows = self.db.execute(
            "SELECT author_key, member FROM author_answerers "
            "WHERE author_key IN (SELECT value FROM json_each(?)) AND answered_at >= ?",
            [json.dumps(sorted(set(author_keys))), iso(since)],
        )
        return dict(rows.fetchall())

    def assign(self, moves: Iterable[tuple[str, str, str, bool]], at: datetime) -> int:
        """Apply (key, member, reason, breach) moves: a member takes the item, or "" puts it back in the queue."""
        now = iso(at)
        count = 0
        with writing(self.db):
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

    def _require(self, key: str) -> Conversation:
        found = self.get(key)
        if found is None:
            raise KeyError(key)
        return found

    def mark_answered(
        self,
        key: str,
        by: str,
        at: datetime,
        answered_at: datetime | None = None,
        answer_key: str = "",
        detail: str = "marked by hand",
    ) -> Conversation:
        """The mention was answered by ``by``: a person says so (channels with no reply signal: imports, intake,
        phone), or passaparola posted their reply (``answer_key``, the brand reply it stored).

        Raises `KeyError` for an unknown mention; an already answered one keeps its first answer.
        """
        with writing(self.db):
            current = self._require(key)
            if current.state != "answered":
                when = answered_at or at
                seconds = max((when - current.mention.published_at).total_seconds(), 0)
                self.db.execute(
                    "UPDATE conversations SET state = 'answered', answered_at = ?, answered_by = ?, "
                    "response_seconds = ?, answer_key = ?, updated_at = ? WHERE key = ?",
                    [iso(when), by, seconds, answer_key, iso(at), key],
                )
                self._event(key, iso(at), "answered", by, detail)
        return self._require(key)

    def mark_ignored(self, key: str, reason: str, by: str, at: datetime) -> Conversation:
        """Close a mention without an answer, with the reason (spam, not for us...). `KeyError` if unknown."""
        with writing(self.db):
            self._require(key)
            self.db.execute(
                "UPDATE conversations SET state = 'ignored', state_reason = ?, updated_at = ? WHERE key = ?",
                [reason, iso(at), key],
            )
            self._event(key, iso(at), "ignored", by, reason)
        return self._require(key)

    def acknowledge(self, key: str, by: str, at: datetime) -> Conversation:
        """Someone has taken charge of a breach: its escalation ladder stops. `KeyError` if unknown."""
        with writing(self.db):
            self._require(key)
            self.db.execute(
                "UPDATE conversations SET acknowledged_at = COALESCE(acknowledged_at, ?), "
                "acknowledged_by = COALESCE(NULLIF(acknowledged_by, ''), ?), updated_at = ? WHERE key = ?",
                [iso(at), by, iso(at), key],
            )
            self._event(key, iso(at), "acknowledged", by, "")
        return self._require(key)

    def set_away(self, member: str, away: bool, by: str, at: datetime) -> None:
        with writing(self.db):
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

    def log(self, key: str, now: str, event: str, member: str, detail: str) -> None:
        """Add one line to a mention's audit trail (inside the caller's transaction)."""
        self._event(key, now, event, member, detail)

    def _event(self, key: str, now: str, event: str, member: str, detail: str) -> None:
        self.db.execute(
            "INSERT INTO conversation_events (key, at, event, member, detail) VALUES (?, ?, ?, ?, ?)",
            [key, now, event, member, detail[:500]],
        )
