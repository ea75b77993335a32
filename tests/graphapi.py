"""A local Graph API double on 127.0.0.1: a Page's published posts and their comments, in Graph's shapes.

Pages of comments carry ``paging.cursors`` and ``paging.next``; errors come as Graph's ``{"error": {...}}``
with its codes (190 expired token, 4 rate limit with ``X-Business-Use-Case-Usage``). Every request is kept, so
tests can check where the token travelled.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.conftest import QuietHandler, local_server

PAGE_ID = "1000000001"
VERSION = "v21.0"


@dataclass
class FakeGraph:
    posts: list[dict[str, Any]] = field(default_factory=list)
    comments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # newest first, as Graph orders them
    page_size: int = 2
    error: dict[str, Any] | None = None  # {"status": 400, "body": {...}, "headers": {...}}
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    #: An app with "Require App Secret" on: every call must carry appsecret_proof for this secret and ``token``.
    app_secret: str = ""
    token: str = ""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve(self) -> Iterator[FakeGraph]:
        graph = self

        class Handler(QuietHandler):
            def answer(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                graph.requests.append((self.path, dict(self.headers)))
                if graph.error:
                    self.answer(graph.error["status"], graph.error["body"], graph.error.get("headers"))
                    return
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                segments = parts.path.strip("/").split("/")
                if graph.app_secret:
                    proof = hmac.new(graph.app_secret.encode(), graph.token.encode(), hashlib.sha256).hexdigest()
                    if query.get("appsecret_proof") != proof:
                        message = "API calls from the server require an appsecret_proof argument"
                        if "appsecret_proof" in query:
                            message = "Invalid appsecret_proof provided in the API argument"
                        self.answer(400, {"error": {"message": message, "type": "GraphMethodException", "code": 100}})
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
                else:
                    self.answer(400, {"error": {"message": "Unsupported get request", "code": 100}})

        with local_server(Handler) as port:
            self.port = port
            yield self
