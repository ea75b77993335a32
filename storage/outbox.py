"""The outbox: alerts queued once by key, delivered, held, folded into summaries and retried per target.

An alert reaches each target of its route at most once: a partly delivered alert is retried only for the targets
that do not have it yet. `Outbox` shares the store's connection (``store.outbox``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlite_utils import Database

from notifiers.alert import Alert, TargetOutcome
from storage.times import iso, parse_time
from storage.writes import writing


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A queued alert; ``reached`` names the targets (URLs of its route) that have it already."""

    alert: Alert
    attempts: int
    held_reason: str = ""
    reached: frozenset[str] = frozenset()


class Outbox:
    def __init__(self, db: Database) -> None:
        self.db = db

    def enqueue(self, alerts: Iterable[Alert], at: datetime) -> int:
        """Queue alerts; an alert whose key was ever queued is ignored. Returns how many are new."""
        now = iso(at)
        with writing(self.db):
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

    def due(self, at: datetime, limit: int = 100) -> list[OutboxItem]:
        """Unsent alerts whose next attempt has come, oldest first, each with the targets it already reached."""
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
        with writing(self.db):
            self._record_targets(key, iso(at), targets)
            self.db.execute(
                "UPDATE outbox SET sent_at = ?, attempts = attempts + 1, last_attempt_at = ? WHERE key = ?",
                [iso(at), iso(at), key],
            )

    def mark_reached(self, key: str, at: datetime, targets: Sequence[TargetOutcome]) -> None:
        """Some targets have the alert and the others were not tried yet: keep who has it, count no attempt."""
        with writing(self.db):
            self._record_targets(key, iso(at), targets)

    def mark_failed(
        self, key: str, at: datetime, error: str, retry_at: datetime, targets: Sequence[TargetOutcome] = ()
    ) -> None:
        """Retry the alert at ``retry_at``; the ``targets`` this attempt reached are kept and not sent to again."""
        with writing(self.db):
            self._record_targets(key, iso(at), targets)
            self.db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_attempt_at = ?, last_error = ?, "
                "next_attempt_at = ? WHERE key = ?",
                [iso(at), error[:1000], iso(retry_at), key],
            )

    def hold(self, key: str, until: datetime, reason: str) -> None:
        """Keep a queued alert back until ``until`` (quiet hours, cooldown, rate cap); no attempt is counted."""
        with writing(self.db):
            self.db.execute(
                "UPDATE outbox SET next_attempt_at = ?, held_reason = ? WHERE key = ?", [iso(until), reason, key]
            )

    def fold(self, keys: Sequence[str], summary: Alert, at: datetime) -> None:
        """Queue one summary for held alerts and close them as folded into it, in one transaction."""
        with writing(self.db):
            self.enqueue([summary], at)
            self.db.execute(
                "UPDATE outbox SET sent_at = ?, folded_into = ? WHERE key IN (SELECT value FROM json_each(?))",
                [iso(at), summary.key, json.dumps(list(keys))],
            )

    # -- cooldowns, rate caps, counts ------------------------------------------------------------

    def last_alert_at(self, kind: str, route: str) -> datetime | None:
        """When an alert of this kind was last queued for this route (cooldowns)."""
        row = self.db.execute("SELECT max(created_at) FROM outbox WHERE kind = ? AND route = ?", [kind, route])
        return parse_time(row.fetchone()[0])

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

    def pending(self) -> int:
        """Alerts not sent yet (held ones included): the digest and /metrics show the backlog."""
        return int(self.db.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0])

    def failing(self) -> tuple[dict[str, int], dict[str, int]]:
        """Alerts still unsent after a failed attempt: per route, and per target that has not received them."""
        routes = self.db.execute(
            "SELECT coalesce(route, ''), count(*) FROM outbox WHERE sent_at IS NULL AND attempts > 0 GROUP BY 1"
        ).fetchall()
        targets = self.db.execute(
            "SELECT t.target, count(*) FROM outbox_targets t JOIN outbox o ON o.key = t.alert_key "
            "WHERE t.sent_at IS NULL AND t.attempts > 0 AND o.sent_at IS NULL GROUP BY t.target"
        ).fetchall()
        return {str(r): int(n) for r, n in routes}, {str(t): int(n) for t, n in targets}
