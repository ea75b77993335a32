"""Reading the file: TOML, then the ``PASSAPAROLA_*`` environment overrides, then the secret references, then
`checks`; the only code that reads the environment. Every problem is collected, so one `ConfigError` names them all."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from passaparola.config.checks import DEFAULT_RULES, validate
from passaparola.config.settings import Settings

ENV_PREFIX = "PASSAPAROLA_"
CONFIG_ENV = "PASSAPAROLA_CONFIG"


class ConfigError(Exception):
    """The configuration cannot be used. ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


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
    settings = validate(data, problems, origin=str(path) if path else "defaults and environment")
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
