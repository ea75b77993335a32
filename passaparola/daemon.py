"""The long-running loop: a `schedule.Scheduler` instance with one guarded job per source, an inbound job,
an advocates job, a rules job, an outbox job, a maintenance job and, when switched on, a retraining job whose
work runs in a thread of its own. A failing job never stops the others; SIGTERM/SIGINT end the loop between jobs.

In `run`, no job may hold up another: polls run in a small pool of threads (a source still polling is not started
again; a slow feed delays only itself), delivery runs in a thread of its own (a slow mail server delays only the
alerts), and the loop itself keeps the schedule and the heartbeat. Each thread has its own connection to the
database (WAL lets them write in turn); reading mentions is serialised, since one pipeline serves every source.
`cycle` (``run --once``) does the same work in order, in the calling thread.
"""

from __future__ import annotations

import functools
import logging
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import schedule

from listener.model import Mention
from listener.replying import Replier
from notifiers.alert import Alert, Notifier
from passaparola.actions.replies import ReplyActions, build_repliers
from passaparola.config import Settings, SourceSpec
from passaparola.pipeline import deliver, evaluate, ingest_inbound, poll_source, score_advocates, triage
from passaparola.retraining import retrain
from rules.base import Tagger
from rules.sentiment import ModelError
from storage.store import Store

log = logging.getLogger("passaparola.daemon")

Clock = Callable[[], datetime]
HEARTBEAT_EVERY_SECONDS = 5.0
#: At most this many sources poll at once (each waits on the network, not on the CPU).
MAX_POLL_THREADS = 8
#: The longest the first rules wait for the first polls (a stuck source must not keep the rules from running).
FIRST_POLLS_LONGEST_SECONDS = 60.0
#: While `run` is on, one outbox pass starts no send after this long: a mail burst that apprise paces goes on
#: in the next passes, and alerts queued meanwhile for other URLs are not kept waiting behind it.
DELIVERY_PASS_SECONDS = 20.0


def system_clock() -> datetime:
    return datetime.now(UTC)


