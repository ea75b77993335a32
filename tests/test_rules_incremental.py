"""The rules cycle reads what is new, not what is stored or open (#23), and still decides what the old code did.

Each test runs the old reads beside the new ones, on stores built the same way, over many cycles with the clock
moving on (and back), people acknowledging, answering, going away and coming back, rules added later, mentions
arriving late and sentiments corrected:

- triage reads every item someone holds and only the unassigned ones a member with room could take: its moves
  must be the moves of `assign` over every open conversation (the old read, kept here as it was);
- `unanswered` and `negative_mention` read only the mentions whose alerts the outbox does not hold: the outbox
  must end up with the same rows, in the same order, as when they read every one (the outbox keeps one per key);
- `negative_spike` and `volume_spike` add up the hours kept in ``rule_hours`` (m022): every count must be what the
  old queries, kept here verbatim, count from the mentions, whatever was written since.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from listener import Author, Mention, Poll
from passaparola.pipeline import evaluate, score_advocates, triage
from rules import Unanswered
from rules.base import Evaluator
from rules.negative import NegativeMention, NegativeSpike
from rules.spikes import VolumeSpike
from rules.triage import Hours, Member, Team, TriageSettings, assign, decide, parse_weekly
from rules.unanswered import EscalationStep
from storage import Store
from storage.times import iso

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday
LANGUAGES = ("it", "en", "de", None)


# -- the old reads, as they were before #23 ---------------------------------------------------------------------


def old_triage(settings: TriageSettings, store: Store, now: datetime) -> int:
    """`passaparola.pipeline.triage` before #23: every open conversation read and handed to `assign`."""
    vips = store.people.tiered_authors(["vip"])
    while batch := store.conversations.untriaged():
        store.conversations.settle(
            [decide(settings, c, follow_up=bool(c.follows_key), vip=c.mention.author.key in vips) for c in batch], now
        )
    if not settings.members:
        return 0
    items = store.conversations.open_items()
    overrides = store.conversations.away_overrides()
    away = {m.name for m in settings.members if overrides.get(m.name, m.away)}
    since = now - timedelta(days=settings.returning_days)
    returning = store.conversations.last_answerers((c.mention.author.key for c in items), since)
    moves = assign(settings, items, store.conversations.workloads(), returning, away, now)
    return store.conversations.assign([(a.key, a.member, a.reason, a.breach) for a in moves], now)


def old_sentiment_counts(store: Store, start: datetime, end: datetime) -> tuple[int, int, datetime | None]:
    row = store.db.execute(
        """
        SELECT count(*), sum(s = 'negative'), min(published_at) FROM (
            SELECT m.published_at, COALESCE(sc.label, t.sentiment) AS s FROM mentions m
            LEFT JOIN mention_tags t ON t.key = m.key LEFT JOIN sentiment_corrections sc ON sc.key = m.key
            WHERE m.published_at > ? AND m.published_at <= ?
        ) WHERE s IS NOT NULL AND s != ''
        """,
        [iso(start), iso(end)],
    ).fetchone()
    return int(row[0]), int(row[1] or 0), datetime.fromisoformat(row[2]) if row[2] else None


def old_hourly_counts(store: Store, since: datetime, until: datetime) -> dict[datetime, int]:
    rows = store.db.execute(
        "SELECT substr(published_at, 1, 13) AS hour, count(*) FROM mentions "
        "WHERE published_at >= ? AND published_at < ? GROUP BY hour",
        [iso(since), iso(until)],
    )
    return {datetime.fromisoformat(f"{hour}:00:00+00:00"): count for hour, count in rows.fetchall()}


