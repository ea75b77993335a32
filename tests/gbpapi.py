"""A local Google Business Profile double on 127.0.0.1: Google's OAuth token endpoint and the My Business API v4
reviews of an account's locations, in Google's shapes.

``POST /token`` is the OAuth 2.0 token endpoint: a form with ``grant_type=refresh_token``, ``client_id``,
``client_secret`` and ``refresh_token`` answers ``{"access_token", "expires_in", "scope", "token_type": "Bearer"}``; a
wrong client is 401 ``invalid_client``, a wrong or revoked refresh token 400 ``invalid_grant``, as Google answers.
``token_status`` makes it answer a busy status (503 ``temporarily_unavailable``) instead.

``GET /v4/accounts/{account}/locations/{location}/reviews`` lists a location's reviews with ``pageSize`` (at most
50, default 50), ``orderBy`` (``updateTime desc``, the default, ``rating`` or ``rating desc``; anything else is 400
INVALID_ARGUMENT) and an opaque ``pageToken`` (``nextPageToken`` of the page before; one it did not make is 400),
with ``averageRating`` and ``totalReviewCount``. ``GET /v4/{review name}`` reads one review; ``PUT /v4/{review
name}/reply`` with ``{"comment"}`` stores the owner's reply (replacing any) and answers ``{"comment",
"updateTime"}``, kept in ``writes``; the next list shows it as ``reviewReply``. A review that is not there is 404
NOT_FOUND, a location the account does not manage 403 PERMISSION_DENIED, a token it did not issue (or that was
revoked) 401 UNAUTHENTICATED, a token granted without ``business.manage`` 403 with reason
ACCESS_TOKEN_SCOPE_INSUFFICIENT, ``quota_exhausted`` 429 RESOURCE_EXHAUSTED (``Retry-After`` when given). Errors
are Google's ``{"error": {"code", "message", "status", "details"}}``. Every request is kept in ``requests`` (method,
path, query, headers, body), so tests can check where each secret travelled.

``edit``, ``delete`` and ``add`` change the reviews between polls, as their authors do; ``stall_seconds`` stores a
reply, then keeps the answer back (Google stored it, the caller timed out).
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.conftest import QuietHandler, local_server

SCOPE = "https://www.googleapis.com/auth/business.manage"
STARS = {"ONE": 1, "TWO": 2, "THREE": 3, "FOUR": 4, "FIVE": 5}
ORDERS = ("updateTime desc", "rating", "rating desc")
MAX_REPLY_BYTES = 4096


def stamp(moment: datetime) -> str:
    """A time as Google writes it: UTC, ``Z``, milliseconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def moment(value: str) -> datetime:
    """Google's RFC 3339 ``...Z`` time, for sorting."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def google_error(code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Google's error body."""
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def quota_error() -> dict[str, Any]:
    """What Google answers when the project's per-minute quota is spent."""
    message = (
        "Quota exceeded for quota metric 'Requests' and limit 'Requests per minute' of service "
        "'mybusiness.googleapis.com' for consumer 'project_number:123456789012'."
    )
    info = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "RATE_LIMIT_EXCEEDED",
        "domain": "googleapis.com",
        "metadata": {
            "service": "mybusiness.googleapis.com",
            "quota_metric": "mybusiness.googleapis.com/default_requests",
            "quota_limit": "DefaultRequestsPerMinutePerProject",
            "consumer": "projects/123456789012",
            "quota_limit_value": "300",
        },
    }
    return google_error(429, "RESOURCE_EXHAUSTED", message, [info])


