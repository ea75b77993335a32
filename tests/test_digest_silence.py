"""The daily digest (text and autoescaped HTML, through a real SMTP server) and the silent-source valley rule."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from notifiers.apprise_notifier import AppriseNotifier
from passaparola.pipeline import deliver, evaluate, score_advocates, triage
from rules import DailyDigest, SourceSilent
from rules.advocates import AdvocateSettings
from rules.triage import TriageSettings
from storage import Store
from tests.conftest import Inbox
from tests.test_negative import say
from tests.test_notifiers import mail_url

ROME = ZoneInfo("Europe/Rome")
MORNING = datetime(2026, 3, 3, 8, 0, tzinfo=ROME).astimezone(UTC)
HOSTILE = "<script>alert('x')</script> capsule rotte"


def a_day_of_mentions(store: Store) -> None:
    for n in range(6):  # the day before: 4 positive, 2 negative about delivery
        label = "negative" if n < 2 else "positive"
        say(store, f"y{n}", MORNING - timedelta(hours=30 - n), label, text="Buon caffè", topics=("consegna",))
    for n in range(5):  # today: 5 negative about billing, 1 about delivery, 3 positive
        say(store, f"b{n}", MORNING - timedelta(hours=10 - n), "negative", text="Buon caffè", topics=("pagamenti",))
    at = MORNING - timedelta(hours=3)
    say(store, "d1", at, "negative", reach=300, text=HOSTILE, topics=("consegna",), url="javascript:alert(1)")
    for n in range(3):
        at = MORNING - timedelta(hours=2, minutes=n)
        say(store, f"p{n}", at, "positive", reach=5_000, text="Buon caffè", topics=("capsule",))
    triage(TriageSettings(), store, MORNING)
    score_advocates(AdvocateSettings(), store, MORNING)


def test_the_digest_comes_once_a_day_at_its_hour_with_the_days_figures(store: Store) -> None:
    a_day_of_mentions(store)
    rule = DailyDigest(at="08:00", timezone="Europe/Rome")
    assert list(rule.evaluate(store, MORNING - timedelta(minutes=1))) == []
    [digest] = rule.evaluate(store, MORNING)
    assert digest.key == "daily_digest:care:2026-03-03"
    assert digest.title == "Daily digest 2026-03-03: 9 mentions, 15 open, 15 overdue"
    lines = digest.body.splitlines()
    assert lines[0] == (
        "9 mentions in the last 24 hours (the day before: 6): positive 3 (-1), neutral 0 (+0), negative 6 (+4)."
    )
    assert lines[1] == "Open: 15, of which 15 overdue. Open alerts: 18."  # + 3 advocate alerts queued
    assert lines[3] == "What people complained about: pagamenti 5 (+5), consegna 1 (-1)"
    assert lines[4].startswith("Top advocates: userp0 ") and "(advocate)" in lines[4]
    assert evaluate([rule], store, MORNING) == 1
    assert evaluate([rule], store, MORNING + timedelta(hours=3)) == 0  # once a day


def test_the_html_digest_reaches_the_mailbox_with_hostile_text_escaped_and_no_unsafe_link(
    store: Store, smtp: tuple[Inbox, int]
) -> None:
    a_day_of_mentions(store)
    inbox, port = smtp
    [digest] = DailyDigest(at="08:00", timezone="Europe/Rome").evaluate(store, MORNING)
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in digest.html and "<script>" not in digest.html
    assert "javascript:" not in digest.html and "<h3>What people complained about</h3>" in digest.html
    store.enqueue([digest], MORNING)
    store.db.execute("DELETE FROM outbox WHERE kind != 'daily_digest'")
    assert deliver(store, AppriseNotifier({"care": [mail_url(port)]}), MORNING, random.Random(1)) == (1, 0)
    [message] = inbox.messages
    assert message["Subject"].startswith("Daily digest 2026-03-03")
    html = next(p for p in message.walk() if p.get_content_type() == "text/html").get_payload(decode=True).decode()
    assert "<script>" not in html and "&lt;script&gt;" in html and "<li>pagamenti: 5 (+5)</li>" in html


def test_a_first_start_after_the_hour_sends_the_first_digest_at_the_next_one(store: Store) -> None:
    a_day_of_mentions(store)
    rule = DailyDigest(at="08:00", timezone="Europe/Rome")
    start = MORNING + timedelta(hours=2)  # 10:00 in Rome: today's digest time has passed, nothing was sent
    assert evaluate([rule], store, start) == 0
    assert evaluate([rule], store, start + timedelta(hours=12)) == 0
    tomorrow = MORNING + timedelta(days=1)
    assert evaluate([rule], store, tomorrow - timedelta(minutes=1)) == 0
    assert evaluate([rule], store, tomorrow + timedelta(minutes=3)) == 1  # a cycle a little late still sends it
    assert store.outbox.last_alert_at("daily_digest", "care") == tomorrow + timedelta(minutes=3)


def test_the_digest_window_is_grace_minutes_long_and_may_cross_midnight() -> None:
    rule = DailyDigest(at="23:30", timezone="Europe/Rome", grace_minutes=60)
    late = datetime(2026, 3, 3, 23, 30, tzinfo=ROME)
    assert rule.due_day(late - timedelta(seconds=1)) is None
    assert rule.due_day(late) == rule.due_day(late + timedelta(minutes=59)) == late.date()
    assert rule.due_day(late + timedelta(minutes=60)) is None
    with pytest.raises(ValueError, match="grace_minutes: 0 is out of range"):
        DailyDigest(grace_minutes=0)


@pytest.mark.parametrize(
    ("silent_hours", "alerts"),
    [(5, 0), (7, 1)],
)
def test_a_source_silent_much_longer_than_usual_is_told_once(store: Store, silent_hours: int, alerts: int) -> None:
    start = MORNING - timedelta(days=3)
    for hour in range(72):  # a source that brings something every hour
        say(store, f"h{hour}", start + timedelta(hours=hour), "positive")
    last = start + timedelta(hours=71)
    now = last + timedelta(hours=silent_hours)
    found = list(SourceSilent().evaluate(store, now))
    assert len(found) == alerts
    if alerts:
        assert found[0].title == "Source s silent for 7 h (usually at most 1 h)"
        assert "Its polls succeed" in found[0].body and found[0].route == "ops"
        assert evaluate([SourceSilent()], store, now) == 1
        assert evaluate([SourceSilent()], store, now + timedelta(hours=1)) == 0  # one alert per silence


def test_a_source_with_a_slow_rhythm_or_too_little_history_is_not_called_silent(store: Store) -> None:
    start = MORNING - timedelta(days=6)
    for n in range(20):  # every 6 hours
        say(store, f"s{n}", start + timedelta(hours=6 * n), "positive")
    last = start + timedelta(hours=6 * 19)
    assert list(SourceSilent().evaluate(store, last + timedelta(hours=15))) == []  # 3 x 6 h = 18 h allowed
    assert len(list(SourceSilent().evaluate(store, last + timedelta(hours=19)))) == 1
    young = Store.memory()
    for n in range(5):
        say(young, f"n{n}", start + timedelta(hours=n), "positive")
    assert list(SourceSilent().evaluate(young, MORNING)) == []
