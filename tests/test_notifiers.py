"""Delivery through apprise to a real SMTP server (aiosmtpd) and a local HTTP receiver, all on 127.0.0.1."""

from __future__ import annotations

import io
import json
import random
import subprocess
from pathlib import Path

import pytest

from notifiers import Alert, LogNotifier
from notifiers.apprise_notifier import AppriseNotifier
from notifiers.log import printable
from passaparola.config import ConfigError
from passaparola.pipeline import deliver
from storage import Store
from tests.conftest import PASSAPAROLA, T0, Inbox, Receiver, free_port, run_cli, settings_from

HOSTILE = "<script>alert('x')</script> <img src=x onerror=alert(1)> \u202egnp.exe"


def mail_url(port: int) -> str:
    return f"mailto://127.0.0.1:{port}?from=bot@example.test&to=team@example.test&mode=insecure"


@pytest.mark.parametrize("html", [False, True])
def test_an_email_carries_hostile_mention_text_escaped(smtp: tuple[Inbox, int], html: bool) -> None:
    inbox, port = smtp
    url = mail_url(port) + ("&format=html" if html else "")
    notifier = AppriseNotifier({"care": [url]}, timeout_seconds=10)
    delivery = notifier.send(
        Alert(key="k", kind="unanswered", title="No answer: @<b>x</b>", body=HOSTILE, route="care", level="warning")
    )
    assert delivery.ok, delivery.detail
    [message] = inbox.messages
    assert message["To"] == "team@example.test" and "No answer" in message["Subject"]
    parts = {
        part.get_content_type(): part.get_payload(decode=True).decode()
        for part in message.walk()
        if not part.is_multipart()
    }
    assert "<script>alert('x')</script>" in parts["text/plain"]  # plain text stays as written
    if html:  # an e-mail client renders this part: the mention's markup must arrive as text
        assert "<script" not in parts["text/html"] and "<img" not in parts["text/html"]
        assert "&lt;script&gt;" in parts["text/html"]
    else:
        assert set(parts) == {"text/plain"}


def test_a_json_receiver_gets_title_body_and_level(receiver: Receiver) -> None:
    notifier = AppriseNotifier({"ops": [receiver.url]})
    assert notifier.send(
        Alert(key="k", kind="source_failing", title="Source down", body=HOSTILE, route="ops", level="failure")
    ).ok
    [body] = receiver.bodies
    assert (body["title"], body["message"], body["type"]) == ("Source down", printable(HOSTILE), "failure")
    assert "\u202e" not in body["message"] and "\\u202egnp.exe" in body["message"]  # spelled out, not obeyed


