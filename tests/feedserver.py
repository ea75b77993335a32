"""A local HTTP server for the feed source's tests: real sockets on 127.0.0.1, behaviours set per path.

Each route answers with a fixture body and headers, honours ETag / If-None-Match (304), and can redirect,
drip bytes slowly, gzip its body, or say it is HTML. It counts requests per path.
"""

from __future__ import annotations

import gzip
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from tests.conftest import QuietHandler, local_server


@dataclass
class Route:
    body: bytes = b""
    content_type: str = "application/rss+xml; charset=utf-8"
    etag: str = ""
    status: int = 200
    location: str = ""
    gzip: bool = False
    drip_seconds: float = 0.0  # pause between 1-byte writes
    headers: dict[str, str] = field(default_factory=dict)  # sent as they are, after the usual ones


@dataclass
class FeedServer:
    routes: dict[str, Route] = field(default_factory=dict)
    hits: Counter[str] = field(default_factory=Counter)
    conditional_hits: Counter[str] = field(default_factory=Counter)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def serve(self) -> Iterator[FeedServer]:
        server = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                path = self.path
                server.hits[path] += 1
                route = server.routes.get(path)
                if route is None:
                    self.send_error(404)
                    return
                if route.etag and self.headers.get("If-None-Match") == route.etag:
                    server.conditional_hits[path] += 1
                    self.send_response(304)
                    self.send_header("ETag", route.etag)
                    self.end_headers()
                    return
                body = gzip.compress(route.body) if route.gzip else route.body
                self.send_response(route.status)
                if route.location:
                    self.send_header("Location", route.location)
                self.send_header("Content-Type", route.content_type)
                if route.etag:
                    self.send_header("ETag", route.etag)
                if route.gzip:
                    self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(body)))
                for name, value in route.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    if route.drip_seconds:
                        for index in range(len(body)):
                            self.wfile.write(body[index : index + 1])
                            self.wfile.flush()
                            time.sleep(route.drip_seconds)
                    else:
                        self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up, as it should

        with local_server(Handler) as port:
            self.port = port
            yield self
