"""The `Alert` every rule emits and the `Notifier` protocol every delivery channel implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

Level = Literal["info", "success", "warning", "failure"]  # the values of apprise's NotifyType


@dataclass(frozen=True, slots=True)
class Alert:
    """Something a person must know. ``key`` identifies the event: one key is delivered once.

    ``body`` is plain text built from untrusted mention text: a notifier must never send it as HTML.
    ``route`` names who gets it (an apprise tag); ``mentions`` lists the mention keys it is about.
    """

    key: str
    kind: str
    title: str
    body: str
    level: Level = "info"
    route: str = "default"
    mentions: tuple[str, ...] = ()


class Notifier(Protocol):
    """Delivers alerts. ``send`` returns False (never raises) when delivery failed, so it is retried."""

    def send(self, alert: Alert) -> bool: ...
