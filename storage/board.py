"""What the dashboard and the JSON API read: the inbox with its filters and full-text search, a mention's thread
and author, the cockpit's series, workloads and recent alerts. Every query is bounded by an index or a time
window, so a page stays fast with a million stored mentions (`make bench` measures it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, Literal

from sqlite_utils import Database

from listener.model import OPEN_STATES, Conversation
from storage.times import iso, parse_time
from storage.writes import writing_if_free

ConversationQuery = Callable[..., list[Conversation]]

#: What the inbox's state filter accepts: "open" is every state still waiting for an answer.
INBOX_STATES = ("open", *OPEN_STATES, "answered", "ignored", "all")
UNASSIGNED = "-"
#: The open states as SQL literals (code constants): SQLite then uses the partial index `conversations_open`
#: (m013), which a bound ``IN (?, ?, ?)`` keeps it from choosing.
OPEN_SQL = "c.state IN (" + ", ".join(f"'{state}'" for state in OPEN_STATES) + ")"
#: A conversation whose first-response row no longer changes with the clock: any not open. (An answer with no time
#: recorded and a deadline is within the SLA until the deadline: its rows carry the deadline, compared when read.)
#: `Board.response_tallies` keeps these rows per day (m023); the open ones it counts each time.
SETTLED_SQL = f"NOT {OPEN_SQL}"
#: How long a page waits for the write lock to keep the days it counted; past this it counts them only.
KEEP_WAIT_MS = 50
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
#: The groups of the first-response figures, as `rules.triage.figures` makes them.
RESPONSE_DIMENSIONS = ("all", "channel", "team", "member")
#: What the first-response figures group a mention by, as `rules.triage` does: no team or no member is "-".
_TEAM_SQL = "COALESCE(NULLIF({0}.team, ''), '-')"
_MEMBER_SQL = "COALESCE(NULLIF({0}.answered_by, ''), NULLIF({0}.assignee, ''), '-')"
#: A follow-up's sentiment as a number (`rules.triage.SENTIMENT_VALUE`); NULL when it has none of these.
_SENTIMENT_VALUE = (
    "CASE COALESCE({0}c.label, {0}t.sentiment) WHEN 'negative' THEN -1 WHEN 'neutral' THEN 0 WHEN 'positive' THEN 1 END"
)
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


@dataclass(slots=True)
class ResponseTally:
    """What one group's first-response figures (`rules.triage.Figures`) are made of, as SQL counts them.

    ``seconds`` is the answered response times as a histogram, (seconds, how many) fastest first: the median
    and the 90th percentile are read from it without a list of every answer."""

    needing_answer: int = 0
    answered: int = 0
    open: int = 0
    within_sla: int = 0
    breached_open: int = 0
    seconds: list[tuple[float, int]] = field(default_factory=list)
    change_total: int = 0  # the follow-ups' sentiment changes, summed
    follow_ups: int = 0

    def add(self, counts: Sequence[int], seconds: float | None) -> None:
        """Count one row of `Board.response_tallies`' query: (mentions, open, within SLA, breached), answered ones
        when they have a response time."""
        mentions, still_open, within, breached = (int(v or 0) for v in counts)
        self.needing_answer += mentions
        self.open += still_open
        self.within_sla += within
        self.breached_open += breached
        if seconds is not None:
            self.answered += mentions
            self.seconds.append((seconds, mentions))

    def settle(self) -> ResponseTally:
        """The histogram sorted and merged (one entry per value), once every row is added."""
        merged: dict[float, int] = {}
        for value, count in self.seconds:
            merged[value] = merged.get(value, 0) + count
        self.seconds = sorted(merged.items())
        return self


@dataclass(frozen=True, slots=True)
class ResponseTallies:
    """`Board.response_tallies`: per (dimension, value), and per local day."""

    groups: dict[tuple[str, str], ResponseTally]
    days: dict[str, ResponseTally]


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


def _exact(moment: datetime) -> str:
    """``moment`` in UTC to the microsecond: compared as text with a stored time (to the second), it sorts as the
    datetimes do, because "+" sorts before "." and the digits; `iso` would round a deadline's last second away."""
    return moment.astimezone(UTC).isoformat()