class _OldConversations:
    """The conversations as the rules read them before #23: every due or negative mention, counts from the mentions."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._conversations = store.conversations

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conversations, name)

    def due(self, now: datetime, due_after: datetime, untold: object = None) -> Any:
        return self._conversations.due(now, due_after)

    def negative_between(self, start: datetime, end: datetime, open_only: bool = False, **narrowing: Any) -> Any:
        return self._conversations.negative_between(start, end, open_only)

    def sentiment_counts(self, start: datetime, end: datetime) -> tuple[int, int, datetime | None]:
        return old_sentiment_counts(self._store, start, end)


class _OldMentions:
    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store.mentions, name)

    def hourly_counts(self, since: datetime, until: datetime) -> dict[datetime, int]:
        return old_hourly_counts(self._store, since, until)


class View:
    """A store as the rules see it, with VIPs of its own; ``old`` reads as before #23."""

    def __init__(self, store: Store, vips: dict[str, str] | None = None, old: bool = False) -> None:
        self._store, self._vips = store, vips
        self.conversations: Any = _OldConversations(store) if old else store.conversations
        self.mentions: Any = _OldMentions(store) if old else store.mentions

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def tiered_authors(self, tiers: Any) -> dict[str, str]:
        if self._vips is None:
            return self._store.tiered_authors(tiers)
        return {key: tier for key, tier in self._vips.items() if tier in tiers}


# -- a busy, varied world, built the same way twice --------------------------------------------------------------


def _hours(spec: dict[str, list[str]]) -> Hours:
    weekly, problems = parse_weekly(spec, "test")
    assert problems == []
    return Hours(UTC, weekly)


def _settings(rng: random.Random) -> TriageSettings:
    shifts = [Hours(), Hours(), _hours({"daily": ["08:00-12:30"]}), _hours({"daily": ["12:30-20:00"]})]
    members = tuple(
        Member(
            name=name,
            skills=tuple(sorted(rng.sample(["billing", "tech", "care"], rng.randint(0, 2)))),
            languages=tuple(sorted(rng.sample(["it", "en"], rng.randint(0, 2)))),
            hours=rng.choice(shifts),
            capacity=rng.randint(0, 3),
            away=rng.random() < 0.15,
        )
        for name in ("ada", "bea", "cai", "dan")
    )
    teams = (Team("billing", topics=("pagamenti",)), Team("tech", topics=("app",)), Team("care"))
    return TriageSettings(
        teams=teams[: rng.randint(1, 3)], default_team=rng.choice(["", "care"]), members=members, late_after_hours=0
    )


def _mention(rng: random.Random, pid: str, at: datetime, authors: list[Author]) -> Mention:
    sentiment = rng.choice(["negative", "negative", "positive", "neutral", ""])
    tags: dict[str, Any] = {"needs_answer": rng.random() < 0.8, "sentiment": sentiment}
    language = rng.choice(LANGUAGES)
    if language:
        tags["language"] = language
    tags["topics"] = rng.sample(["pagamenti", "app", "consegna"], rng.randint(0, 2))
    return Mention(
        platform="x",
        platform_id=pid,
        source="x-brand",
        text=f"Il mio ordine {pid} non arriva @AuroraCaffe",
        author=rng.choice(authors),
        published_at=at,
        thread_id=pid,
        tags=tags,
    )


def _authors(rng: random.Random) -> list[Author]:
    return [Author("x", f"a{i}", f"fan{i}", reach=rng.choice([10, 400, 1_500, 20_000])) for i in range(14)]


def _world(seed: int, days: int = 3) -> tuple[Store, random.Random]:
    """A store with ``days`` of mentions (the older ones answered by the members) and an rng to go on with."""
    rng = random.Random(seed)
    store = Store.memory()
    authors = _authors(rng)
    start = NOW - timedelta(days=days)
    count = rng.randint(60, 120)
    mentions = [
        _mention(rng, f"p{i}", start + timedelta(seconds=rng.randint(0, days * 86_400 - 1)), authors)
        for i in range(count)
    ]
    for m in sorted(mentions, key=lambda m: m.published_at):  # each heard a little after it was written
        store.save_poll("x-brand", "x", Poll(mentions=(m,)), m.published_at + timedelta(minutes=rng.randint(0, 40)))
    for m in mentions:
        if m.published_at < NOW - timedelta(hours=rng.randint(2, 10)) and rng.random() < 0.8:
            store.conversations.mark_answered(m.key, rng.choice(["ada", "bea", "cai", "dan"]), m.published_at)
    return store, rng


