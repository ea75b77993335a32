"""The sections about the people: who answers what and by when (triage), the house rules of replies
(engagement), and how advocates are scored and rewarded. Each checks its values and builds what the rules use."""

from __future__ import annotations

import re
from datetime import date
from zoneinfo import ZoneInfo

from pydantic import Field

from listener.model import PLATFORMS
from passaparola.config.sections import Section, known_zone
from rules.advocates import (
    DEFAULT_SELF_PROMOTION,
    DEFAULT_TIERS,
    TIERS,
    AdvocateSettings,
    OfferTemplate,
    offer_problems,
)
from rules.analysis import unknown_languages
from rules.engagement import (
    DEFAULT_APOLOGIES,
    DEFAULT_GREETINGS,
    DEFAULT_HOLDING,
    DEFAULT_LIMITS,
    DEFAULT_OUT_OF_HOURS,
    REQUIREMENTS,
    EngagementRules,
)
from rules.saved_replies import SavedReply, unknown_variables
from rules.triage import (
    DEFAULT_TARGET_DAYS,
    POLICIES,
    PRIORITIES,
    Hours,
    Member,
    Team,
    TriageSettings,
    parse_weekly,
)


class TeamSettings(Section):
    name: str = Field(min_length=1)
    keywords: list[str] = Field(default_factory=list)
    topics: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)


class MemberSettings(Section):
    name: str = Field(min_length=1)
    skills: list[str] = Field(default_factory=list, description="the teams this person serves")
    languages: list[str] = Field(default_factory=list)
    shifts: dict[str, list[str]] | None = Field(None, description="like business_hours; absent: business hours")
    timezone: str = ""
    capacity: int = Field(10, ge=1, le=10_000)
    away: bool = False
    signature: str = ""
    needs_approval: bool = Field(False, description="their replies wait for a supervisor's approval before sending")


class TriageConfig(Section):
    """Who answers what, by when: business hours, SLA targets, answer policies, teams and members."""

    timezone: str = "UTC"
    business_hours: dict[str, list[str]] = Field(default_factory=dict, description="empty: open 24/7")
    holidays: list[date] = Field(default_factory=list)
    targets: dict[str, int] = Field(default_factory=lambda: dict.fromkeys(PRIORITIES, 60))
    channel_targets: dict[str, dict[str, int]] = Field(default_factory=dict)
    next_response_minutes: int = 60
    warn_share: float = Field(0.75, gt=0, lt=1)
    answer_policy: dict[str, str] = Field(default_factory=dict)
    high_reach: int = Field(10_000, ge=1)
    returning_days: int = Field(30, ge=0)
    late_after_hours: int = Field(
        48, ge=0, description="a mention first heard this long after it was written gets no SLA clock; 0: always one"
    )
    channel_target_days: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_TARGET_DAYS), description="review channels: business days to answer"
    )
    review_answer_below: int = Field(4, ge=1, le=6, description="reviews below these stars need an answer")
    thank_reviews: bool = Field(True, description="reviews at or above review_answer_below get a thank-you")
    thank_you_target_days: float = Field(3, gt=0, description="business days for a thank-you")
    default_team: str = ""
    vip: list[str] = Field(default_factory=list, description="handles whose mentions rise in priority")
    teams: list[TeamSettings] = Field(default_factory=list)
    members: list[MemberSettings] = Field(default_factory=list)

    def problems(self) -> list[str]:
        """What `check` must name: unknown zones, teams and channels, bad shifts, zero targets, bad policies."""
        found: list[str] = []
        zones = [("triage.timezone", self.timezone)] + [
            (f"triage.members[{i}].timezone", m.timezone) for i, m in enumerate(self.members) if m.timezone
        ]
        for where, zone in zones:
            if known_zone(zone) is None:
                found.append(f'{where}: unknown time zone {zone!r}; use an IANA name like "Europe/Rome"')
        found += parse_weekly(self.business_hours, "triage.business_hours")[1]
        for where, table in [("triage.targets", self.targets)] + [
            (f"triage.channel_targets.{c}", t) for c, t in self.channel_targets.items()
        ]:
            for priority, minutes in table.items():
                if priority not in PRIORITIES:
                    found.append(f"{where}.{priority}: unknown priority; use {', '.join(PRIORITIES)}")
                elif minutes <= 0:
                    found.append(f"{where}.{priority}: an SLA of {minutes} minutes cannot be met; give minutes > 0")
        if self.next_response_minutes <= 0:
            found.append("triage.next_response_minutes: must be > 0; give the minutes to answer a follow-up")
        for channel, days in self.channel_target_days.items():
            if days <= 0:
                found.append(f"triage.channel_target_days.{channel}: {days} days cannot be met; give days > 0")
        for channel in [*self.channel_targets, *self.answer_policy, *self.channel_target_days]:
            if channel not in PLATFORMS:
                found.append(f"triage: unknown channel {channel!r}; use one of {', '.join(PLATFORMS)}")
        for channel, policy in self.answer_policy.items():
            if policy not in POLICIES:
                found.append(f"triage.answer_policy.{channel}: {policy!r} unknown; use one of {', '.join(POLICIES)}")
        teams = [t.name for t in self.teams]
        for name in {n for n in teams if teams.count(n) > 1}:
            found.append(f"triage.teams: {name!r} defined twice; give each team one table")
        if self.default_team and self.default_team not in teams:
            found.append(f"triage.default_team: no team {self.default_team!r}; add it to [[triage.teams]]")
        names = [m.name for m in self.members]
        for name in {n for n in names if names.count(n) > 1}:
            found.append(f"triage.members: {name!r} listed twice; give each person one table")
        for index, member in enumerate(self.members):
            where = f"triage.members[{index}] ({member.name})"
            if not member.languages:
                found.append(f'{where}.languages: empty; list the languages this person answers in, e.g. ["it"]')
            for skill in member.skills:
                if skill not in teams:
                    found.append(f"{where}.skills: no team {skill!r}; add it to [[triage.teams]] or fix the name")
            if member.shifts is not None:
                found += parse_weekly(member.shifts, f"{where}.shifts")[1]
        if bad := unknown_languages([lang for m in self.members for lang in m.languages]):
            found.append(f'triage.members: unknown language {", ".join(map(repr, bad))}; use codes like "it"')
        return found

    def build(self) -> TriageSettings:
        """The settings triage decides with (call after `problems` found none)."""
        zone = known_zone(self.timezone) or ZoneInfo("UTC")
        weekly = parse_weekly(self.business_hours, "")[0] if self.business_hours else None
        business = Hours(zone, weekly, frozenset(self.holidays))
        targets = {"*": {**dict.fromkeys(PRIORITIES, 60), **self.targets}}
        targets |= {channel: {**targets["*"], **t} for channel, t in self.channel_targets.items()}
        members = tuple(
            Member(
                name=m.name,
                skills=tuple(m.skills),
                languages=tuple(m.languages),
                hours=business
                if m.shifts is None
                else Hours(known_zone(m.timezone or self.timezone) or zone, parse_weekly(m.shifts, "")[0]),
                capacity=m.capacity,
                away=m.away,
                signature=m.signature or m.name,
                needs_approval=m.needs_approval,
            )
            for m in self.members
        )
        return TriageSettings(
            business=business,
            targets=targets,
            next_response_minutes=self.next_response_minutes,
            warn_share=self.warn_share,
            policies={**TriageSettings().policies, **self.answer_policy},  # type: ignore[dict-item]
            high_reach=self.high_reach,
            teams=tuple(Team(t.name, tuple(t.keywords), tuple(t.topics), tuple(t.languages)) for t in self.teams),
            default_team=self.default_team,
            members=members,
            returning_days=self.returning_days,
            vip_handles=frozenset(h.lstrip("@").lower() for h in self.vip),
            late_after_hours=self.late_after_hours,
            target_days=dict(self.channel_target_days),
            review_answer_below=self.review_answer_below,
            thank_reviews=self.thank_reviews,
            thank_you_target_days=self.thank_you_target_days,
        )


