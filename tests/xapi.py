"""A local X API v2 server on 127.0.0.1 for tests: the real JSON shapes, paging and rate-limit headers.

It serves posts from a fixture (``tests/fixtures/x/posts.json``, times in minutes before ``now``):
``GET /2/tweets/search/recent``, ``/2/users/:id/mentions``, ``/2/users/:id/tweets``,
``/2/users/by/username/:name``; ``since_id``, ``max_results``, ``next_token``/``pagination_token``;
``includes.users`` (authors missing from it stay missing: deleted accounts); ``meta.newest_id``,
``oldest_id``, ``result_count``, ``next_token``; ``x-rate-limit-*`` headers on every answer. Like X, it
sends only the fields asked for: ``id``, ``text`` and ``edit_history_tweet_ids`` plus ``tweet.fields``
(``referenced_tweets`` included: ``[{"type": "retweeted"|"quoted"|"replied_to", "id": ...}]``), users'
``id``, ``name`` and ``username`` plus ``user.fields``, and ``includes.users`` only for the ``author_id``
expansion; a field it does not know (one X added since) is always sent. Faults are scripted per path: a
status (429 with or without ``x-rate-limit-reset``, 5xx, 401, 403) with X's problem body, a
``Retry-After`` header, a body of the wrong shape, a body that is not JSON at all, or a delay.

Writes, as the brand account's user context (OAuth 1.0a, its signature checked with ``consumer_secret`` and
``access_token_secret``; a bearer token is X's 403 unsupported-authentication): ``POST /2/tweets`` with
``{"text": ..., "reply": {"in_reply_to_tweet_id": ...}}`` answers 201 ``{"data": {"id", "text",
"edit_history_tweet_ids"}}`` and stores the post (by ``writer_id``, ``replied_to`` its parent, in the parent's
conversation) where ``GET /2/users/:id/tweets`` lists it; ``fake.writes`` keeps every post it accepted. The same
text twice from the account is X's 403 duplicate content, a reply to a post it does not have (deleted or never
seen) X's 403 "deleted or not visible". ``stall_after_write`` seconds of silence after storing a post is a timeout
after X accepted it, ``drop_after_write`` a connection closed without an answer. ``GET /2/users/me`` is the
writer; ``start_time`` bounds the timelines. Faults may name a ``method`` (``fake.fault("/2/tweets",
status=429, method="POST")``) so that they spare the reads under the same path.

``GET /2/tweets/counts/recent`` counts ``hour_counts`` (posts per UTC hour, by the hour's start) in buckets of
``granularity`` (minute, hour or day; anything else is X's 400 invalid-request body), between ``start_time``
(default and earliest: seven days before ``now``) and ``end_time`` (default ``now`` minus 30 s, at the latest 10 s
before ``now``); partial buckets at either end, as X sends them, count only the whole hours inside them.
``{"data": [{"end", "start", "tweet_count"}], "meta": {"total_tweet_count", "next_token"}}``, oldest first,
``counts_page_size`` buckets a page (0: one page). ``counts_access = False`` answers 403 client-not-enrolled,
as X does for a plan without counts.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from oauthlib.common import Request
from oauthlib.oauth1.rfc5849 import signature

from tests.conftest import QuietHandler, local_server

FIXTURE = Path(__file__).parent / "fixtures" / "x" / "posts.json"


#: The tweet and user fields X sends only when asked (docs.x.com/x-api/fundamentals/fields); the rest always come.
OPTIONAL_TWEET_FIELDS = frozenset(
    [
        "attachments",
        "author_id",
        "context_annotations",
        "conversation_id",
        "created_at",
        "edit_controls",
        "entities",
        "geo",
        "in_reply_to_user_id",
        "lang",
        "non_public_metrics",
        "note_tweet",
        "organic_metrics",
        "possibly_sensitive",
        "promoted_metrics",
        "public_metrics",
        "referenced_tweets",
        "reply_settings",
        "source",
        "withheld",
    ]
)
OPTIONAL_USER_FIELDS = frozenset(
    [
        "created_at",
        "description",
        "entities",
        "location",
        "most_recent_tweet_id",
        "pinned_tweet_id",
        "profile_image_url",
        "protected",
        "public_metrics",
        "url",
        "verified",
        "verified_type",
        "withheld",
    ]
)


@dataclass
class Fault:
    """One scripted answer: ``status`` with X's problem body (or ``body`` as JSON, or ``raw`` bytes as-is)."""

    status: int = 200
    reset: int | None = None
    delay: float = 0.0
    times: int = 1
    retry_after: str | None = None
    body: Any = None
    raw: bytes | None = None
    content_type: str = "application/json; charset=utf-8"
    method: str = ""  # "" for any method; "POST" spares the reads under the same path


