"""``/metrics`` in Prometheus' text format, read from the database at scrape time (prometheus_client's custom
collector): the web app and the loop may be different processes, and the database is what both share."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from storage.sessions import KINDS
from storage.store import Store


class StoreCollector(Collector):
    def __init__(self, store: Store, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        board = self.store.board
        ingested = CounterMetricFamily(
            "passaparola_mentions_ingested", "Mentions stored, per source", labels=["source"]
        )
        errors = CounterMetricFamily("passaparola_fetch_errors", "Failed polls, per source", labels=["source"])
        failing = GaugeMetricFamily(
            "passaparola_source_consecutive_failures", "Failed polls in a row, per source", labels=["source"]
        )
        for health in self.store.all_source_health():
            ingested.add_metric([health.name], health.mentions_total)
            errors.add_metric([health.name], health.failures_total)
            failing.add_metric([health.name], health.consecutive_failures)
        yield from (ingested, errors, failing)
        unanswered = GaugeMetricFamily(
            "passaparola_unanswered", "Open mentions by first-response SLA state", labels=["sla_state"]
        )
        for state, count in board.unanswered_by_sla(now).items():
            unanswered.add_metric([state], count)
        yield unanswered
        sent = CounterMetricFamily("passaparola_alerts_sent", "Alerts delivered, per kind", labels=["kind"])
        for kind, count in board.alerts_sent().items():
            sent.add_metric([kind], count)
        yield sent
        yield GaugeMetricFamily(
            "passaparola_alerts_pending", "Alerts waiting in the outbox", self.store.pending_alerts()
        )
        duration = GaugeMetricFamily(
            "passaparola_job_duration_seconds", "Duration of each daemon job's last run", labels=["job"]
        )
        job_ok = GaugeMetricFamily("passaparola_job_last_success", "1 if the job's last run succeeded", labels=["job"])
        for job, last in sorted(self.store.jobs().items()):
            duration.add_metric([job], float(last["seconds"]))
            job_ok.add_metric([job], 1.0 if last["ok"] else 0.0)
        yield from (duration, job_ok)
        beat = self.store.heartbeat()
        if beat is not None:
            yield GaugeMetricFamily(
                "passaparola_heartbeat_age_seconds",
                "Seconds since the loop's last heartbeat",
                (now - beat).total_seconds(),
            )
        yield GaugeMetricFamily("passaparola_database_bytes", "Database size with its WAL", self.store.file_size())
        yield GaugeMetricFamily("passaparola_web_sessions", "Live log-in sessions", self.store.sessions.live_count(now))
        locked = GaugeMetricFamily(
            "passaparola_login_locked", "Accounts and client addresses locked out of log-in now", labels=["kind"]
        )
        counts = Counter(f.kind for f in self.store.sessions.locks(now))
        for kind in KINDS:
            locked.add_metric([kind], counts[kind])
        yield locked


def render(store: Store, clock: Callable[[], datetime]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store, clock))
    return generate_latest(registry)
