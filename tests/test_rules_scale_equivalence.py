"""The rules cycle reads open conversations, its windows and SQL aggregates (issue #23): the same answers as before.

On the scale benchmark's seeded 10k database (`tools.bench_scale.seed`, fixed clock) plus a burst of mentions in
the last hour (so the spikes speak), one daemon cycle runs: triage, each default rule at a few clocks (the digest's
hour among them), the pipeline's `evaluate`, and advocate scoring. What it decided (triage states, the alerts of
each rule, the queued alerts, the advocate scores) must equal `tests/data/rules_scale_golden.json`, captured from
the code before the rules moved their counting into SQL.

Regenerate the golden file (only when a rule's answers are meant to change) with::

    .venv/bin/python -m tests.test_rules_scale_equivalence --write
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).parent / "data" / "rules_scale_golden.json"
BURST = 60


def _burst(db: Path) -> None:
    """Mentions in the last 50 minutes, mostly negative: a volume and a negative spike on top of the year."""
    from listener import DemoSource, Poll
    from rules.analysis import AnalysisSettings, Analyzer
    from storage import Store
    from tools.bench_scale import NOW

    base = DemoSource().poll(None, NOW).mentions
    tags = Analyzer(AnalysisSettings(mode="fast")).analyze([m.text for m in base])
    tagged = [replace(m, tags=t) for m, t in zip(base, tags, strict=True)]
    negative = [m for m in tagged if m.tags.get("sentiment") == "negative"]
    other = [m for m in tagged if m.tags.get("sentiment") != "negative"]
    picked = [*negative[: BURST * 2 // 3], *other[: BURST - len(negative[: BURST * 2 // 3])]]
    burst = tuple(
        replace(m, platform_id=f"{m.platform_id}-burst{i}", published_at=NOW - timedelta(seconds=50 * i + 30))
        for i, m in enumerate(picked)
    )
    store = Store.open(db)
    store.save_poll("demo", "demo", Poll(mentions=burst), NOW)
    store.close()


def _alert(alert: Any) -> dict[str, Any]:
    found = asdict(alert)
    found["mentions"] = list(found["mentions"])
    return found


def capture(db: Path) -> dict[str, Any]:
    """Seed ``db``, run one cycle on it, and say what it decided."""
    from passaparola.pipeline import evaluate, score_advocates, triage
    from storage import Store
    from tools.bench_scale import NOW, _settings, seed

    seed(db)
    _burst(db)
    settings = _settings(db)
    store = Store.open(db)
    try:
        out: dict[str, Any] = {}
        triage(settings.triage, store, NOW)
        columns = (
            "key, state, state_reason, assignee, priority, team, target_minutes, warn_at, due_at, follows_key, "
            "breach_handed_on"
        )
        rows = store.db.execute(f"SELECT {columns} FROM conversations ORDER BY key").fetchall()
        out["triage_digest"] = hashlib.sha256(json.dumps(rows).encode()).hexdigest()
        out["triage_open"] = [
            list(r) for r in store.db.execute(
                f"SELECT {columns} FROM conversations WHERE state NOT IN ('answered') ORDER BY key"
            ).fetchall()
        ]  # fmt: skip
        clocks = {
            "now": NOW,
            "digest": NOW.replace(hour=8, minute=20),
            "ten_days_ago_digest": (NOW - timedelta(days=10)).replace(hour=8, minute=5),
            "quiet_night": (NOW - timedelta(days=40)).replace(hour=3, minute=0),
        }
        rules: dict[str, Any] = {}
        for evaluator in settings.rules:
            rules[evaluator.kind] = {
                name: [_alert(a) for a in evaluator.evaluate(store, at)] for name, at in clocks.items()
            }
        out["rules"] = rules
        out["evaluate_queued"] = evaluate(settings.rules, store, NOW)
        outcome = score_advocates(settings.advocates, store, NOW)
        out["advocates_outcome"] = [outcome.scored, outcome.promoted, outcome.alerts]
        out["advocate_scores"] = [
            list(r)
            for r in store.db.execute(
                "SELECT person_id, score, tier, counted, praised, last_praise_key, last_praise_at FROM advocate_scores "
                "ORDER BY person_id"
            ).fetchall()
        ]
        out["outbox"] = [
            list(r) for r in store.db.execute("SELECT key, kind, title, body, route, mentions FROM outbox ORDER BY key")
        ]
        return out
    finally:
        store.close()


def test_rules_cycle_equals_the_golden_answers(tmp_path: Path) -> None:
    found = json.loads(json.dumps(capture(tmp_path / "scale.db")))
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert found["triage_open"] == golden["triage_open"]
    assert found["triage_digest"] == golden["triage_digest"]
    for kind, by_clock in golden["rules"].items():
        for clock, alerts in by_clock.items():
            assert found["rules"][kind][clock] == alerts, (kind, clock)
    assert found["rules"].keys() == golden["rules"].keys()
    assert found["advocate_scores"] == golden["advocate_scores"]
    assert found == golden


if __name__ == "__main__":  # python -m tests.test_rules_scale_equivalence --write
    import tempfile

    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.test_rules_scale_equivalence --write")
    with tempfile.TemporaryDirectory() as scratch:
        captured = capture(Path(scratch) / "scale.db")
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(captured, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    sys.stdout.write(f"written to {GOLDEN}\n")