class SavedReplySettings(Section):
    name: str = Field(min_length=1)
    text: str = Field(min_length=1, description="$first_name, $handle, $signature, $median_wait, $reference")
    language: str = Field("", description='"it", "en"...; empty: any language')
    topics: list[str] = Field(default_factory=list)


class EngagementConfig(Section):
    """The house rules every reply is checked against, the holding replies, saved replies, out-of-hours replies."""

    banned: list[str] = Field(default_factory=list)
    discouraged: dict[str, str] = Field(default_factory=dict, description="term -> preferred wording")
    greetings: list[str] = Field(default_factory=lambda: list(DEFAULT_GREETINGS))
    apologies: list[str] = Field(default_factory=lambda: list(DEFAULT_APOLOGIES))
    require: list[str] = Field(default_factory=lambda: list(REQUIREMENTS))
    reference_pattern: str = r"\b[A-Z]{2,6}-?\d{4,}\b"
    reference_teams: list[str] = Field(default_factory=lambda: ["billing"])
    max_length: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_LIMITS))
    holding: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_HOLDING))
    saved: list[SavedReplySettings] = Field(default_factory=list, description="[[engagement.saved]] tables")
    out_of_hours: list[str] = Field(
        default_factory=list, description="channels that acknowledge mentions outside business hours; off by default"
    )
    out_of_hours_text: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_OUT_OF_HOURS), description="$first_name, $back, $signature"
    )
    out_of_hours_signature: str = "Customer care"

    def problems(self) -> list[str]:
        found = [
            f"engagement.require: {r!r} unknown; use some of {', '.join(REQUIREMENTS)}"
            for r in self.require
            if r not in REQUIREMENTS
        ]
        try:
            re.compile(self.reference_pattern)
        except re.error as error:
            found.append(f"engagement.reference_pattern: not a regular expression ({error}); fix it")
        found += [
            f"engagement.max_length.{c}: must be > 0 characters" for c, limit in self.max_length.items() if limit <= 0
        ]
        if not self.holding:
            found.append("engagement.holding: empty; give at least one language's holding reply")
        names = [s.name for s in self.saved]
        for index, saved in enumerate(self.saved):
            where = f"engagement.saved[{index}] ({saved.name})"
            if names.count(saved.name) > 1:
                found.append(f"{where}.name: used twice; give each saved reply its own name")
            if bad := unknown_variables(saved.text):
                found.append(
                    f"{where}.text: unknown variable {', '.join(bad)}; use $first_name, $handle, "
                    "$signature, $median_wait or $reference"
                )
            if saved.language and unknown_languages([saved.language]):
                found.append(f'{where}.language: {saved.language!r} unknown; use a code like "it", or leave it empty')
        for channel in self.out_of_hours:
            if channel not in PLATFORMS:
                found.append(f"engagement.out_of_hours: unknown channel {channel!r}; use one of {', '.join(PLATFORMS)}")
        if self.out_of_hours and not self.out_of_hours_text:
            found.append("engagement.out_of_hours_text: empty; give at least one language's out-of-hours reply")
        return found

    def build(self) -> EngagementRules:
        return EngagementRules(
            banned=tuple(self.banned),
            discouraged=dict(self.discouraged),
            greetings=tuple(self.greetings),
            apologies=tuple(self.apologies),
            require=frozenset(self.require),
            reference_pattern=self.reference_pattern,
            reference_teams=tuple(self.reference_teams),
            max_length=dict(self.max_length),
            holding=dict(self.holding),
            saved=tuple(SavedReply(s.name, s.text, s.language, tuple(s.topics)) for s in self.saved),
            out_of_hours=frozenset(self.out_of_hours),
            out_of_hours_text=dict(self.out_of_hours_text),
            out_of_hours_signature=self.out_of_hours_signature,
        )


