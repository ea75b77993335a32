"""What every page shows and every action does, as plain JSON-ready data: the HTML pages render exactly what the
JSON API returns, so the two never disagree. Actions check the caller's role and the mention's state here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from listener.model import PLATFORMS, Conversation
from passaparola.config import Settings
from passaparola.exports import advocate_rows
from rules.advocates import TIERS, score_person
from rules.engagement import ReplyContext, lint_reply, verdict
from rules.sentiment import LABELS
from rules.triage import figures
from storage.board import INBOX_STATES, UNASSIGNED, InboxFilter
from storage.people import PeopleError
from storage.store import Store
from storage.times import iso

RANK = {"agent": 0, "supervisor": 1, "admin": 2}
PAGE_SIZE = 50
ACTIONS = ("assign", "answered", "ignore", "sentiment", "ack")


class ServiceError(Exception):
    """A request the app refuses: ``status`` is the HTTP status, the message says what to do."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a logged-in person or an API token, with a role."""

    name: str
    role: str
    member: str  # their triage member name ("" for tokens)
    via: str  # "session" or "token"

    def can(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]


def _when(moment: datetime | None) -> str | None:
    return iso(moment) if moment else None


def mention_row(c: Conversation, now: datetime, vip: bool = False) -> dict[str, Any]:
    """One mention as the inbox and the API show it."""
    m = c.mention
    return {
        "key": m.key,
        "channel": m.platform,
        "source": m.source,
        "text": m.text,
        "url": m.url,
        "published_at": _when(m.published_at),
        "author": {"handle": m.author.handle, "name": m.author.display_name, "reach": m.author.reach},
        "sentiment": m.tags.get("sentiment"),
        "language": m.tags.get("language"),
        "topics": list(m.tags.get("topics") or ()),
        "state": c.state,
        "state_reason": c.state_reason,
        "priority": c.priority,
        "team": c.team,
        "assignee": c.assignee,
        "due_at": _when(c.due_at),
        "minutes_left": round((c.due_at - now).total_seconds() / 60) if c.due_at and c.is_open else None,
        "answered_at": _when(c.answered_at),
        "answered_by": c.answered_by,
        "acknowledged_by": c.acknowledged_by,
        "vip": vip,
    }


def choices(settings: Settings) -> dict[str, list[str]]:
    """The values each inbox filter and form offers."""
    return {
        "channel": list(PLATFORMS),
        "sentiment": list(LABELS),
        "team": [t.name for t in settings.triage.teams],
        "assignee": [UNASSIGNED, *(m.name for m in settings.triage.members)],
        "member": [m.name for m in settings.triage.members],
        "state": list(INBOX_STATES),
        "language": list(settings.analysis.languages),
        "tier": list(TIERS),
    }


def inbox_filter(params: dict[str, str], settings: Settings) -> InboxFilter:
    """Filters from query parameters; an unknown value is a 400 naming the accepted ones."""
    offered = choices(settings)
    for name in ("channel", "sentiment", "team", "assignee", "state", "language"):
        value = params.get(name, "")
        if value and value not in offered[name]:
            raise ServiceError(400, f"{name}={value!r} is not offered; use one of {', '.join(offered[name])}")
    return InboxFilter(
        channel=params.get("channel", ""),
        sentiment=params.get("sentiment", ""),
        team=params.get("team", ""),
        assignee=params.get("assignee", ""),
        state=params.get("state", "") or "open",
        language=params.get("language", ""),
        vip=params.get("vip", "") in ("1", "true", "on"),
        q=params.get("q", "")[:200],
    )


def inbox(store: Store, now: datetime, f: InboxFilter, page: int) -> dict[str, Any]:
    page = max(page, 1)
    items, total = store.board.inbox(f, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    vips = store.tiered_authors(("vip",))
    return {
        "items": [mention_row(c, now, vip=vips.get(c.mention.author.key) == "vip") for c in items],
        "total": total,
        "page": page,
        "pages": max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1),
        "filters": asdict(f),
    }


