"""One TOML file, validated at start-up into typed settings; the only code that reads the environment.

Secrets are references, never values: ``token = { env = "X_BEARER_TOKEN" }`` or
``token = { file = "/run/secrets/x_bearer_token" }``; they become `SecretStr` and print masked.
Environment variables override keys for container use: ``PASSAPAROLA_STORAGE__PATH=/data/p.db`` sets
``[storage] path``, ``PASSAPAROLA_SOURCES__DEMO__EVERY_SECONDS=60`` sets ``every_seconds`` of the source
named ``demo``; a variable the file references as a secret (``{ env = "PASSAPAROLA_INTAKE_TOKEN" }``) is that
secret, never an override. ``[[rules]]`` tables are merged over the default rules: a table of a type tunes that
type's default (``enabled = false`` switches it off), the other defaults keep running.
Every problem is reported as one line naming the key and what to do.

The package is split by concern: `sections` and `care` hold the sections' models, `checks` the validation across
them, `load` reads the file, the environment and the secrets, `settings` is what comes out. Import from here.
"""

from __future__ import annotations

from listener import SOURCES
from passaparola.config.care import (
    AdvocatesConfig,
    EngagementConfig,
    MemberSettings,
    OfferSettings,
    TeamSettings,
    TriageConfig,
)
from passaparola.config.checks import DEFAULT_RULES, MAIL_EXAMPLE, NOTIFIER_TYPES, merged_rules, rule_steps
from passaparola.config.load import CONFIG_ENV, ENV_PREFIX, ConfigError, config_path, load
from passaparola.config.sections import (
    ROLES,
    AnalysisSettings,
    BrandSettings,
    DaemonSettings,
    NotifySettings,
    PolicySettings,
    ScheduleSettings,
    Section,
    StorageSettings,
    TokenSettings,
    UserSettings,
    WebSettings,
)
from passaparola.config.settings import MASK, Settings, SourceSpec, dumps

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_RULES",
    "ENV_PREFIX",
    "MAIL_EXAMPLE",
    "MASK",
    "NOTIFIER_TYPES",
    "ROLES",
    "SOURCES",
    "AdvocatesConfig",
    "AnalysisSettings",
    "BrandSettings",
    "ConfigError",
    "DaemonSettings",
    "EngagementConfig",
    "MemberSettings",
    "NotifySettings",
    "OfferSettings",
    "PolicySettings",
    "ScheduleSettings",
    "Section",
    "Settings",
    "SourceSpec",
    "StorageSettings",
    "TeamSettings",
    "TokenSettings",
    "TriageConfig",
    "UserSettings",
    "WebSettings",
    "config_path",
    "dumps",
    "load",
    "merged_rules",
    "rule_steps",
]
