"""Backfills that use the machine: ``passaparola import`` and ``passaparola reanalyze``.

Reading (the spaCy pipeline of `rules.analysis`) is spread over worker processes, one `Analyzer` each, loaded
once per process on its first chunk (a `concurrent.futures.ProcessPoolExecutor`, spawned: a worker is a fresh
interpreter, so keep this module's imports small). The parent cuts the input into chunks (`chunk_for` the mode),
sends each chunk's texts and signals (small pickles), gets the tags back in order and writes each chunk in one
transaction (`storage.writes.writing`) together with its checkpoint (`storage.backfills`):

- an import writes the chunk's mentions with `Mentions.save_poll` and the last line of the file it stored, under a
  checkpoint named after the file (its path, size and modification time: a changed file starts over);
- reanalysis overwrites the chunk's tags with `Mentions.replace_tags` and the last key it read (mentions are read
  in key order).

A run stopped anyhow (Ctrl-C, a kill, a crash) loses at most the chunks in flight; the same command run again
skips what was stored and reads nothing twice. A run that finishes clears its checkpoint, so a later run starts
over (an import then finds every row stored already and reads none of them).

Progress goes to stderr: a tqdm bar on a terminal; elsewhere (a log, a pipe) one line after the first chunk and
then every `LINE_EVERY` seconds, each with the rows done, the rate and the time left. With one worker (or input
that fits one chunk) everything runs in this process.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from storage.writes import writing

if TYPE_CHECKING:
    from listener.imports import Rejected
    from listener.model import Mention
    from rules.analysis import AnalysisSettings, Analyzer
    from storage.store import Store

#: Texts per chunk: one task for a worker, one transaction for the parent.
CHUNK = 2_000
#: The accurate mode reads about 60 texts a second a core: its chunks are smaller, so that a few thousand texts
#: already keep every worker busy and a stop loses seconds of reading, not half a minute.
ACCURATE_CHUNK = 200


def chunk_for(settings: AnalysisSettings | None) -> int:
    """Texts per chunk for this reading: `ACCURATE_CHUNK` for the accurate mode, `CHUNK` otherwise."""
    return ACCURATE_CHUNK if settings is not None and settings.mode == "accurate" else CHUNK


#: SQLite's page cache of a backfill's connection, in MiB (the daemon keeps SQLite's 2 MB). Each chunk's rows land
#: all over the indexes (keys, authors, full-text terms): with the small cache every chunk reads those pages from
#: the file again, and an import of a million slowed to a third of its start (`tools/bench_backfill.py`).
BACKFILL_CACHE_MIB = 128

#: An import of at least this many lines, and of more lines than the database holds mentions, is a bulk import: it
#: builds the secondary and full-text indexes of what it writes once, at its end (`storage.backfills`). Keeping
#: nineteen indexes row by row cost a million-row import three quarters of its writing time; building them again
#: takes about 25 seconds a million mentions stored (`tools/bench_backfill.py`).
BULK_LINES = 50_000

#: Seconds between two progress lines when stderr is not a terminal.
LINE_EVERY = 10.0
#: tqdm writes the rate as "{rate}{unit}/s" (never inverted to "s/line": a log line reads alike at any speed), so
#: the unit carries its own leading space ("193.53 lines/s").
BAR_FORMAT = (
    "{desc}: {n_fmt}/{total_fmt}{unit} {percentage:3.0f}% | {rate_noinv_fmt} | {elapsed} elapsed, {remaining} left"
)

Tags = dict[str, Any]
#: What a worker needs to read one mention: its text and (platform, source, rating) for its signals.
Item = tuple[str, tuple[str, str, Any]]


class BackfillError(Exception):
    """The backfill stopped part way (a worker process died); what was stored is kept and a re-run goes on."""


def default_workers() -> int:
    """The cores this process may run on: reading is CPU-bound, one process per core."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


# -- the workers -----------------------------------------------------------------------------------

_worker_settings: AnalysisSettings | None = None
_worker_analyzer: Analyzer | None = None


def _init_worker(settings: AnalysisSettings) -> None:
    """Each worker's initializer: remember the settings (the pipeline loads on the first chunk, once) and leave
    Ctrl-C to the parent, which stops the run and keeps what was stored."""
    global _worker_settings
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_settings = settings


