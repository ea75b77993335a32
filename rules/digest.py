"""`daily_digest`: once a day, at ``at`` on the route's clock, what the team should know about the last 24 hours.

It goes out at ``at`` or at most ``grace_minutes`` later (a rules cycle that runs a little late, a cron job):
never outside that window, so a first start at 10:00 with ``at = "08:00"`` sends the first digest tomorrow at
08:00, not at start-up, and a daemon that was down at ``at`` skips that day rather than sending it at noon.

Mentions and how their sentiment moved against the day before, what is still open and overdue, first-response
figures and SLA compliance, what people complained about most (the topics of negative mentions, and how they
moved), the top advocates, and open alerts. The body is plain text; with ``html`` the alert also carries an HTML
version rendered with autoescaping, so mention text can never become markup.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from jinja2 import Environment, StrictUndefined

from listener.model import Conversation
from notifiers.alert import Alert
from rules.base import StoreView, complained_topics
from rules.triage import figures

SENTIMENTS = ("positive", "neutral", "negative")
_HTML = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True).from_string(
    """<h2>{{ title }}</h2>
<p>{{ mentions }} mentions (the day before: {{ mentions_before }}):
{% for name, now, before in sentiment %}
{{ name }} {{ now }} ({{ "%+d" | format(now - before) }}){{ ", " if not loop.last else "." }}
{% endfor %}
</p>
<p><b>Open:</b> {{ open }}, of which {{ overdue }} overdue. <b>Open alerts:</b> {{ open_alerts }}.</p>
<p><b>First response:</b> {{ response }}</p>
<h3>What people complained about</h3>
<ul>
{% for topic, n, delta in complaints %}
<li>{{ topic }}: {{ n }} ({{ "%+d" | format(delta) }})</li>
{% else %}
<li>nothing</li>
{% endfor %}
</ul>
<h3>Top advocates</h3>
<ol>
{% for name, score, tier in advocates %}
<li>{{ name }}: {{ "%.1f" | format(score) }} ({{ tier }})</li>
{% else %}
<li>none yet</li>
{% endfor %}
</ol>
<h3>Worst complaints</h3>
<ul>
{% for handle, platform, text, url in samples %}
<li>@{{ handle }} on {{ platform }}: “{{ text }}”{% if url %} <a href="{{ url }}">open</a>{% endif %}</li>
{% endfor %}
</ul>
"""
)


@dataclass
class DailyDigest:
    kind: ClassVar[str] = "daily_digest"
    at: str = "08:00"
    timezone: str = "UTC"
    route: str = "care"
    html: bool = True
    top: int = 5
    grace_minutes: int = 60

    def __post_init__(self) -> None:
        try:
            time.fromisoformat(self.at)
        except ValueError:
            raise ValueError(f'at: {self.at!r} is not a time of day; write "08:00"') from None
        if not 1 <= self.grace_minutes <= 1440:
            raise ValueError(
                f"grace_minutes: {self.grace_minutes} is out of range; give the minutes after `at` the digest may "
                "still go out, from 1 to 1440"
            )
        try:
            ZoneInfo(self.timezone)
        except (ValueError, KeyError):
            raise ValueError(
                f'timezone: unknown time zone {self.timezone!r}; use an IANA name like "Europe/Rome"'
            ) from None

    def due_day(self, now: datetime) -> date | None:
        """The day whose digest is due at ``now``: ``at`` on that day has passed by less than ``grace_minutes``.

        Yesterday is looked at too, for a window that crosses midnight (``at = "23:30"``)."""
        zone = ZoneInfo(self.timezone)
        today = now.astimezone(zone).date()
        grace = timedelta(minutes=self.grace_minutes)
        for day in (today, today - timedelta(days=1)):
            slot = datetime.combine(day, time.fromisoformat(self.at), tzinfo=zone)
            if slot <= now < slot + grace:
                return day
        return None

    def evaluate(self, view: StoreView, now: datetime) -> Iterator[Alert]:
        day = self.due_day(now)
        if day is None:
            return
        start, before = now - timedelta(hours=24), now - timedelta(hours=48)
        today = view.conversations.between(start, now)
        yesterday = view.conversations.between(before, start)
        data = self._data(view, today, yesterday, now, f"Daily digest {day}")
        yield Alert(
            key=f"{self.kind}:{self.route}:{day.isoformat()}",
            kind=self.kind,
            title=f"Daily digest {day}: {len(today)} mentions, {data['open']} open, {data['overdue']} overdue",
            body=self._text(data),
            level="info",
            route=self.route,
            mentions=tuple(s[4] for s in data["sample_keys"]),
            html=_HTML.render(**data) if self.html else "",
        )

    def _data(
        self,
        view: StoreView,
        today: Sequence[Conversation],
        yesterday: Sequence[Conversation],
        now: datetime,
        title: str,
    ) -> dict[str, Any]:
        def moods(items: Sequence[Conversation]) -> Counter[str]:
            return Counter(str(c.mention.tags.get("sentiment", "")) for c in items)

        def complaints(items: Sequence[Conversation]) -> Counter[str]:
            return Counter(t for c in items for t in complained_topics(c.mention.tags))

        now_moods, before_moods = moods(today), moods(yesterday)
        now_topics, before_topics = complaints(today), complaints(yesterday)
        open_total, overdue = view.conversations.open_counts(now)
        overall = figures(today, now).get("all", {}).get("all")
        if overall is None or overall.median_seconds is None:
            response = "no answers in the last 24 hours"
        else:
            compliance = f"{overall.compliance:.0%}" if overall.compliance is not None else "-"
            response = (
                f"median {overall.median_seconds / 60:.0f} min, p90 {(overall.p90_seconds or 0) / 60:.0f} min, "
                f"{compliance} within the SLA ({overall.answered} answered)"
            )
        negative = sorted(
            (c for c in today if c.mention.tags.get("sentiment") == "negative"), key=lambda c: -c.mention.author.reach
        )[:3]
        samples = [
            (c.mention.author.handle, c.mention.platform, c.mention.text[:200], _web_link(c.mention.url), c.mention.key)
            for c in negative
        ]
        return {
            "title": title,
            "mentions": len(today),
            "mentions_before": len(yesterday),
            "sentiment": [(name, now_moods[name], before_moods[name]) for name in SENTIMENTS],
            "open": open_total,
            "overdue": overdue,
            "open_alerts": view.outbox.pending() + overdue,
            "response": response,
            "complaints": [(t, n, n - before_topics[t]) for t, n in now_topics.most_common(self.top)],
            "advocates": view.top_advocates(self.top),
            "samples": [s[:4] for s in samples],
            "sample_keys": samples,
        }

    @staticmethod
    def _text(data: dict[str, Any]) -> str:
        lines = [
            f"{data['mentions']} mentions in the last 24 hours (the day before: {data['mentions_before']}): "
            + ", ".join(f"{name} {now} ({now - before:+d})" for name, now, before in data["sentiment"])
            + ".",
            f"Open: {data['open']}, of which {data['overdue']} overdue. Open alerts: {data['open_alerts']}.",
            f"First response: {data['response']}.",
            "What people complained about: "
            + (", ".join(f"{t} {n} ({d:+d})" for t, n, d in data["complaints"]) or "nothing"),
            "Top advocates: "
            + (", ".join(f"{name} {score:.1f} ({tier})" for name, score, tier in data["advocates"]) or "none yet"),
        ]
        if data["samples"]:
            lines.append("Worst complaints:")
            lines += [f"- @{h} on {p}: “{text}” {url}" for h, p, text, url in data["samples"]]
        return "\n".join(lines)


def _web_link(url: str) -> str:
    """Only http(s) links are shown as links: a ``javascript:`` URL from a feed never becomes clickable."""
    return url if url.lower().startswith(("https://", "http://")) else ""