def _known(store: Store, key: str) -> Conversation:
    found = store.conversation(key)
    if found is None:
        raise ServiceError(404, f"no mention {key!r}; keys look like x:1234567890 (see the inbox)")
    return found


def mention(settings: Settings, store: Store, now: datetime, key: str) -> dict[str, Any]:
    """The mention, its thread with the brand's answers, its history, and the author's card."""
    c = _known(store, key)
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
                {"offer": o.offer, "sent_at": _when(o.sent_at), "used_at": _when(o.used_at)}
                for o in store.people.offers(person_id)
            ],
            "accounts": [a.key for a in store.people.authors(person_id)],
        }
    card["history"] = [mention_row(h, now) for h in store.board.author_history(card["accounts"])]
    card["moods"] = [{"month": month, **counts} for month, counts in store.board.author_moods(card["accounts"])]
    return {
        "mention": mention_row(c, now, vip=card["tier"] == "vip"),
        "thread": [mention_row(t, now) for t in thread],
        "answers": [
            {"handle": a.handle, "text": a.text, "url": a.url, "published_at": _when(a.published_at)} for a in answers
        ],
        "author": card,
        "events": [
            {"at": _when(at), "event": event, "member": member, "detail": detail}
            for at, event, member, detail in store.events(key)
        ],
    }


def act(
    settings: Settings, store: Store, now: datetime, who: Principal, key: str, action: str, form: dict[str, str]
) -> dict[str, Any]:
    """Do ``action`` on mention ``key`` for ``who``: assign, answered, ignore, sentiment, ack."""
    if action not in ACTIONS:
        raise ServiceError(404, f"no action {action!r}; use one of {', '.join(ACTIONS)}")
    c = _known(store, key)
    actor = who.member or who.name
    if action == "assign":
        member = form.get("member", "").strip()
        if member not in choices(settings)["member"]:
            raise ServiceError(400, f"member={member!r} is not in [[triage.members]]")
        if not who.can("supervisor") and member != who.member:
            raise ServiceError(403, "agents assign mentions to themselves only; ask a supervisor")
        if not c.is_open:
            raise ServiceError(409, f"{key} is {c.state}; only open mentions can be assigned")
        store.assign([(key, member, f"assigned by {who.name}", False)], now)
    elif action == "answered":
        if not c.is_open:
            raise ServiceError(409, f"{key} is already {c.state}")
        store.mark_answered(key, actor, now)
    elif action == "ignore":
        reason = form.get("reason", "").strip()
        if not reason:
            raise ServiceError(400, "say why it needs no answer: reason=spam, not about us...")
        if not c.is_open:
            raise ServiceError(409, f"{key} is already {c.state}")
        store.mark_ignored(key, reason[:200], actor, now)
    elif action == "sentiment":
        label = form.get("label", "")
        if label not in LABELS:
            raise ServiceError(400, f"label={label!r} is not one of {', '.join(LABELS)}")
        store.correct_sentiment(key, label, actor, now)
    else:
        store.acknowledge(key, actor, now)
    return mention_row(_known(store, key), now)


def bulk(
    settings: Settings, store: Store, now: datetime, who: Principal, keys: list[str], action: str, form: dict[str, str]
) -> dict[str, Any]:
    """The same action on several mentions; each one's outcome is reported, one failure stops none."""
    if action not in ("assign", "answered", "ignore"):
        raise ServiceError(400, f"bulk action {action!r} is not offered; use assign, answered or ignore")
    if not keys:
        raise ServiceError(400, "select at least one mention")
    done, failed = [], []
    for key in keys[:PAGE_SIZE]:
        try:
            act(settings, store, now, who, key, action, form)
            done.append(key)
        except ServiceError as error:
            failed.append({"key": key, "error": str(error)})
    return {"done": done, "failed": failed}


