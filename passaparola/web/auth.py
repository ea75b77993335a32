"""Who may do what: people log in with a password (argon2 hashes in the config, or one they set themselves),
programs send an API token; both carry a role. Every form and every cookie-borne API write carries the
session's CSRF token.

A person's session lives in the database (`storage.sessions`); the signed cookie carries only its random id
(beside the page language, the CSRF token and a flash message). Every request checks that id server-side, so a
log-out, an admin's revoke, a password change or a removal from the config ends it at once, wherever the cookie
was copied to.

Log-ins are throttled per account and per client address: past a few failures each try waits 2, 4, 8... seconds,
past more the account (or address) is locked for a while; a refused try costs no argon2 work. Argon2 itself runs
in a pool of `VERIFY_SLOTS`, so parallel guesses queue among themselves instead of taking every CPU and thread
from the people working the inbox.

The client address is ``request.client.host``, as uvicorn reports it: behind a reverse proxy that is the proxy's
address, unless uvicorn is told to trust the proxy (it honours ``X-Forwarded-For`` only from the addresses in
``FORWARDED_ALLOW_IPS``, by default loopback). Passaparola never reads that header itself: anyone can send it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

import anyio
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from passaparola.actions import Actor, Refusal
from passaparola.config import UserSettings, WebSettings
from passaparola.web.i18n import translate
from storage.sessions import Failures, SessionRow, StoredPassword
from storage.store import Store

log = logging.getLogger("passaparola.web")
T = TypeVar("T")

_hasher = PasswordHasher()
#: Verified against when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY = _hasher.hash("not a password anyone has")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
#: Argon2 runs at once (each takes 64 MiB and 4 lanes): more guesses wait their turn without a thread.
VERIFY_SLOTS = 2
#: Tries waiting for a slot past which more are refused at once (a flood from many addresses).
MAX_WAITING = 64
DELAY_CAP_SECONDS = 60
MIN_PASSWORD = 12


def hash_password(password: str) -> str:
    """An argon2id hash for ``web.users[].password_hash``."""
    return _hasher.hash(password)


def fingerprint(password_hash: str) -> str:
    """Which config hash a password set in the dashboard replaced (a new hash in the config wins again)."""
    return hashlib.sha256(password_hash.encode()).hexdigest()


class Runner(Protocol):
    """The store behind the web app's lock (`context.Locked`)."""

    async def run(self, work: Callable[[Store], T]) -> T: ...


class Refused(Refusal):
    """A refusal the pages show in their own language: ``key`` in the catalogue, with ``{n}`` filled in."""

    def __init__(self, status: int, key: str, n: int = 0, retry_after: int = 0) -> None:
        super().__init__(status, translate(key, "en").format(n=n))
        self.key, self.n, self.retry_after = key, n, retry_after

    def text(self, language: str) -> str:
        return translate(self.key, language).format(n=self.n)


def throttled(seconds: int) -> Refused:
    """429 "try again in N seconds/minutes", with ``Retry-After``."""
    if seconds < 60:
        return Refused(429, "too_many_second" if seconds == 1 else "too_many_seconds", seconds, seconds)
    minutes = math.ceil(seconds / 60)
    return Refused(429, "too_many_minute" if minutes == 1 else "too_many_minutes", minutes, seconds)


@dataclass(frozen=True, slots=True)
class Rule:
    delay_after: int
    lock_after: int


