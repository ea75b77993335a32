"""Backfills (issue #23): ``import`` and ``reanalyze`` spread reading over processes, store in large transactions,
show their progress and, interrupted, go on where they stopped without reading anything twice."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from listener.imports import import_rows
from listener.model import Mention, Poll
from passaparola import backfill
from passaparola import config as configuration
from passaparola.cli import main
from storage import Store
from tests.conftest import PASSAPAROLA, T0, cli_env, run_cli

PHRASES = (
    "il pacco è arrivato rotto, voglio un rimborso",
    "ottimo servizio, grazie mille",
    "nessuno risponde al telefono da giorni",
    "come posso cambiare l'indirizzo di spedizione?",
    "the coffee machine broke again after two weeks",
    "love the new espresso blend, great value",
    "where is my order? it has been ten days",
)
#: A progress line as it reads in a log: rows done of all, the share, the rate and the time left.
PROGRESS = re.compile(
    r"^(import|reanalyze): (\d+)/(\d+) (lines|mentions) +\d+% \| [\d.]+ (lines|mentions)/s \| "
    r"[\d:]+ elapsed, [\d:]+ left$"
)


def jsonl(path: Path, rows: int, bad: bool = False) -> Path:
    """``rows`` valid rows (with ``bad``: an invalid line and a repeated id among them too)."""
    with path.open("w", encoding="utf-8") as out:
        for n in range(rows):
            text = f"{PHRASES[n % len(PHRASES)]} {PHRASES[(n * 3) % len(PHRASES)]} #{n}"
            row = {"id": f"r-{n}", "text": text, "published_at": "2026-03-01T10:00:00+01:00", "author": f"c{n % 97}"}
            out.write(json.dumps({**row, "channel": "review", "rating": str(1 + n % 5)} if n % 4 == 0 else row) + "\n")
            if bad and n == 1500:
                out.write("{not json\n")
                out.write(json.dumps({**row, "text": "again"}) + "\n")
    return path


def config(tmp_path: Path, name: str = "p") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(f'[storage]\npath = "{tmp_path / name}.db"\n[analysis]\nmode = "fast"\n', encoding="utf-8")
    return path


def query(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as connection:
        return connection.execute(sql).fetchall()


READING = "SELECT key, language, sentiment, needs_answer, needs_answer_reason, topics, model_version FROM mention_tags"


def test_an_import_over_two_workers_stores_every_row_once_read_as_one_process_reads_it(tmp_path: Path) -> None:
    source = jsonl(tmp_path / "calls.jsonl", 3_000, bad=True)
    done = run_cli([*PASSAPAROLA, "import", str(source), "--workers", "2", "--config", str(config(tmp_path))])
    assert done.returncode == 1, done.stderr  # the bad lines are listed, the others stored
    assert "imported 3000 rows" in done.stdout and "(3000 new, 0 already stored); 2 rejected" in done.stdout
    assert f"{source}:1502: rejected: not valid JSON" in done.stderr
    assert f"{source}:1503: rejected: id 'r-1500' is repeated (first on line 1501)" in done.stderr
    assert "read 3000 mentions" in done.stderr

    alone = Store.open(tmp_path / "alone.db")
    settings = configuration.load(config(tmp_path), environ={}).analysis.pipeline("fast")
    outcome = backfill.import_file(alone, source, T0.replace(year=2027), settings, workers=1, progress=False)
    alone.close()
    assert outcome.read == 3000 and len(outcome.rejected) == 2

    keys = query(tmp_path / "p.db", "SELECT key, count(*) FROM mentions GROUP BY key HAVING count(*) = 1")
    assert len(keys) == 3000 == query(tmp_path / "p.db", "SELECT count(*) FROM mentions")[0][0]
    pooled = query(tmp_path / "p.db", f"{READING} ORDER BY key")
    assert len(pooled) == 3000 and all(row[2] for row in pooled)  # every row was read on the way in
    assert pooled == query(tmp_path / "alone.db", f"{READING} ORDER BY key")
    assert query(tmp_path / "p.db", "SELECT count(*) FROM backfill_checkpoints") == [(0,)]  # finished: cleared


def interrupt_after_first_chunk(command: list[str]) -> tuple[int, str]:
    """Run ``command``, send it Ctrl-C (SIGINT) once its first chunk is stored; its exit status and stderr."""
    process = subprocess.Popen(
        command,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=cli_env(),
        # a suite started in the background (nohup, a CI step) hands its children SIGINT ignored, and Python then
        # never turns it into KeyboardInterrupt: give the child the default, as a terminal would
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stderr is not None
    seen = []
    for line in process.stderr:  # the first progress line comes after the first chunk's commit
        seen.append(line)
        if PROGRESS.match(line.strip()):
            process.send_signal(signal.SIGINT)
            break
    rest = process.communicate(timeout=60)[1]
    return process.returncode, "".join(seen) + rest


def test_an_interrupted_import_goes_on_where_it_stopped_and_reads_nothing_twice(tmp_path: Path) -> None:
    source = jsonl(tmp_path / "calls.jsonl", 5_000)
    command = [*PASSAPAROLA, "import", str(source), "--workers", "1", "--config", str(config(tmp_path))]
    status, stderr = interrupt_after_first_chunk(command)
    assert status == 130, stderr
    assert "interrupted: 2000 new rows stored by this run are kept; run the same command again" in stderr
    assert query(tmp_path / "p.db", "SELECT count(*) FROM mentions") == [(2000,)]
    assert query(tmp_path / "p.db", "SELECT position, done FROM backfill_checkpoints") == [("2000", 2000)]

    again = run_cli(command)
    assert again.returncode == 0, again.stderr
    assert f"resuming {source} after line 2000 (2000 rows stored by the interrupted run)" in again.stderr
    assert "read 3000 mentions" in again.stderr  # the 2,000 stored are not read again
    assert "imported 5000 rows" in again.stdout and "(3000 new, 2000 already stored, resumed after line 2000" in (
        again.stdout
    )
    assert query(tmp_path / "p.db", "SELECT count(*), count(DISTINCT key) FROM mentions") == [(5000, 5000)]
    assert query(tmp_path / "p.db", "SELECT count(*) FROM mention_tags WHERE model_version != ''") == [(5000,)]
    assert query(tmp_path / "p.db", "SELECT count(*) FROM backfill_checkpoints") == [(0,)]


def test_an_interrupted_reanalysis_goes_on_after_the_last_mention_it_stored(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "p.db")
    rows = import_rows(jsonl(tmp_path / "calls.jsonl", 4_000), T0.replace(year=2027))
    mentions = tuple(row for _, row in rows if isinstance(row, Mention))
    store.save_poll("import", "import", Poll(mentions=mentions), T0)  # stored unread
    store.close()
    command = [*PASSAPAROLA, "reanalyze", "--mode", "fast", "--workers", "1", "--config", str(config(tmp_path))]
    status, stderr = interrupt_after_first_chunk(command)
    assert status == 130, stderr
    assert "interrupted: 2000 mentions done by this run are kept" in stderr
    assert query(tmp_path / "p.db", "SELECT count(*) FROM mention_tags") == [(2000,)]

    again = run_cli(command)
    assert again.returncode == 0, again.stderr
    assert "resuming the reanalysis after 2000 mentions" in again.stderr
    assert "reanalysed 2000 mentions (resumed: 2000 done by the interrupted run)" in again.stdout
    assert query(tmp_path / "p.db", "SELECT count(*) FROM mention_tags WHERE model_version != ''") == [(4000,)]
    assert query(tmp_path / "p.db", "SELECT count(*) FROM backfill_checkpoints") == [(0,)]


def test_an_accurate_reanalysis_keeps_its_work_in_small_chunks_so_a_stop_loses_seconds(tmp_path: Path) -> None:
    """The accurate mode reads ~60 texts a second a core: 2,000-text chunks would be half a minute each, and a
    job of a few thousand mentions would fit one chunk and so run on one core."""
    store = Store.open(tmp_path / "p.db")
    rows = import_rows(jsonl(tmp_path / "calls.jsonl", 500), T0.replace(year=2027))
    store.save_poll("import", "import", Poll(mentions=tuple(r for _, r in rows if isinstance(r, Mention))), T0)
    store.close()
    command = [*PASSAPAROLA, "reanalyze", "--mode", "accurate", "--workers", "1", "--config", str(config(tmp_path))]
    status, stderr = interrupt_after_first_chunk(command)
    assert status == 130, stderr
    assert f"interrupted: {backfill.ACCURATE_CHUNK} mentions done by this run are kept" in stderr
    assert backfill.chunk_for(configuration.AnalysisSettings(mode="accurate")) == backfill.ACCURATE_CHUNK < 500
    assert query(tmp_path / "p.db", "SELECT count(*) FROM mention_tags") == [(backfill.ACCURATE_CHUNK,)]


def test_progress_in_a_log_is_one_readable_line_with_the_rate_and_the_time_left(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backfill, "LINE_EVERY", 0.0)  # a line per chunk, not one each ten seconds
    store = Store.open(tmp_path / "p.db")
    source = jsonl(tmp_path / "calls.jsonl", 1_000)
    backfill.import_file(store, source, T0.replace(year=2027), None, chunk=250)
    store.close()
    stderr = capsys.readouterr().err
    assert "\r" not in stderr and "\x1b" not in stderr  # no bar redrawn in place: a log keeps every line
    lines = stderr.splitlines()
    assert [PROGRESS.match(line) is not None for line in lines] == [True] * 4, stderr
    assert [line.split(" ")[1] for line in lines] == ["250/1000", "500/1000", "750/1000", "1000/1000"]


def test_bad_inputs_name_what_is_wrong(tmp_path: Path) -> None:
    runner = CliRunner()
    settings = str(config(tmp_path))
    zero = runner.invoke(main, ["import", str(jsonl(tmp_path / "a.jsonl", 3)), "--workers", "0", "--config", settings])
    assert zero.exit_code == 2 and "Invalid value for '--workers': 0 is not in the range x>=1" in zero.output
    again = runner.invoke(main, ["reanalyze", "--workers", "0", "--config", settings])
    assert again.exit_code == 2 and "Invalid value for '--workers'" in again.output
    missing = runner.invoke(main, ["import", str(tmp_path / "gone.jsonl"), "--config", settings])
    assert missing.exit_code == 2
    assert f"{tmp_path / 'gone.jsonl'}: cannot read it (No such file or directory)" in missing.output
    assert not (tmp_path / "p.db").exists()  # nothing was created for a file that cannot be read


SCHEMA = "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_stat%' ORDER BY name"
#: What the full-text index finds, against what the stored texts hold: the same keys when the index is whole.
SEARCHED = "SELECT m.key FROM mentions_fts JOIN mentions m ON m.rowid = mentions_fts.rowid WHERE mentions_fts MATCH ?"


def fts_whole(db: Path, word: str) -> tuple[list[str], list[str]]:
    """The keys the full-text index finds for ``word`` and those whose text holds it, after FTS5's own check of
    the index against the mentions (it raises on an index that disagrees with them)."""
    with sqlite3.connect(db) as connection:
        connection.execute("INSERT INTO mentions_fts(mentions_fts, rank) VALUES ('integrity-check', 1)")
        found = sorted(key for (key,) in connection.execute(SEARCHED, [word]))
        held = sorted(key for (key,) in connection.execute("SELECT key FROM mentions WHERE text LIKE ?", [f"%{word}%"]))
    return found, held


def test_a_bulk_import_builds_its_indexes_once_and_leaves_the_database_as_a_row_by_row_one(tmp_path: Path) -> None:
    """#23: a file larger than the database writes without its nineteen secondary indexes and builds them at the
    end; the result must be the same database, searches and the planner's statistics included."""
    source = jsonl(tmp_path / "calls.jsonl", 3_000)
    outcomes = {}
    for name, bulk in (("rows", False), ("bulk", True)):
        store = Store.open(tmp_path / f"{name}.db")
        store.save_poll("import", "import", Poll(mentions=tuple(r for _, r in import_rows(
            jsonl(tmp_path / "first.jsonl", 50), T0.replace(year=2027)) if isinstance(r, Mention))), T0)  # fmt: skip
        store.db.execute("ANALYZE")  # a database with planner statistics keeps them
        outcomes[name] = backfill.import_file(store, source, T0, None, progress=False, bulk=bulk)
        assert store.backfills.deferred() == 0
        store.close()
    assert outcomes["bulk"].new == outcomes["rows"].new == 2950  # the first 50 ids were stored already
    rows, bulk = tmp_path / "rows.db", tmp_path / "bulk.db"
    assert query(bulk, SCHEMA) == query(rows, SCHEMA)
    for table in ("mentions", "mention_tags", "conversations", "authors"):
        assert query(bulk, f"SELECT * FROM {table} ORDER BY key") == query(rows, f"SELECT * FROM {table} ORDER BY key")
    found, held = fts_whole(bulk, "rimborso")
    assert found == held and len(held) > 400
    stats = "SELECT idx FROM sqlite_stat1 WHERE tbl = 'mentions' ORDER BY idx"
    assert query(bulk, stats) == query(rows, stats) and ("mentions_published_key",) in query(bulk, stats)