def _twins(seed: int, days: int = 3) -> tuple[Store, Store, random.Random]:
    new, _ = _world(seed, days)
    old, rng = _world(seed, days)
    return new, old, rng


def _events(rng: random.Random, stores: tuple[Store, ...], settings: TriageSettings, at: datetime, n: int) -> None:
    """The same writes on each store: new mentions (some late), answers, a member away or back, acknowledgements."""
    authors = _authors(random.Random(0))
    choice = rng.random()
    late = [_mention(rng, f"n{n}-{i}", at - timedelta(minutes=rng.randint(0, 300)), authors) for i in range(3)]
    if rng.random() < 0.3:  # a burst, mostly negative: the spikes may speak
        burst = [_mention(rng, f"b{n}-{i}", at - timedelta(minutes=rng.randint(0, 40)), authors) for i in range(12)]
        late += [replace(m, tags={**m.tags, "sentiment": "negative"}) if i % 4 else m for i, m in enumerate(burst)]
    ahead = _mention(rng, f"f{n}", at + timedelta(minutes=rng.randint(1, 20)), authors)  # a clock ahead of ours
    late.append(replace(ahead, tags={**ahead.tags, "sentiment": "negative"}))
    if rng.random() < 0.3:  # an author grows famous (or is forgotten)
        late.append(replace(late[0], platform_id=f"r{n}", author=replace(late[0].author, reach=rng.choice([5, 9_000]))))
    keys = [k for (k,) in stores[0].db.execute("SELECT key FROM conversations ORDER BY key").fetchall()]
    answer, ack, corrected = rng.sample(keys, 3)
    recent_sql = "SELECT c.key FROM conversations c JOIN mentions m ON m.key = c.key WHERE m.published_at > ?"
    since = [iso(at - timedelta(hours=4))]
    recent = sorted(k for (k,) in stores[0].db.execute(recent_sql, since).fetchall())
    reopened, reread = (rng.choice(recent), rng.sample(recent, min(3, len(recent)))) if recent else ("", [])
    rng_pick = rng.choice(recent) if recent else ""  # a recent one: still open, perhaps
    told = [k for (k,) in stores[0].db.execute("SELECT key FROM outbox WHERE kind = 'negative_mention'").fetchall()]
    forgotten = rng.choice(sorted(told)) if told else ""
    member = rng.choice(settings.members).name
    away = rng.random() < 0.5
    label = rng.choice(["negative", "negative", "positive"])
    for store in stores:
        store.save_poll("x-brand", "x", Poll(mentions=tuple(late)), at)
        if choice < 0.5:
            store.conversations.mark_answered(answer, member, at)
        if choice < 0.3:
            store.conversations.set_away(member, away, "lead", at)
        store.conversations.acknowledge(ack, "lead", at)
        if choice > 0.4:  # a person reads it otherwise
            store.mentions.correct_sentiment(rng_pick or corrected, label, "lead", at)
        if 0.3 < choice < 0.8:  # read again by a newer model
            store.mentions.replace_tags({k: {"sentiment": label, "needs_answer": True} for k in reread}, at)
        if choice > 0.6:  # an answered one is open again, an alert is gone (a person erased)
            store.db.execute("UPDATE conversations SET state = 'reopened' WHERE key = ?", [reopened])
            store.db.execute("DELETE FROM outbox WHERE key = ?", [forgotten])
            store.db.conn.commit()


def _conversations(store: Store) -> list[tuple[Any, ...]]:
    return store.db.execute(
        "SELECT key, state, assignee, assigned_at, breach_handed_on, priority, team, due_at FROM conversations "
        "ORDER BY key"
    ).fetchall()


