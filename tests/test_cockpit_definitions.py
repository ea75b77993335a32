"""One definition of "open", "unassigned" and "overdue" (#19), read through the inbox, the cockpit, the metrics
and the pages on the same replayed demo; the inbox by urgency, with the burst as one incident row."""

from __future__ import annotations

import random
import re
import statistics
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from listener import Author, Mention, Poll
from listener.model import Conversation
from passaparola.web.service import figures_of, response_days, tallied, weeks_start, window_figures
from rules.triage import figures, percentile
from storage import Store
from storage.board import ResponseTally
from storage.times import iso
from tests.webkit import NOW, Site, csrf_of, serve

RANK = {"urgent": 0, "high": 1, "normal": 2}


@pytest.fixture
def site(demo_db: Path, tmp_path: Path) -> Iterator[Site]:
    with serve(demo_db, tmp_path) as running:
        yield running


def every_open(api: httpx.Client, **params: str) -> list[dict[str, Any]]:
    rows, page = [], 1
    while True:
        found = api.get("/api/inbox", params={**params, "page": str(page)}).json()
        rows += found["items"]
        if page >= found["pages"]:
            return rows
        page += 1


def test_open_unassigned_and_overdue_mean_the_same_everywhere(site: Site) -> None:
    api = site.client("admin")
    rows = every_open(api)
    cockpit = api.get("/api/cockpit").json()
    nobody = [r for r in rows if not r["assignee"]]
    late = [r for r in rows if r["due_at"] and datetime.fromisoformat(r["due_at"]) <= NOW]
    assert len(nobody) > 10  # triage leaves the assignee empty (NULL) when nobody is free
    assert api.get("/api/inbox", params={"assignee": "-"}).json()["total"] == len(nobody) == cockpit["unassigned_open"]
    assert cockpit["open_now"] == len(rows) == site.store.counts()["open"]
    assert cockpit["overdue_now"] == len(late) > 0
    for load in cockpit["workloads"]:
        theirs = [r for r in rows if r["assignee"] == load["member"]]
        assert load["open"] == len(theirs)
        assert load["overdue"] == sum(1 for r in late if r["assignee"] == load["member"])
    metrics = {
        s.labels["sla_state"]: s.value
        for family in text_string_to_metric_families(api.get("/metrics").text)
        if family.name == "passaparola_unanswered"
        for s in family.samples
    }
    assert sum(metrics.values()) == len(rows) and metrics["breached"] == len(late)
    page = site.login("sara").get("/cockpit").text
    shown = {
        kpi: int(re.search(rf'id="{kpi}">[^<]*<b>(\d+)</b>', page).group(1))
        for kpi in ("open-count", "overdue-count", "unassigned-count")
    }  # type: ignore[union-attr]
    assert shown == {"open-count": len(rows), "overdue-count": len(late), "unassigned-count": len(nobody)}


def test_the_inbox_is_ordered_by_priority_then_time_left(site: Site) -> None:
    rows = every_open(site.client("agent"))
    keys = [(RANK[r["priority"]], r["due_at"] is None, r["due_at"] or "") for r in rows]
    assert keys == sorted(keys)
    assert rows[0]["priority"] != "normal"


def test_a_burst_is_one_incident_row_with_bulk_actions(site: Site) -> None:
    sara = site.login("sara")
    page = sara.get("/inbox").text
    incident = re.search(r'<article class="incident[^"]*" data-incident="([^"]+)">(.*?)</article>', page, re.S)
    assert incident, "the burst is not grouped"
    alert_key, body = incident.group(1), incident.group(2)
    count = int(re.search(r'<b class="count">(\d+)</b>', body).group(1))  # type: ignore[union-attr]
    grouped = re.findall(r'name="keys" value="([^"]+)"', body)
    assert count == len(grouped) >= 10
    listed = re.findall(r'<tr class="mention[^"]*" data-key="([^"]+)"', page)
    assert not set(grouped) & set(listed)  # the burst is not listed a second time
    assert f"<h1>Da rispondere <small>{site.store.counts()['open']}</small>" in page  # the total still counts it
    members = sara.get("/inbox", params={"incident": alert_key}).text
    assert sorted(re.findall(r'<tr class="mention[^"]*" data-key="([^"]+)"', members)) == sorted(grouped)
    form = {"csrf": csrf_of(page), "action": "ignore", "reason": "doppione", "keys": grouped}
    assert sara.post("/inbox/bulk", data=form).status_code == 303
    assert all(site.store.conversation(key).state == "ignored" for key in grouped)
    assert 'class="incident' not in sara.get("/inbox").text


