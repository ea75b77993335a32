"""Noise control per route, applied in the outbox: quiet hours, cooldowns per alert kind, a rate cap.

An alert the policy holds is never dropped: quiet hours postpone it to the end of the quiet interval; a cooldown
or the rate cap holds it until the route may hear again, and then everything held for the route goes out as
*one* summary. Critical alerts (level ``failure``, or a kind listed as critical) pass quiet hours and are never
held. Times are evaluated on the route's wall clock (its time zone), so "22:00-07:00" survives DST.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from notifiers.alert import Alert

SUMMARY = "summary"
QUIET = "quiet hours"
COOLDOWN = "cooldown"
RATE_CAP = "rate cap"
#: Reasons whose held alerts are folded into one summary when released (quiet hours only postpone).
FOLDED = (COOLDOWN, RATE_CAP)
_INTERVAL = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
LEVELS = ("info", "success", "warning", "failure")


def parse_interval(text: str) -> tuple[int, int] | None:
    """``"22:00-07:00"`` as minutes after midnight (start, end); the end may be before the start (overnight)."""
    found = _INTERVAL.match(text.strip())
    if not found:
        return None
    h1, m1, h2, m2 = map(int, found.groups())
    if h1 > 24 or h2 > 24 or m1 > 59 or m2 > 59 or (h1 * 60 + m1) == (h2 * 60 + m2):
        return None
    return h1 * 60 + m1, h2 * 60 + m2


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    quiet: tuple[tuple[int, int], ...] = ()
    cooldowns: Mapping[str, int] = field(default_factory=dict)  # kind (or "*") -> minutes
    max_per_hour: int = 0  # 0: no cap
    critical_kinds: frozenset[str] = frozenset()

    def critical(self, alert: Alert) -> bool:
        return alert.level == "failure" or alert.kind in self.critical_kinds

    def quiet_until(self, now: datetime) -> datetime | None:
        """The end of the quiet interval ``now`` falls in, or None when the route may hear now."""
        local = now.astimezone(self.zone)
        minute = local.hour * 60 + local.minute
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        for start, end in self.quiet:
            if start < end and start <= minute < end:
                return _wall(midnight, end, self.zone)
            if start > end and (minute >= start or minute < end):
                day = midnight + timedelta(days=1) if minute >= start else midnight
                return _wall(day, end, self.zone)
        return None

    def cooldown(self, kind: str) -> timedelta:
        return timedelta(minutes=self.cooldowns.get(kind, self.cooldowns.get("*", 0)))


def _wall(midnight: datetime, minutes: int, zone: ZoneInfo) -> datetime:
    """The UTC instant of ``minutes`` after that local midnight, on the wall clock (DST-exact)."""
    naive = midnight.replace(tzinfo=None) + timedelta(minutes=minutes)
    return naive.replace(tzinfo=zone).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Hold:
    until: datetime
    reason: str


def hold(
    policy: RoutePolicy,
    alert: Alert,
    now: datetime,
    last_sent_of_kind: datetime | None,
    sent_last_hour: Sequence[datetime],
) -> Hold | None:
    """Whether the route should not hear this alert now, and until when. None: send it."""
    if policy.critical(alert):
        return None
    if (until := policy.quiet_until(now)) is not None:
        return Hold(until, QUIET)
    if alert.kind == SUMMARY:
        return None
    wait = policy.cooldown(alert.kind)
    if wait and last_sent_of_kind is not None and now < last_sent_of_kind + wait:
        return Hold(last_sent_of_kind + wait, COOLDOWN)
    if policy.max_per_hour and len(sent_last_hour) >= policy.max_per_hour:
        oldest = sorted(sent_last_hour)[len(sent_last_hour) - policy.max_per_hour]
        return Hold(oldest + timedelta(hours=1), RATE_CAP)
    return None


def summary(route: str, alerts: Sequence[Alert], now: datetime) -> Alert:
    """One alert for everything a cooldown or the rate cap held back on a route: each title and its first line."""
    lines = [f"{len(alerts)} alerts were held back on this route (cooldown or rate cap); here they are together:"]
    for alert in alerts:
        first = alert.body.strip().splitlines()[0] if alert.body.strip() else ""
        lines.append(f"- [{alert.kind}] {alert.title}")
        if first:
            lines.append(f"  {first[:200]}")
    level = max((a.level for a in alerts), key=LEVELS.index)
    mentions = tuple(dict.fromkeys(m for a in alerts for m in a.mentions))[:100]
    return Alert(
        key=f"{SUMMARY}:{route}:{now.isoformat(timespec='seconds')}",
        kind=SUMMARY,
        title=f"{len(alerts)} alerts held back on {route}",
        body="\n".join(lines),
        level=level,
        route=route,
        mentions=mentions,
    )