def _trail(store: Store) -> list[tuple[Any, ...]]:
    return store.db.execute("SELECT key, at, event, member, detail FROM conversation_events ORDER BY id").fetchall()


def _outbox(store: Store) -> list[tuple[Any, ...]]:
    return store.db.execute(
        "SELECT key, kind, level, title, body, route, mentions, created_at FROM outbox ORDER BY rowid"
    ).fetchall()


CLOCKS = (0, 7, 31, 45, 46, 95, 60, 130, 200, 260, 330, 480)  # minutes after NOW; 60 after 95: the clock goes back


# -- triage --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(40))
def test_triage_moves_what_the_full_read_moved(seed: int) -> None:
    new, old, rng = _twins(seed)
    settings = _settings(rng)
    for n, minutes in enumerate(CLOCKS):
        at = NOW + timedelta(minutes=minutes)
        triage(settings, new, at)
        old_triage(settings, old, at)
        assert _conversations(new) == _conversations(old), (seed, minutes)
        assert _trail(new) == _trail(old), (seed, minutes)
        _events(rng, (new, old), settings, at, n)


def test_triage_reads_only_what_someone_holds_when_nobody_has_room() -> None:
    """Everyone full: the unassigned open items are not read at all (the bench's steady state)."""
    store, _ = _world(1)
    settings = TriageSettings(members=(Member("ada", ("care",), ("it",), capacity=2),), default_team="care")
    triage(settings, store, NOW)
    reads: list[Any] = []
    original = store.conversations.query

    def counting(*args: Any, **kw: Any) -> Any:
        found = original(*args, **kw)
        reads.append(len(found))
        return found

    store.conversations.query = counting  # type: ignore[method-assign]
    triage(settings, store, NOW + timedelta(minutes=1))
    assert sum(reads) <= 2 * 2  # the two items ada holds (read for her breaches, then for assign)
    assert store.conversations.open_counts(NOW)[0] > 10


def test_a_breach_handed_on_frees_room_for_an_item_nobody_else_could_take() -> None:
    """ada is full with a breached item bea can take; bea takes it, and ada's freed room takes the unassigned item
    only ada speaks: that item must be read although nobody had room for it when the pass began."""
    store = Store.memory()
    anna, ben = Author("x", "1", "anna"), Author("x", "2", "ben")
    first = replace(_mention(random.Random(3), "1", NOW - timedelta(hours=3), [anna]), tags={"needs_answer": True})
    german = replace(
        _mention(random.Random(4), "2", NOW - timedelta(minutes=10), [ben]),
        tags={"needs_answer": True, "language": "de"},
    )
    ada = Member("ada", ("care",), ("it", "de"), capacity=1)
    bea = Member("bea", ("care",), ("it",), capacity=1, away=True)
    settings = TriageSettings(members=(ada, bea), default_team="care", late_after_hours=0)
    store.save_poll("x-brand", "x", Poll(mentions=(first,)), NOW - timedelta(hours=3))
    triage(settings, store, NOW - timedelta(hours=3))  # ada takes the first
    store.save_poll("x-brand", "x", Poll(mentions=(german,)), NOW)
    back = replace(settings, members=(ada, replace(bea, away=False)))
    triage(back, store, NOW)
    assigned = dict(store.db.execute("SELECT key, assignee FROM conversations").fetchall())
    assert assigned == {"x:1": "bea", "x:2": "ada"}


# -- unanswered and negative mentions --------------------------------------------------------------------------


def _rules(step: int) -> list[Evaluator]:
    """The rules at cycle ``step``: an escalation step and a negative rule are added later, the warning turned off."""
    escalation = [EscalationStep(20, "lead")] + ([EscalationStep(90, "boss")] if step >= 4 else [])
    rules: list[Evaluator] = [
        Unanswered(lookback_hours=6, escalation=escalation, warn=step < 8),
        VolumeSpike(min_volume=3, factor=1.5, warmup_hours=2, min_weeks=1, history_weeks=1, cooldown_hours=0.5),
        NegativeSpike(min_history=5, min_negative=2, factor=1.2, warmup_hours=2, history_weeks=1, cooldown_hours=0.5),
    ]
    if step >= 2:
        rules.append(NegativeMention(min_reach=1_000, tiers=["vip"], lookback_hours=5))
    return rules