def test_durations_are_human_and_every_page_names_its_time_zone(site: Site) -> None:
    sara = site.login("sara")
    zone = site.settings.triage.business.zone
    for path in ("/inbox", "/cockpit", "/advocates", "/sources", "/teach"):
        page = sara.get(path).text
        assert f'<span id="zone">{zone}</span>' in page, path
        ours = re.sub(r"<bdi>.*?</bdi>", "", page, flags=re.S)  # what people and alerts wrote is theirs
        assert not re.search(r"\b\d{3,} min\b", ours), path  # "4233 min" reads "2 g 22 h"


def test_a_mention_someone_else_has_open_or_is_answering_says_who(site: Site) -> None:
    giulia, sara = site.login("giulia"), site.login("sara")
    key = giulia.get("/api/inbox").json()["items"][0]["key"]
    page = giulia.get(f"/mentions/{key}").text
    assert 'class="collision"' not in page  # nobody else is on it
    seen = sara.get(f"/mentions/{key}").text
    assert re.search(r'class="collision".*<b><bdi>giulia</bdi></b> la sta guardando', seen, re.S)
    draft = {"csrf": csrf_of(page), "draft": "Ciao, ci scusiamo: controlliamo subito."}
    assert giulia.post(f"/mentions/{key}/lint", data=draft).status_code == 200
    row = next(r for r in every_open(site.client("supervisor")) if r["key"] == key)
    assert {"member": "giulia", "doing": "answering"} in row["others"]
    inbox = sara.get("/inbox").text
    assert re.search(rf'data-key="{re.escape(key)}".*?giulia</bdi>: sta scrivendo la risposta', inbox, re.S)
    notice = re.search(r'<p class="collision".*?</p>', giulia.get(f"/mentions/{key}").text, re.S).group(0)  # type: ignore[union-attr]
    assert "sara</bdi></b> la sta guardando" in notice and "giulia" not in notice  # never about herself
    site.clock.now = NOW + timedelta(minutes=6)
    assert 'class="collision"' not in sara.get(f"/mentions/{key}").text  # gone after five minutes


# -- the cockpit's figures in SQL are the figures of `rules.triage` (#19: 30 days at 100k mentions) ----------------

#: (zone, now): DST ends and starts, one at midnight (Sao Paulo, 2018: 00:00 back to 23:00 of the day before, and a
#: midnight that never happens), half-hour zones and shifts, a moment just before local midnight, UTC.
ZONES_AND_TIMES = [
    ("Europe/Rome", datetime(2026, 11, 1, 12, 0, 0, 500_000, tzinfo=UTC)),
    ("Europe/Rome", datetime(2026, 4, 10, 21, 59, 59, tzinfo=UTC)),
    ("America/Sao_Paulo", datetime(2018, 2, 25, 2, 30, tzinfo=UTC)),
    ("America/Sao_Paulo", datetime(2018, 11, 20, 12, 0, tzinfo=UTC)),
    ("Asia/Kolkata", datetime(2026, 6, 1, 18, 29, 59, tzinfo=UTC)),
    ("Australia/Lord_Howe", datetime(2026, 4, 20, 12, 0, tzinfo=UTC)),
    ("UTC", datetime(2026, 3, 2, 9, 0, tzinfo=UTC)),
]


def edges(zone: ZoneInfo, now: datetime, days: int = 32) -> list[datetime]:
    """The instants a day's bucket turns on: each local midnight, each offset change (found hour by hour, then
    to the second), one second either side, and the windows' ends."""
    found: list[datetime] = [now - timedelta(days=d) for d in (1, 7, 30)] + [now]
    day = (now - timedelta(days=days)).astimezone(zone).date()
    while day <= now.astimezone(zone).date():
        found.append(datetime.combine(day, time(), zone).astimezone(UTC))
        day += timedelta(days=1)
    at = now - timedelta(days=days)
    while at < now:
        step = at + timedelta(hours=1)
        if at.astimezone(zone).utcoffset() != step.astimezone(zone).utcoffset():
            low, high = at, step
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                same = middle.astimezone(zone).utcoffset() == at.astimezone(zone).utcoffset()
                low, high = (middle, high) if same else (low, middle)
            found.append(high.replace(microsecond=0))
        at = step
    return [e.replace(microsecond=0) + timedelta(seconds=s) for e in found for s in (-1, 0, 1)]


