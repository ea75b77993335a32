"""What every route shares: the settings, the store behind a lock, the clock, the gate, and the templates."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse
from starlette.templating import Jinja2Templates

from listener.replying import Replier
from notifiers.log import printable
from passaparola.actions.replies import build_repliers
from passaparola.config import Settings
from passaparola.links import safe_url
from passaparola.web.auth import Gate
from passaparola.web.i18n import MESSAGES, translate
from passaparola.web.sayings import phrases, said_text, say
from storage.store import Store

Clock = Callable[[], datetime]
T = TypeVar("T")
HERE = Path(__file__).resolve().parent


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


class Locked:
    """One store connection shared by the server's threads, one at a time."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.lock = threading.Lock()

    async def call(self, method: str, *args: Any) -> Any:
        return await self.run(lambda store: getattr(store, method)(*args))

    async def run(self, work: Callable[[Store], T]) -> T:
        def locked() -> T:
            with self.lock:
                return work(self.store)

        return await run_in_threadpool(locked)


def local_path(target: str | None, default: str) -> str:
    """``target`` if it is a path on this site (never ``//host`` or a full URL: no open redirect)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


#: Books whose unread texts are data (shown isolated, in ``lang``): the rest are the dashboard's own words.
DATA_BOOKS = {"alert": "en", "finding": "en", "detail": "", "excluded": "en"}


def said(book: str, text: str | None, language: str, code: str = "") -> Markup:
    """An English text the code wrote (an alert's title, a finding, a refusal...) said in ``language``
    (`passaparola.web.sayings.say`): its data parts in ``<bdi>``, so a handle cannot turn the sentence around.
    A text no phrase reads is shown as it was: isolated when it is data, plain when it is a message."""
    text = str(text or "")
    parts = say(phrases(book, code), text, language)
    if parts is None:
        if book not in DATA_BOOKS:
            return escape(text)
        lang = DATA_BOOKS[book]
        return Markup('<bdi lang="{}">{}</bdi>').format(lang, printable(text)) if lang else _isolated(text)
    return Markup("").join(_isolated(piece) if data else escape(piece) for piece, data in parts)


def _isolated(text: str) -> Markup:
    return Markup("<bdi>{}</bdi>").format(printable(text))


@dataclass
class Web:
    settings: Settings
    db: Locked
    clock: Clock
    gate: Gate
    templates: Jinja2Templates
    #: The sources that can answer on their platform, built once (each holds its client).
    repliers: dict[str, Replier] = field(default_factory=dict)


def build(settings: Settings, store: Store, clock: Clock) -> Web:
    zone = settings.triage.business.zone

    def when(value: str | datetime | None) -> str:
        if not value:
            return "–"
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")

    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"], default_for_string=True),
    )
    env.filters["printable"] = lambda value: printable(str(value))
    env.filters["safe_url"] = safe_url
    env.filters["when"] = when
    env.globals["zone_name"] = str(zone)  # every page names the zone its times are in
    env.globals["said"] = said  # English the code wrote, in the page's language
    env.globals["said_text"] = said_text  # the same as plain text (an SVG title, a flash)
    env.globals["catalogue"] = frozenset(MESSAGES)  # the message ids: a value without words shows as data
    templates = Jinja2Templates(env=env)
    return Web(settings, Locked(store), clock, Gate(settings.web), templates, build_repliers(settings))


def language(query: str, session: dict[str, Any], default: str) -> str:
    """The page language: ``?lang=`` (remembered in the session), the session's, else the configured default."""
    if query in ("it", "en"):
        session["lang"] = query
        return query
    chosen = session.get("lang")
    return chosen if chosen in ("it", "en") else default


__all__ = ["Locked", "Web", "build", "error", "language", "local_path", "safe_url", "translate"]
