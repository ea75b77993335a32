"""A local App Store Connect API double on 127.0.0.1: an app's customer reviews and the developer responses, in
Apple's JSON:API shapes.

Reviews come from the golden fixtures (``tests/fixtures/appstore/apps_<app id>_customerReviews.json``, each a page as
Apple sends it: ``data``, ``included``, ``links``, ``meta.paging``). Every request must carry ``Authorization: Bearer``
with a JWT the double verifies as Apple does: ES256 signed by the test's key (``public_key``), header ``kid`` the
key id and ``typ`` JWT, claims ``iss`` the issuer, ``aud`` ``appstoreconnect-v1``, ``exp`` not past and at most 20
minutes ahead of ``clock`` (the double's time, so tests need no real clock). Anything else is Apple's 401
NOT_AUTHORIZED; ``tokens`` keeps every token accepted, ``refused`` why each other one was not.

``GET /v1/apps/{id}/customerReviews`` sorts (``createdDate``, ``rating``, either way), filters (``filter[rating]``,
``filter[territory]``, ``exists[publishedResponse]``, which sees only PUBLISHED responses), pages (``limit`` at most
200, ``links.next`` a full URL with the query and an opaque ``cursor``), sends only the ``fields[...]`` asked for and
the responses in ``included`` with ``include=response``; an unknown parameter or a bad value is Apple's 400
PARAMETER_ERROR, an app the team does not have 404 NOT_FOUND, an app in ``forbidden`` (the key's role may not see its
reviews) 403 FORBIDDEN_ERROR. ``rate_limited`` answers 429 RATE_LIMIT_EXCEEDED; every answer carries ``X-Rate-Limit``.

Writes: ``POST /v1/customerReviewResponses`` creates the review's response, or overwrites it (one per review, as
Apple keeps them), PENDING_PUBLISH until `FakeAppStore.publish`; 201 with the resource. An unknown review is 409
ENTITY_ERROR.RELATIONSHIP.INVALID. ``GET /v1/customerReviews/{id}/response`` reads it (404 when there is none).
``refuse_writes`` fails writes as Apple would ("permission", "rate_limited", "unavailable"); ``stall_seconds``
stores the response, then keeps the answer back (Apple accepted the write, the caller timed out). ``writes`` keeps
every POST.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import FIXTURES, T0, QuietHandler, local_server

ISSUER_ID = "57246542-96fe-1a63-e053-0824d011072a"
KEY_ID = "2X9R4HXF34"
APP = "1234567890"  # Caffè Aurora, the ordering app
CLUB = "1234567891"  # Aurora Club, the loyalty app
PACIFIC = timezone(timedelta(hours=-8))  # Apple writes its times in Cupertino's offset
REVIEW_ATTRIBUTES = ("rating", "title", "body", "reviewerNickname", "createdDate", "territory")
RESPONSE_ATTRIBUTES = ("responseBody", "lastModifiedDate", "state")
LIST_PARAMETERS = {
    "filter[rating]",
    "filter[territory]",
    "exists[publishedResponse]",
    "sort",
    "fields[customerReviews]",
    "fields[customerReviewResponses]",
    "limit",
    "include",
    "cursor",
}
SORTS = ("createdDate", "-createdDate", "rating", "-rating")
VERSION_PARAMETERS = {
    "fields[appStoreVersions]",
    "filter[platform]",
    "filter[versionString]",
    "filter[appStoreState]",
    "limit",
    "include",
}


def apple_error(status: int, code: str, title: str, detail: str) -> dict[str, Any]:
    """Apple's error document."""
    return {
        "errors": [
            {
                "id": "b2c4a9e6-1f0d-4b8e-9a51-3c7d2e8f6a10",
                "status": str(status),
                "code": code,
                "title": title,
                "detail": detail,
            }
        ]
    }


def not_authorized() -> dict[str, Any]:
    return apple_error(
        401,
        "NOT_AUTHORIZED",
        "Authentication credentials are missing or invalid.",
        "Provide a properly configured and signed bearer token, and make sure that it has not expired. Learn more "
        "about Generating Tokens for API Requests https://developer.apple.com/go/?id=api-generating-tokens",
    )


