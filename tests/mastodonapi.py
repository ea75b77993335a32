"""A local Mastodon instance on 127.0.0.1 for tests: the REST API's paths, entities, paging and errors (Mastodon 4.3).

It holds what one instance knows (``tests/fixtures/mastodon/instance.json``): accounts, statuses (ids are this
instance's own; ``url`` and ``uri`` the author's server's) and the brand account's notifications, and answers as the
brand account (``me``) whose Bearer token is ``token``. ``scopes`` are the token's: reads need ``read`` (or the
``read:...`` scope of the endpoint), a post ``write:statuses``; otherwise Mastodon's 403 "This action is outside the
authorized scopes". A wrong or missing token is 401 ``{"error": "The access token is invalid"}``.

Reads, newest first, ``limit`` / ``max_id`` / ``since_id`` / ``min_id`` as Mastodon reads them (``min_id``: the
page immediately newer than it, still listed newest first), with the ``Link`` header Mastodon writes: ``rel="next"``
(``max_id`` of the page's oldest) only when the page is full, ``rel="prev"`` (``min_id`` of its newest) whenever it
is not empty, keeping the endpoint's own parameters (``limit``, ``types[]``...), sorted as Rails writes them:

- ``GET /api/v1/notifications`` (``types[]``, ``exclude_types[]``; default 40, at most 80);
- ``GET /api/v1/timelines/tag/:hashtag``: public statuses with the tag, never reblogs (default 20, at most 40);
  a tag nobody used is an empty list, as Mastodon 4 answers;
- ``GET /api/v1/accounts/:id/statuses`` (``exclude_reblogs``, ``exclude_replies``; the owner sees every
  visibility, others public and unlisted);
- ``GET /api/v2/search`` (``type=statuses``, ``offset``, ``limit``; no Link header): every word of ``q`` in the text,
  newest first, only where Mastodon 4 searches: public posts of accounts that opted in (``indexable``), and posts the
  brand wrote, was mentioned in or interacted with (``interacted``); nothing without Elasticsearch
  (``search_enabled = False``). ``offset`` without a token is 401, as Mastodon answers;
- ``GET /api/v1/statuses/:id`` (404 ``Record not found``), ``GET /api/v1/accounts/verify_credentials``,
  ``GET /api/v1/instance`` and ``GET /api/v2/instance`` (``max_characters``, ``characters_reserved_per_url``).

Writes: ``POST /api/v1/statuses`` (form-encoded, as Mastodon.py sends it) stores a status by ``me`` with the HTML
Mastodon renders (paragraphs, ``<br />``, linked mentions, hashtags and URLs), the visibility asked for (else
public), ``in_reply_to_id`` / ``in_reply_to_account_id``; it refuses a reply to a status it does not have (404 "The
post you are trying to reply to does not appear to exist."), a blank text (422 "Validation failed: Text can't be
blank") and one over ``max_characters`` as Mastodon counts (links ``characters_reserved_per_url``, a remote mention
by its local part, grapheme clusters): 422 "Validation failed: Text character limit of 500 exceeded". An
``Idempotency-Key`` already used by the account answers the status it made, and makes none. ``writes`` keeps every
POST (form, headers, and the status made or returned); ``created`` counts the statuses it really made.
``stall_after_write`` seconds of silence after storing a status is a timeout after Mastodon accepted it.

Every answer carries ``X-RateLimit-Limit`` / ``-Remaining`` / ``-Reset`` (ISO 8601 with microseconds, as
rack-attack writes it); ``fault(path, status=429, ...)`` scripts one answer (status, body, headers, delay) for a path
(prefix) and method, once each; a 429 says ``{"error": "Too many requests"}`` with ``X-RateLimit-Remaining: 0``.
Every request is kept in ``requests`` (method, path with query, headers).
"""

from __future__ import annotations

import html
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import regex

from tests.conftest import QuietHandler, local_server

FIXTURE = Path(__file__).parent / "fixtures" / "mastodon" / "instance.json"
DOMAIN = "mastodon.social"
INVALID_TOKEN = {"error": "The access token is invalid"}
OUT_OF_SCOPE = {"error": "This action is outside the authorized scopes"}
NOT_FOUND = {"error": "Record not found"}
NO_PARENT = {"error": "The post you are trying to reply to does not appear to exist."}
TOO_MANY = {"error": "Too many requests"}