def spread(store: Store, now: datetime, zone: ZoneInfo, seed: int = 19, count: int = 260) -> None:
    """Mentions over the 32 days before ``now`` (and a few after), on every edge of `edges`, in every state, with
    every kind of deadline, answer, team, member, sentiment (corrected or not) and follow-up the figures read."""
    rng = random.Random(seed)
    start = now - timedelta(days=32)
    moments = [
        start + timedelta(seconds=rng.randrange(int((now - start).total_seconds()) + 3600)) for _ in range(count)
    ]
    moments += edges(zone, now)
    authors = [Author(p, str(i), f"a{i}", f"A {i}") for i in range(5) for p in ("x", "forum", "review")]
    mentions = []
    for n, at in enumerate(moments):
        author = rng.choice(authors)
        tags = {"language": "it", "sentiment": rng.choice(["negative", "neutral", "positive", "mixed"])}
        mentions.append(Mention(author.platform, f"m{n}", "test", f"detto {n}", at, author, tags=tags))
    for start_at in range(0, len(mentions), 200):
        store.save_poll("test", "test", Poll(mentions=tuple(mentions[start_at : start_at + 200])), now)
    keys = [m.key for m in mentions]

    def moment(around: datetime) -> str | None:
        choice = rng.random()
        if choice < 0.1:
            return None
        if choice < 0.15:
            return ""
        if choice < 0.25:
            return iso(now + timedelta(seconds=rng.choice((-1, 0, 1))))
        return iso(around + timedelta(minutes=rng.randrange(-600, 1200)))

    for n, m in enumerate(mentions):
        state = rng.choices(["new", "assigned", "reopened", "answered", "ignored"], [2, 2, 1, 6, 1])[0]
        seconds = rng.choice([None, 0, 60, 61.5, 1200, 1200, rng.uniform(0, 90_000)])
        if state == "answered" and rng.random() < 0.8:
            seconds = seconds if seconds is not None else 30
        store.db.execute(
            "UPDATE conversations SET state = ?, response_seconds = ?, due_at = ?, answered_at = ?, team = ?, "
            "assignee = ?, answered_by = ?, follows_key = ?, triaged_at = ? WHERE key = ?",
            [
                state,
                seconds,
                moment(m.published_at),
                moment(m.published_at),
                rng.choice([None, "", "billing", "care"]),
                rng.choice([None, "", "giulia", "marco"]),
                rng.choice([None, "", "", "sara"]),
                rng.choice([None, "", "", rng.choice(keys), keys[max(n - 1, 0)], "x:gone"]),
                rng.choice([iso(now), iso(now), None]),
                m.key,
            ],
        )
        if rng.random() < 0.1:
            store.db.execute("UPDATE mention_tags SET sentiment = NULL WHERE key = ?", [m.key])
        elif rng.random() < 0.05:
            store.db.execute("DELETE FROM mention_tags WHERE key = ?", [m.key])
        if rng.random() < 0.15:
            label = rng.choice(["negative", "neutral", "positive"])
            store.db.execute(
                "INSERT INTO sentiment_corrections (key, label, model_label, corrected_by, corrected_at) "
                "VALUES (?, ?, '', 'sara', ?)",
                [m.key, label, iso(now)],
            )
    store.db.conn.commit()


def python_days(conversations: list[Conversation], now: datetime, zone: ZoneInfo, span: int) -> list[dict[str, Any]]:
    """The cockpit's per-day figures as they were computed before #19: every conversation of the window read,
    bucketed by its local day in Python."""
    first = now.astimezone(zone).date() - timedelta(days=span - 1)
    start = datetime.combine(first, time(), zone)
    by_day: dict[str, list[Conversation]] = {}
    for c in conversations:
        if c.mention.published_at >= start:
            by_day.setdefault(c.mention.published_at.astimezone(zone).date().isoformat(), []).append(c)
    out = []
    for n in range(span):
        day = (first + timedelta(days=n)).isoformat()
        f = figures(by_day.get(day, []), now).get("all", {}).get("all")
        out.append(
            {
                "day": day,
                "needing_answer": f.needing_answer if f else 0,
                "answered": f.answered if f else 0,
                "median_seconds": f.median_seconds if f else None,
                "p90_seconds": f.p90_seconds if f else None,
                "compliance": f.compliance if f else None,
            }
        )
    return out


