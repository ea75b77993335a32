"""The listings every door shows: the inbox of the pages and the API, the queue of the CLI. One query
(`storage.board.Board.inbox`) and one row shape (`mention_row`), so the numbers never disagree."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime
from typing import Any

from listener.model import PLATFORMS, Conversation
from passaparola.actions.base import Refusal
from passaparola.config import Settings
from rules.advocates import TIERS
from rules.sentiment import LABELS
from storage.board import INBOX_STATES, UNASSIGNED, InboxFilter
from storage.store import Store
from storage.times import iso

PAGE_SIZE = 50


def when(moment: datetime | None) -> str | None:
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


def inbox_filter(params: dict[str, str], settings: Settings) -> InboxFilter:
    """Filters from query parameters; an unknown value is a 400 naming the accepted ones."""
    offered = choices(settings)
    for name in ("channel", "sentiment", "team", "assignee", "state", "language"):
        value = params.get(name, "")
        if value and value not in offered[name]:
            raise Refusal(400, f"{name}={value!r} is not offered; use one of {', '.join(offered[name])}")
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


def queue(store: Store, now: datetime, f: InboxFilter) -> Iterator[dict[str, Any]]:
    """Every row the filter matches, page after page, in the inbox's order (the CLI's `triage queue`)."""
    page = 1
    while True:
        listing = inbox(store, now, f, page)
        yield from listing["items"]
        if page >= listing["pages"]:
            return
        page += 1
