"""Noise control in the outbox, through apprise to a local JSON receiver: quiet hours on the route's wall
clock (critical alerts pass), a cooldown per kind, a rate cap folding the excess into one summary; nothing lost."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from notifiers import Alert
from notifiers.apprise_notifier import AppriseNotifier
from notifiers.policy import RoutePolicy, parse_interval
from passaparola.config import ConfigError
from passaparola.pipeline import deliver
from storage import Store
from tests.conftest import Receiver, settings_from

ROME = ZoneInfo("Europe/Rome")
NIGHT = datetime(2026, 3, 2, 23, 30, tzinfo=ROME).astimezone(UTC)  # Monday 23:30 in Rome


def alert(key: str, kind: str = "negative_mention", level: str = "warning", route: str = "care") -> Alert:
    return Alert(key=key, kind=kind, title=f"{kind} {key}", body=f"about {key}\nmore", level=level, route=route)


def run(store: Store, receiver: Receiver, policy: RoutePolicy, at: datetime) -> tuple[int, int]:
    return deliver(store, AppriseNotifier({"care": [receiver.url]}), at, random.Random(1), {"care": policy})


def titles(receiver: Receiver) -> list[str]:
    return [body["title"] for body in receiver.bodies]


def test_quiet_hours_hold_alerts_until_morning_on_the_routes_clock_but_critical_ones_pass(
    store: Store,
    receiver: Receiver,
) -> None:
    policy = RoutePolicy(zone=ROME, quiet=(parse_interval("22:00-07:00"),))  # type: ignore[arg-type]
    store.enqueue([alert("a"), alert("b", kind="sla_escalation:x:1", level="failure")], NIGHT)
    assert run(store, receiver, policy, NIGHT) == (1, 0)
    assert titles(receiver) == ["sla_escalation:x:1 b"]  # critical: passes at 23:30
    morning = datetime(2026, 3, 3, 7, 0, tzinfo=ROME).astimezone(UTC)
    held = store.db.execute("SELECT next_attempt_at, held_reason FROM outbox WHERE key = 'a'").fetchone()
    assert held == (morning.isoformat(), "quiet hours")
    assert run(store, receiver, policy, morning - timedelta(minutes=1)) == (0, 0)
    assert run(store, receiver, policy, morning) == (1, 0)
    assert titles(receiver)[-1] == "negative_mention a"


def test_quiet_hours_follow_the_dst_change() -> None:
    policy = RoutePolicy(zone=ROME, quiet=((22 * 60, 7 * 60),))
    saturday_night = datetime(2026, 3, 28, 23, 0, tzinfo=ROME)  # the night Italy moves to summer time
    assert policy.quiet_until(saturday_night) == datetime(2026, 3, 29, 5, 0, tzinfo=UTC)  # 07:00 CEST
    assert policy.quiet_until(datetime(2026, 3, 29, 12, 0, tzinfo=ROME)) is None


def test_a_cooldown_folds_the_same_kind_into_one_summary_when_it_ends(
    store: Store,
    receiver: Receiver,
) -> None:
    policy = RoutePolicy(cooldowns={"negative_mention": 30})
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    store.enqueue([alert("n1")], t0)
    run(store, receiver, policy, t0)
    for n, minutes in enumerate((5, 10, 20), start=2):
        store.enqueue([alert(f"n{n}"), alert(f"s{n}", kind="sla_breach")], t0 + timedelta(minutes=minutes))
        run(store, receiver, policy, t0 + timedelta(minutes=minutes))
    assert titles(receiver) == ["negative_mention n1", "sla_breach s2", "sla_breach s3", "sla_breach s4"]
    run(store, receiver, policy, t0 + timedelta(minutes=29))
    assert len(receiver.bodies) == 4  # still cooling down
    run(store, receiver, policy, t0 + timedelta(minutes=30))
    assert titles(receiver)[-1] == "3 alerts held back on care"
    summary = receiver.bodies[-1]["message"]
    assert "- [negative_mention] negative_mention n2\n  about n2" in summary and "n4" in summary
    folded = store.db.execute("SELECT count(*) FROM outbox WHERE folded_into LIKE 'summary:care:%'").fetchone()[0]
    unsent = store.db.execute("SELECT count(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0]
    assert (folded, unsent) == (3, 0)  # every held alert went out, in the summary


def test_a_rate_cap_sends_the_first_n_and_folds_the_rest_into_one_summary(
    store: Store,
    receiver: Receiver,
) -> None:
    policy = RoutePolicy(max_per_hour=5)
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    store.enqueue([alert(f"m{n}", kind=f"kind{n}") for n in range(30)], t0)
    store.enqueue([alert("fire", kind="source_failing", level="failure")], t0)
    assert run(store, receiver, policy, t0) == (6, 0)  # five, plus the critical one
    assert "source_failing fire" in titles(receiver)
    assert run(store, receiver, policy, t0 + timedelta(minutes=59)) == (0, 0)
    assert run(store, receiver, policy, t0 + timedelta(hours=1)) == (1, 0)
    assert titles(receiver)[-1] == "25 alerts held back on care"
    assert len(receiver.bodies) == 7  # 31 alerts, 7 messages, none lost


def test_check_names_bad_policies(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from(
            """
[notify.policies.care]
timezone = "Mars/Olympus"
quiet_hours = ["10pm-7am"]
cooldown_minutes = { negative_mention = -5 }
""",
            tmp_path,
        )
    assert caught.value.problems == [
        "notify.policies.care.timezone: unknown time zone 'Mars/Olympus'; use an IANA name like \"Europe/Rome\"",
        "notify.policies.care.quiet_hours: '10pm-7am' is not an interval; write \"22:00-07:00\"",
        "notify.policies.care.cooldown_minutes.negative_mention: -5 is negative; give minutes >= 0",
    ]
    with pytest.raises(ConfigError) as caught:
        settings_from(
            '[notify]\ntype = "apprise"\n[notify.routes]\ncare = ["json://127.0.0.1/x"]\n'
            'ops = ["json://127.0.0.1/y"]\n[notify.policies.pr]\nmax_per_hour = 3\n',
            tmp_path,
        )
    assert caught.value.problems == ["notify.policies.pr: no notify route 'pr'; add its URLs or fix the name"]
