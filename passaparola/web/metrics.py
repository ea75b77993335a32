"""``/metrics`` in Prometheus' text format, read from the database at scrape time (prometheus_client's custom
collector): the web app and the loop may be different processes, and the database is what both share."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from passaparola.web.service import window_figures
from storage.board import UNASSIGNED, InboxFilter
from storage.sessions import KINDS
from storage.store import Store

#: The windows of the response figures, as the cockpit offers them (``?days=1`` and ``?days=7``).
WINDOWS = {"24h": timedelta(days=1), "7d": timedelta(days=7)}
#: The team label of unassigned mentions with no team, or with one no longer in [[triage.teams]].
NO_TEAM = "-"


class StoreCollector(Collector):
    def __init__(self, store: Store, clock: Callable[[], datetime], teams: Sequence[str] = ()) -> None:
        self.store = store
        self.clock = clock
        self.teams = teams

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
        last_success = GaugeMetricFamily(
            "passaparola_source_last_success_timestamp_seconds",
            "When each source last polled without error (Unix time); absent until it has",
            labels=["source"],
        )
        for health in self.store.health.sources():
            ingested.add_metric([health.name], health.mentions_total)
            errors.add_metric([health.name], health.failures_total)
            failing.add_metric([health.name], health.consecutive_failures)
            if health.last_success_at is not None:
                last_success.add_metric([health.name], health.last_success_at.timestamp())
        yield from (ingested, errors, failing, last_success)
        yield from self.response_figures(now)
        yield self.negative_share(now)
        yield self.unassigned()
        yield from self.delivery_failures()
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
            "passaparola_alerts_pending", "Alerts waiting in the outbox", self.store.outbox.pending()
        )
        duration = GaugeMetricFamily(
            "passaparola_job_duration_seconds", "Duration of each daemon job's last run", labels=["job"]
        )
        job_ok = GaugeMetricFamily("passaparola_job_last_success", "1 if the job's last run succeeded", labels=["job"])
        for job, last in sorted(self.store.health.jobs().items()):
            duration.add_metric([job], float(last["seconds"]))
            job_ok.add_metric([job], 1.0 if last["ok"] else 0.0)
        yield from (duration, job_ok)
        beat = self.store.health.heartbeat()
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

    def response_figures(self, now: datetime) -> Iterator[Metric]:
        """SLA compliance and first-response median and p90 over each of `WINDOWS`: the cockpit's figures
        (`rules.triage.figures`, group "all", counted in SQL); a window with nothing to judge has no sample."""
        compliance = GaugeMetricFamily(
            "passaparola_sla_compliance_ratio",
            "Share of mentions answered within their SLA (answered, plus open past it), per window",
            labels=["window"],
        )
        median = GaugeMetricFamily(
            "passaparola_first_response_median_seconds", "Median first-response time, per window", labels=["window"]
        )
        p90 = GaugeMetricFamily(
            "passaparola_first_response_p90_seconds",
            "90th percentile first-response time, per window",
            labels=["window"],
        )
        for window, span in WINDOWS.items():
            table = window_figures(self.store, now - span, now, now, dimensions=("all",))
            found = table.get("all", {}).get("all")
            if found is None:
                continue
            for family, value in ((compliance, found.compliance), (median, found.median_seconds),
                                  (p90, found.p90_seconds)):  # fmt: skip
                if value is not None:
                    family.add_metric([window], value)
        yield from (compliance, median, p90)

    def negative_share(self, now: datetime) -> Metric:
        """Of the mentions published in each of `WINDOWS` that have a sentiment (a person's correction first),
        the share tagged negative: the count the negative-spike rule makes (`Conversations.sentiment_counts`,
        in SQL over the published_at index); a window with no such mention has no sample."""
        family = GaugeMetricFamily(
            "passaparola_negative_share",
            "Share of mentions tagged negative among those with a sentiment, published in the window",
            labels=["window"],
        )
        for window, span in WINDOWS.items():
            scored, negative, _ = self.store.conversations.sentiment_counts(now - span, now)
            if scored:
                family.add_metric([window], negative / scored)
        return family

    def unassigned(self) -> Metric:
        """Open mentions nobody has, per team: the inbox's own count (``assignee=-``), so it matches the
        cockpit's "unassigned" figure; the teams add up to it."""
        family = GaugeMetricFamily(
            "passaparola_unassigned_open",
            f"Open mentions nobody is assigned, per team ({NO_TEAM}: none, or one no longer configured)",
            labels=["team"],
        )
        board = self.store.board
        total = board.inbox(InboxFilter(assignee=UNASSIGNED), limit=0)[1]
        counted = 0
        for team in self.teams:
            count = board.inbox(InboxFilter(assignee=UNASSIGNED, team=team), limit=0)[1]
            family.add_metric([team], count)
            counted += count
        family.add_metric([NO_TEAM], total - counted)
        return family

    def delivery_failures(self) -> Iterator[Metric]:
        """Alerts still unsent after at least one failed attempt, per route, and per destination URL (apprise's
        privacy form, no secrets) the alerts that have not reached it yet."""
        by_route = GaugeMetricFamily(
            "passaparola_alerts_failing",
            "Alerts not delivered yet after at least one failed attempt, per route",
            labels=["route"],
        )
        routes, targets = self.store.outbox.failing()
        for route, count in routes.items():
            by_route.add_metric([route], count)
        by_target = GaugeMetricFamily(
            "passaparola_delivery_target_failing",
            "Alerts a destination URL has not received yet after at least one failed attempt",
            labels=["target"],
        )
        for target, count in targets.items():
            by_target.add_metric([target], count)
        yield from (by_route, by_target)


def render(store: Store, clock: Callable[[], datetime], teams: Sequence[str] = ()) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store, clock, teams))
    return generate_latest(registry)
