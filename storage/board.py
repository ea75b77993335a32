"""What the dashboard and the JSON API read: the inbox with its filters and full-text search, a mention's thread
and author, the cockpit's series, workloads and recent alerts. Every query is bounded by an index or a time
window, so a page stays fast with a million stored mentions (`make bench` measures it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlite_utils import Database

from listener.model import OPEN_STATES, Conversation
from storage.times import iso, parse_time

ConversationQuery = Callable[..., list[Conversation]]

#: What the inbox's state filter accepts: "open" is every state still waiting for an answer.
INBOX_STATES = ("open", *OPEN_STATES, "answered", "ignored", "all")
UNASSIGNED = "-"
#: The open states as SQL literals (code constants): SQLite then uses the partial index `conversations_open`
#: (m013), which a bound ``IN (?, ?, ?)`` keeps it from choosing.
OPEN_SQL = "c.state IN (" + ", ".join(f"'{state}'" for state in OPEN_STATES) + ")"
#: Past this many matches, a listing by date walks the date index instead of sorting every match.
DENSE = 2000
#: The one SQL definition of "nobody has it": triage leaves the assignee NULL, handing back sets ''.
UNASSIGNED_SQL = "COALESCE(c.assignee, '') = ''"
#: The inbox's urgency: priority first (it already counts negative, reach and VIP), then time left, oldest first.
URGENCY_ORDER = (
    "CASE c.priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 ELSE 2 END, c.due_at IS NULL, c.due_at, m.published_at"
)
#: The alerts whose mentions make an incident: a burst shown as one row of the inbox.
INCIDENT_KINDS = ("negative_spike", "volume_spike")
_FTS_OPERATORS = {"AND", "OR", "NOT", "NEAR"}
_SPIKE_KINDS = ("volume_spike", "negative_spike")


class BoardError(ValueError):
    """A filter the inbox cannot apply; the message names the value and what is accepted."""


@dataclass(frozen=True, slots=True)
class InboxFilter:
    """The inbox's filters; empty strings mean "any". ``assignee`` "-" means unassigned."""

    channel: str = ""
    sentiment: str = ""
    team: str = ""
    assignee: str = ""
    state: str = "open"
    language: str = ""
    vip: bool = False
    q: str = ""
    overdue_at: datetime | None = None  # only items whose deadline passed before this moment
    incident: str = ""  # only the mentions of this spike alert (its key)

    def __post_init__(self) -> None:
        if self.state not in INBOX_STATES:
            raise BoardError(f"state {self.state!r} is not one of {', '.join(INBOX_STATES)}")


@dataclass(frozen=True, slots=True)
class BrandAnswer:
    """A reply by a brand account in a thread: shown in the mention's thread."""

    handle: str
    text: str
    url: str
    published_at: datetime
    in_reply_to: str


@dataclass(frozen=True, slots=True)
class Incident:
    """A burst the inbox shows as one row: the spike alert that found it and its mentions still listed."""

    key: str
    kind: str
    title: str
    raised_at: datetime
    members: list[Conversation]


@dataclass(frozen=True, slots=True)
class Workload:
    member: str
    open: int
    oldest_published_at: datetime | None
    breaches_today: int
    overdue: int = 0


@dataclass(frozen=True, slots=True)
class AlertRow:
    key: str
    kind: str
    level: str
    title: str
    route: str
    created_at: datetime
    sent_at: datetime | None
    held_reason: str
    mentions: tuple[str, ...]


def match_query(text: str) -> str:
    """A user's search words as an FTS5 query that cannot be a syntax error: each word quoted, all required.

    Operators and punctuation (``"``, ``*``, ``(``, ``OR``, ``NEAR``) are dropped, so ``caffè" OR (`` searches
    for "caffè". The empty string means no word was left.
    """
    words = [w for w in re.findall(r"\w+", text) if w not in _FTS_OPERATORS]
    return " ".join(f'"{w}"' for w in words)


