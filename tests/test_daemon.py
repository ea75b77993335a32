"""The daemon's jobs: a failing source never stops the others, alerts are sent once, failed sends retry."""

from __future__ import annotations

import io
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import schedule

from listener import DemoSource, Mention, Poll, RateLimited, SourceError
from notifiers import Alert, Delivery, LogNotifier
from passaparola import config as configuration
from passaparola.config import SourceSpec
from passaparola.daemon import Daemon
from passaparola.pipeline import backoff, deliver, enrich, evaluate, poll_source, triage
from rules import SourceFailing, Unanswered
from rules.triage import TriageSettings
from storage import Store
from tests.conftest import FIXTURES, FixedClock
from tests.test_storage import mention


@dataclass
class ScriptedSource:
    """Fails, rate-limits or answers as scripted, one step per poll."""

    kind: ClassVar[str] = "scripted"
    name: str = "scripted"
    script: list[Any] = field(default_factory=list)
    polls: int = 0

    def poll(self, cursor: Mapping[str, Any] | None, now: datetime) -> Poll:
        step = self.script[min(self.polls, len(self.script) - 1)]
        self.polls += 1
        if isinstance(step, Exception):
            raise step
        return step


class FlakyNotifier:
    def __init__(self, fail_times: int) -> None:
        self.fail_times = fail_times
        self.delivered: list[Alert] = []

    def send(self, alert: Alert) -> Delivery:
        if self.fail_times:
            self.fail_times -= 1
            return Delivery(False, "receiver answered 500")
        self.delivered.append(alert)
        return Delivery(True)


def settings_with(*specs: SourceSpec) -> configuration.Settings:
    base = configuration.load(None, environ={})
    return replace(base, sources=specs, rules=(Unanswered(), SourceFailing()))


def test_a_failing_source_is_recorded_and_the_others_still_run(store: Store, clock: FixedClock) -> None:
    broken = SourceSpec("broken", "scripted", 60, ScriptedSource(script=[KeyError("surprise")]))
    demo = SourceSpec("demo", "demo", 60, DemoSource(path=str(FIXTURES / "day.jsonl")))
    notifier = LogNotifier(stream=io.StringIO())
    Daemon(settings_with(broken, demo), store, notifier, clock=clock, rng=random.Random(1)).cycle()
    health = store.source_health("broken")
    assert health.consecutive_failures == 1 and health.last_error == "unexpected KeyError: 'surprise'"
    assert health.next_retry_at is not None and health.next_retry_at > clock.now
    assert store.source_health("demo").mentions_total > 0


def test_a_paused_source_is_not_polled_until_its_retry_time(store: Store, clock: FixedClock) -> None:
    source = ScriptedSource(script=[SourceError("HTTP 503"), Poll()])
    spec = SourceSpec("s", "scripted", 60, source)
    rng = random.Random(1)
    assert poll_source(spec, store, [], clock(), 60, 900, rng).error == "HTTP 503"
    assert poll_source(spec, store, [], clock.advance(seconds=10), 60, 900, rng).skipped
    assert source.polls == 1
    retry_at = store.source_health("s").next_retry_at
    assert retry_at is not None
    clock.now = retry_at
    assert poll_source(spec, store, [], clock(), 60, 900, rng).error == ""
    assert store.source_health("s").consecutive_failures == 0


def test_a_rate_limited_source_waits_for_the_reset(store: Store, clock: FixedClock) -> None:
    reset = clock.now + timedelta(minutes=15)
    source = ScriptedSource(script=[RateLimited("429 from X", retry_at=reset), Poll()])
    spec = SourceSpec("x", "scripted", 60, source)
    poll_source(spec, store, [], clock(), 60, 900, random.Random(1))
    assert poll_source(spec, store, [], clock.advance(minutes=14), 60, 900, random.Random(1)).skipped
    assert not poll_source(spec, store, [], clock.advance(minutes=1), 60, 900, random.Random(1)).skipped


def test_backoff_grows_and_is_capped() -> None:
    rng = random.Random(3)
    waits = [backoff(n, 60, 900, rng).total_seconds() for n in range(1, 8)]
    assert 30 <= waits[0] <= 60 and 60 <= waits[1] <= 120 and all(450 <= w <= 900 for w in waits[4:])