def not_found(kind: str, object_id: str) -> dict[str, Any]:
    return apple_error(
        404,
        "NOT_FOUND",
        "The specified resource does not exist",
        f"There is no resource of type '{kind}' with id '{object_id}'",
    )


FORBIDDEN = apple_error(
    403,
    "FORBIDDEN_ERROR",
    "This request is forbidden for security reasons",
    "The API key in use does not allow this request",
)
RATE_LIMIT = apple_error(
    429,
    "RATE_LIMIT_EXCEEDED",
    "The request rate limit has been reached.",
    "We've received too many requests for this API. Please wait and try again or slow down your request rate.",
)
UNEXPECTED = apple_error(
    500,
    "UNEXPECTED_ERROR",
    "An unexpected error occurred.",
    "An unexpected error occurred on the server side. If this issue continues, contact us at "
    "https://developer.apple.com/contact/.",
)


def apple_time(moment: datetime) -> str:
    """``2026-03-01T11:00:00-08:00``, as Apple writes times."""
    return moment.astimezone(PACIFIC).isoformat(timespec="seconds")


def cursor_for(offset: int) -> str:
    """An opaque paging cursor, as Apple's look: base64 of ``{"offset":"N"}``."""
    return base64.urlsafe_b64encode(json.dumps({"offset": str(offset)}).encode()).decode().rstrip("=")


def offset_of(cursor: str) -> int | None:
    try:
        return int(json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))["offset"])
    except (ValueError, KeyError, TypeError):
        return None


