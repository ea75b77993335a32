"""`volume_spike`: many more mentions than usual for this hour of the week: maybe a crisis.

The baseline is the mean count of the same hour of the week over the past weeks. While fewer than
``min_weeks`` weeks of history exist, it is the mean of every past hour instead; with less than
``warmup_hours`` of history there is no alert at all (a first start is not a spike). The window must also hold
at least ``min_volume`` mentions and ``factor`` times the baseline plus three Poisson deviations, so a quiet brand
does not page anyone for five mentions. One alert per episode: after an alert the rule waits ``cooldown_hours``.
The alert explains itself: top terms, authors, channels, samples, and how many are still unanswered.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar

from listener.model import Conversation
from notifiers.alert import Alert
from rules.base import StoreView, cooling_down

# Words and #hashtags of 4+ letters, split at apostrophes (sull'abbonamento); @handles are authors, not terms.
WORD = re.compile(r"(?<![@\w])#?\w{4,}", re.UNICODE)
# fmt: off
STOPWORDS = frozenset({
    # Italian
    "questo", "questa", "sono", "anche", "dopo", "come", "ancora", "della", "delle", "dello", "degli",
    "nella", "nelle", "perché", "però", "quando", "quanto", "tutto", "tutti", "tutte", "fatto", "fare",
    "avete", "abbiamo", "hanno", "essere", "stato", "stata", "ogni", "molto", "poco", "meno", "proprio",
    "solo", "sempre", "niente", "nessuno", "qualcuno", "mentre", "senza", "sulla", "sulle", "sugli", "alla",
    "alle", "allo", "agli", "dalla", "dalle", "dall", "dell", "sull", "nell", "quell", "quest",
    # English
    "with", "this", "that", "have", "just", "your", "from", "they", "what", "when", "will", "been", "were",
    "about", "there", "their", "would", "could", "should", "than", "then", "them", "into", "only", "also",
    "very", "after", "again", "still", "https", "http",
})
# fmt: on


def top_terms(texts: Sequence[str], exclude: set[str], limit: int = 5) -> list[tuple[str, int]]:
    """The words most mentions share (each counted once per mention), stopwords and ``exclude`` left out."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update({w.lower() for w in WORD.findall(text)} - STOPWORDS - exclude)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]  # ties: alphabetical


def explain_burst(
    window: Sequence[Conversation], expected: float, ignore_terms: Sequence[str] = (), what: str = "mentions"
) -> str:
    """What a burst of mentions is about, in plain text: terms, authors, channels, samples, unanswered.

    ``what`` names what was counted ("negative mentions" for a negative spike)."""
    texts = [c.mention.text for c in window]
    terms = top_terms(texts, exclude={t.lower() for t in ignore_terms})
    authors = Counter(c.mention.author.shown for c in window).most_common(5)
    channels = Counter(c.mention.platform for c in window).most_common()
    unanswered = sum(1 for c in window if c.is_open)
    samples = sorted(window, key=lambda c: -c.mention.author.reach)[:3]
    lines = [
        f"{len(window)} {what} against about {expected:.1f} usual for this hour; {unanswered} still unanswered.",
        "Top terms: " + ", ".join(f"{t} ({n})" for t, n in terms),
        "Most active: " + ", ".join(f"{a} ({n})" for a, n in authors),
        "Channels: " + ", ".join(f"{p} {n}" for p, n in channels),
        "Samples:",
        *(
            f"- {c.mention.author.shown} on {c.mention.platform}: “{c.mention.text[:160]}” {c.mention.url}"
            for c in samples
        ),
    ]
    return "\n".join(lines)


@dataclass
class VolumeSpike:
    """Alerts when the last ``window_minutes`` hold far more mentions than usual for that hour of the week."""

    kind: ClassVar[str] = "volume_spike"
    window_minutes: int = 60
    history_weeks: int = 4
    min_weeks: int = 2
    warmup_hours: int = 24
    min_volume: int = 10
    factor: float = 3.0
    cooldown_hours: float = 3.0
    ignore_terms: list[str] = field(default_factory=list)
    route: str = "care"

    def baseline(self, view: StoreView, now: datetime) -> float | None:
        """Expected mentions in a window like the current one; None while warming up."""
        window = timedelta(minutes=self.window_minutes)
        start = now - window
        since = start - timedelta(weeks=self.history_weeks)
        counts = view.hourly_counts(since, start)
        if not counts:
            return None
        first = min(counts)
        history_hours = (start - first).total_seconds() / 3600
        if history_hours < self.warmup_hours:
            return None
        per_hour = self.window_minutes / 60
        if history_hours >= self.min_weeks * 7 * 24:
            same_hours = [start - timedelta(weeks=w) for w in range(1, self.history_weeks + 1)]
            samples = [counts.get(h.replace(minute=0, second=0, microsecond=0), 0) for h in same_hours if h >= first]
            return per_hour * sum(samples) / len(samples)
        return per_hour * sum(counts.values()) / max(history_hours, 1.0)

    def evaluate(self, view: StoreView, now: datetime) -> Iterator[Alert]:
        if cooling_down(view, self.kind, self.route, self.cooldown_hours, now):
            return
        expected = self.baseline(view, now)
        if expected is None:
            return
        window = view.conversations_between(now - timedelta(minutes=self.window_minutes), now)
        threshold = max(self.min_volume, self.factor * expected + 3 * math.sqrt(expected))
        if len(window) < threshold:
            return
        yield Alert(
            key=f"volume_spike:{self.route}:{now.strftime('%Y-%m-%dT%H:%M')}",
            kind=self.kind,
            title=f"Mention spike: {len(window)} in {self.window_minutes} min, about {expected:.1f} expected",
            body=explain_burst(window, expected, self.ignore_terms),
            level="warning",
            route=self.route,
            mentions=tuple(c.mention.key for c in window[:50]),
        )