@pytest.mark.parametrize("seed", range(12))
def test_the_outbox_gets_what_the_full_reads_queued(seed: int) -> None:
    new, old, rng = _twins(seed)
    settings = _settings(rng)
    vips = {"x:a3": "vip", "x:a5": "advocate"}
    told = 0
    for n, minutes in enumerate(CLOCKS):
        at = NOW + timedelta(minutes=minutes)
        if n in (3, 6):  # someone becomes a VIP, later loses it
            vips = {f"x:a{i}": "vip" for i in range(14)} if n == 3 else {"x:a3": "vip"}
        triage(settings, new, at)
        old_triage(settings, old, at)
        queued = evaluate(_rules(n), View(new, vips), at)  # type: ignore[arg-type]
        assert queued == evaluate(_rules(n), View(old, vips, old=True), at), (seed, minutes)  # type: ignore[arg-type]
        assert _outbox(new) == _outbox(old), (seed, minutes)
        told += queued
        _events(rng, (new, old), settings, at, n)
    assert told


def test_an_alert_queued_is_not_read_again_and_one_owed_is() -> None:
    store, _ = _world(5)
    settings = TriageSettings(late_after_hours=0)
    triage(settings, store, NOW)
    rule = Unanswered(lookback_hours=48, escalation=[EscalationStep(30, "lead")])
    owed = store.conversations.due(NOW, NOW - timedelta(hours=48), rule.untold())
    assert owed and len(owed) == len(store.conversations.due(NOW, NOW - timedelta(hours=48)))
    evaluate([rule], store, NOW)
    assert store.conversations.due(NOW, NOW - timedelta(hours=48), rule.untold()) == []
    # a step added later is owed by every breach old enough for it, and only by those
    later = Unanswered(lookback_hours=48, escalation=[EscalationStep(30, "lead"), EscalationStep(600, "boss")])
    old_enough = [
        c
        for c in store.conversations.due(NOW, NOW - timedelta(hours=48))
        if c.due_at and c.due_at <= NOW - timedelta(minutes=600) and c.acknowledged_at is None
    ]
    assert old_enough
    again = store.conversations.due(NOW, NOW - timedelta(hours=48), later.untold())
    assert [c.mention.key for c in again] == [c.mention.key for c in old_enough]
    store.conversations.acknowledge(old_enough[0].mention.key, "lead", NOW)
    again = store.conversations.due(NOW, NOW - timedelta(hours=48), later.untold())
    assert old_enough[0].mention.key not in [c.mention.key for c in again]


# -- the hours kept for the baselines --------------------------------------------------------------------------


def _check_counts(store: Store, rng: random.Random, at: datetime) -> None:
    for _ in range(12):
        end = at - timedelta(minutes=rng.randint(0, 600), seconds=rng.randint(0, 59))
        start = end - timedelta(minutes=rng.choice([0, 30, 59, 60, 61, 119, 120, 121, 600, 3 * 1440, 10 * 1440]))
        assert store.conversations.sentiment_counts(start, end) == old_sentiment_counts(store, start, end)
        assert store.mentions.hourly_counts(start, end) == old_hourly_counts(store, start, end)
    # the rules' own windows, on the hour and off it
    hours_back = [at.replace(minute=0, second=0) - timedelta(hours=h) for h in range(0, 31, 3)]
    for window_end in (at, at - timedelta(minutes=61), *hours_back):
        start = window_end - timedelta(hours=1)
        history = start - timedelta(weeks=1)
        assert store.conversations.sentiment_counts(history, start) == old_sentiment_counts(store, history, start)
        assert store.mentions.hourly_counts(history, start) == old_hourly_counts(store, history, start)


