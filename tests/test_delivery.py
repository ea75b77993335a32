"""Delivery per URL of a route, through the outbox and apprise to real receivers on 127.0.0.1.

A route of an e-mail address (a real SMTP server, aiosmtpd) and a JSON webhook (a local HTTP server): a failure
of one URL must never re-send to the other, and untrusted text must reach neither with its bidi or control
characters still able to act.
"""

from __future__ import annotations

import email.header
import json
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import pytest

from notifiers import Alert
from notifiers.apprise_notifier import AppriseNotifier
from passaparola.pipeline import deliver
from storage import Store
from tests.conftest import T0, Inbox, QuietHandler, local_server

#: What a hostile author can put in a name or a post: a right-to-left override, an isolate, a mark, an escape.
BIDI = "\u202e", "\u2066", "\u200f", "\x1b"
MENTION = "rimborso mai arrivato \u202egnp.exe\u2066 \u200f\x1b[2J fine"


def mail_url(port: int, html: bool = False) -> str:
    url = f"mailto://127.0.0.1:{port}?from=bot@example.test&to=team@example.test&mode=insecure"
    return url + ("&format=html" if html else "")


@dataclass
class Webhook:
    """A JSON webhook that answers 500 to its first ``fail_first`` requests, then 200."""

    fail_first: int = 0
    url: str = ""
    statuses: list[int] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)


@contextmanager
def webhook(fail_first: int = 0) -> Iterator[Webhook]:
    state = Webhook(fail_first)

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            state.bodies.append(json.loads(self.rfile.read(length)))
            state.arrived.append(time.monotonic())
            status = 500 if len(state.statuses) < state.fail_first else 200
            state.statuses.append(status)
            self.send_response(status)
            self.end_headers()

    with local_server(Handler) as port:
        state.url = f"json://127.0.0.1:{port}/hook"
        yield state


@pytest.fixture
def disk_store(tmp_path: Path) -> Iterator[Store]:
    """A store on a file, migrated as the daemon opens it."""
    store = Store.open(tmp_path / "passaparola.db")
    yield store
    store.close()


def subject(message: Message) -> str:
    return str(email.header.make_header(email.header.decode_header(message["Subject"])))


def parts(message: Message) -> dict[str, str]:
    """Each leaf part of the e-mail, decoded (base64 or quoted-printable), by content type."""
    found = {}
    for part in message.walk():
        if not part.is_multipart():
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            found[part.get_content_type()] = payload.decode()
    return found


def test_a_failed_url_is_retried_alone_and_the_other_gets_one_copy(smtp: tuple[Inbox, int], disk_store: Store) -> None:
    inbox, port = smtp
    with webhook(fail_first=1) as hook:
        notifier = AppriseNotifier({"care": [mail_url(port), hook.url]}, timeout_seconds=10)
        disk_store.enqueue([Alert(key="a", kind="unanswered", title="No answer", body="b", route="care")], T0)

        assert deliver(disk_store, notifier, T0, random.Random(1)) == (0, 1)
        assert len(inbox.messages) == 1 and hook.statuses == [500]
        row = disk_store.db.execute("SELECT sent_at, last_error FROM outbox WHERE key = 'a'").fetchone()
        assert row[0] is None and "1 of 2 URL(s) delivered" in row[1] and "error=500" in row[1]
        assert deliver(disk_store, notifier, T0 + timedelta(seconds=1), random.Random(1)) == (0, 0)  # backoff

        later = T0 + timedelta(hours=2)
        assert deliver(disk_store, notifier, later, random.Random(1)) == (1, 0)
        assert deliver(disk_store, notifier, later + timedelta(hours=2), random.Random(1)) == (0, 0)

    assert len(inbox.messages) == 1  # the e-mail went out once, not once per attempt
    assert subject(inbox.messages[0]) == "No answer"
    assert hook.statuses == [500, 200] and hook.bodies[-1]["title"] == "No answer"
    sent_at, attempts = disk_store.db.execute("SELECT sent_at, attempts FROM outbox WHERE key = 'a'").fetchone()
    assert sent_at is not None and attempts == 2
    targets = disk_store.db.execute(
        "SELECT target, attempts, sent_at IS NOT NULL FROM outbox_targets WHERE alert_key = 'a' ORDER BY target"
    ).fetchall()
    assert [(t.split("://")[0], n, done) for t, n, done in targets] == [("json", 2, 1), ("mailto", 1, 1)]


