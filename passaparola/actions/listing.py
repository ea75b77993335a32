"""The listings every door shows: the inbox of the pages and the API, the queue of the CLI. One query
(`storage.board.Board.inbox`) and one row shape (`mention_row`), so the numbers never disagree."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from listener.model import PLATFORMS, Conversation
from passaparola.actions.base import Actor
from passaparola.actions.mentions import PRESENCE
from passaparola.config import Settings
from passaparola.links import safe_url
from rules.advocates import TIERS
from rules.sentiment import LABELS
from storage.board import INBOX_STATES, UNASSIGNED, InboxFilter, Incident
from storage.store import Store
from storage.times import iso

PAGE_SIZE = 50
#: A search counts its matches up to this many: past it, the total says "1000+" (``total_capped``), since counting
#: every match of a common word costs more than finding the page.
COUNT_CAP = 1000
#: How far back the inbox looks for spike alerts to group as incidents.
INCIDENT_HOURS = 24


def when(moment: datetime | None) -> str | None:
    return iso(moment) if moment else None


def mention_row(c: Conversation, now: datetime, vip: bool = False) -> dict[str, Any]:
    """One mention as the inbox and the API show it; its ``url`` only when it is an http(s) link (a feed's
    ``javascript:`` or ``data:`` link is "" at every door, not just where a template filters it)."""

    m = c.mention
    return {
        "key": m.key,
        "channel": m.platform,
        "source": m.source,
        "text": m.text,
        "url": safe_url(m.url),
        "published_at": when(m.published_at),
        "author": {"handle": m.author.handle, "name": m.author.display_name, "reach": m.author.reach},
        "sentiment": m.tags.get("sentiment"),
        "language": m.tags.get("language"),
        "topics": list(m.tags.get("topics") or ()),
        "state": c.state,
        "state_reason": c.state_reason,
        "priority": c.priority,
        "team": c.team,
        "assignee": c.assignee,
        "due_at": when(c.due_at),
        "minutes_left": round((c.due_at - now).total_seconds() / 60) if c.due_at and c.is_open else None,
        "answered_at": when(c.answered_at),
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


def inbox_filter(values: Mapping[str, Any]) -> InboxFilter:
    """The inbox's filters from query parameters already read (and refused when bad) by
    `passaparola.web.params`, the one place that knows what each accepts."""
    return InboxFilter(
        channel=values.get("channel", ""),
        sentiment=values.get("sentiment", ""),
        team=values.get("team", ""),
        assignee=values.get("assignee", ""),
        state=values.get("state", "") or "open",
        language=values.get("language", ""),
        vip=values.get("vip") is True,
        q=values.get("q", ""),
        incident=values.get("incident", ""),
    )


def inbox(
    store: Store, now: datetime, f: InboxFilter, page: int, grouped: bool = False, viewer: Actor | None = None
) -> dict[str, Any]:
    """One page of the inbox. ``grouped``: a burst (a spike alert's mentions still open) is one incident row
    above the rest, and its mentions are not listed again; ``total`` still counts every matching mention.

    A search with more than `COUNT_CAP` matches is not counted to the end: ``total`` is then `COUNT_CAP` and
    ``total_capped`` true, and ``pages`` the pages known to exist (this one, the next when this one is full). Its
    last page knows the total again: where it ends."""
    page = max(page, 1)
    incidents = (
        store.board.incidents(f, now - timedelta(hours=INCIDENT_HOURS))
        if grouped and f.state == "open" and not f.incident
        else []
    )
    grouped_keys = [c.mention.key for i in incidents for c in i.members]
    cap = COUNT_CAP if f.q else None
    reads = PAGE_SIZE if cap is None else PAGE_SIZE + 1  # a search reads one more: whether a next page follows
    items, listed = store.board.inbox(f, limit=reads, offset=(page - 1) * PAGE_SIZE, leave_out=grouped_keys, cap=cap)
    more, items = len(items) > PAGE_SIZE, items[:PAGE_SIZE]
    capped = cap is not None and listed > cap
    if capped and items and not more:  # the last page: where it ends is the total, counted after all
        listed, capped = (page - 1) * PAGE_SIZE + len(items), False
    pages = max((listed + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    if capped:
        pages = max(pages, page if items else 1, page + 1 if more else 1)
    vips = store.tiered_authors(("vip",))
    filters = {k: when(v) if isinstance(v, datetime) else v for k, v in asdict(f).items()}
    rows = [mention_row(c, now, vip=vips.get(c.mention.author.key) == "vip") for c in items]
    others = store.presence.others([r["key"] for r in rows], viewer.signs if viewer else "", now - PRESENCE)
    for row in rows:  # the collision notice: who else has it open or is answering it
        row["others"] = [{"member": p.member, "doing": p.doing} for p in others.get(row["key"], [])]
    return {
        "items": rows,
        "incidents": [incident_row(i, now) for i in incidents],
        "total": COUNT_CAP if capped else listed + len(grouped_keys),
        "total_capped": capped,
        "page": page,
        "pages": pages,
        "filters": filters,
    }


def incident_row(incident: Incident, now: datetime) -> dict[str, Any]:
    """A burst as one row: what (the alert's title and the topics most named), since when, how many, who."""
    members = incident.members
    topics = Counter(t for c in members for t in c.mention.tags.get("topics") or ())
    authors = Counter(c.mention.author.shown for c in members)
    due = [c.due_at for c in members if c.due_at is not None]
    return {
        "key": incident.key,
        "kind": incident.kind,
        "title": incident.title,
        "raised_at": when(incident.raised_at),
        "since": when(min(c.mention.published_at for c in members)),
        "count": len(members),
        "negative": sum(1 for c in members if c.mention.tags.get("sentiment") == "negative"),
        "topics": [t for t, _ in topics.most_common(3)],
        "authors": [a for a, _ in authors.most_common(3)],
        "minutes_left": round((min(due) - now).total_seconds() / 60) if due else None,
        "unassigned": sum(1 for c in members if not c.assignee),
        "keys": [c.mention.key for c in members],
    }


def queue(store: Store, now: datetime, f: InboxFilter) -> Iterator[dict[str, Any]]:
    """Every row the filter matches, page after page, in the inbox's order (the CLI's `triage queue`)."""
    page = 1
    while True:
        listing = inbox(store, now, f, page)
        yield from listing["items"]
        if page >= listing["pages"]:
            return
        page += 1
