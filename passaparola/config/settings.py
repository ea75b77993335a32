"""What loading produces: `Settings`, each configured source as a `SourceSpec`, and their printable form with
every secret masked (what `check` prints)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from pydantic import SecretStr

from notifiers.apprise_notifier import privacy_url
from passaparola.config.care import AdvocatesConfig, EngagementConfig, TriageConfig
from passaparola.config.sections import AnalysisSettings, DaemonSettings, NotifySettings, StorageSettings, WebSettings
from rules.advocates import AdvocateSettings
from rules.engagement import EngagementRules
from rules.triage import TriageSettings

MASK = "**********"


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


def dumps(settings: Settings) -> str:
    """The effective configuration as JSON, secrets masked."""
    return json.dumps(settings.effective(), indent=2, ensure_ascii=False, default=str)