def test_only_the_alerts_route_is_reached(receiver: Receiver, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    notifier = AppriseNotifier({"care": [mail_url(port)], "ops": [receiver.url]})
    notifier.send(Alert(key="k", kind="t", title="t", body="b", route="ops"))
    assert len(receiver.bodies) == 1 and inbox.messages == []
    missing = notifier.send(Alert(key="k2", kind="t", title="t", body="b", route="pr"))
    assert not missing.ok and "no URL carries the route 'pr'" in missing.detail


def test_a_receiver_answering_500_keeps_the_alert_queued_until_it_recovers(receiver: Receiver, store: Store) -> None:
    receiver.status = 500
    notifier = AppriseNotifier({"ops": [receiver.url]})
    store.enqueue([Alert(key="k", kind="t", title="t", body="b", route="ops")], T0)
    assert deliver(store, notifier, T0, random.Random(1)) == (0, 1)
    row = store.db.execute("SELECT sent_at, attempts, last_error FROM outbox").fetchone()
    assert row[0] is None and row[1] == 1 and "JSON" in row[2] and "error=500" in row[2]
    receiver.status = 200
    assert deliver(store, notifier, T0.replace(hour=T0.hour + 1), random.Random(1)) == (1, 0)
    assert len(receiver.bodies) == 2


def test_a_crash_between_send_and_mark_sends_at_most_one_second_copy(
    receiver: Receiver, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    notifier = AppriseNotifier({"ops": [receiver.url]})
    store.enqueue([Alert(key="k", kind="t", title="t", body="b", route="ops")], T0)
    monkeypatch.setattr(store.outbox, "mark_sent", lambda *a: (_ for _ in ()).throw(RuntimeError("killed")))
    with pytest.raises(RuntimeError):
        deliver(store, notifier, T0, random.Random(1))
    monkeypatch.undo()
    for _ in range(3):  # the restarted daemon
        deliver(store, notifier, T0, random.Random(1))
    assert len(receiver.bodies) == 2  # the documented at-least-once: one extra copy, never more, none lost


def test_check_names_bad_urls_empty_routes_and_unrouted_rules(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from('[notify]\ntype = "apprise"\n[notify.routes]\ncare = ["nonsense://x"]\nops = []\n', tmp_path)
    assert caught.value.problems == [
        "notify.routes.care[0]: apprise cannot use this URL (scheme nonsense); check its form in apprise's "
        "documentation",
        "notify.routes.ops: no URLs; add at least one apprise URL or remove the route",
        "rules (default source_failing).route: 'ops' matches no notify route; add [notify.routes] ops = [...] or "
        "tag a URL 'ops' in the apprise file",
        "rules (default source_silent).route: 'ops' matches no notify route; add [notify.routes] ops = [...] or "
        "tag a URL 'ops' in the apprise file",
    ]


def test_routes_from_an_apprise_yaml_file(tmp_path: Path, receiver: Receiver) -> None:
    routes = tmp_path / "apprise.yml"
    routes.write_text(f"version: 1\nurls:\n  - {receiver.url}:\n      tag: care, ops\n", encoding="utf-8")
    settings = settings_from(f'[notify]\ntype = "apprise"\nconfig_file = "{routes}"\n', tmp_path)
    notifier = AppriseNotifier(config_file=settings.notify.config_file)
    assert notifier.routes() == {"care", "ops"}
    assert notifier.send(Alert(key="k", kind="t", title="t", body="b", route="care")).ok


def test_url_secrets_come_from_the_environment_and_print_masked(tmp_path: Path, receiver: Receiver) -> None:
    secret_url = receiver.url.replace("json://", "json://user:SENTINEL-pass@")
    settings = settings_from(
        '[notify]\ntype = "apprise"\n[notify.routes]\ncare = [{ env = "CARE_URL" }]\nops = [{ env = "CARE_URL" }]\n',
        tmp_path,
        environ={"CARE_URL": secret_url},
    )
    from passaparola.config import dumps

    assert "SENTINEL" not in dumps(settings) and settings.notify.route_urls()["care"] == [secret_url]


def test_alerts_test_reports_per_url(tmp_path: Path, receiver: Receiver) -> None:
    config = tmp_path / "p.toml"
    dead = f"json://127.0.0.1:{free_port()}/nobody"
    config.write_text(
        f'[notify]\ntype = "apprise"\n[notify.routes]\ncare = ["{receiver.url}"]\nops = ["{receiver.url}", "{dead}"]\n',
        encoding="utf-8",
    )

    def run(route: str) -> subprocess.CompletedProcess[str]:
        return run_cli([*PASSAPAROLA, "alerts", "test", "--config", str(config), "--route", route])

    good = run("care")
    assert good.returncode == 0 and good.stdout.strip().endswith("delivered")
    bad = run("ops")
    assert bad.returncode == 1
    assert bad.stdout.count("delivered") == 1 and "FAILED: A Connection error occurred" in bad.stdout
    assert receiver.bodies[0]["title"] == "Passaparola test alert"


def test_the_log_notifier_neutralises_terminal_controls(tmp_path: Path) -> None:
    sink = io.StringIO()
    LogNotifier(stream=sink, path=tmp_path / "a.jsonl").send(Alert(key="k", kind="t", title="t\x1b[2J", body=HOSTILE))
    shown = sink.getvalue()
    assert "\x1b" not in shown and "\\u001b[2J" in shown and "\\u202e" in shown
    assert json.loads((tmp_path / "a.jsonl").read_text())["body"] == HOSTILE
