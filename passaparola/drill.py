"""Crisis drills: replay a scenario through the real daemon (triage, rules, outbox with its quiet hours and
cooldowns) on a copy of the database, with a fast clock, and report who was alerted when, what breached and
what the team would have missed. Alerts go to the console or to one drill route, never to their real routes.
"""

from __future__ import annotations

import io
import random
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from listener import DemoSource
from listener.model import Author, Mention, Poll, SourceError
from notifiers.alert import Alert, Delivery, Notifier
from notifiers.log import LogNotifier, printable
from passaparola.config import Settings, SourceSpec
from passaparola.daemon import Daemon
from rules.base import Tagger
from storage.store import Store

SCENARIOS = ("spike", "outage", "vip-night")
COMPLAINTS = (
    "Le capsule di Caffè Aurora perdono caffè ovunque, pessimo",
    "Ordine arrivato rotto, Caffè Aurora non risponde, vergogna",
    "Caffè Aurora la macchina si è bloccata dopo una settimana, rimborso subito",
    "Caffè Aurora terrible, the pods leak everywhere and nobody answers",
    "Ancora nessuna risposta da Caffè Aurora, servizio clienti inesistente",
)
CHATTER = ("Un caffè Aurora prima di iniziare", "Provato il nuovo Caffè Aurora decaffeinato", "Caffè Aurora al bar")


class DrillError(ValueError):
    """The drill cannot run as asked; the message says what to change."""


@dataclass
class ScriptedMentions:
    """A source that reveals a scenario's mentions as the drill's clock passes them, and fails in its outage."""

    kind: ClassVar[str] = "drill"
    name: str = "drill"
    mentions: Sequence[Mention] = ()
    outage: tuple[datetime, datetime] | None = None

    def poll(self, cursor: Mapping[str, Any] | None, now: datetime) -> Poll:
        if self.outage and self.outage[0] <= now < self.outage[1]:
            raise SourceError("drill: the source is down (HTTP 503) as the scenario says")
        seen = int((cursor or {}).get("seen", 0))
        due = [m for m in self.mentions if m.published_at <= now]
        return Poll(mentions=tuple(due[seen:]), cursor={"seen": len(due)})


@dataclass
class DrillNotifier:
    """Records each alert with the drill clock's time and passes it to the console or one drill route."""

    inner: Notifier
    clock: Any
    route: str
    sent: list[tuple[datetime, Alert]] = field(default_factory=list)

    def send(self, alert: Alert) -> Delivery:
        self.sent.append((self.clock(), alert))
        return self.inner.send(replace(alert, route=self.route) if self.route else alert)


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


def _author(n: int, reach: int = 40, handle: str = "") -> Author:
    return Author(platform="x", platform_id=f"drill-{n}", handle=handle or f"cliente_{n}", reach=reach)


def _mention(n: int, text: str, at: datetime, author: Author) -> Mention:
    return Mention(
        platform="x",
        platform_id=f"drill-{n}",
        source="drill",
        text=text,
        author=author,
        published_at=at,
        thread_id=f"drill-{n}",
        url=f"https://x.com/{author.handle}/status/drill-{n}",
    )


def built_in(name: str, start: datetime, hours: float, rng: random.Random) -> ScriptedMentions:
    """The built-in scenarios: two days of ordinary chatter (the rules' baseline), chatter during the drill, then
    the crisis."""
    end = start + timedelta(hours=hours)
    history = [
        _mention(500 + n, rng.choice(CHATTER), start - timedelta(hours=48 - n), _author(500 + n)) for n in range(48)
    ]
    mentions = history + [
        _mention(n, rng.choice(CHATTER), start + timedelta(minutes=n * 20), _author(n)) for n in range(int(hours * 3))
    ]
    outage = None
    if name == "spike":  # a burst of complaints a third of the way in: 40 in 30 minutes
        burst = start + (end - start) / 3
        mentions += [
            _mention(1000 + i, rng.choice(COMPLAINTS), burst + timedelta(seconds=45 * i), _author(1000 + i))
            for i in range(40)
        ]
    elif name == "outage":  # the source goes down for the middle half of the drill
        outage = (start + (end - start) / 4, start + (end - start) * 3 / 4)
    elif name == "vip-night":  # a big account complains in the middle of the night
        vip = _author(2000, reach=250_000, handle="foodmag_italia")
        mentions.append(_mention(2000, COMPLAINTS[1] + " @AuroraCaffe", start + timedelta(minutes=30), vip))
    else:
        raise DrillError(f"no built-in scenario {name!r}; use one of {', '.join(SCENARIOS)} or a JSONL file")
    return ScriptedMentions(mentions=sorted(mentions, key=lambda m: m.published_at), outage=outage)


