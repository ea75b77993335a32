"""`passaparola drill`: a built-in crisis replayed through the real rules on a copy of the database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.conftest import PASSAPAROLA, run_cli


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "p.toml"
    config.write_text(f'[storage]\npath = "{tmp_path / "live.db"}"\n', encoding="utf-8")
    return config


def test_the_spike_drill_reports_the_alerts_and_the_breaches_and_leaves_the_database_alone(tmp_path: Path) -> None:
    config = _config(tmp_path)
    assert run_cli([*PASSAPAROLA, "check", "--config", str(config)]).returncode == 0
    run_cli([*PASSAPAROLA, "run", "--once", "--config", str(config)])
    before = (tmp_path / "live.db").read_bytes()
    result = run_cli(
        [*PASSAPAROLA, "drill", "--config", str(config), "--scenario", "spike", "--start", "2026-03-02T09:00"]
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "drill spike: 2026-03-02 09:00 to 12:00 UTC (simulated)"
    spike = next(line for line in lines if "volume_spike" in line)
    assert "+   65 min" in spike and "to care" in spike  # the burst starts at +60: caught within the next hour
    assert any("negative_spike" in line for line in lines) and any("sla_breach" in line for line in lines)
    assert (
        "breached: 31 mentions past their first-response deadline" in lines
    )  # every complaint of the burst due by 12:00
    assert lines[-1] == "would have been missed (breached, and no alert named them): 0"
    assert (tmp_path / "live.db").read_bytes() == before  # the drill ran on a copy
    with sqlite3.connect(tmp_path / "live.db") as db:
        assert db.execute("SELECT count(*) FROM mentions").fetchone()[0] == 0


def test_a_night_complaint_from_a_big_account_and_a_source_outage(tmp_path: Path) -> None:
    config = _config(tmp_path)
    night = run_cli(
        [*PASSAPAROLA, "drill", "--config", str(config), "--scenario", "vip-night", "--start", "2026-03-03T01:30"]
    )
    assert "+   30 min  negative_mention to care     Negative mention by @foodmag_italia" in night.stdout
    outage = run_cli([*PASSAPAROLA, "drill", "--config", str(config), "--scenario", "outage", "--hours", "4"])
    assert any("source_failing   to ops" in line for line in outage.stdout.splitlines())


def test_a_bad_scenario_or_route_is_a_clear_error(tmp_path: Path) -> None:
    config = _config(tmp_path)
    bad = run_cli([*PASSAPAROLA, "drill", "--config", str(config), "--scenario", "earthquake"])
    assert (
        bad.returncode == 2 and "no built-in scenario 'earthquake'; use one of spike, outage, vip-night" in bad.stderr
    )
    missing = run_cli([*PASSAPAROLA, "drill", "--config", str(config), "--scenario", str(tmp_path / "x.jsonl")])
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    route = run_cli([*PASSAPAROLA, "drill", "--config", str(config), "--route", "drill"])
    assert route.returncode == 2 and "no such route" in route.stderr
