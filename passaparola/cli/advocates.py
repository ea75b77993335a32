"""People who praise the brand: the advocates and testimonials groups, exports, and erasure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from listener.model import PLATFORMS
from notifiers.log import printable
from passaparola.actions import PeopleActions, operator
from passaparola.cli.common import _people_store, config_option, fail, main
from passaparola.config import Settings
from passaparola.daemon import system_clock
from passaparola.exports import (
    FORMATS,
    TESTIMONIAL_COLUMNS,
    advocate_export,
    render,
    testimonial_rows,
    write_atomic,
)
from passaparola.pipeline import score_advocates
from rules.advocates import TIERS, score_person, suggest_offer
from storage.store import Store


def _rescored(settings: Settings, store: Store) -> datetime:
    """Scores as of now (VIP promotions found here are queued for the daemon to send, never lost)."""
    now = system_clock()
    score_advocates(settings.advocates, store, now)
    return now


def _write_or_print(text: str, fmt: str, out: str) -> None:
    if out == "-":
        click.echo(text, nl=False)
    else:
        write_atomic(Path(out), text, fmt)


@main.group("advocates")
def advocates_group() -> None:
    """People who speak well of the brand: scores, tiers, offers and exports."""


@advocates_group.command("list")
@config_option
@click.option("--tier", "tiers", multiple=True, type=click.Choice(TIERS), help="Only these tiers (repeatable).")
@click.option("--limit", default=20, show_default=True)
def advocates_list(config_file: str | None, tiers: tuple[str, ...], limit: int) -> None:
    """The leaderboard: best score first, with tier, handles and what they praised."""
    with _people_store(config_file) as (settings, store):
        _rescored(settings, store)
        leaders = store.people.leaders(tiers=tiers, limit=limit)
    for leader in leaders:
        p = leader.person
        click.echo(
            f"{p.id:>6}  {leader.score:7.2f}  {leader.tier or '-':<8}  {printable(p.name)}  "
            f"{' '.join('@' + printable(h) for h in p.handles)}  [{', '.join(p.channels)}]"
            f"{'  opted out' if p.opted_out else ''}"
        )
    click.echo(f"{len(leaders)} people")


@advocates_group.command("explain")
@config_option
@click.argument("person")
def advocates_explain(config_file: str | None, person: str) -> None:
    """Every mention that makes PERSON's score (id, author key or @handle), with its share."""
    with _people_store(config_file) as (settings, store):
        now = _rescored(settings, store)
        person_id = store.people.resolve(person)
        who = store.people.person(person_id)
        since = now - timedelta(days=settings.advocates.window_days)
        score = score_person(person_id, store.people.said(since, person_id), settings.advocates, now)
    click.echo(f"person {who.id}: {printable(who.name)} ({', '.join('@' + printable(h) for h in who.handles)})")
    click.echo(
        f"score {score.score:.2f} = sum of sign x strength x reach x decay "
        f"(half-life {settings.advocates.half_life_days:g} days); tier {score.tier or 'none'}"
    )
    for c in score.contributions:
        s = c.said
        sign = "+" if s.sentiment == "positive" else "-"
        share = f"{c.value / score.score:6.1%}" if score.score and not c.excluded else "     -"
        reason = f"  not counted: {c.excluded}" if c.excluded else ""
        click.echo(
            f"  {c.value:+7.3f} {share}  {s.published_at:%Y-%m-%d}  {s.platform:<8} {sign}{s.strength:.2f}"
            f" x{c.reach_factor:.2f} x{c.decay:.2f}  {s.key}  {printable(' '.join(s.text.split()))[:70]!r}{reason}"
        )
    if not score.contributions:
        click.echo("  no positive or negative mention in the window")


@advocates_group.command("suggest")
@config_option
def advocates_suggest(config_file: str | None) -> None:
    """Authors on different platforms whose handles match: probably one person; link them to merge."""
    with _people_store(config_file) as (_settings, store):
        store.people.sync(system_clock())
        found = store.people.suggestions()
    for s in found:
        click.echo(
            f"@{printable(s.handle)}: people {', '.join(map(str, s.people))} ({', '.join(s.authors)}); "
            f"link with: passaparola advocates link {s.people[0]} {s.authors[-1]}"
        )
    click.echo(f"{len(found)} suggestions")