class Shout:
    """A test tagger: tags are computed in one batch call per poll."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def tag(self, mentions: Sequence[Mention]) -> list[Mapping[str, Any]]:
        self.batches.append(len(mentions))
        return [{"needs_answer": int("?" in m.text)} for m in mentions]


def test_only_new_mentions_are_tagged_in_one_batch(store: Store, clock: FixedClock) -> None:
    tagger = Shout()
    spec = SourceSpec(
        "s", "scripted", 60, ScriptedSource(script=[Poll(mentions=(mention("1", text="ok?"), mention("2")))])
    )
    poll_source(spec, store, [tagger], clock(), 60, 900, random.Random(1))
    poll_source(spec, store, [tagger], clock.advance(minutes=1), 60, 900, random.Random(1))
    assert tagger.batches == [2, 0]
    assert store.db.execute("SELECT needs_answer FROM mention_tags WHERE key='x:1'").fetchone()[0] == 1
    assert [m.tags for m in enrich([mention("3")], [tagger])] == [{"needs_answer": 0}]


def test_alerts_are_sent_once_across_repeated_evaluations(store: Store, clock: FixedClock) -> None:
    store.save_poll("s", "x", Poll(mentions=(mention("1"),)), clock.now)
    triage(TriageSettings(), store, clock.now)
    notifier = FlakyNotifier(fail_times=0)
    for minutes in (61, 62, 120):
        clock.now = clock.now.replace(hour=9, minute=0) + timedelta(minutes=minutes)
        evaluate([Unanswered(warn=False)], store, clock())
        deliver(store, notifier, clock(), random.Random(1))
    assert [a.key for a in notifier.delivered] == ["sla_breach:x:1"]


def test_a_failed_delivery_stays_queued_and_is_retried(store: Store, clock: FixedClock) -> None:
    store.enqueue([Alert(key="k", kind="t", title="t", body="b")], clock.now)
    notifier = FlakyNotifier(fail_times=2)
    assert deliver(store, notifier, clock(), random.Random(1)) == (0, 1)
    assert deliver(store, notifier, clock(), random.Random(1)) == (0, 0)  # not due yet
    for _ in range(3):
        clock.advance(hours=1)
        deliver(store, notifier, clock(), random.Random(1))
    assert [a.key for a in notifier.delivered] == ["k"]
    assert store.db.execute("SELECT attempts, last_error FROM outbox").fetchone() == (
        3,
        "receiver answered 500",
    )


def test_one_broken_rule_does_not_silence_the_others(store: Store, clock: FixedClock) -> None:
    class Broken:
        kind = "broken"

        def evaluate(self, view: object, now: datetime) -> list[Alert]:
            raise RuntimeError("bug")

    store.health.record_failure("feed", "feed", "down", clock.now, clock.now)
    store.health.record_failure("feed", "feed", "down", clock.now, clock.now)
    store.health.record_failure("feed", "feed", "down", clock.now, clock.now)
    assert evaluate([Broken(), SourceFailing()], store, clock()) == 1  # type: ignore[list-item]


def test_the_daemon_uses_its_own_scheduler_with_jittered_jobs(store: Store, clock: FixedClock) -> None:
    spec = SourceSpec("demo", "demo", 300, DemoSource(path=str(FIXTURES / "day.jsonl")))
    daemon = Daemon(settings_with(spec), store, LogNotifier(stream=io.StringIO()), clock=clock)
    assert schedule.default_scheduler.jobs == []
    jobs = {next(iter(job.tags)): job for job in daemon.scheduler.jobs}
    assert set(jobs) == {"source:demo", "inbound", "advocates", "rules", "outbox", "replies", "maintenance"}
    assert jobs["source:demo"].interval == 300 and jobs["source:demo"].latest == 330


def test_golden_day_produces_the_expected_alerts(store: Store, clock: FixedClock) -> None:
    """A scripted day (tests/fixtures/day.jsonl): the console output matches the golden file."""
    sink = io.StringIO()
    spec = SourceSpec("demo", "demo", 60, DemoSource(path=str(FIXTURES / "day.jsonl")))
    Daemon(settings_with(spec), store, LogNotifier(stream=sink), clock=clock, rng=random.Random(1)).cycle()
    golden = Path(FIXTURES / "day.golden.txt").read_text(encoding="utf-8")
    assert sink.getvalue() == golden


def test_a_full_disk_keeps_the_daemon_alive_tells_ops_once_and_loses_nothing(tmp_path: Path, clock: FixedClock) -> None:
    store = Store.open(tmp_path / "p.db")
    first = Poll(
        mentions=tuple(mention(f"{n}", -n, text=f"primo {n} " + "x" * 400) for n in range(50)), cursor={"n": 50}
    )
    later = Poll(
        mentions=tuple(mention(f"{n}", -n, text=f"dopo {n} " + "y" * 400) for n in range(50, 400)), cursor={"n": 400}
    )
    source = ScriptedSource(script=[first, later])
    spec = SourceSpec("s", "scripted", 60, source)
    notifier = FlakyNotifier(fail_times=0)
    daemon = Daemon(settings_with(spec), store, notifier, clock=clock, rng=random.Random(1))
    daemon.cycle()
    assert store.counts()["mentions"] == 50
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages + 2}")  # the volume is full: two pages to spare

    daemon.cycle()  # every job tries to write; the daemon goes on
    clock.advance(minutes=10)
    daemon.cycle()
    full = [a for a in notifier.delivered if a.kind == "disk_full"]
    assert len(full) == 1 and full[0].route == "ops" and full[0].level == "failure"  # once, not every tick
    assert "Nothing stored is lost" in full[0].body and "source:s" in full[0].body
    assert store.counts()["mentions"] == 50 and store.cursor("s") == {"n": 50}  # the cursor did not move on
    assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    store.db.execute("PRAGMA max_page_count = 1073741823")  # space freed
    clock.advance(minutes=5)
    daemon.poll(spec)
    assert store.counts()["mentions"] == 400 and store.cursor("s") == {"n": 400}  # fetched again, nothing lost
    store.close()


@dataclass
class SlowFailure:
    """Takes two seconds, then fails: a feed that used its whole deadline."""

    kind: ClassVar[str] = "slow"
    name: str = "slow"

    def poll(self, cursor: Mapping[str, Any] | None, now: datetime) -> Poll:
        time.sleep(2.0)
        raise SourceError("still sending after 2 s; cut short")


def test_a_failed_polls_next_try_is_counted_from_when_it_ended(store: Store, clock: FixedClock) -> None:
    spec = SourceSpec("slow", "slow", 60, SlowFailure())
    poll_source(spec, store, [], clock.now, 1, 900, random.Random(1))  # backoff: 0.5 to 1 s after the poll
    retry_at = store.source_health("slow").next_retry_at  # stored to the second
    assert retry_at is not None and retry_at >= clock.now + timedelta(seconds=2)
