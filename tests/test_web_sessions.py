"""Sessions held server-side, password changes and log-in throttling (#19), against the real web app on
127.0.0.1: a copied cookie dies at log-out, log-in rotates the id, admins see and end sessions, guessing is
slowed and locked before any argon2 work, and parallel guesses cannot starve a logged-in agent's inbox."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from passaparola.config import WebSettings
from passaparola.web import WebServer, auth, create_app
from passaparola.web.auth import VERIFY_SLOTS, Gate, fingerprint, hash_password
from storage import Store
from storage.sessions import StoredPassword
from tests.conftest import FixedClock
from tests.webkit import NOW, PASSWORD, Site, csrf_of, serve, web_settings

NEW_PASSWORD = "a much longer new secret"


class Hasher:
    """The app's argon2 hasher, counting verifications; ``hold`` (while clear) keeps each one in flight."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls = 0
        self.running = 0
        self.most = 0
        self.lock = threading.Lock()
        self.hold = threading.Event()
        self.hold.set()

    def verify(self, stored: str, password: str) -> bool:
        with self.lock:
            self.calls += 1
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            self.hold.wait(timeout=30)
            return bool(self.real.verify(stored, password))
        finally:
            with self.lock:
                self.running -= 1

    def hash(self, password: str) -> str:
        return str(self.real.hash(password))


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch) -> Hasher:
    counting = Hasher(auth._hasher)
    monkeypatch.setattr(auth, "_hasher", counting)
    return counting


@pytest.fixture
def site(demo_db: Path, tmp_path: Path) -> Iterator[Site]:
    with serve(demo_db, tmp_path) as running:
        yield running


@contextmanager
def serve_with(db: Path, **web: Any) -> Iterator[Site]:
    """`tests.webkit.serve` over ``db`` itself, with some web settings changed."""
    settings = web_settings(db)
    settings = replace(settings, web=settings.web.model_copy(update=web))
    clock = FixedClock(NOW)
    store = Store.open(db, shared=True)
    server = WebServer(create_app(settings, store, clock), "127.0.0.1", 0)
    server.start()
    running = Site(f"http://127.0.0.1:{server.port}", settings, store, clock, db)
    try:
        yield running
    finally:
        for client in running.clients:
            client.close()
        server.stop()
        store.close()


def cookie_of(client: httpx.Client) -> str:
    value = client.cookies.get("passaparola")
    assert value, "no session cookie"
    return value


def payload(cookie: str) -> dict[str, Any]:
    """What the signed cookie carries (it is signed, not encrypted)."""
    data: dict[str, Any] = json.loads(base64.b64decode(cookie.split(".")[0]))
    return data


def with_cookie(site: Site, cookie: str, path: str) -> httpx.Response:
    """A request from somewhere else that copied the cookie."""
    return httpx.get(site.url + path, headers={"Cookie": f"passaparola={cookie}"}, follow_redirects=False)


def attempt(client: httpx.Client, name: str, password: str, lang: str = "") -> httpx.Response:
    token = csrf_of(client.get("/login").text)
    query = f"?lang={lang}" if lang else ""
    return client.post("/login" + query, data={"csrf": token, "name": name, "password": password})


def until_locked(site: Site, client: httpx.Client, names: Iterator[str]) -> httpx.Response:
    """Wrong passwords, waiting out each delay on the clock, until the answer is a lock (a long wait)."""
    for name in names:
        answer = attempt(client, name, "wrong password")
        if answer.status_code == 429:
            seconds = int(answer.headers["retry-after"])
            if seconds > 60:
                return answer
            site.clock.advance(seconds=seconds)
            continue
        assert answer.status_code == 401
    raise AssertionError("never locked")


def metric(site: Site, name: str, **labels: str) -> float:
    text = site.client("admin").get("/metrics").text
    family = next(f for f in text_string_to_metric_families(text) if f.name == name)
    return next(s.value for s in family.samples if all(s.labels.get(k) == v for k, v in labels.items()))


def test_a_cookie_copied_before_log_out_gets_nothing_after_it(site: Site) -> None:
    sara = site.login("sara")
    copied = cookie_of(sara)
    assert with_cookie(site, copied, "/api/me").status_code == 200
    assert with_cookie(site, copied, "/inbox").status_code == 200
    assert sara.post("/logout", data={"csrf": csrf_of(sara.get("/inbox").text)}).status_code == 303
    me = with_cookie(site, copied, "/api/me")
    assert me.status_code == 401 and me.headers["www-authenticate"] == "Bearer"
    inbox = with_cookie(site, copied, "/inbox")
    assert inbox.status_code == 303 and inbox.headers["location"] == "/login?next=%2Finbox"
    assert sara.get("/api/me").status_code == 401