def stamp(moment: datetime) -> str:
    """A time as Mastodon writes it in bodies: ``2026-03-02T08:00:00.000Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def reset_header(moment: datetime) -> str:
    """``X-RateLimit-Reset`` as rack-attack writes it: ``2026-03-02T09:05:00.000000Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def snowflake(moment: datetime, sequence: int = 0) -> str:
    """A Mastodon status id: milliseconds since the epoch, shifted 16 bits, plus a sequence."""
    return str((int(moment.timestamp() * 1000) << 16) + sequence)


def counted_length(text: str, per_url: int) -> int:
    """How Mastodon's StatusLengthValidator counts: a URL ``per_url``, ``@user@domain`` as ``@user``, graphemes."""
    text = re.sub(r"https?://\S+", "x" * per_url, text)
    text = re.sub(r"@(\w+)@[\w.\-]+\w", r"@\1", text)
    return len(regex.findall(r"\X", text))


@dataclass
class Fault:
    """One scripted answer for requests under ``path``: ``status`` with ``body`` and ``headers``, after ``delay``."""

    path: str
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    method: str = ""  # "" for any method
    delay: float = 0.0
    times: int = 1


@dataclass
class FakeMastodon:
    token: str
    me: str
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    notifications: list[dict[str, Any]] = field(default_factory=list)  # newest first
    scopes: set[str] = field(default_factory=lambda: {"read", "write:statuses"})
    version: str = "4.3.2"
    max_characters: int = 500
    characters_reserved_per_url: int = 23
    search_enabled: bool = True
    #: Statuses the brand account favourited, bookmarked or reblogged: Mastodon's search finds them for it.
    interacted: set[str] = field(default_factory=set)
    faults: list[Fault] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    writes: list[dict[str, Any]] = field(default_factory=list)
    created: int = 0
    idempotency: dict[str, str] = field(default_factory=dict)
    stall_after_write: float = 0.0
    #: When new statuses are made (their ``created_at`` and snowflake id); now when None.
    write_time: datetime | None = None
    rate_remaining: int = 299
    rate_reset: datetime = field(default_factory=lambda: datetime.now(UTC) + timedelta(minutes=5))
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_fixture(cls, token: str, path: Path = FIXTURE) -> FakeMastodon:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            token=token,
            me=data["me"],
            accounts={a["id"]: a for a in data["accounts"]},
            statuses={s["id"]: s for s in data["statuses"]},
            notifications=list(data["notifications"]),
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fault(self, path: str, **kwargs: Any) -> None:
        self.faults.append(Fault(path, **kwargs))

    def paths(self, method: str = "GET") -> list[str]:
        """The paths (with queries) asked for with ``method``, in order."""
        return [r["path"] for r in self.requests if r["method"] == method]

    # -- adding data as the fediverse would ------------------------------------------------------

    def add_status(
        self,
        account_id: str,
        text: str,
        when: datetime,
        *,
        reply_to: str = "",
        visibility: str = "public",
        tags: tuple[str, ...] = (),
        notify: bool = False,
        sequence: int = 0,
        language: str = "it",
    ) -> dict[str, Any]:
        """A status someone posted (arriving on this instance), rendered as Mastodon renders it; ``notify`` makes
        the brand's ``mention`` notification for it."""
        with self.lock:
            status = self._status(account_id, text, when, reply_to, visibility, sequence, language=language, tags=tags)
            self.statuses[status["id"]] = status
            if notify:
                number = max((int(n["id"]) for n in self.notifications), default=41000000) + 7
                self.notifications.insert(
                    0,
                    {
                        "id": str(number),
                        "type": "mention",
                        "created_at": status["created_at"],
                        "account": self.accounts[account_id],
                        "status": status,
                    },
                )
            return status

    def _status(
        self,
        account_id: str,
        text: str,
        when: datetime,
        reply_to: str,
        visibility: str,
        sequence: int,
        language: str = "it",
        tags: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        account = self.accounts[account_id]
        status_id = snowflake(when, sequence)
        while status_id in self.statuses:
            sequence += 1
            status_id = snowflake(when, sequence)
        content, mentioned, found_tags = self.render(text)
        parent = self.statuses.get(reply_to) if reply_to else None
        host = account["acct"].split("@", 1)[1] if "@" in account["acct"] else DOMAIN
        return {
            "id": status_id,
            "created_at": stamp(when),
            "in_reply_to_id": parent["id"] if parent else None,
            "in_reply_to_account_id": parent["account"]["id"] if parent else None,
            "sensitive": False,
            "spoiler_text": "",
            "visibility": visibility,
            "language": language,
            "uri": f"https://{host}/users/{account['username']}/statuses/{status_id}",
            "url": f"https://{host}/@{account['username']}/{status_id}",
            "replies_count": 0,
            "reblogs_count": 0,
            "favourites_count": 0,
            "edited_at": None,
            "favourited": False,
            "reblogged": False,
            "muted": False,
            "bookmarked": False,
            "content": content,
            "filtered": [],
            "reblog": None,
            "application": {"name": "passaparola", "website": None} if account_id == self.me else None,
            "account": account,
            "media_attachments": [],
            "mentions": [
                {"id": a["id"], "username": a["username"], "url": a["url"], "acct": a["acct"]} for a in mentioned
            ],
            "tags": [{"name": t.lower(), "url": f"https://{DOMAIN}/tags/{t.lower()}"} for t in (*found_tags, *tags)],
            "emojis": [],
            "card": None,
            "poll": None,
        }

    def render(self, text: str) -> tuple[str, list[dict[str, Any]], list[str]]:
        """Mastodon's TextFormatter, for what tests type: HTML-escaped, links, mentions of known accounts and hashtags
        linked, a blank line a new paragraph, a line break ``<br />``."""
        by_acct = {a["acct"].lower(): a for a in self.accounts.values()}
        mentioned: list[dict[str, Any]] = []
        tags: list[str] = []
        token = re.compile(r"(https?://\S+)|(?<![\w/])@(\w+(?:@[\w.\-]+\w)?)|(?<![\w&/])#(\w+)")

        def piece(match: re.Match[str]) -> str:
            url, acct, tag = match.groups()
            if url:
                shown = url.split("://", 1)[1]
                prefix = url[: len(url) - len(shown)]
                if shown.startswith("www."):
                    prefix, shown = prefix + "www.", shown[4:]
                visible, rest = (shown[:30], shown[30:]) if len(shown) > 30 else (shown, "")
                cls = "ellipsis" if rest else ""
                return (
                    f'<a href="{html.escape(url)}" target="_blank" rel="nofollow noopener">'
                    f'<span class="invisible">{html.escape(prefix)}</span><span class="{cls}">{html.escape(visible)}'
                    f'</span><span class="invisible">{html.escape(rest)}</span></a>'
                )
            if acct:
                account = by_acct.get(acct.lower())
                if account is None:
                    return html.escape(match.group(0))
                mentioned.append(account)
                return (
                    f'<span class="h-card" translate="no"><a href="{account["url"]}" class="u-url mention">'
                    f"@<span>{account['username']}</span></a></span>"
                )
            tags.append(tag)
            href = f"https://{DOMAIN}/tags/{tag.lower()}"
            return f'<a href="{href}" class="mention hashtag" rel="tag">#<span>{tag}</span></a>'

        paragraphs = []
        for paragraph in re.split(r"\n\s*\n", text.strip()):
            lines = []
            for line in paragraph.split("\n"):
                out, last = [], 0
                for match in token.finditer(line):
                    out.append(html.escape(line[last : match.start()]))
                    out.append(piece(match))
                    last = match.end()
                out.append(html.escape(line[last:]))
                lines.append("".join(out))
            paragraphs.append("<p>" + "<br />".join(lines) + "</p>")
        return "".join(paragraphs), mentioned, tags

    # -- reading ---------------------------------------------------------------------------------

    def visible_to_me(self, status: dict[str, Any]) -> bool:
        mine = status["account"]["id"] == self.me
        mentions_me = any(m["id"] == self.me for m in status.get("mentions") or [])
        return mine or mentions_me or status["visibility"] in ("public", "unlisted")

    def searchable(self, status: dict[str, Any]) -> bool:
        """Where Mastodon 4's full-text search looks, for the brand account."""
        if status.get("reblog"):
            return False
        mine = status["account"]["id"] == self.me
        mentions_me = any(m["id"] == self.me for m in status.get("mentions") or [])
        if mine or mentions_me or status["id"] in self.interacted:
            return True
        return bool(status["account"].get("indexable")) and status["visibility"] == "public"

    def search(self, query: dict[str, list[str]], authorised: bool) -> tuple[int, Any]:
        q = one(query, "q")
        if one(query, "offset") and not authorised:
            return 401, {"error": "Search queries pagination is not supported without authentication"}
        limit = min(int(one(query, "limit") or 20), 40)
        offset = int(one(query, "offset") or 0)
        kind = one(query, "type")
        words = [w.lower() for w in q.split()]
        statuses: list[dict[str, Any]] = []
        if self.search_enabled and kind in ("", "statuses"):
            for status in sorted(self.statuses.values(), key=lambda s: int(s["id"]), reverse=True):
                text = re.sub(r"<[^>]+>", " ", html.unescape(status.get("content") or "")).lower()
                if self.searchable(status) and words and all(re.search(rf"\b{re.escape(w)}\b", text) for w in words):
                    statuses.append(status)
        return 200, {"accounts": [], "statuses": statuses[offset : offset + limit], "hashtags": []}

    def page(
        self,
        items: list[dict[str, Any]],
        query: dict[str, list[str]],
        path: str,
        kept: tuple[str, ...],
        default: int,
        most: int,
    ) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """A page of ``items`` (newest first) for ``query``, and the Link header Mastodon writes for it."""
        limit = min(int(one(query, "limit") or default), most)
        max_id, since_id, min_id = (int(one(query, k) or 0) or None for k in ("max_id", "since_id", "min_id"))
        chosen = [
            i
            for i in items
            if (max_id is None or int(i["id"]) < max_id)
            and (since_id is None or int(i["id"]) > since_id)
            and (min_id is None or int(i["id"]) > min_id)
        ]
        chosen.sort(key=lambda i: int(i["id"]), reverse=True)
        page = chosen[-limit:] if min_id is not None else chosen[:limit]  # min_id: the page just newer than it
        links = []
        params = [(k, v) for k in kept for v in query.get(k, [])]
        if len(page) == limit:
            links.append(f'<{self.link(path, params, "max_id", page[-1]["id"])}>; rel="next"')
        if page:
            links.append(f'<{self.link(path, params, "min_id", page[0]["id"])}>; rel="prev"')
        return page, ({"Link": ", ".join(links)} if links else {})

    def link(self, path: str, params: list[tuple[str, str]], name: str, value: str) -> str:
        query = urlencode(sorted([*params, (name, value)]))
        return f"{self.base_url}{path}?{query}"

    # -- writing ---------------------------------------------------------------------------------

    def post(self, form: dict[str, list[str]], headers: dict[str, str]) -> tuple[int, Any]:
        text = one(form, "status")
        reply_to = one(form, "in_reply_to_id")
        key = headers.get("Idempotency-Key", "")
        with self.lock:
            if key and key in self.idempotency:
                status = self.statuses[self.idempotency[key]]
                self.writes.append({"form": form, "headers": headers, "status": status, "repeat": True})
                return 200, status
            if reply_to and reply_to not in self.statuses:
                return 404, NO_PARENT
            if not text.strip():
                return 422, {"error": "Validation failed: Text can't be blank"}
            if counted_length(text, self.characters_reserved_per_url) > self.max_characters:
                return 422, {"error": f"Validation failed: Text character limit of {self.max_characters} exceeded"}
            visibility = one(form, "visibility") or "public"
            if visibility not in ("public", "unlisted", "private", "direct"):
                return 422, {"error": "Validation failed: Visibility is not included in the list"}
            when = self.write_time or datetime.now(UTC)
            status = self._status(
                self.me, text, when, reply_to, visibility, self.created, language=one(form, "language") or "it"
            )
            self.statuses[status["id"]] = status
            if reply_to:
                self.statuses[reply_to]["replies_count"] += 1
            if key:
                self.idempotency[key] = status["id"]
            self.created += 1
            self.writes.append({"form": form, "headers": headers, "status": status, "repeat": False})
        if self.stall_after_write:
            time.sleep(self.stall_after_write)
        return 200, status

    # -- the HTTP side ---------------------------------------------------------------------------

    def answer(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(target)
        path = unquote(parts.path).rstrip("/") or "/"  # Rails routes ignore a trailing slash
        query = parse_qs(parts.query, keep_blank_values=True)
        for fault in list(self.faults):
            if path.startswith(fault.path) and fault.method in ("", method):
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
                if fault.delay:
                    time.sleep(fault.delay)
                extra = dict(fault.headers)
                if fault.status == 429:
                    extra.setdefault("X-RateLimit-Remaining", "0")
                return fault.status, fault.body if fault.body is not None else self.default_body(fault.status), extra
        if path in ("/api/v1/instance", "/api/v2/instance"):
            return 200, self.instance_v1() if path.endswith("v1/instance") else self.instance_v2(), {}
        auth = headers.get("Authorization", "")
        authorised = auth == f"Bearer {self.token}"
        if path == "/api/v2/search":
            if auth and not authorised:
                return 401, INVALID_TOKEN, {}
            status, found = self.search(query, authorised)
            return status, found, {}
        if not authorised:
            return 401, INVALID_TOKEN, {}
        if method == "POST" and path == "/api/v1/statuses":
            if not self.allowed("write:statuses"):
                return 403, OUT_OF_SCOPE, {}
            status, made = self.post(parse_qs(body.decode("utf-8"), keep_blank_values=True), headers)
            return status, made, {}
        if method != "GET":
            return 404, NOT_FOUND, {}
        return self.read(path, query)

    def read(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        if path == "/api/v1/accounts/verify_credentials":
            if not self.allowed("read:accounts"):
                return 403, OUT_OF_SCOPE, {}
            me = dict(self.accounts[self.me])
            me["source"] = {"privacy": "public", "sensitive": False, "language": "it", "note": "", "fields": []}
            me["role"] = {"id": "-99", "name": "", "permissions": "0", "color": "", "highlighted": False}
            return 200, me, {}
        if not self.allowed("read:statuses" if "statuses" in path or "timelines" in path else "read:notifications"):
            return 403, OUT_OF_SCOPE, {}
        if path == "/api/v1/notifications":
            types = set(query.get("types[]", []))
            excluded = set(query.get("exclude_types[]", []))
            items = []
            for n in self.notifications:
                if (types and n["type"] not in types) or n["type"] in excluded:
                    continue
                status = self.statuses.get((n.get("status") or {}).get("id", ""))
                if n.get("status") and status is None:
                    continue  # the status was deleted: so is its notification
                items.append({**n, "status": status})
            page, links = self.page(items, query, path, ("exclude_types[]", "limit", "types[]"), 40, 80)
            return 200, page, links
        if tag := re.fullmatch(r"/api/v1/timelines/tag/([^/]+)", path):
            name = tag.group(1).lower()
            items = [
                s
                for s in self.statuses.values()
                if s["visibility"] == "public"
                and not s.get("reblog")
                and any(t["name"] == name for t in s.get("tags") or [])
            ]
            page, links = self.page(items, query, path, ("limit", "local", "only_media"), 20, 40)
            return 200, page, links
        if account := re.fullmatch(r"/api/v1/accounts/([^/]+)/statuses", path):
            owner = account.group(1)
            if owner not in self.accounts:
                return 404, NOT_FOUND, {}
            items = [
                s
                for s in self.statuses.values()
                if s["account"]["id"] == owner
                and (owner == self.me or s["visibility"] in ("public", "unlisted"))
                and not (one(query, "exclude_reblogs") in ("1", "true") and s.get("reblog"))
                and not (one(query, "exclude_replies") in ("1", "true") and s.get("in_reply_to_id"))
            ]
            kept = ("exclude_reblogs", "exclude_replies", "limit", "only_media", "pinned")
            page, links = self.page(items, query, path, kept, 20, 40)
            return 200, page, links
        if found := re.fullmatch(r"/api/v1/statuses/([^/]+)", path):
            status = self.statuses.get(found.group(1))
            if status is None or not self.visible_to_me(status):
                return 404, NOT_FOUND, {}
            return 200, status, {}
        return 404, NOT_FOUND, {}

    def allowed(self, scope: str) -> bool:
        return scope in self.scopes or scope.split(":", 1)[0] in self.scopes

    def default_body(self, status: int) -> Any:
        if status == 429:
            return TOO_MANY
        if status == 401:
            return INVALID_TOKEN
        if status == 403:
            return OUT_OF_SCOPE
        if status == 404:
            return NOT_FOUND
        return {"error": "We're sorry, but something went wrong on our end."}

    def instance_v1(self) -> dict[str, Any]:
        return {
            "uri": DOMAIN,
            "title": "Mastodon",
            "short_description": "The original server operated by the Mastodon gGmbH non-profit",
            "description": "",
            "email": "staff@mastodon.social",
            "version": self.version,
            "urls": {"streaming_api": f"wss://streaming.{DOMAIN}"},
            "stats": {"user_count": 2_800_000, "status_count": 130_000_000, "domain_count": 80_000},
            "languages": ["en"],
            "registrations": False,
            "approval_required": False,
            "invites_enabled": True,
            "configuration": {
                "accounts": {"max_featured_tags": 10},
                "statuses": {
                    "max_characters": self.max_characters,
                    "max_media_attachments": 4,
                    "characters_reserved_per_url": self.characters_reserved_per_url,
                },
            },
            "contact_account": None,
            "rules": [],
        }

    def instance_v2(self) -> dict[str, Any]:
        return {
            "domain": DOMAIN,
            "title": "Mastodon",
            "version": self.version,
            "source_url": "https://github.com/mastodon/mastodon",
            "description": "The original server operated by the Mastodon gGmbH non-profit",
            "usage": {"users": {"active_month": 270_000}},
            "thumbnail": {"url": f"https://files.{DOMAIN}/site_uploads/files/000/000/001/@1x/57c12f441d083cde.png"},
            "languages": ["en"],
            "configuration": {
                "urls": {"streaming": f"wss://streaming.{DOMAIN}", "status": None},
                "vapid": {"public_key": "BCkMmVdKDnKYwzVCDC99Iuc9GvId-x7-kKtuHnLgfF98ENiZp_aj-UNthbCdI70DqN1zUVis"},
                "accounts": {"max_featured_tags": 10, "max_pinned_statuses": 5},
                "statuses": {
                    "max_characters": self.max_characters,
                    "max_media_attachments": 4,
                    "characters_reserved_per_url": self.characters_reserved_per_url,
                },
                "media_attachments": {
                    "supported_mime_types": ["image/jpeg", "image/png"],
                    "image_size_limit": 16777216,
                },
                "polls": {"max_options": 4, "max_characters_per_option": 50, "min_expiration": 300},
                "translation": {"enabled": True},
            },
            "registrations": {"enabled": False, "approval_required": False, "message": None},
            "api_versions": {"mastodon": 2},
            "contact": {"email": "staff@mastodon.social", "account": None},
            "rules": [],
        }


def one(query: dict[str, list[str]], name: str) -> str:
    values = query.get(name) or [""]
    return values[0]


@contextmanager
def serve(fake: FakeMastodon) -> Iterator[FakeMastodon]:
    """Run ``fake`` on a free port of 127.0.0.1; ``fake.base_url`` is where it answers."""

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            self.respond("GET")

        def do_POST(self) -> None:
            self.respond("POST")

        def respond(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = dict(self.headers.items())
            fake.requests.append({"method": method, "path": self.path, "headers": headers})
            status, answer, extra = fake.answer(method, self.path, headers, body)
            data = json.dumps(answer, ensure_ascii=False).encode("utf-8")
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                rate = {
                    "X-RateLimit-Limit": "300",
                    "X-RateLimit-Remaining": str(fake.rate_remaining),
                    "X-RateLimit-Reset": reset_header(fake.rate_reset),
                    **extra,
                }
                for name, value in rate.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the caller stopped waiting (a stalled write): nobody to answer
                self.close_connection = True

    with local_server(Handler) as port:
        fake.port = port
        yield fake
