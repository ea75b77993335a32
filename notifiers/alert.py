"""The `Alert` every rule emits and the `Notifier` protocol every delivery channel implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

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
class Delivery:
    """What happened to one alert: delivered or not, and a line a person can act on (never a secret)."""

    ok: bool
    detail: str = ""


class Notifier(Protocol):
    """Delivers alerts. ``send`` never raises for a failed delivery: it says so, and the alert is retried."""

    def send(self, alert: Alert) -> Delivery: ...
