"""Configuration: the starter validates, every problem is one line naming the key, secrets never print."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from listener import DemoSource
from passaparola import config as configuration
from passaparola.cli import main
from passaparola.config import ConfigError
from tests.conftest import settings_from


def problems(text: str, tmp_path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        settings_from(text, tmp_path, environ)
    return caught.value.problems


def test_init_writes_a_starter_that_check_accepts(tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "p.toml"
    assert runner.invoke(main, ["init", str(target)]).exit_code == 0
    result = runner.invoke(main, ["check", "--config", str(target)])
    assert result.exit_code == 0, result.output
    assert '"type": "demo"' in result.output and '"warn_share": 0.75' in result.output
    again = runner.invoke(main, ["init", str(target)])
    assert again.exit_code == 2 and "exists already" in again.output


def test_defaults_need_no_file() -> None:
    settings = configuration.load(None, environ={})
    assert settings.storage.path == "passaparola.db"
    assert [r.kind for r in settings.rules] == [
        "unanswered",
        "source_failing",
        "volume_spike",
        "negative_mention",
        "negative_spike",
        "source_silent",
        "daily_digest",
    ]


def test_unknown_keys_are_named_with_the_known_ones(tmp_path: Path) -> None:
    found = problems(
        '[storage]\npaht = "x.db"\n[[sources]]\ntype = "demo"\nevery_secs = 5\n[colours]\nx = 1\n', tmp_path
    )
    assert any(p.startswith("storage.paht: unknown key") and "known keys: path" in p for p in found)
    assert any(p.startswith("sources[0].every_secs: unknown key for type 'demo'") for p in found)
    assert any(p.startswith("colours: unknown section") for p in found)


def test_unknown_source_type_lists_the_known_ones(tmp_path: Path) -> None:
    found = problems('[[sources]]\ntype = "myspace"\nname = "old"\n', tmp_path)
    assert found == ["sources[0].type: unknown type 'myspace'; use one of demo, facebook, feed, x"]


def test_bad_values_name_the_key_and_the_value(tmp_path: Path) -> None:
    found = problems('[[sources]]\ntype = "demo"\nevery_seconds = 2\n[daemon]\njitter = "lots"\n', tmp_path)
    assert any(p.startswith("sources[0].every_seconds:") and "(got 2)" in p for p in found)
    assert any(p.startswith("daemon.jitter:") and "'lots'" in p for p in found)


def test_duplicate_source_names_are_refused(tmp_path: Path) -> None:
    found = problems('[[sources]]\ntype = "demo"\n[[sources]]\ntype = "demo"\n', tmp_path)
    assert found == ["sources[1].name: 'demo' is used twice; give each source its own name"]


def test_missing_secret_names_the_variable_and_the_fix(tmp_path: Path) -> None:
    found = problems('[[sources]]\ntype = "demo"\npath = { env = "DEMO_PATH_SECRET" }\n', tmp_path)
    assert found[0] == (
        "sources[0].path: environment variable DEMO_PATH_SECRET is not set; export it, "
        'or reference a secrets file with { file = "..." }'
    )


@dataclass
class TokenSource:
    """A source type registered by the test: it takes a secret, as the X source will."""

    kind: ClassVar[str] = "tokened"
    name: str = "tokened"
    token: SecretStr = field(default_factory=lambda: SecretStr(""))


def test_secret_from_a_file_is_resolved_and_masked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(configuration.SOURCES, "tokened", TokenSource)
    secret_file = tmp_path / "token"
    secret_file.write_text("SENTINEL-token-123\n", encoding="utf-8")
    settings = settings_from(f'[[sources]]\ntype = "tokened"\ntoken = {{ file = "{secret_file}" }}\n', tmp_path)
    assert settings.sources[0].source.token.get_secret_value() == "SENTINEL-token-123"
    assert "SENTINEL" not in repr(settings) and "SENTINEL" not in configuration.dumps(settings)
    assert '"token": "**********"' in configuration.dumps(settings)


def test_a_secret_where_plain_text_is_expected_is_refused_masked(tmp_path: Path) -> None:
    found = problems('[storage]\npath = { env = "P" }\n', tmp_path, environ={"P": "SENTINEL-x"})
    assert found == ["storage.path: input should be a valid string (got '**********'); fix the value"]


def test_environment_overrides_sections_and_named_sources(tmp_path: Path) -> None:
    settings = settings_from(
        '[[sources]]\ntype = "demo"\nname = "demo"\n',
        tmp_path,
        environ={
            "PASSAPAROLA_STORAGE__PATH": "/data/p.db",
            "PASSAPAROLA_SOURCES__DEMO__EVERY_SECONDS": "60",
            "PASSAPAROLA_DAEMON__JITTER": "0.2",
            "UNRELATED": "x",
        },
    )
    assert settings.storage.path == "/data/p.db"
    assert settings.sources[0].every_seconds == 60 and settings.daemon.jitter == 0.2
    assert isinstance(settings.sources[0].source, DemoSource)


def test_an_override_for_a_source_that_does_not_exist_is_named(tmp_path: Path) -> None:
    found = problems("", tmp_path, environ={"PASSAPAROLA_SOURCES__NOPE__EVERY_SECONDS": "60"})
    assert found == [
        "PASSAPAROLA_SOURCES__NOPE__EVERY_SECONDS: no [[sources]] with name 'nope'; fix the variable's name"
    ]


def test_broken_toml_and_missing_file_are_one_line_each(tmp_path: Path) -> None:
    assert "not valid TOML" in problems("[storage\n", tmp_path)[0]
    with pytest.raises(ConfigError, match="no such file; create one with `passaparola init"):
        configuration.load(tmp_path / "absent.toml", environ={})


def test_check_exits_2_with_one_line_per_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[storage]\npaht = "x"\n[[sources]]\ntype = "myspace"\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["check", "--config", str(path)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("passaparola: ") for line in lines)