def _read_chunk(items: Sequence[Item]) -> list[Tags]:
    """A worker's task: the tags of each item, in order."""
    global _worker_analyzer
    from rules.analysis import Analyzer

    if _worker_analyzer is None:
        assert _worker_settings is not None
        _worker_analyzer = Analyzer(_worker_settings)
    return _analyze(_worker_analyzer, items)


def _analyze(analyzer: Analyzer, items: Sequence[Item]) -> list[Tags]:
    from rules.analysis import signals

    return analyzer.analyze([text for text, _ in items], [signals(*where) for _, where in items])


class Reader:
    """Reads chunks in this process (one worker) or in a pool of worker processes; results come in order."""

    def __init__(self, settings: AnalysisSettings | None, workers: int) -> None:
        self.settings = settings
        self.workers = workers if settings is not None else 1
        self.pool: ProcessPoolExecutor | None = None
        self.analyzer: Analyzer | None = None
        if settings is not None and self.workers > 1:
            # one model load per worker; the accurate mode's threads are the workers themselves
            self.pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=get_context("spawn"),
                initializer=_init_worker,
                initargs=(replace(settings, threads=1),),
            )
        elif settings is not None:
            from rules.analysis import Analyzer

            self.analyzer = Analyzer(settings)
        self.read = 0  #: texts sent to the model, this run

    @property
    def window(self) -> int:
        """Chunks in flight: enough that no worker waits while the parent parses and writes."""
        return 2 * self.workers if self.pool is not None else 1

    def submit(self, items: Sequence[Item]) -> Future[list[Tags]]:
        if self.settings is not None:
            self.read += len(items)
        if self.pool is not None and items:
            return self.pool.submit(_read_chunk, list(items))
        done: Future[list[Tags]] = Future()
        if self.analyzer is None or not items:
            done.set_result([{} for _ in items])
            return done
        try:
            done.set_result(_analyze(self.analyzer, items))
        except Exception as error:
            done.set_exception(error)
        return done

    def close(self, cancel: bool = False) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=not cancel, cancel_futures=cancel)
            self.pool = None


def pipelined(
    reader: Reader, chunks: Iterable[tuple[Any, Sequence[Item]]], write: Callable[[Any, list[Tags]], None]
) -> None:
    """Submit each (meta, items) chunk, keeping `Reader.window` chunks in flight, and write each in input order."""
    pending: deque[tuple[Any, Future[list[Tags]]]] = deque()
    try:
        for meta, items in chunks:
            pending.append((meta, reader.submit(items)))
            while len(pending) >= reader.window:
                done, future = pending.popleft()
                write(done, future.result())
        while pending:
            done, future = pending.popleft()
            write(done, future.result())
    except BrokenProcessPool as error:
        reader.close(cancel=True)
        raise BackfillError(f"a worker process stopped ({error})") from None
    except BaseException:
        reader.close(cancel=True)
        raise
    reader.close()


# -- progress --------------------------------------------------------------------------------------


class Progress:
    """Rows done, the rate and the time left on stderr: a tqdm bar on a terminal, plain lines elsewhere."""

    def __init__(
        self,
        total: int,
        initial: int,
        desc: str,
        unit: str,
        show: bool = True,
        stream: IO[str] | None = None,
        every: float | None = None,
    ) -> None:
        from tqdm import tqdm

        self.stream = stream if stream is not None else sys.stderr
        self.total, self.initial, self.n = total, initial, initial
        self.desc, self.unit, self.show = desc, f" {unit}", show
        self.every = LINE_EVERY if every is None else every
        self.started = time.monotonic()
        self.last_line: float | None = None
        self.printed: int | None = None  #: rows done at the last line printed
        self.tty = show and self.stream.isatty()
        self.bar: Any = None
        if self.tty:
            self.bar = tqdm(
                total=total,
                initial=initial,
                desc=desc,
                unit=self.unit,
                bar_format=BAR_FORMAT,
                file=self.stream,
                mininterval=0.2,
                dynamic_ncols=True,
            )

    def line(self) -> str:
        """The progress as one line,
        e.g. ``import: 4000/10000 lines  40% | 2345.60 lines/s | 00:01 elapsed, 00:02 left``
        (tqdm's own format, so the terminal's bar and a log's lines read alike)."""
        from tqdm import tqdm

        meter: str = tqdm.format_meter(
            self.n,
            self.total,
            time.monotonic() - self.started,
            prefix=self.desc,
            unit=self.unit,
            bar_format=BAR_FORMAT,
            initial=self.initial,
        )
        return meter

    def update(self, n: int) -> None:
        """``n`` rows done in all (this run and those before)."""
        step, self.n = n - self.n, n
        if self.bar is not None:
            self.bar.update(step)
        elif (
            self.show
            and n != self.printed
            and (self.last_line is None or time.monotonic() - self.last_line >= self.every)
        ):
            self._print(self.line())

    def note(self, message: str) -> None:
        if not self.show:
            return
        if self.bar is not None:
            self.bar.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.show and self.printed is not None and self.printed != self.n:
            self._print(self.line())

    def _print(self, text: str) -> None:
        self.last_line, self.printed = time.monotonic(), self.n
        print(text, file=self.stream, flush=True)


