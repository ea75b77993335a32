"""``passaparola_negative_share`` on /metrics (#23): the share of negative mentions among those with a sentiment,
over the last 24 hours and 7 days, as the Grafana dashboard shows it per brand."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families

from listener import Author, Mention, Poll
from passaparola.web.metrics import render
from storage import Store
from tests.conftest import T0


def say(store: Store, ident: str, at: datetime, sentiment: str | None) -> Mention:
    """One stored mention published (and first seen) at ``at``; ``sentiment`` None: one the model left unread."""
    tags = {"language": "it"} if sentiment is None else {"sentiment": sentiment, "language": "it"}
    mention = Mention(
        platform="x",
        platform_id=ident,
        source="s",
        text="Capsule rotte di nuovo",
        published_at=at,
        author=Author("x", f"a-{ident}", f"user{ident}"),
        tags=tags,
    )
    store.save_poll("s", "x", Poll(mentions=(mention,)), at)
    return mention


def shares(store: Store, now: datetime) -> dict[str, float]:
    text = render(store, lambda: now).decode()
    [family] = [f for f in text_string_to_metric_families(text) if f.name == "passaparola_negative_share"]
    assert family.type == "gauge"
    return {sample.labels["window"]: sample.value for sample in family.samples}


def test_the_negative_share_counts_each_window_and_only_mentions_with_a_sentiment(store: Store) -> None:
    hour = timedelta(hours=1)
    # The last 24 hours: 3 negative of 5 with a sentiment (one mention has none, so it does not count).
    for n, label in enumerate(["negative", "negative", "negative", "positive", "neutral", None]):
        say(store, f"d{n}", T0 - (n + 1) * hour, label)
    # Two to six days ago: 1 negative, 3 positive; only the 7-day window holds them.
    for n, label in enumerate(["negative", "positive", "positive", "positive"]):
        say(store, f"w{n}", T0 - timedelta(days=n + 2), label)
    # Older than a week, and after the scrape's instant: in neither window.
    for n in range(5):
        say(store, f"old{n}", T0 - timedelta(days=8, hours=n), "negative")
    say(store, "later", T0 + hour, "negative")

    assert shares(store, T0) == pytest.approx({"24h": 3 / 5, "7d": 4 / 9})


def test_a_persons_correction_counts_and_an_empty_window_has_no_sample(store: Store) -> None:
    assert shares(store, T0) == {}  # nothing to judge: no sample, rather than a 0 that reads as good news
    praised = say(store, "1", T0 - timedelta(minutes=30), "positive")
    say(store, "2", T0 - timedelta(minutes=20), "negative")
    assert shares(store, T0) == pytest.approx({"24h": 0.5, "7d": 0.5})
    store.mentions.correct_sentiment(praised.key, "negative", "sara", T0)
    assert shares(store, T0) == pytest.approx({"24h": 1.0, "7d": 1.0})
    assert shares(store, T0 + timedelta(days=2)) == pytest.approx({"7d": 1.0})  # left the 24-hour window
