"""Negative talk: one negative mention from a big account, and a rise in the share of negative mentions."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from listener import Author, Mention, Poll
from listener.imports import mention_from_row
from rules import NegativeMention, NegativeSpike
from storage import Store
from tests.conftest import T0


def say(
    store: Store,
    ident: str,
    at: datetime,
    sentiment: str,
    reach: int = 10,
    text: str = "Capsule rotte di nuovo",
    topics: tuple[str, ...] = (),
    url: str = "",
) -> Mention:
    """One stored mention by its own author on source ``s``, published (and first seen) at ``at``."""
    mention = Mention(
        platform="x",
        platform_id=ident,
        source="s",
        text=text,
        published_at=at,
        author=Author("x", f"a-{ident}", f"user{ident}", reach=reach),
        url=url,
        tags={"sentiment": sentiment, "language": "it", "topics": list(topics)},
    )
    store.save_poll("s", "x", Poll(mentions=(mention,)), at)
    return mention


def history(store: Store, days: int = 3, per_hour: int = 2, negative_every: int = 10) -> None:
    """A calm past: ``per_hour`` mentions an hour, one in ``negative_every`` negative."""
    count = 0
    for hour in range(days * 24, 1, -1):
        for n in range(per_hour):
            count += 1
            label = "negative" if count % negative_every == 0 else "positive"
            say(store, f"h{hour}-{n}", T0 - timedelta(hours=hour, minutes=n * 20), label, text="Buon caffè")


def test_a_negative_mention_from_a_big_account_is_told_once(store: Store) -> None:
    big = say(store, "1", T0 - timedelta(minutes=10), "negative", reach=50_000)
    say(store, "2", T0 - timedelta(minutes=5), "negative", reach=20)  # small: left to the queue
    say(store, "3", T0 - timedelta(minutes=5), "positive", reach=90_000)
    rule = NegativeMention(min_reach=1_000)
    alerts = list(rule.evaluate(store, T0))
    assert [a.key for a in alerts] == [f"negative_mention:{big.key}"]
    assert alerts[0].title == "Negative mention by @user1 (50,000 followers) on x"
    assert store.enqueue(alerts, T0) == 1 and store.enqueue(list(rule.evaluate(store, T0)), T0) == 0


def test_a_person_correcting_the_sentiment_changes_what_is_told(store: Store) -> None:
    mention = say(store, "1", T0 - timedelta(minutes=10), "positive", reach=50_000)
    assert list(NegativeMention().evaluate(store, T0)) == []
    store.mentions.correct_sentiment(mention.key, "negative", "sara", T0)
    assert len(list(NegativeMention().evaluate(store, T0))) == 1


def test_a_burst_of_negative_mentions_is_a_negative_spike_explained(store: Store) -> None:
    history(store)
    for n in range(8):
        say(store, f"w{n}", T0 - timedelta(minutes=5 + n * 5), "negative", text="Doppio addebito sull'abbonamento")
    for n in range(2):
        say(store, f"p{n}", T0 - timedelta(minutes=7 + n * 5), "positive", text="Buon caffè")
    [alert] = NegativeSpike(ignore_terms=["abbonamento"]).evaluate(store, T0)
    assert alert.title == "Negative spike: 80% of 10 mentions negative in 60 min, usually 10%"
    assert "Top terms: addebito (8), doppio (8)" in alert.body and alert.level == "failure"
    assert alert.body.startswith("8 negative mentions against about 1.0 usual for this hour; 8 still unanswered.")
    store.enqueue([alert], T0)
    assert list(NegativeSpike().evaluate(store, T0 + timedelta(minutes=30))) == []  # cooldown: one per episode


def test_an_ordinary_hour_a_small_sample_and_a_cold_start_are_not_spikes(store: Store) -> None:
    rule = NegativeSpike()
    for n in range(6):
        say(store, f"c{n}", T0 - timedelta(minutes=5 + n), "negative")
    assert list(rule.evaluate(store, T0)) == []  # no history yet: warming up
    history(store)
    assert list(rule.evaluate(store, T0 - timedelta(minutes=30))) == []  # no negative mention in that window
    calm = Store.memory()
    history(calm, negative_every=2)  # a brand whose mentions are half negative anyway
    for n in range(6):
        say(calm, f"n{n}", T0 - timedelta(minutes=5 + n * 5), "negative")
        say(calm, f"q{n}", T0 - timedelta(minutes=6 + n * 5), "positive")
    assert list(rule.evaluate(calm, T0)) == []  # 50% as usual
    calm.close()


def test_a_negative_mention_by_name_has_no_at_but_a_handle_keeps_it(store: Store) -> None:
    """An imported call or a site comment carries a name, not a handle: the title must not read "@Sofia Marino"."""
    row = {"id": "c-1", "text": "Capsule rotte di nuovo", "published_at": T0.isoformat(), "author": "Sofia Marino"}
    called = replace(mention_from_row(row, T0), tags={"sentiment": "negative", "language": "it", "topics": []})
    store.save_poll("import", "import", Poll(mentions=(called,)), T0)
    say(store, "2", T0, "negative", reach=50_000)
    alerts = sorted(NegativeMention(min_reach=0).evaluate(store, T0 + timedelta(minutes=5)), key=lambda a: a.key)
    assert [a.title for a in alerts] == [
        "Negative mention by Sofia Marino (0 followers) on import",
        "Negative mention by @user2 (50,000 followers) on x",
    ]
    assert alerts[0].body.startswith("Sofia Marino on import, 5 min ago:")