def offset_spans(zone: tzinfo, start: datetime, end: datetime) -> list[tuple[datetime, int]]:
    """``zone``'s UTC offsets (seconds) from ``start`` to ``end``: (from when, offset), the first from ``start``.

    A change is found to the second (transitions are hours apart, so an hourly probe sees each), which is as
    precise as the stored times: SQL then reads a stored time's local date as ``date(published_at, offset)``."""

    def offset(at: int) -> int:
        found = datetime.fromtimestamp(at, zone).utcoffset()
        return int(found.total_seconds()) if found is not None else 0

    first, last = int(start.timestamp()), int(end.timestamp()) + 1
    spans = [(datetime.fromtimestamp(first, UTC), offset(first))]
    at = first
    while at < last:
        step = min(at + 3600, last)
        if offset(step) != spans[-1][1]:
            low, high = at, step  # offset(low) is the current one, offset(high) the next
            while high - low > 1:
                middle = (low + high) // 2
                low, high = (middle, high) if offset(middle) == spans[-1][1] else (low, middle)
            spans.append((datetime.fromtimestamp(high, UTC), offset(high)))
        at = step
    return spans


def _local_day(zone: tzinfo, start: datetime, end: datetime, params: dict[str, Any]) -> str:
    """SQL for the local date in ``zone`` of a mention published between ``start`` and ``end``: its UTC offset
    there (`offset_spans`) added to ``m.published_at``. Binds the offsets and their changes into ``params``."""
    spans = offset_spans(zone, start, end)
    for n, (_, offset) in enumerate(spans):
        params[f"offset{n}"] = f"{offset:+d} seconds"
    cases = []
    for n, (changes_at, _) in enumerate(spans[1:]):  # before the next offset starts, this one
        params[f"change{n}"] = iso(changes_at)
        cases.append(f"WHEN m.published_at < :change{n} THEN date(m.published_at, :offset{n})")
    last = f"date(m.published_at, :offset{len(spans) - 1})"
    return f"CASE {' '.join(cases)} ELSE {last} END" if cases else last