@pytest.mark.parametrize(("zone_name", "now"), ZONES_AND_TIMES)
def test_the_figures_counted_in_sql_are_the_figures_of_every_conversation(zone_name: str, now: datetime) -> None:
    zone = ZoneInfo(zone_name)
    store = Store.memory()
    try:
        spread(store, now, zone)
        for days in (1, 7, 30):
            since = now - timedelta(days=days)
            conversations = store.conversations.between(since, now)
            assert any(c.follows_key for c in conversations) and len({c.state for c in conversations}) == 5
            first = now.astimezone(zone).date() - timedelta(days=days - 1)
            tallies = store.board.response_tallies(since, now, now, days=(datetime.combine(first, time(), zone), zone))
            assert figures_of(tallies.groups) == figures(conversations, now), days
            assert window_figures(store, since, now, now, ("all",)) == {"all": figures(conversations, now)["all"]}
            shown = response_days(tallies.days, first, days)
            assert shown == python_days(conversations, now, zone, days), days
            assert sum(d["needing_answer"] for d in shown) > 0
        table = figures(store.conversations.between(now - timedelta(days=30), now), now)
        assert table["all"]["all"].follow_ups > 0 and table["all"]["all"].breached_open > 0
    finally:
        store.close()


def test_the_median_and_p90_read_from_a_histogram_are_the_lists() -> None:
    rng = random.Random(7)
    for n in range(1, 60):
        values = [float(rng.choice((0, 60, 61.5, 1200, rng.uniform(0, 9000)))) for _ in range(n)]
        merged: dict[float, int] = {}
        for v in values:
            merged[v] = merged.get(v, 0) + 1
        tally = ResponseTally(needing_answer=n, answered=n, seconds=sorted(merged.items()))
        f = tallied(tally)
        assert (f.median_seconds, f.p90_seconds) == (statistics.median(values), percentile(values, 0.9))


def old_complaint_topics(store: Store, since: datetime, limit: int = 6) -> list[tuple[str, dict[str, int]]]:
    """`Board.complaint_topics` as it read before the cockpit's two lists came from one read."""
    rows = store.db.execute(
        "SELECT j.value, substr(m.published_at, 1, 10), count(*) FROM mentions m "
        "JOIN mention_tags t ON t.key = m.key LEFT JOIN sentiment_corrections sc ON sc.key = m.key, "
        "json_each(COALESCE(t.topics, '[]')) j "
        "WHERE m.published_at > ? AND COALESCE(json_extract(t.extra, '$.topic_sentiment.\"' || j.value || '\"'), "
        "sc.label, t.sentiment) = 'negative' GROUP BY 1, 2",
        [iso(since)],
    ).fetchall()
    topics: dict[str, dict[str, int]] = {}
    for topic, day, count in rows:
        topics.setdefault(topic, {})[day] = count
    return sorted(topics.items(), key=lambda item: (-sum(item[1].values()), item[0]))[:limit]


def test_the_complaints_and_their_weeks_come_from_one_read_with_the_same_counts() -> None:
    now = ZONES_AND_TIMES[0][1]
    store = Store.memory()
    try:
        rng = random.Random(3)
        author = Author("x", "1", "anna", "Anna")
        mentions = []
        for n in range(300):
            topics = rng.sample(["consegna", "prezzo", "gusto", "app", "cassa", "bar", "orari", "latte"], 2)
            tags = {
                "sentiment": rng.choice(["negative", "neutral", "mixed"]),
                "topics": topics,
                "topic_sentiment": {topics[0]: rng.choice(["negative", "positive"])},
            }
            at = now - timedelta(minutes=rng.randrange(60 * 24 * 40))
            mentions.append(Mention("x", f"c{n}", "test", f"detto {n}", at, author, tags=tags))
        store.save_poll("test", "test", Poll(mentions=tuple(mentions)), now)
        for days in (7, 30):
            since, wider = now - timedelta(days=days), weeks_start(now, days)
            assert store.board.complaints(since, wider) == (
                old_complaint_topics(store, since),
                old_complaint_topics(store, wider),
            )
            assert store.board.complaint_topics(since) == old_complaint_topics(store, since)
    finally:
        store.close()


def check_kept_days(store: Store, now: datetime, zone: ZoneInfo) -> None:
    """The 30-day tallies, read with the days kept in `response_days`, are the figures of every conversation."""
    since = now - timedelta(days=30)
    first = now.astimezone(zone).date() - timedelta(days=29)
    tallies = store.board.response_tallies(since, now, now, days=(datetime.combine(first, time(), zone), zone))
    conversations = store.conversations.between(since, now)
    assert figures_of(tallies.groups) == figures(conversations, now)
    assert response_days(tallies.days, first, 30) == python_days(conversations, now, zone, 30)