class Throttle:
    """The growing delay and the temporary lock, read from the failure counters.

    After ``delay_after`` failures each further try waits 2, 4, 8... seconds (at most `DELAY_CAP_SECONDS`) from
    the last failure; at ``lock_after`` the account or address is locked for ``login_lock_minutes``. Failures
    are forgotten after that long without one. An address's delay starts at a third of its lock threshold.
    """

    def __init__(self, web: WebSettings) -> None:
        address_lock = web.login_address_lock_after
        self.rules = {
            "account": Rule(web.login_delay_after, web.login_lock_after),
            "address": Rule(max(1, min(address_lock // 3, address_lock - 1)), address_lock),
        }
        self.span = timedelta(minutes=web.login_lock_minutes)

    def delay(self, failures: int, rule: Rule) -> int:
        return int(min(2 ** min(failures - rule.delay_after + 1, 16), DELAY_CAP_SECONDS))

    def wait(self, found: Iterable[Failures], now: datetime) -> int:
        """Whole seconds before a try may be made (0: now)."""
        longest = 0.0
        for f in found:
            if f.locked_until is not None and f.locked_until > now:
                longest = max(longest, (f.locked_until - now).total_seconds())
                continue
            rule = self.rules[f.kind]
            if now - f.last_at >= self.span or f.failures < rule.delay_after:
                continue
            ready = f.last_at + timedelta(seconds=self.delay(f.failures, rule))
            longest = max(longest, (ready - now).total_seconds())
        return math.ceil(longest) if longest > 0 else 0

    def locks(self, f: Failures) -> bool:
        return f.failures >= self.rules[f.kind].lock_after


def _keys(name: str, address: str) -> list[tuple[str, str]]:
    return [("account", name), ("address", address or "unknown")]


class Gate:
    """Checks passwords, tokens, sessions and CSRF tokens against the web settings and the database.

    Built from the settings alone (password checks against the config work so); `connect` gives it the store
    and the clock for sessions, throttling and password changes.
    """

    def __init__(self, web: WebSettings) -> None:
        self.users = {u.name: u for u in web.users}
        self.tokens = [
            (hashlib.sha256(t.token.get_secret_value().encode()).digest(), Actor(t.name, t.role, "", "token"))
            for t in web.tokens
        ]
        self.throttle = Throttle(web)
        self.lifetime = timedelta(hours=web.session_hours)
        self.idle = timedelta(minutes=web.session_idle_minutes) if web.session_idle_minutes else None
        self.slots = anyio.CapacityLimiter(VERIFY_SLOTS)
        self.waiting = 0
        self.db: Runner | None = None
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def connect(self, db: Runner, clock: Callable[[], datetime]) -> None:
        self.db, self.clock = db, clock

    def _store(self) -> Runner:
        if self.db is None:
            raise RuntimeError("Gate.connect(store, clock) first: sessions live in the database")
        return self.db

    # -- passwords -----------------------------------------------------------------------------------

    def _principal(self, user: UserSettings) -> Actor:
        return Actor(user.name, user.role, user.member or user.name, "session")

    def hash_of(self, user: UserSettings, own: StoredPassword | None) -> str:
        """The hash that counts: the person's own, unless the config's has changed since (an admin's reset)."""
        configured = user.password_hash.get_secret_value()
        if own is not None and hmac.compare_digest(own.replaces, fingerprint(configured)):
            return own.password_hash
        return configured

    def verify(self, name: str, password: str, own: StoredPassword | None = None) -> Actor | None:
        """The person if ``password`` is theirs (argon2: slow on purpose; call it through `check`)."""
        user = self.users.get(name)
        stored = self.hash_of(user, own) if user else _DUMMY
        try:
            _hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        return self._principal(user) if user is not None else None

    def login(self, name: str, password: str) -> Actor | None:
        """Check against the config alone (no throttling, no store): for tools and tests."""
        return self.verify(name, password)

    async def wait(self, name: str, address: str) -> int:
        """Seconds before this account may try from this address (0: now); no argon2 work."""
        now = self.clock()
        found = await self._store().run(lambda store: store.sessions.failures(_keys(name, address)))
        return self.throttle.wait(found, now)

    async def check(self, name: str, password: str, address: str) -> Actor | None:
        """Throttle, then argon2 in the bounded pool; counts a failure, clears the account's on success.

        Raises `Refused` (429) while the account or the address must wait or is locked. The counters are read
        again once a slot is free: guesses sent in parallel are counted before each one is tried.
        """
        if seconds := await self.wait(name, address):
            raise throttled(seconds)
        if self.waiting >= MAX_WAITING:
            raise throttled(5)
        self.waiting += 1
        try:
            await self.slots.acquire()
        finally:
            self.waiting -= 1
        try:
            if seconds := await self.wait(name, address):
                raise throttled(seconds)
            own = await self._store().run(lambda store: store.sessions.password(name))  # known or not: same work
            who = await run_in_threadpool(self.verify, name, password, own)
        finally:
            self.slots.release()
        if who is None:
            await self._failed(name, address)
        else:
            await self._store().run(lambda store: store.sessions.clear("account", name))
        return who

    async def _failed(self, name: str, address: str) -> None:
        now = self.clock()

        def record(store: Store) -> list[Failures]:
            locked = []
            for kind, subject in _keys(name, address):
                counted = store.sessions.fail(kind, subject, now, self.throttle.span)
                if self.throttle.locks(counted):
                    store.sessions.lock(kind, subject, now + self.throttle.span)
                    locked.append(counted)
            return locked

        for f in await self._store().run(record):
            log.warning(
                "log-in locked for %d minutes after %d failed attempts: %s %r (last try: user %r from %s)",
                self.throttle.span.total_seconds() // 60,
                f.failures,
                f.kind,
                f.subject,
                name[:100],
                address,
            )

    # -- sessions ------------------------------------------------------------------------------------

    async def log_in(
        self, name: str, password: str, address: str, agent: str, replacing: str | None = None
    ) -> tuple[Actor, str] | None:
        """A new session (its secret id for the cookie) if the password is right; the old one ends."""
        who = await self.check(name, password, address)
        if who is None:
            return None
        now = self.clock()
        token, _ = await self._store().run(
            lambda store: store.sessions.start(who.name, now, now + self.lifetime, address, agent, replacing)
        )
        return who, token

    async def resolve(self, token: str) -> SessionRow | None:
        """The live session of this cookie id, if its user is still in the config."""
        now = self.clock()
        found = await self._store().run(lambda store: store.sessions.find(token, now, self.idle))
        return found if found is not None and found.user in self.users else None

    async def log_out(self, token: str) -> None:
        now = self.clock()
        await self._store().run(lambda store: store.sessions.end(token, now, "logout"))

    async def change_password(
        self, who: Actor, session: SessionRow | None, current: str, new: str, address: str
    ) -> int:
        """Set ``who``'s own password (the current one required) and end their other sessions; how many."""
        user = self.users.get(who.name)
        if who.via != "session" or user is None:
            raise Refused(400, "password_token")
        if len(new) < MIN_PASSWORD:
            raise Refused(400, "password_short", MIN_PASSWORD)
        if new.strip().casefold() == who.name.strip().casefold():
            raise Refused(400, "password_name")
        if new == current:
            raise Refused(400, "password_same")
        if await self.check(who.name, current, address) is None:
            raise Refused(400, "password_wrong")
        async with self.slots:
            hashed = await run_in_threadpool(hash_password, new)
        now, replaces = self.clock(), fingerprint(user.password_hash.get_secret_value())
        keep = session.id if session is not None else None

        def store_it(store: Store) -> int:
            store.sessions.set_password(who.name, hashed, replaces, now)
            return store.sessions.revoke_user(who.name, now, "password changed", keep=keep)

        return await self._store().run(store_it)

    async def live(self) -> tuple[list[SessionRow], list[Failures]]:
        """Sessions that let someone in now, and the accounts and addresses locked now (the admin's page)."""
        now = self.clock()
        return await self._store().run(lambda store: (store.sessions.live(now, self.idle), store.sessions.locks(now)))

    async def revoke(self, session_id: int, by: Actor) -> SessionRow | None:
        now = self.clock()
        return await self._store().run(lambda store: store.sessions.revoke(session_id, now, f"revoked by {by.name}"))

    async def revoke_user(self, user: str, by: Actor) -> int:
        now = self.clock()
        return await self._store().run(lambda store: store.sessions.revoke_user(user, now, f"revoked by {by.name}"))

    # -- callers -------------------------------------------------------------------------------------

    def token(self, given: str) -> Actor | None:
        digest = hashlib.sha256(given.encode()).digest()
        found = None
        for expected, principal in self.tokens:  # compare against every token: no early exit to time
            if hmac.compare_digest(digest, expected):
                found = principal
        return found

    def principal(self, request: Request) -> Actor | None:
        """The caller: a bearer token if one is sent, else the user of the live server-side session.

        The session was looked up once for this request (`app.ServerSessions`), before any route ran.
        """
        header = request.headers.get("authorization", "")
        if header.startswith("Bearer "):
            return self.token(header.removeprefix("Bearer ").strip())
        login = session_of(request)
        user = self.users.get(login.user) if login is not None else None
        return self._principal(user) if user is not None else None

    def require(self, request: Request, role: str) -> Actor:
        """The caller if they hold ``role`` (401 when nobody is logged in, 403 when the role is too low)."""
        who = self.principal(request)
        if who is None:
            raise Refusal(401, "log in, or send Authorization: Bearer <an API token from web.tokens>")
        if not who.can(role):
            raise Refusal(403, f"{who.name} is {who.role}; this needs {role} or above")
        return who


def session_of(request: Request) -> SessionRow | None:
    """This request's live session, as `app.ServerSessions` found it (None: not logged in)."""
    found = request.scope.get("state", {}).get("login")
    return found if isinstance(found, SessionRow) else None


def client_address(request: Request) -> str:
    """The caller's address as the server saw it (see the module's note on proxies)."""
    return request.client.host if request.client else ""


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use."""
    token = request.session.get("csrf")
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def check_csrf(request: Request, who: Actor | None, given: str) -> None:
    """Refuse a state-changing request from a browser session without the session's token (403)."""
    if request.method in SAFE_METHODS or (who is not None and who.via == "token"):
        return
    expected = request.session.get("csrf")
    given = given or request.headers.get("x-csrf-token", "")
    if not isinstance(expected, str) or not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Refusal(403, "missing or wrong CSRF token; reload the page and try again")