def test_log_in_rotates_the_session_id_and_the_cookie_holds_only_the_id(site: Site) -> None:
    giulia = site.login("giulia")
    before = cookie_of(giulia)
    first = payload(before)
    assert "user" not in first and set(first) <= {"sid", "csrf", "lang", "flash"}
    again = attempt(giulia, "giulia", PASSWORD)
    assert again.status_code == 303
    second = payload(cookie_of(giulia))
    assert second["sid"] != first["sid"]
    assert with_cookie(site, before, "/api/me").status_code == 401  # the pre-login session was dropped
    assert giulia.get("/api/me").json()["name"] == "giulia"
    live = [s for s in site.store.sessions.live(site.clock()) if s.user == "giulia"]
    assert len(live) == 1
    stored = {row[0] for row in site.store.db.execute("SELECT token_hash FROM web_sessions")}
    assert hashlib.sha256(second["sid"].encode()).hexdigest() in stored and second["sid"] not in stored


def test_an_admin_lists_and_revokes_other_peoples_sessions(site: Site) -> None:
    giulia, giulia_phone, sara = site.login("giulia"), site.login("giulia"), site.login("sara")
    admin = site.login("admin")
    page = admin.get("/sessions")
    assert page.status_code == 200 and page.text.count('data-session="') == 4 and "127.0.0.1" in page.text
    listed = admin.get("/api/sessions").json()["items"]
    mine = [s for s in listed if s["current"]]
    assert [s["user"] for s in mine] == ["admin"]
    assert {s["user"] for s in listed} == {"admin", "giulia", "sara"}
    assert all(s["address"] == "127.0.0.1" and s["agent"].startswith("python-httpx") for s in listed)
    # one of sara's sessions, by the page's button
    target = next(s for s in listed if s["user"] == "sara")
    token = csrf_of(page.text)
    assert admin.post(f"/sessions/{target['id']}/revoke", data={"csrf": token}).status_code == 303
    assert sara.get("/api/me").status_code == 401
    assert "Sessione chiusa" in admin.get("/sessions").text
    assert admin.post(f"/sessions/{target['id']}/revoke", data={}).status_code == 403  # CSRF-protected
    # all of giulia's, through the API
    headers = {"X-CSRF-Token": admin.get("/api/me").json()["csrf"]}
    ended = admin.post("/api/sessions/revoke", json={"user": "giulia"}, headers=headers)
    assert ended.status_code == 200 and ended.json()["revoked"] == 2
    assert giulia.get("/api/me").status_code == 401 and giulia_phone.get("/inbox").status_code == 303
    assert admin.post("/api/sessions/999999/revoke", headers=headers).status_code == 404
    assert [s["user"] for s in admin.get("/api/sessions").json()["items"]] == ["admin"]


def test_an_agent_or_a_supervisor_cannot_see_or_end_sessions(site: Site) -> None:
    giulia, sara = site.login("giulia"), site.login("sara")
    assert giulia.get("/sessions").status_code == 403
    assert sara.get("/sessions").status_code == 403
    assert giulia.post("/sessions/1/revoke", data={"csrf": csrf_of(giulia.get("/inbox").text)}).status_code == 403
    assert site.client("agent").get("/api/sessions").status_code == 403
    assert site.client("admin").get("/api/sessions").status_code == 200
    assert 'href="/sessions"' not in giulia.get("/inbox").text


