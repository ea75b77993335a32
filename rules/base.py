"""The two kinds of rule: taggers (mentions -> tags) and evaluators (stored state + now -> alerts).

Rules import only the shared nouns of `listener` and the `Alert` of `notifiers`; what they read from
storage is described by `StoreView`, which `storage.Store` satisfies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol

from listener.model import Conversation, Mention, SourceHealth
from notifiers.alert import Alert


class Tagger(Protocol):
    """Derives tags for a batch of mentions (batches let a spaCy pipeline use ``nlp.pipe``)."""

    def tag(self, mentions: Sequence[Mention]) -> list[Mapping[str, Any]]: ...


class StoreView(Protocol):
    """The reads evaluators need."""

    def open_conversations(self, published_before: datetime, published_after: datetime) -> list[Conversation]: ...

    def due_conversations(self, now: datetime, due_after: datetime) -> list[Conversation]: ...

    def all_source_health(self) -> list[SourceHealth]: ...

    def conversations_between(self, start: datetime, end: datetime) -> list[Conversation]: ...

    def hourly_counts(self, since: datetime, until: datetime) -> dict[datetime, int]: ...

    def last_alert_at(self, kind: str, route: str) -> datetime | None: ...

    def source_activity(self, since: datetime) -> dict[str, tuple[list[datetime], datetime]]: ...

    def open_counts(self, now: datetime) -> tuple[int, int]: ...

    def top_advocates(self, limit: int) -> list[tuple[str, float, str]]: ...

    def pending_alerts(self) -> int: ...

    def tiered_authors(self, tiers: Sequence[str]) -> dict[str, str]: ...


class Evaluator(Protocol):
    """Looks at the store and says what people must be told now. Pure: same state and time, same alerts."""

    kind: ClassVar[str]

    def evaluate(self, view: StoreView, now: datetime) -> Iterable[Alert]: ...


def cooling_down(view: StoreView, kind: str, route: str, hours: float, now: datetime) -> bool:
    """True while an alert of this kind went to this route less than ``hours`` ago: one alert per episode."""
    last = view.last_alert_at(kind, route)
    return last is not None and now - last < timedelta(hours=hours)


def complained_topics(tags: Mapping[str, Any]) -> list[str]:
    """The topics a mention complains about: those read negative on their own in a mixed message, else every
    topic of a negative mention ("Ottimo caffè, pessima app" complains about the app, not the coffee).

    `storage.board.Board.complaint_topics` counts the same rule in SQL."""
    own = tags.get("topic_sentiment") or {}
    return [t for t in tags.get("topics") or [] if own.get(t, tags.get("sentiment")) == "negative"]
