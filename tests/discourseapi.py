"""A local Discourse double on 127.0.0.1: ``GET /posts.json``, the forum's latest posts, in Discourse's shapes.

As Discourse answers it (``PostsController#latest`` with ``LatestPostsQuery``): regular posts newest first by id,
``page_size`` a page (Discourse: 50), ``?before=<id>`` for the posts with a lower id, under ``latest_posts``, each
as ``PostSerializer`` writes it with ``add_title``, ``add_raw`` and ``add_excerpt`` (``topic_slug``,
``topic_title``, ``category_id``, ``reply_to_post_number``, ``cooked`` HTML...). Switches: ``api_key`` set makes it
a login-required forum (403 with Discourse's ``invalid_access`` body unless ``Api-Key`` matches), ``retry_after``
set answers 429 with Discourse's rate-limit body and that ``Retry-After``, ``garbage`` is sent instead of the posts
(an HTML page, JSON of another shape), ``redirect`` (a base URL: the forum moved) answers every request with a 302
to the same path and query there. Every request is kept with its headers, so tests see where the key travelled.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.conftest import T0, QuietHandler, local_server


def post(
    id: int,
    topic: tuple[int, str, str],
    number: int,
    username: str,
    cooked: str,
    minutes_ago: float,
    reply_to: int | None = None,
    name: str = "",
    category_id: int = 5,
    now: datetime = T0,
) -> dict[str, Any]:
    """One post as ``/posts.json`` lists it; ``topic`` is (id, slug, title), the time is minutes before ``now``."""
    topic_id, slug, title = topic
    when = (now - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {
        "id": id,
        "name": name or None,
        "username": username,
        "avatar_template": f"/user_avatar/forum.example/{username}/{{size}}/1_2.png",
        "created_at": when,
        "cooked": cooked,
        "post_number": number,
        "post_type": 1,
        "updated_at": when,
        "reply_count": 0,
        "reply_to_post_number": reply_to,
        "quote_count": 0,
        "incoming_link_count": 0,
        "reads": 3,
        "readers_count": 2,
        "score": 0.4,
        "yours": False,
        "topic_id": topic_id,
        "topic_slug": slug,
        "topic_title": title,
        "topic_html_title": title,
        "category_id": category_id,
        "display_username": name or None,
        "primary_group_name": None,
        "flair_name": None,
        "version": 1,
        "can_edit": False,
        "can_delete": False,
        "can_recover": False,
        "can_wiki": False,
        "user_title": None,
        "bookmarked": False,
        "raw": cooked.replace("<p>", "").replace("</p>", "\n"),
        "actions_summary": [],
        "moderator": False,
        "admin": False,
        "staff": username.endswith("_staff"),
        "user_id": 100 + id,
        "hidden": False,
        "trust_level": 1,
        "deleted_at": None,
        "user_deleted": False,
        "edit_reason": None,
        "can_view_edit_history": True,
        "wiki": False,
        "excerpt": cooked[:200],
    }


@dataclass
class FakeDiscourse:
    posts: list[dict[str, Any]] = field(default_factory=list)
    page_size: int = 50
    api_key: str = ""  # required when set: a forum that needs login
    api_username: str = ""
    retry_after: str = ""  # answer 429 with this Retry-After
    garbage: bytes | None = None  # answer 200 with this body instead
    garbage_type: str = "text/html; charset=utf-8"
    redirect: str = ""  # the forum moved: answer 302 to the same path and query under this base URL
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]

    def serve(self) -> Iterator[FakeDiscourse]:
        forum = self

        class Handler(QuietHandler):
            def answer(self, status: int, body: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                self.answer(status, json.dumps(body).encode(), "application/json; charset=utf-8", headers)

            def do_GET(self) -> None:
                forum.requests.append((self.path, dict(self.headers)))
                parts = urlsplit(self.path)
                if forum.redirect:
                    self.answer(302, b"", "text/html", {"Location": forum.redirect + self.path})
                elif forum.retry_after:
                    self.json(
                        429,
                        {
                            "errors": ["You've performed this action too many times. Please wait a few seconds."],
                            "error_type": "rate_limit",
                            "extras": {"wait_seconds": 120, "time_left": "2 minutes"},
                        },
                        {"Retry-After": forum.retry_after, "Discourse-Rate-Limit-Error-Code": "ip_10_secs_limit"},
                    )
                elif forum.api_key and (
                    self.headers.get("Api-Key") != forum.api_key
                    or self.headers.get("Api-Username", forum.api_username) != forum.api_username
                ):
                    message = (
                        "You are not permitted to view the requested resource. The API username or key is invalid."
                    )
                    self.json(403, {"errors": [message], "error_type": "invalid_access"})
                elif parts.path != "/posts.json":
                    self.json(404, {"errors": ["The requested URL or resource could not be found."]})
                elif forum.garbage is not None:
                    self.answer(200, forum.garbage, forum.garbage_type)
                else:
                    before = int(parse_qs(parts.query).get("before", ["0"])[0])
                    newest = sorted(forum.posts, key=lambda p: p["id"], reverse=True)
                    page = [p for p in newest if before <= 0 or p["id"] < before][: forum.page_size]
                    self.json(200, {"latest_posts": page})

        with local_server(Handler) as port:
            self.port = port
            yield self
