"""A local Graph API double on 127.0.0.1: a Page's published posts and their comments, in Graph's shapes.

Pages of comments carry ``paging.cursors`` and ``paging.next``; errors come as Graph's ``{"error": {...}}``
with its codes (190 expired token, 4 rate limit with ``X-Business-Use-Case-Usage``). Every request is kept, so
tests can check where the token travelled.

Writes too: ``POST /{version}/{comment-id}/comments`` with a form-encoded ``message`` answers as the Page, stores the
new comment newest first under its post (so the next poll hears it as the brand's reply) and keeps the call in
``writes``. A reply to a reply is attached to the top-level comment, as Facebook does. ``GET /{version}/{id}`` reads
one comment, ``GET /{version}/{comment-id}/comments`` the replies under a comment. ``refuse_writes`` makes writes
fail the way Graph does ("expired", "permission", "rate_limited", "unavailable"); ``stall_seconds`` stores the
comment and then keeps the answer back (Graph accepted the write, the caller timed out).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.conftest import QuietHandler, local_server

PAGE_ID = "1000000001"
VERSION = "v21.0"
TRACE = "AbCdEfGhIjK"  # Graph's fbtrace_id, the same for every error here


def missing(method: str, object_id: str) -> dict[str, Any]:
    """Graph's answer for an id that does not exist, or that the token may not see."""
    message = (
        f"Unsupported {method} request. Object with ID '{object_id}' does not exist, cannot be loaded due to missing "
        "permissions, or does not support this operation. Please read the Graph API documentation at "
        "https://developers.facebook.com/docs/graph-api"
    )
    return {
        "error": {
            "message": message,
            "type": "GraphMethodException",
            "code": 100,
            "error_subcode": 33,
            "fbtrace_id": TRACE,
        }
    }


def pick(item: dict[str, Any], fields: str) -> dict[str, Any]:
    """The top-level ``fields`` of ``item`` (``from{id,name}`` counts as ``from``), id always, as Graph answers."""
    names, depth, word = {"id"}, 0, ""
    for char in fields + ",":
        depth += (char == "{") - (char == "}")
        if char == "," and depth == 0:
            names.add(word.split("{")[0].strip())
            word = ""
        else:
            word += char
    return {k: v for k, v in item.items() if k in names}