#: X's 403 for an app whose plan or enrollment does not include the endpoint.
CLIENT_FORBIDDEN = {
    "title": "Client Forbidden",
    "type": "https://api.twitter.com/2/problems/client-forbidden",
    "detail": "This request must be made using an approved developer account that is enrolled in the requested "
    "endpoint.",
    "reason": "client-not-enrolled",
    "registration_url": "https://developer.x.com/en/portal/product",
    "required_enrollment": "Appropriate Level of API Access",
}
#: The bucket lengths tweet counts know.
GRANULARITY = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
COUNTS_REACH = timedelta(days=7)
#: What tweepy signs: OAuth 1.0a signs the URL as the client sent it, to X's own host.
X_HOST = "https://api.twitter.com"
UNAUTHORIZED = {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}
#: X's 403 for an app-only bearer token on an endpoint that needs a user context (posting, /2/users/me).
UNSUPPORTED_AUTHENTICATION = {
    "title": "Unsupported Authentication",
    "detail": "Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.  Supported "
    "authentication types are [OAuth 1.0a User Context, OAuth 2.0 User Context].",
    "type": "https://api.twitter.com/2/problems/unsupported-authentication",
    "status": 403,
}
DUPLICATE = {
    "detail": "You are not allowed to create a Tweet with duplicate content.",
    "type": "about:blank",
    "title": "Forbidden",
    "status": 403,
}
DELETED_PARENT = {
    "detail": "You attempted to reply to a Tweet that is deleted or not visible to you.",
    "type": "about:blank",
    "title": "Forbidden",
    "status": 403,
}


def stamp(moment: datetime) -> str:
    """A time as X writes it in bodies: ``2026-03-02T08:00:00.000Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def invalid(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """X API v2's 400 body: each bad parameter with its value and a message."""
    return {
        "errors": errors,
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.twitter.com/2/problems/invalid-request",
    }


def problem(status: int) -> dict[str, Any]:
    """X API v2's error body for ``status`` (an RFC 7807 problem, as X sends for 429 and 5xx)."""
    phrase = HTTPStatus(status).phrase
    return {"title": phrase, "detail": phrase, "type": "about:blank", "status": status}


def fields(item: dict[str, Any], asked: dict[str, list[str]], name: str, optional: frozenset[str]) -> dict[str, Any]:
    """``item`` as X would send it: the optional fields only when ``name`` (``tweet.fields``...) asks for them."""
    wanted = set(",".join(asked.get(name, [])).split(","))
    return {k: v for k, v in item.items() if k not in optional or k in wanted}


