"""The alerts group: test a route's delivery, acknowledge a breach."""

from __future__ import annotations

import sys

import click

from notifiers.alert import Alert
from notifiers.apprise_notifier import AppriseNotifier
from passaparola.actions import MentionActions, operator
from passaparola.cli.common import _acting, build_notifier, config_option, configure, main
from passaparola.daemon import system_clock


@main.group()
def alerts() -> None:
    """Work with alert delivery."""


@alerts.command("test")
@config_option
@click.option("--route", required=True, help="The route (apprise tag) to send a test alert to.")
@click.pass_context
def alerts_test(ctx: click.Context, config_file: str | None, route: str) -> None:
    """Send a test alert to a route and report, per URL, whether it was delivered (exit 1 if any failed)."""
    settings = configure(ctx, config_file)
    notifier = build_notifier(settings)
    alert = Alert(
        key=f"test:{route}:{system_clock().isoformat()}",
        kind="test",
        title="Passaparola test alert",
        body=f"If you read this, the route {route!r} reaches you.",
        route=route,
    )
    if isinstance(notifier, AppriseNotifier):
        outcomes = notifier.deliver(alert)
        for outcome in outcomes:
            mark = "delivered" if outcome.ok else f"FAILED: {outcome.detail}"
            click.echo(f"{outcome.service} {outcome.url}: {mark}")
        sys.exit(0 if all(o.ok for o in outcomes) else 1)
    delivery = notifier.send(alert)
    sys.exit(0 if delivery.ok else 1)


@alerts.command("ack")
@config_option
@click.argument("key")
@click.option("--by", "by", required=True, help="Who takes charge.")
def alerts_ack(config_file: str | None, key: str, by: str) -> None:
    """Acknowledge a breach (KEY: the mention, or the alert's key): its escalation ladder stops."""
    with _acting(config_file) as (settings, store):
        c = MentionActions(settings, store).acknowledge(operator(by), key, system_clock())
    click.echo(f"{c.mention.key}: acknowledged by {c.acknowledged_by}; no further escalation")
