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
from passaparola.cli import demo_settings, main
from passaparola.config import ConfigError
from tests.conftest import settings_from

STARTER = (Path(configuration.__file__).parent.parent / "starter.toml").read_text(encoding="utf-8")
ALL_RULES = [
    "unanswered",
    "source_failing",
    "volume_spike",
    "negative_mention",
    "negative_spike",
    "source_silent",
    "daily_digest",
]


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
    assert '"sources": []' in result.output and '"warn_share": 0.75' in result.output
    again = runner.invoke(main, ["init", str(target)])
    assert again.exit_code == 2 and "exists already" in again.output


def test_defaults_need_no_file() -> None:
    settings = configuration.load(None, environ={})
    assert settings.storage.path == "passaparola.db"
    assert [r.kind for r in settings.rules] == ALL_RULES


def test_unknown_keys_are_named_with_the_known_ones(tmp_path: Path) -> None:
    found = problems(
        '[storage]\npaht = "x.db"\n[[sources]]\ntype = "demo"\nevery_secs = 5\n[colours]\nx = 1\n', tmp_path
    )
    assert any(p.startswith("storage.paht: unknown key") and "known keys: path" in p for p in found)
    assert any(p.startswith("sources[0].every_secs: unknown key for type 'demo'") for p in found)
    assert any(p.startswith("colours: unknown section") for p in found)


def test_unknown_source_type_lists_the_known_ones(tmp_path: Path) -> None:
    found = problems('[[sources]]\ntype = "myspace"\nname = "old"\n', tmp_path)
    assert found == [
        "sources[0].type: unknown type 'myspace'; use one of appstore, bluesky, demo, discourse, facebook, feed, gbp, "
        "googleplay, mastodon, x, youtube"
    ]


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


def test_the_starter_listens_to_nothing_made_up_while_the_demo_keeps_its_sample(tmp_path: Path) -> None:
    starter = settings_from(STARTER, tmp_path)
    assert starter.sources == ()  # uncommenting the X block must not mix the demo's sample into real data
    x_block = STARTER.split("# X (API v2")[1].split("\n\n")[0]
    uncommented = "\n".join(line.removeprefix("# ") for line in x_block.splitlines()[1:])
    with_x = settings_from(STARTER + "\n" + uncommented + "\n", tmp_path, environ={"X_BEARER_TOKEN": "t" * 20})
    assert [s.type for s in with_x.sources] == ["x"]
    demo = demo_settings(tmp_path / "demo.db", tmp_path / "alerts.jsonl")
    assert [s.type for s in demo.sources] == ["demo"] and [r.kind for r in demo.rules] == ALL_RULES


def test_one_rules_table_tunes_its_type_and_the_other_defaults_stay(tmp_path: Path) -> None:
    settings = settings_from('[[rules]]\ntype = "daily_digest"\nat = "09:30"\nroute = "managers"\n', tmp_path)
    assert [r.kind for r in settings.rules] == ALL_RULES
    digest = settings.rules[-1]
    assert (digest.at, digest.route, digest.top) == ("09:30", "managers", 5)


def test_enabled_false_turns_a_default_rule_off_and_a_second_table_adds_one(tmp_path: Path) -> None:
    text = (
        '[[rules]]\ntype = "volume_spike"\nenabled = false\n'
        '[[rules]]\ntype = "daily_digest"\nroute = "care"\n'
        '[[rules]]\ntype = "daily_digest"\nat = "18:00"\nroute = "managers"\n'
    )
    settings = settings_from(text, tmp_path)
    assert [r.kind for r in settings.rules] == [k for k in ALL_RULES if k != "volume_spike"] + ["daily_digest"]
    assert [(r.at, r.route) for r in settings.rules if r.kind == "daily_digest"] == [
        ("08:00", "care"),
        ("18:00", "managers"),
    ]
    assert problems('[[rules]]\ntype = "source_silent"\nenabled = "no"\n', tmp_path) == [
        "rules[0].enabled: 'no' is not true or false; write enabled = false to switch it off"
    ]


def test_a_rule_override_reaches_a_default_rule_the_file_does_not_list(tmp_path: Path) -> None:
    settings = settings_from("", tmp_path, environ={"PASSAPAROLA_RULES__DAILY_DIGEST__AT": "07:30"})
    assert [r.kind for r in settings.rules] == ALL_RULES and settings.rules[-1].at == "07:30"


def test_the_starters_intake_token_is_a_secret_not_an_override(tmp_path: Path) -> None:
    text = STARTER.replace(
        '# intake_token = { env = "PASSAPAROLA_INTAKE_TOKEN" }', 'intake_token = { env = "PASSAPAROLA_INTAKE_TOKEN" }'
    )
    assert text != STARTER
    token = "SENTINEL-intake-0123456789"
    environ = {"PASSAPAROLA_INTAKE_TOKEN": token, "PASSAPAROLA_STORAGE__PATH": "/data/p.db"}
    settings = settings_from(text, tmp_path, environ)
    assert settings.web.intake_token is not None and settings.web.intake_token.get_secret_value() == token
    assert settings.storage.path == "/data/p.db"  # overrides still work beside it
    assert "SENTINEL" not in configuration.dumps(settings)
    found = problems("", tmp_path, environ={"PASSAPAROLA_INTAKE_TOKEN": token})  # referenced nowhere: a typo?
    assert len(found) == 1 and found[0].startswith("PASSAPAROLA_INTAKE_TOKEN: cannot tell which key it sets")


APPRISE = '[notify]\ntype = "apprise"\n[notify.routes]\nops = ["json://127.0.0.1:9/"]\ncare = ["{url}"]\n'


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("mailtos://bot:SENTINEL@10.0.0.1:587?to=care@example.com", "has no from= address"),
        ("mailto://bot@example.com:SENTINEL@smtp.example.com?to=care@example.com", "holds an @; write it as %40"),
    ],
)
def test_a_mail_url_apprise_refuses_says_what_is_missing(tmp_path: Path, url: str, says: str) -> None:
    [found] = problems(APPRISE.format(url=url), tmp_path)
    assert found.startswith("notify.routes.care[0]: ") and says in found
    assert "from=alerts@example.com" in found and "SENTINEL" not in found
    assert "apprise cannot use this URL" not in found


def test_a_mail_url_with_its_sender_is_accepted(tmp_path: Path) -> None:
    url = "mailtos://bot:pw@10.0.0.1:587?to=care@example.com&from=bot@example.com"
    assert [r.kind for r in settings_from(APPRISE.format(url=url), tmp_path).rules] == ALL_RULES


def test_a_digest_window_shorter_than_a_rules_cycle_is_refused(tmp_path: Path) -> None:
    found = problems("[daemon]\nrules_every_seconds = 3600\njitter = 0.1\n", tmp_path)
    assert found == [
        "rules (default daily_digest).grace_minutes: 60 is shorter than a rules cycle (daemon.rules_every_seconds "
        "plus jitter), so a day's digest could be missed; set grace_minutes = 66 or more in its [[rules]] table "
        '(type = "daily_digest"), or run the rules more often'
    ]
    tuned = '[daemon]\nrules_every_seconds = 3600\n[[rules]]\ntype = "daily_digest"\ngrace_minutes = 66\n'
    assert settings_from(tuned, tmp_path).rules[-1].grace_minutes == 66
