"""A local YouTube Data API v3 double on 127.0.0.1, with Google's OAuth token endpoint beside it, in Google's shapes.

It serves a channel's comments from ``tests/fixtures/youtube/threads.json``: ``GET /youtube/v3/commentThreads``
(exactly one filter of ``allThreadsRelatedToChannelId``, ``id``, ``videoId``; ``part`` of ``id``, ``snippet``,
``replies``; newest top-level comment first; ``maxResults`` 1 to 100, default 20, refused beside ``id`` as Google
refuses it; opaque ``pageToken``/``nextPageToken``; the ``replies`` part carries at most five replies while
``totalReplyCount`` counts them all), ``GET /youtube/v3/comments?parentId=`` (a thread's replies, oldest first, paged
the same way), ``GET /youtube/v3/channels?part=statistics&id=a,b`` (at most 50 ids; ``subscriberCount`` is a string,
left out when ``hiddenSubscriberCount``). ``textFormat=plainText`` gives ``textDisplay`` as written, anything else
HTML-escaped, as YouTube does.

Credentials, checked like Google's: a read needs the API key (``X-Goog-Api-Key`` header or ``key=``) or a Bearer
access token the token endpoint issued; a wrong key is 400 "API key not valid" (``key_error = "modern"``: reason
``badRequest`` with ``API_KEY_INVALID`` in ``details``; ``"legacy"``: the older ``usageLimits``/``keyInvalid``), none
at all 403 "missing a valid API key". ``POST /token`` (``grant_type=refresh_token``) checks the client id and secret
(401 ``invalid_client``), the refresh token (400 ``invalid_grant``) and the scope asked for (400 ``invalid_scope``),
and answers ``{"access_token", "expires_in", "scope", "token_type"}``; ``expire_tokens()`` makes the issued ones
invalid (401 ``authError``).

The quota: every API call costs units (lists 1, a reply 50) from ``quota`` a day; a call that would pass it is 403
``quotaExceeded`` (domain ``youtube.quota``, the message with its HTML link). Calls with bad credentials cost nothing
(Google cannot charge a project it does not know).

Writes: ``POST /youtube/v3/comments?part=snippet`` with ``{"snippet": {"parentId", "textOriginal"}}`` as the channel
owner (Bearer with the ``youtube.force-ssl`` scope, else 401 "Login Required" or 403 ``insufficientPermissions``)
stores the reply under the thread (listed by the next read, counted in ``totalReplyCount``), keeps the call in
``writes`` and answers the new ``youtube#comment``. Google's refusals: 400 ``commentTextRequired``,
``commentTextTooLong`` (over 10,000 characters), ``parentIdMissing``, ``operationNotSupported`` (a reply's id as the
parent, or comments turned off), 404 ``parentCommentNotFound``. ``stall_seconds`` stores the reply, then keeps the
answer back (YouTube took it, the caller timed out).

``comments_disabled`` names videos whose comments the owner turned off: their threads leave the listings, and
reading their replies is 403 ``commentsDisabled``. ``after_threads_page`` runs after each page of
``allThreadsRelatedToChannelId`` (a change between the listing and the next call). ``fault`` answers one path's calls
with a scripted status and body. Every request is kept in ``requests``.
"""

from __future__ import annotations

import base64
import copy
import html
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.conftest import QuietHandler, local_server

FIXTURE = Path(__file__).parent / "fixtures" / "youtube" / "threads.json"
CHANNEL_ID = "UCAuroraCaffeUfficiale01"
SCOPE = "https://www.googleapis.com/auth/youtube.force-ssl"
API = "/youtube/v3/"
QUOTA_MESSAGE = (
    'The request cannot be completed because you have exceeded your <a href="/youtube/v3/getting-started#quota">'
    "quota</a>."
)
MAX_COMMENT_CHARS = 10_000


def google_error(status: int, reason: str, message: str, domain: str = "youtube.api", **extra: Any) -> dict[str, Any]:
    """Google's error body: ``{"error": {"code", "message", "errors": [{"message", "domain", "reason"}]}}``."""
    return {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason, **extra}],
        }
    }


def quota_exceeded() -> dict[str, Any]:
    return google_error(403, "quotaExceeded", QUOTA_MESSAGE, "youtube.quota")