# -- import ----------------------------------------------------------------------------------------


@dataclass
class ImportOutcome:
    rows: int = 0  #: valid rows in the file
    new: int = 0  #: mentions stored for the first time, this run
    read: int = 0  #: mentions read (tagged) by this run
    resumed_after: int = 0  #: the line a previous, interrupted run had stored up to (0: from the start)
    stored_before: int = 0  #: mentions that interrupted run had stored
    rejected: list[Rejected] = field(default_factory=list)
    seconds: float = 0.0


def import_checkpoint_name(path: Path) -> str:
    """The checkpoint of one import file: its resolved path, size and modification time (a changed file starts over)."""
    stat = path.stat()
    identity = f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}"
    return f"import:{hashlib.sha256(identity.encode('utf-8', 'surrogateescape')).hexdigest()[:20]}"


def _bulk_cache(store: Store) -> None:
    """A page cache of `BACKFILL_CACHE_MIB` for this connection (a backfill's own process)."""
    store.db.execute(f"PRAGMA cache_size = -{BACKFILL_CACHE_MIB * 1024}")


def import_file(
    store: Store,
    path: Path,
    now: datetime,
    settings: AnalysisSettings | None,
    fmt: str | None = None,
    workers: int | None = None,
    chunk: int | None = None,
    progress: bool = True,
    rows: Iterator[tuple[int, Mention | Rejected]] | None = None,
    outcome: ImportOutcome | None = None,
    bulk: bool | None = None,
) -> ImportOutcome:
    """Import a CSV or JSONL file: read the rows not stored yet (``settings`` None: no reading), store them in
    chunks of ``chunk`` rows (`chunk_for` the mode by default), each in one transaction with the checkpoint; resume
    where an interrupted run stopped.

    ``rows``: `listener.imports.import_rows` of the file, opened already; ``outcome`` is filled as chunks are
    stored, so a caller that catches an interruption can still tell what this run did. ``bulk``: build the indexes
    once at the end (None: when the file has `BULK_LINES` and more lines than the database holds mentions).
    Raises `ImportFileError` (nothing stored), `ModelError` and `BackfillError` (the chunks before are kept; a
    re-run resumes after them).
    """
    from listener.imports import Rejected, import_rows
    from listener.model import Poll

    started = time.perf_counter()
    chunk = chunk or chunk_for(settings)
    _bulk_cache(store)
    rows = rows if rows is not None else import_rows(path, now, fmt)
    name = import_checkpoint_name(path)
    resume = store.backfills.checkpoint(name)
    after = int(resume.position) if resume else 0
    outcome = outcome if outcome is not None else ImportOutcome()
    outcome.resumed_after, outcome.stored_before = after, resume.done if resume else 0
    with path.open("rb") as file:
        lines = sum(block.count(b"\n") for block in iter(lambda: file.read(1 << 20), b""))
    reader = Reader(settings, (workers or default_workers()) if lines - after > chunk else 1)
    bar = Progress(lines, min(after, lines), "import", "lines", progress)
    if resume:
        bar.note(f"resuming {path} after line {after} ({resume.done} rows stored by the interrupted run)")
    if bulk is None:
        stored = store.db.execute("SELECT count(*) FROM mentions").fetchone()[0]
        bulk = lines - after >= max(BULK_LINES, stored)
    if bulk and store.backfills.defer_indexes(datetime.now(UTC)):
        bar.note("a bulk import: the indexes are built once at the end (until then searches miss the new rows)")
    elif bulk and not store.backfills.holds_bulk_lock():
        bar.note(
            "another bulk import is running on this database: this one writes beside it, and the other builds the "
            "indexes when it ends"
        )
    cursor = {"file": path.name}

    def chunks() -> Iterator[tuple[Any, Sequence[Item]]]:
        batch: list[Mention] = []
        last = after

        def cut() -> tuple[Any, Sequence[Item]]:
            known = store.mentions.known(m.key for m in batch)
            fresh = [m for m in batch if m.key not in known]
            items = [(m.text, (m.platform, m.source, m.metrics.get("rating"))) for m in fresh]
            return (batch, fresh, last), items

        for line, row in rows:
            if isinstance(row, Rejected):
                outcome.rejected.append(row)
                continue
            outcome.rows += 1
            if line <= after:  # stored by the interrupted run
                continue
            batch.append(row)
            last = line
            if len(batch) >= chunk:
                yield cut()
                batch = []
        if batch:
            yield cut()

    def write(meta: Any, tags: list[Tags]) -> None:
        batch, fresh, last = meta
        tagged = {m.key: m.tagged(t) for m, t in zip(fresh, tags, strict=True)}
        poll = Poll(mentions=tuple(tagged.get(m.key, m) for m in batch), cursor=cursor)
        with writing(store.db):
            result = store.mentions.save_poll("import", "import", poll, now)
            stored = outcome.stored_before + outcome.new + result.new_mentions
            store.backfills.save(name, str(path), str(last), stored, datetime.now(UTC))
        outcome.new += result.new_mentions
        outcome.read += len(fresh) if settings is not None else 0
        bar.update(last)

    try:
        pipelined(reader, chunks(), write)
        bar.update(lines)
    finally:
        bar.close()
        if store.backfills.holds_bulk_lock():  # not another bulk import's: that one builds them at its end
            bar.note("building the indexes...")
            store.backfills.restore_indexes()
        outcome.seconds = time.perf_counter() - started
    store.backfills.clear(name)
    return outcome


