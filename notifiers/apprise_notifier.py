"""The `apprise` notifier: e-mail, Slack, Teams, Telegram, Matrix, ntfy, webhooks... as URLs, routes as tags.

Untrusted text (every mention, author name) is always sent with ``body_format="text"``: apprise then escapes it
for channels that render HTML. The one exception is an alert's ``html``, which we rendered ourselves with
autoescaping (the daily digest): it goes as HTML, and apprise turns it into text for text-only channels.
Control and bidi characters (a U+202E that reverses what a reader sees) are spelled out as ``\\u202e`` in the
title and the body, as on the console: nothing we send can make a mail client or a chat obey them.

Outcomes are read from apprise's result status, per URL; a failure says which
service failed and why, with the URL in apprise's privacy form (no tokens). Each URL of a route is a *target*
named by that privacy form: the outbox remembers which targets have an alert, and a retry goes to the others only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import apprise

from notifiers.alert import Alert, Delivery, TargetOutcome
from notifiers.log import printable

#: Tag every URL in a route file with a route name; ``always`` URLs get everything (apprise's own rule).
ALWAYS = "always"


@dataclass(frozen=True, slots=True)
class UrlOutcome:
    """One URL's part in a delivery: the service, its URL with secrets hidden, what happened, and its target name."""

    service: str
    url: str
    ok: bool
    detail: str
    target: str = ""


def privacy_url(url: str) -> str:
    """The URL as apprise shows it with secrets hidden, for `check` and logs."""
    service = apprise.Apprise.instantiate(url)
    return str(service.url(privacy=True)) if service is not None else "**********"


def targets(services: Iterable[apprise.NotifyBase]) -> list[tuple[str, str, apprise.NotifyBase]]:
    """Name each URL of a route as (target, privacy URL, service): stable across restarts and free of secrets.

    Two URLs that differ only in a secret look alike in the privacy form; the second is named ``...#2``, in the
    order of the configuration.
    """
    seen: Counter[str] = Counter()
    named = []
    for service in services:
        shown = str(service.url(privacy=True))
        seen[shown] += 1
        named.append((shown if seen[shown] == 1 else f"{shown}#{seen[shown]}", shown, service))
    return named


def parse_problems(routes: Mapping[str, Sequence[str]]) -> list[str]:
    """What is wrong with the routes, one line each, without sending anything."""
    problems = []
    for route, urls in routes.items():
        if not urls:
            problems.append(f"notify.routes.{route}: no URLs; add at least one apprise URL or remove the route")
        for index, url in enumerate(urls):
            if apprise.Apprise.instantiate(url) is None:
                scheme = url.split("://", 1)[0] if "://" in url else "(no scheme)"
                problems.append(
                    f"notify.routes.{route}[{index}]: apprise cannot use this URL (scheme {scheme}); "
                    "check its form in apprise's documentation"
                )
    return problems


class AppriseNotifier:
    """Sends each alert to the URLs of its route, as plain text."""

    def __init__(
        self, routes: Mapping[str, Sequence[str]] | None = None, config_file: str = "", timeout_seconds: float = 30.0
    ) -> None:
        asset = apprise.AppriseAsset(secure_logging=True)
        self.asset = asset
        self.apprise = apprise.Apprise(asset=asset)
        self.timeout_seconds = timeout_seconds
        for route, urls in (routes or {}).items():
            for url in urls:
                self.apprise.add(url, tag=route)
        if config_file:
            config = apprise.AppriseConfig(asset=asset)
            if not config.add(str(Path(config_file))):
                raise ValueError(f"apprise cannot read the config file {config_file}")
            self.apprise.add(config)

    def routes(self) -> set[str]:
        """Every tag some URL carries: the routes alerts can go to."""
        tags: set[str] = set()
        for service in self.apprise:
            tags |= {str(tag) for tag in service.tags}
        return tags

    def target_names(self, route: str) -> list[str]:
        """The targets of a route, as the outbox names them: each can then be sent to on its own."""
        return [target for target, _, _ in targets(self.apprise.find(tag=route))]

    def deliver(self, alert: Alert, reached: Collection[str] = ()) -> list[UrlOutcome]:
        """Send to the route's URLs not in ``reached`` and report per URL.

        No URL for the route is a failure too: nothing reached anyone. Every URL in ``reached``: nothing to do.
        """
        named = targets(self.apprise.find(tag=alert.route))
        if not named:
            return [UrlOutcome("none", "", False, f"no URL carries the route {alert.route!r}")]
        # apprise reports each service by its privacy URL only, so URLs that look alike go in separate calls.
        batches: list[dict[str, tuple[str, apprise.NotifyBase]]] = []
        for target, shown, service in named:
            if target in reached:
                continue
            batch = next((b for b in batches if shown not in b), None)
            if batch is None:
                batch = {}
                batches.append(batch)
            batch[shown] = (target, service)
        return [outcome for batch in batches for outcome in self._notify(alert, batch)]

    def _notify(self, alert: Alert, batch: Mapping[str, tuple[str, apprise.NotifyBase]]) -> list[UrlOutcome]:
        """One apprise call to these services, with the route's tag so apprise's own tag rules still apply."""
        sender = apprise.Apprise(asset=self.asset)
        sender.add([service for _, service in batch.values()])
        result = sender.notify(
            body=printable(alert.html or alert.body),
            title=printable(alert.title),
            notify_type=alert.level,
            body_format=apprise.NotifyFormat.HTML if alert.html else apprise.NotifyFormat.TEXT,
            tag=alert.route,
            timeout=self.timeout_seconds,
        )
        outcomes = []
        for service in result.results:
            messages = [entry.message for entry in service.logs() if getattr(entry, "message", "")]
            detail = "delivered" if service else (messages[-1] if messages else service.status.name.lower())
            target = batch[service.url][0] if service.url in batch else str(service.url)
            outcomes.append(UrlOutcome(service.name, service.url, bool(service), str(detail)[:300], target))
        return outcomes

    def send(self, alert: Alert) -> Delivery:
        return self.send_pending(alert, ())

    def send_pending(self, alert: Alert, reached: Collection[str]) -> Delivery:
        """Send to the URLs that do not have the alert yet; the outcome lists each URL reached or failed."""
        outcomes = self.deliver(alert, reached)
        per_target = tuple(TargetOutcome(o.target, o.ok, o.detail) for o in outcomes if o.target)
        failed = [o for o in outcomes if not o.ok]
        if not outcomes:
            return Delivery(True, f"every URL of the route had it already ({len(reached)})")
        if not failed:
            earlier = f", {len(reached)} had it already" if reached else ""
            return Delivery(True, f"delivered to {len(outcomes)} URL(s){earlier}", per_target)
        partial = (
            f"{len(outcomes) - len(failed)} of {len(outcomes)} URL(s) delivered; "
            if len(failed) < len(outcomes)
            else ""
        )
        return Delivery(False, partial + "; ".join(f"{o.service} {o.url}: {o.detail}" for o in failed), per_target)
