"""One TOML file, validated at start-up into typed settings; the only code that reads the environment.

Secrets are references, never values: ``token = { env = "X_BEARER_TOKEN" }`` or
``token = { file = "/run/secrets/x_bearer_token" }``; they become `SecretStr` and print masked.
Environment variables override keys for container use: ``PASSAPAROLA_STORAGE__PATH=/data/p.db`` sets
``[storage] path``, ``PASSAPAROLA_SOURCES__DEMO__EVERY_SECONDS=60`` sets ``every_seconds`` of the source
named ``demo``; a variable the file references as a secret (``{ env = "PASSAPAROLA_INTAKE_TOKEN" }``) is that
secret, never an override. ``[[rules]]`` tables are merged over the default rules: a table of a type tunes that
type's default (``enabled = false`` switches it off), the other defaults keep running.
Every problem is reported as one line naming the key and what to do.
"""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, ValidationError

from listener import SOURCES
from listener.model import PLATFORMS
from notifiers.apprise_notifier import ALWAYS, AppriseNotifier, parse_problems, privacy_url
from notifiers.policy import RoutePolicy, parse_interval
from rules import EVALUATORS
from rules.advocates import (
    DEFAULT_SELF_PROMOTION,
    DEFAULT_TIERS,
    TIERS,
    AdvocateSettings,
    OfferTemplate,
    offer_problems,
)
from rules.analysis import AnalysisSettings as PipelineSettings
from rules.analysis import unknown_languages
from rules.engagement import (
    DEFAULT_APOLOGIES,
    DEFAULT_GREETINGS,
    DEFAULT_HOLDING,
    DEFAULT_LIMITS,
    REQUIREMENTS,
    EngagementRules,
)
from rules.sentiment import MODES
from rules.triage import POLICIES, PRIORITIES, Hours, Member, Team, TriageSettings, parse_weekly

ENV_PREFIX = "PASSAPAROLA_"
CONFIG_ENV = "PASSAPAROLA_CONFIG"
MASK = "**********"
DEFAULT_RULES: tuple[dict[str, Any], ...] = (
    {"type": "unanswered"},
    {"type": "source_failing"},
    {"type": "volume_spike"},
    {"type": "negative_mention"},
    {"type": "negative_spike"},
    {"type": "source_silent"},
    {"type": "daily_digest"},
)
NOTIFIER_TYPES = ("log", "apprise")


