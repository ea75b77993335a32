"""The bundled sample is what the issues promise: 300+ realistic mentions, two languages, the three first channels,
reviews with stars (some answered by the owner) and the open networks."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

from listener import DemoSource
from listener.demo import bundled_sample
from tests.conftest import T0

ROWS = [json.loads(line) for line in bundled_sample().read_text(encoding="utf-8").splitlines()]
MENTIONS = [r for r in ROWS if r["type"] == "mention"]


def test_sample_has_300_mentions_in_italian_and_english_on_every_kind_of_channel() -> None:
    assert len(MENTIONS) >= 300
    assert Counter(r["lang"] for r in MENTIONS).keys() == {"it", "en"}
    channels = Counter(r["platform"] for r in MENTIONS)
    assert channels.keys() == {"x", "forum", "facebook", "gbp", "appstore", "googleplay", "bluesky", "mastodon"}
    assert channels["x"] + channels["forum"] + channels["facebook"] >= 300
    assert Counter(r["lang"] for r in MENTIONS)["it"] > Counter(r["lang"] for r in MENTIONS)["en"]


def test_sample_has_returning_authors_fans_complaints_questions_and_replies() -> None:
    per_author = Counter((r["platform"], r["author"]["id"]) for r in MENTIONS)
    assert sum(1 for n in per_author.values() if n >= 3) >= 10
    assert {"praise", "complaint", "question", "neutral"} <= {r["kind"] for r in MENTIONS}
    replied = {r["in_reply_to"] for r in ROWS if r["type"] == "reply"}
    assert 0.4 < len(replied & {r["id"] for r in MENTIONS}) / len(MENTIONS) < 0.9


def test_the_demo_reviews_carry_stars_and_their_place_and_the_owner_answered_some() -> None:
    poll = DemoSource().poll(None, T0)
    reviews = [m for m in poll.mentions if m.platform in ("gbp", "appstore", "googleplay")]
    assert {m.metrics["rating"] for m in reviews} >= {1, 2, 4, 5} and all(m.place for m in reviews)
    answered = {r.in_reply_to for r in poll.replies} & {m.platform_id for m in reviews}
    assert len(answered) == 2


def test_sample_has_a_burst_of_complaints_in_the_last_40_minutes() -> None:
    burst = [r for r in MENTIONS if r["minutes_ago"] <= 40 and r["kind"] == "complaint"]
    assert len(burst) >= 25


def test_replay_is_shifted_to_now_and_stable_across_polls() -> None:
    source = DemoSource()
    first = source.poll(None, T0)
    again = source.poll(first.cursor, T0 + timedelta(hours=5))
    assert max(m.published_at for m in first.mentions) <= T0
    assert [(m.key, m.published_at) for m in again.mentions] == [(m.key, m.published_at) for m in first.mentions]
    assert len({m.key for m in first.mentions}) == len(first.mentions)