def test_a_bulk_import_stopped_part_way_builds_its_indexes_before_it_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(backfill, "BULK_LINES", 1_000)  # any file larger than the database, of 1,000 lines or more
    store = Store.open(tmp_path / "p.db")
    writes = []
    original = store.mentions.save_poll

    def stop_after_first_chunk(*args: object, **kwargs: object) -> object:
        if writes:
            raise KeyboardInterrupt
        writes.append(1)
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store.mentions, "save_poll", stop_after_first_chunk)
    with pytest.raises(KeyboardInterrupt):
        backfill.import_file(store, jsonl(tmp_path / "calls.jsonl", 5_000), T0, None, progress=False)
    assert store.backfills.deferred() == 0
    store.close()
    assert query(tmp_path / "p.db", "SELECT count(*) FROM mentions") == [(2000,)]
    Store.open(tmp_path / "fresh.db").close()
    assert query(tmp_path / "p.db", SCHEMA) == query(tmp_path / "fresh.db", SCHEMA)
    found, held = fts_whole(tmp_path / "p.db", "rimborso")
    assert found == held and held


#: A bulk import's first step, then it hangs until killed.
DEFERRING = """
import sys
from datetime import UTC, datetime
from storage import Store
store = Store.open(sys.argv[1])
print(store.backfills.defer_indexes(datetime.now(UTC)), flush=True)
sys.stdin.read()
"""