class ConfigError(Exception):
    """The configuration cannot be used. ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StorageSettings(Section):
    path: str = "passaparola.db"
    busy_timeout_seconds: float = Field(10.0, gt=0, le=600)
    retention_days: int = Field(0, ge=0, description="delete mentions older than this; 0 keeps them")


class DaemonSettings(Section):
    rules_every_seconds: int = Field(60, ge=1, le=3600)
    outbox_every_seconds: int = Field(30, ge=1, le=3600)
    inbound_every_seconds: int = Field(5, ge=1, le=3600, description="how often queued webhook bodies are ingested")
    jitter: float = Field(0.1, ge=0, le=1, description="share of each interval added at random")
    advocates_every_seconds: int = Field(900, ge=10, le=86_400, description="how often advocates are re-scored")
    maintenance_every_seconds: int = Field(3600, ge=60, le=604_800, description="retention, WAL checkpoint, optimize")
    retry_base_seconds: int = Field(60, ge=1)
    retry_max_seconds: int = Field(900, ge=1)
    ops_route: str = Field("ops", description="who hears that the daemon itself is in trouble (a full disk)")


class PolicySettings(Section):
    """Noise control for one route: quiet hours on its wall clock, cooldowns per alert kind, a rate cap."""

    timezone: str = "UTC"
    quiet_hours: list[str] = Field(default_factory=list, description='daily intervals, e.g. ["22:00-07:00"]')
    cooldown_minutes: dict[str, int] = Field(default_factory=dict, description='kind (or "*") -> minutes')
    max_per_hour: int = Field(0, ge=0, description="more than this in an hour are folded into one summary; 0: no cap")
    critical: list[str] = Field(default_factory=list, description="kinds that pass quiet hours and are never held")

    def problems(self, where: str) -> list[str]:
        found = []
        if _zone(self.timezone) is None:
            found.append(f'{where}.timezone: unknown time zone {self.timezone!r}; use an IANA name like "Europe/Rome"')
        for text in self.quiet_hours:
            if parse_interval(text) is None:
                found.append(f'{where}.quiet_hours: {text!r} is not an interval; write "22:00-07:00"')
        for kind, minutes in self.cooldown_minutes.items():
            if minutes < 0:
                found.append(f"{where}.cooldown_minutes.{kind}: {minutes} is negative; give minutes >= 0")
        return found

    def build(self) -> RoutePolicy:
        return RoutePolicy(
            zone=_zone(self.timezone) or ZoneInfo("UTC"),
            quiet=tuple(i for t in self.quiet_hours if (i := parse_interval(t)) is not None),
            cooldowns=dict(self.cooldown_minutes),
            max_per_hour=self.max_per_hour,
            critical_kinds=frozenset(self.critical),
        )


class NotifySettings(Section):
    type: str = "log"
    alerts_file: str = ""
    routes: dict[str, list[SecretStr | str]] = Field(default_factory=dict)
    config_file: str = ""
    timeout_seconds: float = Field(30.0, gt=0, le=300)
    policies: dict[str, PolicySettings] = Field(default_factory=dict, description="route -> noise control")

    def route_policies(self) -> dict[str, RoutePolicy]:
        return {route: policy.build() for route, policy in self.policies.items()}

    def route_urls(self) -> dict[str, list[str]]:
        """The routes with their URLs revealed: only for building the notifier."""
        return {
            route: [u.get_secret_value() if isinstance(u, SecretStr) else u for u in urls]
            for route, urls in self.routes.items()
        }


ROLES = ("agent", "supervisor", "admin")


class UserSettings(Section):
    """A person who logs in to the dashboard; ``password_hash`` comes from `passaparola hash-password`."""

    name: str = Field(min_length=1)
    role: str = "agent"
    password_hash: SecretStr
    member: str = Field("", description="their name in [[triage.members]] (default: the same name)")


class TokenSettings(Section):
    """An API token (``Authorization: Bearer ...``) with the same roles as people."""

    name: str = Field(min_length=1)
    role: str = "agent"
    token: SecretStr


class WebSettings(Section):
    """The web app: dashboard, JSON API, webhooks, /healthz and /metrics, beside the loop in `run`."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    intake_token: SecretStr | None = Field(None, description="bearer token callers of POST /intake send")
    max_body_bytes: int = Field(65_536, ge=1024, le=10_000_000)
    heartbeat_max_age_seconds: int = Field(120, ge=5)
    language: str = Field("it", description="the dashboard's default language: it or en (each user may switch)")
    session_secret: SecretStr | None = Field(None, description="signs session cookies; unset: sessions end at restart")
    session_hours: int = Field(12, ge=1, le=24 * 30)
    secure_cookies: bool = Field(False, description="send cookies over HTTPS only (behind a TLS proxy)")
    session_idle_minutes: int = Field(0, ge=0, description="end a session unused this long; 0: only session_hours")
    login_delay_after: int = Field(3, ge=1, description="failed log-ins of one account before each try waits 2^n s")
    login_lock_after: int = Field(10, ge=2, description="failed log-ins of one account that lock it")
    login_address_lock_after: int = Field(30, ge=2, description="failed log-ins from one address that lock it")
    login_lock_minutes: int = Field(15, ge=1, le=24 * 60, description="how long a lock lasts (and failures count)")
    users: list[UserSettings] = Field(default_factory=list)
    tokens: list[TokenSettings] = Field(default_factory=list)

    def problems(self, members: Sequence[str]) -> list[str]:
        found: list[str] = []
        if self.intake_token is not None and len(self.intake_token.get_secret_value()) < 16:
            found.append("web.intake_token: shorter than 16 characters; use a long random token")
        if self.language not in ("it", "en"):
            found.append(f"web.language: {self.language!r} is not offered; use it or en")
        if self.session_secret is not None and len(self.session_secret.get_secret_value()) < 32:
            found.append("web.session_secret: shorter than 32 characters; use a long random secret")
        if self.login_delay_after >= self.login_lock_after:
            found.append("web.login_delay_after: not below web.login_lock_after; the delay must come before the lock")
        names: set[str] = set()
        for i, user in enumerate(self.users):
            where = f"web.users[{i}]"
            if user.role not in ROLES:
                found.append(f"{where}.role: {user.role!r} is not a role; use one of {', '.join(ROLES)}")
            if not user.password_hash.get_secret_value().startswith("$argon2"):
                found.append(
                    f"{where}.password_hash: not an argon2 hash; make one with `passaparola hash-password` "
                    "(never put the password itself in the config)"
                )
            if user.member and user.member not in members:
                found.append(f"{where}.member: no member {user.member!r} in [[triage.members]]")
            if user.name in names:
                found.append(f"{where}.name: {user.name!r} is used twice")
            names.add(user.name)
        for i, token in enumerate(self.tokens):
            where = f"web.tokens[{i}]"
            if token.role not in ROLES:
                found.append(f"{where}.role: {token.role!r} is not a role; use one of {', '.join(ROLES)}")
            if len(token.token.get_secret_value()) < 24:
                found.append(f"{where}.token: shorter than 24 characters; use a long random token")
        return found


