"""Source health and the daemon's pulse: each source's cursor, successes and failures, the loop's heartbeat and the
last run of each job. `status`, the health check and /metrics read it here.

`Health` shares the store's connection (``store.health``); a poll's success is written by `Mentions.save_poll`
inside the poll's own transaction.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from listener.model import SourceHealth
from storage.times import iso, parse_time
from storage.writes import writing


class Health:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- sources ---------------------------------------------------------------------------------

    def cursor(self, source: str) -> Mapping[str, Any] | None:
        """Where a source's next poll resumes (None before its first success, or for a source with no cursor)."""
        row = self.db.execute("SELECT cursor FROM sources WHERE name = ?", [source]).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def record_success(
        self, source: str, kind: str, cursor: Mapping[str, Any] | None, details: Mapping[str, Any], new: int, now: str
    ) -> None:
        """A poll worked: keep its cursor and details, clear the failures. Called inside the poll's transaction."""
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
        with writing(self.db):
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
        return self.of(source).consecutive_failures

    def of(self, source: str) -> SourceHealth:
        """One source's health; a source never polled has an empty one."""
        row = self.db.execute("SELECT * FROM sources WHERE name = ?", [source]).fetchone()
        if row is None:
            return SourceHealth(name=source, kind="")
        return self._health(
            dict(zip([d[0] for d in self.db.execute("SELECT * FROM sources LIMIT 0").description], row, strict=True))
        )

    def sources(self) -> list[SourceHealth]:
        """Every polled source's health, by name."""
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

    # -- daemon ----------------------------------------------------------------------------------

    def beat(self, at: datetime) -> None:
        """Record the loop's heartbeat (read by the health check)."""
        with writing(self.db):
            self.db.table("daemon").upsert({"name": "heartbeat", "value": iso(at), "updated_at": iso(at)}, pk="name")

    def heartbeat(self) -> datetime | None:
        """The loop's last beat (None before the daemon first ran): stale means the daemon is stuck or down."""
        row = self.db.execute("SELECT value FROM daemon WHERE name = 'heartbeat'").fetchone()
        return parse_time(row[0]) if row else None

    def record_job(self, name: str, seconds: float, ok: bool, at: datetime) -> None:
        """The last run of a daemon job (duration, success), for /metrics."""
        value = json.dumps({"seconds": round(seconds, 6), "ok": ok, "at": iso(at)})
        with writing(self.db):
            self.db.table("daemon").upsert({"name": f"job:{name}", "value": value, "updated_at": iso(at)}, pk="name")

    def jobs(self) -> dict[str, dict[str, Any]]:
        """Job name -> its last run (seconds, ok, at), for /metrics."""
        rows = self.db.execute("SELECT name, value FROM daemon WHERE name LIKE 'job:%'").fetchall()
        return {name.removeprefix("job:"): json.loads(value) for name, value in rows}