def test_a_password_change_ends_other_sessions_and_the_old_password_stops_working(site: Site, hasher: Hasher) -> None:
    giulia, elsewhere = site.login("giulia"), site.login("giulia")
    form = giulia.get("/password")
    assert form.status_code == 200 and 'name="current"' in form.text
    token = csrf_of(form.text)

    def change(current: str, new: str, again: str | None = None) -> httpx.Response:
        fields = {"csrf": token, "current": current, "new": new, "again": new if again is None else again}
        return giulia.post("/password", data=fields)

    calls = hasher.calls
    assert "almeno 12 caratteri" in change(PASSWORD, "short").text
    same_name = change(PASSWORD, "GIULIA      ")  # 12 characters, still the name
    assert same_name.status_code == 400 and "non può essere il nome utente" in same_name.text
    assert "non coincidono" in change(PASSWORD, NEW_PASSWORD, "something else entirely").text
    assert hasher.calls == calls  # none of these needed argon2
    wrong = change("not my password", NEW_PASSWORD)
    assert wrong.status_code == 400 and "La password attuale non è giusta" in wrong.text
    assert site.store.sessions.password("giulia") is None

    done = change(PASSWORD, NEW_PASSWORD)
    assert done.status_code == 303 and done.headers["location"] == "/password"
    assert "Password cambiata" in giulia.get("/password").text
    assert giulia.get("/api/me").status_code == 200
    assert elsewhere.get("/api/me").status_code == 401
    own = site.store.sessions.password("giulia")
    assert own is not None and own.password_hash.startswith("$argon2id$") and NEW_PASSWORD not in own.password_hash
    assert attempt(site.client(), "giulia", PASSWORD).status_code == 401
    assert site.store.sessions.failures([("account", "giulia")])[0].failures == 1
    site.login("giulia", NEW_PASSWORD)
    assert site.store.sessions.failures([("account", "giulia")]) == []  # a right password clears the account

    headers = {"X-CSRF-Token": giulia.get("/api/me").json()["csrf"]}
    api = giulia.post("/api/password", json={"current": NEW_PASSWORD, "new": PASSWORD + "!"}, headers=headers)
    assert api.status_code == 200 and api.json() == {"changed": True, "sessions_ended": 1}
    refused = site.client("agent").post("/api/password", json={"current": "x", "new": NEW_PASSWORD})
    assert refused.status_code == 400 and "API tokens" in refused.json()["error"]


def test_a_new_hash_in_the_config_wins_over_a_password_set_in_the_dashboard() -> None:
    old, reset = hash_password(PASSWORD), hash_password("reset by the admin!")
    own = StoredPassword(hash_password(NEW_PASSWORD), fingerprint(old), NOW)
    before = Gate(WebSettings.model_validate({"users": [{"name": "g", "password_hash": old}]}))
    assert before.verify("g", NEW_PASSWORD, own) is not None and before.verify("g", PASSWORD, own) is None
    after = Gate(WebSettings.model_validate({"users": [{"name": "g", "password_hash": reset}]}))
    assert after.verify("g", "reset by the admin!", own) is not None and after.verify("g", NEW_PASSWORD, own) is None


def test_fifty_wrong_passwords_meet_429_with_retry_after_and_no_argon2(site: Site, hasher: Hasher) -> None:
    guesser = site.client()
    answers = [attempt(guesser, "sara", f"guess {n}") for n in range(50)]
    codes = [a.status_code for a in answers]
    assert codes[:3] == [401, 401, 401] and set(codes[3:]) == {429}
    assert hasher.calls == 3  # the refused 47 cost no argon2 work
    throttled = answers[-1]
    assert int(throttled.headers["retry-after"]) > 0
    assert "Troppi tentativi: riprova tra" in throttled.text and 'value="sara"' in throttled.text
    # the right password must wait too, and is taken once the wait is over
    assert attempt(guesser, "sara", PASSWORD).status_code == 429 and hasher.calls == 3
    site.clock.advance(seconds=int(throttled.headers["retry-after"]))
    assert attempt(guesser, "sara", PASSWORD).status_code == 303


def test_a_locked_account_refuses_the_right_password_until_the_lock_ends(
    site: Site, hasher: Hasher, caplog: pytest.LogCaptureFixture
) -> None:
    guesser = site.client()
    with caplog.at_level(logging.WARNING, logger="passaparola.web"):
        locked = until_locked(site, guesser, iter(["sara"] * 40))
    assert hasher.calls == site.settings.web.login_lock_after == 10
    assert locked.headers["retry-after"] == "900" and "Troppi tentativi: riprova tra 15 minuti" in locked.text
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "locked" in r.getMessage()]
    assert len(warned) == 1 and "'sara'" in warned[0] and "127.0.0.1" in warned[0]
    assert "wrong password" not in caplog.text
    assert metric(site, "passaparola_login_locked", kind="account") == 1

    calls = hasher.calls
    right = attempt(guesser, "sara", PASSWORD, lang="en")
    assert right.status_code == 429 and "Too many attempts: try again in 15 minutes" in right.text
    assert hasher.calls == calls
    locks = site.client("admin").get("/api/sessions").json()["locks"]  # the admin's page lists the lock
    assert {(lock["kind"], lock["subject"]) for lock in locks} == {("account", "sara")}
    assert "<bdi>sara</bdi>" in site.client("admin").get("/sessions").text
    site.clock.advance(minutes=14)
    assert attempt(guesser, "sara", PASSWORD).status_code == 429
    site.clock.advance(minutes=1)
    assert attempt(guesser, "sara", PASSWORD).status_code == 303
    assert metric(site, "passaparola_login_locked", kind="account") == 0