class BrandSettings(Section):
    """How to tell a mention of the brand from other senses of its name."""

    terms: list[str] = Field(default_factory=list, description="names and hashtags of the brand")
    exclusions: list[str] = Field(default_factory=list, description="phrases that mean it is not about us")
    handles: list[str] = Field(default_factory=list, description="the brand's own accounts, without @")


class AnalysisSettings(Section):
    """The spaCy pipeline that reads each mention: language, sentiment, needs-answer, topics, brand match."""

    enabled: bool = True
    mode: str = Field("accurate", description="accurate (default) or fast (bulk imports, backfills)")
    languages: list[str] = Field(default_factory=lambda: ["it", "en"], min_length=1)
    threads: int = Field(1, ge=1, le=64)
    model_dir: str = Field("", description="a folder with your own retrained sentiment-<mode>.npz")
    brand: BrandSettings = Field(default_factory=BrandSettings)
    topics: dict[str, list[str]] = Field(default_factory=dict, description="topic name -> terms")
    answer_praise_to_handle: bool = Field(
        False, description="praise and thanks addressed to the brand's handle need an answer too"
    )
    retrain_every_days: int = Field(
        0, ge=0, le=365, description="retrain on the team's corrections this often, swapping only if not worse; 0: off"
    )

    def pipeline(self, mode: str | None = None, model_dir: Path | None = None) -> PipelineSettings:
        """The pipeline's settings; ``model_dir`` (the retrained model that is live) wins over the configured one."""
        return PipelineSettings(
            mode=(mode or self.mode),  # type: ignore[arg-type]
            languages=tuple(self.languages),
            brand_terms=tuple(self.brand.terms),
            brand_exclusions=tuple(self.brand.exclusions),
            brand_handles=tuple(h.lstrip("@") for h in self.brand.handles),
            topics={name: tuple(terms) for name, terms in self.topics.items()},
            threads=self.threads,
            model_dir=model_dir or (Path(self.model_dir) if self.model_dir else None),
            answer_praise_to_handle=self.answer_praise_to_handle,
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
            if _zone(zone) is None:
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
        for channel in [*self.channel_targets, *self.answer_policy]:
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
        zone = _zone(self.timezone) or ZoneInfo("UTC")
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
                else Hours(_zone(m.timezone or self.timezone) or zone, parse_weekly(m.shifts, "")[0]),
                capacity=m.capacity,
                away=m.away,
                signature=m.signature or m.name,
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
        )


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


