"""The dashboard's test kit: the bundled demo replayed once (fast analysis, fixed clock) into a database that each
test copies, and the real web app served on 127.0.0.1 over that copy, with people and API tokens of each role."""

from __future__ import annotations

import io
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path

import httpx
from pydantic import SecretStr

from notifiers.log import LogNotifier
from passaparola.cli import build_taggers, demo_settings
from passaparola.config import Settings, TokenSettings, UserSettings
from passaparola.daemon import Daemon
from passaparola.web import WebServer, create_app
from passaparola.web.auth import hash_password
from storage import Store
from tests.conftest import T0, FixedClock

PASSWORD = "correct horse battery staple"
TOKENS = {role: f"{role}-token-0123456789abcdefghij" for role in ("agent", "supervisor", "admin")}
#: The demo is replayed up to T0; the dashboard is looked at a few minutes later.
NOW = T0 + timedelta(minutes=5)


def build_demo(folder: Path) -> Path:
    """The demo's 334 mentions, triaged, scored and alerted on once, as the daemon's first cycle does."""
    db = folder / "demo.db"
    settings = demo_settings(db, folder / "alerts.jsonl")
    store = Store.open(db)
    try:
        daemon = Daemon(
            settings, store, LogNotifier(stream=io.StringIO()), build_taggers(settings, mode="fast"), clock=lambda: T0
        )
        daemon.cycle()
    finally:
        store.close()
    return db


def web_settings(db: Path) -> Settings:
    base = demo_settings(db, db.with_name("alerts.jsonl"))
    hashed = SecretStr(hash_password(PASSWORD))
    users = [
        UserSettings(name="giulia", role="agent", password_hash=hashed, member="giulia"),
        UserSettings(name="sara", role="supervisor", password_hash=hashed, member=""),
        UserSettings(name="admin", role="admin", password_hash=hashed, member=""),
    ]
    tokens = [TokenSettings(name=f"{role}-bot", role=role, token=SecretStr(t)) for role, t in TOKENS.items()]
    web = base.web.model_copy(update={"users": users, "tokens": tokens, "port": 0, "language": "it"})
    return replace(base, web=web)


@dataclass
class Site:
    url: str
    settings: Settings
    store: Store  # the web app's own connection: read it to check what a request changed
    clock: FixedClock
    db: Path
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, role: str | None = None) -> httpx.Client:
        """An HTTP client (with the API token of ``role``), closed when the site stops."""
        headers = {"Authorization": f"Bearer {TOKENS[role]}"} if role else {}
        made = httpx.Client(base_url=self.url, headers=headers, timeout=10, follow_redirects=False)
        self.clients.append(made)
        return made

    def login(self, name: str, password: str = PASSWORD) -> httpx.Client:
        """A browser-like session: the log-in form, with its CSRF token, then the session cookie."""
        client = self.client()
        token = csrf_of(client.get("/login").text)
        response = client.post("/login", data={"csrf": token, "name": name, "password": password})
        assert response.status_code == 303, response.text
        return client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


@contextmanager
def serve(template_db: Path, folder: Path, configure: Callable[[Settings], Settings] | None = None) -> Iterator[Site]:
    """The web app over a copy of ``template_db``; ``configure`` changes the settings first (a source, a member)."""
    db = folder / "site.db"
    shutil.copy(template_db, db)
    settings = web_settings(db)
    if configure is not None:
        settings = configure(settings)
    clock = FixedClock(NOW)
    store = Store.open(db, shared=True)
    server = WebServer(create_app(settings, store, clock), "127.0.0.1", 0)
    server.start()
    site = Site(f"http://127.0.0.1:{server.port}", settings, store, clock, db)
    try:
        yield site
    finally:
        for client in site.clients:
            client.close()
        server.stop()
        store.close()
