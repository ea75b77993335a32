"""`source_silent`: a source that usually brings mentions has been quiet for much longer than usual (a valley).

A broken query, a feed that moved, a revoked page permission: the poll succeeds and returns nothing, so
`source_failing` never fires. This rule compares the current silence with the source's own rhythm: the 90th
percentile of the gaps between the hours it brought something, over ``baseline_days``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import ClassVar

from notifiers.alert import Alert
from rules.base import StoreView
from rules.triage import percentile


@dataclass
class SourceSilent:
    kind: ClassVar[str] = "source_silent"
    baseline_days: int = 14
    min_active_hours: int = 12  # a source heard in fewer distinct hours has no usual rhythm yet
    factor: float = 3.0
    min_silence_hours: float = 6.0
    route: str = "ops"

    def evaluate(self, view: StoreView, now: datetime) -> Iterator[Alert]:
        health = {h.name: h for h in view.health.sources()}
        activity = view.mentions.source_activity(now - timedelta(days=self.baseline_days))
        for source, (hours, last) in sorted(activity.items()):
            if len(hours) < self.min_active_hours:
                continue
            gaps = [(b - a).total_seconds() / 3600 for a, b in pairwise(sorted(hours))]
            usual = percentile(gaps, 0.9) or 1.0
            limit = max(self.min_silence_hours, self.factor * usual)
            silent = (now - last).total_seconds() / 3600
            if silent <= limit:
                continue
            state = health.get(source)
            polls = (
                f"its polls succeed (last at {state.last_success_at:%Y-%m-%d %H:%M} UTC), so check its query, "
                "feed address or permissions"
                if state is not None and state.last_success_at is not None and state.consecutive_failures == 0
                else "see `passaparola status` for its polls"
            )
            yield Alert(
                key=f"{self.kind}:{source}:{last.isoformat(timespec='seconds')}",
                kind=self.kind,
                title=f"Source {source} silent for {silent:.0f} h (usually at most {usual:.0f} h)",
                body=(
                    f"No new mention from {source} since {last:%Y-%m-%d %H:%M} UTC ({silent:.1f} hours). Over the last "
                    f"{self.baseline_days} days, 90% of its gaps were at most {usual:.1f} h; this rule speaks after "
                    f"{limit:.1f} h. {polls[0].upper()}{polls[1:]}."
                ),
                level="warning",
                route=self.route,
            )
