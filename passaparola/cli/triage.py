"""The triage group (the queue, assignment, answers, figures) and lint-reply, the rules of engagement."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from datetime import datetime, timedelta

import click

from listener.model import PLATFORMS, Conversation
from notifiers.log import printable
from passaparola.actions import MentionActions, operator
from passaparola.actions.listing import queue
from passaparola.cli.common import _acting, _minutes, _share, config_option, fail, load_settings, main, open_store
from passaparola.config import Settings
from passaparola.daemon import system_clock
from rules.engagement import ReplyContext, holding_reply, lint_reply, verdict
from rules.triage import figures
from storage.board import InboxFilter
from storage.store import Store


def _known_member(settings: Settings, name: str) -> None:
    names = [m.name for m in settings.triage.members]
    if name not in names:
        fail([f"no member {name!r} in [[triage.members]]; known: {', '.join(names) or 'none configured'}"])


@main.group("triage")
def triage_group() -> None:
    """Work the queue: who has what, mark answers, people away, first-response figures."""


@triage_group.command("queue")
@config_option
@click.option("--member", help="Only this person's items.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
def triage_queue(config_file: str | None, member: str | None, as_json: bool) -> None:
    """Open mentions, most urgent first, with time left, priority, team and assignee (the inbox's rows)."""
    settings = load_settings(config_file)
    if member is not None:
        _known_member(settings, member)
    store = open_store(settings)
    now = system_clock()
    try:
        rows = list(queue(store, now, InboxFilter(assignee=member or "")))
    finally:
        store.close()
    for row in rows:
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
            continue
        left = row["minutes_left"]
        when = "?" if left is None else f"{left:+d} min" if left < 0 else f"{left} min left"
        text = " ".join(row["text"].split())[:80]
        shown = f"@{row['author']['handle']}" if row["author"]["handle"] else row["author"]["name"]
        click.echo(
            f"{row['key']}  {when}  {row['priority']}  {row['team'] or '-'}  {row['assignee'] or 'unassigned'}  "
            f"{printable(shown)}: {printable(repr(text))}"
        )
    if not as_json:
        click.echo(f"{len(rows)} open")


@triage_group.command("assign")
@config_option
@click.argument("key")
@click.argument("member")
def triage_assign(config_file: str | None, key: str, member: str) -> None:
    """Give mention KEY to MEMBER by hand."""
    with _acting(config_file) as (settings, store):
        MentionActions(settings, store).assign(operator("cli"), key, member, system_clock())
    click.echo(f"{key}: assigned to {member}")


@triage_group.command("answered")
@config_option
@click.argument("key")
@click.option("--by", "by", required=True, help="Who answered (a member's name).")
@click.option(
    "--at", "at", type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M%z"]), help="When (default now)."
)
def triage_answered(config_file: str | None, key: str, by: str, at: datetime | None) -> None:
    """Mark KEY answered, for channels with no reply signal (imports, intake, a phone call back)."""
    with _acting(config_file) as (settings, store):
        c = MentionActions(settings, store).answered(operator(by), key, system_clock(), at=at)
    click.echo(f"{key}: answered by {c.answered_by or by} after {_minutes(c.response_seconds)}")


@triage_group.command("ignore")
@config_option
@click.argument("key")
@click.option("--reason", required=True, help="Why it needs no answer (spam, not about us...).")
@click.option("--by", "by", default="cli", show_default=True)
def triage_ignore(config_file: str | None, key: str, reason: str, by: str) -> None:
    """Close KEY without an answer, with the reason."""
    with _acting(config_file) as (settings, store):
        c = MentionActions(settings, store).ignore(operator(by), key, reason, system_clock())
    click.echo(f"{key}: ignored ({printable(c.state_reason)})")


def _set_away(config_file: str | None, member: str, away: bool) -> None:
    settings = load_settings(config_file)
    _known_member(settings, member)
    store = open_store(settings)
    try:
        store.conversations.set_away(member, away, "cli", system_clock())
    finally:
        store.close()
    click.echo(f"{member} is {'away: their open items are handed on' if away else 'back'}")


@triage_group.command("away")
@config_option
@click.argument("member")
def triage_away(config_file: str | None, member: str) -> None:
    """MEMBER is away: gets no new work; open items go to others at the next rules run."""
    _set_away(config_file, member, True)


@triage_group.command("back")
@config_option
@click.argument("member")
def triage_back(config_file: str | None, member: str) -> None:
    """MEMBER is back (within their shifts)."""
    _set_away(config_file, member, False)


@triage_group.command("figures")
@config_option
@click.option("--days", default=7, show_default=True, help="Mentions published in the last DAYS days.")
@click.option("--json", "as_json", is_flag=True)
def triage_figures(config_file: str | None, days: int, as_json: bool) -> None:
    """First-response time (median, p90), SLA compliance, open items, implicit satisfaction, per group."""
    settings = load_settings(config_file)
    store = open_store(settings)
    now = system_clock()
    try:
        table = figures(store.conversations.between(now - timedelta(days=days), now), now)
        loads = store.conversations.workloads()
    finally:
        store.close()
    if as_json:
        out = {
            dim: {k: {**asdict(f), "compliance": f.compliance} for k, f in rows.items()} for dim, rows in table.items()
        }
        click.echo(json.dumps({"days": days, "figures": out, "workloads": loads}, indent=2))
        return
    click.echo(f"last {days} days: group, needing answer, answered, open, median, p90, SLA met, satisfaction")
    for dimension in ("all", "channel", "team", "member"):
        for name, f in table.get(dimension, {}).items():
            mood = "-" if f.satisfaction is None else f"{f.satisfaction:+.2f} ({f.follow_ups} follow-ups)"
            click.echo(
                f"{dimension} {name}: {f.needing_answer}, {f.answered}, {f.open}, {_minutes(f.median_seconds)}, "
                f"{_minutes(f.p90_seconds)}, {_share(f.compliance)}, {mood}"
            )
    for member in settings.triage.members:
        click.echo(f"workload {member.name}: {loads.get(member.name, 0)} open of {member.capacity}")


def _recent_median(store: Store, channel: str, now: datetime) -> float | None:
    """The median first-response time on ``channel`` over the last day, else the last week: what we can promise."""
    for days in (1, 7):
        group = figures(store.conversations.between(now - timedelta(days=days), now), now).get("channel", {})
        if channel in group and group[channel].median_seconds is not None:
            return group[channel].median_seconds
    return None


def _draft_text(draft: str) -> str:
    text = sys.stdin.read() if draft == "-" else draft
    if not text.strip():
        fail(["the draft is empty; pass the reply's text, or - to read it from stdin"])
    return text


@main.command("lint-reply")
@config_option
@click.argument("draft", required=False, default="")
@click.option("--mention", "key", help="The mention it answers: gives channel, team, complaint, link.")
@click.option("--channel", type=click.Choice(PLATFORMS), help="The channel (default: the mention's).")
@click.option("--member", help="Who signs it (their configured signature is required at the end).")
@click.option("--team", default=None, help="The team (default: the mention's).")
@click.option("--complaint", is_flag=True, help="It answers a complaint (default: the mention is negative).")
@click.option("--holding", is_flag=True, help="Print a holding reply for a busy moment instead of linting.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable findings.")
def lint_reply_command(
    config_file: str | None,
    draft: str,
    key: str | None,
    channel: str | None,
    member: str | None,
    team: str | None,
    complaint: bool,
    holding: bool,
    as_json: bool,
) -> None:
    """Review DRAFT (or - for stdin) against the house rules: exit 0 ok, 1 blocked; warnings do not block."""
    settings = load_settings(config_file)
    c: Conversation | None = None
    median: float | None = None
    if key or holding:
        with _acting(config_file) as (_, store):
            c = MentionActions(settings, store).known(key) if key else None
            median = _recent_median(store, channel or (c.mention.platform if c else ""), system_clock())
    if holding:
        language = (c.mention.tags.get("language") if c else None) or settings.analysis.languages[0]
        handle = c.mention.author.handle if c else "name"
        reply = holding_reply(handle, str(language), median, settings.engagement)
        click.echo(json.dumps({"holding_reply": reply}, ensure_ascii=False) if as_json else reply)
        return
    if not channel and c is None:
        fail(["say where the reply goes: --channel x (or --mention KEY)"])
    if member:
        _known_member(settings, member)
    signature = next((m.signature for m in settings.triage.members if m.name == member), "")
    context = ReplyContext(
        channel=channel or (c.mention.platform if c else ""),
        team=team if team is not None else (c.team if c else ""),
        complaint=complaint or (c is not None and c.mention.tags.get("sentiment") == "negative"),
        signature=signature,
        handle=c.mention.author.handle if c else "",
        url=c.mention.url if c else "",
    )
    findings = lint_reply(_draft_text(draft), context, settings.engagement)
    result = verdict(findings)
    if as_json:
        click.echo(json.dumps({"verdict": result, "findings": [asdict(f) for f in findings]}, ensure_ascii=False))
    else:
        for f in findings:
            click.echo(f"{f.level}: {f.message} [{f.code}]")
        click.echo(f"verdict: {result}")
    sys.exit(1 if result == "block" else 0)