@pytest.mark.parametrize(("zone_name", "now"), [ZONES_AND_TIMES[0], ZONES_AND_TIMES[4]])
def test_the_days_kept_for_the_cockpit_follow_every_write_that_changes_them(zone_name: str, now: datetime) -> None:
    """#23: whole days' settled rows are kept (m023) and dropped by triggers; after each kind of write (an answer, a
    reopening, a reassignment, a new follow-up, a reading, a correction or a reassignment of a mention followed up,
    a mention moved to another day or deleted) the kept days give the figures counted from every conversation."""
    zone = ZoneInfo(zone_name)
    store = Store.memory()
    rng = random.Random(5)
    try:
        spread(store, now, zone, count=200)
        check_kept_days(store, now, zone)
        assert store.db.execute("SELECT count(*) FROM response_days").fetchone()[0] >= 28  # the whole days are kept
        window = store.conversations.between(now - timedelta(days=29), now - timedelta(days=1))
        followed = [c.follows_key for c in window if c.follows_key and c.follows_key != "x:gone"]
        assert followed
        db = store.db

        def settled() -> str:
            return rng.choice([c.mention.key for c in window if c.state in ("answered", "ignored")])

        def anyone() -> str:
            return rng.choice([c.mention.key for c in window])

        writes = [
            lambda: db.execute(
                "UPDATE conversations SET state = 'answered', response_seconds = ?, answered_at = ?, due_at = ? "
                "WHERE key = ?",
                [rng.choice([5, 7200]), iso(now - timedelta(days=3)), iso(now), anyone()],
            ),
            lambda: db.execute("UPDATE conversations SET state = 'reopened' WHERE key = ?", [settled()]),
            lambda: db.execute("UPDATE conversations SET team = 'care', assignee = 'marco' WHERE key = ?", [settled()]),
            lambda: db.execute(
                "UPDATE conversations SET follows_key = ? WHERE key = ?", [rng.choice(followed), settled()]
            ),
            lambda: db.execute(
                "UPDATE mention_tags SET sentiment = ? WHERE key = ?",
                [rng.choice(["negative", "positive"]), rng.choice(followed)],
            ),
            lambda: db.execute(
                "INSERT OR REPLACE INTO sentiment_corrections (key, label, model_label, corrected_by, corrected_at) "
                "VALUES (?, ?, '', 'sara', ?)",
                [rng.choice(followed), rng.choice(["negative", "neutral", "positive"]), iso(now)],
            ),
            lambda: db.execute(
                "DELETE FROM sentiment_corrections WHERE key IN (SELECT key FROM sentiment_corrections LIMIT 3)"
            ),
            lambda: db.execute(
                "UPDATE mentions SET published_at = ? WHERE key = ?",
                [iso(now - timedelta(days=rng.randrange(2, 28))), settled()],
            ),
            lambda: db.execute(
                "UPDATE conversations SET team = 'billing', answered_by = 'sara' WHERE key = ?", [rng.choice(followed)]
            ),
        ]
        for step in range(36):
            writes[step % len(writes)]()
            db.conn.commit()
            check_kept_days(store, now, zone)
        gone = settled()
        for table in ("conversations", "mention_tags", "sentiment_corrections"):
            db.execute(f"DELETE FROM {table} WHERE key = ?", [gone])
        db.execute("DELETE FROM mentions WHERE key = ?", [gone])
        db.conn.commit()
        check_kept_days(store, now, zone)
    finally:
        store.close()


def test_a_page_counts_without_keeping_while_another_writer_holds_the_lock(tmp_path: Path) -> None:
    """The cockpit never waits on the daemon's write: with the lock held elsewhere it counts the days, keeps none."""
    import sqlite3

    now, zone = ZONES_AND_TIMES[0][1], ZoneInfo("Europe/Rome")
    store = Store.open(tmp_path / "p.db")
    other = sqlite3.connect(tmp_path / "p.db")
    try:
        spread(store, now, zone, count=120)
        other.execute("BEGIN IMMEDIATE")
        check_kept_days(store, now, zone)
        assert store.db.execute("SELECT count(*) FROM response_days").fetchone()[0] == 0
        other.rollback()
        check_kept_days(store, now, zone)
        assert store.db.execute("SELECT count(*) FROM response_days").fetchone()[0] >= 28
    finally:
        other.close()
        store.close()