def lint(settings: Settings, store: Store, who: Principal, key: str, draft: str) -> dict[str, Any]:
    """The draft reply against the rules of engagement, in the mention's context, signed by the caller."""
    if not draft.strip():
        raise ServiceError(400, "the draft is empty; write the reply first")
    c = _known(store, key)
    signature = next((m.signature for m in settings.triage.members if m.name == who.member), "")
    context = ReplyContext(
        channel=c.mention.platform,
        team=c.team,
        complaint=c.mention.tags.get("sentiment") == "negative",
        signature=signature,
        handle=c.mention.author.handle,
        url=c.mention.url,
    )
    findings = lint_reply(draft, context, settings.engagement)
    return {"verdict": verdict(findings), "findings": [asdict(f) for f in findings]}


def _figure(f: Any) -> dict[str, Any]:
    return {**asdict(f), "compliance": f.compliance, "unanswered_share": f.unanswered_share}


COCKPIT_DAYS = (1, 7, 30)


def cockpit(settings: Settings, store: Store, now: datetime, days: int = 1, hours: int = 48) -> dict[str, Any]:
    """The supervisor's view: volume by sentiment with spikes, response figures over ``days``, workloads,
    complaints, alerts. One day by default: the figures read every conversation of the window (`make bench`)."""
    if days not in COCKPIT_DAYS:
        raise ServiceError(400, f"days={days} is not offered; use one of {', '.join(map(str, COCKPIT_DAYS))}")
    since = now - timedelta(hours=hours)
    table = figures(store.conversations_between(now - timedelta(days=days), now), now)
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    loads = store.board.workloads(now, day_start)
    away = store.away_overrides()
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
        "unassigned_open": store.board.inbox(InboxFilter(assignee=UNASSIGNED), limit=0)[1],
        "complaints": [
            {"topic": topic, "days": dict(sorted(per_day.items()))}
            for topic, per_day in store.board.complaint_topics(now - timedelta(days=max(days, 7)))
        ],
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


def advocates(settings: Settings, store: Store, now: datetime, tiers: list[str]) -> dict[str, Any]:
    """The leaderboard with each person's offer status, as the CSV/JSON export has it."""
    bad = [t for t in tiers if t not in TIERS]
    if bad:
        raise ServiceError(400, f"tier={bad[0]!r} is not one of {', '.join(TIERS)}")
    leaders = store.people.leaders(tiers=tuple(tiers), limit=200)
    rows = advocate_rows(leaders, settings.advocates, now)
    return {"advocates": rows, "tiers": tiers}


def explain(settings: Settings, store: Store, now: datetime, person: str) -> dict[str, Any]:
    """Every mention that makes a person's score, with its share: the terms add up to the score."""
    try:
        person_id = store.people.resolve(person)
    except PeopleError as error:
        raise ServiceError(404, str(error)) from None
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
    for h in store.all_source_health():
        paused = h.next_retry_at is not None and h.next_retry_at > now
        out.append(
            {
                "name": h.name,
                "kind": h.kind,
                "last_attempt_at": _when(h.last_attempt_at),
                "last_success_at": _when(h.last_success_at),
                "consecutive_failures": h.consecutive_failures,
                "paused_until": _when(h.next_retry_at) if paused else None,
                "last_error": h.last_error,
                "mentions_total": h.mentions_total,
                "details": {k: v for k, v in h.details.items() if v not in ("", [], {}, None)},
                "healthy": h.consecutive_failures == 0,
            }
        )
    configured = {s.name for s in settings.sources}
    return {"sources": out, "configured": sorted(configured), "pending_alerts": store.pending_alerts(), "at": iso(now)}


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
            "url": r["url"],
            "published_at": r["published_at"],
            "author": r["handle"] or "",
            "language": r["language"],
            "sentiment": r["sentiment"],
            "probabilities": r["sentiment_probs"],
            "certainty": r["certainty"],
        }
        for r in rows
    ]
    return {"items": items, "labels": list(LABELS), "corrections": len(store.corrections()), "at": iso(now)}


def days_param(value: str) -> int:
    """The cockpit's ``days`` query parameter (default 1)."""
    if not value:
        return 1
    if not value.isdigit():
        raise ServiceError(400, f"days={value!r} is not a number; use one of {', '.join(map(str, COCKPIT_DAYS))}")
    return int(value)