# -- reanalysis ------------------------------------------------------------------------------------


@dataclass
class ReanalyzeOutcome:
    done: int = 0  #: mentions read and stored by this run
    changed: int = 0  #: of them, how many the model now labels differently
    before: int = 0  #: mentions an interrupted run had done already
    model_version: str = ""
    seconds: float = 0.0


def reanalyze(
    store: Store,
    settings: AnalysisSettings,
    workers: int | None = None,
    chunk: int | None = None,
    progress: bool = True,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    outcome: ReanalyzeOutcome | None = None,
) -> ReanalyzeOutcome:
    """Recompute every stored mention's tags in key order, ``chunk`` at a time, each chunk's tags and its last key
    in one transaction; resume after the last key an interrupted run (same mode) stored.

    ``outcome`` is filled as chunks are stored (see `import_file`)."""
    started = time.perf_counter()
    chunk = chunk or chunk_for(settings)
    _bulk_cache(store)
    name = f"reanalyze:{settings.mode}"
    resume = store.backfills.checkpoint(name)
    after = resume.position if resume else ""
    outcome = outcome if outcome is not None else ReanalyzeOutcome()
    outcome.before = resume.done if resume else 0
    total = store.db.execute("SELECT count(*) FROM mentions").fetchone()[0]
    initial = store.db.execute("SELECT count(*) FROM mentions WHERE key <= ?", [after]).fetchone()[0] if after else 0
    reader = Reader(settings, (workers or default_workers()) if total - initial > chunk else 1)
    bar = Progress(total, initial, "reanalyze", "mentions", progress)
    if resume:
        bar.note(f"resuming the reanalysis after {initial} mentions (key {after})")

    def chunks() -> Iterator[tuple[Any, Sequence[Item]]]:
        last = after
        while page := store.mentions.texts(after_key=last, limit=chunk):
            last = page[-1][0]
            yield [row[0] for row in page], [(row[1], (row[2], row[3], row[4])) for row in page]

    def write(keys: list[str], tags: list[Tags]) -> None:
        with writing(store.db):
            outcome.changed += store.mentions.replace_tags(dict(zip(keys, tags, strict=True)), clock())
            store.backfills.save(name, settings.mode, keys[-1], outcome.before + outcome.done + len(keys), clock())
        outcome.done += len(keys)
        if tags and not outcome.model_version:
            outcome.model_version = str(tags[0].get("model_version") or "")
        bar.update(bar.n + len(keys))

    try:
        pipelined(reader, chunks(), write)
    finally:
        bar.close()
        outcome.seconds = time.perf_counter() - started
    store.backfills.clear(name)
    return outcome
