"""`make bench`: speed figures, printed and written to var/bench.json. Never run in CI.

Ingest: mentions per second through `Store.save_poll` (authors, raw mentions, conversation state, brand replies,
answers, cursor: one transaction per poll of 100) against a bare sqlite-utils `insert_all` of the same rows into
one table, measured in the same run, on a file database in WAL mode. The ratio is what the bookkeeping costs.

Analysis: mentions per second through the whole spaCy pipeline (language, sentiment, brand, topics,
needs-answer) in each mode, each in its own process pinned to one core with one thread, against VADER alone
in the same process; and the process's peak resident memory once the pipeline is loaded and has run.

Feeds (`tools.bench_feeds`): the running daemon's peak memory, workers included, with 1, 10 and 50 feed sources.

Pages (`tools.bench_pages`, alone with ``--pages``): every page and API listing at 100k mentions, each filter of
the inbox included, median and p95 against the 150 ms goal and against `/healthz` as the floor.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlite_utils import Database

from listener import DemoSource, Mention, Poll
from storage import Store
from tools.bench_feeds import bench_feeds
from tools.bench_pages import bench_pages, write_pages
from tools.bench_scale import bench_scale, cycle_worker

POLL_SIZE = 100
ROUNDS = 3


def sample(count: int) -> tuple[list[Mention], list[Poll]]:
    """`count` distinct mentions made from the demo sample, cut into polls with their brand replies."""
    base = DemoSource().poll(None, datetime(2026, 3, 2, tzinfo=UTC))
    mentions, polls = [], []
    for copy in range(count // len(base.mentions) + 1):
        batch = [
            replace(m, platform_id=f"{m.platform_id}-{copy}", published_at=m.published_at - timedelta(days=copy))
            for m in base.mentions
        ]
        mentions.extend(batch)
    mentions = mentions[:count]
    for start in range(0, count, POLL_SIZE):
        polls.append(Poll(mentions=tuple(mentions[start : start + POLL_SIZE]), cursor={"n": start}))
    return mentions, polls


def bench_store(polls: list[Poll], folder: Path) -> float:
    store = Store.open(folder / "store.db")
    started = time.perf_counter()
    for poll in polls:
        store.save_poll("bench", "demo", poll, datetime.now(UTC))
    elapsed = time.perf_counter() - started
    store.close()
    return elapsed


def bench_bare(mentions: list[Mention], folder: Path) -> float:
    db = Database(folder / "bare.db")
    db.enable_wal()
    db.execute("PRAGMA synchronous=NORMAL")
    rows = [
        {
            "key": m.key,
            "text": m.text,
            "author": m.author.key,
            "published_at": m.published_at.isoformat(),
            "url": m.url,
            "thread_id": m.thread_id,
        }
        for m in mentions
    ]
    started = time.perf_counter()
    for start in range(0, len(rows), POLL_SIZE):
        with db.atomic():
            db.table("mentions").insert_all(rows[start : start + POLL_SIZE], pk="key")
    elapsed = time.perf_counter() - started
    db.close()
    return elapsed


def analysis_worker(mode: str, count: int, cores: int) -> None:
    """Runs in a child process on ``cores`` cores (the accurate mode's e5 threads too); prints one JSON line."""
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:cores]))
    from rules.analysis import AnalysisSettings, Analyzer
    from rules.sentiment import vader_scores

    texts = [m.text for m in DemoSource().poll(None, datetime(2026, 3, 2, tzinfo=UTC)).mentions]
    texts = (texts * (count // len(texts) + 1))[:count]
    settings = AnalysisSettings(
        mode=mode,  # type: ignore[arg-type]
        brand_handles=("AuroraCaffe",),
        topics={"consegna": ("consegna",)},
        threads=cores,
    )
    analyzer = Analyzer(settings)
    analyzer.analyze(texts[:64])  # load everything once, as the daemon does on its first batch
    started = time.perf_counter()
    analyzer.analyze(texts)
    rate = count / (time.perf_counter() - started)
    started = time.perf_counter()
    for text in texts:
        vader_scores(text)
    vader_rate = count / (time.perf_counter() - started)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"mode": mode, "cores": cores, "per_second": rate, "vader_per_second": vader_rate,
                      "peak_rss_mb": peak_mb}))  # fmt: skip


def bench_analysis() -> dict[str, dict[str, float]]:
    """The accurate mode on two cores, the fast mode on one (the targets: 100/s and 5,000/s, under 300 MB)."""
    figures = {}
    for mode, count, cores in (("accurate", 1_000, 2), ("fast", 20_000, 1)):
        env = {**os.environ, "OMP_NUM_THREADS": str(cores), "OPENBLAS_NUM_THREADS": "1"}
        done = subprocess.run(
            [sys.executable, "-m", "tools.bench", "--analysis-worker", mode, str(count), str(cores)],
            capture_output=True, text=True, env=env, check=True,
        )  # fmt: skip
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["vs_vader_ratio"] = result["per_second"] / result["vader_per_second"]
        figures[mode] = result
        print(
            f"analysis, {mode:<8} mode, {cores} core{'s' if cores > 1 else ''}: {result['per_second']:10,.0f} "
            f"mentions/s (VADER alone {result['vader_per_second']:,.0f}/s, ratio {result['vs_vader_ratio']:.4f}); "
            f"peak memory {result['peak_rss_mb']:.0f} MB"
        )
    return figures


def main() -> None:
    if sys.argv[1:2] == ["--analysis-worker"]:
        analysis_worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    if sys.argv[1:2] == ["--cycle-worker"]:
        cycle_worker(sys.argv[2])
        return
    if sys.argv[1:2] == ["--scale"]:  # the scale part alone
        print(json.dumps(bench_scale(), indent=2))
        return
    if sys.argv[1:2] == ["--feeds"]:  # the daemon's memory with 1, 10 and 50 feeds, alone
        print(json.dumps(bench_feeds(), indent=2))
        return
    if sys.argv[1:2] == ["--pages"]:  # every page and API listing at 100k mentions, alone: into var/bench.json
        print(f"written to {write_pages(bench_pages())}")
        return
    count = 20_000
    mentions, polls = sample(count)
    store_times, bare_times = [], []
    for _ in range(ROUNDS):
        with tempfile.TemporaryDirectory() as scratch:
            store_times.append(bench_store(polls, Path(scratch)))
            bare_times.append(bench_bare(mentions, Path(scratch)))
    store_rate = count / statistics.median(store_times)
    bare_rate = count / statistics.median(bare_times)
    figures = {
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "mentions": count,
        "poll_size": POLL_SIZE,
        "rounds": ROUNDS,
        "ingest_store_per_second": round(store_rate),
        "ingest_bare_insert_per_second": round(bare_rate),
        "store_vs_bare_ratio": round(store_rate / bare_rate, 3),
    }
    print(f"ingest through Store.save_poll : {store_rate:10,.0f} mentions/s (median of {ROUNDS})")
    print(f"bare sqlite-utils insert_all   : {bare_rate:10,.0f} mentions/s")
    print(f"ratio store / bare             : {store_rate / bare_rate:10.2f}")
    figures["analysis"] = bench_analysis()
    figures["scale"] = bench_scale()
    figures["feeds"] = bench_feeds()
    figures["pages"] = bench_pages()
    out = Path("var") / "bench.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