@pytest.mark.parametrize("html", [False, True])
def test_bidi_and_control_characters_reach_no_mail_and_no_webhook_raw(
    smtp: tuple[Inbox, int], disk_store: Store, html: bool
) -> None:
    inbox, port = smtp
    with webhook() as hook:
        notifier = AppriseNotifier({"care": [mail_url(port, html), hook.url]}, timeout_seconds=10)
        alert = Alert(
            key="u",
            kind="unanswered",
            title=f"No answer: {MENTION[:40]}",
            body=f"@marta\u202e said:\n{MENTION}",
            route="care",
            level="warning",
        )
        disk_store.enqueue([alert], T0)
        assert deliver(disk_store, notifier, T0, random.Random(1)) == (1, 0)

    [message] = inbox.messages
    [body] = hook.bodies
    sent = {
        "subject": subject(message),
        **parts(message),
        "webhook title": body["title"],
        "webhook message": body["message"],
    }
    assert set(sent) >= {"subject", "text/plain", "webhook title", "webhook message"}
    if html:
        assert "text/html" in sent
    for where, text in sent.items():
        raw = [f"U+{ord(ch):04X}" for ch in BIDI if ch in text]
        assert not raw, f"{where} carries {raw} raw: {text!r}"
        assert "\\u202e" in text, f"{where} lost the override instead of spelling it out: {text!r}"


def test_urls_that_differ_only_in_a_secret_are_two_targets(disk_store: Store) -> None:
    with webhook(fail_first=1) as hook:
        one, two = (hook.url.replace("json://", f"json://bot:{secret}@") for secret in ("SENTINEL-1", "SENTINEL-2"))
        notifier = AppriseNotifier({"ops": [one, two]}, timeout_seconds=10)
        disk_store.enqueue([Alert(key="s", kind="t", title="t", body="b", route="ops")], T0)
        assert deliver(disk_store, notifier, T0, random.Random(1)) == (0, 1)
        assert deliver(disk_store, notifier, T0 + timedelta(hours=2), random.Random(1)) == (1, 0)
    assert hook.statuses == [500, 200, 200]  # each URL reached once; the one that failed was retried alone
    targets = [row[0] for row in disk_store.db.execute("SELECT target FROM outbox_targets ORDER BY target")]
    assert len(targets) == 2 and targets[1] == targets[0] + "#2"
    assert not any("SENTINEL" in t for t in targets)  # stored in apprise's privacy form only


def test_deleting_an_alert_deletes_its_delivery_state(smtp: tuple[Inbox, int], disk_store: Store) -> None:
    _, port = smtp
    disk_store.enqueue([Alert(key="e", kind="t", title="t", body="b", route="care")], T0)
    assert deliver(disk_store, AppriseNotifier({"care": [mail_url(port)]}), T0, random.Random(1)) == (1, 0)
    assert disk_store.db.execute("SELECT count(*) FROM outbox_targets").fetchone()[0] == 1
    disk_store.db.execute("DELETE FROM outbox WHERE key = 'e'")  # what erasure does
    assert disk_store.db.execute("SELECT count(*) FROM outbox_targets").fetchone()[0] == 0


def test_a_throttled_mail_address_delays_only_its_own_alerts(smtp: tuple[Inbox, int], disk_store: Store) -> None:
    """apprise waits about 5.5 s between two mails through one ``mailto://``: the chat URL of the same route
    and another route's webhook get every alert meanwhile, not one per mail."""
    inbox, port = smtp
    with webhook() as care_chat, webhook() as ops_chat:
        notifier = AppriseNotifier({"care": [mail_url(port), care_chat.url], "ops": [ops_chat.url]}, timeout_seconds=10)
        alerts = [Alert(key=f"c{i}", kind="unanswered", title=f"care {i}", body="b", route="care") for i in range(2)]
        alerts += [Alert(key=f"o{i}", kind="source_failing", title=f"ops {i}", body="b", route="ops") for i in range(2)]
        disk_store.enqueue(alerts, T0)

        assert deliver(disk_store, notifier, T0, random.Random(1)) == (4, 0)

    assert len(inbox.messages) == 2 and inbox.arrived[1] - inbox.arrived[0] > 4  # apprise's own pace, kept
    second_mail = inbox.arrived[1]
    for chat in (care_chat, ops_chat):
        assert len(chat.arrived) == 2 and max(chat.arrived) < second_mail - 3


def test_a_pass_out_of_time_keeps_the_rest_due_without_counting_an_attempt(
    smtp: tuple[Inbox, int], disk_store: Store
) -> None:
    inbox, port = smtp
    with webhook() as chat:
        notifier = AppriseNotifier({"care": [mail_url(port), chat.url]}, timeout_seconds=10)
        disk_store.enqueue(
            [Alert(key=f"a{i}", kind="unanswered", title=f"n{i}", body="b", route="care") for i in range(3)], T0
        )

        assert deliver(disk_store, notifier, T0, random.Random(1), budget_seconds=1) == (2, 0)
        assert len(inbox.messages) == 2 and len(chat.arrived) == 3  # the mail lane stopped; the chat did not
        row = disk_store.db.execute("SELECT sent_at, attempts, last_error FROM outbox WHERE key = 'a2'").fetchone()
        assert row == (None, 0, None)  # not failed, not retried later: due now

        assert deliver(disk_store, notifier, T0, random.Random(1)) == (1, 0)
    assert len(inbox.messages) == 3 and len(chat.arrived) == 3  # the chat never got a second copy