def recorded(path: Path, start: datetime, hours: float) -> ScriptedMentions:
    """A recorded scenario in the demo sample's JSONL shape, replayed so that it ends when the drill ends."""
    if not path.is_file():
        raise DrillError(f"scenario file {path} does not exist; give a JSONL file in the demo sample's shape")
    try:
        poll = DemoSource(path=str(path)).poll(None, start + timedelta(hours=hours))
    except SourceError as error:
        raise DrillError(str(error)) from None
    return ScriptedMentions(mentions=sorted(poll.mentions, key=lambda m: m.published_at))


@dataclass(frozen=True)
class Report:
    scenario: str
    start: datetime
    end: datetime
    alerts: list[tuple[datetime, Alert]]
    breached: list[tuple[str, datetime, str]]  # key, deadline, assignee
    missed: list[str]
    held: int

    def lines(self) -> list[str]:
        out = [f"drill {self.scenario}: {self.start:%Y-%m-%d %H:%M} to {self.end:%H:%M} UTC (simulated)"]
        for at, alert in self.alerts:
            minutes = (at - self.start).total_seconds() / 60
            out.append(f"  +{minutes:5.0f} min  {alert.kind:<16} to {alert.route:<8} {printable(alert.title)[:90]}")
        if not self.alerts:
            out.append("  no alert was sent")
        out.append(f"breached: {len(self.breached)} mentions past their first-response deadline")
        for key, due, assignee in self.breached[:10]:
            out.append(f"  {key} due {due:%H:%M}, {assignee or 'unassigned'}")
        out.append(f"held by quiet hours or caps at the end: {self.held}")
        out.append(f"would have been missed (breached, and no alert named them): {len(self.missed)}")
        out.extend(f"  {key}" for key in self.missed[:10])
        return out


def run_drill(
    settings: Settings,
    scenario: str,
    start: datetime,
    hours: float,
    step_minutes: float,
    route: str,
    notifier: Notifier | None,
    taggers: Sequence[Tagger],
    seed: int = 7,
) -> Report:
    """Run ``scenario`` on a copy of the configured database (or an empty one) and report what happened."""
    if not 0 < hours <= 72 or not 0 < step_minutes <= 60:
        raise DrillError("--hours must be in (0, 72] and --step-minutes in (0, 60]")
    rng = random.Random(seed)
    path = Path(scenario)
    source = recorded(path, start, hours) if path.suffix == ".jsonl" else built_in(scenario, start, hours, rng)
    with tempfile.TemporaryDirectory(prefix="passaparola-drill-") as scratch:
        copy = Path(scratch) / "drill.db"
        original = Path(settings.storage.path)
        if original.exists():
            live = Store.open(original)
            try:
                live.backup(copy)
            finally:
                live.close()
        store = Store.open(copy)
        clock = Clock(start)
        recorder = DrillNotifier(notifier or LogNotifier(stream=io.StringIO()), clock, route)
        drill_settings = replace(
            settings,
            storage=settings.storage.model_copy(update={"path": str(copy)}),
            sources=(SourceSpec("drill", "drill", 60, source),),
        )
        try:
            daemon = Daemon(drill_settings, store, recorder, taggers=taggers, clock=clock, rng=rng)
            end = start + timedelta(hours=hours)
            while clock.now <= end:
                daemon.cycle()
                clock.now += timedelta(minutes=step_minutes)
            keys = {m.key for m in source.mentions}
            breached = [
                (c.mention.key, c.due_at, c.assignee)
                for c in store.conversations.open_items()
                if c.mention.key in keys and c.due_at is not None and c.due_at <= end
            ]
            alerted = {k for _, a in recorder.sent for k in a.mentions}
            missed = [key for key, _, _ in breached if key not in alerted]
            held = store.outbox.pending()
        finally:
            store.close()
    name = path.name if path.suffix == ".jsonl" else scenario
    return Report(name, start, end, recorder.sent, breached, missed, held)
