"""The jobs the daemon runs, as plain functions of their inputs and an explicit time.

poll_source: cursor -> Source.poll -> taggers (new mentions only) -> Store.save_poll (one transaction)
advocates:   everyone who spoke re-scored -> new VIPs and advocates' praise into the outbox
triage:      new mentions settled (priority, team, deadlines) -> open items handed to available people
evaluate:    evaluators read the store -> alerts into the outbox (deduplicated by key)
deliver:     due outbox rows -> Notifier.send -> marked sent, or retried later with backoff (per URL of a route:
             a URL that has the alert never gets it again; the failed ones are retried alone)
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from listener.model import Mention, Poll, RateLimited, SourceError
from listener.webhooks import facebook_poll, intake_items, intake_mentions
from notifiers.alert import Alert, Notifier
from notifiers.dispatch import Attempt, send_all
from notifiers.policy import FOLDED, RoutePolicy, hold, summary
from passaparola.config import SourceSpec
from rules.advocates import (
    AdvocateSettings,
    advocate_mention_alert,
    aged,
    promotion_alert,
    score_each,
    scoring_key,
    suggest_offer,
)
from rules.base import Evaluator, Tagger
from rules.triage import TriageSettings, assign, available, decide, takers
from storage.store import OutboxItem, SaveResult, Store

log = logging.getLogger("passaparola.pipeline")

OUTBOX_RETRY_BASE = timedelta(seconds=30)
OUTBOX_RETRY_MAX = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class PollOutcome:
    source: str
    new_mentions: int = 0
    answered: int = 0
    skipped: bool = False
    error: str = ""


def backoff(failures: int, base_seconds: float, max_seconds: float, rng: random.Random) -> timedelta:
    """Exponential backoff with jitter: between half and all of ``base * 2**(failures-1)``, capped."""
    ceiling = min(base_seconds * 2 ** max(failures - 1, 0), max_seconds)
    return timedelta(seconds=ceiling / 2 + rng.random() * ceiling / 2)


def enrich(mentions: Sequence[Mention], taggers: Sequence[Tagger]) -> list[Mention]:
    """Run each tagger over the batch; each tagger sees the tags added before it."""
    batch = list(mentions)
    for tagger in taggers:
        tags = tagger.tag(batch)
        batch = [m.tagged(t) for m, t in zip(batch, tags, strict=True)]
    return batch


def save_fresh(
    store: Store, source: str, kind: str, poll: Poll, taggers: Sequence[Tagger], now: datetime
) -> SaveResult:
    """The one ingest path, for polls and webhooks alike: tag the mentions not stored yet, and those stored with other
    words or another rating (a review its author edited: read again, its answer kept), save in one transaction."""
    known = store.mentions.known(m.key for m in poll.mentions)
    edited = store.mentions.edited(m for m in poll.mentions if m.key in known)
    fresh = enrich([m for m in poll.mentions if m.key not in known or m.key in edited], taggers)
    by_key = {m.key: m for m in fresh}
    tagged = replace(poll, mentions=tuple(by_key.get(m.key, m) for m in poll.mentions))
    return store.save_poll(source, kind, tagged, now, reread=edited)


def ingest_inbound(store: Store, taggers: Sequence[Tagger], page_ids: Mapping[str, str], now: datetime) -> int:
    """Ingest the webhook bodies the web app queued; a body that cannot be read is kept with its error.

    Any other failure (a locked or full database) leaves the body queued: a webhook already answered 200 is never lost.
    """
    done = 0
    for ident, channel, source, body in store.inbound.pending():
        try:
            payload = json.loads(body)
            if channel == "facebook":
                if source not in page_ids:
                    raise ValueError(f"no facebook source {source!r} with a webhook in the config any more")
                poll = facebook_poll(payload, page_ids[source], source)
            else:
                mentions, problems = intake_mentions(intake_items(payload), now)
                if problems:
                    raise ValueError("; ".join(problems))
                poll = Poll(mentions=tuple(mentions))
            result = save_fresh(store, f"{channel}-webhook", channel, poll, taggers, now)
            store.inbound.processed(ident, now)
            log.info("%s webhook: %d new mentions, %d answered", channel, result.new_mentions, result.answered)
            done += 1
        except (ValueError, TypeError, KeyError) as error:  # a bad body: kept with its error, never blocks the queue
            store.inbound.processed(ident, now, f"{type(error).__name__}: {error}")
            log.warning("inbound %d (%s) not ingested: %s", ident, channel, error)
        except Exception:  # the database or a tagger failed: the body stays queued for the next run
            log.exception("inbound %d (%s) left queued", ident, channel)
            break
    return done


def poll_source(
    spec: SourceSpec,
    store: Store,
    taggers: Sequence[Tagger],
    now: datetime,
    retry_base_seconds: float,
    retry_max_seconds: float,
    rng: random.Random,
) -> PollOutcome:
    """Poll one source unless it is paused; any failure becomes stored health, never an exception.

    A failed poll's next try is counted from when the poll ended: a feed that takes its whole deadline to fail is
    not retried on every pass."""
    health = store.source_health(spec.name)
    if health.next_retry_at is not None and health.next_retry_at > now:
        return PollOutcome(spec.name, skipped=True)
    started = time.monotonic()
    try:
        poll = spec.source.poll(store.cursor(spec.name), now)
    except RateLimited as error:
        store.health.record_failure(spec.name, spec.type, str(error), now, retry_at=error.retry_at, counted=False)
        log.warning("source %s rate-limited until %s", spec.name, error.retry_at.isoformat())
        return PollOutcome(spec.name, error=str(error))
    except Exception as error:  # a source's bug must not stop the loop: it becomes the source's health
        message = str(error) if isinstance(error, SourceError) else f"unexpected {type(error).__name__}: {error}"
        ended = now + timedelta(seconds=time.monotonic() - started)
        retry_at = ended + backoff(health.consecutive_failures + 1, retry_base_seconds, retry_max_seconds, rng)
        failures = store.health.record_failure(spec.name, spec.type, message, now, retry_at=retry_at)
        log.warning(
            "source %s failed (%d in a row, next try %s): %s",
            spec.name,
            failures,
            retry_at.isoformat(timespec="seconds"),
            message,
        )
        return PollOutcome(spec.name, error=message)
    # The platform's hourly counts go first: if saving the poll fails, its cursor stays behind and the same hours
    # come again, which only replaces them; the other way round a crash would lose them for good.
    if poll.history:
        store.platform_counts.save(spec.name, poll.history)
    result = save_fresh(store, spec.name, spec.type, poll, taggers, now)
    log.info(
        "source %s: %d new mentions, %d new brand replies, %d answered",
        spec.name,
        result.new_mentions,
        result.new_replies,
        result.answered,
    )
    return PollOutcome(spec.name, new_mentions=result.new_mentions, answered=result.answered)


@dataclass(frozen=True, slots=True)
class TriageOutcome:
    settled: int = 0
    moved: int = 0


def triage(settings: TriageSettings, store: Store, now: datetime) -> TriageOutcome:
    """Settle every new mention, then hand open items to the people available now (rules.triage decides)."""
    settled = 0
    vips = store.people.tiered_authors(["vip"])
    while batch := store.conversations.untriaged():
        store.conversations.settle(
            [decide(settings, c, follow_up=bool(c.follows_key), vip=c.mention.author.key in vips) for c in batch], now
        )
        settled += len(batch)
    moved = 0
    if settings.members:
        overrides = store.conversations.away_overrides()
        away = {m.name for m in settings.members if overrides.get(m.name, m.away)}
        # the members' own loads: what anyone else holds is handed on, never weighed (`assign` reads members' alone)
        loads = store.conversations.workloads(m.name for m in settings.members)
        since = now - timedelta(days=settings.returning_days)
        items = store.conversations.open_items(
            takers=_takers(settings, store, loads, away, since, now),
            spoken={lang for m in settings.members for lang in m.languages},
            returning_since=since,
        )
        returning = store.conversations.last_answerers((c.mention.author.key for c in items), since)
        moves = assign(settings, items, loads, returning, away, now)
        moved = store.conversations.assign([(a.key, a.member, a.reason, a.breach) for a in moves], now)
    if settled or moved:
        log.info("triage: %d mentions settled, %d assignments", settled, moved)
    return TriageOutcome(settled, moved)


def _takers(
    settings: TriageSettings, store: Store, loads: Mapping[str, int], away: set[str], since: datetime, now: datetime
) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """`rules.triage.takers`, from the breaches the available members hold and who answered those authors last."""
    free = available(settings, away, now)
    held = [c for c in store.conversations.open_items(takers=[]) if c.assignee in free]
    breached = [c for c in held if c.due_at is not None and c.due_at <= now and not c.breach_handed_on]
    previous = store.conversations.last_answerers((c.mention.author.key for c in breached), since)
    return takers(settings, loads, away, breached, previous, now)


@dataclass(frozen=True, slots=True)
class AdvocateOutcome:
    scored: int = 0
    promoted: int = 0
    alerts: int = 0


#: A score with nothing new is brought up to date (its decay) once it is this old, a few thousand a cycle.
AGE_SCORES_AFTER = timedelta(hours=1)
AGE_SCORES_PER_CYCLE = 5_000


def score_advocates(settings: AdvocateSettings, store: Store, now: datetime) -> AdvocateOutcome:
    """Re-score the people with something new since the last cycle (everyone on the first, or after a change of
    settings), age the scores of the others in place; tell the team about new VIPs and about advocates' praise.

    Work grows with what is new, not with the window (#23): a person's score is re-read when a mention of theirs
    is stored, edited, re-read, corrected, leaves the window, or their accounts or reach change (`storage`'s
    triggers mark them). Anyone else's score only decays, by the same factor for every term, and is updated within
    `AGE_SCORES_AFTER`: to the number a re-score gives, and a tier it falls below."""
    store.people.sync(now)
    since = now - timedelta(days=settings.window_days)
    key = scoring_key(settings)
    changed = store.people.claim_changed(key, since, now)
    scores = score_each(store.people.said_by_person(since, changed), settings, now)
    promoted = store.people.save_scores(scores, now, changed, key, since)
    stale = store.people.stale_scores(now - AGE_SCORES_AFTER, AGE_SCORES_PER_CYCLE)
    store.people.age_scores(((pid, *aged(exact, at, now, settings)) for pid, exact, at in stale), now)
    by_person = {s.person_id: s for s in scores}
    alerts: list[Alert] = []
    if settings.alert_promotion and promoted:
        for person in store.people.persons(promoted).values():
            score = by_person[person.id]
            suggestion = suggest_offer(person, score.tier, score.score, score.praised, settings, now)
            alerts.append(promotion_alert(person, score, suggestion, settings.route))
    since = now - timedelta(hours=settings.mention_lookback_hours)
    latest = {
        score.person_id: (score, praise)
        for score in scores
        if score.tier in settings.alert_mention_tiers
        and (praise := score.last_praise) is not None
        and praise.published_at > since
    }
    persons = store.people.persons(latest)
    for score, said in latest.values():
        person = persons[score.person_id]
        suggestion = suggest_offer(person, score.tier, score.score, score.praised, settings, now)
        alerts.append(advocate_mention_alert(person, score, said, suggestion, settings.route))
    queued = store.enqueue(alerts, now)
    if promoted or queued:
        log.info("advocates: %d scored, %d new VIPs, %d alerts queued", len(scores), len(promoted), queued)
    return AdvocateOutcome(len(scores), len(promoted), queued)


def evaluate(evaluators: Sequence[Evaluator], store: Store, now: datetime) -> int:
    """Run every evaluator; queue what they say. One failing evaluator never silences the others."""
    alerts: list[Alert] = []
    ran: list[str] = []
    marks = store.conversations.mark_seq()
    for evaluator in evaluators:
        try:
            alerts.extend(evaluator.evaluate(store, now))
            ran.append(evaluator.kind)
        except Exception:
            log.exception("rule %s failed", evaluator.kind)
    queued = store.enqueue(alerts, now)
    # What a rule read is kept once its alerts are queued: its next cycle reads only what changed since (#23).
    store.conversations.commit_reads(ran)
    store.conversations.forget_rules({e.kind for e in evaluators}, marks)
    if queued:
        log.info("rules queued %d new alerts", queued)
    return queued


def deliver(
    store: Store,
    notifier: Notifier,
    now: datetime,
    rng: random.Random,
    policies: Mapping[str, RoutePolicy] | None = None,
    budget_seconds: float | None = None,
) -> tuple[int, int]:
    """Send due alerts; returns (sent, failed). A crash between send and mark re-sends that one alert once.

    Delivery is per target (URL of the route): an alert is sent once it reached every target; a partial failure
    keeps the targets reached and retries, with backoff, the others alone. A partly delivered alert counts as failed.
    Each target sends at its own pace (`notifiers.dispatch`): a throttled mail address delays its own alerts,
    never another URL's; with ``budget_seconds`` a target starts no send after that long, and what it did not
    try stays due for the next pass.

    A route's policy may hold an alert (quiet hours, cooldown, rate cap); alerts a cooldown or the cap held are
    sent, once released, as one summary for the route (or as themselves when only one was held).
    """
    policies = policies or {}
    ready: list[OutboxItem] = []
    released: dict[str, list[OutboxItem]] = {}
    planned: dict[str, list[str]] = {}  # route -> kinds this pass sends: the policy counts them as sent
    for item in store.outbox.due(now):
        alert = item.alert
        policy = policies.get(alert.route)
        if policy is not None:
            kinds = planned.setdefault(alert.route, [])
            last = now if alert.kind in kinds else store.outbox.last_sent_at(alert.kind, alert.route)
            hour = store.outbox.sent_since(alert.route, now - timedelta(hours=1)) if policy.max_per_hour else []
            verdict = hold(policy, alert, now, last, [*hour, *[now] * len(kinds)])
            if verdict is not None:
                store.outbox.hold(alert.key, verdict.until, verdict.reason)
                continue
            if item.held_reason in FOLDED:
                released.setdefault(alert.route, []).append(item)
                continue
            kinds.append(alert.kind)
        ready.append(item)
    for route, items in released.items():
        if len(items) > 1:
            folded = summary(route, [i.alert for i in items], now)
            store.outbox.fold([i.alert.key for i in items], folded, now)
            items = [OutboxItem(folded, attempts=0)]
        ready.append(items[0])
    attempts = send_all(notifier, [(item.alert, item.reached) for item in ready], budget_seconds)
    sent = failed = 0
    for item, attempt in zip(ready, attempts, strict=True):
        outcome = _record(store, item, attempt, now, rng)
        sent, failed = sent + (outcome is True), failed + (outcome is False)
    return sent, failed


def _record(store: Store, item: OutboxItem, attempt: Attempt, now: datetime, rng: random.Random) -> bool | None:
    """Keep what one pass did for one alert: sent (True), failed and retried later (False), or part way (None:
    the pass ran out of time before some targets, which stay due)."""
    delivery = attempt.delivery
    if delivery.ok:
        store.outbox.mark_sent(item.alert.key, now, delivery.targets)
        return True
    if attempt.untried and all(t.ok for t in delivery.targets):
        store.outbox.mark_reached(item.alert.key, now, delivery.targets)
        return None
    error = delivery.detail or "the notifier reported a failed delivery"
    retry = backoff(item.attempts + 1, OUTBOX_RETRY_BASE.total_seconds(), OUTBOX_RETRY_MAX.total_seconds(), rng)
    store.outbox.mark_failed(item.alert.key, now, error, now + retry, delivery.targets)
    log.warning("alert %s not delivered (attempt %d): %s", item.alert.key, item.attempts + 1, error)
    return False
