"""Advocate scoring re-reads only the people with something new (issue #23), and gives what a full re-score gives.

A cycle claims the people that storage's triggers marked (a mention stored, re-read or corrected, a reach changed,
accounts linked) plus those with a mention leaving the window; everyone else's score only ages. On the scale
benchmark's seeded 10k database, cycles with changes in between must end where one full re-score at the same clock
ends: the same tiers, praise and counts, and scores equal up to the four-decimal rounding of their terms.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from listener import Author, Mention, Poll
from passaparola.pipeline import score_advocates
from rules.advocates import AdvocateSettings, scoring_key
from storage import Store

ROUNDING = 0.00005  # each counted term of a score is rounded to four decimals


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tools.bench_scale import seed

    db = tmp_path_factory.mktemp("advocates") / "seeded.db"
    seed(db)
    return db


def _copy(seeded: Path, tmp_path: Path, name: str) -> Store:
    shutil.copyfile(seeded, tmp_path / name)
    return Store.open(tmp_path / name)


def _scores(store: Store) -> dict[int, tuple]:
    rows = store.db.execute(
        "SELECT person_id, score, tier, counted, praised, last_praise_key FROM advocate_scores"
    ).fetchall()
    return {row[0]: row[1:] for row in rows}


def _praise(who: Author, n: int, at: datetime, text: str = "") -> Mention:
    return Mention(
        platform=who.platform,
        platform_id=f"incremental-{who.handle}-{n}",
        source="demo",
        text=text or f"Miscela numero {n}: la migliore che abbia provato, grazie davvero {n}",
        published_at=at,
        author=who,
        url=f"https://example.org/{who.handle}/{n}",
        tags={"sentiment": "positive", "sentiment_probs": {"positive": 0.95}, "topics": ["capsule"]},
    )


def _changes(store: Store, at: datetime) -> dict[str, int]:
    """A day's worth of what moves scores: new praise (a known author and a new one), a correction, a reach that
    grew, two accounts linked. Returns the people each change is about."""
    from tools.bench_scale import NOW

    known = store.db.execute(
        "SELECT a.platform, substr(a.key, length(a.platform) + 2), a.handle, pa.person_id FROM authors a "
        "JOIN person_authors pa ON pa.author_key = a.key ORDER BY a.key LIMIT 4"
    ).fetchall()
    praised = Author(known[0][0], known[0][1], known[0][2])
    newcomer = Author("x", "incremental-newcomer", "nuova_cliente", reach=5_000)
    store.save_poll(
        "demo",
        "demo",
        Poll(
            mentions=(_praise(praised, 1, at - timedelta(minutes=5)), _praise(newcomer, 2, at - timedelta(minutes=3)))
        ),
        at,
    )
    corrected_key, corrected_person = store.db.execute(
        "SELECT m.key, pa.person_id FROM mentions m JOIN person_authors pa ON pa.author_key = m.author_key "
        "JOIN mention_tags t ON t.key = m.key WHERE t.sentiment = 'negative' AND m.published_at > ? "
        "AND pa.person_id NOT IN (?, ?, ?) ORDER BY m.published_at DESC LIMIT 1",
        [(NOW - timedelta(days=20)).isoformat(), known[0][3], known[1][3], known[2][3]],
    ).fetchone()
    store.mentions.correct_sentiment(corrected_key, "positive", "giulia", at)
    store.db.execute("UPDATE authors SET reach = reach + 250000 WHERE key = ?", [f"{known[1][0]}:{known[1][1]}"])
    store.db.conn.commit()
    store.people.link(known[2][3], f"{known[3][0]}:{known[3][1]}", "giulia", at)
    return {
        "praised": known[0][3],
        "reach": known[1][3],
        "linked": known[2][3],
        "merged": known[3][3],
        "corrected": corrected_person,
    }


def test_cycles_with_changes_end_where_a_full_rescore_ends(seeded: Path, tmp_path: Path) -> None:
    from tools.bench_scale import NOW

    settings = AdvocateSettings()
    store = _copy(seeded, tmp_path, "incremental.db")
    first = score_advocates(settings, store, NOW)
    everyone = first.scored
    assert everyone > 20

    later = NOW + timedelta(hours=3)
    about = _changes(store, later)
    store.people.sync(later)  # what the cycle does first: the newcomer gets a person
    # What the cycle will claim (claiming twice claims the same: the marks stay until the scores are saved).
    rescored_ids = store.people.claim_changed(scoring_key(settings), later - timedelta(days=180), later)
    assert rescored_ids is not None
    again = score_advocates(settings, store, later)
    assert again.scored <= len(rescored_ids)
    newcomer = store.people.resolve("x:incremental-newcomer")
    # Only the people a change was about (and those with a mention that left the window) were re-read...
    assert {about["praised"], about["reach"], about["linked"], about["corrected"], newcomer} <= rescored_ids
    assert again.scored < everyone // 2
    assert about["merged"] not in _scores(store)  # merged into another person: no score of their own
    # ... and the others' scores aged in place (three hours is past the hour after which a score is aged).
    incremental = _scores(store)
    store.close()

    full = _copy(seeded, tmp_path, "full.db")
    score_advocates(settings, full, NOW)
    _changes(full, later)
    full.db.execute("DELETE FROM advocate_runs")  # no previous cycle: everyone is re-read
    full.db.conn.commit()
    assert score_advocates(settings, full, later).scored > again.scored
    expected = _scores(full)
    full.close()

    assert incremental.keys() == expected.keys()
    for person, (score, tier, counted, praised, last_praise) in expected.items():
        found = incremental[person]
        assert found[1:] == (tier, counted, praised, last_praise), person
        assert abs(found[0] - score) <= ROUNDING * counted + 1e-9, (person, found[0], score)
        if person in rescored_ids:
            assert found[0] == score, person


def test_a_mention_leaving_the_window_rereads_its_author(seeded: Path, tmp_path: Path) -> None:
    from tools.bench_scale import NOW

    settings = AdvocateSettings()
    store = _copy(seeded, tmp_path, "window.db")
    score_advocates(settings, store, NOW)
    edge = NOW - timedelta(days=settings.window_days)
    leaving = store.db.execute(
        "SELECT pa.person_id FROM mentions m JOIN person_authors pa ON pa.author_key = m.author_key "
        "JOIN mention_tags t ON t.key = m.key WHERE m.published_at > ? AND t.sentiment IN ('positive', 'negative') "
        "ORDER BY m.published_at LIMIT 1",
        [edge.isoformat()],
    ).fetchone()[0]
    oldest = store.db.execute(
        "SELECT min(m.published_at) FROM mentions m JOIN person_authors pa ON pa.author_key = m.author_key "
        "WHERE pa.person_id = ? AND m.published_at > ?",
        [leaving, edge.isoformat()],
    ).fetchone()[0]
    past = datetime.fromisoformat(oldest) + timedelta(days=settings.window_days, seconds=1)
    changed = store.people.claim_changed(scoring_key(settings), past - timedelta(days=settings.window_days), past)
    assert changed is not None and leaving in changed
    store.close()


def test_a_mark_made_while_a_cycle_reads_keeps_its_person_for_the_next(seeded: Path, tmp_path: Path) -> None:
    from tools.bench_scale import NOW

    settings = AdvocateSettings()
    store = _copy(seeded, tmp_path, "race.db")
    score_advocates(settings, store, NOW)
    later = NOW + timedelta(minutes=1)
    person, key = store.db.execute(
        "SELECT pa.person_id, m.key FROM mentions m JOIN person_authors pa ON pa.author_key = m.author_key "
        "ORDER BY m.published_at DESC LIMIT 1"
    ).fetchone()
    since = later - timedelta(days=settings.window_days)
    assert store.people.claim_changed(scoring_key(settings), since, later) == set()
    store.mentions.correct_sentiment(key, "positive", "giulia", later)  # written after the cycle claimed its marks
    store.people.save_scores([], later, set(), scoring_key(settings), since)
    again = store.people.claim_changed(scoring_key(settings), since, later)
    assert again == {person}
    store.close()


def test_other_settings_rescore_everyone(seeded: Path, tmp_path: Path) -> None:
    from tools.bench_scale import NOW

    store = _copy(seeded, tmp_path, "settings.db")
    first = score_advocates(AdvocateSettings(), store, NOW)
    assert score_advocates(AdvocateSettings(), store, NOW + timedelta(minutes=1)).scored < first.scored
    stricter = replace(AdvocateSettings(), half_life_days=7.0)
    assert score_advocates(stricter, store, NOW + timedelta(minutes=2)).scored == first.scored
    store.close()
