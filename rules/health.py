"""`source_failing`: a source that failed N polls in a row is an outage someone must fix; so is a source that
stopped reading because its monthly read budget is spent.

The key carries the last success (or the month), so one outage is told once, and the next one again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from notifiers.alert import Alert
from rules.base import StoreView


@dataclass
class SourceFailing:
    """Alerts the ops route when a source has ``after_failures`` consecutive failures."""

    kind: ClassVar[str] = "source_failing"
    after_failures: int = 3
    route: str = "ops"

    def evaluate(self, view: StoreView, now: datetime) -> Iterator[Alert]:
        for health in view.health.sources():
            month = health.details.get("budget_exhausted")
            if month:
                yield Alert(
                    key=f"source_budget:{health.name}:{month}",
                    kind=self.kind,
                    title=f"Source {health.name} stopped reading: its monthly read budget is spent",
                    body=f"{health.details.get('reads_this_month')} posts read in {month} (budget "
                    f"{health.details.get('monthly_read_budget')}, about ${health.details.get('estimated_cost_usd')}). "
                    "It resumes next month; raise monthly_read_budget to resume now.",
                    level="failure",
                    route=self.route,
                )
            if health.consecutive_failures < self.after_failures:
                continue
            since = health.last_success_at.isoformat() if health.last_success_at else "never"
            last_ok = f"last success {since}" if health.last_success_at else "no success yet"
            retry = f"next try {health.next_retry_at.isoformat()}" if health.next_retry_at else ""
            yield Alert(
                key=f"source_failing:{health.name}:{since}",
                kind=self.kind,
                title=f"Source {health.name} is failing ({health.consecutive_failures} polls in a row)",
                body="\n".join(line for line in (f"Last error: {health.last_error}", last_ok, retry) if line),
                level="failure",
                route=self.route,
            )