@dataclass
class FakeGBP:
    account_id: str
    #: Each location's reviews, in Google's Review shape (any order: the list sorts them).
    reviews: dict[str, list[dict[str, Any]]]
    client_id: str
    client_secret: str
    refresh_token: str
    #: What the refresh token was granted; without business.manage the reviews API refuses the access tokens.
    scope: str = SCOPE
    expires_in: int = 3599
    #: The refresh token was revoked (or expired): the token endpoint answers invalid_grant.
    revoked: bool = False
    #: Answer every token request with this status (503: temporarily_unavailable), 0 for normal service.
    token_status: int = 0
    #: Locations the Google account does not manage (403 for them).
    forbidden: set[str] = field(default_factory=set)
    #: The project's quota is spent: every API call is 429, with this Retry-After when not empty.
    quota_exhausted: bool = False
    retry_after: str = ""
    #: A scripted answer for every API call: {"status", "body", "headers"}.
    error: dict[str, Any] | None = None
    #: Store the reply, then wait this long before answering the PUT.
    stall_seconds: float = 0.0
    #: The replies' updateTime (now when None).
    write_time: datetime | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    writes: list[dict[str, Any]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)  # access tokens handed out, oldest first
    valid: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    def token_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == "/token"]

    def api_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"].startswith("/v4/")]

    # -- what reviewers do between polls -------------------------------------------------------------------------

    def find(self, review_id: str) -> tuple[str, dict[str, Any]] | None:
        """The location a review is at, and the review."""
        for location, reviews in self.reviews.items():
            for review in reviews:
                if review["reviewId"] == review_id:
                    return location, review
        return None

    def edit(self, review_id: str, at: datetime, comment: str | None = None, stars: str | None = None) -> None:
        """The author changes their words or stars: a newer updateTime, the same id."""
        found = self.find(review_id)
        assert found is not None, review_id
        review = found[1]
        if comment is not None:
            review["comment"] = comment
        if stars is not None:
            review["starRating"] = stars
        review["updateTime"] = stamp(at)

    def delete(self, review_id: str) -> None:
        found = self.find(review_id)
        assert found is not None, review_id
        self.reviews[found[0]].remove(found[1])

    def add(self, location: str, review_id: str, name: str, stars: str, comment: str, at: datetime) -> dict[str, Any]:
        review = {
            "name": f"accounts/{self.account_id}/locations/{location}/reviews/{review_id}",
            "reviewId": review_id,
            "reviewer": {
                "profilePhotoUrl": f"https://lh3.googleusercontent.com/a/ACg8oc{review_id[-6:]}=s120-c-rp-mo-br100",
                "displayName": name,
                "isAnonymous": False,
            },
            "starRating": stars,
            "comment": comment,
            "createTime": stamp(at),
            "updateTime": stamp(at),
        }
        self.reviews[location].append(review)
        return review

    def revoke_access_tokens(self) -> None:
        """Google stops accepting the access tokens it issued (a password change, a revoked grant)."""
        self.valid.clear()

    # -- the service -------------------------------------------------------------------------------------------------

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if self.token_status:
            return self.token_status, {"error": "temporarily_unavailable", "error_description": "Try again later."}
        if form.get("grant_type") != "refresh_token":
            grant = form.get("grant_type", "")
            return 400, {"error": "unsupported_grant_type", "error_description": f"Invalid grant_type: {grant}"}
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return 401, {"error": "invalid_client", "error_description": "The OAuth client was not found."}
        if form.get("refresh_token") != self.refresh_token or self.revoked:
            return 400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
        with self.lock:
            access = f"ya29.a0-access-SENTINEL-{len(self.issued) + 1}"
            self.issued.append(access)
            self.valid.add(access)
        body = {"access_token": access, "expires_in": self.expires_in, "scope": self.scope, "token_type": "Bearer"}
        return 200, body

    def authorised(self, header: str) -> tuple[int, dict[str, Any]] | None:
        """Google's refusal of the Authorization header, or None when it may go on."""
        if not header.startswith("Bearer "):
            message = (
                "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie "
                "or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/"
                "devconsole-project."
            )
            return 401, google_error(401, "UNAUTHENTICATED", message)
        if header.removeprefix("Bearer ") not in self.valid:
            message = (
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
                "valid authentication credential. See https://developers.google.com/identity/sign-in/web/"
                "devconsole-project."
            )
            return 401, google_error(401, "UNAUTHENTICATED", message)
        if SCOPE not in self.scope.split():
            info = {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                "domain": "googleapis.com",
                "metadata": {"service": "mybusiness.googleapis.com", "method": "google.mybusiness.v4.ListReviews"},
            }
            return 403, google_error(
                403, "PERMISSION_DENIED", "Request had insufficient authentication scopes.", [info]
            )
        return None

    def location_problem(self, account: str, location: str) -> tuple[int, dict[str, Any]] | None:
        if account != self.account_id or location not in self.reviews or location in self.forbidden:
            return 403, google_error(403, "PERMISSION_DENIED", "The caller does not have permission")
        return None

    def listing(self, location: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        order = query.get("orderBy", "updateTime desc")
        if order not in ORDERS:
            return 400, google_error(400, "INVALID_ARGUMENT", f"Invalid order_by: {order}")
        try:
            size = int(query.get("pageSize", "50"))
        except ValueError:
            return 400, google_error(400, "INVALID_ARGUMENT", "Invalid value at 'page_size' (TYPE_INT32)")
        size = min(size, 50) if size > 0 else 50
        start = 0
        if token := query.get("pageToken"):
            try:
                said = json.loads(base64.urlsafe_b64decode(token.encode()))
                start = int(said["o"]) if said["by"] == order and said["l"] == location else -1
            except (ValueError, KeyError, TypeError):
                start = -1
            if start < 0:
                return 400, google_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.")
        reviews = self.reviews[location]
        if order == "updateTime desc":
            ordered = sorted(reviews, key=lambda r: (moment(r["updateTime"]), r["name"]), reverse=True)
        else:
            ordered = sorted(reviews, key=lambda r: STARS.get(r.get("starRating", ""), 0), reverse=order != "rating")
        body: dict[str, Any] = {"reviews": ordered[start : start + size]}
        rated = [STARS[r["starRating"]] for r in reviews if r.get("starRating") in STARS]
        if rated:
            body["averageRating"] = round(sum(rated) / len(rated), 1)
        body["totalReviewCount"] = len(reviews)
        if start + size < len(ordered):
            token = json.dumps({"o": start + size, "by": order, "l": location})
            body["nextPageToken"] = base64.urlsafe_b64encode(token.encode()).decode()
        if not body["reviews"]:
            del body["reviews"]  # Google leaves out an empty list
        return 200, body

    def put_reply(self, review_id: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        if headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            return 400, google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        try:
            sent = json.loads(raw or b"{}")
        except ValueError:
            return 400, google_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        comment = sent.get("comment") if isinstance(sent, dict) else None
        if not isinstance(comment, str) or not comment.strip():
            return 400, google_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.")
        if len(comment.encode("utf-8")) > MAX_REPLY_BYTES:
            return 400, google_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.")
        with self.lock:
            found = self.find(review_id)
            if found is None:
                return 404, google_error(404, "NOT_FOUND", "Requested entity was not found.")
            reply = {"comment": comment, "updateTime": stamp(self.write_time or datetime.now(UTC))}
            found[1]["reviewReply"] = reply
        return 200, dict(reply)

    def serve(self) -> Iterator[FakeGBP]:
        fake = self

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

            def keep(self) -> tuple[str, dict[str, str], bytes]:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                fake.requests.append(
                    {
                        "method": self.command,
                        "path": parts.path,
                        "url": self.path,
                        "query": query,
                        "headers": dict(self.headers),
                        "body": raw.decode("utf-8", "replace"),
                    }
                )
                return parts.path, query, raw

            def do_POST(self) -> None:
                path, _, raw = self.keep()
                if path != "/token":
                    self.answer(404, google_error(404, "NOT_FOUND", "Method not found."))
                    return
                if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
                    self.answer(400, {"error": "invalid_request", "error_description": "Bad Request"})
                    return
                form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8"), keep_blank_values=True).items()}
                self.answer(*fake.token(form))

            def api(self) -> tuple[list[str], dict[str, str], bytes] | None:
                """The path's segments after /v4, once the call is allowed; None when it was answered already."""
                path, query, raw = self.keep()
                if fake.error:
                    self.answer(fake.error["status"], fake.error["body"], fake.error.get("headers"))
                    return None
                segments = [unquote(s) for s in path.strip("/").split("/")]
                if segments[:1] != ["v4"]:
                    self.answer(404, google_error(404, "NOT_FOUND", "Method not found."))
                    return None
                if refusal := fake.authorised(self.headers.get("Authorization", "")):
                    self.answer(*refusal)
                    return None
                if fake.quota_exhausted:
                    headers = {"Retry-After": fake.retry_after} if fake.retry_after else {}
                    self.answer(429, quota_error(), headers)
                    return None
                rest = segments[1:]
                if len(rest) < 5 or (rest[0], rest[2], rest[4]) != ("accounts", "locations", "reviews"):
                    self.answer(404, google_error(404, "NOT_FOUND", "Method not found."))
                    return None
                if refusal := fake.location_problem(rest[1], rest[3]):
                    self.answer(*refusal)
                    return None
                return rest, query, raw

            def review(self, rest: list[str]) -> dict[str, Any] | None:
                found = fake.find(rest[5]) if len(rest) >= 6 else None
                if found is None or found[0] != rest[3]:
                    self.answer(404, google_error(404, "NOT_FOUND", "Requested entity was not found."))
                    return None
                return found[1]

            def do_GET(self) -> None:
                allowed = self.api()
                if allowed is None:
                    return
                rest, query, _ = allowed
                if len(rest) == 5:
                    self.answer(*fake.listing(rest[3], query))
                elif len(rest) == 6 and (review := self.review(rest)) is not None:
                    self.answer(200, review)

            def do_PUT(self) -> None:
                allowed = self.api()
                if allowed is None:
                    return
                rest, _, raw = allowed
                if len(rest) != 7 or rest[6] != "reply":
                    self.answer(404, google_error(404, "NOT_FOUND", "Method not found."))
                    return
                if self.review(rest) is None:
                    return
                status, body = fake.put_reply(rest[5], dict(self.headers), raw)
                if status == 200:
                    fake.writes.append({"path": urlsplit(self.path).path, "body": json.loads(raw)})
                    if fake.stall_seconds:
                        threading.Event().wait(fake.stall_seconds)
                self.answer(status, body)

        with local_server(Handler) as port:
            self.port = port
            yield self
