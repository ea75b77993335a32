"""A local Bluesky double on 127.0.0.1: the brand account's PDS (with the AppView behind it) and a Jetstream.

XRPC over HTTP, in Bluesky's shapes (``tests/fixtures/bluesky/network.json`` holds the network): ``GET`` queries
and ``POST`` procedures under ``/xrpc/<nsid>``, JSON answers, XRPC errors as ``{"error": "Name", "message": "..."}``
with Bluesky's statuses (400 InvalidRequest, ExpiredToken, InvalidToken; 401 AuthenticationRequired,
AuthFactorTokenRequired, AccountTakedown; 429 RateLimitExceeded; 501 MethodNotImplemented) and the ``ratelimit-limit``,
``ratelimit-remaining``, ``ratelimit-reset`` (epoch seconds) and ``ratelimit-policy`` headers on every answer.

Sessions: ``com.atproto.server.createSession`` takes the brand's handle (or DID) and its app password and answers the
session with a DID document naming this server as the PDS, an access JWT (HS256, scope ``com.atproto.appPass``,
``exp`` ``access_seconds`` ahead) and a refresh JWT (scope ``com.atproto.refresh``); ``refreshSession`` takes the
refresh JWT and rotates both. Every other call checks the Bearer access JWT: missing is 401 AuthenticationRequired
(only ``public`` reads pass without one), a bad signature or scope 400 InvalidToken, a past ``exp`` or a token in
``expired`` 400 ExpiredToken (``expire_every_token``: every token, as a PDS whose clock runs ahead).

Reads: ``app.bsky.feed.searchPosts`` (``q`` matched case-insensitively in the text, ``sort`` latest or top, ``since``
and ``until`` on ``sortAt``, ``limit``, offset ``cursor``, ``hitsTotal``); ``app.bsky.notification.listNotifications``
(the brand's: replies to, quotes of and mentions of the brand derived from the posts, plus the fixture's likes and
follows, newest first, ``reasons`` honoured); ``app.bsky.feed.getAuthorFeed`` (an actor's posts and reposts, replies
with their ``reply`` root and parent views, ``filter``); ``app.bsky.actor.getProfiles`` and ``app.bsky.feed.getPosts``
(at most 25, as Bluesky allows); ``com.atproto.identity.resolveHandle``; ``com.atproto.repo.listRecords`` (the repo's
posts by record key, newest first). Pages hold at most ``page_size`` items whatever ``limit`` asks, so a few posts
page; a ``limit`` over 100 is Bluesky's 400.

Writes: ``com.atproto.repo.createRecord`` as the session's DID, for ``app.bsky.feed.post`` records validated as the
PDS does (text at most 300 graphemes and 3000 bytes, ``createdAt``, strong refs with ``uri`` and ``cid``), stored as
a new post (record key a TID, a CID of its content) that the reads list at once; ``writes`` keeps each accepted one.
``stall_after_write`` stores the post and then keeps the answer back (a timeout after Bluesky accepted it).

Faults are scripted per NSID (``fake.fault("app.bsky.feed.searchPosts", 429, "RateLimitExceeded", reset=...)``).
Every request is kept in ``requests``: method, NSID, query, headers, body.

Jetstream (``jetstream()``): a websocket server at ``/subscribe`` that replays ``events`` (Jetstream's JSON: ``did``,
``time_us``, ``kind``, ``commit``) from ``cursor`` on (inclusive), commits only of the ``wantedCollections``, then
stays open as a quiet live stream until the client leaves; ``jetstream_requests`` keeps each request path.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import regex
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

from tests.conftest import QuietHandler, local_server

FIXTURE = Path(__file__).parent / "fixtures" / "bluesky" / "network.json"
BRAND_DID = "did:plc:ipb4lhwfordul3dbqt2mlhdu"
BRAND_HANDLE = "auroracaffe.bsky.social"
POST = "app.bsky.feed.post"
#: Base32-sortable, the alphabet of TIDs (record keys).
TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
#: The XRPC queries anyone may call without a session (the AppView's public reads).
PUBLIC = frozenset(
    {
        "app.bsky.feed.getAuthorFeed",
        "app.bsky.actor.getProfiles",
        "app.bsky.feed.getPosts",
        "com.atproto.identity.resolveHandle",
        "com.atproto.repo.listRecords",
    }
)
RATE_LIMIT = 3000
RATE_WINDOW = 300


def tid(moment: datetime, clock: int = 0) -> str:
    """A TID (timestamp identifier) for ``moment``: 53 bits of microseconds and 10 of clock id, base32-sortable,
    13 characters; later moments sort later."""
    number = (int(moment.timestamp() * 1_000_000) << 10) | (clock & 0x3FF)
    return "".join(TID_ALPHABET[(number >> (5 * i)) & 31] for i in reversed(range(13)))


def cid_of(data: Any) -> str:
    """A CIDv1 (dag-cbor, sha-256) look-alike for ``data``: ``bafyrei`` and 52 base32 characters."""
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).digest()
    return "bafyrei" + base64.b32encode(digest).decode().lower().rstrip("=")[:52]


def author_of(uri: str) -> str:
    return uri.removeprefix("at://").split("/")[0]


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def when(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


def sort_at(post: dict[str, Any]) -> datetime:
    """Bluesky's ``sortAt``: the earlier of the record's ``createdAt`` and ``indexedAt``."""
    return min(when(post["record"]["createdAt"]), when(post["indexedAt"]))


@dataclass
class Fault:
    """One scripted answer for an NSID: ``status`` with the XRPC error ``error``/``message`` (a 429 carries
    ``ratelimit-reset: reset``), ``times`` times."""

    status: int
    error: str = ""
    message: str = ""
    reset: int | None = None
    times: int = 1


def xrpc_error(error: str, message: str) -> dict[str, str]:
    return {"error": error, "message": message}


@dataclass
class FakeBluesky:
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)  # did -> ProfileViewDetailed
    posts: list[dict[str, Any]] = field(default_factory=list)  # PostViews
    reposts: list[dict[str, Any]] = field(default_factory=list)  # {"by": did, "uri": post, "indexedAt": ...}
    notifications: list[dict[str, Any]] = field(default_factory=list)  # the brand's likes and follows
    events: list[dict[str, Any]] = field(default_factory=list)  # Jetstream events, oldest first
    password: str = ""
    page_size: int = 2
    #: The key the access and refresh JWTs are signed with (HS256), and how long an access JWT lives.
    secret: str = "double-signing-key-not-a-secret-of-anyone-32b"
    access_seconds: int = 7200
    expired: set[str] = field(default_factory=set)
    expire_every_token: bool = False
    stall_after_write: float = 0.0
    #: The new posts' createdAt is the client's; their indexedAt is this (now when None).
    write_time: datetime | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    writes: list[dict[str, Any]] = field(default_factory=list)
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    jetstream_requests: list[str] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)  # access JWTs, in order
    revoked_refresh: set[str] = field(default_factory=set)
    remaining: int = RATE_LIMIT
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_fixture(cls, **options: Any) -> FakeBluesky:
        network = json.loads(FIXTURE.read_text(encoding="utf-8"))
        return cls(
            profiles={p["did"]: p for p in network["profiles"]},
            posts=network["posts"],
            reposts=network["reposts"],
            notifications=network["notifications"],
            events=network["jetstream"],
            **options,
        )

    def fault(
        self, nsid: str, status: int, error: str = "", message: str = "", reset: int | None = None, times: int = 1
    ) -> None:
        self.faults.setdefault(nsid, []).append(Fault(status, error, message, reset, times))

    def calls(self, nsid: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["nsid"] == nsid]

    def expire_tokens(self) -> None:
        """Every access JWT issued so far answers ExpiredToken from now on (the server's clock ran past them)."""
        self.expired.update(self.issued)

    # -- the network's views ---------------------------------------------------------------------

    def post(self, uri: str) -> dict[str, Any] | None:
        return next((p for p in self.posts if p["uri"] == uri), None)

    def basic(self, did: str) -> dict[str, Any]:
        """ProfileViewBasic."""
        profile = self.profiles[did]
        keys = ("did", "handle", "displayName", "avatar", "associated", "viewer", "labels", "createdAt", "verification")
        return {k: profile[k] for k in keys if k in profile}

    def view(self, did: str) -> dict[str, Any]:
        """ProfileView (what notifications name their author with)."""
        profile = self.profiles[did]
        return {**self.basic(did), **{k: profile[k] for k in ("description", "indexedAt") if k in profile}}

    def resolve(self, actor: str) -> str | None:
        if actor in self.profiles:
            return actor
        return next((did for did, p in self.profiles.items() if p["handle"] == actor.lower()), None)

    def thread_ref(self, uri: str) -> dict[str, Any]:
        post = self.post(uri)
        if post is None:
            return {"$type": "app.bsky.feed.defs#notFoundPost", "uri": uri, "notFound": True}
        return {"$type": "app.bsky.feed.defs#postView", **post}

    def reason(self, post: dict[str, Any]) -> tuple[str, str] | None:
        """Why the brand is notified of ``post`` (reply, quote, mention) and the subject, or None."""
        record = post["record"]
        if author_of(post["uri"]) == BRAND_DID:
            return None
        reply = record.get("reply")
        if reply and BRAND_DID in (author_of(reply["parent"]["uri"]), author_of(reply["root"]["uri"])):
            return "reply", reply["parent"]["uri"]
        embed = record.get("embed") or {}
        quoted = (embed.get("record") or {}).get("uri") or ((embed.get("record") or {}).get("record") or {}).get("uri")
        if quoted and author_of(quoted) == BRAND_DID:
            return "quote", quoted
        for facet in record.get("facets") or []:
            for feature in facet.get("features", []):
                if feature.get("$type") == "app.bsky.richtext.facet#mention" and feature.get("did") == BRAND_DID:
                    return "mention", ""
        return None

    def brand_notifications(self) -> list[dict[str, Any]]:
        items = list(self.notifications)
        for post in self.posts:
            found = self.reason(post)
            if found is None:
                continue
            reason, subject = found
            item = {
                "uri": post["uri"],
                "cid": post["cid"],
                "author": self.view(author_of(post["uri"])),
                "reason": reason,
                "record": post["record"],
                "isRead": False,
                "indexedAt": post["indexedAt"],
                "labels": [],
            }
            if subject:
                item["reasonSubject"] = subject
            items.append(item)
        return sorted(items, key=lambda n: when(n["indexedAt"]), reverse=True)

    def author_feed(self, did: str, feed_filter: str) -> list[dict[str, Any]]:
        items: list[tuple[datetime, dict[str, Any]]] = []
        for post in self.posts:
            if author_of(post["uri"]) != did:
                continue
            reply = post["record"].get("reply")
            if reply and feed_filter == "posts_no_replies":
                continue
            item: dict[str, Any] = {"post": post}
            if reply:
                item["reply"] = {
                    "root": self.thread_ref(reply["root"]["uri"]),
                    "parent": self.thread_ref(reply["parent"]["uri"]),
                }
            items.append((when(post["indexedAt"]), item))
        for repost in self.reposts:
            reposted = self.post(repost["uri"])
            if repost["by"] == did and reposted is not None:
                reason = {
                    "$type": "app.bsky.feed.defs#reasonRepost",
                    "by": self.basic(did),
                    "indexedAt": repost["indexedAt"],
                }
                items.append((when(repost["indexedAt"]), {"post": reposted, "reason": reason}))
        return [item for _, item in sorted(items, key=lambda pair: pair[0], reverse=True)]

    # -- sessions --------------------------------------------------------------------------------

    def session(self, did: str) -> dict[str, Any]:
        now = int(time.time())
        audience = "did:web:127.0.0.1"
        claims = {"scope": "com.atproto.appPass", "sub": did, "iat": now, "exp": now + self.access_seconds}
        access = jwt.encode(
            # a jti of its own: two sessions made in the same second must still be told apart
            {**claims, "aud": audience, "jti": uuid.uuid4().hex},
            self.secret,
            algorithm="HS256",
            headers={"typ": "at+jwt"},
        )
        refresh = jwt.encode(
            {"scope": "com.atproto.refresh", "sub": did, "aud": audience, "jti": uuid.uuid4().hex, "iat": now,
             "exp": now + 90 * 86400},
            self.secret,
            algorithm="HS256",
            headers={"typ": "refresh+jwt"},
        )  # fmt: skip
        self.issued.append(access)
        handle = self.profiles[did]["handle"]
        did_doc = {
            "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
            "id": did,
            "alsoKnownAs": [f"at://{handle}"],
            "verificationMethod": [],
            "service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": self.base_url}],
        }
        return {
            "did": did,
            "didDoc": did_doc,
            "handle": handle,
            "email": "social@caffeaurora.example",
            "emailConfirmed": True,
            "emailAuthFactor": False,
            "accessJwt": access,
            "refreshJwt": refresh,
            "active": True,
        }

    def bearer(self, headers: Any, scope: str) -> tuple[str | None, tuple[int, dict[str, str]] | None]:
        """(the DID of a valid token of ``scope``, or None when there is none; the XRPC error to answer)."""
        value = headers.get("Authorization", "")
        if not value:
            return None, None
        if not value.startswith("Bearer "):
            return None, (400, xrpc_error("InvalidToken", "Unexpected authorization type"))
        token = value.removeprefix("Bearer ")
        if scope != "com.atproto.refresh" and (self.expire_every_token or token in self.expired):
            return None, (400, xrpc_error("ExpiredToken", "Token has expired"))
        try:
            claims = jwt.decode(token, self.secret, algorithms=["HS256"], options={"verify_aud": False})
        except jwt.ExpiredSignatureError:
            return None, (400, xrpc_error("ExpiredToken", "Token has expired"))
        except jwt.InvalidTokenError:
            return None, (400, xrpc_error("InvalidToken", "Token could not be verified"))
        allowed = (
            {"com.atproto.refresh"} if scope == "com.atproto.refresh" else {"com.atproto.appPass", "com.atproto.access"}
        )
        if claims.get("scope") not in allowed:
            return None, (400, xrpc_error("InvalidToken", "Bad token scope"))
        if scope == "com.atproto.refresh" and claims.get("jti") in self.revoked_refresh:
            return None, (400, xrpc_error("ExpiredToken", "Token has been revoked"))
        if scope == "com.atproto.refresh":
            self.revoked_refresh.add(str(claims.get("jti")))
        return str(claims["sub"]), None

    # -- writes ----------------------------------------------------------------------------------

    def invalid_post(self, record: dict[str, Any]) -> str:
        """Why the PDS refuses ``record`` as an app.bsky.feed.post, or ""."""
        text = record.get("text")
        if not isinstance(text, str):
            return 'Invalid app.bsky.feed.post record: Record must have the property "text"'
        if len(regex.findall(r"\X", text)) > 300:
            return "Invalid app.bsky.feed.post record: Record/text must not be longer than 300 graphemes"
        if len(text.encode("utf-8")) > 3000:
            return "Invalid app.bsky.feed.post record: Record/text must not be longer than 3000 characters"
        if not record.get("createdAt"):
            return 'Invalid app.bsky.feed.post record: Record must have the property "createdAt"'
        for name in ("root", "parent"):
            ref = (record.get("reply") or {}).get(name, {}) if record.get("reply") is not None else {}
            for key in ("uri", "cid"):
                if record.get("reply") is not None and not ref.get(key):
                    return f'Invalid app.bsky.feed.post record: Record/reply/{name} must have the property "{key}"'
        return ""

    def create(self, did: str, record: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            indexed = self.write_time or datetime.now(UTC)
            rkey = tid(indexed, clock=len(self.writes))  # the PDS's clock makes the key: keys sort by time
            uri = f"at://{did}/{POST}/{rkey}"
            cid = cid_of(record)
            view = {
                "uri": uri,
                "cid": cid,
                "author": self.basic(did),
                "record": record,
                "bookmarkCount": 0,
                "replyCount": 0,
                "repostCount": 0,
                "likeCount": 0,
                "quoteCount": 0,
                "indexedAt": stamp(indexed),
                "viewer": {"threadMuted": False, "embeddingDisabled": False},
                "labels": [],
            }
            self.posts.append(view)
            self.writes.append({"uri": uri, "record": record})
            return {"uri": uri, "cid": cid, "commit": {"cid": cid_of(uri), "rev": rkey}, "validationStatus": "valid"}

    # -- serving ---------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self) -> Iterator[FakeBluesky]:
        fake = self

        class Handler(QuietHandler):
            def answer(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                with fake.lock:
                    fake.remaining = max(0, fake.remaining - 1)
                    remaining = fake.remaining
                limits = {
                    "ratelimit-limit": str(RATE_LIMIT),
                    "ratelimit-remaining": str(remaining),
                    "ratelimit-reset": str(int(time.time()) + RATE_WINDOW),
                    "ratelimit-policy": f"{RATE_LIMIT};w={RATE_WINDOW}",
                }
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                    for name, value in {**limits, **(headers or {})}.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the caller stopped waiting (a stalled write): nobody to answer
                    self.close_connection = True

            def do_GET(self) -> None:
                self.handle_xrpc("GET")

            def do_POST(self) -> None:
                self.handle_xrpc("POST")

            def handle_xrpc(self, method: str) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                body = json.loads(raw) if raw and "json" in self.headers.get("Content-Type", "") else {}
                nsid = parts.path.removeprefix("/xrpc/")
                fake.requests.append(
                    {"method": method, "nsid": nsid, "query": query, "headers": dict(self.headers), "body": body}
                )
                if not parts.path.startswith("/xrpc/"):
                    self.answer(404, xrpc_error("NotFound", "Not Found"))
                    return
                scripted = fake.faults.get(nsid) or []
                if scripted:
                    fault = scripted[0]
                    fault.times -= 1
                    if fault.times <= 0:
                        scripted.pop(0)
                    headers = {"ratelimit-remaining": "0"} if fault.status == 429 else {}
                    if fault.reset is not None:
                        headers["ratelimit-reset"] = str(fault.reset)
                    self.answer(fault.status, xrpc_error(fault.error, fault.message) if fault.error else {}, headers)
                    return
                route = ROUTES.get((method, nsid))
                if route is None:
                    known = {n for _, n in ROUTES}
                    if nsid in known:
                        self.answer(400, xrpc_error("InvalidRequest", f"Incorrect HTTP method ({method}) expected"))
                    else:
                        self.answer(501, xrpc_error("MethodNotImplemented", "Method Not Implemented"))
                    return
                scope = "com.atproto.refresh" if nsid == "com.atproto.server.refreshSession" else "access"
                did, refused = (
                    (None, None) if nsid == "com.atproto.server.createSession" else fake.bearer(self.headers, scope)
                )
                if refused:
                    self.answer(*refused)
                    return
                if did is None and nsid not in PUBLIC and nsid != "com.atproto.server.createSession":
                    self.answer(401, xrpc_error("AuthenticationRequired", "Authentication Required"))
                    return
                limit = int(query.get("limit", ["50"])[0])
                if not 1 <= limit <= 100:
                    self.answer(400, xrpc_error("InvalidRequest", "Error: limit must be <= 100"))
                    return
                status, answer = route(self, did, query, body)
                self.answer(status, answer)

            # -- routes ------------------------------------------------------------------------

            def page(self, items: list[Any], query: dict[str, list[str]]) -> tuple[list[Any], str | None]:
                start = int(query.get("cursor", ["0"])[0] or 0)
                size = min(fake.page_size, int(query.get("limit", ["50"])[0]))
                chunk = items[start : start + size]
                return chunk, str(start + size) if start + size < len(items) else None

            def create_session(self, _did: Any, _query: Any, body: dict[str, Any]) -> tuple[int, Any]:
                identifier = str(body.get("identifier", "")).lower()
                did = fake.resolve(identifier)
                if did is None or did != BRAND_DID or body.get("password") != fake.password:
                    return 401, xrpc_error("AuthenticationRequired", "Invalid identifier or password")
                return 200, fake.session(did)

            def refresh_session(self, did: Any, _query: Any, _body: Any) -> tuple[int, Any]:
                return 200, fake.session(did)

            def resolve_handle(self, _did: Any, query: dict[str, list[str]], _body: Any) -> tuple[int, Any]:
                found = fake.resolve(query.get("handle", [""])[0])
                if found is None:
                    return 400, xrpc_error("InvalidRequest", "Unable to resolve handle")
                return 200, {"did": found}

            def search_posts(self, _did: Any, query: dict[str, list[str]], _body: Any) -> tuple[int, Any]:
                if "q" not in query:
                    return 400, xrpc_error("InvalidRequest", 'Error: Params must have the property "q"')
                words = query["q"][0].casefold()
                found = [p for p in fake.posts if words in p["record"].get("text", "").casefold()]
                if "since" in query:
                    found = [p for p in found if sort_at(p) >= when(query["since"][0])]
                if "until" in query:
                    found = [p for p in found if sort_at(p) < when(query["until"][0])]
                if query.get("sort", ["latest"])[0] == "top":
                    found.sort(key=lambda p: p.get("likeCount", 0), reverse=True)
                else:
                    found.sort(key=sort_at, reverse=True)
                posts, cursor = self.page(found, query)
                answer: dict[str, Any] = {"posts": posts, "hitsTotal": len(found)}
                if cursor:
                    answer["cursor"] = cursor
                return 200, answer

            def list_notifications(self, did: Any, query: dict[str, list[str]], _body: Any) -> tuple[int, Any]:
                items = fake.brand_notifications() if did == BRAND_DID else []
                if "reasons" in query:
                    items = [n for n in items if n["reason"] in query["reasons"]]
                notes, cursor = self.page(items, query)
                answer: dict[str, Any] = {
                    "notifications": notes,
                    "priority": False,
                    "seenAt": "2026-03-01T18:00:00.000Z",
                }
                if cursor:
                    answer["cursor"] = cursor
                return 200, answer

            def get_author_feed(self, _did: Any, query: dict[str, list[str]], _body: Any) -> tuple[int, Any]:
                actor = fake.resolve(query.get("actor", [""])[0])
                if actor is None:
                    return 400, xrpc_error("InvalidRequest", "Profile not found")
                feed, cursor = self.page(fake.author_feed(actor, query.get("filter", ["posts_with_replies"])[0]), query)
                answer: dict[str, Any] = {"feed": feed}
                if cursor:
                    answer["cursor"] = cursor
                return 200, answer

            def get_profiles(self, _did: Any, query: dict[str, list[str]], _body: Any) -> tuple[int, Any]:
                actors = query.get("actors", [])
                if len(actors) > 25:
                    return 400, xrpc_error("InvalidRequest", "Error: actors must not have more than 25 elements")
                found = [fake.profiles[d] for a in actors if (d := fake.resolve(a)) is not None]
                return 200, {"profiles": found}

            def get_posts(self, _did: Any, query: dict[str, list[str]], _body: Any) -> tuple[int, Any]:
                uris = query.get("uris", [])
                if len(uris) > 25:
                    return 400, xrpc_error("InvalidRequest", "Error: uris must not have more than 25 elements")
                return 200, {"posts": [p for u in uris if (p := fake.post(u)) is not None]}

            def list_records(self, _did: Any, query: dict[str, list[str]], _body: Any) -> tuple[int, Any]:
                repo = fake.resolve(query.get("repo", [""])[0])
                if repo is None:
                    return 400, xrpc_error("InvalidRequest", f"Could not find repo: {query.get('repo', [''])[0]}")
                collection = query.get("collection", [""])[0]
                mine = [p for p in fake.posts if author_of(p["uri"]) == repo and f"/{collection}/" in p["uri"]]
                mine.sort(
                    key=lambda p: p["uri"].rsplit("/", 1)[1], reverse=query.get("reverse", ["false"])[0] != "true"
                )
                if "cursor" in query:
                    before = query["cursor"][0]
                    mine = [p for p in mine if p["uri"].rsplit("/", 1)[1] < before]
                size = min(fake.page_size, int(query.get("limit", ["50"])[0]))
                chunk = mine[:size]
                answer: dict[str, Any] = {
                    "records": [{"uri": p["uri"], "cid": p["cid"], "value": p["record"]} for p in chunk]
                }
                if len(mine) > size:
                    answer["cursor"] = chunk[-1]["uri"].rsplit("/", 1)[1]
                return 200, answer

            def create_record(self, did: Any, _query: Any, body: dict[str, Any]) -> tuple[int, Any]:
                if fake.resolve(str(body.get("repo", ""))) != did:
                    return 400, xrpc_error("InvalidRequest", "Invalid repo")
                if body.get("collection") != POST:
                    return 400, xrpc_error("InvalidRequest", f"Unsupported collection: {body.get('collection')}")
                record = body.get("record") or {}
                if problem := fake.invalid_post(record):
                    return 400, xrpc_error("InvalidRequest", problem)
                created = fake.create(did, record)
                if fake.stall_after_write:
                    threading.Event().wait(fake.stall_after_write)
                return 200, created

        ROUTES = {
            ("POST", "com.atproto.server.createSession"): Handler.create_session,
            ("POST", "com.atproto.server.refreshSession"): Handler.refresh_session,
            ("GET", "com.atproto.identity.resolveHandle"): Handler.resolve_handle,
            ("GET", "app.bsky.feed.searchPosts"): Handler.search_posts,
            ("GET", "app.bsky.notification.listNotifications"): Handler.list_notifications,
            ("GET", "app.bsky.feed.getAuthorFeed"): Handler.get_author_feed,
            ("GET", "app.bsky.actor.getProfiles"): Handler.get_profiles,
            ("GET", "app.bsky.feed.getPosts"): Handler.get_posts,
            ("GET", "com.atproto.repo.listRecords"): Handler.list_records,
            ("POST", "com.atproto.repo.createRecord"): Handler.create_record,
        }

        with local_server(Handler) as port:
            self.port = port
            yield self

    # -- Jetstream -------------------------------------------------------------------------------

    @contextmanager
    def jetstream(self) -> Iterator[str]:
        """Serve Jetstream on 127.0.0.1; yields its ``ws://.../subscribe`` URL."""
        fake = self

        def replay(connection: ServerConnection) -> None:
            path = connection.request.path if connection.request else "/"
            fake.jetstream_requests.append(path)
            query = parse_qs(urlsplit(path).query)
            wanted = set(query.get("wantedCollections", []))
            cursor = int(query.get("cursor", ["0"])[0] or 0)
            try:
                for event in fake.events:
                    if event["time_us"] < cursor:
                        continue
                    commit = event.get("commit")
                    if event["kind"] == "commit" and wanted and commit and commit["collection"] not in wanted:
                        continue
                    connection.send(json.dumps(event))
                for _ in connection:  # the live stream is quiet: wait until the client leaves
                    pass
            except ConnectionClosed:
                return

        with serve(replay, "127.0.0.1", 0) as server:
            port = server.socket.getsockname()[1]
            threading.Thread(target=server.serve_forever, daemon=True).start()
            try:
                yield f"ws://127.0.0.1:{port}/subscribe"
            finally:
                server.shutdown()