class Daemon:
    """Owns the scheduler and runs the jobs against one store, with an injectable clock."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        notifier: Notifier,
        taggers: Sequence[Tagger] = (),
        clock: Clock = system_clock,
        rng: random.Random | None = None,
        reload_taggers: Callable[[], Sequence[Tagger]] | None = None,
    ) -> None:
        self.settings = settings
        self.reload_taggers = reload_taggers
        self._owner = threading.get_ident()  # the thread whose connection ``store`` is
        self._local = threading.local()
        self._opened: list[Store] = []
        self._opened_lock = threading.Lock()
        self._reading = threading.Lock()
        self._workers: dict[str, ThreadPoolExecutor] = {}
        self._in_flight: dict[str, Future[None]] = {}
        self._retraining: threading.Thread | None = None
        self._model_swapped = threading.Event()
        self.store = store
        self.notifier = notifier
        self.taggers = list(taggers)
        self.clock = clock
        self.rng = rng or random.Random()
        self.scheduler = schedule.Scheduler()
        self.policies = settings.notify.route_policies()
        self._last_beat = 0.0
        self._disk_full_told: datetime | None = None
        self._built_repliers: dict[str, Replier] | None = None
        self._schedule_jobs()

    # -- jobs ------------------------------------------------------------------------------------

    def poll(self, spec: SourceSpec) -> None:
        poll_source(
            spec,
            self._store_here(),
            [_Serialised(t, self._reading) for t in self.taggers],
            self.clock(),
            self.settings.daemon.retry_base_seconds,
            self.settings.daemon.retry_max_seconds,
            self.rng,
        )

    def inbound(self) -> None:
        """Webhook bodies the web app queued: through the same ingest path as polls."""
        self._pick_up_model()
        page_ids = {s.name: s.source.page_id for s in self.settings.sources if s.type == "facebook"}
        ingest_inbound(self.store, [_Serialised(t, self._reading) for t in self.taggers], page_ids, self.clock())

    def advocates(self) -> None:
        score_advocates(self.settings.advocates, self.store, self.clock())

    def maintain(self) -> None:
        """Retention (when configured), the planner's statistics, a WAL checkpoint."""
        days = self.settings.storage.retention_days
        now = self.clock()
        done = self.store.maintain(now - timedelta(days=days) if days else None)
        log.info("maintenance: %d mentions past retention deleted, WAL %s", done["deleted"], done["wal_pages"])

    def evaluate(self) -> None:
        """Triage first, so the rules see today's deadlines and owners; then the rules."""
        now = self.clock()
        guarded("triage", functools.partial(self.triage, now))()
        evaluate(self.settings.rules, self.store, now)

    def triage(self, now: datetime) -> None:
        triage(self.settings.triage, self.store, now)

    def deliver(self) -> None:
        """Send what is due; in `run`, for at most `DELIVERY_PASS_SECONDS` (`run --once` sends everything)."""
        budget = DELIVERY_PASS_SECONDS if self._workers else None
        deliver(self._store_here(), self.notifier, self.clock(), self.rng, self.policies, budget)

    def answer(self) -> None:
        """Replies due (retries, approved ones) and the out-of-hours acknowledgements, in their own thread: a slow
        platform delays only the replies, never polls or alerts."""
        actions = ReplyActions(self.settings, self._store_here(), self._repliers())
        now = self.clock()
        actions.deliver_due(now)
        actions.acknowledge_out_of_hours(now)

    def _repliers(self) -> dict[str, Replier]:
        if self._built_repliers is None:
            self._built_repliers = build_repliers(self.settings)
        return self._built_repliers

    def retrain(self) -> None:
        """Start building a candidate model on the team's corrections, in a thread with its own connection
        (minutes of work that must not hold up polls or alerts); it goes live only if not worse."""
        if self._retraining is not None and self._retraining.is_alive():
            return
        settings, at = self.settings, self.clock()

        def work() -> None:
            store = Store.open(settings.storage.path, settings.storage.busy_timeout_seconds)
            configured = Path(settings.analysis.model_dir) if settings.analysis.model_dir else None
            try:
                outcome = retrain(store, Path(settings.storage.path), configured, at, settings.analysis.threads)
                if outcome.swapped:
                    self._model_swapped.set()
            except ModelError as error:
                log.info("sentiment retrain skipped: %s", error)
            except Exception:
                log.exception("sentiment retrain failed")
            finally:
                store.close()

        self._retraining = threading.Thread(target=work, name="retrain", daemon=True)
        self._retraining.start()

    def _pick_up_model(self) -> None:
        """After a swap, read new mentions with the model that is now live."""
        if self._model_swapped.is_set() and self.reload_taggers is not None:
            self._model_swapped.clear()
            self.taggers = list(self.reload_taggers())
            log.info("reading new mentions with the retrained model")

    def cycle(self) -> None:
        """One full cycle, in order: every source, then the rules, then the outbox and the replies (`run --once`)."""
        self._poll_all()
        self._after_polls()

    def _poll_all(self) -> list[Future[None]]:
        """Poll every source: in place, or handed to the poll threads while `run` is on (their futures)."""
        for spec in self.settings.sources:
            self._aside("polls", f"source:{spec.name}", functools.partial(self.poll, spec))()
        return [f for name, f in self._in_flight.items() if name.startswith("source:")]

    def _after_polls(self) -> None:
        guarded("inbound", self.inbound, self._record)()
        guarded("advocates", self.advocates, self._record)()
        guarded("rules", self.evaluate, self._record)()
        self._aside("delivery", "outbox", self.deliver)()
        self._aside("replies", "replies", self.answer)()

    def _schedule_jobs(self) -> None:
        jitter = self.settings.daemon.jitter
        for spec in self.settings.sources:
            name = f"source:{spec.name}"
            self._every(
                spec.every_seconds, jitter, name, self._aside("polls", name, functools.partial(self.poll, spec))
            )
        daemon = self.settings.daemon
        self._every(daemon.inbound_every_seconds, 0, "inbound", guarded("inbound", self.inbound, self._record))
        advocates = guarded("advocates", self.advocates, self._record)
        self._every(daemon.advocates_every_seconds, jitter, "advocates", advocates)
        self._every(daemon.rules_every_seconds, jitter, "rules", guarded("rules", self.evaluate, self._record))
        maintain = guarded("maintenance", self.maintain, self._record)
        self._every(daemon.maintenance_every_seconds, jitter, "maintenance", maintain)
        self._every(daemon.outbox_every_seconds, jitter, "outbox", self._aside("delivery", "outbox", self.deliver))
        self._every(daemon.outbox_every_seconds, jitter, "replies", self._aside("replies", "replies", self.answer))
        if days := self.settings.analysis.retrain_every_days:
            self._every(days * 86_400, 0, "retrain", guarded("retrain", self.retrain, self._record))

    def _aside(self, pool: str, name: str, job: Callable[[], None]) -> Callable[[], None]:
        """``job`` as the loop runs it: handed to the ``pool`` threads while `run` is on (and skipped while the
        previous run is still going), or run in place when no pool is open (`cycle`)."""
        guarded_job = guarded(name, job, self._record)

        def hand_over() -> None:
            workers = self._workers.get(pool)
            if workers is None:
                guarded_job()
                return
            running = self._in_flight.get(name)
            if running is not None and not running.done():
                log.debug("%s still running: this turn is skipped", name)
                return
            self._in_flight[name] = workers.submit(guarded_job)

        return hand_over

    def _store_here(self) -> Store:
        """The connection of the calling thread: the daemon's own in its thread, a thread's own elsewhere."""
        if threading.get_ident() == self._owner:
            return self.store
        store = getattr(self._local, "store", None)
        if store is None:
            storage = self.settings.storage
            store = Store.open(storage.path, storage.busy_timeout_seconds, shared=True)  # closed by the loop's thread
            self._local.store = store
            with self._opened_lock:
                self._opened.append(store)
        return store

    def _open_pools(self) -> None:
        polls = min(MAX_POLL_THREADS, max(1, len(self.settings.sources)))
        self._workers = {
            "polls": ThreadPoolExecutor(polls, thread_name_prefix="poll"),
            "delivery": ThreadPoolExecutor(1, thread_name_prefix="deliver"),
            "replies": ThreadPoolExecutor(1, thread_name_prefix="replies"),
        }

    def _close_pools(self) -> None:
        """Let what is running finish (each poll and delivery has its own time limit), then close their connections."""
        for workers in self._workers.values():
            workers.shutdown(wait=True, cancel_futures=True)
        self._workers, self._in_flight = {}, {}
        with self._opened_lock:
            for store in self._opened:
                store.close()
            self._opened.clear()

    def _every(self, seconds: int, jitter: float, name: str, job: Callable[[], None]) -> None:
        """Schedule ``job`` (already guarded) every ``seconds``, plus up to ``jitter`` of them at random."""
        latest = int(seconds * (1 + jitter))
        every = self.scheduler.every(seconds)
        every = every.to(latest) if latest > seconds else every  # schedule picks a random interval each run
        every.seconds.do(job).tag(name)

    # -- loop ------------------------------------------------------------------------------------

    def run(self, stop: threading.Event, duration: float | None = None) -> None:
        """Poll every source at once, then keep the schedule until ``stop`` is set (or ``duration`` ends).

        The first rules run when the first polls are in (or after `FIRST_POLLS_LONGEST_SECONDS`), while the
        schedule already runs: a slow source delays only the first rules, never the other sources or the
        heartbeat. ``duration`` counts from those first rules, so a short run still reads and tells."""
        log.info("daemon started: %d sources, %d rules", len(self.settings.sources), len(self.settings.rules))
        self._load_taggers()
        self._heartbeat()
        self._open_pools()
        try:
            first: list[Future[None]] | None = self._poll_all()
            started, deadline = time.monotonic(), None
            while not stop.is_set():
                if first is not None and (
                    all(f.done() for f in first) or time.monotonic() - started > FIRST_POLLS_LONGEST_SECONDS
                ):
                    first = None
                    self._after_polls()
                    deadline = time.monotonic() + duration if duration else None
                if deadline is not None and time.monotonic() >= deadline:
                    break
                self._pick_up_model()
                self.scheduler.run_pending()
                self._heartbeat()
                idle = self.scheduler.idle_seconds
                wait = 1.0 if idle is None else min(max(idle, 0.0), 1.0)
                stop.wait(wait if first is None else min(wait, 0.2))
        finally:
            self._close_pools()
        log.info("daemon stopped")

    def _load_taggers(self) -> None:
        """Load the reading pipeline before the first heartbeat: a daemon that beats can read at once, and a stop
        soon after the start waits for no first poll busy loading a model (about a second)."""
        for tagger in self.taggers:

            def load(tagger: Tagger = tagger) -> None:
                tagger.tag([])

            guarded("loading the reading pipeline", load)()

    def _record(self, name: str, seconds: float, error: Exception | None) -> None:
        """Keep each job's last duration and outcome for /metrics; tell ops at once when the disk is full."""
        if disk_full(error):
            self._disk_full(name, error)
            return
        try:
            self._store_here().health.record_job(name, seconds, error is None, self.clock())
        except Exception:
            log.warning("could not record job %s", name, exc_info=True)

    def _disk_full(self, job: str, error: Exception | None) -> None:
        """The database cannot grow: what was stored stays (the failed write rolled back, the source's cursor
        did not move, so the next poll fetches it again). The alert goes straight to the notifier, since the
        outbox lives on the full disk; at most one an hour."""
        now = self.clock()
        if self._disk_full_told is not None and now - self._disk_full_told < timedelta(hours=1):
            return
        self._disk_full_told = now
        size = self._store_here().file_size()
        alert = Alert(
            key=f"disk_full:{now:%Y-%m-%dT%H}",
            kind="disk_full",
            title="Passaparola cannot write: the disk is full",
            body=(
                f"Job {job} failed: {error}. The database ({size / 2**20:.0f} MB with its WAL, at "
                f"{self.settings.storage.path}) cannot grow. Nothing stored is lost and the daemon keeps running; "
                "free space or move the data volume, and new mentions are fetched again."
            ),
            level="failure",  # critical: quiet hours never hold it
            route=self.settings.daemon.ops_route,
        )
        delivery = self.notifier.send(alert)
        log.error("disk full during %s; ops alert %s", job, "sent" if delivery.ok else f"failed: {delivery.detail}")

    def _heartbeat(self) -> None:
        if time.monotonic() - self._last_beat >= HEARTBEAT_EVERY_SECONDS:
            guarded("heartbeat", lambda: self.store.health.beat(self.clock()))()
            self._last_beat = time.monotonic()


