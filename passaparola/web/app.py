"""The web app: the dashboard's pages, the JSON API, the listeners' webhooks, ``/healthz`` and ``/metrics``.

Starlette, served by uvicorn in a thread beside the loop (`passaparola run`) or alone (`passaparola web`), on its
own connection to the database. Every response carries a strict Content-Security-Policy: the pages use no
inline script or style, so injected markup could not run even if it escaped the templates' autoescaping.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from passaparola.actions import Refusal
from passaparola.config import Settings
from passaparola.web import api, metrics, pages, webhooks
from passaparola.web.auth import Gate
from passaparola.web.context import HERE, Clock, build, error
from storage.migrations import migrations
from storage.store import Store

log = logging.getLogger("passaparola.web")
#: The longest `/healthz` waits for the database's write lock (milliseconds) before it says the write failed.
WRITE_WAIT_MS = 2000

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}


class SecurityHeaders:
    """Adds `SECURITY_HEADERS` to every HTTP response, and ``no-store`` to everything but static files."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class ServerSessions:
    """Looks the cookie's session id up in the database once per request, before any route runs.

    What it finds (or None) is ``scope["state"]["login"]`` for `Gate.principal`; an id that is unknown,
    ended, expired or idle too long is dropped from the cookie. Static files skip the look-up.
    """

    def __init__(self, app: ASGIApp, gate: Gate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not str(scope.get("path", "")).startswith("/static/"):
            session = scope.get("session")
            token = session.get("sid") if isinstance(session, dict) else None
            login = await self.gate.resolve(token) if isinstance(token, str) and token else None
            if login is None and isinstance(session, dict):
                session.pop("sid", None)
            scope.setdefault("state", {})["login"] = login
        await self.app(scope, receive, send)


def writes(store: Store) -> tuple[bool, str]:
    """Whether a write goes through (begun and rolled back: nothing changes), and what was seen. Another
    writer holding the lock past `WRITE_WAIT_MS` (the loop's maintenance) is busy, not broken."""
    conn = store.db.conn
    if conn.in_transaction:  # a write of this connection is under way: the database takes writes
        return True, "answers and takes a write"
    (busy,) = conn.execute("PRAGMA busy_timeout").fetchone()
    conn.execute(f"PRAGMA busy_timeout = {min(int(busy), WRITE_WAIT_MS)}")
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE daemon SET value = value WHERE name = 'heartbeat'")
        return True, "answers and takes a write"
    except sqlite3.Error as problem:
        if getattr(problem, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY:
            return True, f"answers; another writer held the lock over {WRITE_WAIT_MS} ms"
        return False, f"answers but takes no write: {problem}"
    finally:
        if conn.in_transaction:
            conn.rollback()
        conn.execute(f"PRAGMA busy_timeout = {int(busy)}")


def health(store: Store, now: datetime, limit: int, daemon: bool) -> dict[str, dict[str, Any]]:
    """What `/healthz` checks, each with ``ok`` and a ``detail`` for people: the database answers and takes a
    write, every migration is applied, and the loop's heartbeat. The heartbeat fails the check only when
    ``daemon`` (the loop runs in this process, `passaparola run`) and it is older than ``limit`` seconds or
    missing; the web app alone (`passaparola web`) reports it and stays healthy."""
    try:
        store.db.execute("SELECT 1").fetchone()
    except sqlite3.Error as problem:
        unknown = {"ok": False, "detail": "not checked: the database does not answer"}
        return {
            "database": {"ok": False, "detail": f"does not answer: {problem}"},
            "migrations": unknown,
            "heartbeat": {**unknown, "required": daemon},
        }
    writable, written = writes(store)
    checks: dict[str, dict[str, Any]] = {"database": {"ok": writable, "detail": written}}
    pending = [m.name for m in migrations.pending(store.db)]
    applied = len(migrations.applied(store.db))
    checks["migrations"] = {
        "ok": not pending,
        "detail": f"{len(pending)} not applied: {', '.join(pending)}" if pending else f"all {applied} applied",
    }
    beat = store.health.heartbeat()
    age = round((now - beat).total_seconds(), 1) if beat else None
    if daemon:
        ok = age is not None and age <= limit
        if age is None:
            detail = "no heartbeat yet from the loop"
        else:
            detail = f"beat {age:.0f} s ago" if ok else f"silent for {age:.0f} s: the loop is stuck or stopped"
    else:
        ok = True  # no loop in this process: whether one runs elsewhere is its own health check's business
        detail = "no daemon seen" if age is None else f"a daemon beat {age:.0f} s ago (not in this process)"
    checks["heartbeat"] = {"ok": ok, "detail": detail, "age_seconds": age, "limit_seconds": limit, "required": daemon}
    return checks


def create_app(settings: Settings, store: Store, clock: Clock, *, daemon: bool = False) -> Starlette:
    """The app over ``store`` (opened with ``shared=True``); ``clock`` gives the time (tests fix it). ``daemon``:
    the loop runs in this process (`passaparola run`), so `/healthz` fails when its heartbeat goes stale."""
    web = build(settings, store, clock)
    web.gate.connect(web.db, clock)
    ended = store.sessions.revoke_others(web.gate.users, clock(), "removed from the config")
    if ended:
        log.info("ended %d log-in sessions of people no longer in web.users", ended)

    async def healthz(request: Request) -> Response:
        limit = settings.web.heartbeat_max_age_seconds
        checks = await web.db.run(lambda store: health(store, clock(), limit, daemon))
        failing = [name for name, check in checks.items() if not check["ok"]]
        body = {
            "status": "failing" if failing else "ok",
            "failing": failing,
            "checks": checks,
            "heartbeat_age_seconds": checks["heartbeat"].get("age_seconds"),
        }
        return JSONResponse(body, status_code=503 if failing else 200)

    async def metrics_endpoint(request: Request) -> Response:
        try:
            web.gate.require(request, "admin")
        except Refusal as refused:
            return error(refused.status, str(refused))
        teams = [t.name for t in settings.triage.teams]
        body = await web.db.run(lambda s: metrics.render(s, clock, teams))
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error(exc.status_code, str(exc.detail))

    secret = settings.web.session_secret.get_secret_value() if settings.web.session_secret else ""
    if not secret:
        secret = secrets.token_urlsafe(32)
        if settings.web.users:
            log.info("web.session_secret is not set: log-in sessions end when passaparola restarts")
    routes = [
        Route("/healthz", healthz),
        Route("/metrics", metrics_endpoint),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
        *webhooks.routes(web),
        *api.routes(web),
        *pages.routes(web),
    ]
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(
            SessionMiddleware,
            secret_key=secret,
            session_cookie="passaparola",
            max_age=settings.web.session_hours * 3600,
            same_site="lax",
            https_only=settings.web.secure_cookies,
        ),
        Middleware(ServerSessions, gate=web.gate),
    ]
    return Starlette(routes=routes, middleware=middleware, exception_handlers={HTTPException: http_error})