def rate_limited() -> dict[str, Any]:
    message = "The request cannot be completed because you have exceeded your quota per minute."
    return google_error(403, "rateLimitExceeded", message, "usageLimits")


def key_invalid(style: str) -> dict[str, Any]:
    """Google's answer to a wrong API key: today's shape, or the older one some projects still get."""
    if style == "legacy":
        return {
            "error": {
                "errors": [{"domain": "usageLimits", "reason": "keyInvalid", "message": "Bad Request"}],
                "code": 400,
                "message": "Bad Request",
            }
        }
    message = "API key not valid. Please pass a valid API key."
    body = google_error(400, "badRequest", message, "global")
    body["error"]["status"] = "INVALID_ARGUMENT"
    body["error"]["details"] = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "API_KEY_INVALID",
            "domain": "googleapis.com",
            "metadata": {"service": "youtube.googleapis.com"},
        }
    ]
    return body


def unauthenticated(message: str, reason: str) -> dict[str, Any]:
    body = google_error(401, reason, message, "global", location="Authorization", locationType="header")
    body["error"]["status"] = "UNAUTHENTICATED"
    return body


def page_token(kind: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{offset}".encode()).decode().rstrip("=")


def read_token(kind: str, token: str) -> int | None:
    try:
        name, _, offset = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode().partition(":")
        return int(offset) if name == kind else None
    except (ValueError, UnicodeDecodeError):
        return None


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FakeYouTube:
    threads: list[dict[str, Any]] = field(default_factory=list)  # commentThread resources, without replies
    comments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # each thread's replies, oldest first
    channels: list[dict[str, Any]] = field(default_factory=list)
    channel_id: str = CHANNEL_ID
    channel_handle: str = "@AuroraCaffe"
    api_key: str = ""
    client_id: str = ""
    client_secret: str = ""
    refresh_token: str = ""
    #: The scopes the channel owner granted the refresh token.
    granted: tuple[str, ...] = (SCOPE,)
    key_error: str = "modern"
    quota: int = 10_000
    used: int = 0
    #: Most items a page holds, whatever maxResults asks (to test paging with a small fixture).
    page_size: int = 100
    comments_disabled: set[str] = field(default_factory=set)
    after_threads_page: Callable[[], None] | None = None
    #: {"path": "commentThreads", "status": 500, "body": {...}} answers that path's calls (any method unless "method").
    fault: dict[str, Any] | None = None
    stall_seconds: float = 0.0
    #: The new replies' publishedAt (now when None).
    write_time: datetime | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    writes: list[dict[str, Any]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    issued: dict[str, tuple[str, ...]] = field(default_factory=dict)  # access token -> its scopes
    next_id: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    port: int = 0

    @classmethod
    def load(cls, **options: Any) -> FakeYouTube:
        data = json.loads(FIXTURE.read_text(encoding="utf-8"))
        return cls(threads=data["commentThreads"], comments=data["comments"], channels=data["channels"], **options)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/youtube/v3"

    @property
    def token_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def expire_tokens(self) -> None:
        self.issued.clear()

    def thread(self, thread_id: str) -> dict[str, Any] | None:
        return next((t for t in self.threads if t["id"] == thread_id), None)

    def video_of(self, thread_id: str) -> str:
        found = self.thread(thread_id)
        return str(found["snippet"]["videoId"]) if found else ""

    def add_reply(self, thread_id: str, handle: str, author_id: str, text: str, when: datetime) -> dict[str, Any]:
        """Someone replies in a thread (as if they had typed it on YouTube)."""
        with self.lock:
            self.next_id += 1
            reply = self._comment(f"{thread_id}.9kNew{self.next_id:014d}", handle, author_id, thread_id, text, when)
            self.comments.setdefault(thread_id, []).append(reply)
            return reply

    def _comment(
        self, comment_id: str, handle: str, author_id: str, parent: str, text: str, when: datetime
    ) -> dict[str, Any]:
        return {
            "kind": "youtube#comment",
            "etag": f"etag-{comment_id[-12:]}",
            "id": comment_id,
            "snippet": {
                "channelId": self.channel_id,
                "videoId": self.video_of(parent),
                "textDisplay": text,
                "textOriginal": text,
                "parentId": parent,
                "authorDisplayName": handle,
                "authorProfileImageUrl": f"https://yt3.ggpht.com/ytc/{handle.lstrip('@')}=s48-c-k-c0x00ffffff-no-rj",
                "authorChannelUrl": f"http://www.youtube.com/{handle}",
                "authorChannelId": {"value": author_id},
                "canRate": True,
                "viewerRating": "none",
                "likeCount": 0,
                "publishedAt": stamp(when),
                "updatedAt": stamp(when),
            },
        }

    # -- what the endpoints answer ---------------------------------------------------------------

    def shown(self, comment: dict[str, Any], text_format: str) -> dict[str, Any]:
        """A comment as sent: ``textDisplay`` HTML-escaped unless ``textFormat=plainText``."""
        shown = copy.deepcopy(comment)
        if text_format != "plainText":
            text = shown["snippet"]["textDisplay"]
            shown["snippet"]["textDisplay"] = html.escape(text).replace("\n", "<br>")
        return shown

    def thread_resource(self, thread: dict[str, Any], parts: set[str], text_format: str) -> dict[str, Any]:
        replies = self.comments.get(thread["id"], [])
        resource: dict[str, Any] = {"kind": "youtube#commentThread", "etag": thread["etag"], "id": thread["id"]}
        if "snippet" in parts:
            snippet = copy.deepcopy(thread["snippet"])
            snippet["topLevelComment"] = self.shown(snippet["topLevelComment"], text_format)
            snippet["totalReplyCount"] = len(replies)
            snippet["canReply"] = snippet["videoId"] not in self.comments_disabled
            resource["snippet"] = snippet
        if "replies" in parts and replies:
            resource["replies"] = {"comments": [self.shown(c, text_format) for c in replies[:5]]}
        return resource

    def listing(self, kind: str, items: list[dict[str, Any]], query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """One page of ``items``: ``maxResults`` (1-100, default 20), at most ``page_size``, from ``pageToken``."""
        try:
            wanted = int(query.get("maxResults", "20"))
        except ValueError:
            wanted = -1
        if not 1 <= wanted <= 100:
            message = f"Invalid value '{query.get('maxResults')}'. Values must be within the range: [1, 100]"
            return 400, google_error(400, "invalidParameter", message, "youtube.parameter", location="maxResults")
        start = 0
        if "pageToken" in query:
            found = read_token(kind, query["pageToken"])
            if found is None:
                return 400, google_error(400, "invalidPageToken", "The page token is not valid.", "youtube.parameter")
            start = found
        size = min(wanted, self.page_size)
        body: dict[str, Any] = {
            "kind": f"youtube#{kind}ListResponse",
            "etag": f"etag-{kind}-{start}",
            "pageInfo": {"totalResults": len(items), "resultsPerPage": size},
            "items": items[start : start + size],
        }
        if start + size < len(items):
            body["nextPageToken"] = page_token(kind, start + size)
        return 200, body

    def comment_threads(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        parts = set(query.get("part", "").split(","))
        if not query.get("part") or not parts <= {"id", "snippet", "replies"}:
            return 400, google_error(400, "unknownPart", f"'{query.get('part', '')}'", "youtube.part", location="part")
        filters = [f for f in ("allThreadsRelatedToChannelId", "id", "videoId", "channelId") if f in query]
        if len(filters) != 1:
            message = "No filter selected. Expected one of: channelId, id, videoId, allThreadsRelatedToChannelId"
            return 400, google_error(400, "missingRequiredParameter", message, "youtube.parameter")
        text_format = query.get("textFormat", "html")
        visible = [t for t in self.threads if t["snippet"]["videoId"] not in self.comments_disabled]
        if "id" in query:
            if "maxResults" in query or "order" in query:
                message = "Incompatible parameters specified in the request: id, maxResults, order"
                return 400, google_error(400, "incompatibleParameters", message, "youtube.parameter")
            wanted = query["id"].split(",")
            found = [self.thread_resource(t, parts, text_format) for t in visible if t["id"] in wanted]
            return 200, {
                "kind": "youtube#commentThreadListResponse",
                "etag": "etag-by-id",
                "pageInfo": {"totalResults": len(found), "resultsPerPage": len(found)},
                "items": found,
            }
        if "videoId" in query:
            if query["videoId"] in self.comments_disabled:
                message = (
                    'The video identified by the <code><a href="/youtube/v3/docs/commentThreads/list#videoId">'
                    "videoId</a></code> parameter has disabled comments."
                )
                return 403, google_error(403, "commentsDisabled", message, "youtube.commentThread", location="videoId")
            visible = [t for t in visible if t["snippet"]["videoId"] == query["videoId"]]
        elif query.get("allThreadsRelatedToChannelId", query.get("channelId")) != self.channel_id:
            message = (
                "The channel identified by either the <code>channelId</code> or the "
                "<code>allThreadsRelatedToChannelId</code> parameter could not be found."
            )
            return 404, google_error(404, "channelNotFound", message, "youtube.commentThread")
        ordered = sorted(visible, key=lambda t: t["snippet"]["topLevelComment"]["snippet"]["publishedAt"], reverse=True)
        status, body = self.listing(
            "commentThread", [self.thread_resource(t, parts, text_format) for t in ordered], query
        )
        if status == 200 and "allThreadsRelatedToChannelId" in query and self.after_threads_page:
            self.after_threads_page()
        return status, body

    def replies(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if "parentId" not in query and "id" not in query:
            message = "No filter selected. Expected one of: id, parentId"
            return 400, google_error(400, "missingRequiredParameter", message, "youtube.parameter")
        parent = query.get("parentId", "")
        if self.thread(parent) is None:
            message = "One or more of the comments identified by the id or parentId parameter could not be found."
            return 404, google_error(404, "commentNotFound", message, "youtube.comment", location="parentId")
        if self.video_of(parent) in self.comments_disabled:
            message = "The video's comments are disabled."
            return 403, google_error(403, "commentsDisabled", message, "youtube.comment", location="parentId")
        text_format = query.get("textFormat", "html")
        items = [self.shown(c, text_format) for c in self.comments.get(parent, [])]
        return self.listing("comment", items, query)

    def channel_statistics(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        ids = [i for i in query.get("id", "").split(",") if i]
        if len(ids) > 50:
            message = "The request specifies an invalid filter parameter."
            return 400, google_error(400, "invalidFilters", message, "youtube.parameter")
        known = {c["id"]: c for c in self.channels}
        items = [
            {k: v for k, v in known[i].items() if k != "statistics" or "statistics" in query.get("part", "")}
            for i in ids
            if i in known
        ]
        return 200, {
            "kind": "youtube#channelListResponse",
            "etag": "etag-channels",
            "pageInfo": {"totalResults": len(items), "resultsPerPage": 5},
            "items": items,
        }

    def insert(self, body: Any) -> tuple[int, dict[str, Any]]:
        """A reply by the channel owner, stored under its thread."""
        snippet = body.get("snippet") if isinstance(body, dict) else None
        snippet = snippet if isinstance(snippet, dict) else {}
        parent, text = str(snippet.get("parentId") or ""), str(snippet.get("textOriginal") or "")
        if not parent:
            message = "The comment must be linked to a parent comment: snippet.parentId is missing."
            return 400, google_error(400, "parentIdMissing", message, "youtube.comment")
        if not text.strip():
            return 400, google_error(400, "commentTextRequired", "The comment must contain text.", "youtube.comment")
        if len(text) > MAX_COMMENT_CHARS:
            message = "The value of the snippet.textOriginal property has too many characters."
            return 400, google_error(400, "commentTextTooLong", message, "youtube.comment")
        if "." in parent or self.video_of(parent) in self.comments_disabled:
            message = "The API user is not able to insert a comment in reply to the specified top-level comment."
            return 400, google_error(400, "operationNotSupported", message, "youtube.comment")
        if self.thread(parent) is None:
            message = "The specified parent comment could not be found."
            return 404, google_error(404, "parentCommentNotFound", message, "youtube.comment", location="parentId")
        when = self.write_time or datetime.now(UTC)
        with self.lock:
            self.next_id += 1
            new = self._comment(
                f"{parent}.9kNew{self.next_id:014d}", self.channel_handle, self.channel_id, parent, text, when
            )
            self.comments.setdefault(parent, []).append(new)
        return 200, copy.deepcopy(new)

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Google's token endpoint for ``grant_type=refresh_token``."""
        self.token_requests.append(form)
        if form.get("grant_type") != "refresh_token":
            return 400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"}
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return 401, {"error": "invalid_client", "error_description": "Unauthorized"}
        if form.get("refresh_token") != self.refresh_token:
            return 400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
        asked = tuple(form.get("scope", "").split()) or self.granted
        if not set(asked) <= set(self.granted):
            return 400, {"error": "invalid_scope", "error_description": "Bad Request"}
        with self.lock:
            self.next_id += 1
            access = f"ya29.a0-fake-access-{self.next_id:06d}"
            self.issued[access] = asked
        return 200, {"access_token": access, "expires_in": 3599, "scope": " ".join(asked), "token_type": "Bearer"}

    # -- the server ------------------------------------------------------------------------------

    def credential(self, headers: Any, query: dict[str, str], write: bool) -> tuple[int, dict[str, Any]] | None:
        """Google's refusal of the call's credentials, or None when they hold."""
        bearer = str(headers.get("Authorization") or "")
        if bearer.startswith("Bearer "):
            scopes = self.issued.get(bearer.removeprefix("Bearer "))
            if scopes is None:
                message = (
                    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
                    "other valid authentication credential."
                )
                body = unauthenticated(message, "authError")
                body["error"]["errors"][0]["message"] = "Invalid Credentials"
                return 401, body
            if SCOPE not in scopes:
                body = google_error(
                    403, "insufficientPermissions", "Request had insufficient authentication scopes.", "global"
                )
                body["error"]["details"] = [
                    {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT"}
                ]
                return 403, body
            return None
        if write:
            message = (
                "API keys are not supported by this API. Expected OAuth2 access token or other authentication "
                "credentials that assert a principal."
            )
            body = unauthenticated(message, "required")
            body["error"]["errors"][0]["message"] = "Login Required."
            return 401, body
        key = headers.get("X-Goog-Api-Key") or query.get("key")
        if not key:
            message = "The request is missing a valid API key."
            body = google_error(403, "forbidden", message, "global")
            body["error"]["status"] = "PERMISSION_DENIED"
            return 403, body
        if key != self.api_key:
            return 400, key_invalid(self.key_error)
        return None

    def charge(self, units: int) -> tuple[int, dict[str, Any]] | None:
        with self.lock:
            if self.used + units > self.quota:
                return 403, quota_exceeded()
            self.used += units
            return None

    def serve(self) -> Iterator[FakeYouTube]:
        fake = self

        class Handler(QuietHandler):
            def answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json; charset=UTF-8")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the caller stopped waiting (a stalled write): nobody to answer
                    self.close_connection = True

            def handle_api(self, method: str) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0)).decode("utf-8")
                fake.requests.append(
                    {"method": method, "url": self.path, "query": query, "headers": dict(self.headers)}
                )
                if parts.path == "/token" and method == "POST":
                    self.answer(*fake.token({k: v[0] for k, v in parse_qs(raw).items()}))
                    return
                resource = parts.path.removeprefix(API) if parts.path.startswith(API) else ""
                if resource not in ("commentThreads", "comments", "channels"):
                    self.answer(404, google_error(404, "notFound", "Method not found.", "global"))
                    return
                write = method == "POST"
                if write and resource != "comments":
                    self.answer(405, google_error(405, "methodNotAllowed", "Method not allowed.", "global"))
                    return
                if refused := fake.credential(self.headers, query, write):
                    self.answer(*refused)
                    return
                if over := fake.charge(50 if write else 1):
                    self.answer(*over)
                    return
                scripted = fake.fault
                if scripted and scripted["path"] == resource and scripted.get("method", method) == method:
                    self.answer(scripted["status"], scripted["body"])
                    return
                if write:
                    try:
                        body = json.loads(raw or "{}")
                    except json.JSONDecodeError:
                        body = None
                    fake.writes.append({"url": self.path, "headers": dict(self.headers), "body": body})
                    if query.get("part") != "snippet":
                        self.answer(400, google_error(400, "unknownPart", f"'{query.get('part', '')}'", "youtube.part"))
                        return
                    status, answer = fake.insert(body)
                    if status == 200 and fake.stall_seconds:
                        threading.Event().wait(fake.stall_seconds)
                    self.answer(status, answer)
                elif resource == "commentThreads":
                    self.answer(*fake.comment_threads(query))
                elif resource == "comments":
                    self.answer(*fake.replies(query))
                else:
                    self.answer(*fake.channel_statistics(query))

            def do_GET(self) -> None:
                self.handle_api("GET")

            def do_POST(self) -> None:
                self.handle_api("POST")

        with local_server(Handler) as port:
            self.port = port
            yield self
