"""What every page shows, as plain JSON-ready data: the HTML pages render exactly what the JSON API returns, so
the two never disagree. What people do (assign, answer, ignore...) is `passaparola.actions`, shared with the CLI.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, date, datetime, time, timedelta
from itertools import accumulate
from typing import Any

from listener.model import Conversation
from listener.replying import Replier
from passaparola.actions import Actor, MentionActions, PeopleActions, Refusal, ReplyActions
from passaparola.actions.listing import mention_row, when
from passaparola.actions.replies import reply_row
from passaparola.config import Settings
from passaparola.exports import advocate_rows
from passaparola.links import safe_url
from rules.advocates import TIERS, score_person
from rules.sentiment import LABELS
from rules.triage import Figures
from storage.board import RESPONSE_DIMENSIONS, UNASSIGNED, BrandAnswer, InboxFilter, ResponseTally
from storage.people import PeopleError
from storage.store import Store
from storage.times import iso


def mention(
    settings: Settings, store: Store, now: datetime, key: str, who: Actor | None = None, doing: str = "viewing"
) -> dict[str, Any]:
    """The mention, its thread with the brand's answers, its history, the author's card, who else is on it (``who``
    is now among them: ``doing`` it), and every reply written for it in passaparola (the audit)."""
    actions = MentionActions(settings, store)
    c = actions.known(key)
    others = actions.others(who, [key], now).get(key, [])
    if who is not None:
        actions.present(who, key, doing, now)
    thread, answers = store.board.thread(c)
    author_key = c.mention.author.key
    try:
        person_id: int | None = store.people.resolve(author_key)
    except PeopleError:  # not scored yet: no person of their own
        person_id = None
    card: dict[str, Any] = {"person": None, "score": None, "tier": "", "offers": [], "accounts": [author_key]}
    if person_id is not None:
        person = store.people.person(person_id)
        leader = store.people.leaders(person_id=person_id)
        card = {
            "person": {"id": person.id, "name": person.name, "handles": list(person.handles)},
            "score": round(leader[0].score, 2) if leader else 0.0,
            "tier": leader[0].tier if leader else "",
            "offers": [
                {"offer": o.offer, "sent_at": when(o.sent_at), "used_at": when(o.used_at)}
                for o in store.people.offers(person_id)
            ],
            "accounts": [a.key for a in store.people.authors(person_id)],
        }
    card["history"] = [mention_row(h, now) for h in store.board.author_history(card["accounts"])]
    card["moods"] = [{"month": month, **counts} for month, counts in store.board.author_moods(card["accounts"])]
    return {
        "mention": {**mention_row(c, now, vip=card["tier"] == "vip"), "facts": dict(c.mention.facts)},
        "others": others,
        "thread": [mention_row(t, now) for t in thread],
        "answers": [
            {"handle": a.handle, "text": a.text, "url": safe_url(a.url), "published_at": when(a.published_at)}
            for a in answers
        ],
        "author": card,
        "events": [
            {"at": when(at), "event": event, "member": member, "detail": detail}
            for at, event, member, detail in store.conversations.events(key)
        ],
        "timeline": timeline(thread, answers, now),
        "replies": [reply_row(r) for r in store.replies.for_mention(key)],
    }


def timeline(thread: Sequence[Conversation], answers: Sequence[BrandAnswer], now: datetime) -> list[dict[str, Any]]:
    """The thread as it happened: the author's mentions and the brand's answers in one list, oldest first (each
    item has ``type``: "mention" with the mention's row, or "answer"). Ties keep the mention first."""
    items = [(t.mention.published_at, 0, {"type": "mention", **mention_row(t, now)}) for t in thread]
    items += [
        (
            a.published_at,
            1,
            {
                "type": "answer",
                "handle": a.handle,
                "text": a.text,
                "url": safe_url(a.url),
                "published_at": when(a.published_at),
            },
        )
        for a in answers
    ]
    return [item for _, _, item in sorted(items, key=lambda entry: (entry[0], entry[1]))]


def act(
    settings: Settings, store: Store, now: datetime, who: Actor, key: str, action: str, form: dict[str, str]
) -> dict[str, Any]:
    """Do ``action`` on mention ``key`` for ``who`` (`MentionActions.act`); the mention's row as it now is."""
    c = MentionActions(settings, store).act(
        who, key, action, now, member=form.get("member", ""), reason=form.get("reason", ""), label=form.get("label", "")
    )
    return mention_row(c, now)


def bulk(
    settings: Settings, store: Store, now: datetime, who: Actor, keys: list[str], action: str, form: dict[str, str]
) -> dict[str, Any]:
    """The same action on several mentions; each one's outcome is reported, one failure stops none."""
    outcome = MentionActions(settings, store).bulk(
        who, keys, action, now, member=form.get("member", ""), reason=form.get("reason", "")
    )
    return {"done": outcome.done, "failed": [{"key": key, "error": error} for key, error in outcome.refused]}


def lint(
    settings: Settings,
    store: Store,
    who: Actor,
    key: str,
    draft: str,
    repliers: Mapping[str, Replier],
    now: datetime | None = None,
) -> dict[str, Any]:
    """The draft reply against the house rules and the channel's limit, in the mention's context, signed by the
    caller; with ``now``, the caller counts as answering the mention from then (the collision notice)."""
    return ReplyActions(settings, store, repliers).check(who, key, draft, now).as_dict()


def _figure(f: Any) -> dict[str, Any]:
    return {**asdict(f), "compliance": f.compliance, "unanswered_share": f.unanswered_share}


COCKPIT_DAYS = (1, 7, 30)


#: The window of the cockpit's star ratings, and of the one before it that gives their trend.
RATING_DAYS = 30


def cockpit(settings: Settings, store: Store, now: datetime, days: int = 1, hours: int = 48) -> dict[str, Any]:
    """The supervisor's view: volume by sentiment with spikes, response figures over ``days``, workloads,
    complaints, star ratings per place (the last 30 days against the 30 before), replies waiting for approval,
    alerts. The figures are counted in SQL (`Board.response_tallies`): 30 days at 100k mentions stay
    fast (`make bench`)."""
    if days not in COCKPIT_DAYS:
        raise Refusal(400, f"days={days} is not offered; use one of {', '.join(map(str, COCKPIT_DAYS))}")
    since = now - timedelta(hours=hours)
    zone = settings.triage.business.zone
    first = now.astimezone(zone).date() - timedelta(days=days - 1)  # the charts' days, today last
    tallies = store.board.response_tallies(
        now - timedelta(days=days), now, now, days=(datetime.combine(first, time(), zone), zone)
    )
    table = figures_of(tallies.groups)
    span = max(days, 7)  # complaints: a week at least, and the weeks that hold it (one read for both)
    complaints, weekly = store.board.complaints(now - timedelta(days=span), weeks_start(now, span))
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    loads = store.board.workloads(now, day_start)
    away = store.conversations.away_overrides()
    members = []
    for m in settings.triage.members:
        load = loads.get(m.name)
        members.append(
            {
                "member": m.name,
                "capacity": m.capacity,
                "away": away.get(m.name, m.away),
                "open": load.open if load else 0,
                "oldest_waiting_minutes": round((now - load.oldest_published_at).total_seconds() / 60)
                if load and load.oldest_published_at
                else None,
                "breaches_today": load.breaches_today if load else 0,
                "overdue": load.overdue if load else 0,
            }
        )
    return {
        "hours": [
            {"hour": iso(hour), **{label: counts.get(label, 0) for label in (*LABELS, "unknown")}}
            for hour, counts in store.board.timeline(since, now)
        ],
        "spikes": [{"at": iso(at), "kind": kind, "title": title} for at, kind, title in store.board.spikes(since)],
        "figures": {dim: {name: _figure(f) for name, f in rows.items()} for dim, rows in table.items()},
        "figures_days": days,
        "workloads": members,
        "open_now": store.board.inbox(InboxFilter(), limit=0)[1],
        "overdue_now": store.board.inbox(InboxFilter(overdue_at=now), limit=0)[1],
        "unassigned_open": store.board.inbox(InboxFilter(assignee=UNASSIGNED), limit=0)[1],
        "complaints": [{"topic": topic, "days": dict(sorted(per_day.items()))} for topic, per_day in complaints],
        "response_days": response_days(tallies.days, first, days),
        "complaint_weeks": complaint_weeks(weekly, now, max(days, 7)),
        "ratings": store.mentions.ratings(now, RATING_DAYS),
        "approvals": ReplyActions(settings, store, {}).approvals(now),
        "alerts": [
            {
                "key": a.key,
                "kind": a.kind,
                "level": a.level,
                "title": a.title,
                "route": a.route,
                "created_at": iso(a.created_at),
                "status": "sent" if a.sent_at else ("held: " + a.held_reason if a.held_reason else "pending"),
                "mentions": list(a.mentions),
            }
            for a in store.board.alerts(now - timedelta(hours=24))
        ],
    }


def tallied(t: ResponseTally) -> Figures:
    """The figures of a tally counted in SQL, exactly as `rules.triage.figures` computes them from the
    conversations: the median as `statistics.median`, the 90th percentile as `rules.triage.percentile`, the
    satisfaction as `statistics.fmean` (tests/test_cockpit_definitions.py holds the two to the same numbers)."""
    n = t.answered
    median = p90 = None
    if n:
        at = _ranked(t.seconds)
        median = at(n // 2) if n % 2 else (at(n // 2 - 1) + at(n // 2)) / 2
        position = (n - 1) * 0.9
        low = int(position)
        high = min(low + 1, n - 1)
        p90 = at(low) + (at(high) - at(low)) * (position - low)
    return Figures(
        needing_answer=t.needing_answer,
        answered=n,
        open=t.open,
        median_seconds=median,
        p90_seconds=p90,
        within_sla=t.within_sla,
        breached_open=t.breached_open,
        satisfaction=float(t.change_total) / t.follow_ups if t.follow_ups else None,
        follow_ups=t.follow_ups,
    )


def _ranked(histogram: Sequence[tuple[float, int]]) -> Callable[[int], float]:
    """The value at a rank (0 = the smallest) of the sorted values a histogram of (value, how many) counts."""
    ends = list(accumulate(count for _, count in histogram))
    return lambda rank: histogram[bisect_right(ends, rank)][0]


def figures_of(tallies: Mapping[tuple[str, str], ResponseTally]) -> dict[str, dict[str, Figures]]:
    """`rules.triage.figures`' table from `Board.response_tallies`' groups: {dimension: {value: figures}}."""
    out: dict[str, dict[str, Figures]] = {}
    for (dimension, value), tally in tallies.items():
        out.setdefault(dimension, {})[value] = tallied(tally)
    return out


def window_figures(
    store: Store, since: datetime, until: datetime, now: datetime, dimensions: Sequence[str] = RESPONSE_DIMENSIONS
) -> dict[str, dict[str, Figures]]:
    """`rules.triage.figures` of the mentions published in (since, until], by ``dimensions``: the same table,
    counted by SQL instead of reading every conversation of the window (``/metrics``)."""
    return figures_of(store.board.response_tallies(since, until, now, dimensions).groups)


def response_days(days: Mapping[str, ResponseTally], first: date, span: int) -> list[dict[str, Any]]:
    """First-response figures (`rules.triage.figures`, all channels) for each of the ``span`` days of the team's
    calendar (`triage.business.zone`) from ``first``, today last: the cockpit's per-day charts. A day is its
    mentions' (`Board.response_tallies`' ``days``: the figures window from the first day's midnight on)."""
    out = []
    for n in range(span):
        day = (first + timedelta(days=n)).isoformat()
        tally = days.get(day)
        f = tallied(tally) if tally is not None else None
        out.append(
            {
                "day": day,
                "needing_answer": f.needing_answer if f else 0,
                "answered": f.answered if f else 0,
                "median_seconds": f.median_seconds if f else None,
                "p90_seconds": f.p90_seconds if f else None,
                "compliance": f.compliance if f else None,
            }
        )
    return out


def weeks_start(now: datetime, days: int) -> datetime:
    """The Monday (UTC midnight) of the week that holds the day ``days`` days before ``now``: where the cockpit's
    complaint weeks begin, whole."""
    first = (now - timedelta(days=days)).astimezone(UTC).date()
    return datetime.combine(first - timedelta(days=first.weekday()), time(), UTC)


def complaint_weeks(topics: Sequence[tuple[str, dict[str, int]]], now: datetime, days: int) -> dict[str, Any]:
    """What people complained about, week by week: the top topics of the weeks that hold the last ``days`` days,
    the first one whole (from its Monday, `weeks_start`), from the first week with a complaint (``weeks``: each
    week's Monday). ``topics`` are `Board.complaint_topics` from that Monday on: per day, the store's UTC days."""
    monday = now.astimezone(UTC).date()
    monday -= timedelta(days=monday.weekday())
    first = weeks_start(now, days).date()
    weeks = (monday - first).days // 7 + 1
    rows = []
    for topic, per_day in topics:
        counts: dict[str, int] = {}
        for day, n in per_day.items():
            start = date.fromisoformat(day)
            week = (start - timedelta(days=start.weekday())).isoformat()
            counts[week] = counts.get(week, 0) + n
        rows.append({"topic": topic, "weeks": dict(sorted(counts.items()))})
    begin = min((week for row in rows for week in row["weeks"]), default=monday.isoformat())
    starts = [(first + timedelta(weeks=n)).isoformat() for n in range(weeks)]
    return {"weeks": [w for w in starts if w >= begin], "topics": rows}


def advocates(settings: Settings, store: Store, now: datetime, tiers: list[str]) -> dict[str, Any]:
    """The leaderboard with each person's offer status, as the CSV/JSON export has it."""
    bad = [t for t in tiers if t not in TIERS]
    if bad:
        raise Refusal(400, f"tier={bad[0]!r} is not one of {', '.join(TIERS)}")
    leaders = store.people.leaders(tiers=tuple(tiers), limit=200)
    rows = advocate_rows(leaders, settings.advocates, now)
    return {"advocates": rows, "tiers": tiers}


def explain(settings: Settings, store: Store, now: datetime, person: str) -> dict[str, Any]:
    """Every mention that makes a person's score, with its share: the terms add up to the score."""
    person_id = PeopleActions(store).resolve(person)
    rules = settings.advocates
    score = score_person(person_id, store.people.said(now - timedelta(days=rules.window_days), person_id), rules, now)
    who = store.people.person(person_id)
    return {
        "person": {"id": who.id, "name": who.name, "handles": list(who.handles)},
        "score": round(score.score, 4),
        "tier": score.tier,
        "terms": [
            {
                "key": c.said.key,
                "published_at": iso(c.said.published_at),
                "channel": c.said.platform,
                "sentiment": c.said.sentiment,
                "strength": round(c.said.strength, 4),
                "reach_factor": round(c.reach_factor, 4),
                "decay": round(c.decay, 4),
                "value": round(c.value, 4),
                "share": round(c.value / score.score, 4) if score.score and not c.excluded else None,
                "excluded": c.excluded,
                "text": c.said.text,
            }
            for c in score.contributions
        ],
    }


def sources(settings: Settings, store: Store, now: datetime) -> dict[str, Any]:
    """Each source's health: last success, failures in a row, pause, budget, last error."""
    out = []
    for h in store.health.sources():
        paused = h.next_retry_at is not None and h.next_retry_at > now
        out.append(
            {
                "name": h.name,
                "kind": h.kind,
                "last_attempt_at": when(h.last_attempt_at),
                "last_success_at": when(h.last_success_at),
                "consecutive_failures": h.consecutive_failures,
                "paused_until": when(h.next_retry_at) if paused else None,
                "last_error": h.last_error,
                "mentions_total": h.mentions_total,
                "details": {k: v for k, v in h.details.items() if v not in ("", [], {}, None)},
                "healthy": h.consecutive_failures == 0,
            }
        )
    configured = {s.name for s in settings.sources}
    return {"sources": out, "configured": sorted(configured), "pending_alerts": store.outbox.pending(), "at": iso(now)}


#: How many of the day's mentions the "Teach" page asks a person to label.
TEACH_PER_DAY = 10


def teach(store: Store, now: datetime, limit: int = TEACH_PER_DAY) -> dict[str, Any]:
    """The last day's mentions the model is least sure of, for a person to label in one click each."""
    rows = store.board.least_sure(now - timedelta(days=1), limit)
    items = [
        {
            "key": r["key"],
            "text": r["text"],
            "platform": r["platform"],
            "url": safe_url(r["url"]),
            "published_at": r["published_at"],
            "author": r["handle"] or "",
            "language": r["language"],
            "sentiment": r["sentiment"],
            "probabilities": r["sentiment_probs"],
            "certainty": r["certainty"],
        }
        for r in rows
    ]
    return {"items": items, "labels": list(LABELS), "corrections": len(store.mentions.corrections()), "at": iso(now)}
