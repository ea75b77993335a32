"""Benchmark of the backfills (issue #23): how fast ``passaparola import`` and ``reanalyze`` go on this machine.

In one run, on the same generated rows: a bare sqlite-utils ``insert_all`` of the file into a fresh database (read,
parsed, inserted: the ceiling nothing that also reads and indexes can pass), then ``passaparola import`` in fast
mode with each ``--workers`` count, end to end (start-up, model loads, parsing, reading, storing) and the peak
memory of its largest process, then
``passaparola reanalyze --mode accurate`` on a small sample. Each figure is mentions a second, with its ratio to the
bare insert. Not run in CI: ``make bench`` or ``python tools/bench_backfill.py --rows 200000``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlite_utils import Database

ITALIAN = (
    "il pacco è arrivato rotto, voglio un rimborso",
    "ottimo servizio, grazie mille",
    "la macchina del caffè perde acqua da ieri",
    "nessuno risponde al telefono da giorni",
    "capsule buone ma la consegna è lenta",
    "come posso cambiare l'indirizzo di spedizione?",
)
ENGLISH = (
    "the coffee machine broke again after two weeks",
    "support never answers my emails",
    "love the new espresso blend, great value",
    "where is my order? it has been ten days",
    "fast delivery and friendly staff",
    "the app crashes when I try to pay",
)
CHANNELS = ("phone", "email", "review", "chat", "store", "site", "other")


def generate(path: Path, rows: int, seed: int = 23) -> None:
    """``rows`` import rows (JSONL), Italian and English, a few thousand customers, some with stars."""
    chance = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        for number in range(rows):
            phrases = ITALIAN if chance.random() < 0.6 else ENGLISH
            text = " ".join(chance.sample(phrases, chance.randint(1, 3)))
            channel = chance.choice(CHANNELS)
            row = {
                "id": f"bench-{number}",
                "text": f"{text} (#{number})",
                "published_at": f"2026-0{1 + number % 9}-{1 + number % 28:02d}T{number % 24:02d}:15:00+01:00",
                "author": f"Customer {number % 5000}",
                "channel": channel,
                "rating": str(1 + number % 5) if channel == "review" else "",
            }
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def bare_insert(source: Path, database: Path) -> float:
    """Seconds to read, parse and ``insert_all`` every row into a fresh table: the ceiling."""
    started = time.perf_counter()
    db = Database(database)
    with source.open(encoding="utf-8") as lines:
        db.table("mentions").insert_all((json.loads(line) for line in lines), pk="id", batch_size=2_000)
    db.close()
    return time.perf_counter() - started


def config(folder: Path, name: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(f'[storage]\npath = "{folder / name}.db"\n', encoding="utf-8")
    return path


def passaparola(args: list[str]) -> tuple[float, float]:
    """Seconds one ``passaparola`` command takes, end to end, and the peak memory (MB) of its largest process (it
    or one of its workers); exits when it fails."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+", encoding="utf-8") as errors:
        child = subprocess.Popen([sys.executable, "-m", "passaparola", *args], stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        errors.seek(0)
        stderr = errors.read()
    if child.returncode != 0:
        sys.exit(f"passaparola {' '.join(args)} failed ({child.returncode}):\n{stderr[-2000:]}")
    progress = [line for line in stderr.splitlines() if line.startswith(("import:", "reanalyze:"))]
    if len(progress) > 1:  # how the rate went: the first chunk (start-up), the middle, the end
        for line in (progress[0], progress[len(progress) // 2], progress[-1]):
            print(f"    {line}")
    return seconds, usage.ru_maxrss / 1024  # Linux counts kilobytes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000, help="mentions to import (default 1,000,000)")
    parser.add_argument("--workers", default="1,2", help="--workers counts to import with (default 1,2)")
    parser.add_argument("--sample", type=int, default=2_000, help="mentions reanalysed in accurate mode")
    parser.add_argument("--reanalyze-workers", type=int, default=2, help="--workers for the reanalysis")
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON object")
    options = parser.parse_args(argv)
    if options.rows < 1 or options.sample < 1:
        parser.error("--rows and --sample must be at least 1")
    counts = [int(n) for n in options.workers.split(",") if n.strip()]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        folder = Path(tmp)
        source = folder / "mentions.jsonl"
        generate(source, options.rows)
        print(f"{options.rows:,} mentions ({source.stat().st_size / 1e6:.0f} MB of JSONL), {cores} cores")

        bare = options.rows / bare_insert(source, folder / "bare.db")
        figures["bare_insert"] = bare
        print(f"bare sqlite-utils insert_all          {bare:10,.0f} mentions/s   (the ceiling)")
        for workers in counts:
            seconds, peak = passaparola(["import", str(source), "--config", str(config(folder, f"w{workers}")),
                                         "--workers", str(workers)])  # fmt: skip
            rate = options.rows / seconds
            figures[f"import_fast_workers_{workers}"] = rate
            figures[f"import_fast_workers_{workers}_peak_mb"] = peak
            took = f"{int(seconds // 60)} min {seconds % 60:.0f} s"
            label = f"import, fast mode, --workers {workers:<2}"
            print(f"{label:<38}{rate:10,.0f} mentions/s   {rate / bare:6.1%} of bare"
                  f"   ({took}; the largest process peaked at {peak:,.0f} MB)")  # fmt: skip

        sample = folder / "sample.jsonl"
        with source.open(encoding="utf-8") as lines, sample.open("w", encoding="utf-8") as out:
            for _, line in zip(range(options.sample), lines, strict=False):
                out.write(line)
        sampled = config(folder, "sample")
        passaparola(["import", str(sample), "--config", str(sampled), "--workers", "1"])
        workers = options.reanalyze_workers
        seconds, _ = passaparola(
            ["reanalyze", "--mode", "accurate", "--config", str(sampled), "--workers", str(workers)]
        )
        rate = options.sample / seconds
        figures[f"reanalyze_accurate_workers_{workers}"] = rate
        print(f"reanalyze, accurate, --workers {workers:<2}     {rate:10,.0f} mentions/s   {rate / bare:6.1%} of bare"
              f"   ({options.sample:,} mentions)")  # fmt: skip
    if options.json:
        print(json.dumps({"rows": options.rows, "cores": cores, **{k: round(v, 1) for k, v in figures.items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