class Board:
    """Read-only queries over the store's connection for the web app."""

    def __init__(self, db: Database, conversations: ConversationQuery) -> None:
        self.db = db
        self._conversations = conversations

    # -- inbox -----------------------------------------------------------------------------------

    def _inbox_where(self, f: InboxFilter) -> tuple[str, list[Any]]:
        clauses: list[str] = ["c.triaged_at IS NOT NULL"]
        params: list[Any] = []
        if f.state == "open":
            clauses.append(OPEN_SQL)
        elif f.state != "all":
            clauses.append("c.state = ?")
            params.append(f.state)
        for column, value in (("m.platform", f.channel), ("c.team", f.team), ("t.language", f.language)):
            if value:
                clauses.append(f"{column} = ?")
                params.append(value)
        if f.sentiment:
            clauses.append("COALESCE(sc.label, t.sentiment) = ?")
            params.append(f.sentiment)
        if f.assignee == UNASSIGNED:
            clauses.append(UNASSIGNED_SQL)
        elif f.assignee:
            clauses.append("c.assignee = ?")
            params.append(f.assignee)
        if f.overdue_at is not None:
            clauses.append("c.due_at IS NOT NULL AND c.due_at <= ?")
            params.append(iso(f.overdue_at))
        if f.incident:
            clauses.append("m.key IN (SELECT value FROM json_each((SELECT mentions FROM outbox WHERE key = ?)))")
            params.append(f.incident)
        if f.vip:
            clauses.append(
                "m.author_key IN (SELECT pa.author_key FROM person_authors pa "
                "JOIN advocate_scores s ON s.person_id = pa.person_id WHERE s.tier = 'vip')"
            )
        if f.q:
            query = match_query(f.q)
            if not query:
                clauses.append("0")
            else:
                clauses.append("m.rowid IN (SELECT rowid FROM mentions_fts WHERE mentions_fts MATCH ?)")
                params.append(query)
        return " AND ".join(clauses), params

    def inbox(
        self, f: InboxFilter, limit: int = 50, offset: int = 0, leave_out: Sequence[str] = ()
    ) -> tuple[list[Conversation], int]:
        """One page of conversations matching ``f``, most urgent first (`URGENCY_ORDER`), and the total.

        ``leave_out`` keys (the mentions an incident row stands for) are not listed, and not in the total."""
        if f.q and not match_query(f.q):  # the search had no word in it: nothing matches
            return [], 0
        where, params = self._inbox_where(f)
        if leave_out:
            where += " AND m.key NOT IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(list(leave_out)))
        # The open ones are few: read them by their partial index (m013). SQLite's statistics know 4 states of
        # equal size, so on its own it scans every conversation or walks a filter's index instead.
        index = "conversations_open" if f.state == "open" else ""
        joins = f" INDEXED BY {index}" if index else ""  # the count joins only what the filter reads
        if re.search(r"\bm\.", where):
            joins += " JOIN mentions m ON m.key = c.key"
        if re.search(r"\bt\.", where):
            joins += " LEFT JOIN mention_tags t ON t.key = c.key"
        if re.search(r"\bsc\.", where):
            joins += " LEFT JOIN sentiment_corrections sc ON sc.key = c.key"
        total = int(self.db.execute(f"SELECT count(*) FROM conversations c{joins} WHERE {where}", params).fetchone()[0])
        if f.state == "open":
            page = self._conversations(where, params, order=URGENCY_ORDER, limit=limit, offset=offset, index=index)
            return page, total
        if total > DENSE:  # most rows match: walk the date index and stop at the page, rather than sort them all
            for term in ("c.state = ?", "m.platform = ?", "m.rowid IN"):
                where = where.replace(term, "+" + term)
        return self._conversations(where, params, order="m.published_at DESC", limit=limit, offset=offset), total

    def incidents(self, f: InboxFilter, since: datetime, least: int = 2) -> list[Incident]:
        """Bursts among the mentions ``f`` lists: each spike alert raised since ``since`` with at least ``least``
        of its mentions still listed. A mention belongs to one incident: a negative spike's claims its mentions
        first, then the newest alerts'."""
        alerts = self.db.execute(
            "SELECT key, kind, title, created_at, mentions FROM outbox WHERE kind IN (SELECT value FROM json_each(?)) "
            "AND created_at >= ? AND folded_into IS NULL ORDER BY kind = 'volume_spike', created_at DESC LIMIT 20",
            [json.dumps(INCIDENT_KINDS), iso(since)],
        ).fetchall()
        where, params = self._inbox_where(f)
        claimed: set[str] = set()
        found = []
        for key, kind, title, created_at, mentions in alerts:
            keys = [k for k in json.loads(mentions or "[]") if k not in claimed]
            if len(keys) < least:
                continue
            members = self._conversations(
                f"{where} AND m.key IN (SELECT value FROM json_each(?))",
                [*params, json.dumps(keys)],
                order=URGENCY_ORDER,
            )
            if len(members) >= least:
                claimed.update(c.mention.key for c in members)
                found.append(Incident(key, kind, title or "", datetime.fromisoformat(created_at), members))
        return found

    # -- one mention -----------------------------------------------------------------------------

    def thread(self, c: Conversation, limit: int = 50) -> tuple[list[Conversation], list[BrandAnswer]]:
        """The other mentions of ``c``'s thread and the brand's answers there, oldest first."""
        m = c.mention
        if not m.thread_id:
            return [c], self._answers("platform = ? AND in_reply_to = ?", [m.platform, m.platform_id])
        mentions = self._conversations(
            "m.platform = ? AND m.thread_id = ?", [m.platform, m.thread_id], order="m.published_at", limit=limit
        )
        return mentions, self._answers("platform = ? AND thread_id = ?", [m.platform, m.thread_id], limit)

    def _answers(self, where: str, params: list[Any], limit: int = 50) -> list[BrandAnswer]:
        rows = self.db.execute(
            "SELECT author_handle, text, url, published_at, in_reply_to FROM brand_replies "
            f"WHERE {where} ORDER BY published_at LIMIT {int(limit)}",
            params,
        ).fetchall()
        return [BrandAnswer(r[0] or "", r[1] or "", r[2] or "", datetime.fromisoformat(r[3]), r[4] or "") for r in rows]

    def author_history(self, author_keys: Sequence[str], limit: int = 20) -> list[Conversation]:
        """The latest mentions by these authors (one person's accounts), newest first."""
        return self._conversations(
            "m.author_key IN (SELECT value FROM json_each(?))",
            [json.dumps(list(author_keys))],
            order="m.published_at DESC",
            limit=limit,
        )

    def author_moods(self, author_keys: Sequence[str]) -> list[tuple[str, dict[str, int]]]:
        """Mentions per month by sentiment for these authors: the author card's sentiment over time."""
        rows = self.db.execute(
            "SELECT substr(m.published_at, 1, 7), COALESCE(sc.label, t.sentiment, 'unknown'), count(*) "
            "FROM mentions m LEFT JOIN mention_tags t ON t.key = m.key "
            "LEFT JOIN sentiment_corrections sc ON sc.key = m.key "
            "WHERE m.author_key IN (SELECT value FROM json_each(?)) GROUP BY 1, 2 ORDER BY 1",
            [json.dumps(list(author_keys))],
        ).fetchall()
        months: dict[str, dict[str, int]] = {}
        for month, sentiment, count in rows:
            months.setdefault(month, {})[sentiment] = count
        return list(months.items())

    # -- cockpit ---------------------------------------------------------------------------------

    def timeline(self, since: datetime, until: datetime) -> list[tuple[datetime, dict[str, int]]]:
        """Mentions per hour by sentiment, every hour of the window present (zeros included)."""
        rows = self.db.execute(
            "SELECT substr(m.published_at, 1, 13), COALESCE(sc.label, t.sentiment, 'unknown'), count(*) "
            "FROM mentions m LEFT JOIN mention_tags t ON t.key = m.key "
            "LEFT JOIN sentiment_corrections sc ON sc.key = m.key "
            "WHERE m.published_at > ? AND m.published_at <= ? GROUP BY 1, 2",
            [iso(since), iso(until)],
        ).fetchall()
        counts: dict[str, dict[str, int]] = {}
        for hour, sentiment, count in rows:
            counts.setdefault(hour, {})[sentiment] = count
        start = since.replace(minute=0, second=0, microsecond=0)
        hours = []
        while start <= until:
            hours.append((start, counts.get(iso(start)[:13], {})))
            start += timedelta(hours=1)
        return hours

    def spikes(self, since: datetime) -> list[tuple[datetime, str, str]]:
        """The spike alerts raised since ``since``: (when, kind, title), for marking the chart."""
        rows = self.db.execute(
            "SELECT created_at, kind, title FROM outbox WHERE kind IN (SELECT value FROM json_each(?)) "
            "AND created_at >= ? ORDER BY created_at",
            [json.dumps(_SPIKE_KINDS), iso(since)],
        ).fetchall()
        return [(datetime.fromisoformat(r[0]), r[1], r[2] or "") for r in rows]

    def complaint_topics(self, since: datetime, limit: int = 6) -> list[tuple[str, dict[str, int]]]:
        """What people complained about, per day: the top topics over the window with their daily counts.

        The rule of `rules.analysis.complained_topics`: a topic read negative on its own in a mixed message, else
        every topic of a negative mention."""
        rows = self.db.execute(
            "SELECT j.value, substr(m.published_at, 1, 10), count(*) FROM mentions m "
            "JOIN mention_tags t ON t.key = m.key LEFT JOIN sentiment_corrections sc ON sc.key = m.key, "
            "json_each(COALESCE(t.topics, '[]')) j "
            "WHERE m.published_at > ? AND COALESCE(json_extract(t.extra, '$.topic_sentiment.\"' || j.value || '\"'), "
            "sc.label, t.sentiment) = 'negative' GROUP BY 1, 2",
            [iso(since)],
        ).fetchall()
        topics: dict[str, dict[str, int]] = {}
        for topic, day, count in rows:
            topics.setdefault(topic, {})[day] = count
        ranked = sorted(topics.items(), key=lambda item: (-sum(item[1].values()), item[0]))
        return ranked[:limit]

    def workloads(self, now: datetime, day_start: datetime) -> dict[str, Workload]:
        """Per assignee: open items, when the oldest waiting one was published, breaches since ``day_start``."""
        rows = self.db.execute(
            f"""
            SELECT c.assignee,
                   sum({OPEN_SQL}),
                   min(CASE WHEN {OPEN_SQL} THEN m.published_at END),
                   sum(c.due_at >= :start AND c.due_at < :now
                       AND ({OPEN_SQL} OR c.answered_at > c.due_at)),
                   sum({OPEN_SQL} AND c.due_at <= :now)
            FROM conversations c JOIN mentions m ON m.key = c.key
            WHERE c.triaged_at IS NOT NULL AND COALESCE(c.assignee, '') != ''
              AND ({OPEN_SQL} OR c.due_at >= :start)
            GROUP BY c.assignee
            """,
            {"start": iso(day_start), "now": iso(now)},
        ).fetchall()
        return {r[0]: Workload(r[0], int(r[1] or 0), parse_time(r[2]), int(r[3] or 0), int(r[4] or 0)) for r in rows}

    def alerts(self, since: datetime, limit: int = 50) -> list[AlertRow]:
        """Alerts raised since ``since``, newest first, with whether they went out."""
        rows = self.db.execute(
            "SELECT key, kind, level, title, route, created_at, sent_at, held_reason, mentions FROM outbox "
            f"WHERE created_at >= ? AND folded_into IS NULL ORDER BY created_at DESC LIMIT {int(limit)}",
            [iso(since)],
        ).fetchall()
        return [
            AlertRow(
                key=r[0],
                kind=r[1],
                level=r[2] or "",
                title=r[3] or "",
                route=r[4] or "",
                created_at=datetime.fromisoformat(r[5]),
                sent_at=parse_time(r[6]),
                held_reason=r[7] or "",
                mentions=tuple(json.loads(r[8] or "[]")),
            )
            for r in rows
        ]

    # -- metrics ---------------------------------------------------------------------------------

    def unanswered_by_sla(self, now: datetime) -> dict[str, int]:
        """Open conversations by SLA state: ok, warning (past the warning time), breached, none (no target)."""
        row = self.db.execute(
            "SELECT sum(due_at IS NULL), sum(due_at IS NOT NULL AND (warn_at IS NULL OR warn_at > :now) "
            "AND due_at > :now), sum(warn_at <= :now AND due_at > :now), sum(due_at <= :now) "
            "FROM conversations c WHERE " + OPEN_SQL + " AND c.triaged_at IS NOT NULL",
            {"now": iso(now)},
        ).fetchone()
        return dict(zip(("none", "ok", "warning", "breached"), (int(v or 0) for v in row), strict=True))

    def alerts_sent(self) -> dict[str, int]:
        rows = self.db.execute("SELECT kind, count(*) FROM outbox WHERE sent_at IS NOT NULL GROUP BY kind")
        return {kind: int(count) for kind, count in rows.fetchall()}

    def least_sure(self, since: datetime, limit: int = 10) -> list[dict[str, Any]]:
        """The mentions since ``since`` the model was least sure of (smallest margin between its two likeliest
        sentiments) that nobody has labelled yet: what a person's label teaches the model most. A text repeated
        by many (a burst, a copied complaint) is asked once."""
        rows = self.db.query(
            "SELECT m.key, m.text, m.platform, m.url, m.published_at, a.handle, t.language, t.sentiment, "
            "t.sentiment_probs, MIN(json_extract(t.extra, '$.certainty')) AS certainty FROM mentions m "
            "JOIN mention_tags t ON t.key = m.key LEFT JOIN authors a ON a.key = m.author_key "
            "LEFT JOIN sentiment_corrections sc ON sc.key = m.key "
            "WHERE m.published_at > ? AND sc.key IS NULL AND json_extract(t.extra, '$.certainty') IS NOT NULL "
            "GROUP BY m.text ORDER BY certainty, m.key LIMIT ?",
            [iso(since), limit],
        )
        return [{**r, "sentiment_probs": json.loads(r["sentiment_probs"] or "{}")} for r in rows]