@pytest.mark.parametrize("seed", range(6))
def test_kept_hours_count_what_the_mentions_say_after_every_kind_of_write(seed: int) -> None:
    store, rng = _world(seed, days=9)
    authors = _authors(rng)
    at = NOW
    _check_counts(store, rng, at)
    assert store.db.execute("SELECT count(*) FROM rule_hours").fetchone()[0] > 100  # kept from the first read
    for n in range(10):
        keys = [k for (k,) in store.db.execute("SELECT key FROM mentions ORDER BY key").fetchall()]
        what = n % 6
        if what == 0:  # late arrivals, days back
            late = [_mention(rng, f"late{n}-{i}", at - timedelta(hours=rng.randint(2, 200)), authors) for i in range(4)]
            on_the_hour = at.replace(minute=0, second=0) - timedelta(hours=rng.randint(0, 30))
            late += [_mention(rng, f"hour{n}-{i}", on_the_hour, authors) for i in range(2)]  # the edges' edge
            unread = _mention(rng, f"unread{n}", at - timedelta(hours=rng.randint(2, 100)), authors)
            late.append(replace(unread, tags={}))  # not read yet: counted as a mention, not as a reading
            store.save_poll("x-brand", "x", Poll(mentions=tuple(late)), at)
        elif what == 1:  # a person corrects a reading, then changes their mind
            key = rng.choice(keys)
            store.mentions.correct_sentiment(key, "negative", "lead", at)
            store.mentions.correct_sentiment(rng.choice(keys), rng.choice(["positive", ""]), "lead", at)
        elif what == 2:  # a correction withdrawn
            store.db.execute("DELETE FROM sentiment_corrections WHERE key IN (SELECT key FROM sentiment_corrections "
                             "LIMIT 1)")  # fmt: skip
            store.db.conn.commit()
        elif what == 3:  # reanalysis
            store.mentions.replace_tags({k: {"sentiment": rng.choice(["negative", "positive"])} for k in keys[:9]}, at)
        elif what == 4:  # retention, and a mention that moved
            store.mentions.delete_published_before(at - timedelta(days=8, hours=rng.randint(0, 20)))
            store.db.execute(
                "UPDATE mentions SET published_at = ? WHERE key = ?", [iso(at - timedelta(hours=50)), keys[-1]]
            )
            store.db.conn.commit()
        else:  # tags dropped
            store.db.execute("DELETE FROM mention_tags WHERE key = ?", [rng.choice(keys)])
            store.db.conn.commit()
        at += timedelta(minutes=rng.randint(1, 90))
        _check_counts(store, rng, at)


def test_an_hour_not_kept_is_counted_from_the_mentions() -> None:
    """A first run (an empty ``rule_hours``) and an hour whose row went missing both read the mentions."""
    store, _ = _world(2, days=9)
    start, end = NOW - timedelta(days=8), NOW - timedelta(hours=1)
    assert store.db.execute("SELECT count(*) FROM rule_hours").fetchone()[0] == 0
    assert store.conversations.sentiment_counts(start, end) == old_sentiment_counts(store, start, end)
    store.db.execute("DELETE FROM rule_hours WHERE hour IN (SELECT hour FROM rule_hours ORDER BY random() LIMIT 50)")
    store.db.conn.commit()
    assert store.conversations.sentiment_counts(start, end) == old_sentiment_counts(store, start, end)
    assert store.mentions.hourly_counts(start, end) == old_hourly_counts(store, start, end)


# -- the benchmark's seeded database ---------------------------------------------------------------------------


