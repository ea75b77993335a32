"""Spike detection on synthetic series: a real spike is told once with its explanation; ordinary days are not."""

from __future__ import annotations

from datetime import datetime, timedelta

from listener import Author, Mention, Poll
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
    assert store.last_alert_at("volume_spike", "care") == NOW
