"""The `Alert` every rule emits and the `Notifier` protocol every delivery channel implements."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

Level = Literal["info", "success", "warning", "failure"]  # the values of apprise's NotifyType


@dataclass(frozen=True, slots=True)
class Alert:
    """Something a person must know. ``key`` identifies the event: one key is delivered once.

    ``body`` is plain text built from untrusted mention text: a notifier must never send it as HTML.
    ``route`` names who gets it (an apprise tag); ``mentions`` lists the mention keys it is about. ``html`` is
    an optional richer body that *we* rendered with autoescaping (the digest); channels that take HTML get it.
    """

    key: str
    kind: str
    title: str
    body: str
    level: Level = "info"
    route: str = "default"
    mentions: tuple[str, ...] = ()
    html: str = ""


@dataclass(frozen=True, slots=True)
class TargetOutcome:
    """One destination's part in a delivery. ``target`` names it stably and without secrets (it is stored)."""

    target: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Delivery:
    """What happened to one alert: delivered or not, and a line a person can act on (never a secret).

    ``targets`` says, for a notifier with several destinations per route, which of them this attempt reached:
    the outbox remembers them, so a retry goes only to the ones still missing.
    """

    ok: bool
    detail: str = ""
    targets: tuple[TargetOutcome, ...] = ()


class Notifier(Protocol):
    """Delivers alerts. ``send`` never raises for a failed delivery: it says so, and the alert is retried."""

    def send(self, alert: Alert) -> Delivery: ...


@runtime_checkable
class TargetedNotifier(Notifier, Protocol):
    """A notifier whose routes have several destinations, each delivered once.

    ``send_pending`` skips the targets in ``reached`` (they have the alert already) so a partial failure is
    retried for the failed destinations alone, never re-sent to the ones that got it.
    """

    def send_pending(self, alert: Alert, reached: Collection[str]) -> Delivery: ...