@dataclass
class FakeGraph:
    posts: list[dict[str, Any]] = field(default_factory=list)
    comments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # newest first, as Graph orders them
    page_size: int = 2
    error: dict[str, Any] | None = None  # {"status": 400, "body": {...}, "headers": {...}}
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    #: An app with "Require App Secret" on: every call must carry appsecret_proof for this secret and ``token``.
    app_secret: str = ""
    #: The Page token writes must carry (any Bearer token when empty).
    token: str = ""
    page_name: str = "Caffè Aurora"
    #: Every POST: path, headers, the form body and the query, in order.
    writes: list[dict[str, Any]] = field(default_factory=list)
    #: How writes fail: "" (they succeed), "expired", "permission", "rate_limited" or "unavailable".
    refuse_writes: str = ""
    #: The estimated_time_to_regain_access the rate-limit headers carry, in minutes.
    regain_minutes: int = 7
    #: Store the comment, then wait this long before answering the POST (a timeout after Graph accepted it).
    stall_seconds: float = 0.0
    #: The new comments' created_time (now when None).
    write_time: datetime | None = None
    next_id: int = 900
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def find(self, comment_id: str) -> tuple[str, dict[str, Any]] | None:
        """The post a comment is under, and the comment."""
        for post_id, comments in self.comments.items():
            for comment in comments:
                if comment.get("id") == comment_id:
                    return post_id, comment
        return None

    def replies(self, comment_id: str) -> list[dict[str, Any]]:
        """The comments under ``comment_id``, newest first."""
        return [
            c
            for comments in self.comments.values()
            for c in comments
            if (c.get("parent") or {}).get("id") == comment_id
        ]

    def proof_problem(self, query: dict[str, str]) -> dict[str, Any] | None:
        """Graph's refusal when the app requires appsecret_proof and the call lacks the right one."""
        if not self.app_secret:
            return None
        proof = hmac.new(self.app_secret.encode(), self.token.encode(), hashlib.sha256).hexdigest()
        if query.get("appsecret_proof") == proof:
            return None
        message = "API calls from the server require an appsecret_proof argument"
        if "appsecret_proof" in query:
            message = "Invalid appsecret_proof provided in the API argument"
        return {"error": {"message": message, "type": "GraphMethodException", "code": 100}}

    def write_refusal(self) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        """What Graph answers a write in the ``refuse_writes`` mode."""
        if self.refuse_writes == "expired":
            message = (
                "Error validating access token: Session has expired on Monday, 02-Mar-26 00:00:00 PST. "
                "The current time is Monday, 02-Mar-26 01:00:00 PST."
            )
            error = {"message": message, "type": "OAuthException", "code": 190, "error_subcode": 463}
            return 400, {"error": {**error, "fbtrace_id": TRACE}}, {}
        if self.refuse_writes == "permission":
            error = {"message": "(#200) Permissions error", "type": "OAuthException", "code": 200}
            return 403, {"error": {**error, "fbtrace_id": TRACE}}, {}
        if self.refuse_writes == "rate_limited":
            usage = {"call_count": 100, "total_cputime": 25, "total_time": 25}
            business = {PAGE_ID: [{"type": "pages", **usage, "estimated_time_to_regain_access": self.regain_minutes}]}
            headers = {"X-App-Usage": json.dumps(usage), "X-Business-Use-Case-Usage": json.dumps(business)}
            error = {"message": "(#4) Application request limit reached", "type": "OAuthException", "code": 4}
            return 400, {"error": {**error, "is_transient": True, "fbtrace_id": TRACE}}, headers
        if self.refuse_writes == "unavailable":
            error = {"message": "Service temporarily unavailable", "type": "OAuthException", "code": 2}
            return 503, {"error": {**error, "is_transient": True, "fbtrace_id": TRACE}}, {}
        return None

    def write(self, target: str, message: str) -> dict[str, Any] | None:
        """Store the Page's comment under ``target`` (under its parent when ``target`` is a reply); None if unknown."""
        with self.lock:
            found = self.find(target)
            if found is None:
                return None
            post_id, comment = found
            parent = (comment.get("parent") or {}).get("id") or target  # Facebook keeps replies one level deep
            self.next_id += 1
            number = self.next_id
            post_part = post_id.rsplit("_", 1)[-1]
            when = self.write_time or datetime.now(UTC)
            new = {
                "id": f"{post_part}_{number}",
                "from": {"id": PAGE_ID, "name": self.page_name},
                "message": message,
                "created_time": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000"),
                "parent": {"id": parent},
                "permalink_url": f"https://www.facebook.com/{PAGE_ID}/posts/{post_part}?comment_id={number}",
            }
            self.comments[post_id].insert(0, new)
            return new

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self) -> Iterator[FakeGraph]:
        graph = self

        class Handler(QuietHandler):
            def answer(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json; charset=UTF-8")
                    for name, value in (headers or {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the caller stopped waiting (a stalled write): nobody to answer
                    self.close_connection = True

            def do_POST(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0)).decode("utf-8")
                kind = self.headers.get("Content-Type", "").split(";")[0].strip()
                form = json.loads(raw or "{}") if kind == "application/json" else {}
                if kind == "application/x-www-form-urlencoded":
                    form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
                graph.requests.append((self.path, dict(self.headers)))
                graph.writes.append({"path": self.path, "headers": dict(self.headers), "form": form, "query": query})
                fields = {**query, **form}
                segments = parts.path.strip("/").split("/")
                bearer = self.headers.get("Authorization", "")
                if segments[:1] != [VERSION]:
                    self.answer(400, {"error": {"message": "Unknown version", "code": 2500}})
                    return
                if not bearer.startswith("Bearer "):
                    message = "An access token is required to request this resource."
                    self.answer(400, {"error": {"message": message, "type": "OAuthException", "code": 104}})
                    return
                if graph.token and bearer != f"Bearer {graph.token}":
                    message = "Invalid OAuth access token - Cannot parse access token"
                    error = {"message": message, "type": "OAuthException", "code": 190, "fbtrace_id": TRACE}
                    self.answer(400, {"error": error})
                    return
                if refusal := graph.proof_problem(fields):
                    self.answer(400, refusal)
                    return
                if len(segments) != 3 or segments[2] != "comments":
                    self.answer(400, {"error": {"message": "Unsupported post request.", "code": 100}})
                    return
                if refused := graph.write_refusal():
                    self.answer(*refused)
                    return
                if not fields.get("message", "").strip():
                    message = "(#100) Missing message or attachment"
                    self.answer(400, {"error": {"message": message, "type": "OAuthException", "code": 100}})
                    return
                new = graph.write(segments[1], fields["message"])
                if new is None:
                    self.answer(400, missing("post", segments[1]))
                    return
                if graph.stall_seconds:
                    threading.Event().wait(graph.stall_seconds)
                self.answer(200, {"id": new["id"]})

            def do_GET(self) -> None:
                graph.requests.append((self.path, dict(self.headers)))
                if graph.error:
                    self.answer(graph.error["status"], graph.error["body"], graph.error.get("headers"))
                    return
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                segments = parts.path.strip("/").split("/")
                if refusal := graph.proof_problem(query):
                    self.answer(400, refusal)
                    return
                if segments[:1] != [VERSION]:
                    self.answer(400, {"error": {"message": "Unknown version", "code": 2500}})
                elif segments[1:] == [PAGE_ID, "published_posts"]:
                    self.answer(200, {"data": graph.posts[: int(query.get("limit", 25))]})
                elif len(segments) == 3 and segments[2] == "comments" and segments[1] in graph.comments:
                    if query.get("filter") != "stream":
                        self.answer(200, {"data": [c for c in graph.comments[segments[1]] if "parent" not in c]})
                        return
                    items = graph.comments[segments[1]]
                    start = int(query.get("after", "0"))
                    page = items[start : start + graph.page_size]
                    body: dict[str, Any] = {"data": page, "paging": {"cursors": {"before": str(start)}}}
                    if start + graph.page_size < len(items):
                        after = str(start + graph.page_size)
                        body["paging"]["cursors"]["after"] = after
                        body["paging"]["next"] = f"{graph.base_url}{parts.path}?filter=stream&after={after}"
                    self.answer(200, body)
                elif len(segments) == 3 and segments[2] == "comments" and graph.find(segments[1]):
                    self.answer(200, self.page(graph.replies(segments[1]), query, parts.path))
                elif len(segments) == 3 and segments[2] == "comments":
                    self.answer(400, missing("get", segments[1]))
                elif len(segments) == 2 and (found := graph.find(segments[1])):
                    comment = found[1]
                    self.answer(200, pick(comment, query["fields"]) if "fields" in query else comment)
                elif len(segments) == 2:
                    self.answer(400, missing("get", segments[1]))
                else:
                    self.answer(400, {"error": {"message": "Unsupported get request", "code": 100}})

            def page(self, items: list[dict[str, Any]], query: dict[str, str], path: str) -> dict[str, Any]:
                """One page of ``items`` (newest first, unless ``order`` asks otherwise), with Graph's paging."""
                if query.get("order", "chronological") != "reverse_chronological":
                    items = items[::-1]
                start = int(query.get("after", "0"))
                size = min(graph.page_size, int(query.get("limit", graph.page_size)))
                body: dict[str, Any] = {
                    "data": items[start : start + size],
                    "paging": {"cursors": {"before": str(start)}},
                }
                if start + size < len(items):
                    after = str(start + size)
                    following = {k: v for k, v in query.items() if k != "appsecret_proof"} | {"after": after}
                    body["paging"]["cursors"]["after"] = after
                    body["paging"]["next"] = f"{graph.base_url}{path}?{urlencode(following)}"
                return body

        with local_server(Handler) as port:
            self.port = port
            yield self
