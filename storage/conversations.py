"""Conversations: each stored mention's state (new, assigned, reopened, answered, ignored), what triage settled
for it, who answered it, its audit trail, and the members away. The one query every reader of conversations
shares is `Conversations.query` (the dashboard's `Board` reads through it too).

`Conversations` shares the store's connection (``store.conversations``).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlite_utils import Database

from listener.model import OPEN_STATES, Author, Conversation, Mention
from storage.times import iso, parse_time
from storage.writes import put_rows, writing

HOUR = timedelta(hours=1)
#: What is open: the one test of it every query below shares (the states of `listener.model.OPEN_STATES`).
OPEN = f"c.state IN ({','.join('?' * len(OPEN_STATES))})"
#: The settled open ones, written out as the partial indexes of m022 are (`conversations_held`, `_waiting`).
WAITING = f"c.state IN ({', '.join(repr(s) for s in OPEN_STATES)}) AND c.triaged_at IS NOT NULL"
#: Each stored mention with its reading (a person's correction first): what the rules count, live or by the hour.
READINGS = """
    SELECT m.published_at, COALESCE(sc.label, t.sentiment) AS s FROM mentions m
    LEFT JOIN mention_tags t ON t.key = m.key LEFT JOIN sentiment_corrections sc ON sc.key = m.key
    WHERE {where}
