"""The `apprise` notifier: e-mail, Slack, Teams, Telegram, Matrix, ntfy, webhooks... as URLs, routes as tags.

Untrusted text (every mention, author name) is always sent with ``body_format="text"``: apprise then escapes it
for channels that render HTML. The one exception is an alert's ``html``, which we rendered ourselves with
autoescaping (the daily digest): it goes as HTML, and apprise turns it into text for text-only channels.
Outcomes are read from apprise's result status, per URL; a failure says which
service failed and why, with the URL in apprise's privacy form (no tokens).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import apprise

from notifiers.alert import Alert, Delivery

#: Tag every URL in a route file with a route name; ``always`` URLs get everything (apprise's own rule).
ALWAYS = "always"


@dataclass(frozen=True, slots=True)
class UrlOutcome:
    """One URL's part in a delivery: the service, its URL with secrets hidden, and what happened."""

    service: str
    url: str
    ok: bool
    detail: str


def privacy_url(url: str) -> str:
    """The URL as apprise shows it with secrets hidden, for `check` and logs."""
    service = apprise.Apprise.instantiate(url)
    return str(service.url(privacy=True)) if service is not None else "**********"


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

    def deliver(self, alert: Alert) -> list[UrlOutcome]:
        """Send and report per URL. No URL for the route is a failure too: nothing reached anyone."""
        result = self.apprise.notify(
            body=alert.html or alert.body,
            title=alert.title,
            notify_type=alert.level,
            body_format=apprise.NotifyFormat.HTML if alert.html else apprise.NotifyFormat.TEXT,
            tag=alert.route,
            timeout=self.timeout_seconds,
        )
        outcomes = []
        for service in result.results:
            messages = [entry.message for entry in service.logs() if getattr(entry, "message", "")]
            detail = "delivered" if service else (messages[-1] if messages else service.status.name.lower())
            outcomes.append(UrlOutcome(service.name, service.url, bool(service), str(detail)[:300]))
        if not outcomes:
            outcomes.append(UrlOutcome("none", "", False, f"no URL carries the route {alert.route!r}"))
        return outcomes

    def send(self, alert: Alert) -> Delivery:
        outcomes = self.deliver(alert)
        failed = [o for o in outcomes if not o.ok]
        if not failed:
            return Delivery(True, f"delivered to {len(outcomes)} URL(s)")
        return Delivery(False, "; ".join(f"{o.service} {o.url}: {o.detail}" for o in failed))