@advocates_group.command("link")
@config_option
@click.argument("person")
@click.argument("author")
@click.option("--by", "by", default="cli", show_default=True)
def advocates_link(config_file: str | None, person: str, author: str, by: str) -> None:
    """Make AUTHOR (platform:id) one of PERSON's accounts; scores add up from the next run."""
    with _people_store(config_file) as (settings, store):
        person_id = PeopleActions(store).link(operator(by), person, author, system_clock())
        _rescored(settings, store)
    click.echo(f"{author} is now person {person_id}")


@advocates_group.command("unlink")
@config_option
@click.argument("author")
@click.option("--by", "by", default="cli", show_default=True)
def advocates_unlink(config_file: str | None, author: str, by: str) -> None:
    """Give AUTHOR a person of their own again."""
    with _people_store(config_file) as (settings, store):
        person_id = PeopleActions(store).unlink(operator(by), author, system_clock())
        _rescored(settings, store)
    click.echo(f"{author} is now person {person_id}")


@advocates_group.command("opt-out")
@config_option
@click.argument("person")
@click.option("--undo", is_flag=True, help="They agreed to offers again.")
def advocates_opt_out(config_file: str | None, person: str, undo: bool) -> None:
    """PERSON gets no offers (exports show offer_consent false)."""
    with _people_store(config_file) as (_settings, store):
        person_id = PeopleActions(store).opt_out(operator("cli"), person, not undo, system_clock())
    click.echo(f"person {person_id}: {'may get offers again' if undo else 'opted out of offers'}")


@advocates_group.command("offer")
@config_option
@click.argument("person")
@click.option("--send", is_flag=True, help="Record that the suggested offer was sent.")
@click.option("--by", "by", default="cli", show_default=True)
def advocates_offer(config_file: str | None, person: str, send: bool, by: str) -> None:
    """The offer for PERSON now (rendered from the configured templates) and the offers they had."""
    with _people_store(config_file) as (settings, store):
        now = _rescored(settings, store)
        person_id = store.people.resolve(person)
        leader = next(iter(store.people.leaders(person_id=person_id)), None)
        who = store.people.person(person_id)
        tier, score, praised = (leader.tier, leader.score, leader.praised) if leader else ("", 0.0, ())
        suggestion = suggest_offer(who, tier, score, praised, settings.advocates, now)
        if send:
            if not suggestion.text:
                fail([f"person {person_id}: no offer to send ({suggestion.reason})"])
            store.people.record_offer(person_id, suggestion.offer, suggestion.text, by, now)
        history = store.people.offers(person_id)
    if suggestion.text:
        click.echo(f"{'sent' if send else 'suggested'} ({suggestion.offer}): {printable(suggestion.text)}")
    else:
        click.echo(f"no offer now: {suggestion.reason}")
    for o in history:
        used = f"used {o.used_at:%Y-%m-%d}" if o.used_at else "not used yet"
        click.echo(f"  offer {o.id} {o.offer} sent {o.sent_at:%Y-%m-%d} by {o.sent_by}; {used}")


@advocates_group.command("offer-used")
@config_option
@click.argument("offer_id", type=int)
def advocates_offer_used(config_file: str | None, offer_id: int) -> None:
    """Record that offer OFFER_ID was redeemed."""
    with _people_store(config_file) as (_settings, store):
        store.people.offer_used(offer_id, system_clock())
    click.echo(f"offer {offer_id}: used")


export_options = [
    click.option("--format", "fmt", type=click.Choice(FORMATS), default="csv", show_default=True),
    click.option(
        "--out", default="-", show_default=True, help="File to write (written whole, then renamed); '-': stdout."
    ),
    click.option("--since", type=click.DateTime(["%Y-%m-%d"]), help="Praise since this day (UTC)."),
    click.option("--topic", default="", help="Only people (mentions) about this topic."),
    click.option("--channel", type=click.Choice(PLATFORMS), help="Only this channel."),
]


