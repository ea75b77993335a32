"""Negative talk: a single negative mention worth a look now, and a rise in the share of negative mentions.

Both read the sentiment the pipeline gave each mention, or a person's correction when there is one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar

from notifiers.alert import Alert
from rules.base import StoreView, cooling_down
from rules.spikes import explain_burst
from rules.unanswered import describe

#: Marks (`storage`'s ``rule_marks``) a cycle reads before reading the whole window instead.
MAX_MARKS = 20_000


@dataclass
class NegativeMention:
    """Each new, still unanswered negative mention from an author with at least ``min_reach`` followers, or
    from one of the advocate ``tiers`` whatever their reach (a VIP who turns negative is worth a call)."""

    kind: ClassVar[str] = "negative_mention"
    min_reach: int = 1_000
    tiers: list[str] = field(default_factory=lambda: ["vip"])
    lookback_hours: int = 24
    route: str = "care"

    def evaluate(self, view: StoreView, now: datetime) -> Iterator[Alert]:
        tiered = view.tiered_authors(self.tiers) if self.tiers else {}
        start = now - timedelta(hours=self.lookback_hours)
        authors = sorted(key for key, tier in tiered.items() if tier)
        # Read only the mentions this rule would tell and the outbox does not hold yet (it keeps one alert per key),
        # and, after a cycle of the same settings a little earlier, only those written since (#23): stored, read again,
        # corrected, reopened, by an author whose reach changed or who became one of the tiers, or published after
        # that cycle's time. Anything else was read then, and told if it had to be. Otherwise the whole window.
        conversations = view.conversations
        settings = json.dumps([self.min_reach, sorted(self.tiers), self.lookback_hours])
        seq = conversations.mark_seq()
        state = conversations.rule_state(self.kind)
        only = None
        if (
            state is not None
            and state[0] == settings
            and state[2] <= now
            and now - state[2] <= timedelta(hours=1)
            and seq - state[1] <= MAX_MARKS  # after an import, the window read whole is the cheaper read
        ):
            keys, reached = conversations.marked(state[1], seq)
            only = (keys, reached | (set(authors) - set(state[3])), state[2])
        told = conversations.negative_between(
            start,
            now,
            open_only=True,
            min_reach=self.min_reach,
            authors=authors,
            untold=f"{self.kind}:{{key}}",
            only=only,
        )
        conversations.read_by(self.kind, settings, seq, now, authors)
        for conversation in told:
            mention = conversation.mention
            tier = tiered.get(mention.author.key, "")
            if mention.author.reach < self.min_reach and not tier:
                continue
            by = f"{tier.upper()} {mention.author.shown}" if tier else mention.author.shown
            yield Alert(
                key=f"negative_mention:{mention.key}",
                kind=self.kind,
                title=f"Negative mention by {by} ({mention.author.reach:,} followers) on {mention.platform}",
                body=describe(conversation, now),
                level="warning",
                route=self.route,
                mentions=(mention.key,),
            )


@dataclass
class NegativeSpike:
    """The share of negative mentions in the window is far above its usual share: people are upset about something.

    The usual share is that of the past ``history_weeks`` (at least ``warmup_hours`` and ``min_history``
    scored mentions of it). The window must hold ``min_negative`` negative mentions, and its share must exceed
    both ``factor`` times the usual share and the usual share plus three binomial deviations.
    """

    kind: ClassVar[str] = "negative_spike"
    window_minutes: int = 60
    history_weeks: int = 4
    warmup_hours: int = 24
    min_history: int = 50
    min_negative: int = 5
    factor: float = 2.0
    cooldown_hours: float = 3.0
    ignore_terms: list[str] = field(default_factory=list)
    route: str = "care"

    def evaluate(self, view: StoreView, now: datetime) -> Iterator[Alert]:
        if cooling_down(view, self.kind, self.route, self.cooldown_hours, now):
            return
        start = now - timedelta(minutes=self.window_minutes)
        # Counted in SQL: the history is weeks of mentions; the window's negative ones are read only to tell them.
        history = start - timedelta(weeks=self.history_weeks)
        scored, negatives, first = view.conversations.sentiment_counts(history, start)
        if scored < self.min_history or first is None or (start - first) < timedelta(hours=self.warmup_hours):
            return
        usual = negatives / scored
        in_window, negative_count, _ = view.conversations.sentiment_counts(start, now)
        if negative_count < self.min_negative:
            return
        share = negative_count / in_window
        deviation = math.sqrt(max(usual * (1 - usual), 0.01) / in_window)
        if share < max(self.factor * usual, usual + 3 * deviation):
            return
        negative = view.conversations.negative_between(start, now)
        body = explain_burst(negative, usual * in_window, self.ignore_terms, what="negative mentions")
        yield Alert(
            key=f"negative_spike:{self.route}:{now.strftime('%Y-%m-%dT%H:%M')}",
            kind=self.kind,
            title=f"Negative spike: {share:.0%} of {in_window} mentions negative in {self.window_minutes} min, "
            f"usually {usual:.0%}",
            body=body,
            level="failure",
            route=self.route,
            mentions=tuple(c.mention.key for c in negative[:50]),
        )