def test_indexes_a_killed_bulk_import_left_dropped_are_built_by_the_next_open_with_what_was_written_meanwhile(
    tmp_path: Path,
) -> None:
    """A kill leaves no chance to build them: the drop was recorded with each index's SQL, and the next open of
    the database once the import is gone (the daemon's, or the import run again) builds them, the full-text index
    from every mention, the rows written meanwhile by anyone included (the daemon's new mentions, an edited text).
    While the import runs, opening the database leaves its work alone."""
    Store.open(tmp_path / "fresh.db").close()
    daemon = Store.open(tmp_path / "p.db")
    mentions = [r for _, r in import_rows(jsonl(tmp_path / "calls.jsonl", 300), T0.replace(year=2027))]
    daemon.save_poll("import", "import", Poll(mentions=tuple(mentions[:100])), T0)  # type: ignore[arg-type]
    bulk = subprocess.Popen(
        [sys.executable, "-c", DEFERRING, str(tmp_path / "p.db")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    try:
        assert bulk.stdout is not None and bulk.stdout.readline().strip() == "22"  # 19 indexes, 3 full-text triggers
        daemon.save_poll("import", "import", Poll(mentions=tuple(mentions[100:])), T0)  # type: ignore[arg-type]
        edited = replace(mentions[0], text="voglio un rimborso subito")  # type: ignore[type-var]
        daemon.save_poll("import", "import", Poll(mentions=(edited,)), T0, reread={edited.key})  # type: ignore[arg-type]
        Store.open(tmp_path / "p.db").close()  # e.g. `passaparola status` while the import runs
        assert query(tmp_path / "p.db", "SELECT count(*) FROM deferred_schema") == [(22,)]
        assert query(tmp_path / "p.db", "SELECT count(*) FROM sqlite_master WHERE name = 'mentions_published_key'") == [
            (0,)
        ]
    finally:
        bulk.kill()
        bulk.communicate(timeout=30)

    Store.open(tmp_path / "p.db").close()
    assert query(tmp_path / "p.db", "SELECT count(*) FROM deferred_schema") == [(0,)]
    assert query(tmp_path / "p.db", SCHEMA) == query(tmp_path / "fresh.db", SCHEMA)
    found, held = fts_whole(tmp_path / "p.db", "rimborso")
    assert found == held and edited.key in found
    assert set(found) - {m.key for m in mentions[:100]}  # written while the full-text triggers were gone
    daemon.close()


def test_a_bulk_import_beside_another_leaves_the_indexes_to_the_one_that_dropped_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two imports at once: the second cannot take the lock, writes with the indexes as the first left them, and
    does not build them under the first one's feet (a 25-second write lock in the middle of its run); it says so."""
    first = Store.open(tmp_path / "p.db")
    assert first.backfills.defer_indexes(T0) == 22
    second = Store.open(tmp_path / "p.db")
    outcome = backfill.import_file(second, jsonl(tmp_path / "calls.jsonl", 500), T0, None, bulk=True, progress=True)
    assert outcome.new == 500
    said = capsys.readouterr().err
    assert "another bulk import is running on this database" in said and "building the indexes" not in said
    assert query(tmp_path / "p.db", "SELECT count(*) FROM deferred_schema") == [(22,)]
    second.close()
    assert first.backfills.restore_indexes() == 22
    found, held = fts_whole(tmp_path / "p.db", "rimborso")
    assert found == held and len(found) > 0
    first.close()


def test_only_a_file_larger_than_the_database_is_imported_in_bulk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(backfill, "BULK_LINES", 1_000)
    store = Store.open(tmp_path / "p.db")
    backfill.import_file(store, jsonl(tmp_path / "small.jsonl", 999), T0, None)
    assert "a bulk import" not in capsys.readouterr().err  # under BULK_LINES
    backfill.import_file(store, jsonl(tmp_path / "first.jsonl", 1_500), T0, None)
    assert "a bulk import: the indexes are built once at the end" in capsys.readouterr().err
    (tmp_path / "more.jsonl").write_text(
        "".join(
            json.dumps(
                {"id": f"more-{n}", "text": "ancora", "published_at": "2026-03-01T10:00:00+01:00", "author": "x"}
            )
            + "\n"
            for n in range(1_200)
        ),
        encoding="utf-8",
    )
    backfill.import_file(store, tmp_path / "more.jsonl", T0, None)
    assert "a bulk import" not in capsys.readouterr().err  # 1,200 lines into 1,500 stored: kept row by row
    store.close()
