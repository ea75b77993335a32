"""Sending a batch of alerts so that no destination waits on another.

apprise waits about 5.5 s between two notifications through one URL (its politeness throttle), and a mail
server or a chat webhook may be slow. Sent one after the other, a burst of twenty alerts to one ``mailto://``
kept every other alert, of every route, waiting about 110 s. Here each destination (each target of a
`TargetedNotifier`, each route of a plain `Notifier`) has its own worker: its alerts go out in order, at its
own pace, while the other destinations go on. A time budget bounds one pass: a destination stops starting new
sends when it runs out, and what it did not try waits for the next pass (nothing is lost, no attempt counted).

No storage here: the caller records each `Attempt`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from notifiers.alert import Alert, Delivery, Notifier, TargetedNotifier, TargetOutcome

log = logging.getLogger(__name__)

#: At most this many destinations send at once.
MAX_SENDERS = 8


@runtime_checkable
class SplittableNotifier(TargetedNotifier, Protocol):
    """A targeted notifier that names the targets of a route, so each can be sent to on its own."""

    def target_names(self, route: str) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class Attempt:
    """One alert's part in a pass. ``delivery.ok`` only when every target has it; ``untried`` counts targets
    the pass ran out of time for (neither reached nor failed: they are tried next pass)."""

    delivery: Delivery
    untried: int = 0


@dataclass(frozen=True, slots=True)
class _Send:
    index: int  # which alert of the batch
    alert: Alert
    skip: frozenset[str]  # targets not to send to in this call


def send_all(
    notifier: Notifier,
    batch: Sequence[tuple[Alert, Collection[str]]],
    budget_seconds: float | None = None,
) -> list[Attempt]:
    """Send each (alert, targets it already reached) of ``batch``; one `Attempt` per alert, in order.

    With ``budget_seconds``, no send starts after that many seconds (a pass lasts at most the budget plus one
    send); without it, everything is tried.
    """
    lanes = _lanes(notifier, batch)
    started = time.monotonic()
    results: dict[tuple[int, str], Delivery | None] = {}

    def run(lane: str, sends: list[_Send]) -> None:
        for send in sends:
            if budget_seconds is not None and time.monotonic() - started > budget_seconds:
                results[(send.index, lane)] = None
                continue
            results[(send.index, lane)] = _one(notifier, send)

    if len(lanes) <= 1:
        for lane, sends in lanes.items():
            run(lane, sends)
    else:
        with ThreadPoolExecutor(min(MAX_SENDERS, len(lanes)), thread_name_prefix="send") as senders:
            for future in [senders.submit(run, lane, sends) for lane, sends in lanes.items()]:
                future.result()
    return [_combine([results[key] for key in sorted(results) if key[0] == index]) for index in range(len(batch))]


def _lanes(notifier: Notifier, batch: Sequence[tuple[Alert, Collection[str]]]) -> dict[str, list[_Send]]:
    """The sends each destination makes, in the batch's order: per target where the notifier can split a
    route, per route otherwise (a route with no target left goes as one call, which reports why)."""
    lanes: dict[str, list[_Send]] = {}
    for index, (alert, reached) in enumerate(batch):
        names = notifier.target_names(alert.route) if isinstance(notifier, SplittableNotifier) else []
        missing = [name for name in names if name not in reached]
        if not missing:
            lanes.setdefault(f"route:{alert.route}", []).append(_Send(index, alert, frozenset(reached)))
            continue
        for name in missing:
            skip = frozenset(names) - {name}
            lanes.setdefault(f"target:{name}", []).append(_Send(index, alert, skip))
    return lanes


def _one(notifier: Notifier, send: _Send) -> Delivery:
    """One call; a notifier that raises has failed this delivery, it does not stop the others."""
    try:
        if isinstance(notifier, TargetedNotifier):
            return notifier.send_pending(send.alert, send.skip)
        return notifier.send(send.alert)
    except Exception as exc:
        log.debug("notifier raised", exc_info=True)
        return Delivery(False, f"{type(exc).__name__}: {exc}")


def _combine(parts: list[Delivery | None]) -> Attempt:
    """One alert's deliveries (one per target it was sent to) as one outcome."""
    tried = [part for part in parts if part is not None]
    untried = len(parts) - len(tried)
    targets: tuple[TargetOutcome, ...] = tuple(t for part in tried for t in part.targets)
    failed = [part for part in tried if not part.ok]
    if len(tried) == 1 and not untried:
        return Attempt(tried[0])
    if failed:
        details = "; ".join(part.detail or "the notifier reported a failed delivery" for part in failed)
        reached = len(tried) - len(failed)
        prefix = f"{reached} of {len(parts)} URL(s) delivered; " if reached else ""
        return Attempt(Delivery(False, prefix + details, targets), untried)
    if untried:
        return Attempt(Delivery(False, f"{len(tried)} of {len(parts)} URL(s) delivered so far", targets), untried)
    return Attempt(Delivery(True, f"delivered to {len(tried)} URL(s)", targets))
