"""The triage commands as a user runs them: check names config mistakes, lint-reply reviews drafts, people
mark answers and acknowledge breaches, and unknown keys are clear errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from listener import Poll
from passaparola.cli import main
from storage import Store
from tests.test_triage import JOHN, said

CONFIG = """
[storage]
path = "{db}"

[triage]
timezone = "Europe/Rome"

[[triage.teams]]
name = "billing"
keywords = ["addebito"]

[[triage.members]]
name = "giulia"
skills = ["billing"]
languages = ["it"]
signature = "^GL"

[engagement]
banned = ["stupido"]
discouraged = {{ "purtroppo" = "ci dispiace" }}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "p.toml"
    path.write_text(CONFIG.format(db=tmp_path / "p.db"), encoding="utf-8")
    return path


def invoke(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), input=stdin)
    return result.exit_code, result.output


def test_check_names_every_triage_mistake(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        """
[triage]
timezone = "Europe/Atlantis"
targets = { normal = 0 }
default_team = "pr"
[[triage.teams]]
name = "billing"
[[triage.members]]
name = "giulia"
skills = ["biling"]
languages = ["it"]
shifts = { mon = ["09:00-13:00", "12:00-18:00"], tue = ["10:00-10:00"] }
[[triage.members]]
name = "marco"
languages = []
""",
        encoding="utf-8",
    )
    code, out = invoke("check", "--config", str(path))
    assert code == 2
    for expected in (
        "triage.timezone: unknown time zone 'Europe/Atlantis'",
        "triage.targets.normal: an SLA of 0 minutes cannot be met",
        "triage.default_team: no team 'pr'",
        "triage.members[0] (giulia).skills: no team 'biling'",
        "intervals overlap on mon",
        "'10:00-10:00' is empty",
        "triage.members[1] (marco).languages: empty",
    ):
        assert expected in out, expected


def test_lint_reply_blocks_a_banned_term_and_asks_for_the_missing_elements(config: Path) -> None:
    code, out = invoke(
        "lint-reply", "--config", str(config), "--channel", "x", "--team", "billing", "--complaint", "--json",
        "--member", "giulia", "purtroppo non è colpa nostra, stupido sistema",
    )  # fmt: skip
    assert code == 1
    result = json.loads(out)
    codes = [f["code"] for f in result["findings"]]
    assert result["verdict"] == "block"
    assert {"banned_term", "missing_greeting", "missing_signature", "missing_apology", "missing_reference"} <= set(
        codes
    )
    assert "discouraged_term" in codes and codes[-1] == "same_channel"
    assert any("say 'ci dispiace'" in f["message"] for f in result["findings"])


def test_a_good_reply_passes_and_a_long_one_is_blocked_on_x(config: Path) -> None:
    good = "Ciao Anna, ci dispiace per il doppio addebito: il rimborso AUR-10234 parte oggi. ^GL"
    code, out = invoke(
        "lint-reply", "--config", str(config), "--channel", "x", "--team", "billing", "--complaint",
        "--member", "giulia", good,
    )  # fmt: skip
    assert code == 0 and "verdict: ok" in out and "answer on x" in out
    code, out = invoke("lint-reply", "--config", str(config), "--channel", "x", "--member", "giulia", "-",
                       stdin="Ciao! " + "molto " * 60 + "^GL")  # fmt: skip
    assert code == 1 and "allows 280" in out


def test_people_mark_answers_and_acknowledge_and_unknown_keys_are_errors(config: Path, tmp_path: Path) -> None:
    store = Store.open(tmp_path / "p.db")
    now = datetime.now(UTC).replace(microsecond=0)
    store.save_poll(
        "import", "import", Poll(mentions=(said("1", now - timedelta(minutes=30), platform="import"),)), now
    )
    store.close()
    code, out = invoke("triage", "answered", "--config", str(config), "import:1", "--by", "giulia")
    assert code == 0 and "answered by giulia after 30 min" in out
    code, out = invoke("triage", "answered", "--config", str(config), "x:nope", "--by", "giulia")
    assert code == 2 and "no mention 'x:nope'" in out
    code, out = invoke("alerts", "ack", "--config", str(config), "import:1", "--by", "supervisor")
    assert code == 0 and "acknowledged by supervisor" in out
    code, out = invoke("triage", "away", "--config", str(config), "nobody")
    assert code == 2 and "no member 'nobody'" in out
    code, out = invoke("triage", "figures", "--config", str(config), "--json")
    assert json.loads(out)["figures"]["member"]["giulia"]["answered"] == 1


def test_the_holding_reply_states_the_current_median_rounded_up(config: Path, tmp_path: Path) -> None:
    store = Store.open(tmp_path / "p.db")
    now = datetime.now(UTC).replace(microsecond=0)
    waits = (12, 18, 21)
    mentions = tuple(said(str(i), now - timedelta(hours=2, minutes=i)) for i in range(3))
    mentions += (said("9", now - timedelta(minutes=1), author=JOHN),)
    store.save_poll("x", "x", Poll(mentions=mentions), now)
    for i, wait in enumerate(waits):
        store.conversations.mark_answered(
            f"x:{i}", "giulia", now, answered_at=mentions[i].published_at + timedelta(minutes=wait)
        )
    store.close()
    code, out = invoke("lint-reply", "--config", str(config), "--holding", "--mention", "x:9")
    assert code == 0
    assert out.strip() == (
        "Ciao @john, abbiamo ricevuto il tuo messaggio e lo stiamo guardando. "
        "In questo momento rispondiamo in circa 20 minuti."
    )
