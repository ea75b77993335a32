"""Shared test kit: a fixed clock, an in-memory store, settings built from TOML text, the CLI runner.

Tests never reach the network: pytest-socket (configured in pyproject.toml) allows 127.0.0.1 and ::1 only.
"""

from __future__ import annotations

import email
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from passaparola import config as configuration
from storage import Store

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday morning


@dataclass
class FixedClock:
    """A clock that moves only when told to."""

    now: datetime = T0
    calls: list[datetime] = field(default_factory=list)

    def __call__(self) -> datetime:
        self.calls.append(self.now)
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store.memory()
    yield s
    s.close()


def settings_from(text: str, tmp_path: Path, environ: dict[str, str] | None = None) -> configuration.Settings:
    path = tmp_path / "passaparola.toml"
    path.write_text(text, encoding="utf-8")
    return configuration.load(path, environ=environ or {})


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for a `passaparola` subprocess: this interpreter's, without inherited overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PASSAPAROLA_")}
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env


PASSAPAROLA = [sys.executable, "-m", "passaparola"]


def run_cli(
    command: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command line (usually ``[*PASSAPAROLA, ...]``) as a user would, output captured, bounded in time."""
    return subprocess.run(
        list(command), capture_output=True, text=True, timeout=60, env=env or cli_env(), cwd=cwd, check=False
    )


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that does not log each request to stderr, so test output stays readable."""

    def log_message(self, format: str, *args: object) -> None:
        return None


@contextmanager
def local_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """Serve ``handler`` on 127.0.0.1 in a background thread; yields the port, shuts down on exit."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield int(httpd.server_address[1])
    finally:
        httpd.shutdown()
        httpd.server_close()


# -- real receivers on 127.0.0.1: an SMTP server (aiosmtpd) and a JSON webhook receiver -------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Inbox:
    """What a real SMTP server (aiosmtpd) received, and when each message arrived (``time.monotonic``)."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.arrived: list[float] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        self.arrived.append(time.monotonic())
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


class Receiver:
    """A JSON webhook receiver; ``status`` is what it answers."""

    def __init__(self) -> None:
        self.status = 200
        self.bodies: list[dict[str, Any]] = []
        self.url = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            state.bodies.append(json.loads(self.rfile.read(length)))
            self.send_response(state.status)
            self.end_headers()

    with local_server(Handler) as port:
        state.url = f"json://127.0.0.1:{port}/hook"
        yield state


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled demo replayed once into a database; tests copy it (see tests/webkit.py)."""
    from tests.webkit import build_demo

    return build_demo(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium, driven by Playwright (which never downloads a browser here)."""
    from playwright.sync_api import sync_playwright

    from tools.screenshots import CHROMIUM, FLAGS

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: `make test` installs it (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """A command run in-process (CliRunner) sets up the root handler and quiets tweepy, httpx and the like for the
    rest of the process; undo it after each test, so a later test's caplog sees what its library logs."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    named = {name: logging.getLogger(name).level for name in logging.root.manager.loggerDict}
    yield
    root.handlers[:], root.level = handlers, level
    for name in list(logging.root.manager.loggerDict):
        logging.getLogger(name).setLevel(named.get(name, logging.NOTSET))