"""
IN_HOURS = "m.published_at >= ? AND m.published_at < ?"


def _hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _untold(template: str) -> tuple[str, list[str]]:
    """SQL true while the alert keyed ``template`` (``{key}``: the conversation's) is not in the outbox yet."""
    before, _, after = template.partition("{key}")
    return "NOT EXISTS (SELECT 1 FROM outbox o WHERE o.key = ? || c.key || ?)", [before, after]


class Conversations:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._reads: dict[str, tuple[str, int, datetime, list[str]]] = {}

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

    def due(
        self, now: datetime, due_after: datetime, untold: Sequence[tuple[str, int | None, bool]] | None = None
    ) -> list[Conversation]:
        """Open mentions whose warning time has come, due after ``due_after``, most urgent first.

        With ``untold``, only those that still owe an alert the outbox does not hold (#23: the outbox keeps one row
        per key, so the others' alerts would be dropped there): each ``(key, minutes, unacknowledged)`` names an
        alert by its key (``{key}`` is the mention's), told before the deadline (``minutes`` None) or from
        ``minutes`` past it, and, with ``unacknowledged``, only while nobody acknowledged the breach."""
        where = f"{OPEN} AND c.warn_at <= ? AND c.due_at > ?"
        params: list[Any] = [*OPEN_STATES, iso(now), iso(due_after)]
        if untold is not None:
            owed: list[str] = []
            for template, minutes, unacknowledged in untold:
                missing, keys = _untold(template)
                when = "c.due_at > ?" if minutes is None else "c.due_at <= ?"
                at = now if minutes is None else now - timedelta(minutes=minutes)
                still = " AND NULLIF(c.acknowledged_at, '') IS NULL" if unacknowledged else ""
                owed.append(f"({when}{still} AND {missing})")
                params += [iso(at), *keys]
            where += f" AND ({' OR '.join(owed) or '0'})"
        return self.query(where, params, order="c.due_at")

    def between(self, start: datetime, end: datetime) -> list[Conversation]:
        """Every mention published in (start, end], whatever its state, oldest first."""
        return self.query("m.published_at > ? AND m.published_at <= ?", [iso(start), iso(end)])

    def negative_between(
        self,
        start: datetime,
        end: datetime,
        open_only: bool = False,
        min_reach: int | None = None,
        authors: Iterable[str] = (),
        untold: str = "",
        only: tuple[Collection[str], Collection[str], datetime] | None = None,
    ) -> list[Conversation]:
        """The negative mentions (a person's correction first) published in (start, end], oldest first; with
        ``open_only`` only those still waiting for an answer. What `between` holds, filtered in SQL.

        With ``min_reach``, only those by an author with that many followers or one of ``authors`` (keys); with
        ``untold`` (an alert key, ``{key}`` the mention's), only those whose alert the outbox does not hold yet;
        with ``only`` (mention keys, author keys, a time), only those mentions, those by these authors and those
        published after that time (read by their indexes: what changed since a rule's last cycle, `marked`)."""
        where = "m.published_at > ? AND m.published_at <= ? AND COALESCE(sc.label, t.sentiment) = 'negative'"
        params: list[Any] = [iso(start), iso(end)]
        index = ""
        if only is not None:
            keys, authors_changed, after = only
            # each part by its own index: the author's mentions by author, never the window's by date
            parts = [
                "SELECT value FROM json_each(:keys)",
                "SELECT key FROM mentions WHERE published_at > :after AND published_at <= :end",
            ]
            if authors_changed:
                parts.append(
                    "SELECT key FROM mentions INDEXED BY idx_mentions_author_key WHERE author_key IN "
                    "(SELECT value FROM json_each(:authors)) AND published_at > :start AND published_at <= :end"
                )
            picked = self.db.execute(
                " UNION ".join(parts),
                {
                    "keys": json.dumps(sorted(set(keys))),
                    "authors": json.dumps(sorted(set(authors_changed))),
                    "start": iso(start),
                    "end": iso(end),
                    "after": iso(max(after, start)),
                },
            ).fetchall()
            where += " AND c.key IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(sorted(key for (key,) in picked)))
            index = "conversations_key_state"
        if open_only:
            where += f" AND {OPEN}"
            params += OPEN_STATES
        if min_reach is not None:
            where += " AND (COALESCE(a.reach, 0) >= ? OR m.author_key IN (SELECT value FROM json_each(?)))"
            params += [min_reach, json.dumps(sorted(set(authors)))]
        if untold:
            missing, untold_keys = _untold(untold)
            where += f" AND {missing}"
            params += untold_keys
        # ties in time by key: the same order whichever index reads them (a cycle's changes, or the window)
        return self.query(where, params, order="m.published_at, m.key", index=index)

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
        writes them together, `storage.people.delete_mentions` deletes them together).

        A window of whole hours adds up the hours' counts kept in ``rule_hours`` (`hour_counts`, m022) and counts
        only its two partial hours live (#23: weeks of history, every minute)."""
        first_hour, last_hour = _hour(start) + HOUR, _hour(end)
        if first_hour >= last_hour:
            return self._sentiment("m.published_at > ? AND m.published_at <= ?", [iso(start), iso(end)])
        head = self._sentiment("m.published_at > ? AND m.published_at < ?", [iso(start), iso(first_hour)])
        hours = self.hour_counts(first_hour, last_hour)
        tail = self._sentiment("m.published_at >= ? AND m.published_at <= ?", [iso(last_hour), iso(end)])
        scored = head[0] + sum(n for _, n, _ in hours.values()) + tail[0]
        negative = head[1] + sum(n for _, _, n in hours.values()) + tail[1]
        first = head[2]
        if first is None:
            hour = next((h for h in sorted(hours) if hours[h][1]), None)
            if hour is not None:
                found = self.db.execute(
                    f"SELECT min(published_at) FROM ({READINGS.format(where=IN_HOURS)}) "
                    "WHERE s IS NOT NULL AND s != ''",
                    [iso(hour), iso(hour + HOUR)],
                ).fetchone()[0]
                first = datetime.fromisoformat(found)
            else:
                first = tail[2]
        return scored, negative, first

    def _sentiment(self, where: str, params: Sequence[Any]) -> tuple[int, int, datetime | None]:
        row = self.db.execute(
            f"SELECT count(*), sum(s = 'negative'), min(published_at) FROM ({READINGS.format(where=where)}) "
            "WHERE s IS NOT NULL AND s != ''",
            list(params),
        ).fetchone()
        return int(row[0]), int(row[1] or 0), datetime.fromisoformat(row[2]) if row[2] else None

    def hour_counts(self, first: datetime, last: datetime) -> dict[datetime, tuple[int, int, int]]:
        """Per UTC hour from ``first`` up to ``last`` (whole hours, ``last`` excluded): the mentions published in it,
        how many have a sentiment (a person's correction first), how many are negative.

        Kept in ``rule_hours`` (m022): storage's triggers drop an hour's row when a mention of it is stored, moved or
        deleted, or its reading or correction changes, so an hour without a row (never counted, or changed since)
        is counted here from the mentions, under the write lock (no write lands between the count and its row),
        and kept. Stored times are UTC to the second (`storage.times.iso`): an hour is the first 13 characters."""
        count = int((last - first) / HOUR)
        wanted = [first + HOUR * i for i in range(count)]
        if not wanted:
            return {}
        span = [iso(first)[:13], iso(last)[:13]]
        query = "SELECT hour, mentions, scored, negative FROM rule_hours WHERE hour >= ? AND hour < ?"
        kept = {row[0]: tuple(row[1:]) for row in self.db.execute(query, span).fetchall()}
        if any(iso(h)[:13] not in kept for h in wanted):
            with writing(self.db):
                kept = {row[0]: tuple(row[1:]) for row in self.db.execute(query, span).fetchall()}
                missing = [h for h in wanted if iso(h)[:13] not in kept]
                if missing:
                    low, high = missing[0], missing[-1] + HOUR
                    fresh: dict[str, tuple[int, int, int]] = {iso(h)[:13]: (0, 0, 0) for h in wanted if low <= h < high}
                    rows = self.db.execute(
                        "SELECT substr(published_at, 1, 13), count(*), sum(s IS NOT NULL AND s != ''), "
                        f"sum(s = 'negative') FROM ({READINGS.format(where=IN_HOURS)}) "
                        "GROUP BY 1",
                        [iso(low), iso(high)],
                    ).fetchall()
                    fresh.update({hour: (int(n), int(s or 0), int(neg or 0)) for hour, n, s, neg in rows})
                    self.db.conn.executemany(
                        "INSERT INTO rule_hours (hour, mentions, scored, negative) VALUES (?, ?, ?, ?) "
                        "ON CONFLICT (hour) DO UPDATE SET mentions = excluded.mentions, scored = excluded.scored, "
                        "negative = excluded.negative",
                        [(hour, *counts) for hour, counts in fresh.items()],
                    )
                    kept.update(fresh)
        found: dict[datetime, tuple[int, int, int]] = {}
        for h in wanted:
            n, s, neg = kept[iso(h)[:13]]
            found[h] = (int(n), int(s), int(neg))
        return found

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

    # -- what a rule read last: its state and the marks written since (m022) ----------------------

    def mark_seq(self) -> int:
        """The last mark written (``rule_marks``, m022): a rule's cycle reads up to it, the next one from it."""
        return int(self.db.execute("SELECT COALESCE(max(seq), 0) FROM rule_marks").fetchone()[0])

    def marked(self, after: int, upto: int) -> tuple[set[str], set[str]]:
        """The mention keys and author keys marked in (after, upto]: written since a rule's cycle read them."""
        keys: set[str] = set()
        authors: set[str] = set()
        for key, author in self.db.execute(
            "SELECT key, author FROM rule_marks WHERE seq > ? AND seq <= ?", [after, upto]
        ).fetchall():
            if key:
                keys.add(key)
            if author:
                authors.add(author)
        return keys, authors

    def rule_state(self, rule: str) -> tuple[str, int, datetime, list[str]] | None:
        """What ``rule``'s last committed cycle read: (its settings, the mark it read up to, its time, the authors it
        saw as tiered); None before its first."""
        row = self.db.execute("SELECT settings, seq, at, seen FROM rule_state WHERE rule = ?", [rule]).fetchone()
        return (row[0], int(row[1]), datetime.fromisoformat(row[2]), json.loads(row[3])) if row else None

    def save_rule_state(self, rule: str, settings: str, seq: int, at: datetime, seen: Sequence[str]) -> None:
        """Keep what ``rule``'s cycle read (after its alerts were queued); drop the marks every rule has read."""
        with writing(self.db):
            self.db.execute(
                "INSERT INTO rule_state (rule, settings, seq, at, seen) VALUES (?, ?, ?, ?, ?) ON CONFLICT (rule) DO "
                "UPDATE SET settings = excluded.settings, seq = excluded.seq, at = excluded.at, seen = excluded.seen",
                [rule, settings, seq, iso(at), json.dumps(sorted(seen))],
            )
            self.db.execute("DELETE FROM rule_marks WHERE seq <= (SELECT min(seq) FROM rule_state)")

    def read_by(self, rule: str, settings: str, seq: int, at: datetime, seen: Sequence[str]) -> None:
        """``rule``'s cycle read up to mark ``seq`` at ``at``: kept by `commit_reads` once its alerts are queued."""
        self._reads[rule] = (settings, seq, at, list(seen))

    def commit_reads(self, rules: Collection[str]) -> None:
        """Keep what these rules' cycles read (their alerts are queued); a rule that failed is read whole again."""
        for rule in rules:
            if rule in self._reads:
                self.save_rule_state(rule, *self._reads.pop(rule))

    def forget_rules(self, keep: Collection[str], upto: int) -> None:
        """Rules no longer run lose their state; with none left, the marks up to ``upto`` go (nobody reads them)."""
        with writing(self.db):
            self.db.execute(
                "DELETE FROM rule_state WHERE rule NOT IN (SELECT value FROM json_each(?))", [json.dumps(sorted(keep))]
            )
            if not self.db.execute("SELECT 1 FROM rule_state LIMIT 1").fetchone():
                self.db.execute("DELETE FROM rule_marks WHERE seq <= ?", [upto])

    # -- ingest: new mentions and the brand replies that answer them ----------------------------

    def start(self, keys: Sequence[str], now: str) -> None:
        """Every newly stored mention starts as a new conversation (inside the poll's transaction)."""
        put_rows(
            self.db,
            "conversations",
            ({"key": key, "state": "new", "updated_at": now} for key in keys),
            "key",
            ignore=True,
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

    def open_items(
        self,
        takers: Sequence[tuple[str, Collection[str], Collection[str]]] | None = None,
        spoken: Collection[str] = (),
        returning_since: datetime | None = None,
    ) -> list[Conversation]:
        """Every settled conversation still waiting for an answer, most urgent first.

        With ``takers`` (name, skills, languages of the members who may take an item now), only those someone holds
        and the unassigned ones one of them could take (`rules.triage.assign`): with no team or one of a taker's
        skills, in no language of ``spoken`` (every member's) or one of the taker's, or by an author a taker
        answered since ``returning_since``. A narrowing only (#23): triage still decides each one. Each part is read
        by its index (m022): the items held, the waiting ones of the takers' teams, the waiting ones of the authors
        they answered; never every open conversation."""
        settled = f"{OPEN} AND c.triaged_at IS NOT NULL"
        if takers is None:
            return self.query(settled, list(OPEN_STATES), order="c.due_at, m.published_at")
        held = self.query(
            f"{WAITING} AND COALESCE(c.assignee, '') != ''", [], order="c.due_at", index="conversations_held"
        )
        found = {c.mention.key: c for c in held}
        could: list[str] = []
        params: list[Any] = []
        for _, skills, languages in takers:
            could.append(
                "((COALESCE(c.team, '') = '' OR c.team IN (SELECT value FROM json_each(?))) AND "
                "COALESCE(t.language NOT IN (SELECT value FROM json_each(?)) "
                "OR t.language IN (SELECT value FROM json_each(?)), 1))"
            )
            params += [json.dumps(sorted(skills)), json.dumps(sorted(spoken)), json.dumps(sorted(languages))]
        if could:
            teams = sorted({"", *(team for _, skills, _ in takers for team in skills)})
            for c in self.query(
                f"{WAITING} AND COALESCE(c.assignee, '') = '' AND COALESCE(c.team, '') IN "
                f"(SELECT value FROM json_each(?)) AND ({' OR '.join(could)})",
                [json.dumps(teams), *params],
                order="c.due_at",
                index="conversations_waiting",
            ):
                found.setdefault(c.mention.key, c)
        answered = self.answered_by([name for name, _, _ in takers], returning_since) if returning_since else set()
        if answered:
            for c in self.query(
                f"m.author_key IN (SELECT value FROM json_each(?)) AND {settled} AND COALESCE(c.assignee, '') = ''",
                [json.dumps(sorted(answered)), *OPEN_STATES],
            ):
                found.setdefault(c.mention.key, c)
        # most urgent first, as `assign` takes them
        return sorted(
            found.values(), key=lambda c: (c.due_at or c.mention.published_at, c.mention.published_at, c.mention.key)
        )

    def workloads(self, members: Iterable[str] | None = None) -> dict[str, int]:
        """Open items per assignee; with ``members``, of those alone (looked up by assignee: what they hold, not
        every conversation ever assigned)."""
        states = ",".join("?" * len(OPEN_STATES))
        if members is not None:
            rows = self.db.execute(
                f"SELECT assignee, count(*) FROM conversations WHERE assignee IN (SELECT value FROM json_each(?)) "
                f"AND state IN ({states}) AND assignee != '' GROUP BY assignee",
                [json.dumps(sorted(set(members))), *OPEN_STATES],
            )
            return dict(rows.fetchall())
        rows = self.db.execute(
            f"SELECT assignee, count(*) FROM conversations WHERE state IN ({states}) AND assignee != '' "
            "GROUP BY assignee",
            list(OPEN_STATES),
        )
        return dict(rows.fetchall())

    def answered_by(self, members: Iterable[str], since: datetime) -> set[str]:
        """The authors whose last answer since ``since`` came from one of ``members`` (`last_answerers` turned
        round: a returning author goes to them)."""
        rows = self.db.execute(
            "SELECT author_key FROM author_answerers WHERE member IN (SELECT value FROM json_each(?)) "
            "AND answered_at >= ?",
            [json.dumps(sorted(set(members))), iso(since)],
        )
        return {key for (key,) in rows.fetchall()}

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
