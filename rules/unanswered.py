"""`unanswered`: a mention still without an answer past the first-response target is a breach.

No answer is an answer: the customer, and everyone watching, sees it. The alert's key is the mention's,
so one breach is told once however often the rule runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

from listener.model import Conversation
from notifiers.alert import Alert
from rules.base import StoreView

SNIPPET_CHARS = 280


def describe(conversation: Conversation, now: datetime) -> str:
    """Plain text (never HTML): who said what, where, how long ago, and the link."""
    m = conversation.mention
    age = int((now - m.published_at).total_seconds() // 60)
    text = m.text if len(m.text) <= SNIPPET_CHARS else m.text[: SNIPPET_CHARS - 1] + "…"
    name = f" ({m.author.display_name})" if m.author.display_name else ""
    lines = [f"@{m.author.handle}{name} on {m.platform}, {age} min ago:", f"“{text}”"]
    if m.url:
        lines.append(m.url)
    return "\n".join(lines)


@dataclass
class Unanswered:
    """Alerts on each open mention older than ``target_minutes``, looking back ``lookback_hours``."""

    kind: ClassVar[str] = "unanswered"
    target_minutes: int = 60
    lookback_hours: int = 24
    route: str = "care"

    def evaluate(self, view: StoreView, now: datetime) -> Iterator[Alert]:
        target = timedelta(minutes=self.target_minutes)
        breached_before = now - target
        window_start = breached_before - timedelta(hours=self.lookback_hours)
        for conversation in view.open_conversations(breached_before, window_start):
            mention = conversation.mention
            if mention.tags.get("needs_answer") == 0:
                continue
            late = int((now - mention.published_at - target).total_seconds() // 60)
            yield Alert(
                key=f"unanswered:{mention.key}",
                kind=self.kind,
                title=f"No answer after {self.target_minutes} min (+{late} min): @{mention.author.handle} "
                f"on {mention.platform}",
                body=describe(conversation, now),
                level="warning",
                route=self.route,
                mentions=(mention.key,),
            )
