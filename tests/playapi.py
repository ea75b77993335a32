"""A local Google Play Developer API double on 127.0.0.1: Google's token endpoint and the Reply to Reviews API.

``POST /token`` is Google's OAuth token endpoint for service accounts: a form with ``grant_type`` (the JWT-bearer
grant) and ``assertion``, verified as Google does: RS256 with the public key of the key id (``kid``) Google holds for
the account (a deleted key, or a key that signed with another private key, is 400 ``invalid_grant`` "Invalid JWT
Signature."), ``iss`` the account, ``aud`` this endpoint, a ``scope``, and ``iat``/``exp`` at most an hour apart around
the double's ``now``. It answers ``{"access_token", "expires_in", "token_type"}``; every assertion's verified header
and claims are kept in ``assertions``.

The API, with the access token in ``Authorization: Bearer`` (missing: 401 ``required``; unknown, revoked or expired:
401 ``authError``; without the androidpublisher scope: 403 insufficient scopes), under
``/androidpublisher/v3/applications/{packageName}``:

- ``GET .../reviews?maxResults=&token=&translationLanguage=`` lists the reviews whose user comment was created or
  changed in the seven days before ``now``, newest first, ``maxResults`` a page (10 when absent, at most 100), with
  opaque ``tokenPagination.nextPageToken``s (a token it never issued is 400) and ``pageInfo``;
- ``GET .../reviews/{reviewId}`` one review (404 when there is none);
- ``POST .../reviews/{reviewId}:reply`` with ``{"replyText"}`` sets the developer's reply (replacing the one before,
  HTML tags stripped, more than 350 UTF-16 units refused with 400) and answers ``{"result": {"replyText",
  "lastEdited"}}``; every POST is kept in ``writes``.

A package the account was not invited to (not in ``visible``) is 403 PERMISSION_DENIED "The caller does not have
permission", as Play answers. ``translationLanguage`` sends the text in ``translations`` (what Play's translator would
give) with the customer's words in ``originalText``. Faults: ``fault`` answers every reviews GET with a status, body
and headers; ``refuse_writes`` makes replies fail ("permission", "quota", "unavailable", "gateway"); ``stall_seconds``
stores a reply and then keeps the answer back (Play accepted the write, the caller timed out).
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from tests.conftest import T0, QuietHandler, local_server

EMAIL = "passaparola@aurora-care.iam.gserviceaccount.com"
SCOPE = "https://www.googleapis.com/auth/androidpublisher"
GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
PREFIX = "/androidpublisher/v3/applications/"
MAX_REPLY = 350
SEE = "See https://developers.google.com/identity/sign-in/web/devconsole-project."


def google_error(code: int, message: str, status: str, reason: str, **more: Any) -> dict[str, Any]:
    """Google's error body: ``{"error": {"code", "message", "errors": [{"message", "domain", "reason"}], "status"}}``
    (some Play answers carry no ``status``: pass "")."""
    item = {"message": more.pop("item_message", message), "domain": more.pop("domain", "global"), "reason": reason}
    error = {"code": code, "message": message, "errors": [{**item, **more}]}
    return {"error": {**error, "status": status} if status else error}


def stamp(moment: datetime) -> dict[str, Any]:
    """A protobuf Timestamp as Google's JSON writes it: seconds as a string, nanos as a number."""
    return {"seconds": str(int(moment.timestamp())), "nanos": moment.microsecond * 1000}


