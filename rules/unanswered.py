"""`unanswered`: no answer is an answer. Warn before the first-response target, tell the breach, escalate.

Deadlines come from triage (`rules.triage`): business time, per channel and priority, the next-response
target for follow-ups. Each alert's key is the mention's, so a warning, a breach and each escalation step
are told once however often the rule runs; the escalation ladder climbs until someone acknowledges
(`passaparola alerts ack`), answers or ignores the mention.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
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
    shown = m.author.display_name and m.author.display_name != m.author.handle and m.author.has_handle
    name = f" ({m.author.display_name})" if shown else ""
    lines = [f"{m.author.shown}{name} on {m.platform}, {age} min ago:", f"“{text}”"]
    if m.url:
        lines.append(m.url)
    return "\n".join(lines)


def _handling(c: Conversation) -> str:
    owner = f"assigned to {c.assignee}" if c.assignee else "unassigned"
    team = f", team {c.team}" if c.team else ""
    due = c.due_at.strftime("%Y-%m-%d %H:%M UTC") if c.due_at else "?"
    return f"Priority {c.priority}{team}; {owner}; due {due}."


@dataclass
class EscalationStep:
    """Tell ``route`` when a breach is still unacknowledged ``after_minutes`` past the deadline."""

    after_minutes: int
    route: str


@dataclass
class Unanswered:
    """SLA warnings, breaches and the escalation ladder for open mentions due in the last ``lookback_hours``."""

    kind: ClassVar[str] = "unanswered"
    lookback_hours: int = 24
    route: str = "care"
    warn: bool = True
    escalation: list[EscalationStep] = field(default_factory=list)

    def untold(self) -> list[tuple[str, int | None, bool]]:
        """The alerts this rule tells about a mention, by key (``{key}``: the mention's): a warning before the deadline,
        the breach at it, each escalation step from its minutes past it while unacknowledged (`Conversations.due`)."""
        steps = [(f"sla_escalation:{{key}}:{n}", s.after_minutes, True) for n, s in enumerate(self.escalation, 1)]
        warning: list[tuple[str, int | None, bool]] = [("sla_warning:{key}", None, False)] if self.warn else []
        return [*warning, ("sla_breach:{key}", 0, False), *steps]

    def evaluate(self, view: StoreView, now: datetime) -> Iterator[Alert]:
        # Only the mentions that still owe an alert the outbox has not queued (it keeps one per key, so the others'
        # would be dropped there): the work grows with the deadlines crossed, not with the open mentions (#23).
        for c in view.conversations.due(now, now - timedelta(hours=self.lookback_hours), self.untold()):
            if c.due_at is None or c.warn_at is None:
                continue
            mention = c.mention
            handle = f"{mention.author.shown} on {mention.platform}"
            body = f"{describe(c, now)}\n{_handling(c)}"
            follow = "next response" if c.follows_key else "first response"
            if now < c.due_at:
                if self.warn:
                    left = max(int((c.due_at - now).total_seconds() // 60), 0)
                    yield Alert(
                        key=f"sla_warning:{mention.key}",
                        kind="sla_warning",
                        title=f"{left} min left to answer {handle} ({follow}, target {c.target_minutes} min)",
                        body=body,
                        level="warning",
                        route=self.route,
                        mentions=(mention.key,),
                    )
                continue
            late = int((now - c.due_at).total_seconds() // 60)
            yield Alert(
                key=f"sla_breach:{mention.key}",
                kind="sla_breach",
                title=f"No answer after {c.target_minutes} min (+{late} min): {handle}",
                body=body,
                level="warning",
                route=self.route,
                mentions=(mention.key,),
            )
            if c.acknowledged_at is not None:
                continue
            for number, step in enumerate(self.escalation, 1):
                if now >= c.due_at + timedelta(minutes=step.after_minutes):
                    yield Alert(
                        key=f"sla_escalation:{mention.key}:{number}",
                        kind="sla_escalation",
                        title=f"Escalation {number}: still no answer {late} min past the deadline: {handle}",
                        body=f"{body}\nAcknowledge: passaparola alerts ack {mention.key} --by NAME",
                        level="failure",
                        route=step.route,
                        mentions=(mention.key,),
                    )