@dataclass
class FakeX:
    token: str
    now: datetime
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    posts: list[dict[str, Any]] = field(default_factory=list)
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)
    remaining: int = 450
    base_url: str = ""
    hour_counts: dict[datetime, int] = field(default_factory=dict)
    counts_access: bool = True
    counts_page_size: int = 0
    #: The OAuth 1.0a user context that may post: the app's keys and the brand account's (``writer_id``) token.
    consumer_key: str = ""
    consumer_secret: str = ""
    access_token: str = ""
    access_token_secret: str = ""
    writer_id: str = "1000"
    writes: list[dict[str, Any]] = field(default_factory=list)
    stall_after_write: float = 0.0
    drop_after_write: bool = False

    @classmethod
    def from_fixture(cls, token: str, now: datetime, path: Path = FIXTURE) -> FakeX:
        data = json.loads(path.read_text(encoding="utf-8"))
        fake = cls(token=token, now=now, users={u["id"]: u for u in data["users"]})
        for post in data["posts"]:
            fake.add(post)
        return fake

    def add(self, post: dict[str, Any]) -> None:
        """Add a post; ``minutes_ago`` becomes ``created_at``; ``channels`` says which endpoints list it."""
        post = dict(post)
        if "minutes_ago" in post:
            post["created_at"] = (
                (self.now - timedelta(minutes=post.pop("minutes_ago")))
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z")
            )
        post.setdefault("edit_history_tweet_ids", [post["id"]])
        self.posts.append(post)

    def fault(self, path: str, **kwargs: Any) -> None:
        self.faults.setdefault(path, []).append(Fault(**kwargs))

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]

    # -- answering -------------------------------------------------------------------------------

    def user_context(self, auth: str, method: str, uri: str) -> bool:
        """Whether ``auth`` is an OAuth 1.0a header of the writer's keys whose signature of ``uri`` holds."""
        if not auth.startswith("OAuth ") or not self.consumer_secret:
            return False
        request = Request(uri, method, body="", headers={"Authorization": auth})
        try:
            params = signature.collect_parameters(
                uri_query=request.uri_query, headers=request.headers, exclude_oauth_signature=False
            )
        except ValueError:
            return False
        given = dict(params)
        if (given.get("oauth_consumer_key"), given.get("oauth_token")) != (self.consumer_key, self.access_token):
            return False
        request.params = [(k, v) for k, v in params if k != "oauth_signature"]
        request.signature = given.get("oauth_signature", "")
        return bool(signature.verify_hmac_sha1(request, self.consumer_secret, self.access_token_secret))

    def answer(
        self,
        path: str,
        query: dict[str, list[str]],
        auth: str,
        method: str = "GET",
        sent: bytes = b"",
        uri: str = "",
    ) -> tuple[int, dict[str, str], Any]:
        """(status, headers, body): a body of ``bytes`` goes out as it is, anything else as JSON; status 0 closes
        the connection without an answer. ``uri`` is the path and query as sent (what OAuth 1.0a signed)."""
        self.requests.append((path, query))
        reset = int(self.now.timestamp()) + 900
        headers = {
            "x-rate-limit-limit": "450",
            "x-rate-limit-remaining": str(self.remaining),
            "x-rate-limit-reset": str(reset),
        }
        for prefix, faults in self.faults.items():
            if path.startswith(prefix) and faults and faults[0].method in ("", method):
                fault = faults[0]
                fault.times -= 1
                if fault.times <= 0:
                    faults.pop(0)
                if fault.delay:
                    time.sleep(fault.delay)
                if fault.retry_after is not None:
                    headers["retry-after"] = fault.retry_after
                if fault.status == 429:
                    headers.pop("x-rate-limit-reset")
                    if fault.reset is not None:
                        headers["x-rate-limit-reset"] = str(fault.reset)
                    headers["x-rate-limit-remaining"] = "0"
                if fault.raw is not None or fault.body is not None:
                    headers["content-type"] = fault.content_type
                    return fault.status, headers, fault.raw if fault.raw is not None else fault.body
                if fault.status == 429:
                    return 429, headers, problem(429)
                if fault.status == 403:
                    return 403, headers, {**CLIENT_FORBIDDEN, "status": 403}
                if fault.status != 200:
                    return fault.status, headers, problem(fault.status)
        signed = self.user_context(auth, method, X_HOST + (uri or path))
        if auth != f"Bearer {self.token}" and not signed:
            return 401, headers, UNAUTHORIZED
        parts = path.strip("/").split("/")
        if parts == ["2", "tweets"] and method == "POST":
            if not signed:
                return 403, headers, UNSUPPORTED_AUTHENTICATION
            return self.write(json.loads(sent or b"{}"), headers)
        if parts == ["2", "users", "me"]:
            if not signed:
                return 403, headers, UNSUPPORTED_AUTHENTICATION
            me = fields(self.users[self.writer_id], query, "user.fields", OPTIONAL_USER_FIELDS)
            return 200, headers, {"data": me}
        if parts[:3] == ["2", "users", "by"] and len(parts) == 5:
            user = next((u for u in self.users.values() if u["username"].lower() == parts[4].lower()), None)
            if user is None:
                return (
                    200,
                    headers,
                    {
                        "errors": [
                            {
                                "value": parts[4],
                                "detail": f"Could not find user with username: [{parts[4]}].",
                                "title": "Not Found Error",
                                "resource_type": "user",
                                "parameter": "username",
                                "resource_id": parts[4],
                                "type": "https://api.twitter.com/2/problems/resource-not-found",
                            }
                        ]
                    },
                )
            return 200, headers, {"data": fields(user, query, "user.fields", OPTIONAL_USER_FIELDS)}
        if parts == ["2", "tweets", "counts", "recent"]:
            if not self.counts_access:
                return 403, headers, {**CLIENT_FORBIDDEN, "status": 403}
            status, body = self.counts(query)
            return status, headers, body
        if parts == ["2", "tweets", "search", "recent"]:
            chosen = [p for p in self.posts if "search" in p.get("channels", [])]
            return 200, headers, self.page(chosen, query, "next_token")
        if len(parts) == 4 and parts[:2] == ["2", "users"] and parts[3] in ("mentions", "tweets"):
            channel = f"{parts[3]}:{parts[2]}"
            chosen = [p for p in self.posts if channel in p.get("channels", [])]
            return 200, headers, self.page(chosen, query, "pagination_token")
        return 404, headers, {"title": "Not Found", "status": 404}

    def write(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        """``POST /2/tweets``: a reply stored as the writer's post, or X's 403 for a duplicate or a missing parent."""
        text = str(body.get("text") or "")
        parent_id = str((body.get("reply") or {}).get("in_reply_to_tweet_id") or "")
        parent = next((p for p in self.posts if p["id"] == parent_id), None)
        if parent_id and parent is None:
            return 403, headers, DELETED_PARENT
        if any(p.get("author_id") == self.writer_id and p.get("text") == text for p in self.posts):
            return 403, headers, DUPLICATE
        post_id = str(max((int(p["id"]) for p in self.posts), default=0) + 1)
        post: dict[str, Any] = {
            "id": post_id,
            "text": text,
            "author_id": self.writer_id,
            "conversation_id": str((parent or {}).get("conversation_id") or (parent or {}).get("id") or post_id),
            "created_at": stamp(self.now),
            "edit_history_tweet_ids": [post_id],
            "channels": [f"tweets:{self.writer_id}"],
        }
        if parent is not None:
            post["in_reply_to_user_id"] = parent.get("author_id")
            post["referenced_tweets"] = [{"type": "replied_to", "id": parent_id}]
        self.posts.append(post)
        self.writes.append(post)
        if self.drop_after_write:
            return 0, headers, b""
        if self.stall_after_write:
            time.sleep(self.stall_after_write)
        return 201, headers, {"data": {"id": post_id, "text": text, "edit_history_tweet_ids": [post_id]}}

    def counts(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        """Recent tweet counts, or X's 400 for a missing query, an unknown granularity or times out of range."""
        errors: list[dict[str, Any]] = []
        if not query.get("query", [""])[0]:
            errors.append({"parameters": {"query": [""]}, "message": "The `query` query parameter can not be empty"})
        granularity = query.get("granularity", ["hour"])[0]
        if granularity not in GRANULARITY:
            errors.append(
                {
                    "parameters": {"granularity": [granularity]},
                    "message": f"The `granularity` query parameter value [{granularity}] is not one of "
                    "[minute,hour,day]",
                }
            )
        earliest, latest = self.now - COUNTS_REACH, self.now - timedelta(seconds=10)
        times: dict[str, datetime] = {}
        for name, default in (("start_time", earliest), ("end_time", self.now - timedelta(seconds=30))):
            raw = query.get(name, [""])[0]
            try:
                times[name] = datetime.fromisoformat(raw.replace("Z", "+00:00")).astimezone(UTC) if raw else default
            except ValueError:
                errors.append({"parameters": {name: [raw]}, "message": f"Invalid '{name}':'{raw}'."})
        start, end = times.get("start_time", earliest), times.get("end_time", latest)
        if start < earliest:
            errors.append(
                {
                    "parameters": {"start_time": [query["start_time"][0]]},
                    "message": f"Invalid 'start_time':'{query['start_time'][0]}'. 'start_time' must be on or after "
                    f"{earliest.strftime('%Y-%m-%dT%H:%MZ')}",
                }
            )
        if end > latest:
            errors.append(
                {
                    "parameters": {"end_time": [query["end_time"][0]]},
                    "message": f"Invalid 'end_time':'{query['end_time'][0]}'. 'end_time' must be a minimum of 10 "
                    "seconds prior to the request time.",
                }
            )
        if not errors and end <= start:
            errors.append(
                {
                    "parameters": {"start_time": [query.get("start_time", [""])[0]]},
                    "message": "Invalid 'start_time'. 'start_time' must be before 'end_time'.",
                }
            )
        if errors:
            return 400, invalid(errors)
        step = GRANULARITY[granularity]
        buckets: list[dict[str, Any]] = []
        at = start
        while at < end:
            boundary = datetime.fromtimestamp((at.timestamp() // step.total_seconds() + 1) * step.total_seconds(), UTC)
            until = min(boundary, end)
            hours = (n for h, n in self.hour_counts.items() if at <= h and h + timedelta(hours=1) <= until)
            buckets.append({"end": stamp(until), "start": stamp(at), "tweet_count": sum(hours)})
            at = until
        offset = int(query.get("next_token", ["0"])[0] or 0)
        size = self.counts_page_size or len(buckets)
        data = buckets[offset : offset + size]
        meta: dict[str, Any] = {"total_tweet_count": sum(b["tweet_count"] for b in data)}
        if offset + size < len(buckets):
            meta["next_token"] = str(offset + size)
        return 200, {"data": data, "meta": meta}

    def page(self, chosen: list[dict[str, Any]], query: dict[str, list[str]], token_name: str) -> dict[str, Any]:
        since = int(query.get("since_id", ["0"])[0])
        size = int(query.get("max_results", ["10"])[0])
        offset = int(query.get(token_name, ["0"])[0] or 0)
        start = query.get("start_time", [""])[0]
        if start:
            begin = datetime.fromisoformat(start.replace("Z", "+00:00"))
            chosen = [p for p in chosen if "created_at" in p and datetime.fromisoformat(p["created_at"]) >= begin]
        matching = sorted((p for p in chosen if int(p["id"]) > since), key=lambda p: -int(p["id"]))
        window = matching[offset : offset + size]
        data = [
            fields({k: v for k, v in p.items() if k != "channels"}, query, "tweet.fields", OPTIONAL_TWEET_FIELDS)
            for p in window
        ]
        meta: dict[str, Any] = {"result_count": len(data)}
        if data:
            meta["newest_id"], meta["oldest_id"] = data[0]["id"], data[-1]["id"]
        if offset + size < len(matching):
            meta["next_token"] = str(offset + size)
        body: dict[str, Any] = {"meta": meta}
        if data:
            body["data"] = data
        if data and "author_id" in ",".join(query.get("expansions", [])).split(","):
            authors = {p.get("author_id") for p in window}
            users = [
                fields(self.users[a], query, "user.fields", OPTIONAL_USER_FIELDS) for a in authors if a in self.users
            ]
            body["includes"] = {"users": users}
        return body


@contextmanager
def serve(fake: FakeX) -> Iterator[FakeX]:
    """Run ``fake`` on a free port of 127.0.0.1; ``fake.base_url`` is where it answers."""

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            self.respond("GET")

        def do_POST(self) -> None:
            self.respond("POST")

        def respond(self, method: str) -> None:
            url = urlparse(self.path)
            sent = self.rfile.read(int(self.headers.get("content-length") or 0))
            status, headers, body = fake.answer(
                url.path, parse_qs(url.query), self.headers.get("Authorization", ""), method, sent, self.path
            )
            if status == 0:  # the post is stored; the answer never comes
                self.close_connection = True
                return
            payload = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", headers.pop("content-type", "application/json; charset=utf-8"))
            self.send_header("content-length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(payload)

    with local_server(Handler) as port:
        fake.base_url = f"http://127.0.0.1:{port}"
        yield fake


def epoch(moment: datetime) -> int:
    return int(moment.astimezone(UTC).timestamp())