@dataclass
class FakeAppStore:
    public_key: ec.EllipticCurvePublicKey
    issuer_id: str = ISSUER_ID
    key_id: str = KEY_ID
    #: Each app's reviews (``type``, ``id``, ``attributes``), in any order: they are sorted as asked.
    reviews: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: Each app's App Store versions (``type`` appStoreVersions, ``id``, ``attributes`` with ``versionString``,
    #: ``platform``, ``appStoreState``, ``createdDate``); which version a review was written for is the double's own
    #: ``version`` key on the review (Apple's review names none: it is listed under its version).
    versions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: The key's role may not list the apps' App Store versions: 403 FORBIDDEN_ERROR.
    forbidden_versions: bool = False
    #: The developer response to each review (a ``customerReviewResponses`` resource), by review id.
    responses: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The double's "now": what ``exp`` is checked against, and the time of new responses.
    clock: datetime = T0
    #: Apps whose reviews the key's role may not see: 403 FORBIDDEN_ERROR.
    forbidden: set[str] = field(default_factory=set)
    rate_limited: bool = False
    retry_after: str = ""  # a Retry-After header on the 429s (Apple documents none)
    hour_limit: int = 3600
    #: Every request: method, path, query (first values), headers.
    requests: list[dict[str, Any]] = field(default_factory=list)
    #: The verified header and claims of every token accepted.
    tokens: list[dict[str, Any]] = field(default_factory=list)
    #: Why each refused token was refused.
    refused: list[str] = field(default_factory=list)
    #: Every POST: path, headers and the JSON body.
    writes: list[dict[str, Any]] = field(default_factory=list)
    #: How writes fail: "" (they succeed), "permission", "rate_limited" or "unavailable".
    refuse_writes: str = ""
    stall_seconds: float = 0.0
    #: A forced answer to every GET: {"status": 503, "body": {...}, "headers": {...}}.
    error: dict[str, Any] | None = None
    next_id: int = 900
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_fixtures(cls, public_key: ec.EllipticCurvePublicKey, **options: Any) -> FakeAppStore:
        """The double holding the golden fixtures' reviews and responses, exactly as Apple listed them."""
        double = cls(public_key, **options)
        for path in sorted((FIXTURES / "appstore").glob("apps_*_customerReviews.json")):
            app = path.name.split("_")[1]
            page = json.loads(path.read_text(encoding="utf-8"))
            included = {item["id"]: item for item in page.get("included", [])}
            double.reviews[app] = []
            for item in page["data"]:
                double.reviews[app].append({k: item[k] for k in ("type", "id", "attributes")})
                linked = item["relationships"]["response"]["data"]
                if linked:
                    response = included[linked["id"]]
                    double.responses[item["id"]] = {k: response[k] for k in ("type", "id", "attributes")}
        return double

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def review(self, review_id: str) -> dict[str, Any] | None:
        return next((r for items in self.reviews.values() for r in items if r["id"] == review_id), None)

    def add_review(self, app: str, review_id: str, created: datetime, version: str = "", **attributes: Any) -> None:
        """A new review on ``app``, as a customer would write it (on the App Store version with id ``version``)."""
        values = {"rating": 5, "title": "", "body": "", "reviewerNickname": "someone", "territory": "ITA", **attributes}
        values["createdDate"] = apple_time(created)
        review = {"type": "customerReviews", "id": review_id, "attributes": values}
        self.reviews.setdefault(app, []).append({**review, **({"version": version} if version else {})})

    def add_version(self, app: str, version_id: str, version: str, created: datetime) -> None:
        """An App Store version of ``app`` (``versionString`` ``version``), released for iOS."""
        attributes = {
            "platform": "IOS",
            "versionString": version,
            "appStoreState": "READY_FOR_DISTRIBUTION",
            "createdDate": apple_time(created),
        }
        self.versions.setdefault(app, []).append(
            {"type": "appStoreVersions", "id": version_id, "attributes": attributes}
        )

    def written_on(self, review_id: str, version_id: str) -> None:
        """Say which App Store version a review was written for."""
        review = self.review(review_id)
        assert review is not None
        review["version"] = version_id

    def version_listing(self, app: str, path: str, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """``GET /v1/apps/{app}/appStoreVersions``: in the order they were added, ``fields[appStoreVersions]`` and
        ``limit`` (at most 200) honoured, one page."""
        for name in query:
            if name not in VERSION_PARAMETERS:
                return 400, apple_error(
                    400,
                    "PARAMETER_ERROR.ILLEGAL",
                    "A parameter provided is not allowed for this request",
                    f"The parameter '{name}' can not be used with this request",
                )
        if app not in self.reviews:
            return 404, not_found("apps", app)
        if self.forbidden_versions:
            return 403, FORBIDDEN
        limit = int(query.get("limit", "50"))
        if not 1 <= limit <= 200:
            return 400, apple_error(400, "PARAMETER_ERROR.INVALID", "A parameter has an invalid value", "limit")
        names = query["fields[appStoreVersions]"].split(",") if "fields[appStoreVersions]" in query else None
        data = [
            {
                "type": "appStoreVersions",
                "id": v["id"],
                "attributes": {k: x for k, x in v["attributes"].items() if names is None or k in names},
                "links": {"self": f"{self.base_url}/v1/appStoreVersions/{v['id']}"},
            }
            for v in self.versions.get(app, [])[:limit]
        ]
        return 200, {"data": data, "links": {"self": f"{self.base_url}{path}?{urlencode(query)}"}}

    def app_of_version(self, version_id: str) -> str:
        return next((app for app, listed in self.versions.items() if any(v["id"] == version_id for v in listed)), "")

    def publish(self, review_id: str) -> None:
        """The App Store publishes the review's pending response."""
        self.responses[review_id]["attributes"]["state"] = "PUBLISHED"

    # -- what Apple checks -----------------------------------------------------------------------

    def authorize(self, header: str) -> str:
        """Why Apple would refuse this Authorization header, or "" when the token is valid at ``clock``."""
        if not header.startswith("Bearer "):
            return "no bearer token"
        token = header.removeprefix("Bearer ")
        try:
            head = jwt.get_unverified_header(token)
            claims = jwt.decode(
                token,
                self.public_key,
                algorithms=["ES256"],
                audience="appstoreconnect-v1",
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "require": ["iss", "exp", "aud"],
                },
            )
        except jwt.InvalidTokenError as error:
            return f"invalid token: {type(error).__name__}"
        now = self.clock.timestamp()
        if head.get("alg") != "ES256" or head.get("kid") != self.key_id or head.get("typ") != "JWT":
            return f"wrong header {head}"
        if claims.get("iss") != self.issuer_id:
            return "wrong issuer"
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= now:
            return "expired"
        if claims["exp"] > now + 20 * 60:
            return "expires more than 20 minutes ahead"
        self.tokens.append({"header": head, "claims": claims, "token": token})
        return ""

    def rate_header(self, status: int) -> dict[str, str]:
        remaining = 0 if status == 429 else max(self.hour_limit - len(self.requests), 0)
        return {"X-Rate-Limit": f"user-hour-lim:{self.hour_limit};user-hour-rem:{remaining};"}

    # -- the resources, as Apple serves them -----------------------------------------------------

    def review_resource(self, review: dict[str, Any], fields: list[str] | None, included: bool) -> dict[str, Any]:
        rid = review["id"]
        names = fields if fields is not None else [*REVIEW_ATTRIBUTES, "response"]
        resource: dict[str, Any] = {
            "type": "customerReviews",
            "id": rid,
            "attributes": {k: v for k, v in review["attributes"].items() if k in names},
        }
        if "response" in names:
            relationship: dict[str, Any] = {
                "links": {
                    "self": f"{self.base_url}/v1/customerReviews/{rid}/relationships/response",
                    "related": f"{self.base_url}/v1/customerReviews/{rid}/response",
                }
            }
            if included:
                response = self.responses.get(rid)
                relationship["data"] = {"type": "customerReviewResponses", "id": response["id"]} if response else None
            resource["relationships"] = {"response": relationship}
        resource["links"] = {"self": f"{self.base_url}/v1/customerReviews/{rid}"}
        return resource

    def response_resource(self, response: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
        names = fields if fields is not None else [*RESPONSE_ATTRIBUTES, "review"]
        rid = response["id"]
        resource: dict[str, Any] = {
            "type": "customerReviewResponses",
            "id": rid,
            "attributes": {k: v for k, v in response["attributes"].items() if k in names},
        }
        if "review" in names:
            resource["relationships"] = {
                "review": {
                    "links": {
                        "self": f"{self.base_url}/v1/customerReviewResponses/{rid}/relationships/review",
                        "related": f"{self.base_url}/v1/customerReviewResponses/{rid}/review",
                    }
                }
            }
        resource["links"] = {"self": f"{self.base_url}/v1/customerReviewResponses/{rid}"}
        return resource

    def listing(self, app: str, path: str, query: dict[str, str], version: str = "") -> tuple[int, dict[str, Any]]:
        """``GET /v1/apps/{app}/customerReviews``; with ``version``, ``GET /v1/appStoreVersions/{version}/
        customerReviews`` (the reviews written for that version)."""
        for name in query:
            if name not in LIST_PARAMETERS:
                return 400, apple_error(
                    400,
                    "PARAMETER_ERROR.ILLEGAL",
                    "A parameter provided is not allowed for this request",
                    f"The parameter '{name}' can not be used with this request",
                )
        problem = self.invalid(query)
        if problem:
            return 400, apple_error(400, "PARAMETER_ERROR.INVALID", "A parameter has an invalid value", problem)
        if app not in self.reviews:
            return 404, not_found("apps", app)
        if app in self.forbidden:
            return 403, FORBIDDEN
        items = [r for r in self.reviews[app] if not version or r.get("version") == version]
        if ratings := query.get("filter[rating]"):
            items = [r for r in items if str(r["attributes"]["rating"]) in ratings.split(",")]
        if territories := query.get("filter[territory]"):
            items = [r for r in items if r["attributes"]["territory"] in territories.split(",")]
        if (published := query.get("exists[publishedResponse]")) is not None:
            items = [r for r in items if self.published(r["id"]) == (published == "true")]
        order = query.get("sort", "-createdDate")
        key = order.lstrip("-")
        items.sort(
            key=lambda r: (
                datetime.fromisoformat(r["attributes"][key]) if key == "createdDate" else r["attributes"][key]
            ),
            reverse=order.startswith("-"),
        )
        limit = int(query.get("limit", "50"))
        start = offset_of(query["cursor"]) if "cursor" in query else 0
        if start is None:
            return 400, apple_error(
                400, "PARAMETER_ERROR.INVALID", "A parameter has an invalid value", "The cursor is not valid"
            )
        page = items[start : start + limit]
        review_fields = query["fields[customerReviews]"].split(",") if "fields[customerReviews]" in query else None
        response_fields = (
            query["fields[customerReviewResponses]"].split(",") if "fields[customerReviewResponses]" in query else None
        )
        include = "response" in query.get("include", "").split(",")
        given = {k: v for k, v in query.items() if k != "cursor"}
        body: dict[str, Any] = {
            "data": [self.review_resource(r, review_fields, include) for r in page],
            "links": {"self": f"{self.base_url}{path}?{urlencode(query)}"},
            "meta": {"paging": {"total": len(items), "limit": limit}},
        }
        if include:
            body["included"] = [
                self.response_resource(self.responses[r["id"]], response_fields)
                for r in page
                if r["id"] in self.responses
            ]
        if start + limit < len(items):
            following = {"cursor": cursor_for(start + limit), **given}
            body["links"]["next"] = f"{self.base_url}{path}?{urlencode(following)}"
        return 200, body

    def invalid(self, query: dict[str, str]) -> str:
        """Apple's words for a parameter with a value it does not accept, or ""."""
        limit = query.get("limit", "50")
        if not limit.isdigit() or not 1 <= int(limit) <= 200:
            return f"The parameter 'limit' has a value '{limit}' that is not between 1 and 200"
        if query.get("sort", "-createdDate") not in SORTS:
            return f"'{query['sort']}' is not a valid value for the parameter 'sort'"
        if query.get("exists[publishedResponse]", "true") not in ("true", "false"):
            return "'exists[publishedResponse]' must be true or false"
        checks = (
            ("fields[customerReviews]", (*REVIEW_ATTRIBUTES, "response")),
            ("fields[customerReviewResponses]", (*RESPONSE_ATTRIBUTES, "review")),
            ("include", ("response",)),
        )
        for name, allowed in checks:
            for value in query.get(name, "").split(",") if name in query else []:
                if value not in allowed:
                    return f"'{value}' is not a valid field name for the parameter '{name}'"
        return ""

    def published(self, review_id: str) -> bool:
        response = self.responses.get(review_id)
        return response is not None and response["attributes"]["state"] == "PUBLISHED"

    def write(self, body: Any) -> tuple[int, dict[str, Any]]:
        """``POST /v1/customerReviewResponses``: create the review's response or overwrite it."""
        data = body.get("data") if isinstance(body, dict) else None
        attributes = data.get("attributes") if isinstance(data, dict) else None
        review = (
            ((data or {}).get("relationships") or {}).get("review", {}).get("data") if isinstance(data, dict) else None
        )
        text = attributes.get("responseBody") if isinstance(attributes, dict) else None
        if (
            not isinstance(data, dict)
            or data.get("type") != "customerReviewResponses"
            or not isinstance(text, str)
            or not isinstance(review, dict)
            or review.get("type") != "customerReviews"
        ):
            return 409, apple_error(
                409,
                "ENTITY_ERROR",
                "The provided entity is missing a required field",
                "You must provide a value for the attribute 'responseBody' and the relationship 'review' with this "
                "request",
            )
        review_id = str(review.get("id", ""))
        if self.review(review_id) is None:
            return 409, apple_error(
                409,
                "ENTITY_ERROR.RELATIONSHIP.INVALID",
                "The provided entity includes a relationship with an invalid value",
                f"'{review_id}' is not a valid id for this relationship.",
            )
        with self.lock:
            existing = self.responses.get(review_id)
            if existing is None:
                self.next_id += 1
                existing = {"type": "customerReviewResponses", "id": f"00000099-cccc-0001-0000-{self.next_id:012d}"}
                self.responses[review_id] = existing
            existing["attributes"] = {
                "responseBody": text,
                "lastModifiedDate": apple_time(self.clock),
                "state": "PENDING_PUBLISH",
            }
        return 201, {
            "data": self.response_resource(existing, None),
            "links": {"self": f"{self.base_url}/v1/customerReviewResponses"},
        }

    def write_refusal(self) -> tuple[int, dict[str, Any]] | None:
        if self.refuse_writes == "permission":
            return 403, FORBIDDEN
        if self.refuse_writes == "rate_limited":
            return 429, RATE_LIMIT
        if self.refuse_writes == "unavailable":
            return 500, UNEXPECTED
        return None

    # -- the server ------------------------------------------------------------------------------

    def serve(self) -> Iterator[FakeAppStore]:
        store = self

        class Handler(QuietHandler):
            def answer(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    for name, value in {**store.rate_header(status), **(headers or {})}.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the caller stopped waiting (a stalled write): nobody to answer
                    self.close_connection = True

            def admitted(self, parts: Any) -> bool:
                """Record the request; answer 401 or 429 (and say False) when Apple would."""
                query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                store.requests.append(
                    {
                        "method": self.command,
                        "path": parts.path,
                        "query": query,
                        "url": self.path,
                        "headers": dict(self.headers),
                    }
                )
                if reason := store.authorize(self.headers.get("Authorization", "")):
                    store.refused.append(reason)
                    self.answer(401, not_authorized())
                    return False
                if store.rate_limited:
                    self.answer(429, RATE_LIMIT, {"Retry-After": store.retry_after} if store.retry_after else None)
                    return False
                return True

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if not self.admitted(parts):
                    return
                if store.error:
                    self.answer(store.error["status"], store.error["body"], store.error.get("headers"))
                    return
                query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                segments = parts.path.strip("/").split("/")
                if len(segments) == 4 and segments[:2] == ["v1", "apps"] and segments[3] == "customerReviews":
                    self.answer(*store.listing(segments[2], parts.path, query))
                elif len(segments) == 4 and segments[:2] == ["v1", "apps"] and segments[3] == "appStoreVersions":
                    self.answer(*store.version_listing(segments[2], parts.path, query))
                elif segments[:2] == ["v1", "appStoreVersions"] and segments[3:] == ["customerReviews"]:
                    if app := store.app_of_version(segments[2]):
                        self.answer(*store.listing(app, parts.path, query, version=segments[2]))
                    else:
                        self.answer(404, not_found("appStoreVersions", segments[2]))
                elif len(segments) == 4 and segments[:2] == ["v1", "customerReviews"] and segments[3] == "response":
                    review_id = segments[2]
                    response = store.responses.get(review_id)
                    if store.review(review_id) is None or response is None:
                        kind = "customerReviews" if store.review(review_id) is None else "customerReviewResponses"
                        self.answer(404, not_found(kind, review_id))
                        return
                    fields = query.get("fields[customerReviewResponses]")
                    body = {
                        "data": store.response_resource(response, fields.split(",") if fields else None),
                        "links": {"self": f"{store.base_url}{self.path}"},
                    }
                    self.answer(200, body)
                else:
                    self.answer(
                        404,
                        apple_error(
                            404,
                            "NOT_FOUND",
                            "The specified resource does not exist",
                            "The path provided does not match a defined resource type.",
                        ),
                    )

            def do_POST(self) -> None:
                parts = urlsplit(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
                try:
                    body = json.loads(raw or b"null")
                except json.JSONDecodeError:
                    body = None
                store.writes.append({"path": parts.path, "headers": dict(self.headers), "body": body})
                if not self.admitted(parts):
                    return
                if parts.path != "/v1/customerReviewResponses":
                    self.answer(
                        405,
                        apple_error(
                            405,
                            "METHOD_NOT_ALLOWED",
                            "The request method is not valid for the resource path.",
                            "The request method is not valid for the resource path.",
                        ),
                    )
                    return
                if refused := store.write_refusal():
                    self.answer(*refused)
                    return
                status, answer = store.write(body)
                if status == 201 and store.stall_seconds:
                    threading.Event().wait(store.stall_seconds)
                self.answer(status, answer)

        with local_server(Handler) as port:
            self.port = port
            yield self


def utc(value: str) -> datetime:
    """An Apple time as aware UTC, for assertions."""
    return datetime.fromisoformat(value).astimezone(UTC)