def disk_full(error: BaseException | None) -> bool:
    """SQLite's SQLITE_FULL: the disk (or the database's page limit) has no room left."""
    return isinstance(error, sqlite3.Error) and getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL


def guarded(
    name: str, job: Callable[[], None], record: Callable[[str, float, Exception | None], None] | None = None
) -> Callable[[], None]:
    """Wrap a job so an exception is logged with the job's name and the loop goes on.

    schedule does not catch job exceptions: unguarded, a failing job would skip every job after it in the
    same pass and re-run on every tick. ``record`` receives the job's name, duration and error (None: success).
    """

    @functools.wraps(job)
    def run() -> None:
        started, failure = time.monotonic(), None
        try:
            job()
        except Exception as error:
            failure = error
            log.exception("job %s failed", name)
        finally:
            took = time.monotonic() - started
            log.debug("job %s took %.3f s", name, took)
            if record is not None:
                record(name, took, failure)

    return run


class _Serialised:
    """A tagger shared by threads: one batch at a time (the pipeline and its model are not thread-safe)."""

    def __init__(self, tagger: Tagger, lock: threading.Lock) -> None:
        self.tagger, self.lock = tagger, lock

    def tag(self, mentions: Sequence[Mention]) -> list[Mapping[str, object]]:
        with self.lock:
            return list(self.tagger.tag(mentions))
