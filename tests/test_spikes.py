"""Spike detection on synthetic series: a real spike is told once with its explanation; ordinary days are not."""

from __future__ import annotations

from datetime import datetime, timedelta

from listener import Author, Mention, Poll
from listener.model import HourCount
from rules import VolumeSpike
from storage import Store
from tests.conftest import T0

NOW = T0  # Monday 09:00 UTC


def fill(
    store: Store,
    hours: int,
    per_hour: int,
    end: datetime = NOW - timedelta(hours=2),
    prefix: str = "b",
    text: str = "Ho provato la miscela nuova, buona",
) -> None:
    """``per_hour`` mentions in each of the ``hours`` hours starting at ``end`` and going back."""
    mentions = []
    for hour in range(hours):
        for n in range(per_hour):
            at = end - timedelta(hours=hour) + timedelta(minutes=n * 60 // max(per_hour, 1))
            author = Author(platform="x", platform_id=f"{prefix}{hour}-{n}", handle=f"user{n}")
            mentions.append(
                Mention(
                    platform="x",
                    platform_id=f"{prefix}-{hour}-{n}",
                    source="s",
                    text=text,
                    published_at=at,
                    author=author,
                )
            )
    store.save_poll("s", "x", Poll(mentions=tuple(mentions)), NOW)


def burst(store: Store, count: int, minutes: int = 40) -> None:
    mentions = tuple(
        Mention(
            platform="x",
            platform_id=f"burst-{n}",
            source="s",
            published_at=NOW - timedelta(minutes=minutes) + timedelta(minutes=n * minutes / count),
            text=f"Doppio addebito sull'abbonamento #AuroraCaffe {n}",
            url=f"https://x.com/u/status/{n}",
            author=Author(platform="x", platform_id=f"burster{n % 7}", handle=f"burster{n % 7}", reach=n),
        )
        for n in range(count)
    )
    store.save_poll("s", "x", Poll(mentions=mentions), NOW)


def test_an_ordinary_hour_is_not_a_spike(store: Store) -> None:
    fill(store, hours=72, per_hour=4)
    burst(store, 6)
    assert list(VolumeSpike().evaluate(store, NOW)) == []


def test_a_burst_is_one_alert_that_explains_itself(store: Store) -> None:
    fill(store, hours=72, per_hour=4)
    burst(store, 30)
    [alert] = VolumeSpike(ignore_terms=["abbonamento"]).evaluate(store, NOW)
    assert alert.title == "Mention spike: 30 in 60 min, about 4.0 expected" and alert.kind == "volume_spike"
    assert (
        "30 still unanswered" in alert.body and "Top terms: #auroracaffe (30), addebito (30), doppio (30)" in alert.body
    )
    assert "abbonamento" not in alert.body.split("Most active")[0]
    assert "Most active: @burster0 (5)" in alert.body and "Channels: x 30" in alert.body
    assert "- @burster1 on x: “Doppio addebito" in alert.body  # the widest reach first (29 followers)


def test_no_alert_while_warming_up(store: Store) -> None:
    fill(store, hours=10, per_hour=1)
    burst(store, 40)
    assert list(VolumeSpike(warmup_hours=24).evaluate(store, NOW)) == []


def test_a_quiet_brand_needs_the_minimum_volume(store: Store) -> None:
    fill(store, hours=72, per_hour=0)
    fill(store, hours=1, per_hour=1, end=NOW - timedelta(hours=60))
    burst(store, 8)
    assert list(VolumeSpike(min_volume=10).evaluate(store, NOW)) == []
    assert len(list(VolumeSpike(min_volume=5).evaluate(store, NOW))) == 1


def test_the_usual_monday_peak_is_not_a_spike_but_the_same_volume_on_another_hour_is(store: Store) -> None:
    fill(store, hours=21 * 24, per_hour=2)
    for week in (1, 2, 3):  # every Monday 08:00-09:00 is busy: the newsletter goes out
        fill(store, hours=1, per_hour=30, end=NOW - timedelta(weeks=week, hours=1), prefix=f"peak{week}")
    burst(store, 30, minutes=50)
    assert list(VolumeSpike().evaluate(store, NOW)) == []
    assert len(list(VolumeSpike().evaluate(store, NOW + timedelta(hours=4)))) == 0  # nothing new then
    other = NOW + timedelta(days=1)  # Tuesday, no newsletter: the same 30 would be a spike
    fill(store, hours=1, per_hour=30, end=other - timedelta(minutes=50), prefix="tue")
    assert len(list(VolumeSpike().evaluate(store, other))) == 1


def test_one_alert_per_episode_thanks_to_the_cooldown(store: Store) -> None:
    fill(store, hours=72, per_hour=4)
    burst(store, 30)
    rule = VolumeSpike(cooldown_hours=3)
    store.enqueue(rule.evaluate(store, NOW), NOW)
    assert list(rule.evaluate(store, NOW + timedelta(minutes=30))) == []
    assert store.outbox.last_alert_at("volume_spike", "care") == NOW


# -- the first day: X's counts stand in for the history passaparola does not have yet ---------------------------


def platform(store: Store, first: datetime, last: datetime, per_hour: int) -> None:
    """X's counts for the hours ``first`` to ``last`` (both included), ``per_hour`` posts each, as polls store them."""
    hours = int((last - first).total_seconds() // 3600) + 1
    store.platform_counts.save("s", [HourCount(first + timedelta(hours=n), per_hour) for n in range(hours)])


def listened(store: Store, at: datetime, published: list[datetime], prefix: str) -> None:
    """One poll at ``at`` bringing mentions published at ``published``."""
    mentions = tuple(
        Mention(
            platform="x",
            platform_id=f"{prefix}-{n}",
            source="s",
            text="Ho provato la miscela nuova, buona",
            published_at=moment,
            author=Author(platform="x", platform_id=f"{prefix}{n}", handle=f"user{n}"),
        )
        for n, moment in enumerate(published)
    )
    store.save_poll("s", "x", Poll(mentions=mentions), at)


def test_a_crisis_on_day_one_is_a_spike_from_the_platforms_history_and_not_without_it(store: Store) -> None:
    started = NOW - timedelta(minutes=45)  # the first start: its first poll back-fills two posts of the hour before
    listened(store, started, [NOW - timedelta(minutes=110), NOW - timedelta(minutes=80)], "backfill")
    burst(store, 30)
    assert list(VolumeSpike().evaluate(store, NOW)) == []  # passaparola's own history: 45 minutes, a warm-up
    # What that first poll fetched: seven days of X's hourly counts of the same query, three posts an hour.
    platform(store, started - timedelta(days=7) + timedelta(minutes=45), NOW - timedelta(hours=2), 3)
    [alert] = VolumeSpike().evaluate(store, NOW)
    assert alert.title == "Mention spike: 30 in 60 min, about 3.0 expected"  # 07:00-08:00: 2 stored, X said 3
    assert alert.body.splitlines()[:2] == [
        "30 mentions against about 3.0 usual for this hour; 30 still unanswered.",
        "Baseline from X's counts for the past 7 days, where passaparola's own history does not reach yet.",
    ]


def test_on_day_one_a_busy_brands_usual_hour_is_no_spike(store: Store) -> None:
    started = NOW - timedelta(minutes=45)
    listened(store, started, [NOW - timedelta(minutes=80)], "backfill")
    burst(store, 30)
    platform(store, started - timedelta(days=7) + timedelta(minutes=45), NOW - timedelta(hours=2), 20)
    assert VolumeSpike().baseline(store, NOW) == 20.0 and list(VolumeSpike().evaluate(store, NOW)) == []


def test_own_history_takes_over_for_the_hours_it_covers(store: Store) -> None:
    started = NOW - timedelta(hours=11)  # Sunday 22:00: ten hours of own history, short of the 24-hour warm-up
    listened(store, started, [started - timedelta(minutes=10)], "backfill")
    for hour in range(10):
        at = started + timedelta(hours=hour)
        listened(store, at + timedelta(hours=1), [at + timedelta(minutes=m) for m in (0, 15, 30, 45)], f"h{hour}")
    burst(store, 30)
    platform(store, started - timedelta(days=7) + timedelta(hours=1), started - timedelta(hours=1), 4)
    # X's counts for the hours passaparola heard itself say 100 an hour (a word in the query that took off
    # elsewhere): passaparola's own 4 an hour are what the window is compared with, so 30 is still a spike.
    platform(store, started, NOW - timedelta(hours=2), 100)
    [alert] = VolumeSpike().evaluate(store, NOW)
    assert alert.title == "Mention spike: 30 in 60 min, about 4.0 expected"
    assert "Baseline from X's counts for the past 7 days" in alert.body
    assert store.platform_counts.uncovered(NOW - timedelta(weeks=4), NOW)[started - timedelta(hours=1)] == 3
    assert started not in store.platform_counts.uncovered(NOW - timedelta(weeks=4), NOW)
