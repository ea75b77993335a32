"""`make bench`, scale part: how the daemon's rules, its memory and the dashboard grow with the stored mentions.

One database grows 10k -> 100k -> 1M mentions spread over the last year (so a busier brand, not an older one:
the recent windows the rules and the cockpit read grow with it). The first 10k go through `Store.save_poll` with
the fast pipeline's tags, are triaged, and all but the last day's are answered; larger sizes copy that block in
SQL with shifted dates (the FTS triggers index each copy). At each size:

- a daemon cycle's rules (triage, the seven default rules, advocate scoring) in a fresh child process, with its
  time and peak resident memory: the daemon's steady state (the cycle a minute after the last, with a minute's new
  mentions), and beside it the first cycle on the database, which scores every advocate of the window;
- page latency (median, p95 of 20 requests after one warm-up) of the real web app on 127.0.0.1: the inbox (all,
  a search, the answered), the cockpit (one, seven and 30 days), the advocates, the API inbox (all, one channel)
  and `/metrics`.

Alone: ``python -m tools.bench_scale --sizes 10000,100000 --no-pages --cache var/cache`` measures only those sizes,
only the rules cycle, and keeps each built database under ``var/cache`` (``bench-scale-SIZE.db``) for the next run
(delete them after changing `seed` or `grow`). ``--profile N`` prints a cProfile of the rules cycle at ``N``.
``--pages-only DB [--paths /cockpit,/cockpit?days=7]`` measures only the pages on a database already built (work
on a copy of a cached one: opening it applies the migrations it lacks).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

SIZES = (10_000, 100_000, 1_000_000)
BLOCK = 10_000
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TOKEN = "bench-token-0123456789abcdefghij"
PAGES = (
    "/inbox", "/inbox?q=capsule", "/inbox?state=answered", "/cockpit", "/cockpit?days=7", "/cockpit?days=30",
    "/advocates", "/api/inbox", "/api/inbox?channel=x", "/metrics",
)  # fmt: skip


def _settings(db: Path) -> Any:
    from passaparola.cli import demo_settings
    from passaparola.config import TokenSettings

    settings = demo_settings(db, db.with_name("alerts.jsonl"))
    token = TokenSettings(name="bench", role="admin", token=SecretStr(TOKEN))
    return replace(settings, web=settings.web.model_copy(update={"tokens": [token], "port": 0}))


def seed(db: Path) -> None:
    """The first block: demo mentions, tagged by the fast pipeline, spread over the year, triaged, mostly answered."""
    from listener import DemoSource, Poll
    from passaparola.pipeline import triage
    from rules.analysis import AnalysisSettings, Analyzer
    from storage import Store

    base = DemoSource().poll(None, NOW).mentions
    tags = Analyzer(AnalysisSettings(mode="fast")).analyze([m.text for m in base])
    base = tuple(replace(m, tags=t) for m, t in zip(base, tags, strict=True))
    step = timedelta(days=365) / BLOCK
    mentions = [
        replace(m, platform_id=f"{m.platform_id}-{i}", published_at=NOW - step * i)
        for i, m in enumerate(base[i % len(base)] for i in range(BLOCK))
    ]
    store = Store.open(db)
    for start in range(0, BLOCK, 500):
        store.save_poll("demo", "demo", Poll(mentions=tuple(mentions[start : start + 500])), NOW)
    triage(_settings(db).triage, store, NOW)
    store.db.execute(
        "UPDATE conversations SET state = 'answered', answered_by = 'giulia', response_seconds = 1200, "
        "answered_at = (SELECT strftime('%Y-%m-%dT%H:%M:%S+00:00', m.published_at, '+20 minutes') "
        "FROM mentions m WHERE m.key = conversations.key) "
        "WHERE key IN (SELECT key FROM mentions WHERE published_at < ?)",
        [(NOW - timedelta(days=1)).isoformat(timespec="seconds")],
    )
    store.db.conn.commit()
    store.close()


def grow(db: Path, copies: range) -> None:
    """Copy the first block ``copies`` times, each shifted by a fraction of a day (denser, not older), each by
    authors of its own (about 75 a block: 7,500 people at 1M, each with the history the first block's have)."""
    from storage import Store

    store = Store.open(db)
    plan = {  # each copy has authors of its own: a busier brand is heard by more people, not by the same ones more
        "authors": ({"key", "platform_id", "handle"}, set()),
        "mentions": ({"key", "platform_id", "thread_id", "author_key"}, {"published_at"}),
        "mention_tags": ({"key"}, set()),
        "conversations": ({"key"}, {"due_at", "warn_at", "answered_at"}),
    }
    for copy in copies:
        values = {"s": f"~{copy}", "shift": f"-{(copy * 37) % 1440} minutes"}
        with store.db.atomic():
            for table, (suffixed, shifted) in plan.items():
                columns = [r[1] for r in store.db.execute(f"PRAGMA table_info({table})").fetchall()]
                picked = ", ".join(
                    f"{c} || :s"
                    if c in suffixed
                    else f"strftime('%Y-%m-%dT%H:%M:%S+00:00', {c}, :shift)"
                    if c in shifted
                    else c
                    for c in columns
                )
                store.db.execute(
                    f"INSERT INTO {table} ({', '.join(columns)}) SELECT {picked} FROM {table} WHERE key NOT LIKE '%~%'",
                    values,
                )
    store.db.execute("PRAGMA optimize")
    store.close()


def new_minute(db: Path, at: datetime) -> None:
    """What a busy brand gets in a minute: three mentions (praise and a complaint by known authors, a newcomer)."""
    from listener import Author, DemoSource, Poll
    from storage import Store

    known = [m.author for m in DemoSource().poll(None, NOW).mentions[:2]]
    who = (*known, Author("x", "bench-newcomer", "bench_newcomer", reach=1200))
    labels = ("positive", "negative", "positive")
    mentions = tuple(
        replace(
            DemoSource().poll(None, NOW).mentions[i],
            platform_id=f"bench-minute-{at:%Y%m%d%H%M}-{i}",
            author=author,
            published_at=at - timedelta(seconds=20 * (3 - i)),
            tags={"sentiment": label, "sentiment_probs": {label: 0.9}, "needs_answer": label == "negative"},
        )
        for i, (author, label) in enumerate(zip(who, labels, strict=True))
    )
    store = Store.open(db)
    store.save_poll("demo", "demo", Poll(mentions=mentions), at)
    store.close()


#: Steady cycles measured after the first, a minute apart: their median is the steady figure (one cycle of a few
#: hundredths of a second is mostly the noise of a shared machine).
STEADY_CYCLES = 5


def cycle_worker(db: str) -> None:
    """Child process: the first rules cycle on the database (every advocate scored), then the daemon's steady state:
    each cycle a minute after the last, after a minute's new mentions (the median of `STEADY_CYCLES`). Prints the
    times and peak memory as JSON."""
    seconds = []
    for minute in range(STEADY_CYCLES + 1):
        at = NOW + timedelta(minutes=minute)
        if minute:
            new_minute(Path(db), at)
        started = time.perf_counter()
        cycle(db, at)
        seconds.append(time.perf_counter() - started)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    steady = seconds[1:]
    print(
        json.dumps(
            {
                "first_cycle_seconds": seconds[0],
                "rules_seconds": statistics.median(steady),
                "steady_cycles_seconds": steady,
                "peak_rss_mb": peak,
            }
        )
    )


def page_latency(db: Path, pages: tuple[str, ...] = PAGES) -> dict[str, dict[str, float]]:
    """Median and p95 of 20 requests of each of ``pages`` (after one warm-up) to the real web app on 127.0.0.1."""
    from passaparola.web import WebServer, create_app
    from storage import Store

    store = Store.open(db, shared=True)
    server = WebServer(create_app(_settings(db), store, lambda: NOW), "127.0.0.1", 0)
    server.start()
    out = {}
    try:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", headers=headers, timeout=60) as client:
            for path in pages:
                assert client.get(path).status_code == 200, path
                times = []
                for _ in range(20):
                    started = time.perf_counter()
                    client.get(path).raise_for_status()
                    times.append(time.perf_counter() - started)
                times.sort()
                out[path] = {"median_ms": statistics.median(times) * 1000, "p95_ms": times[18] * 1000}
    finally:
        server.stop()
        store.close()
    return out


def cycle(db: str, at: datetime = NOW) -> None:
    """One rules cycle as the daemon runs it: triage, the rules, advocate scoring."""
    from passaparola.pipeline import evaluate, score_advocates, triage
    from storage import Store

    settings = _settings(Path(db))
    store = Store.open(db)
    try:
        triage(settings.triage, store, at)
        evaluate(settings.rules, store, at)
        score_advocates(settings.advocates, store, at)
    finally:
        store.close()


def build(db: Path, size: int, have: int, cache: Path | None) -> int:
    """Grow ``db`` (holding ``have`` mentions, 0 for none) to ``size``, or copy it from ``cache``; returns ``size``."""
    cached = cache / f"bench-scale-{size}.db" if cache is not None else None
    if cached is not None and cached.exists():
        shutil.copyfile(cached, db)
        return size
    if have == 0:
        seed(db)
        have = BLOCK
    if size > have:
        grow(db, range(have // BLOCK, size // BLOCK))
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(db, cached)
    return size


def bench_scale(sizes: tuple[int, ...] = SIZES, pages: bool = True, cache: Path | None = None) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as scratch:
        db = Path(scratch) / "scale.db"
        have = 0
        for size in sizes:
            have = build(db, size, have, cache)
            for extra in (db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
                extra.unlink(missing_ok=True)
            scratch_db = db.with_name(f"cycle-{size}.db")  # the cycle writes: the next size grows the copy it was
            shutil.copyfile(db, scratch_db)
            done = subprocess.run(
                [sys.executable, "-m", "tools.bench", "--cycle-worker", str(scratch_db)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            scratch_db.unlink()
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            found: dict[str, Any] = {"cycle": measured, "db_mb": db.stat().st_size / 2**20}
            if pages:
                found["pages"] = page_latency(db)
            figures[str(size)] = found
            print(
                f"{size:>9,} mentions ({found['db_mb']:.0f} MB): rules cycle {measured['rules_seconds']:.2f} s "
                f"(the first on the database {measured['first_cycle_seconds']:.2f} s), "
                f"peak memory {measured['peak_rss_mb']:.0f} MB"
            )
            for path, t in found.get("pages", {}).items():
                print(f"    {path:<18} median {t['median_ms']:8.1f} ms   p95 {t['p95_ms']:8.1f} ms")
    if len(sizes) < 2:
        return figures
    small, large = figures[str(sizes[0])], figures[str(sizes[-1])]
    growth = f"growth_{sizes[-1] // 1000}k_vs_{sizes[0] // 1000}k" if sizes != SIZES else "growth_1m_vs_10k"
    figures[growth] = {
        "rules": large["cycle"]["rules_seconds"] / small["cycle"]["rules_seconds"],
        "memory": large["cycle"]["peak_rss_mb"] / small["cycle"]["peak_rss_mb"],
        **{path: large["pages"][path]["median_ms"] / small["pages"][path]["median_ms"] for path in PAGES if pages},
    }
    print(f"{growth} (x): " + ", ".join(f"{k} {v:.1f}" for k, v in figures[growth].items()))
    return figures


def profile(size: int, cache: Path | None, top: int = 30) -> None:
    """cProfile of the steady rules cycle at ``size`` mentions (on a copy: the cycle writes)."""
    with tempfile.TemporaryDirectory() as scratch:
        db = Path(scratch) / "scale.db"
        build(db, size, 0, cache)
        _settings(db)  # the imports, outside the profile
        import passaparola.pipeline  # noqa: F401

        cycle(str(db))  # the first cycle: every advocate scored
        new_minute(db, NOW + timedelta(minutes=1))
        profiler = cProfile.Profile()
        profiler.runcall(cycle, str(db), NOW + timedelta(minutes=1))
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(top)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_scale", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="comma-separated, multiples of 10000")
    parser.add_argument("--no-pages", action="store_true", help="measure the rules cycle only")
    parser.add_argument("--cache", type=Path, help="keep and reuse the built databases in this folder")
    parser.add_argument("--profile", type=int, metavar="SIZE", help="print a cProfile of the rules cycle instead")
    parser.add_argument(
        "--pages-only",
        type=Path,
        metavar="DB",
        help="only measure the pages on this database, opened in place (a copy: its pending migrations apply)",
    )
    parser.add_argument("--paths", help="with --pages-only: comma-separated pages to measure (default: all)")
    args = parser.parse_args(argv)
    if args.pages_only:
        paths = tuple(args.paths.split(",")) if args.paths else PAGES
        for path, t in page_latency(args.pages_only, paths).items():
            print(f"    {path:<18} median {t['median_ms']:8.1f} ms   p95 {t['p95_ms']:8.1f} ms")
        return
    if args.profile:
        profile(args.profile, args.cache)
        return
    sizes = tuple(sorted(int(s) for s in args.sizes.split(",")))
    if any(s % BLOCK or s <= 0 for s in sizes):
        parser.error(f"--sizes: each size must be a positive multiple of {BLOCK}")
    print(json.dumps(bench_scale(sizes, pages=not args.no_pages, cache=args.cache), indent=2))


if __name__ == "__main__":
    main()
