"""The daemon as a user runs it: subprocesses, real signals, real files."""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from passaparola.cli import RedactSecrets
from tests.conftest import PASSAPAROLA, ROOT, cli_env, run_cli


def write_config(tmp_path: Path, body: str = "") -> Path:
    """A demo-source config; the fast analysis mode keeps these process tests quick."""
    path = tmp_path / "passaparola.toml"
    head = f'[storage]\npath = "{tmp_path / "p.db"}"\n[analysis]\nmode = "fast"\n'
    path.write_text(f'{head}[[sources]]\ntype = "demo"\n{body}', encoding="utf-8")
    return path


def mentions_in(db: Path) -> int:
    with sqlite3.connect(db) as raw:
        return int(raw.execute("SELECT count(*) FROM mentions").fetchone()[0])


def test_demo_prints_alerts_and_a_second_run_duplicates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    command = [*PASSAPAROLA, "demo", "--db", str(db), "--duration", "1"]
    first = run_cli(command)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("[!] care: No answer after 60 min") >= 5
    assert first.stdout.count("Mention spike") == 1  # the burst of complaints: one alert, explained
    assert "Top terms:" in first.stdout and "addebito" in first.stdout
    # Marta praises us often on two platforms; FoodMag (480k followers) once, three days ago.
    assert "top advocates: Marta Conti" in first.stdout and "New VIP: Marta Conti" in first.stdout
    stored = mentions_in(db)
    assert stored >= 300
    alerts = [json.loads(line) for line in (tmp_path / "demo-alerts.jsonl").read_text("utf-8").splitlines()]
    assert len(alerts) == len(re.findall(r"^\[[i+!x]\] ", first.stdout, flags=re.MULTILINE))
    second = run_cli(command)
    assert second.returncode == 0 and not re.search(r"^\[[i+!x]\] ", second.stdout, flags=re.MULTILINE)  # sent once
    assert mentions_in(db) == stored
    assert "source demo: 0 new mentions" in second.stderr


def test_run_once_runs_a_full_cycle_and_exits(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = run_cli([*PASSAPAROLA, "run", "--once", "--config", str(config)])
    assert result.returncode == 0, result.stderr
    assert mentions_in(tmp_path / "p.db") >= 300 and "No answer after 60 min" in result.stdout


def test_sigterm_stops_the_daemon_with_exit_0_within_2_seconds(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    process = subprocess.Popen(
        [*PASSAPAROLA, "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _heartbeat_written(tmp_path / "p.db"):
            time.sleep(0.1)
        assert _heartbeat_written(tmp_path / "p.db"), "the daemon never reached its loop"
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0
        assert time.monotonic() - sent < 2
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
    with sqlite3.connect(tmp_path / "p.db") as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _heartbeat_written(db: Path) -> bool:
    try:
        with sqlite3.connect(db, timeout=1) as raw:
            return raw.execute("SELECT count(*) FROM daemon WHERE name = 'heartbeat'").fetchone()[0] == 1
    except sqlite3.Error:
        return False


def test_a_corrupt_database_exits_2_with_one_line_and_stays_untouched(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    (tmp_path / "p.db").write_bytes(b"not sqlite" * 500)
    result = run_cli([*PASSAPAROLA, "run", "--once", "--config", str(config)])
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "restore it from a backup" in result.stderr
    assert (tmp_path / "p.db").read_bytes() == b"not sqlite" * 500


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)")
def test_an_unwritable_database_folder_exits_2_naming_it(tmp_path: Path) -> None:
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o500)
    config = tmp_path / "p.toml"
    config.write_text(f'[storage]\npath = "{folder / "p.db"}"\n', encoding="utf-8")
    # Without CAP_DAC_OVERRIDE even root obeys the folder's permissions, as a container user would.
    command = [
        "setpriv",
        "--bounding-set",
        "-dac_override,-dac_read_search",
        *PASSAPAROLA,
        "run",
        "--once",
        "--config",
        str(config),
    ]
    try:
        result = run_cli(command)
    finally:
        folder.chmod(0o700)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"passaparola: database {folder / 'p.db'}: folder {folder} is not writable; "
        "fix its permissions or set storage.path to a writable place"
    )


def test_an_unknown_source_type_stops_the_start_with_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "p.toml"
    config.write_text('[[sources]]\ntype = "myspace"\n', encoding="utf-8")
    result = run_cli([*PASSAPAROLA, "run", "--config", str(config)])
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "passaparola: sources[0].type: unknown type 'myspace'; use one of appstore, bluesky, demo, discourse, "
        "facebook, feed, gbp, googleplay, mastodon, x, youtube"
    )


def test_env_only_configuration_runs(tmp_path: Path) -> None:
    env = cli_env(PASSAPAROLA_STORAGE__PATH=str(tmp_path / "env.db"))
    result = run_cli([*PASSAPAROLA, "run", "--once"], env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "env.db").exists()


def test_log_records_never_show_a_configured_secret() -> None:
    logger = logging.getLogger("tweepy.client")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets(["SENTINEL-bearer-token"]))
    logger.addHandler(handler)
    try:
        logger.warning("Headers: %s", {"Authorization": "Bearer SENTINEL-bearer-token"})
    finally:
        logger.removeHandler(handler)
    assert "SENTINEL" not in stream.getvalue() and "Bearer **********" in stream.getvalue()


def test_the_package_runs_from_the_repo_root() -> None:
    result = run_cli([*PASSAPAROLA, "--help"], cwd=ROOT)
    assert result.returncode == 0 and "demo" in result.stdout and result.stderr == ""


def test_healthcheck_follows_the_heartbeat(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    command = [*PASSAPAROLA, "healthcheck", "--config", str(config)]
    before = run_cli(command)
    assert before.returncode == 1 and "no loop heartbeat yet" in before.stderr
    with sqlite3.connect(tmp_path / "p.db") as raw:
        raw.execute("INSERT INTO daemon (name, value) VALUES ('heartbeat', datetime('now', '-10 seconds') || '+00:00')")
    fresh = run_cli(command)
    assert fresh.returncode == 0, fresh.stderr
    stale = run_cli([*command, "--max-age", "5"])
    assert stale.returncode == 1 and "no loop heartbeat for" in stale.stderr