class EngagementConfig(Section):
    """The house rules `lint-reply` checks drafts against, and the holding replies."""

    banned: list[str] = Field(default_factory=list)
    discouraged: dict[str, str] = Field(default_factory=dict, description="term -> preferred wording")
    greetings: list[str] = Field(default_factory=lambda: list(DEFAULT_GREETINGS))
    apologies: list[str] = Field(default_factory=lambda: list(DEFAULT_APOLOGIES))
    require: list[str] = Field(default_factory=lambda: list(REQUIREMENTS))
    reference_pattern: str = r"\b[A-Z]{2,6}-?\d{4,}\b"
    reference_teams: list[str] = Field(default_factory=lambda: ["billing"])
    max_length: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_LIMITS))
    holding: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_HOLDING))

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


class ScheduleSettings(Section):
    """The keys every ``[[sources]]`` table has besides its type's own options."""

    type: str
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    every_seconds: int = Field(300, ge=10, le=86_400)
    enabled: bool = True


@dataclass(frozen=True)
class SourceSpec:
    """A configured source with its schedule."""

    name: str
    type: str
    every_seconds: int
    source: Any


@dataclass(frozen=True)
class Settings:
    storage: StorageSettings
    daemon: DaemonSettings
    notify: NotifySettings
    analysis: AnalysisSettings
    sources: tuple[SourceSpec, ...]
    rules: tuple[Any, ...]
    web: WebSettings = field(default_factory=lambda: WebSettings.model_validate({}))
    triage: TriageSettings = field(default_factory=TriageSettings)
    engagement: EngagementRules = field(default_factory=EngagementRules)
    triage_config: TriageConfig = field(default_factory=lambda: TriageConfig.model_validate({}))
    engagement_config: EngagementConfig = field(default_factory=lambda: EngagementConfig.model_validate({}))
    advocates: AdvocateSettings = field(default_factory=AdvocateSettings)
    advocates_config: AdvocatesConfig = field(default_factory=lambda: AdvocatesConfig.model_validate({}))
    origin: str = "defaults"
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def effective(self) -> dict[str, Any]:
        """The settings as plain data with every secret masked: what `check` prints."""
        return _masked(
            {
                "storage": self.storage.model_dump(),
                "daemon": self.daemon.model_dump(),
                "analysis": self.analysis.model_dump(),
                "web": self.web.model_dump(),
                "triage": self.triage_config.model_dump(mode="json"),
                "engagement": self.engagement_config.model_dump(),
                "advocates": self.advocates_config.model_dump(),
                "notify": {
                    **self.notify.model_dump(),
                    "routes": {r: [privacy_url(u) for u in urls] for r, urls in self.notify.route_urls().items()},
                },
                "sources": [
                    {"type": s.type, "name": s.name, "every_seconds": s.every_seconds, **_fields(s.source)}
                    for s in self.sources
                ],
                "rules": [{"type": r.kind, **_fields(r)} for r in self.rules],
            }
        )


def _fields(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj) if f.name != "name"} if is_dataclass(obj) else {}


def _masked(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(v) for v in value]
    return value


# -- reading --------------------------------------------------------------------------------------


def config_path(explicit: str | None) -> Path | None:
    chosen = explicit or os.environ.get(CONFIG_ENV)
    return Path(chosen) if chosen else None


