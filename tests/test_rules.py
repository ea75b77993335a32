"""Foundation rules: a first-response breach is told once, and an outage is told once per outage."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from listener import Author, Poll
from listener.imports import mention_from_row
from passaparola.pipeline import triage
from rules import SourceFailing, Unanswered
from rules.triage import TriageSettings
from storage import Store
from tests.conftest import T0
from tests.test_storage import mention, reply


def keys(alerts: object) -> list[str]:
    return [a.key for a in alerts]  # type: ignore[attr-defined]


def settled(store: Store, now: datetime = T0) -> Store:
    """The store after triage settled every mention with the default settings (24/7, 60 minutes)."""
    triage(TriageSettings(), store, now)
    return store


def test_warning_at_three_quarters_then_breach_after_the_target(store: Store) -> None:
    store.save_poll("x-brand", "x", Poll(mentions=(mention("1"),)), T0)
    rule = Unanswered()
    assert keys(rule.evaluate(settled(store), T0 + timedelta(minutes=44))) == []
    assert keys(rule.evaluate(store, T0 + timedelta(minutes=45))) == ["sla_warning:x:1"]
    alerts = list(rule.evaluate(store, T0 + timedelta(minutes=61)))
    assert keys(alerts) == ["sla_breach:x:1"]
    assert alerts[0].route == "care" and "@anna (Anna Rossi) on x, 61 min ago" in alerts[0].body
    assert "No answer after 60 min (+1 min)" in alerts[0].title and "unassigned" in alerts[0].body


def test_an_answered_mention_is_never_a_breach(store: Store) -> None:
    store.save_poll("x-brand", "x", Poll(mentions=(mention("1"),), replies=(reply("9", to="1", minutes=70),)), T0)
    assert keys(Unanswered().evaluate(settled(store), T0 + timedelta(hours=3))) == []


def test_mentions_tagged_as_not_needing_an_answer_are_skipped(store: Store) -> None:
    quiet = replace(mention("1"), tags={"needs_answer": 0})
    store.save_poll("x-brand", "x", Poll(mentions=(quiet, mention("2"))), T0)
    assert keys(Unanswered().evaluate(settled(store), T0 + timedelta(hours=2))) == ["sla_breach:x:2"]
    assert store.conversation("x:1").state == "ignored"  # type: ignore[union-attr]


def test_breaches_older_than_the_lookback_are_not_announced(store: Store) -> None:
    store.save_poll("x-brand", "x", Poll(mentions=(mention("old", minutes=-3 * 24 * 60), mention("new"))), T0)
    rule = Unanswered(lookback_hours=24)
    assert keys(rule.evaluate(settled(store), T0 + timedelta(hours=2))) == ["sla_breach:x:new"]


def test_one_alert_per_outage(store: Store) -> None:
    rule = SourceFailing(after_failures=3)
    for minute in range(2):
        store.health.record_failure("feed", "feed", "HTTP 500", T0 + timedelta(minutes=minute), T0)
    assert keys(rule.evaluate(store, T0)) == []
    store.health.record_failure("feed", "feed", "HTTP 500 from the forum", T0 + timedelta(minutes=2), T0)
    first = list(rule.evaluate(store, T0 + timedelta(minutes=3)))
    assert keys(first) == ["source_failing:feed:never"] and first[0].route == "ops"
    assert "HTTP 500 from the forum" in first[0].body
    store.health.record_failure("feed", "feed", "HTTP 500", T0 + timedelta(minutes=3), T0)
    assert keys(rule.evaluate(store, T0 + timedelta(minutes=4))) == keys(first)  # same outage, same key
    store.save_poll("feed", "feed", Poll(), T0 + timedelta(minutes=5))  # recovered
    assert keys(rule.evaluate(store, T0 + timedelta(minutes=6))) == []
    for minute in range(3):
        store.health.record_failure("feed", "feed", "timeout", T0 + timedelta(minutes=7 + minute), T0)
    assert keys(rule.evaluate(store, T0 + timedelta(minutes=11))) == [
        f"source_failing:feed:{(T0 + timedelta(minutes=5)).isoformat()}"
    ]


def test_a_rate_limit_pauses_without_counting_as_a_failure(store: Store) -> None:
    store.health.record_failure("x", "x", "429", T0, T0 + timedelta(minutes=15), counted=False)
    health = store.source_health("x")
    assert health.consecutive_failures == 0 and health.next_retry_at == T0 + timedelta(minutes=15)


def test_a_handle_gets_an_at_and_a_name_does_not(store: Store) -> None:
    """Imports and the site know only a name (stored as the handle too): "@Sofia Marino" is nobody's handle."""
    row = {"id": "c-1", "text": "Il pacco è arrivato rotto", "published_at": T0.isoformat(), "author": "Sofia Marino"}
    store.save_poll("import", "import", Poll(mentions=(mention_from_row(row, T0),)), T0)
    site = mention_from_row({**row, "id": "s-1", "author": "Carla B."}, T0, platform="site")
    store.save_poll("intake", "site", Poll(mentions=(site,)), T0)
    facebook = replace(mention("fb"), platform="facebook", author=Author("facebook", "9", "Luisa Verdi", "Luisa Verdi"))
    store.save_poll("page", "facebook", Poll(mentions=(facebook, mention("1"))), T0)
    alerts = {a.key: a for a in Unanswered().evaluate(settled(store), T0 + timedelta(minutes=61))}
    imported, carla, luisa, anna = (alerts[f"sla_breach:{k}"] for k in ("import:c-1", "site:s-1", "facebook:fb", "x:1"))
    assert imported.title == "No answer after 60 min (+1 min): Sofia Marino on import"
    assert imported.body.startswith("Sofia Marino on import, 61 min ago:")
    assert carla.title.endswith(": Carla B. on site") and luisa.title.endswith(": Luisa Verdi on facebook")
    assert anna.title.endswith(": @anna on x") and "@anna (Anna Rossi) on x" in anna.body
    assert not any("@Sofia" in a.title + a.body or "@Carla" in a.title or "@Luisa" in a.title for a in alerts.values())