def moment_of(value: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(int(value["seconds"]), UTC) + timedelta(microseconds=int(value["nanos"]) // 1000)


def user_comment(review: dict[str, Any]) -> dict[str, Any]:
    return next(c["userComment"] for c in review["comments"] if "userComment" in c)


@dataclass
class FakePlay:
    #: Play's Review objects by package, in any order (the list is served newest first).
    reviews: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: What Play's translator gives: review id -> language -> text.
    translations: dict[str, dict[str, str]] = field(default_factory=dict)
    #: The public keys Google holds for the service account, by key id (``private_key_id``).
    keys: dict[str, RSAPublicKey] = field(default_factory=dict)
    email: str = EMAIL
    #: The double's clock: what "the last week", assertion times, token expiry and reply times are measured by.
    now: datetime = T0
    #: The packages the service account was invited to in Play Console (None: every package in ``reviews``).
    visible: set[str] | None = None
    token_lifetime: int = 3600
    #: The scope the tokens get (what the assertion asked for, unless a test says otherwise).
    token_scope: str | None = None
    #: Answer every reviews GET with this: {"status": 429, "body": {...}, "headers": {...}}.
    fault: dict[str, Any] | None = None
    #: How replies fail: "" (they succeed), "permission", "quota", "unavailable" or "gateway".
    refuse_writes: str = ""
    #: Store the reply, then wait this long before answering (a timeout after Play accepted it).
    stall_seconds: float = 0.0
    assertions: list[dict[str, Any]] = field(default_factory=list)
    #: Every API request: method, path, query and headers.
    requests: list[dict[str, Any]] = field(default_factory=list)
    #: Every POST to the API: path, headers and JSON body.
    writes: list[dict[str, Any]] = field(default_factory=list)
    tokens: dict[str, tuple[datetime, str]] = field(default_factory=dict)  # access token -> (expiry, scope)
    pages: dict[str, tuple[str, int]] = field(default_factory=dict)  # page token -> (package, offset)
    counter: Iterator[int] = field(default_factory=lambda: itertools.count(1), repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    def find(self, review_id: str) -> tuple[str, dict[str, Any]] | None:
        for package, reviews in self.reviews.items():
            for review in reviews:
                if review["reviewId"] == review_id:
                    return package, review
        return None

    def edit(self, review_id: str, text: str, stars: int, at: datetime, **written_on: Any) -> None:
        """The customer changes the review: new words and stars, a new ``lastModified`` (the list's order); and,
        when they wrote it from an updated app or another phone, the user comment's fields that say so
        (``appVersionName``, ``appVersionCode``, ``androidOsVersion``, ``device``, ``deviceMetadata``)."""
        found = self.find(review_id)
        assert found is not None
        comment = user_comment(found[1])
        comment.update({"text": text, "starRating": stars, "lastModified": stamp(at), **written_on})

    def developer_reply(self, review_id: str) -> dict[str, Any] | None:
        found = self.find(review_id)
        assert found is not None
        return next((c["developerComment"] for c in found[1]["comments"] if "developerComment" in c), None)

    def keep(self, method: str, path: str, query: dict[str, str], headers: dict[str, str]) -> None:
        self.requests.append({"method": method, "path": path, "query": query, "headers": headers})

    def revoke(self) -> None:
        """Google forgets every access token it issued (a key disabled, a token revoked)."""
        self.tokens.clear()

    def listed(self, package: str) -> list[dict[str, Any]]:
        """The reviews Play lists: changed in the last week, newest user comment first."""
        week = self.now - timedelta(days=7)
        recent = [r for r in self.reviews.get(package, []) if moment_of(user_comment(r)["lastModified"]) >= week]
        return sorted(recent, key=lambda r: moment_of(user_comment(r)["lastModified"]), reverse=True)

    def shown(self, review: dict[str, Any], language: str) -> dict[str, Any]:
        """A review as Play sends it, translated into ``language`` when asked and the translator has it."""
        review = copy.deepcopy(review)
        translated = self.translations.get(review["reviewId"], {}).get(language) if language else None
        if translated:
            comment = user_comment(review)
            comment["originalText"], comment["text"] = comment["text"], translated
        return review

    # -- the token endpoint --------------------------------------------------------------------

    def grant(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """What Google's token endpoint answers ``form``."""

        def refused(description: str, error: str = "invalid_grant") -> tuple[int, dict[str, Any]]:
            return 400, {"error": error, "error_description": description}

        if form.get("grant_type") != GRANT:
            return refused(f"Invalid grant_type: {form.get('grant_type', '')}", "unsupported_grant_type")
        assertion = form.get("assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            return refused("Invalid JWT: the assertion is not a JWT")
        key = self.keys.get(str(header.get("kid", "")))
        if header.get("alg") != "RS256" or key is None:
            return refused("Invalid JWT Signature.")
        try:
            claims = jwt.decode(
                assertion,
                key,
                algorithms=["RS256"],
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False, "verify_aud": False},
            )
        except jwt.InvalidSignatureError:
            return refused("Invalid JWT Signature.")
        except jwt.PyJWTError as error:
            return refused(f"Invalid JWT: {error}")
        self.assertions.append({"header": header, "claims": claims})
        if claims.get("iss") != self.email:
            return refused("Invalid grant: account not found")
        if claims.get("aud") != self.token_uri:
            return refused(f"Invalid JWT: Failed audience check. The right audience is {self.token_uri}")
        if not claims.get("scope"):
            return refused("Invalid OAuth scope or ID token audience provided.", "invalid_scope")
        iat, exp, now = claims.get("iat"), claims.get("exp"), self.now.timestamp()
        if not isinstance(iat, int) or not isinstance(exp, int) or exp - iat > 3600 or iat > now + 300 or exp <= now:
            return refused(
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
                "Check your iat and exp values in the JWT claim."
            )
        token = f"ya29.c.SENTINEL-{next(self.counter)}-{secrets.token_urlsafe(8)}"
        scope = self.token_scope if self.token_scope is not None else str(claims["scope"])
        self.tokens[token] = (self.now + timedelta(seconds=self.token_lifetime), scope)
        return 200, {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}

    # -- the API -------------------------------------------------------------------------------

    def refusal(self, authorization: str, package: str) -> tuple[int, dict[str, Any]] | None:
        """Google's answer to a call without a valid token, or for an app the account may not see."""
        if not authorization.startswith("Bearer "):
            message = f"Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. {SEE}"  # noqa: E501
            return 401, google_error(
                401, message, "UNAUTHENTICATED", "required", item_message="Login Required.", location="Authorization"
            )
        issued = self.tokens.get(authorization.removeprefix("Bearer "))
        if issued is None or issued[0] <= self.now:
            message = f"Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. {SEE}"  # noqa: E501
            return 401, google_error(
                401,
                message,
                "UNAUTHENTICATED",
                "authError",
                item_message="Invalid Credentials",
                location="Authorization",
                locationType="header",
            )
        if SCOPE not in issued[1].split():
            body = google_error(
                403,
                "Request had insufficient authentication scopes.",
                "PERMISSION_DENIED",
                "insufficientPermissions",
                item_message="Insufficient Permission",
            )
            body["error"]["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                    "domain": "googleapis.com",
                    "metadata": {"service": "androidpublisher.googleapis.com"},
                }
            ]
            return 403, body
        allowed = self.visible if self.visible is not None else set(self.reviews)
        if package not in allowed:
            return 403, google_error(403, "The caller does not have permission", "PERMISSION_DENIED", "forbidden")
        return None

    def page(self, package: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        listed = self.listed(package)
        try:
            size = min(int(query.get("maxResults", "10")), 100)
        except ValueError:
            return 400, google_error(400, "Invalid value for maxResults", "INVALID_ARGUMENT", "invalid")
        start = 0
        if "token" in query:
            issued = self.pages.get(query["token"])
            if issued is None or issued[0] != package:
                return 400, google_error(400, "Invalid pagination token.", "INVALID_ARGUMENT", "badRequest")
            start = issued[1]
        chunk = listed[start : start + max(size, 1)]
        body: dict[str, Any] = {
            "reviews": [self.shown(r, query.get("translationLanguage", "")) for r in chunk],
            "pageInfo": {"totalResults": len(listed), "resultPerPage": len(chunk), "startIndex": start},
        }
        if start + len(chunk) < len(listed):
            token = secrets.token_urlsafe(12)
            self.pages[token] = (package, start + len(chunk))
            body["tokenPagination"] = {"nextPageToken": token}
        return 200, body

    def write_refusal(self) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        if self.refuse_writes == "permission":
            return 403, google_error(403, "The caller does not have permission", "PERMISSION_DENIED", "forbidden"), {}
        if self.refuse_writes == "quota":
            message = (
                "Quota exceeded for quota metric 'Reply to reviews requests' and limit 'Reply to reviews requests per "
                "day' of service 'androidpublisher.googleapis.com'."
            )
            return 429, google_error(429, message, "RESOURCE_EXHAUSTED", "rateLimitExceeded"), {}
        if self.refuse_writes == "unavailable":
            return 503, google_error(503, "The service is currently unavailable.", "UNAVAILABLE", "backendError"), {}
        if self.refuse_writes == "gateway":
            return 504, google_error(504, "The request timed out.", "DEADLINE_EXCEEDED", "deadlineExceeded"), {}
        return None

    def reply(self, review: dict[str, Any], text: str) -> dict[str, Any]:
        """Set the developer's reply on ``review`` (replacing any), as Play does: HTML tags stripped."""
        applied = re.sub(r"<[^>]*>", "", text)
        reply = {"developerComment": {"text": applied, "lastModified": stamp(self.now)}}
        review["comments"] = [c for c in review["comments"] if "developerComment" not in c] + [reply]
        return {"result": {"replyText": applied, "lastEdited": stamp(self.now)}}

    def serve(self) -> Iterator[FakePlay]:
        play = self

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

            def target(self) -> tuple[str, str, str, dict[str, str]]:
                """The package, the review id (or ""), the verb after ``:`` (or "") and the query."""
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                rest = parts.path.removeprefix(PREFIX).split("/")
                verb = ""
                if rest[-1].endswith(":reply"):
                    rest[-1], verb = rest[-1].removesuffix(":reply"), "reply"
                package = unquote(rest[0])
                review_id = unquote(rest[2]) if len(rest) == 3 and rest[1] == "reviews" else ""
                if not parts.path.startswith(PREFIX) or rest[1:2] != ["reviews"] or len(rest) > 3:
                    package = ""
                return package, review_id, verb, query

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0)).decode("utf-8")
                if urlsplit(self.path).path == "/token":
                    form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
                    with play.lock:
                        self.answer(*play.grant(form))
                    return
                package, review_id, verb, query = self.target()
                play.requests.append(
                    {"method": "POST", "path": self.path, "query": query, "headers": dict(self.headers)}
                )
                try:
                    body = json.loads(raw or "{}")
                except json.JSONDecodeError:
                    body = None
                play.writes.append({"path": self.path, "headers": dict(self.headers), "body": body})
                if not package or verb != "reply" or not review_id:
                    self.answer(404, google_error(404, "Not Found", "NOT_FOUND", "notFound"))
                    return
                if refused := play.refusal(self.headers.get("Authorization", ""), package):
                    self.answer(*refused)
                    return
                if refused_write := play.write_refusal():
                    self.answer(*refused_write)
                    return
                text = body.get("replyText") if isinstance(body, dict) else None
                if not isinstance(text, str) or not text.strip():
                    message = "Invalid JSON payload: replyText is required."
                    self.answer(400, google_error(400, message, "INVALID_ARGUMENT", "badRequest"))
                    return
                if len(text.encode("utf-16-le")) // 2 > MAX_REPLY:
                    message = f"Reply text is too long (more than {MAX_REPLY} characters)."
                    self.answer(400, google_error(400, message, "INVALID_ARGUMENT", "badRequest"))
                    return
                with play.lock:
                    found = play.find(review_id)
                    if found is None or found[0] != package:
                        self.answer(404, google_error(404, "Review not found.", "NOT_FOUND", "notFound"))
                        return
                    result = play.reply(found[1], text)
                if play.stall_seconds:
                    threading.Event().wait(play.stall_seconds)
                self.answer(200, result)

            def do_GET(self) -> None:
                package, review_id, verb, query = self.target()
                play.requests.append(
                    {"method": "GET", "path": self.path, "query": query, "headers": dict(self.headers)}
                )
                if not package or verb:
                    self.answer(404, google_error(404, "Not Found", "NOT_FOUND", "notFound"))
                    return
                if refused := play.refusal(self.headers.get("Authorization", ""), package):
                    self.answer(*refused)
                    return
                if play.fault and not review_id:
                    self.answer(play.fault["status"], play.fault["body"], play.fault.get("headers"))
                    return
                with play.lock:
                    if not review_id:
                        self.answer(*play.page(package, query))
                        return
                    found = play.find(review_id)
                    if found is None or found[0] != package:
                        self.answer(404, google_error(404, "Review not found.", "NOT_FOUND", "notFound"))
                        return
                    self.answer(200, play.shown(found[1], query.get("translationLanguage", "")))

        with local_server(Handler) as port:
            self.port = port
            yield self