class Board:
    """The web app's queries over the store's connection; they write only what they keep of their own counts (the
    first-response rows of whole days, `response_tallies`)."""

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
        self,
        f: InboxFilter,
        limit: int = 50,
        offset: int = 0,
        leave_out: Sequence[str] = (),
        cap: int | None = None,
    ) -> tuple[list[Conversation], int]:
        """One page of conversations matching ``f``, most urgent first (`URGENCY_ORDER`), and the total.

        ``leave_out`` keys (the mentions an incident row stands for) are not listed, and not in the total. With
        ``cap``, a search (``f.q``) stops counting past ``cap`` matches: a total of ``cap + 1`` means "more than
        ``cap``" (counting every match of a common word costs more than the page itself)."""
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
        joins += self._tag_joins(where, "c")
        count = f"SELECT count(*) FROM conversations c{joins} WHERE {where}"
        cap = cap if f.q else None  # only a search is capped
        if cap is not None:
            count = f"SELECT count(*) FROM (SELECT 1 FROM conversations c{joins} WHERE {where} LIMIT {int(cap) + 1})"
        total = int(self.db.execute(count, params).fetchone()[0])
        if f.state == "open":
            page = self._conversations(where, params, order=URGENCY_ORDER, limit=limit, offset=offset, index=index)
            return page, total
        if total > DENSE or (cap is not None and total > cap):
            # most rows match: walk the date index and stop at the page, rather than sort them all
            for term in ("c.state = ?", "m.rowid IN"):
                where = where.replace(term, "+" + term)
            return self._by_date(where, params, limit, offset, bool(f.channel)), total
        return self._conversations(where, params, order="m.published_at DESC", limit=limit, offset=offset), total

    @staticmethod
    def _tag_joins(where: str, on: str) -> str:
        """The joins of the tags and the corrections, when ``where`` reads them (``t.``, ``sc.``)."""
        joins = ""
        if re.search(r"\bt\.", where):
            joins += f" LEFT JOIN mention_tags t ON t.key = {on}.key"
        if re.search(r"\bsc\.", where):
            joins += f" LEFT JOIN sentiment_corrections sc ON sc.key = {on}.key"
        return joins

    def _by_date(self, where: str, params: list[Any], limit: int, offset: int, channel: bool) -> list[Conversation]:
        """A page of the many matching ``where``, newest first: the keys first, walking the date index (of the
        ``channel`` when the filter names one, m016) with nothing but what the filter reads (m016's indexes hold
        it), then the page's rows by key. A deep page (``state=all&page=2000``) then skips its offset in the
        indexes instead of reading every row before it.

        Equal times are ordered by key, as the date indexes hold them, so the pages follow each other without a
        row missing or shown twice."""
        if limit == 0:
            return []
        order = "m.published_at DESC, m.key DESC"
        index = "mentions_channel_published" if channel else "mentions_published_key"
        joins = " JOIN conversations c ON c.key = m.key" + self._tag_joins(where, "m")
        keys = [
            row[0]
            for row in self.db.execute(
                f"SELECT m.key FROM mentions m INDEXED BY {index}{joins} WHERE {where} ORDER BY {order} "
                f"LIMIT {int(limit)} OFFSET {int(offset)}",
                params,
            ).fetchall()
        ]
        if not keys:
            return []
        return self._conversations("m.key IN (SELECT value FROM json_each(?))", [json.dumps(keys)], order=order)

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
        return self.complaints(since, since, limit)[0]

    def complaints(
        self, since: datetime, wider: datetime, limit: int = 6
    ) -> tuple[list[tuple[str, dict[str, int]]], list[tuple[str, dict[str, int]]]]:
        """`complaint_topics` since ``since`` and since ``wider`` (earlier: the cockpit's whole weeks), from one
        read of the wider window: each day's count is split at ``since``, so both lists are what two reads give."""
        # The window's mentions by date first (CROSS JOIN keeps that order), then only the tags that have a topic
        # (m020's partial index: a mention with none has no complaint), not every stored mention's tags.
        rows = self.db.execute(
            "SELECT j.value, substr(m.published_at, 1, 10), m.published_at > :since, count(*) FROM mentions m "
            "CROSS JOIN mention_tags t INDEXED BY mention_tags_topics ON t.key = m.key "
            "LEFT JOIN sentiment_corrections sc ON sc.key = m.key, json_each(t.topics) j "
            "WHERE m.published_at > :wider AND t.topics IS NOT NULL AND t.topics != '[]' "
            "AND COALESCE(json_extract(t.extra, '$.topic_sentiment.\"' || j.value || '\"'), sc.label, t.sentiment) "
            "= 'negative' GROUP BY 1, 2, 3",
            {"since": iso(since), "wider": iso(min(since, wider))},
        ).fetchall()
        recent: dict[str, dict[str, int]] = {}
        every: dict[str, dict[str, int]] = {}
        for topic, day, after, count in rows:
            if after:
                recent.setdefault(topic, {})[day] = count
            days = every.setdefault(topic, {})
            days[day] = days.get(day, 0) + count

        def top(topics: dict[str, dict[str, int]]) -> list[tuple[str, dict[str, int]]]:
            return sorted(topics.items(), key=lambda item: (-sum(item[1].values()), item[0]))[:limit]

        return top(recent), top(every)

    def response_tallies(
        self,
        since: datetime,
        until: datetime,
        now: datetime,
        dimensions: Sequence[str] = RESPONSE_DIMENSIONS,
        days: tuple[datetime, tzinfo] | None = None,
    ) -> ResponseTallies:
        """First-response tallies of the mentions published in (since, until]: what `rules.triage.figures` counts
        over `Conversations.between`, counted by SQL instead of reading every conversation of it into Python.

        ``groups``: per (dimension, value) of ``dimensions`` ("all", "channel", "team", "member"), sorted.
        ``days`` (with ``days=(day_start, zone)``): the group "all" of each day of ``zone``'s calendar from
        ``day_start`` on ("2026-03-29"), a mention's day being its local date as
        ``published_at.astimezone(zone).date()`` has it, DST changes included (`offset_spans`).

        SQL groups the mentions by channel, team, member, day, response time and the follow-up they are (a few rows
        per combination; at most one per answer); each dimension's groups add those up. The whole UTC days inside
        the window read their settled conversations' rows from ``response_days`` (m023: counted once, dropped by
        triggers when a write could change them); the window's ends and the conversations still open are counted
        from the mentions each time. `Conversations.between` also joins each mention's author, which every stored
        mention has (an author is saved with its mentions and deleted only with the last of them): left out here,
        as the inbox's counts leave it out."""
        zone = days[1] if days is not None else UTC
        first_day = days[0].astimezone(zone).date().isoformat() if days is not None else None
        begin = datetime.combine(since.astimezone(UTC).date() + timedelta(days=1), time(), UTC)
        end = datetime.combine(until.astimezone(UTC).date(), time(), UTC)
        if begin < end:  # whole days inside the window: their settled rows are kept
            rows = self._tally_rows(zone, now, since, begin, low=">", high="<")
            rows += self._tally_rows(zone, now, begin, end, only="open")
            rows += self._tally_rows(zone, now, end, until, high="<=")
            rows += self._settled_rows(zone, now, begin, end)
        else:
            rows = self._tally_rows(zone, now, since, until, low=">", high="<=")
        window = (iso(since), iso(until))
        groups: dict[tuple[str, str], ResponseTally] = {}
        per_day: dict[str, ResponseTally] = {}

        def of(channel: str, team: str, member: str) -> Iterator[tuple[tuple[str, str], ResponseTally]]:
            for group in (("all", "all"), ("channel", channel), ("team", team), ("member", member)):
                if group[0] in dimensions:
                    yield group, groups.setdefault(group, ResponseTally())

        counted: set[tuple[str, str]] = set()
        exact_now = _exact(now)
        for channel, team, member, local_day, ignored, seconds, follow, pending, *counts in rows:
            if pending is not None and exact_now <= pending:  # answered, no time recorded: within until the deadline
                counts[2] = int(counts[2] or 0) + int(counts[0])
            if not ignored:  # `rules.triage.figures` counts no ignored mention, but reads it as a follow-up
                for group, tally in of(channel, team, member):
                    counted.add(group)
                    tally.add(counts, seconds)
                if first_day is not None and local_day >= first_day:
                    per_day.setdefault(local_day, ResponseTally()).add(counts, seconds)
            if follow is not None:  # the change is credited to the groups of the mention followed up, if in the window
                *followed, moved, published = json.loads(follow)
                if window[0] < published <= window[1]:
                    for _, tally in of(*followed):
                        tally.change_total += int(moved) * int(counts[0])
                        tally.follow_ups += int(counts[0])
        return ResponseTallies(
            groups={group: groups[group].settle() for group in sorted(counted)},
            days={local_day: tally.settle() for local_day, tally in sorted(per_day.items())},
        )

    def _tally_rows(
        self,
        zone: tzinfo,
        now: datetime,
        start: datetime,
        stop: datetime,
        low: str = ">=",
        high: str = "<",
        only: Literal["open", "settled"] | None = None,
    ) -> list[list[Any]]:
        """`response_tallies`' grouped rows of the mentions published between ``start`` and ``stop`` (compared with
        ``low`` and ``high``): all of them, or ``only`` the open conversations (found by their state) or the settled
        ones. A row: channel, team, member, local day, ignored, response time, the follow-up (the
        followed mention's channel, team, member, sentiment change and publication), the deadline of an answer with
        no time recorded, then how many, open, within the SLA, breached."""
        params: dict[str, Any] = {"start": iso(start), "stop": iso(stop), "now": _exact(now)}
        local = _local_day(zone, start, stop, params)
        answered = "c.state = 'answered' AND c.response_seconds IS NOT NULL"
        due, done = "NULLIF(c.due_at, '')", "NULLIF(c.answered_at, '')"
        change = f"({_SENTIMENT_VALUE.format('fs')}) - ({_SENTIMENT_VALUE.format('bs')})"
        if only == "open":  # few, by the state index, instead of every mention of the days
            source = "conversations c INDEXED BY idx_conversations_state CROSS JOIN mentions m ON m.key = c.key"
            which = f"AND {OPEN_SQL}"
        else:  # the window's mentions from m020's index alone (date, channel, key): their rows are wide
            source = "mentions m INDEXED BY mentions_published_channel JOIN conversations c ON c.key = m.key"
            which = f"AND {SETTLED_SQL}" if only == "settled" else ""
        rows = self.db.execute(
            f"""
            SELECT m.platform, {_TEAM_SQL.format("c")}, {_MEMBER_SQL.format("c")}, {local} AS day,
                   c.state = 'ignored' AS ignored, CASE WHEN {answered} THEN CAST(c.response_seconds AS REAL) END,
                   CASE WHEN c.follows_key != '' THEN (
                       SELECT json_array(bm.platform, {_TEAM_SQL.format("b")}, {_MEMBER_SQL.format("b")}, {change},
                                         bm.published_at)
                       FROM conversations b JOIN mentions bm ON bm.key = b.key
                       LEFT JOIN mention_tags fst ON fst.key = c.key
                       LEFT JOIN sentiment_corrections fsc ON fsc.key = c.key
                       LEFT JOIN mention_tags bst ON bst.key = b.key
                       LEFT JOIN sentiment_corrections bsc ON bsc.key = b.key
                       WHERE b.key = c.follows_key AND {change} IS NOT NULL
                   ) END,
                   CASE WHEN {answered} AND {done} IS NULL THEN {due} END,
                   count(*), sum({OPEN_SQL}), sum({answered} AND ({due} IS NULL OR {done} <= {due})),
                   sum({OPEN_SQL} AND {due} IS NOT NULL AND {due} <= :now)
            FROM {source}
            WHERE m.published_at {low} :start AND m.published_at {high} :stop {which}
            GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
            """,
            params,
        ).fetchall()
        return [list(row) for row in rows]

    def _settled_rows(self, zone: tzinfo, now: datetime, begin: datetime, end: datetime) -> list[list[Any]]:
        """The settled conversations' rows of the UTC days from ``begin`` to ``end`` (midnights): each day's kept
        rows (``response_days``), the days not kept counted now and kept, in one write transaction so that no
        write can fall between the count and the keeping (with another writer holding the lock, counted only)."""
        name = str(zone)
        wanted = [(begin + timedelta(days=n)).date().isoformat() for n in range((end - begin).days)]
        kept = dict(
            self.db.execute(
                "SELECT day, rows FROM response_days WHERE zone = ? AND day >= ? AND day < ?",
                [name, wanted[0], end.date().isoformat()],
            ).fetchall()
        )
        missing = [day for day in wanted if day not in kept]

        def count(day: str) -> list[list[Any]]:
            start = datetime.combine(date.fromisoformat(day), time(), UTC)
            return self._tally_rows(zone, now, start, start + timedelta(days=1), only="settled")

        rows = [row for day in wanted if day in kept for row in json.loads(kept[day])]
        if not missing:
            return rows
        with writing_if_free(self.db, KEEP_WAIT_MS) as locked:
            for day in missing:
                counted = count(day)
                rows += counted
                if locked:
                    self.db.conn.execute(
                        "INSERT OR REPLACE INTO response_days (day, zone, rows) VALUES (?, ?, ?)",
                        [day, name, json.dumps(counted)],
                    )
        return rows

    def workloads(self, now: datetime, day_start: datetime) -> dict[str, Workload]:
        """Per assignee: open items, when the oldest waiting one was published, breaches since ``day_start``.

        Only the open conversations (`conversations_open`) and those due since ``day_start`` (`conversations_due`,
        m020) can count, so those two indexes give the keys: not every conversation that ever had an assignee."""
        rows = self.db.execute(
            f"""
            SELECT c.assignee,
                   sum({OPEN_SQL}),
                   min(CASE WHEN {OPEN_SQL} THEN m.published_at END),
                   sum(c.due_at >= :start AND c.due_at < :now
                       AND ({OPEN_SQL} OR c.answered_at > c.due_at)),
                   sum({OPEN_SQL} AND c.due_at <= :now)
            FROM (SELECT key FROM conversations c INDEXED BY conversations_open
                  WHERE {OPEN_SQL} AND c.triaged_at IS NOT NULL
                  UNION SELECT key FROM conversations INDEXED BY conversations_due WHERE due_at >= :start) w
            JOIN conversations c ON c.key = w.key JOIN mentions m ON m.key = c.key
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
        """Open conversations by SLA state: ok, warning (past the warning time), breached, none (no target). Read
        by the open ones' partial index (m013): on its own, SQLite scans every conversation."""
        row = self.db.execute(
            "SELECT sum(due_at IS NULL), sum(due_at IS NOT NULL AND (warn_at IS NULL OR warn_at > :now) "
            "AND due_at > :now), sum(warn_at <= :now AND due_at > :now), sum(due_at <= :now) "
            "FROM conversations c INDEXED BY conversations_open WHERE " + OPEN_SQL + " AND c.triaged_at IS NOT NULL",
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
