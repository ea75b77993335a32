"""The two kinds of rule: taggers (mentions -> tags) and evaluators (stored state + now -> alerts).

Rules import only the shared nouns of `listener` and the `Alert` of `notifiers`; what they read from
storage is described by `StoreView`, which `storage.Store` satisfies.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, Protocol

from listener.model import Conversation, Mention, SourceHealth
from notifiers.alert import Alert


class Tagger(Protocol):
    """Derives tags for a batch of mentions (batches let a spaCy pipeline use ``nlp.pipe``)."""

    def tag(self, mentions: Sequence[Mention]) -> list[Mapping[str, Any]]: ...


class ConversationsView(Protocol):
    """`StoreView.conversations`: the mentions with their state."""

    def open_between(self, published_before: datetime, published_after: datetime) -> list[Conversation]: ...

    def due(
        self, now: datetime, due_after: datetime, untold: Sequence[tuple[str, int | None, bool]] | None = None
    ) -> list[Conversation]: ...

    def between(self, start: datetime, end: datetime) -> list[Conversation]: ...

    def negative_between(
        self,
        start: datetime,
        end: datetime,
        open_only: bool = False,
        min_reach: int | None = None,
        authors: Iterable[str] = (),
        untold: str = "",
        only: tuple[Collection[str], Collection[str], datetime] | None = None,
    ) -> list[Conversation]: ...

    def mark_seq(self) -> int: ...

    def marked(self, after: int, upto: int) -> tuple[set[str], set[str]]: ...

    def rule_state(self, rule: str) -> tuple[str, int, datetime, list[str]] | None: ...

    def read_by(self, rule: str, settings: str, seq: int, at: datetime, seen: Sequence[str]) -> None: ...

    def count_between(self, start: datetime, end: datetime) -> int: ...

    def sentiment_counts(self, start: datetime, end: datetime) -> tuple[int, int, datetime | None]: ...

    def open_counts(self, now: datetime) -> tuple[int, int]: ...


class MentionsView(Protocol):
    """`StoreView.mentions`: volumes over time."""

    def hourly_counts(self, since: datetime, until: datetime) -> dict[datetime, int]: ...

    def source_activity(self, since: datetime) -> dict[str, tuple[list[datetime], datetime]]: ...


class OutboxView(Protocol):
    """`StoreView.outbox`: the alerts already queued."""

    def last_alert_at(self, kind: str, route: str) -> datetime | None: ...

    def pending(self) -> int: ...


class HealthView(Protocol):
    """`StoreView.health`: how each source polls."""

    def sources(self) -> list[SourceHealth]: ...


class StoreView(Protocol):
    """The reads evaluators need, by concern as the store composes them (``store.conversations``...)."""

    @property
    def conversations(self) -> ConversationsView: ...

    @property
    def mentions(self) -> MentionsView: ...

    @property
    def outbox(self) -> OutboxView: ...

    @property
    def health(self) -> HealthView: ...

    def top_advocates(self, limit: int) -> list[tuple[str, float, str]]: ...

    def tiered_authors(self, tiers: Sequence[str]) -> dict[str, str]: ...


class Evaluator(Protocol):
    """Looks at the store and says what people must be told now. Pure: same state and time, same alerts.

    One that reads only what changed since its last cycle says what it read with ``conversations.read_by``; the
    pipeline keeps that once its alerts are queued (`storage`'s ``commit_reads``), so a failed cycle reads it all
    again."""

    kind: ClassVar[str]

    def evaluate(self, view: StoreView, now: datetime) -> Iterable[Alert]: ...


def cooling_down(view: StoreView, kind: str, route: str, hours: float, now: datetime) -> bool:
    """True while an alert of this kind went to this route less than ``hours`` ago: one alert per episode."""
    last = view.outbox.last_alert_at(kind, route)
    return last is not None and now - last < timedelta(hours=hours)


def complained_topics(tags: Mapping[str, Any]) -> list[str]:
    """The topics a mention complains about: those read negative on their own in a mixed message, else every
    topic of a negative mention ("Ottimo caffè, pessima app" complains about the app, not the coffee).

    `storage.board.Board.complaint_topics` counts the same rule in SQL."""
    own = tags.get("topic_sentiment") or {}
    return [t for t in tags.get("topics") or [] if own.get(t, tags.get("sentiment")) == "negative"]
