"""Replies written in passaparola: each is its own outbox row, so a reply is posted exactly once.

A row goes ``pending_approval`` → ``queued`` → ``sending`` → ``sent``, or ends ``failed`` (a person must change
something; the text is kept as the draft), ``rejected`` (a supervisor said no, with a comment) or ``copied`` (a
channel with no write API: the person copied it and posted it themselves). ``unknown`` is a send whose outcome never
came back: before it is tried again, the thread is looked up for a reply of ours with the same text. A ``sending``
row whose attempt started long ago is a crash in the middle, and counts as ``unknown`` too.

The idempotency key makes a double submit (two clicks, a retried API call) one row. `Replies` shares the store's
connection (``store.replies``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from listener.model import BrandReply, Mention
from listener.replying import SentReply
from storage.conversations import Conversations
from storage.times import iso, parse_time
from storage.writes import writing

STATES = ("pending_approval", "queued", "sending", "unknown", "sent", "failed", "rejected", "copied")
#: States in which a reply is still on its way: the mention view shows it instead of an empty composer.
UNDER_WAY = ("pending_approval", "queued", "sending", "unknown")


@dataclass(frozen=True, slots=True)
class Reply:
    """One reply and its audit trail: who wrote it, who approved or overrode, what was sent, when, where."""

    id: int
    idempotency_key: str
    key: str  # the mention it answers
    channel: str
    source: str
    kind: str  # reply, or out_of_hours (the holding reply sent outside business hours)
    text: str
    state: str
    written_by: str
    findings: tuple[Mapping[str, str], ...]
    override_by: str
    override_reason: str
    approved_by: str
    approved_at: datetime | None
    reviewed_comment: str
    attempts: int
    attempt_started_at: datetime | None
    next_attempt_at: datetime | None
    problem: str
    error: str
    platform_id: str
    url: str
    cost_usd: float
    sent_at: datetime | None
    created_at: datetime
    updated_at: datetime


class Replies:
    def __init__(self, db: Database, conversations: Conversations, insert_replies: Callable[..., int]) -> None:
        self.db = db
        self.conversations = conversations
        self._insert_replies = insert_replies

    # -- reading ---------------------------------------------------------------------------------

    def get(self, reply_id: int) -> Reply | None:
        rows = self._select("id = ?", [reply_id])
        return rows[0] if rows else None

    def by_idempotency(self, idempotency_key: str) -> Reply | None:
        rows = self._select("idempotency_key = ?", [idempotency_key])
        return rows[0] if rows else None

    def for_mention(self, key: str) -> list[Reply]:
        """Every reply written for one mention, oldest first (the audit the mention view and the export show)."""
        return self._select("key = ?", [key])

    def for_mentions(self, keys: Sequence[str]) -> dict[str, list[Reply]]:
        found: dict[str, list[Reply]] = {}
        for reply in self._select("key IN (SELECT value FROM json_each(?))", [json.dumps(list(keys))]):
            found.setdefault(reply.key, []).append(reply)
        return found

    def recent(self, state: str | None = None, limit: int = 200) -> list[Reply]:
        """The latest ``limit`` replies (in ``state``, if given), oldest first."""
        where, params = ("state = ?", [state]) if state else ("1", [])
        newest = self.db.execute(f"SELECT id FROM replies WHERE {where} ORDER BY id DESC LIMIT ?", [*params, limit])
        ids = [row[0] for row in newest.fetchall()]
        return self._select("id IN (SELECT value FROM json_each(?))", [json.dumps(ids)])

    def awaiting_approval(self) -> list[Reply]:
        """The approval queue, oldest first (the SLA clock of each mention keeps running meanwhile)."""
        return self._select("state = 'pending_approval'", [])

    def due(self, now: datetime, stale_before: datetime, limit: int = 50) -> list[Reply]:
        """Replies to try now: queued or unknown and due, or ``sending`` since before ``stale_before`` (a crash)."""
        return self._select(
            "(state IN ('queued', 'unknown') AND next_attempt_at <= ?) "
            "OR (state = 'sending' AND attempt_started_at < ?)",
            [iso(now), iso(stale_before)],
            limit=limit,
        )

    def spent_usd(self, source: str, month_start: datetime) -> float:
        """What the replies sent through ``source`` cost since ``month_start`` (the write side of the budget)."""
        row = self.db.execute(
            "SELECT COALESCE(sum(cost_usd), 0) FROM replies WHERE source = ? AND state = 'sent' AND sent_at >= ?",
            [source, iso(month_start)],
        ).fetchone()
        return float(row[0])

    def acknowledged_since(self, author_key: str, since: datetime) -> bool:
        """Whether an out-of-hours acknowledgement went to this author since ``since`` (at most one a day)."""
        row = self.db.execute(
            "SELECT 1 FROM replies WHERE author_key = ? AND kind = 'out_of_hours' AND created_at >= ? "
            "AND state NOT IN ('failed', 'rejected') LIMIT 1",
            [author_key, iso(since)],
        ).fetchone()
        return row is not None

    def counts(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT state, count(*) FROM replies GROUP BY state").fetchall())

    # -- writing ---------------------------------------------------------------------------------

    def create(
        self,
        idempotency_key: str,
        mention: Mention,
        text: str,
        state: str,
        written_by: str,
        at: datetime,
        findings: Sequence[Mapping[str, str]] = (),
        override_by: str = "",
        override_reason: str = "",
        kind: str = "reply",
    ) -> tuple[Reply, bool]:
        """Store a new reply, or return the one already stored under ``idempotency_key`` (and False)."""
        if state not in STATES:
            raise ValueError(f"unknown reply state {state!r}")
        now = iso(at)
        with writing(self.db):
            existing = self.by_idempotency(idempotency_key)
            if existing is not None:
                return existing, False
            cursor = self.db.execute(
                """INSERT INTO replies (idempotency_key, key, channel, source, kind, text, state, written_by, findings,
                       override_by, override_reason, next_attempt_at, author_key, created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [
                    idempotency_key,
                    mention.key,
                    mention.platform,
                    mention.source,
                    kind,
                    text,
                    state,
                    written_by,
                    json.dumps([dict(f) for f in findings]),
                    override_by,
                    override_reason,
                    now,
                    mention.author.key,
                    now,
                    now,
                ],
            )
            reply_id = int(cursor.lastrowid or 0)
            detail = {
                "pending_approval": "reply written, waiting for approval",
                "queued": "reply written, sending",
                "copied": "reply copied to post by hand",
            }.get(state, f"reply {state}")
            if override_by:
                detail += f"; house rules overridden by {override_by}: {override_reason}"
            self.conversations.log(
                mention.key, now, f"reply_{kind}" if kind != "reply" else "reply", written_by, detail
            )
        found = self.get(reply_id)
        assert found is not None
        return found, True

    def review(
        self,
        reply_id: int,
        by: str,
        approve: bool,
        text: str,
        comment: str,
        at: datetime,
        override_by: str = "",
        override_reason: str = "",
    ) -> Reply | None:
        """A supervisor approves (the text possibly edited: it is what will be sent) or rejects a pending reply.

        Returns None when the reply was no longer pending (someone else reviewed it first)."""
        now = iso(at)
        with writing(self.db):
            changed = self.db.execute(
                """UPDATE replies SET state = :state, text = :text, approved_by = :by, approved_at = :now,
                       reviewed_comment = :comment, next_attempt_at = :now, updated_at = :now,
                       override_by = CASE WHEN :override_by != '' THEN :override_by ELSE override_by END,
                       override_reason = CASE WHEN :override_by != '' THEN :reason ELSE override_reason END
                   WHERE id = :id AND state = 'pending_approval'""",
                {
                    "state": "queued" if approve else "rejected",
                    "text": text,
                    "by": by,
                    "now": now,
                    "comment": comment,
                    "override_by": override_by,
                    "reason": override_reason,
                    "id": reply_id,
                },
            ).rowcount
            if not changed:
                return None
            reply = self.get(reply_id)
            assert reply is not None
            event = "reply_approved" if approve else "reply_rejected"
            self.conversations.log(reply.key, now, event, by, comment)
        return reply

    def claim(self, reply_id: int, now: datetime, stale_before: datetime) -> tuple[Reply, bool] | None:
        """Take a due reply for one attempt: (the reply, whether its last attempt's outcome is unknown). None when
        it is not due, or someone else holds it: two senders never post the same row."""
        with writing(self.db):
            current = self.get(reply_id)
            if current is None:
                return None
            stale = current.state == "sending" and (current.attempt_started_at or now) < stale_before
            due = current.state in ("queued", "unknown") and (current.next_attempt_at or now) <= now
            if not (stale or due):
                return None
            self.db.execute(
                "UPDATE replies SET state = 'sending', attempts = attempts + 1, attempt_started_at = ?, updated_at = ? "
                "WHERE id = ? AND state = ?",
                [iso(now), iso(now), reply_id, current.state],
            )
            claimed = self.get(reply_id)
            assert claimed is not None
        return claimed, stale or current.state == "unknown"

    def record_sent(
        self,
        reply: Reply,
        sent: SentReply,
        mention: Mention,
        account: str,
        cost_usd: float,
        at: datetime,
        holding: bool = False,
    ) -> Reply:
        """The platform has the reply: store it as the brand's reply at once, in one transaction. The mention is
        answered by the member who wrote it (its SLA stops), and the next poll hearing the post adds nothing.
        A ``holding`` reply (out of hours) is stored as the brand's post but answers nothing."""
        now = iso(at)
        brand = BrandReply(
            platform=mention.platform,
            platform_id=sent.platform_id,
            source=mention.source,
            published_at=sent.published_at,
            author_handle=account,
            in_reply_to=mention.platform_id,
            thread_id=mention.thread_id,
            to_author_id=mention.author.platform_id,
            text=sent.text,
            url=sent.url,
        )
        with writing(self.db):
            self.db.execute(
                "UPDATE replies SET state = 'sent', platform_id = ?, url = ?, sent_at = ?, cost_usd = ?, problem = '', "
                "error = '', updated_at = ? WHERE id = ?",
                [sent.platform_id, sent.url, iso(sent.published_at), cost_usd, now, reply.id],
            )
            self._insert_replies([brand], now, holding=holding)
            if holding:
                self.conversations.log(mention.key, now, "reply_out_of_hours", reply.written_by, f"sent ({brand.key})")
            else:
                self.conversations.mark_answered(
                    mention.key,
                    reply.written_by,
                    at,
                    answered_at=sent.published_at,
                    answer_key=brand.key,
                    detail=f"answered from passaparola ({brand.key})",
                )
        found = self.get(reply.id)
        assert found is not None
        return found

    def record_problem(
        self, reply: Reply, state: str, problem: str, error: str, at: datetime, retry_at: datetime | None = None
    ) -> Reply:
        """An attempt did not post (``queued`` again, or ``failed`` for a person) or may have (``unknown``)."""
        now = iso(at)
        with writing(self.db):
            self.db.execute(
                "UPDATE replies SET state = ?, problem = ?, error = ?, next_attempt_at = ?, updated_at = ? "
                "WHERE id = ?",
                [state, problem, error[:500], iso(retry_at or at), now, reply.id],
            )
            if state == "failed":
                self.conversations.log(reply.key, now, "reply_failed", reply.written_by, f"{problem}: {error}")
        found = self.get(reply.id)
        assert found is not None
        return found

    # -- rows ------------------------------------------------------------------------------------

    def _select(self, where: str, params: Sequence[Any], limit: int = -1) -> list[Reply]:
        rows = self.db.execute(f"SELECT * FROM replies WHERE {where} ORDER BY id LIMIT {int(limit)}", list(params))
        names = [d[0] for d in rows.description]
        return [self._row(dict(zip(names, row, strict=True))) for row in rows.fetchall()]

    @staticmethod
    def _row(row: Mapping[str, Any]) -> Reply:
        return Reply(
            id=row["id"],
            idempotency_key=row["idempotency_key"],
            key=row["key"],
            channel=row["channel"],
            source=row["source"],
            kind=row["kind"],
            text=row["text"],
            state=row["state"],
            written_by=row["written_by"],
            findings=tuple(json.loads(row["findings"] or "[]")),
            override_by=row["override_by"],
            override_reason=row["override_reason"],
            approved_by=row["approved_by"],
            approved_at=parse_time(row["approved_at"]),
            reviewed_comment=row["reviewed_comment"],
            attempts=row["attempts"],
            attempt_started_at=parse_time(row["attempt_started_at"]),
            next_attempt_at=parse_time(row["next_attempt_at"]),
            problem=row["problem"],
            error=row["error"],
            platform_id=row["platform_id"],
            url=row["url"],
            cost_usd=row["cost_usd"],
            sent_at=parse_time(row["sent_at"]),
            created_at=datetime.fromisoformat(row["created_at"]),
            updated_at=datetime.fromisoformat(row["updated_at"]),
        )