def test_one_address_is_locked_across_accounts(site: Site, hasher: Hasher, caplog: pytest.LogCaptureFixture) -> None:
    guesser = site.client()
    with caplog.at_level(logging.WARNING, logger="passaparola.web"):
        locked = until_locked(site, guesser, (f"someone-{n}" for n in range(100)))
    assert hasher.calls == site.settings.web.login_address_lock_after == 30  # each name tried once only
    assert int(locked.headers["retry-after"]) == 900
    assert any("address '127.0.0.1'" in r.getMessage() for r in caplog.records)
    assert attempt(site.client(), "giulia", PASSWORD).status_code == 429  # another account, same address
    assert metric(site, "passaparola_login_locked", kind="address") == 1
    site.clock.advance(minutes=15)
    assert attempt(site.client(), "giulia", PASSWORD).status_code == 303


def test_the_login_form_keeps_the_typed_name_after_a_failure(site: Site) -> None:
    failed = attempt(site.client(), "giulia", "hunter2-typo")
    assert failed.status_code == 401 and "Nome o password errati" in failed.text
    assert 'name="name" value="giulia"' in failed.text
    assert "hunter2-typo" not in failed.text  # the password is never echoed
    hostile = attempt(site.client(), '"><script>alert(1)</script>', "x")
    assert "<script>alert(1)" not in hostile.text and "&#34;&gt;&lt;script&gt;" in hostile.text


def test_an_agents_inbox_is_answered_while_sixteen_guesses_are_in_flight(site: Site, hasher: Hasher) -> None:
    giulia = site.login("giulia")
    guessers = [site.client() for _ in range(16)]
    tokens = [csrf_of(g.get("/login").text) for g in guessers]
    hasher.hold.clear()  # every guess that reaches argon2 stays there until released

    def guess(n: int) -> int:
        data = {"csrf": tokens[n], "name": "sara", "password": f"guess {n}"}
        return guessers[n].post("/login", data=data, timeout=60).status_code

    with ThreadPoolExecutor(16) as pool:
        answers = [pool.submit(guess, n) for n in range(16)]
        for _ in range(600):
            if hasher.running >= 2:
                break
            threading.Event().wait(0.01)
        assert hasher.running >= 2, "the guesses never reached argon2"
        inbox = giulia.get("/inbox")
        assert inbox.status_code == 200 and "<h1>Da rispondere" in inbox.text
        assert giulia.get("/api/inbox").status_code == 200
        assert not any(a.done() for a in answers)  # still in flight while the agent was answered
        hasher.hold.set()
        codes = [a.result() for a in answers]
    assert set(codes) <= {401, 429} and 429 in codes
    assert hasher.most <= VERIFY_SLOTS  # a bounded pool: guesses queue among themselves
    assert hasher.calls < 16  # counted before each queued guess is tried


def test_sessions_end_when_idle_too_long_or_when_the_user_leaves_the_config(demo_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "site.db"
    db.write_bytes(demo_db.read_bytes())
    secret = SecretStr("s" * 40)  # the same secret across restarts: the cookie stays valid, the session must not
    with serve_with(db, session_secret=secret, session_idle_minutes=30) as running:
        giulia = running.login("giulia")
        running.clock.advance(minutes=20)
        assert giulia.get("/api/me").status_code == 200
        running.clock.advance(minutes=20)
        assert giulia.get("/api/me").status_code == 200  # seen 20 minutes ago
        running.clock.advance(minutes=31)
        assert giulia.get("/api/me").status_code == 401
        cookie = cookie_of(running.login("giulia"))
    users = [u for u in web_settings(db).web.users if u.name != "giulia"]
    with serve_with(db, session_secret=secret, users=users) as running:
        assert with_cookie(running, cookie, "/api/me").status_code == 401
        reasons = {r[0] for r in running.store.db.execute("SELECT revoked_reason FROM web_sessions")}
        assert {"idle", "removed from the config"} <= reasons
        assert running.client("admin").get("/api/sessions").json()["items"] == []
