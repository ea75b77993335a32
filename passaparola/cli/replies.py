"""Answering from the command line: `reply` sends on the mention's own channel; the `replies` group lists them,
approves or rejects what waits for a supervisor, and retries what is due (the daemon does that by itself)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from notifiers.log import printable
from passaparola.actions import Actor, ReplyActions, ReplyBlocked, operator
from passaparola.actions.replies import reply_row
from passaparola.cli.common import _acting, config_option, fail, main
from passaparola.daemon import system_clock
from storage.replies import STATES


def _said(row: dict[str, Any]) -> str:
    """One reply as a line a person reads: its state, what was sent or what to do."""
    head = f"reply {row['id']} on {row['key']}: {row['state'].replace('_', ' ')}"
    if row["state"] == "sent":
        return f"{head} as {row['platform_id']} {printable(row['url'])}".rstrip()
    if row["state"] == "pending_approval":
        return f"{head}: a supervisor approves it with `passaparola replies approve {row['id']} --by NAME`"
    if row["error"]:
        told = f"{head}: {printable(row['error'])}"
        return f"{told}; {row['advice']}" if row["advice"] else told
    return head


def _blocked(refusal: ReplyBlocked) -> None:
    for finding in refusal.findings:
        if finding.level != "info":
            click.echo(f"{finding.level}: {printable(finding.message)} [{finding.code}]", err=True)
    fail([str(refusal)])


@main.command("reply")
@config_option
@click.argument("key")
@click.argument("text", required=False, default="")
@click.option("--member", required=True, help="Who writes it: a member of [[triage.members]]; their signature ends it.")
@click.option("--saved", "saved", help="Start from this saved reply ([[engagement.saved]]), its variables filled in.")
@click.option("--reference", default="", help="The order or ticket number a saved reply's $reference asks for.")
@click.option("--override", "override", default="", help="Send despite a blocking house rule: the reason (recorded).")
@click.option("--copied", is_flag=True, help="A channel with no write API: you posted it yourself; record it.")
@click.option("--json", "as_json", is_flag=True, help="The reply's record as JSON.")
def reply_command(
    config_file: str | None,
    key: str,
    text: str,
    member: str,
    saved: str | None,
    reference: str,
    override: str,
    copied: bool,
    as_json: bool,
) -> None:
    """Answer mention KEY with TEXT (or - for stdin) on its own channel, as MEMBER: exactly once, house rules
    enforced. Exit 0 sent (or waiting for approval), 1 not sent (the reason says what to do), 2 refused."""
    with _acting(config_file) as (settings, store):
        now = system_clock()
        actor = operator(member)
        actions = ReplyActions(settings, store)
        if saved:
            text = actions.fill_saved(actor, key, saved, now, reference)
        elif text == "-":
            text = sys.stdin.read()
        if not text.strip():
            fail(["the reply is empty; pass its text, - to read it from stdin, or --saved NAME"])
        try:
            if copied:
                reply = actions.copied(actor, key, text, now, override_reason=override)
            else:
                reply = actions.send(actor, key, text, now, override_reason=override)
                reply = actions.attempt(reply.id, now) or reply
        except ReplyBlocked as refusal:
            _blocked(refusal)
    row = reply_row(reply)
    click.echo(json.dumps(row, ensure_ascii=False) if as_json else _said(row))
    sys.exit(0 if reply.state in ("sent", "copied", "pending_approval") else 1)


@main.group("replies")
def replies_group() -> None:
    """Replies written in passaparola: the list, the approval queue, the retries."""


@replies_group.command("list")
@config_option
@click.option("--mention", "key", help="Only the replies to this mention (its audit).")
@click.option("--state", type=click.Choice(STATES), help="Only replies in this state (pending_approval: the queue).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
def replies_list(config_file: str | None, key: str | None, state: str | None, as_json: bool) -> None:
    """The replies, oldest first, with who wrote and approved them, what was sent, and the platform's link."""
    with _acting(config_file) as (_, store):
        found = store.replies.for_mention(key) if key else store.replies.recent(state)
    for reply in found:
        if state and reply.state != state:
            continue
        row = reply_row(reply)
        click.echo(json.dumps(row, ensure_ascii=False) if as_json else _said(row))


def _review(
    config_file: str | None, reply_id: int, by: str, approve: bool, text: str, comment: str, override: str
) -> None:
    with _acting(config_file) as (settings, store):
        now = system_clock()
        actions = ReplyActions(settings, store)
        supervisor = Actor(by, "supervisor", by, "cli")
        try:
            reply = actions.review(
                supervisor, reply_id, approve, now, text=text, comment=comment, override_reason=override
            )
        except ReplyBlocked as refusal:
            _blocked(refusal)
        if approve:
            reply = actions.attempt(reply.id, now) or reply
    click.echo(_said(reply_row(reply)))


@replies_group.command("approve")
@config_option
@click.argument("reply_id", type=int)
@click.option("--by", "by", required=True, help="The supervisor who approves.")
@click.option("--text", default="", help="The text as edited by the supervisor (default: as written).")
@click.option("--override", "override", default="", help="Approve despite a blocking house rule: the reason.")
def replies_approve(config_file: str | None, reply_id: int, by: str, text: str, override: str) -> None:
    """Approve reply REPLY_ID waiting in the queue, and send it."""
    _review(config_file, reply_id, by, True, text, "", override)


@replies_group.command("reject")
@config_option
@click.argument("reply_id", type=int)
@click.option("--by", "by", required=True, help="The supervisor who rejects.")
@click.option("--comment", required=True, help="Why: the author sees it on their draft.")
def replies_reject(config_file: str | None, reply_id: int, by: str, comment: str) -> None:
    """Reject reply REPLY_ID waiting in the queue; its author finds the text back as a draft, with the comment."""
    _review(config_file, reply_id, by, False, "", comment, "")


@replies_group.command("send-due")
@config_option
def replies_send_due(config_file: str | None) -> None:
    """Try every reply that is due now (the daemon does this every outbox pass), and the out-of-hours replies."""
    with _acting(config_file) as (settings, store):
        now = system_clock()
        actions = ReplyActions(settings, store)
        posted = actions.deliver_due(now)
        acknowledged = actions.acknowledge_out_of_hours(now)
    click.echo(f"{posted} replies posted, {acknowledged} out-of-hours replies sent")