def test_the_seeded_10k_database_decides_as_the_old_reads(tmp_path: Path) -> None:
    """`tools.bench_scale`'s seeded 10k database with the equivalence test's burst, cycle after cycle (the clock going
    back once): the same triage and the same outbox as the old reads (the golden file pins the first cycle)."""
    from tests.test_rules_scale_equivalence import _burst
    from tools.bench_scale import NOW as BENCH_NOW
    from tools.bench_scale import _settings as bench_settings
    from tools.bench_scale import new_minute, seed

    new_db, old_db = tmp_path / "new.db", tmp_path / "old.db"
    seed(new_db)
    _burst(new_db)
    Store.open(new_db).close()
    shutil.copyfile(new_db, old_db)
    settings = bench_settings(new_db)
    for minutes in (0, 1, 2, 30, 7, 95, 24 * 60):
        at = BENCH_NOW + timedelta(minutes=minutes)
        found = []
        for db, old in ((new_db, False), (old_db, True)):
            if minutes:
                new_minute(db, at)
            store = Store.open(db)
            try:
                (old_triage if old else triage)(settings.triage, store, at)
                queued = evaluate(settings.rules, View(store, old=old), at)  # type: ignore[arg-type]
                score_advocates(settings.advocates, store, at)
                found.append((queued, _conversations(store), _trail(store), _outbox(store)))
            finally:
                store.close()
        assert found[0] == found[1], minutes
    assert found[0][0] or found[0][3]


def test_negative_mention_reads_the_whole_window_whenever_its_state_cannot_say_what_changed() -> None:
    """A first run, a clock gone back, a long gap, other settings, a cycle whose alerts were not queued: the whole
    window. Otherwise only what was written since; and the marks every rule read are dropped."""
    store, _ = _world(3)
    triage(TriageSettings(late_after_hours=0), store, NOW)
    reads: list[object] = []
    original = store.conversations.negative_between

    def spy(*args: Any, **kw: Any) -> Any:
        reads.append(kw.get("only"))
        return original(*args, **kw)

    store.conversations.negative_between = spy  # type: ignore[method-assign]
    rule = NegativeMention(min_reach=100)
    for minutes, whole in ((0, True), (1, False), (2, False), (1.5, True), (200, True), (201, False)):
        evaluate([rule], store, NOW + timedelta(minutes=minutes))
        assert (reads[-1] is None) == whole, minutes
    evaluate([NegativeMention(min_reach=50)], store, NOW + timedelta(minutes=202))
    assert reads[-1] is None  # other settings
    assert store.db.execute("SELECT count(*) FROM rule_marks").fetchone()[0] == 0
    evaluate([rule], store, NOW + timedelta(minutes=203))
    loud = Mention(
        platform="x",
        platform_id="loud",
        source="x-brand",
        text="Pessimo servizio @AuroraCaffe",
        author=Author("x", "loud", "loud", reach=50_000),
        published_at=NOW + timedelta(minutes=203, seconds=30),
        tags={"sentiment": "negative", "needs_answer": True},
    )
    store.save_poll("x-brand", "x", Poll(mentions=(loud,)), NOW + timedelta(minutes=203, seconds=30))
    original_enqueue = store.enqueue

    def failing(*args: Any, **kw: Any) -> int:
        raise RuntimeError("disk full")

    store.enqueue = failing  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        evaluate([rule], store, NOW + timedelta(minutes=204))
    store.enqueue = original_enqueue  # type: ignore[method-assign]
    evaluate([rule], store, NOW + timedelta(minutes=204, seconds=30))
    assert reads[-1] is not None  # from the last cycle whose alerts were queued: what the failed one read, again
    assert store.db.execute("SELECT 1 FROM outbox WHERE key = 'negative_mention:x:loud'").fetchone()
    evaluate([], store, NOW + timedelta(minutes=205))  # the rule is gone from the config: so are its state and marks
    assert store.db.execute("SELECT count(*) FROM rule_state").fetchone()[0] == 0
    store.mentions.correct_sentiment(store.db.execute("SELECT key FROM mentions").fetchone()[0], "negative", "a", NOW)
    evaluate([], store, NOW + timedelta(minutes=206))
    assert store.db.execute("SELECT count(*) FROM rule_marks").fetchone()[0] == 0
