"""`volume_spike`: many more mentions than usual for this hour of the week: maybe a crisis.

The baseline is the mean count of the same hour of the week over the past weeks. While fewer than
``min_weeks`` weeks of history exist, it is the mean of every past hour instead; with less than
``warmup_hours`` of history there is no alert at all (a first start is not a spike). The window must also hold
at least ``min_volume`` mentions and ``factor`` times the baseline plus three Poisson deviations, so a quiet brand
does not page anyone for five mentions. One alert per episode: after an alert the rule waits ``cooldown_hours``.
The alert explains itself: top terms, authors, channels, samples, and how many are still unanswered.

On the first days the history need not be passaparola's own. Where the platform counts a source's query by the
hour (X's recent counts, seven days back), the hours before passaparola first stored a mention of that source are
read from those counts (`storage.counts.PlatformCounts.uncovered`): so a crisis in the first hours after a first
start is a spike when X says the hour is far above usual. From that first stored mention on, passaparola's own
history takes over, hour by hour. The alert says when its baseline came from the platform.

`negative_spike` (`rules.negative`) keeps its warm-up: platforms count posts, not negative posts, so no count says
what share of an hour was negative. Its usual share comes from scored mentions by publication time, and the first
poll's back-fill (X's recent search reaches seven days back) already gives it one once that sample spans its
warm-up: a share can be read from a sample of the posts, a volume cannot.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar, Protocol, runtime_checkable

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


#: How alerts name the platform a baseline's counts came from (a source's kind otherwise).
PLATFORM_NAMES = {"x": "X", "facebook": "Facebook"}


@runtime_checkable
class PlatformHistory(Protocol):
    """The platforms' own hourly counts, as the volume baseline reads them (`storage.counts.PlatformCounts`)."""

    def uncovered(self, since: datetime, until: datetime) -> Mapping[datetime, int]: ...

    def platforms(self) -> list[str]: ...


def platform_history(view: StoreView) -> PlatformHistory | None:
    """The view's platform counts (``store.platform_counts``), or None for a view without them: then the baseline is
    passaparola's own history alone, as before platforms had counts."""
    history = getattr(view, "platform_counts", None)
    return history if isinstance(history, PlatformHistory) else None


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
        found = self._baseline(view, now)
        return found[0] if found else None

    def _baseline(self, view: StoreView, now: datetime) -> tuple[float, str] | None:
        """(expected mentions, a line saying the platform's counts went into it, or ""); None while warming up.

        Each past hour counts the mentions stored for it, plus, for the hours before passaparola's own history of a
        source began, what that source's platform counted beyond them: history reaches as far back as either does.
        """
        window = timedelta(minutes=self.window_minutes)
        start = now - window
        since = start - timedelta(weeks=self.history_weeks)
        counts = dict(view.mentions.hourly_counts(since, start))
        platform = platform_history(view)
        extra = dict(platform.uncovered(since, start)) if platform is not None else {}
        for hour, count in extra.items():
            counts[hour] = counts.get(hour, 0) + count
        if not counts:
            return None
        first = min(counts)
        history_hours = (start - first).total_seconds() / 3600
        if history_hours < self.warmup_hours:
            return None
        per_hour = self.window_minutes / 60
        if history_hours >= self.min_weeks * 7 * 24:
            same_hours = [start - timedelta(weeks=w) for w in range(1, self.history_weeks + 1)]
            used = [h.replace(minute=0, second=0, microsecond=0) for h in same_hours if h >= first]
            expected = per_hour * sum(counts.get(h, 0) for h in used) / len(used)
            from_platform = any(h in extra for h in used)
        else:
            expected = per_hour * sum(counts.values()) / max(history_hours, 1.0)
            from_platform = bool(extra)
        if not from_platform or platform is None:
            return expected, ""
        names = [PLATFORM_NAMES.get(kind, kind) for kind in platform.platforms()]
        days = max(round((max(extra) - min(extra)).total_seconds() / 86400 + 1 / 24), 1)
        source = f"{' and '.join(names)}'s counts" if names else "the platform's own counts"
        return (
            expected,
            f"Baseline from {source} for the past {days} days, where passaparola's own history does not reach yet.",
        )

    def evaluate(self, view: StoreView, now: datetime) -> Iterator[Alert]:
        if cooling_down(view, self.kind, self.route, self.cooldown_hours, now):
            return
        found = self._baseline(view, now)
        if found is None:
            return
        expected, basis = found
        start = now - timedelta(minutes=self.window_minutes)
        threshold = max(self.min_volume, self.factor * expected + 3 * math.sqrt(expected))
        if view.conversations.count_between(start, now) < threshold:  # counted in SQL; read only to tell it
            return
        window = view.conversations.between(start, now)
        body = explain_burst(window, expected, self.ignore_terms)
        if basis:  # right after the counts it explains
            head, _, rest = body.partition("\n")
            body = f"{head}\n{basis}\n{rest}"
        yield Alert(
            key=f"volume_spike:{self.route}:{now.strftime('%Y-%m-%dT%H:%M')}",
            kind=self.kind,
            title=f"Mention spike: {len(window)} in {self.window_minutes} min, about {expected:.1f} expected",
            body=body,
            level="warning",
            route=self.route,
            mentions=tuple(c.mention.key for c in window[:50]),
        )
