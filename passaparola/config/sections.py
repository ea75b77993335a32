"""The sections that configure the machine itself: storage, daemon, notify, web, analysis, and the schedule keys
every ``[[sources]]`` table has. Each checks its own values; the checks across sections are in `checks`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from notifiers.policy import RoutePolicy, parse_interval
from rules.analysis import AnalysisSettings as PipelineSettings


class Section(BaseModel):
    """A table of the file: unknown keys are refused (a misspelt key must not be silently ignored)."""

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
        if known_zone(self.timezone) is None:
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
            zone=known_zone(self.timezone) or ZoneInfo("UTC"),
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


class ScheduleSettings(Section):
    """The keys every ``[[sources]]`` table has besides its type's own options."""

    type: str
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    every_seconds: int = Field(300, ge=10, le=86_400)
    enabled: bool = True


def known_zone(name: str) -> ZoneInfo | None:
    """The zone of an IANA name, or None: the checks name an unknown zone instead of failing on it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
