"""Validating the whole file: each section against its model, the sources and rules against their types'
options, then what only the sections together can tell (routes that reach nobody, a digest a rules cycle could
miss, e-mail URLs apprise would refuse). Problems are collected as lines, never raised one at a time."""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from pydantic import SecretStr, TypeAdapter, ValidationError

from listener import SOURCES
from notifiers.apprise_notifier import ALWAYS, AppriseNotifier, parse_problems
from passaparola.config.care import AdvocatesConfig, EngagementConfig, TriageConfig
from passaparola.config.sections import (
    AnalysisSettings,
    DaemonSettings,
    NotifySettings,
    ScheduleSettings,
    Section,
    StorageSettings,
    WebSettings,
)
from passaparola.config.settings import MASK, Settings, SourceSpec
from rules import EVALUATORS
from rules.analysis import unknown_languages
from rules.sentiment import MODES, ModelError, ReadingModel

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


def validate(data: dict[str, Any], problems: list[str], origin: str) -> Settings | None:
    """The settings, or None with every problem appended: `check` must name them all at once, not one per run."""
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
    elif analysis.model_dir:  # a model of an older passaparola is refused at start, not at the first mention
        for name in needed:
            try:
                ReadingModel.load(Path(analysis.model_dir) / name)
            except ModelError as error:
                problems.append(f"analysis.model_dir: {error}")
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