def load(path: Path | None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read, override from the environment, resolve secrets, validate; raise `ConfigError` listing all problems."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([f"{path}: no such file; create one with `passaparola init {path}`"]) from None
        except OSError as error:
            raise ConfigError([f"{path}: cannot read it ({error.strerror}); check the path and permissions"]) from None
        except UnicodeDecodeError:
            raise ConfigError([f"{path}: not UTF-8 text; save the file as UTF-8"]) from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError([f"{path}: not valid TOML ({error}); fix the syntax there"]) from None
    problems: list[str] = []
    _apply_env_overrides(data, environ, problems, secret_names=frozenset(_secret_names(data)))
    data = _resolve_secrets(data, "", environ, problems)
    settings = _validate(data, problems, origin=str(path) if path else "defaults and environment")
    if problems:
        raise ConfigError(problems)
    assert settings is not None
    return settings


def _parse_env_value(text: str) -> Any:
    """An environment value is read as a TOML value when it is one (60, true, ["a"]), else as text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _secret_names(value: Any) -> set[str]:
    """The variables the file references as ``{ env = NAME }``: secrets, whatever prefix they carry."""
    if isinstance(value, dict):
        if set(value) == {"env"}:
            return {str(value["env"])}
        return {name for v in value.values() for name in _secret_names(v)}
    if isinstance(value, list):
        return {name for v in value for name in _secret_names(v)}
    return set()


def _apply_env_overrides(
    data: dict[str, Any], environ: Mapping[str, str], problems: list[str], secret_names: frozenset[str] = frozenset()
) -> None:
    """Set keys from ``PASSAPAROLA_*`` variables, skipping those the file uses as secrets (e.g. an intake token)."""
    default_types = {str(t["type"]) for t in DEFAULT_RULES}
    for name, text in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV or name in secret_names:
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        value = _parse_env_value(text)
        if parts[0] in ("sources", "rules") and len(parts) == 3:
            tables = data.setdefault(parts[0], [])
            if not isinstance(tables, list):
                continue  # `_tables` names the malformed section
            ident = "name" if parts[0] == "sources" else "type"
            match = [t for t in tables if isinstance(t, dict) and str(t.get(ident, "")).lower() == parts[1]]
            if not match and parts[0] == "rules" and parts[1] in default_types:
                tables.append({"type": parts[1]})  # tunes a default rule the file does not list
                match = tables[-1:]
            if not match:
                problems.append(f"{name}: no [[{parts[0]}]] with {ident} {parts[1]!r}; fix the variable's name")
                continue
            match[0][parts[2]] = value
        elif len(parts) == 2 and parts[0] not in ("sources", "rules"):
            data.setdefault(parts[0], {})[parts[1]] = value
        else:
            problems.append(
                f"{name}: cannot tell which key it sets; use {ENV_PREFIX}SECTION__KEY or "
                f'{ENV_PREFIX}SOURCES__NAME__KEY (a secret the file references as {{ env = "{name}" }} is no override)'
            )


def _resolve_secrets(value: Any, where: str, environ: Mapping[str, str], problems: list[str]) -> Any:
    """Replace every ``{ env = ... }`` / ``{ file = ... }`` table by a `SecretStr`."""
    if isinstance(value, dict):
        if set(value) in ({"env"}, {"file"}):
            if "env" in value:
                secret = environ.get(str(value["env"]))
                if not secret:
                    problems.append(
                        f"{where}: environment variable {value['env']} is not set; export it, "
                        'or reference a secrets file with { file = "..." }'
                    )
                    return SecretStr("")
                return SecretStr(secret)
            try:
                return SecretStr(Path(str(value["file"])).read_text(encoding="utf-8").strip())
            except OSError as error:
                problems.append(
                    f"{where}: secrets file {value['file']} cannot be read ({error.strerror}); mount it or fix the path"
                )
                return SecretStr("")
        return {k: _resolve_secrets(v, f"{where}.{k}" if where else k, environ, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_secrets(v, f"{where}[{i}]", environ, problems) for i, v in enumerate(value)]
    return value


def _explain(prefix: str, error: Mapping[str, Any], known: list[str]) -> str:
    location = ".".join(str(part) for part in error["loc"])
    key = f"{prefix}.{location}" if prefix and location else prefix or location
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key; remove it or fix its spelling (known keys: {', '.join(known)})"
    if error["type"] == "missing":
        return f"{key}: required; add it"
    if error["type"] == "value_error":  # raised by a source's own checks: the message says what to do
        return f"{key}: {error['msg'].removeprefix('Value error, ')}"
    shown = error.get("input")
    shown = MASK if isinstance(shown, SecretStr) else shown
    return f"{key}: {error['msg'].lower()} (got {shown!r}); fix the value"


def _section(model: type[Section], data: dict[str, Any], name: str, problems: list[str]) -> Any:
    try:
        return model.model_validate(data.get(name, {}))
    except ValidationError as error:
        problems.extend(_explain(name, e, list(model.model_fields)) for e in error.errors())
        return model.model_construct()


def _build(
    registry: Mapping[str, type], table: dict[str, Any], where: str, problems: list[str], extra_keys: tuple[str, ...]
) -> Any:
    kind = str(table.get("type", ""))
    if kind not in registry:
        problems.append(f"{where}.type: unknown type {kind!r}; use one of {', '.join(sorted(registry))}")
        return None
    cls = registry[kind]
    options = {k: v for k, v in table.items() if k not in ("type", *extra_keys)}
    known = [f.name for f in fields(cls)] + list(extra_keys)
    unknown = [k for k in options if k not in known]
    problems.extend(
        f"{where}.{k}: unknown key for type {kind!r}; remove it or fix its spelling (known keys: {', '.join(known)})"
        for k in unknown
    )
    try:
        built: Any = TypeAdapter(cls).validate_python(options)
    except ValidationError as error:
        problems.extend(_explain(where, e, known) for e in error.errors())
        return None
    return None if unknown else built


def _validate(data: dict[str, Any], problems: list[str], origin: str) -> Settings | None:
    known_sections = (
        "storage",
        "daemon",
        "notify",
        "analysis",
        "web",
        "triage",
        "engagement",
        "advocates",
        "sources",
        "rules",
    )
    for key in data:
        if key not in known_sections:
            problems.append(
                f"{key}: unknown section; remove it or fix its spelling (known: {', '.join(known_sections)})"
            )
    storage = _section(StorageSettings, data, "storage", problems)
    daemon = _section(DaemonSettings, data, "daemon", problems)
    notify = _section(NotifySettings, data, "notify", problems)
    analysis = _section(AnalysisSettings, data, "analysis", problems)
    web = _section(WebSettings, data, "web", problems)
    triage = _section(TriageConfig, data, "triage", problems)
    problems.extend(web.problems([m.name for m in triage.members]))
    engagement = _section(EngagementConfig, data, "engagement", problems)
    advocates = _section(AdvocatesConfig, data, "advocates", problems)
    problems.extend(triage.problems())
    problems.extend(engagement.problems())
    problems.extend(advocates.problems())
    if analysis.mode not in MODES:
        problems.append(f"analysis.mode: unknown mode {analysis.mode!r}; use one of {', '.join(MODES)}")
    if bad := unknown_languages(analysis.languages):
        problems.append(
            f"analysis.languages: {', '.join(map(repr, bad))} not a two-letter ISO 639-1 code the language "
            'identifier knows; use e.g. "it", "en"'
        )
    needed = (
        ("sentiment-fast.npz", "sentiment-accurate.npz") if analysis.mode == "accurate" else ("sentiment-fast.npz",)
    )
    missing = [name for name in needed if not (Path(analysis.model_dir) / name).is_file()] if analysis.model_dir else []
    if missing:  # the accurate mode reads with the fast heads first
        problems.append(
            f"analysis.model_dir: no {' or '.join(missing)} in {analysis.model_dir}; "
            "train them with `passaparola sentiment train --out DIR`, or remove the key to use the shipped model"
        )
    if notify.type not in NOTIFIER_TYPES:
        problems.append(f"notify.type: unknown notifier {notify.type!r}; use one of {', '.join(NOTIFIER_TYPES)}")
    known_routes = _check_routes(notify, problems) if notify.type == "apprise" else None
    for route, policy in notify.policies.items():
        problems.extend(policy.problems(f"notify.policies.{route}"))
        if known_routes is not None and ALWAYS not in known_routes and route not in known_routes:
            problems.append(f"notify.policies.{route}: no notify route {route!r}; add its URLs or fix the name")
    if daemon.retry_max_seconds < daemon.retry_base_seconds:
        problems.append("daemon.retry_max_seconds: smaller than retry_base_seconds; raise it")

    sources: list[SourceSpec] = []
    seen: set[str] = set()
    for index, table in enumerate(_tables(data, "sources", problems)):
        where = f"sources[{index}]"
        schedule_keys = tuple(ScheduleSettings.model_fields)
        try:
            schedule = ScheduleSettings.model_validate(
                {k: v for k, v in table.items() if k in schedule_keys} | {"name": table.get("name", table.get("type"))}
            )
        except ValidationError as error:
            problems.extend(_explain(where, e, list(schedule_keys)) for e in error.errors() if e["loc"] != ("type",))
            if any(e["loc"] == ("type",) for e in error.errors()):
                problems.append(f"{where}.type: required; use one of {', '.join(sorted(SOURCES))}")
            continue
        if schedule.name in seen:
            problems.append(f"{where}.name: {schedule.name!r} is used twice; give each source its own name")
        seen.add(schedule.name)
        source = _build(
            SOURCES, {**table, "name": schedule.name}, where, problems, extra_keys=("every_seconds", "enabled")
        )
        if source is not None and schedule.enabled:
            sources.append(SourceSpec(schedule.name, schedule.type, schedule.every_seconds, source))

    built = []
    for where, table in merged_rules(_tables(data, "rules", problems)):
        enabled = table.get("enabled", True)
        if not isinstance(enabled, bool):
            problems.append(
                f"{where}.enabled: {enabled!r} is not true or false; write enabled = false to switch it off"
            )
            continue
        if (rule := _build(EVALUATORS, table, where, problems, ("enabled",))) and enabled:
            built.append((where, rule))
    rules = [rule for _, rule in built]
    cycle_minutes = math.ceil(int(daemon.rules_every_seconds * (1 + daemon.jitter)) / 60)  # as the daemon waits
    for where, rule in built:  # the digest goes out only within grace_minutes of its time: a cycle must fit
        grace = getattr(rule, "grace_minutes", None)
        if grace is not None and grace < cycle_minutes:
            problems.append(
                f"{where}.grace_minutes: {grace} is shorter than a rules cycle (daemon.rules_every_seconds plus "
                f"jitter), so a day's digest could be missed; set grace_minutes = {cycle_minutes} or more in its "
                f'[[rules]] table (type = "{rule.kind}"), or run the rules more often'
            )
    if known_routes is not None and ALWAYS not in known_routes:
        used = [("advocates.route", advocates.route)]
        for where, rule in built:
            used.append((f"{where}.route", getattr(rule, "route", None)))
            used += [(f"{where}.escalation[{i}].route", s.route) for i, s in enumerate(rule_steps(rule))]
        for where, route in used:
            if route not in known_routes:
                problems.append(
                    f"{where}: {route!r} matches no notify route; add "
                    f"[notify.routes] {route} = [...] or tag a URL {route!r} in the apprise file"
                )
    if problems:
        return None
    return Settings(
        storage=storage,
        daemon=daemon,
        notify=notify,
        analysis=analysis,
        sources=tuple(sources),
        rules=tuple(rules),
        web=web,
        triage=triage.build(),
        engagement=engagement.build(),
        triage_config=triage,
        engagement_config=engagement,
        advocates=advocates.build(analysis.brand.handles),
        advocates_config=advocates,
        origin=origin,
        raw=data,
    )


def merged_rules(tables: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """The rule tables to build, each with the name problems use: the defaults, in their order, each replaced by the
    first ``[[rules]]`` table of its type (its keys over the default's), then any further tables as written.

    Tuning one rule must not silently drop the others; ``enabled = false`` is how a default is switched off."""
    merged: dict[str, tuple[str, dict[str, Any]]] = {
        str(t["type"]): (f"rules (default {t['type']})", dict(t)) for t in DEFAULT_RULES
    }
    extra: list[tuple[str, dict[str, Any]]] = []
    replaced: set[str] = set()
    for index, table in enumerate(tables):
        kind = str(table.get("type", ""))
        if kind in merged and kind not in replaced:
            replaced.add(kind)
            merged[kind] = (f"rules[{index}]", {**merged[kind][1], **table})
        else:
            extra.append((f"rules[{index}]", dict(table)))
    return [*merged.values(), *extra]


def rule_steps(rule: Any) -> list[Any]:
    """A rule's escalation ladder (each step has a ``route``), empty for rules without one."""
    return list(getattr(rule, "escalation", []) or [])


def _check_routes(notify: NotifySettings, problems: list[str]) -> set[str]:
    """Parse every apprise URL without sending anything; return the routes that reach someone."""
    urls = notify.route_urls()
    mail = {
        (route, index): line
        for route, listed in urls.items()
        for index, url in enumerate(listed)
        if (line := _mail_problem(url)) is not None
    }
    problems.extend(f"notify.routes.{route}[{index}]: {line}" for (route, index), line in mail.items())
    problems.extend(
        p for p in parse_problems(urls) if not any(p.startswith(f"notify.routes.{r}[{i}]:") for r, i in mail)
    )
    routes = {route for route, urls in notify.routes.items() if urls}
    if notify.config_file:
        try:
            routes |= AppriseNotifier(config_file=notify.config_file).routes()
        except ValueError as error:
            problems.append(f"notify.config_file: {error}; check the path and the YAML")
    if not routes:
        problems.append("notify.routes: no route has a URL; add [notify.routes] with apprise URLs, or a config_file")
    return routes


MAIL_EXAMPLE = "mailtos://user:password@smtp.example.com?from=alerts@example.com&to=care@example.com"


def _mail_problem(url: str) -> str | None:
    """Why apprise refuses an e-mail URL it would take with a sender, in words (never quoting the URL: it holds
    the password). Apprise makes the sender from the login and the server (``bot@10.0.0.1``): with an IP address,
    or no login, that is no e-mail address, and all it says is that it cannot use the URL."""
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in ("mailto", "mailtos") or not rest:
        return None
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return None  # not a URL at all: apprise's own message stands
    if parts.netloc.count("@") > 1:
        return (
            f"the login of this {scheme}:// URL holds an @; write it as %40 "
            f"(user%40example.com:password@smtp.example.com), as in {MAIL_EXAMPLE}"
        )
    if "from" in urllib.parse.parse_qs(parts.query) or not parse_problems({"mail": [url]}):
        return None
    joined = "&" if "?" in url else "?"
    if parse_problems({"mail": [f"{url}{joined}from=alerts%40example.com"]}):
        return None  # something else is wrong: apprise's own message stands
    return (
        f"this {scheme}:// URL has no from= address, and the sender apprise makes from the login and the server "
        "name is not an e-mail address; add the sender as from=alerts@example.com (and the recipients as to=), "
        f"e.g. {MAIL_EXAMPLE}"
    )


def _tables(data: dict[str, Any], key: str, problems: list[str]) -> list[dict[str, Any]]:
    tables = data.get(key, [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        problems.append(f"{key}: must be a list of tables; write each as [[{key}]]")
        return []
    return tables


def dumps(settings: Settings) -> str:
    """The effective configuration as JSON, secrets masked."""
    return json.dumps(settings.effective(), indent=2, ensure_ascii=False, default=str)
