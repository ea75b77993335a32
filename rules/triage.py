"""Triage: which mentions need an answer, by when, how urgently, for which team, and who takes each one.

Everything here is a pure function of settings, stored conversations and an explicit ``now``: the composition
root reads the store, asks these functions what to do and writes their decisions back. Deadlines are in
*business time*: the clock of a first-response target runs only while the business is open (24/7 unless
hours are configured), computed on the wall clock of the configured time zone so DST changes are exact.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Literal
from zoneinfo import ZoneInfo

from listener.model import Conversation

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PRIORITIES = ("normal", "high", "urgent")
Policy = Literal["all", "needs_answer", "negative", "stars"]
POLICIES: tuple[str, ...] = ("all", "needs_answer", "negative", "stars")
#: What needs an answer on each channel unless configured: every review (by its stars) and page comment, else what
#: asks for one.
DEFAULT_POLICIES: Mapping[str, Policy] = {
    "x": "needs_answer",
    "forum": "needs_answer",
    "facebook": "all",
    "review": "stars",
    "web": "needs_answer",
    "site": "all",
    "import": "all",
    "gbp": "stars",
    "appstore": "stars",
    "googleplay": "stars",
    "bluesky": "needs_answer",
    "mastodon": "needs_answer",
    "youtube": "needs_answer",
}
#: Review channels answer in business days, not minutes, unless ``channel_targets`` says otherwise.
DEFAULT_TARGET_DAYS: Mapping[str, float] = {"review": 1, "gbp": 1, "appstore": 1, "googleplay": 1}
MINUTES_PER_DAY = 24 * 60
SEARCH_DAYS = 400  # a deadline further than this in business time means the hours are never open

Interval = tuple[int, int]  # minutes after local midnight, start < end <= 1440


# -- business hours ----------------------------------------------------------------------------------


def parse_weekly(spec: Mapping[str, Sequence[str]], where: str) -> tuple[dict[int, tuple[Interval, ...]], list[str]]:
    """Read ``{"mon-fri": ["09:00-18:00"], "sat": ["10:00-13:00"]}`` into intervals per weekday (0 = Monday).

    Keys are days (``mon``), ranges (``mon-fri``) or ``daily``; an interval ending before it starts runs past
    midnight. Returns the intervals and one problem line per mistake (bad syntax, an empty or overlapping
    interval, no hours at all).
    """
    problems: list[str] = []
    days: dict[int, list[Interval]] = defaultdict(list)
    for key, intervals in spec.items():
        weekdays = _weekdays(key)
        if weekdays is None:
            problems.append(f"{where}.{key}: not a day; use mon..sun, a range like mon-fri, or daily")
            continue
        for text in intervals:
            match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", str(text))
            if not match or int(match[1]) > 24 or int(match[3]) > 24 or int(match[2]) > 59 or int(match[4]) > 59:
                problems.append(f'{where}.{key}: {text!r} is not an interval; write it as "09:00-18:00"')
                continue
            start, end = int(match[1]) * 60 + int(match[2]), int(match[3]) * 60 + int(match[4])
            if start == end or start >= MINUTES_PER_DAY:
                problems.append(f"{where}.{key}: {text!r} is empty; give it a start before its end")
                continue
            for day in weekdays:
                if end > start:
                    days[day].append((start, end))
                else:  # past midnight: the rest of this day, then the start of the next
                    days[day].append((start, MINUTES_PER_DAY))
                    if end:
                        days[(day + 1) % 7].append((0, end))
    weekly: dict[int, tuple[Interval, ...]] = {}
    for day, day_intervals in sorted(days.items()):
        ordered = sorted(day_intervals)
        for (_, earlier_end), (later_start, _) in pairwise(ordered):
            if later_start < earlier_end:
                problems.append(f"{where}: intervals overlap on {WEEKDAYS[day]}; make them disjoint")
                break
        weekly[day] = tuple(ordered)
    if spec and not weekly and not problems:
        problems.append(f"{where}: no working hours at all; add intervals, or remove the key to mean always")
    return weekly, problems


def _weekdays(key: str) -> list[int] | None:
    key = key.strip().lower()
    if key == "daily":
        return list(range(7))
    if key in WEEKDAYS:
        return [WEEKDAYS.index(key)]
    first, _, last = key.partition("-")
    if first in WEEKDAYS and last in WEEKDAYS:
        a, b = WEEKDAYS.index(first), WEEKDAYS.index(last)
        return [d % 7 for d in range(a, b + 1 if b >= a else b + 8)]
    return None


@dataclass(frozen=True)
class Hours:
    """When someone is open: weekly intervals on the wall clock of ``zone``, minus ``holidays``.

    ``weekly=None`` means always open (except holidays): the 24/7 default.
    """

    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    weekly: Mapping[int, tuple[Interval, ...]] | None = None
    holidays: frozenset[date] = frozenset()

    @property
    def always(self) -> bool:
        return self.weekly is None and not self.holidays

    def _local(self, day: date, minute: int) -> datetime:
        if minute >= MINUTES_PER_DAY:
            day, minute = day + timedelta(days=1), minute - MINUTES_PER_DAY
        return datetime.combine(day, time(minute // 60, minute % 60), tzinfo=self.zone).astimezone(UTC)

    def _day_intervals(self, day: date) -> Iterable[tuple[datetime, datetime]]:
        if day in self.holidays:
            return
        for start, end in ((0, MINUTES_PER_DAY),) if self.weekly is None else self.weekly.get(day.weekday(), ()):
            yield self._local(day, start), self._local(day, end)

    def open_intervals(self, start: datetime, end: datetime) -> Iterable[tuple[datetime, datetime]]:
        """The open stretches of [start, end), in order, as aware UTC pairs."""
        day = start.astimezone(self.zone).date()
        last = end.astimezone(self.zone).date()
        while day <= last:
            for a, b in self._day_intervals(day):
                lo, hi = max(a, start), min(b, end)
                if lo < hi:
                    yield lo, hi
            day += timedelta(days=1)

    def day_minutes(self) -> int:
        """The open minutes of a usual working day (the median over the week's open days): what "one business
        day" of a review's target means."""
        if self.weekly is None:
            return MINUTES_PER_DAY
        days = sorted(sum(end - start for start, end in spans) for spans in self.weekly.values() if spans)
        return days[len(days) // 2] if days else MINUTES_PER_DAY

    def is_open(self, at: datetime) -> bool:
        return self.always or any(True for _ in self.open_intervals(at, at + timedelta(seconds=1)))

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Business time between two instants (zero if ``end`` is not after ``start``)."""
        if end <= start:
            return timedelta(0)
        if self.always:
            return end - start
        return sum((b - a for a, b in self.open_intervals(start, end)), timedelta(0))

    def add(self, start: datetime, amount: timedelta) -> datetime:
        """The instant when ``amount`` of business time has passed since ``start``."""
        if self.always:
            return start + amount
        left = amount
        day = start.astimezone(self.zone).date()
        for _ in range(SEARCH_DAYS):
            for a, b in self._day_intervals(day):
                a = max(a, start)
                if a >= b:
                    continue
                if b - a >= left:
                    return a + left
                left -= b - a
            day += timedelta(days=1)
        raise ValueError(f"business hours never open within {SEARCH_DAYS} days; check the hours and holidays")


# -- priority, policy, targets, routes --------------------------------------------------------------


def priority_of(sentiment: str | None, reach: int, vip: bool, high_reach: int) -> str:
    """One step up for each of: negative sentiment, an author with ``high_reach`` followers, a VIP advocate."""
    steps = (sentiment == "negative") + (reach >= high_reach) + bool(vip)
    return PRIORITIES[min(steps, len(PRIORITIES) - 1)]


def needs_answer(
    policy: Policy,
    needs_answer_tag: int | None,
    sentiment: str | None,
    rating: int | None = None,
    answer_below: int = 4,
    thank: bool = True,
) -> tuple[bool, str]:
    """Whether the channel's policy asks for an answer to this mention, and why not when it does not.

    ``stars``: a review below ``answer_below`` stars needs an answer, one at or above it a thank-you (unless
    ``thank`` is off); a review with no stars is answered."""
    if policy == "all":
        return True, ""
    if policy == "stars":
        if rating is None or rating < answer_below or thank:
            return True, ""
        return False, f"a {rating}-star review; thank-yous are off (triage.thank_reviews)"
    if policy == "negative":
        return (True, "") if sentiment == "negative" else (False, "not negative; this channel answers negatives")
    if needs_answer_tag == 0:
        return False, "tagged as needing no answer"
    return True, ""


@dataclass(frozen=True)
class Team:
    """A route: mentions naming one of ``keywords`` or tagged with one of ``topics`` (in ``languages``, if set)."""

    name: str
    keywords: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()

    def matches(self, text: str, topics: Iterable[str], language: str | None) -> bool:
        if self.languages and language not in self.languages:
            return False
        if set(topics) & set(self.topics):
            return True
        return bool(self.keywords) and _words(self.keywords).search(text) is not None


def _words(terms: Sequence[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(t.strip()) for t in sorted(terms, key=len, reverse=True) if t.strip())
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


@dataclass(frozen=True)
class Member:
    """A person who answers: the teams they can serve, their languages, shifts, capacity and signature."""

    name: str
    skills: tuple[str, ...]
    languages: tuple[str, ...]
    hours: Hours = field(default_factory=Hours)
    capacity: int = 10
    away: bool = False
    signature: str = ""
    needs_approval: bool = False  # their replies wait for a supervisor's approval


@dataclass(frozen=True)
class TriageSettings:
    """Everything triage decides with; built from the ``[triage]`` config section."""

    business: Hours = field(default_factory=Hours)
    targets: Mapping[str, Mapping[str, int]] = field(default_factory=lambda: {"*": dict.fromkeys(PRIORITIES, 60)})
    next_response_minutes: int = 60
    warn_share: float = 0.75
    policies: Mapping[str, Policy] = field(default_factory=lambda: dict(DEFAULT_POLICIES))
    high_reach: int = 10_000
    teams: tuple[Team, ...] = ()
    default_team: str = ""
    members: tuple[Member, ...] = ()
    returning_days: int = 30
    vip_handles: frozenset[str] = frozenset()
    #: A mention first heard this long after it was written (a backfill, a feed's old review) gets no SLA clock.
    late_after_hours: int = 48
    #: Channels whose first-response target is in business days (reviews), unless ``targets`` names the channel.
    target_days: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TARGET_DAYS))
    #: A review at or above ``review_answer_below`` stars wants a thank-you, within ``thank_you_target_days``.
    review_answer_below: int = 4
    thank_reviews: bool = True
    thank_you_target_days: float = 3

    def policy(self, channel: str) -> Policy:
        return self.policies.get(channel, DEFAULT_POLICIES.get(channel, "needs_answer"))

    def target_minutes(self, channel: str, priority: str, follow_up: bool, thank_you: bool = False) -> int:
        """The first-response target in business minutes: per channel and priority; for review channels a number
        of business days (a day being the business hours' usual open day), longer for a thank-you."""
        if follow_up:
            return self.next_response_minutes
        if channel in self.target_days and channel not in self.targets:
            days = self.thank_you_target_days if thank_you else self.target_days[channel]
            return max(1, round(days * self.business.day_minutes()))
        by_priority = self.targets.get(channel) or self.targets.get("*") or {}
        return by_priority.get(priority, (self.targets.get("*") or {}).get(priority, 60))

    def team_for(self, text: str, topics: Iterable[str], language: str | None) -> str:
        topics = list(topics)
        return next((t.name for t in self.teams if t.matches(text, topics, language)), self.default_team)


def decide(settings: TriageSettings, conversation: Conversation, follow_up: bool, vip: bool = False) -> Conversation:
    """The conversation settled: priority, team, deadlines, and ``ignored`` when its channel needs no answer.

    The clock starts at the platform's time, or when we first saw it if the platform's clock is ahead of
    ours (clock skew must never give a mention negative age). A follow-up after our answer is ``reopened``
    and runs on the next-response target. A mention first heard more than ``late_after_hours`` after it was
    written stays to answer, with no deadline and so no SLA alerts.
    """
    m = conversation.mention
    sentiment = m.tags.get("sentiment")
    vip = vip or m.author.handle.lower() in settings.vip_handles
    rating = m.metrics.get("rating")
    policy = settings.policy(m.platform)
    low_stars = policy == "stars" and rating is not None and rating < settings.review_answer_below
    thank_you = policy == "stars" and rating is not None and not low_stars
    priority = priority_of("negative" if low_stars else sentiment, m.author.reach, vip, settings.high_reach)
    target = settings.target_minutes(m.platform, priority, follow_up, thank_you)
    start = min(m.published_at, conversation.seen_at) if conversation.seen_at else m.published_at
    wanted, why_not = needs_answer(
        policy, m.tags.get("needs_answer"), sentiment, rating, settings.review_answer_below, settings.thank_reviews
    )
    state = conversation.state
    if not wanted:
        state = "ignored"
    elif follow_up and state == "new":
        state = "reopened"
    heard_late = (
        settings.late_after_hours > 0
        and conversation.seen_at is not None
        and conversation.seen_at - m.published_at > timedelta(hours=settings.late_after_hours)
    )
    reason = "" if wanted else f"no answer needed on {m.platform}: {why_not}"
    if heard_late and wanted:  # still to answer, but no deadline it could ever have met: no SLA alerts
        days = (conversation.seen_at - m.published_at).days if conversation.seen_at else 0
        reason = f"heard {days} days after it was written: no SLA clock (triage.late_after_hours)"
    return replace(
        conversation,
        priority=priority,
        team=settings.team_for(m.text, m.tags.get("topics") or (), m.tags.get("language")),
        target_minutes=target,
        warn_at=None if heard_late else settings.business.add(start, timedelta(minutes=target * settings.warn_share)),
        due_at=None if heard_late else settings.business.add(start, timedelta(minutes=target)),
        state=state,
        state_reason=reason,
    )


# -- assignment ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Assignment:
    """Give ``key`` to ``member`` ("" puts it back in the queue), and why."""

    key: str
    member: str
    reason: str
    breach: bool = False


def available(settings: TriageSettings, away: Iterable[str], now: datetime) -> set[str]:
    """The members who may take items now: not away (config and run-time status merged) and on shift."""
    gone = set(away)
    return {m.name for m in settings.members if m.name not in gone and m.hours.is_open(now)}


def can_serve(member: Member, item: Conversation, spoken: set[str]) -> bool:
    """The member has the item's team skill and speaks its language (a language no member speaks bars nobody)."""
    language = item.mention.tags.get("language")
    return (not item.team or item.team in member.skills) and (language not in spoken or language in member.languages)


def takers(
    settings: TriageSettings,
    loads: Mapping[str, int],
    away: Iterable[str],
    breached: Sequence[Conversation],
    previous: Mapping[str, str],
    now: datetime,
) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """The members who may take an item in a pass of `assign`, as (name, skills, languages), so that storage reads
    only the unassigned items one of them could take (#23: not every open conversation).

    A member takes an item only while available and below capacity. One at capacity gets room in the pass only when
    a breach of theirs (``breached``: open, past due, not handed on, held by an available member) is handed on to
    someone who has room or may get it (``previous``: author key -> who answered them last): so, from those with
    room, such owners are added until none is left."""
    members = {m.name: m for m in settings.members}
    room = {n for n in available(settings, away, now) if loads.get(n, 0) < members[n].capacity}
    spoken = {lang for m in settings.members for lang in m.languages}
    grown = True
    while grown:
        grown = False
        for item in breached:
            owner = item.assignee
            if owner in room:
                continue
            before = previous.get(item.mention.author.key, "")
            if (before and before != owner and before in room) or any(
                n != owner and can_serve(members[n], item, spoken) for n in room
            ):
                room.add(owner)
                grown = True
    return [(n, members[n].skills, members[n].languages) for n in sorted(room)]


def assign(
    settings: TriageSettings,
    items: Sequence[Conversation],
    loads: Mapping[str, int],
    returning: Mapping[str, str],
    away: Iterable[str],
    now: datetime,
) -> list[Assignment]:
    """Who takes each open item now (``away``: the members away now, config and run-time status merged).

    Items are taken most urgent first (earliest deadline, then oldest). A returning author goes to the member
    who answered them last (``returning``: author key -> member) when that member is available; otherwise to
    the least-loaded available member with the team's skill and the mention's language. Available means: not
    away, on shift now, below capacity. Items whose owner went away or off shift are handed on (or put back
    in the queue); a breached item is handed on once to someone else if anyone can take it.
    """
    away = set(away)
    members = {m.name: m for m in settings.members}
    free = available(settings, away, now)
    spoken = {lang for m in settings.members for lang in m.languages}
    load = defaultdict(int, loads)
    decisions: list[Assignment] = []

    def pick(item: Conversation, exclude: str) -> tuple[str, str]:
        author = item.mention.author.key
        previous = returning.get(author, "")
        if previous and previous != exclude and previous in free and load[previous] < members[previous].capacity:
            return previous, "returning author: answered them last"
        fit = [
            members[n]
            for n in free
            if n != exclude and load[n] < members[n].capacity and can_serve(members[n], item, spoken)
        ]
        if not fit:
            return "", ""
        chosen = min(fit, key=lambda m: (load[m.name], m.name))
        return chosen.name, f"least loaded with {item.team or 'any'} skill ({load[chosen.name]} open)"

    def move(item: Conversation, to: str, reason: str, breach: bool = False) -> None:
        if item.assignee:
            load[item.assignee] -= 1
        if to:
            load[to] += 1
        decisions.append(Assignment(item.mention.key, to, reason, breach))

    ordered = sorted(items, key=lambda c: (c.due_at or c.mention.published_at, c.mention.published_at, c.mention.key))
    for item in ordered:
        owner = item.assignee
        if not owner:
            chosen, reason = pick(item, exclude="")
            if chosen:
                move(item, chosen, reason)
        elif owner not in free or owner not in members:
            chosen, reason = pick(item, exclude=owner)
            why = "away" if owner in away else "off shift" if owner in members else "no longer a member"
            move(item, chosen, f"{owner} is {why}; " + (reason or "back in the queue"))
        elif item.due_at is not None and item.due_at <= now and not item.breach_handed_on:
            chosen, reason = pick(item, exclude=owner)
            move(item, chosen or owner, f"SLA breached with {owner}; " + (reason or "nobody else free, kept"), True)
    return decisions


# -- figures -----------------------------------------------------------------------------------------

SENTIMENT_VALUE = {"negative": -1, "neutral": 0, "positive": 1}


def percentile(values: Sequence[float], share: float) -> float | None:
    """Linear-interpolated percentile (``share`` in 0..1); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * share
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Figures:
    """First-response figures of one group (a channel, a team, a member, or everything)."""

    needing_answer: int = 0
    answered: int = 0
    open: int = 0
    median_seconds: float | None = None
    p90_seconds: float | None = None
    within_sla: int = 0
    breached_open: int = 0
    satisfaction: float | None = None  # mean sentiment change of follow-ups after our answer, -2..+2
    follow_ups: int = 0

    @property
    def compliance(self) -> float | None:
        judged = self.answered + self.breached_open
        return self.within_sla / judged if judged else None

    @property
    def unanswered_share(self) -> float | None:
        return self.open / self.needing_answer if self.needing_answer else None


def figures(conversations: Sequence[Conversation], now: datetime) -> dict[str, dict[str, Figures]]:
    """Figures by ``channel``, ``team`` and ``member``, plus ``all``; mentions needing no answer do not count.

    Implicit satisfaction: for each follow-up by an author we answered, its sentiment minus the sentiment of
    the mention we answered (negative -1, neutral 0, positive +1), averaged, and credited to the channel, team
    and member of that answer; positive means people feel better after talking to us.
    """
    by_key = {c.mention.key: c for c in conversations}
    groups: dict[tuple[str, str], list[Conversation]] = defaultdict(list)
    changes: dict[tuple[str, str], list[int]] = defaultdict(list)
    for c in conversations:
        before = by_key.get(c.follows_key) if c.follows_key else None
        if before is not None and {c.mention.tags.get("sentiment"), before.mention.tags.get("sentiment")} <= set(
            SENTIMENT_VALUE
        ):
            change = SENTIMENT_VALUE[c.mention.tags["sentiment"]] - SENTIMENT_VALUE[before.mention.tags["sentiment"]]
            for group in _groups(before):
                changes[group].append(change)
        if c.state != "ignored":
            for group in _groups(c):
                groups[group].append(c)
    out: dict[str, dict[str, Figures]] = defaultdict(dict)
    for (dimension, value), members in sorted(groups.items()):
        answered = [c for c in members if c.state == "answered" and c.response_seconds is not None]
        seconds = [float(c.response_seconds or 0) for c in answered]
        open_items = [c for c in members if c.is_open]
        moves = changes.get((dimension, value), [])
        out[dimension][value] = Figures(
            needing_answer=len(members),
            answered=len(answered),
            open=len(open_items),
            median_seconds=statistics.median(seconds) if seconds else None,
            p90_seconds=percentile(seconds, 0.9),
            within_sla=sum(1 for c in answered if c.due_at is None or (c.answered_at or now) <= c.due_at),
            breached_open=sum(1 for c in open_items if c.due_at is not None and c.due_at <= now),
            satisfaction=statistics.fmean(moves) if moves else None,
            follow_ups=len(moves),
        )
    return dict(out)


def _groups(c: Conversation) -> tuple[tuple[str, str], ...]:
    return (
        ("all", "all"),
        ("channel", c.mention.platform),
        ("team", c.team or "-"),
        ("member", c.answered_by or c.assignee or "-"),
    )