class OfferSettings(Section):
    name: str = Field(min_length=1)
    template: str = Field(min_length=1, description="Jinja2, rendered in a sandbox; see OFFER_VARIABLES")
    tiers: list[str] = Field(default_factory=lambda: ["advocate", "vip"])
    channels: list[str] = Field(default_factory=list)


class AdvocatesConfig(Section):
    """How advocates are scored, tiered, alerted and rewarded."""

    half_life_days: float = Field(30.0, gt=0, le=3650)
    window_days: int = Field(180, ge=1, le=3650)
    burst_cap_per_day: int = Field(3, ge=1, le=1000)
    near_duplicate: float = Field(0.8, gt=0, le=1, description="word-set similarity at which texts count once")
    tiers: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_TIERS))
    employees: list[str] = Field(default_factory=list, description="handles whose praise never counts")
    self_promotion: list[str] = Field(default_factory=lambda: list(DEFAULT_SELF_PROMOTION))
    offer_cooldown_days: int = Field(90, ge=0)
    offers: list[OfferSettings] = Field(default_factory=list)
    route: str = "care"
    alert_promotion: bool = True
    alert_mention_tiers: list[str] = Field(default_factory=lambda: ["advocate", "vip"])
    mention_lookback_hours: int = Field(24, ge=1, le=720)

    def problems(self) -> list[str]:
        found = []
        for name in [*self.tiers, *self.alert_mention_tiers, *(t for o in self.offers for t in o.tiers)]:
            if name not in TIERS:
                found.append(f"advocates: unknown tier {name!r}; use {', '.join(TIERS)}")
        thresholds = [self.tiers[t] for t in TIERS if t in self.tiers]
        if thresholds != sorted(thresholds) or len(set(thresholds)) != len(thresholds):
            found.append("advocates.tiers: thresholds must rise from fan to advocate to vip")
        for index, offer in enumerate(self.offers):
            where = f"advocates.offers[{index}] ({offer.name})"
            found += offer_problems(offer.template, f"{where}.template")
            for channel in offer.channels:
                if channel not in PLATFORMS:
                    found.append(f"{where}.channels: unknown channel {channel!r}; use one of {', '.join(PLATFORMS)}")
        return found

    def build(self, brand_handles: list[str]) -> AdvocateSettings:
        return AdvocateSettings(
            half_life_days=self.half_life_days,
            window_days=self.window_days,
            burst_cap_per_day=self.burst_cap_per_day,
            near_duplicate=self.near_duplicate,
            tiers=dict(self.tiers),
            excluded_handles=frozenset(h.lstrip("@").lower() for h in [*brand_handles, *self.employees]),
            self_promotion=tuple(self.self_promotion),
            offers=tuple(OfferTemplate(o.name, o.template, tuple(o.tiers), tuple(o.channels)) for o in self.offers),
            offer_cooldown_days=self.offer_cooldown_days,
            route=self.route,
            alert_promotion=self.alert_promotion,
            alert_mention_tiers=tuple(self.alert_mention_tiers),
            mention_lookback_hours=self.mention_lookback_hours,
        )
