"""The cockpit at 1M stored mentions (#23, `make bench`): it reads its windows through indexes (m020), never every
stored mention or conversation, and the figures read that way are the ones the plain queries gave. Speed itself is
measured by the bench, never here."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from listener import Author, Mention, Poll
from passaparola.cli import demo_settings
from passaparola.web import service
from storage import Store
from storage.board import OPEN_SQL, Workload
from storage.times import iso, parse_time

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TOPICS = ("consegna", "prezzo", "gusto", "app", "cassa")
#: The tables that grow with every stored mention: a plan line "SCAN" of one of them reads all of it.
BIG = ("mentions", "conversations", "mention_tags", "m", "c", "t")


@pytest.fixture
def store() -> Iterator[Store]:
    """Some 400 triaged mentions over 70 days: reviews with stars, topics on some, open and answered ones with
    assignees and deadlines (some missed today), a few corrected by a person."""
    rng = random.Random(23)
    authors = [Author(p, str(i), f"a{i}", f"A {i}") for i in range(5) for p in ("x", "google_reviews")]
    mentions = []
    for n in range(400):
        author = rng.choice(authors)
        topics = rng.sample(TOPICS, rng.choice([0, 0, 1, 2]))
        tags = {
            "language": "it",
            "sentiment": rng.choice(["negative", "neutral", "positive", "mixed"]),
            "topics": topics,
            "topic_sentiment": {topics[0]: rng.choice(["negative", "positive"])} if topics else {},
        }
        rated = author.platform == "google_reviews" and rng.random() < 0.7
        mentions.append(
            Mention(
                author.platform,
                f"p{n}",
                "test",
                f"detto {n}",
                NOW - timedelta(minutes=rng.randrange(60 * 24 * 70)),
                author,
                metrics={"rating": rng.randint(1, 5)} if rated else {},
                tags=tags,
                place=rng.choice(["Milano", "Roma"]) if rated else "",
            )
        )
    opened = Store.memory()
    opened.save_poll("test", "test", Poll(mentions=tuple(mentions)), NOW)
    for m in mentions:
        due = m.published_at + timedelta(minutes=rng.choice([30, 120, 600]))
        state = rng.choice(["new", "assigned", "answered", "answered", "ignored", "reopened"])
        answered = due + timedelta(minutes=rng.randrange(-60, 60)) if state == "answered" else None
        opened.db.execute(
            "UPDATE conversations SET state = ?, triaged_at = ?, assignee = ?, due_at = ?, answered_at = ?, "
            "response_seconds = ?, team = ? WHERE key = ?",
            [
                state,
                iso(NOW),
                rng.choice(["giulia", "marco", "", None]),
                iso(due) if rng.random() < 0.9 else None,
                iso(answered) if answered else None,
                (answered - m.published_at).total_seconds() if answered else None,
                rng.choice(["care", "social", ""]),
                m.key,
            ],
        )
        if rng.random() < 0.05:
            opened.db.execute(
                "INSERT INTO sentiment_corrections (key, label, model_label, corrected_by, corrected_at) "
                "VALUES (?, 'negative', 'neutral', 'giulia', ?)",
                [m.key, iso(NOW)],
            )
    opened.db.conn.commit()
    yield opened
    opened.close()


def plans(store: Store, tmp_path: Path, days: int) -> dict[str, list[str]]:
    """Each query the cockpit of ``days`` runs, with its plan's lines."""
    settings = demo_settings(tmp_path / "unused.db", tmp_path / "alerts.jsonl")
    seen: list[str] = []
    store.db.conn.set_trace_callback(seen.append)
    try:
        service.cockpit(settings, store, NOW, days)
    finally:
        store.db.conn.set_trace_callback(None)
    found = {}
    for sql in seen:
        if re.match(r"\s*SELECT", sql):
            found[sql] = [row[3] for row in store.db.conn.execute("EXPLAIN QUERY PLAN " + sql).fetchall()]
    return found


@pytest.mark.parametrize("days", service.COCKPIT_DAYS)
def test_the_cockpit_never_reads_every_stored_mention_or_conversation(store: Store, tmp_path: Path, days: int) -> None:
    found = plans(store, tmp_path, days)
    assert found
    scans = re.compile(rf"^SCAN ({'|'.join(BIG)})\b")
    assert {sql: lines for sql, lines in found.items() if any(scans.match(line) for line in lines)} == {}


def test_the_ratings_read_the_rated_mentions_alone(store: Store, tmp_path: Path) -> None:
    lines = [line for sql, lines in plans(store, tmp_path, 1).items() if "$.rating" in sql for line in lines]
    assert any("mentions_rated" in line for line in lines), lines


def test_the_response_figures_read_the_window_from_the_index_alone(store: Store, tmp_path: Path) -> None:
    lines = [line for sql, lines in plans(store, tmp_path, 7).items() if "response_seconds" in sql for line in lines]
    assert any("COVERING INDEX mentions_published_channel" in line for line in lines), lines


def old_workloads(store: Store, now: datetime, day_start: datetime) -> dict[str, Workload]:
    """`Board.workloads` as it was before m020: every conversation with an assignee read."""
    rows = store.db.execute(
        f"""
        SELECT c.assignee, sum({OPEN_SQL}), min(CASE WHEN {OPEN_SQL} THEN m.published_at END),
               sum(c.due_at >= :start AND c.due_at < :now AND ({OPEN_SQL} OR c.answered_at > c.due_at)),
               sum({OPEN_SQL} AND c.due_at <= :now)
        FROM conversations c JOIN mentions m ON m.key = c.key
        WHERE c.triaged_at IS NOT NULL AND COALESCE(c.assignee, '') != '' AND ({OPEN_SQL} OR c.due_at >= :start)
        GROUP BY c.assignee
        """,
        {"start": iso(day_start), "now": iso(now)},
    ).fetchall()
    return {r[0]: Workload(r[0], int(r[1] or 0), parse_time(r[2]), int(r[3] or 0), int(r[4] or 0)) for r in rows}


def test_the_workloads_read_by_index_are_those_of_every_conversation(store: Store) -> None:
    for hours in (0, 6, 12, 36):
        now = NOW - timedelta(hours=hours)
        day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        found = store.board.workloads(now, day_start)
        assert found == old_workloads(store, now, day_start)
    assert found and any(load.breaches_today for load in store.board.workloads(NOW, NOW.replace(hour=0)).values())


def test_the_complaints_read_by_index_count_the_mentions_with_no_topic_as_none(store: Store) -> None:
    since, wider = NOW - timedelta(days=7), service.weeks_start(NOW, 7)
    rows = store.db.execute(
        "SELECT j.value, substr(m.published_at, 1, 10), m.published_at > :since, count(*) FROM mentions m "
        "JOIN mention_tags t ON t.key = m.key LEFT JOIN sentiment_corrections sc ON sc.key = m.key, "
        "json_each(COALESCE(t.topics, '[]')) j "
        "WHERE m.published_at > :wider AND COALESCE(json_extract(t.extra, '$.topic_sentiment.\"' || j.value || "
        "'\"'), sc.label, t.sentiment) = 'negative' GROUP BY 1, 2, 3",
        {"since": iso(since), "wider": iso(wider)},
    ).fetchall()
    every: dict[str, dict[str, int]] = {}
    for topic, day, _, count in rows:
        every.setdefault(topic, {})[day] = every.get(topic, {}).get(day, 0) + count
    expected = sorted(every.items(), key=lambda item: (-sum(item[1].values()), item[0]))[:6]
    assert expected and store.board.complaints(since, wider)[1] == expected