def _export_options(command: Any) -> Any:
    for option in reversed(export_options):
        command = option(command)
    return command


def _utc_day(day: datetime | None) -> datetime | None:
    return day.replace(tzinfo=UTC) if day else None


@advocates_group.command("export")
@config_option
@_export_options
@click.option("--tier", "tiers", multiple=True, type=click.Choice(TIERS), help="Only these tiers (repeatable).")
@click.option("--min-score", type=float, help="Only people scoring at least this.")
def advocates_export(
    config_file: str | None,
    fmt: str,
    out: str,
    since: datetime | None,
    topic: str,
    channel: str | None,
    tiers: tuple[str, ...],
    min_score: float | None,
) -> None:
    """One row per person: handles, channels, score, tier, last praise, suggested offer, consent."""
    with _people_store(config_file) as (settings, store):
        now = _rescored(settings, store)
        text, people = advocate_export(
            store, settings.advocates, now, fmt, tiers, min_score, _utc_day(since), topic, channel or ""
        )
        _write_or_print(text, fmt, out)
    if out != "-":
        click.echo(f"{people} people written to {out}")


@main.group("testimonials")
def testimonials_group() -> None:
    """The strongest positive mentions, for the brand's own pages, with the author's agreement."""


@testimonials_group.command("export")
@config_option
@_export_options
@click.option("--agreed-only", is_flag=True, help="Only mentions whose author agreed to their reuse.")
@click.option("--limit", default=50, show_default=True)
def testimonials_export(
    config_file: str | None,
    fmt: str,
    out: str,
    since: datetime | None,
    topic: str,
    channel: str | None,
    agreed_only: bool,
    limit: int,
) -> None:
    """Positive mentions ranked by strength, reach and recency, with author, link and reuse agreement."""
    with _people_store(config_file) as (settings, store):
        now = system_clock()
        start = _utc_day(since) or now - timedelta(days=settings.advocates.window_days)
        rows = testimonial_rows(store, settings.advocates, now, start, topic, channel or "", agreed_only, limit)
        _write_or_print(render(rows, TESTIMONIAL_COLUMNS, fmt), fmt, out)
    if out != "-":
        click.echo(f"{len(rows)} testimonials written to {out}")


@testimonials_group.command("agree")
@config_option
@click.argument("mention")
@click.option("--revoke", is_flag=True, help="The author withdrew their agreement.")
@click.option("--by", "by", default="cli", show_default=True)
@click.option("--note", default="", help="How the agreement was given (a DM, an e-mail...).")
def testimonials_agree(config_file: str | None, mention: str, revoke: bool, by: str, note: str) -> None:
    """Record that the author of MENTION agreed (or no longer agrees) to its reuse."""
    with _people_store(config_file) as (_settings, store):
        store.people.agree_testimonial(mention, not revoke, by, system_clock(), note)
    click.echo(f"{mention}: reuse {'not agreed' if revoke else 'agreed'}")


@main.command("erase")
@config_option
@click.argument("who")
@click.option("--yes", is_flag=True, help="Confirm: this cannot be undone.")
def erase(config_file: str | None, who: str, yes: bool) -> None:
    """Remove a person (id, author key or @handle) everywhere, and never ingest or target them again."""
    with _people_store(config_file) as (_settings, store):
        people = PeopleActions(store)
        if not yes:
            person_id, accounts = people.erasure(operator("cli"), who, system_clock())
            removed = f"person {person_id} ({', '.join(accounts)})"
            fail([f"erase would remove {removed} and all they said; add --yes to confirm"])
        erased = people.erase(operator("cli"), who, system_clock())
    done = ", ".join(f"{n} {table}" for table, n in erased.removed.items() if n)
    click.echo(f"person {erased.person_id} erased ({done or 'nothing stored'}); their accounts are suppressed")
