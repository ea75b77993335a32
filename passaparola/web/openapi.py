"""The OpenAPI 3.1 description of the JSON API, made from `ENDPOINTS`: the answers' schemas and every error
each endpoint can give."""

from __future__ import annotations

from typing import Any

from passaparola import __version__
from passaparola.config import Settings
from passaparola.web import params, service
from passaparola.web.endpoints import ENDPOINTS, Endpoint
from rules.sentiment import LABELS
from storage.sessions import KINDS

#: JSON schema atoms.
STRING, INTEGER, NUMBER, BOOLEAN = {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"}
TIME = {"type": "string", "format": "date-time"}
LINK = {"type": "string", "description": 'an http(s) link, or "" (no javascript: or data: link is ever answered)'}


def _null(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or null (OpenAPI 3.1: a JSON Schema type list)."""
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    return {**schema, "type": [schema["type"], "null"]}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _list(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


def _object(properties: dict[str, Any], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """An object with these properties, all required but ``optional``; more may come (new fields are no break)."""
    return {
        "type": "object",
        "required": [k for k in properties if k not in optional],
        "properties": properties,
    }


REPLY = _object(
    {
        "id": INTEGER,
        "key": STRING,
        "kind": STRING,
        "state": {
            "type": "string",
            "enum": ["pending_approval", "queued", "sending", "unknown", "sent", "failed", "rejected", "copied"],
        },
        "text": STRING,
        "channel": STRING,
        "written_by": STRING,
        "approved_by": STRING,
        "approved_at": _null(TIME),
        "reviewed_comment": STRING,
        "override_by": STRING,
        "override_reason": STRING,
        "findings": _list(_object({"level": STRING, "code": STRING, "message": STRING})),
        "attempts": INTEGER,
        "problem": STRING,
        "error": STRING,
        "advice": STRING,
        "next_attempt_at": _null(TIME),
        "platform_id": STRING,
        "url": LINK,
        "cost_usd": NUMBER,
        "sent_at": _null(TIME),
        "created_at": TIME,
    }
)
FIGURES = _object(
    {
        "needing_answer": INTEGER,
        "answered": INTEGER,
        "open": INTEGER,
        "median_seconds": _null(NUMBER),
        "p90_seconds": _null(NUMBER),
        "within_sla": INTEGER,
        "breached_open": INTEGER,
        "satisfaction": _null(NUMBER),
        "follow_ups": INTEGER,
        "compliance": _null(NUMBER),
        "unanswered_share": _null(NUMBER),
    }
)
SESSION = _object(
    {
        "id": INTEGER,
        "user": STRING,
        "since": TIME,
        "last_seen": TIME,
        "expires_at": TIME,
        "address": STRING,
        "agent": STRING,
        "current": BOOLEAN,
    }
)
SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": _object({"error": {"type": "string", "description": "what is wrong and what to do"}}),
    "Me": _object(
        {
            "name": STRING,
            "role": {"type": "string", "enum": ["agent", "supervisor", "admin"]},
            "member": STRING,
            "csrf": STRING,
            "session": _null(_object({"id": INTEGER, "expires_at": TIME})),
        }
    ),
    "MentionRow": _object(
        {
            "key": STRING,
            "channel": STRING,
            "source": STRING,
            "text": STRING,
            "url": LINK,
            "published_at": _null(TIME),
            "author": _object({"handle": STRING, "name": STRING, "reach": INTEGER}),
            "sentiment": _null(STRING),
            "language": _null(STRING),
            "topics": _list(STRING),
            "state": STRING,
            "state_reason": STRING,
            "priority": STRING,
            "team": STRING,
            "assignee": STRING,
            "due_at": _null(TIME),
            "minutes_left": _null(INTEGER),
            "answered_at": _null(TIME),
            "answered_by": STRING,
            "acknowledged_by": STRING,
            "vip": BOOLEAN,
            "others": _list(_object({"member": STRING, "doing": {"type": "string", "enum": ["viewing", "answering"]}})),
            "facts": {
                "type": "object",
                "additionalProperties": STRING,
                "description": "what an app review says about where it was written: territory (App Store, ISO 3166-1 "
                "alpha-3), app_version, device, android (the Android SDK level, Google Play)",
            },
        },
        # others: in inbox rows, who else has the mention open or is answering it; facts: in a mention's own view
        optional=("others", "facts"),
    ),
    "Incident": _object({"key": STRING, "kind": STRING, "title": STRING, "count": INTEGER, "keys": _list(STRING)}),
    "InboxPage": _object(
        {
            "items": _list(_ref("MentionRow")),
            "incidents": _list(_ref("Incident")),
            "total": INTEGER,
            "total_capped": {
                "type": "boolean",
                "description": "a search counts at most 1000 matches: true means total is that cap, not the count",
            },
            "page": {"type": "integer", "minimum": 1},
            "pages": {"type": "integer", "minimum": 1},
            "filters": {"type": "object", "description": "the filters applied, as read"},
        },
        optional=("incidents",),
    ),
    "MentionWithThread": _object(
        {
            "mention": _ref("MentionRow"),
            "others": _list(_object({"member": STRING, "doing": STRING, "at": TIME})),
            "thread": _list(_ref("MentionRow")),
            "replies": _list(REPLY),
            "answers": _list(_object({"handle": STRING, "text": STRING, "url": LINK, "published_at": _null(TIME)})),
            "author": _object(
                {
                    "person": _null(_object({"id": INTEGER, "name": STRING, "handles": _list(STRING)})),
                    "score": _null(NUMBER),
                    "tier": STRING,
                    "offers": _list(_object({"offer": STRING, "sent_at": _null(TIME), "used_at": _null(TIME)})),
                    "accounts": _list(STRING),
                    "history": _list(_ref("MentionRow")),
                    "moods": _list(_object({"month": STRING})),
                }
            ),
            "events": _list(
                _object({"at": _null(TIME), "event": STRING, "member": _null(STRING), "detail": _null(STRING)})
            ),
        }
    ),
    "BulkResult": _object({"done": _list(STRING), "failed": _list(_object({"key": STRING, "error": STRING}))}),
    "Lint": _object(
        {
            "verdict": STRING,
            "findings": _list(_object({"level": STRING, "code": STRING, "message": STRING})),
        }
    ),
    "Reply": REPLY,
    "ReplyBox": _object(
        {
            "can_send": BOOLEAN,
            "channel": STRING,
            "manual_reason": STRING,
            "needs_approval": BOOLEAN,
            "saved": _list(
                _object(
                    {"name": STRING, "language": STRING, "topics": _list(STRING), "text": STRING, "preview": STRING}
                )
            ),
            "draft": STRING,
            "draft_problem": STRING,
            "draft_back": _null(REPLY),
            "under_way": _list(REPLY),
            "idempotency_key": STRING,
        }
    ),
    "FilledReply": _object(
        {
            "text": STRING,
            "verdict": STRING,
            "findings": _list(_object({"level": STRING, "code": STRING, "message": STRING})),
        }
    ),
    "Approvals": _list(
        {
            **REPLY,
            "properties": {
                **REPLY["properties"],
                "due_at": _null(TIME),
                "overdue": BOOLEAN,
                "mention_text": STRING,
                "author": STRING,
            },
            "required": [*REPLY["required"], "due_at", "overdue", "mention_text", "author"],
        }
    ),
    "Figures": FIGURES,
    "Cockpit": _object(
        {
            "ratings": _list(
                _object(
                    {
                        "channel": STRING,
                        "place": STRING,
                        "count": INTEGER,
                        "average": _null(NUMBER),
                        "previous_count": INTEGER,
                        "previous_average": _null(NUMBER),
                        "change": _null(NUMBER),
                    }
                )
            ),
            "approvals": _list(REPLY),
            "hours": _list(
                _object({"hour": TIME, **{label: INTEGER for label in (*LABELS, "unknown")}}),
            ),
            "spikes": _list(_object({"at": TIME, "kind": STRING, "title": STRING})),
            "figures": {
                "type": "object",
                "description": "by dimension (all, channel, team, member), then by its value",
                "additionalProperties": {"type": "object", "additionalProperties": _ref("Figures")},
            },
            "figures_days": {"type": "integer", "enum": list(service.COCKPIT_DAYS)},
            "workloads": _list(
                _object(
                    {
                        "member": STRING,
                        "capacity": INTEGER,
                        "away": BOOLEAN,
                        "open": INTEGER,
                        "oldest_waiting_minutes": _null(INTEGER),
                        "breaches_today": INTEGER,
                    }
                )
            ),
            "unassigned_open": INTEGER,
            "complaints": _list(
                _object({"topic": STRING, "days": {"type": "object", "additionalProperties": INTEGER}})
            ),
            "alerts": _list(
                _object(
                    {
                        "key": STRING,
                        "kind": STRING,
                        "level": STRING,
                        "title": STRING,
                        "route": STRING,
                        "created_at": TIME,
                        "status": STRING,
                        "mentions": _list(STRING),
                    }
                )
            ),
        }
    ),
    "Advocate": _object(
        {
            "person_id": INTEGER,
            "name": STRING,
            "handles": _list(STRING),
            "channels": _list(STRING),
            "score": NUMBER,
            "tier": STRING,
            "counted_mentions": INTEGER,
            "praised": _list(STRING),
            "last_praise_at": STRING,
            "last_praise": STRING,
            "suggested_offer": STRING,
            "offer_consent": BOOLEAN,
        }
    ),
    "Advocates": _object({"advocates": _list(_ref("Advocate")), "tiers": _list(STRING)}),
    "Explain": _object(
        {
            "person": _object({"id": INTEGER, "name": STRING, "handles": _list(STRING)}),
            "score": NUMBER,
            "tier": STRING,
            "terms": _list(
                _object(
                    {
                        "key": STRING,
                        "published_at": TIME,
                        "channel": STRING,
                        "sentiment": STRING,
                        "strength": NUMBER,
                        "reach_factor": NUMBER,
                        "decay": NUMBER,
                        "value": NUMBER,
                        "share": _null(NUMBER),
                        "excluded": STRING,
                        "text": STRING,
                    }
                )
            ),
        }
    ),
    "Sources": _object(
        {
            "sources": _list(
                _object(
                    {
                        "name": STRING,
                        "kind": STRING,
                        "last_attempt_at": _null(TIME),
                        "last_success_at": _null(TIME),
                        "consecutive_failures": INTEGER,
                        "paused_until": _null(TIME),
                        "last_error": _null(STRING),
                        "mentions_total": INTEGER,
                        "details": {"type": "object"},
                        "healthy": BOOLEAN,
                    }
                )
            ),
            "configured": _list(STRING),
            "pending_alerts": INTEGER,
            "at": TIME,
        }
    ),
    "Teach": _object(
        {
            "items": _list(
                _object(
                    {
                        "key": STRING,
                        "text": STRING,
                        "platform": STRING,
                        "url": LINK,
                        "published_at": TIME,
                        "author": STRING,
                        "language": _null(STRING),
                        "sentiment": _null(STRING),
                        "probabilities": {"type": "object", "additionalProperties": NUMBER},
                        "certainty": NUMBER,
                    }
                )
            ),
            "labels": _list({"type": "string", "enum": list(LABELS)}),
            "corrections": INTEGER,
            "at": TIME,
        }
    ),
    "Session": SESSION,
    "Sessions": _object(
        {
            "items": _list(_ref("Session")),
            "locks": _list(
                _object(
                    {
                        "kind": {"type": "string", "enum": list(KINDS)},
                        "subject": STRING,
                        "failures": INTEGER,
                        "locked_until": _null(TIME),
                    }
                )
            ),
        }
    ),
    "Revoked": _object({"revoked": _ref("Session")}),
    "RevokedUser": _object({"user": STRING, "revoked": INTEGER}),
    "PasswordChanged": _object({"changed": BOOLEAN, "sessions_ended": INTEGER}),
}
#: Each error an endpoint can answer, as {"error": "..."}: what it means here.
ERRORS = {
    400: "A bad query parameter (named, with what is accepted), body or field",
    401: "Nobody logged in and no valid API token",
    403: "The role is too low, or a session's write came without its CSRF token",
    404: "No such mention, person or session",
    409: "The state forbids it (a mention already answered, a reply already reviewed, a channel with no write API, "
    "the month's budget spent)",
    413: "The body is over web.max_body_bytes",
    422: "The house rules block the reply: the answer's findings say why (a supervisor may override with a reason)",
    415: "A body that is not Content-Type: application/json",
    429: "Too many password tries: wait Retry-After seconds",
}


def error_codes(e: Endpoint) -> list[int]:
    """Every error status ``e`` can answer: 400 (bad parameters) and 401 always, 403 past the lowest role or on
    a write (CSRF), 404 with a path parameter, 413 and 415 with a body, and the endpoint's own."""
    codes = {400, 401, *e.errors}
    if e.role != "agent" or e.method == "POST":
        codes.add(403)
    if "{" in e.path:
        codes.add(404)
    if e.method == "POST":
        codes |= {413, 415}
    return sorted(codes)


def _answer(e: Endpoint) -> dict[str, Any]:
    schema = _ref(e.returns) if e.returns else {"type": "object"}
    if e.produces == "text/csv":  # ?format=csv (the default) or json
        content = {
            "text/csv": {"schema": {"type": "string", "description": "UTF-8 with a BOM, cells spreadsheet-safe"}},
            "application/json": {"schema": _list(schema)},
        }
    else:
        content = {e.produces: {"schema": schema}}
    return {"description": "OK", "content": content}


def openapi(settings: Settings | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 description of `ENDPOINTS`; with ``settings``, the configured teams, members and
    languages are the enums of their parameters."""
    paths: dict[str, dict[str, Any]] = {}
    for e in ENDPOINTS:
        parameters = [
            {"name": name.strip("{}"), "in": "path", "required": True, "schema": STRING}
            for name in e.path.split("/")
            if name.startswith("{")
        ] + [
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": params.PARAMS[name].description,
                "schema": params.schema(name, settings),
                **({"explode": True} if params.PARAMS[name].many else {}),
            }
            for name in e.query
        ]
        responses: dict[str, Any] = {"200": _answer(e)}
        for code in error_codes(e):
            responses[str(code)] = {"$ref": f"#/components/responses/E{code}"}
        operation: dict[str, Any] = {
            "summary": e.summary,
            "operationId": (e.method.lower() + e.path.replace("/", "_").replace("{", "").replace("}", "")),
            "description": f"Needs the role {e.role} or above. A query parameter not listed here is a 400.",
            "security": [{"bearer": []}, {"session": []}],
            "parameters": parameters,
            "responses": responses,
        }
        if e.body:
            properties = {
                k: {"type": v, **({"items": {"type": "string"}} if v == "array" else {})} for k, v in e.body.items()
            }
            if "label" in properties:
                properties["label"]["enum"] = list(LABELS)
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object", "properties": properties}}},
            }
        paths.setdefault(e.path, {})[e.method.lower()] = operation
    error = {"application/json": {"schema": _ref("Error")}}
    responses = {f"E{code}": {"description": text, "content": error} for code, text in ERRORS.items()}
    responses["E401"]["headers"] = {"WWW-Authenticate": {"schema": STRING, "description": "Bearer"}}
    responses["E429"]["headers"] = {"Retry-After": {"schema": INTEGER, "description": "seconds to wait"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Passaparola API", "version": __version__},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "a token from [[web.tokens]]"},
                "session": {"type": "apiKey", "in": "cookie", "name": "passaparola", "description": "log-in session"},
            },
            "schemas": SCHEMAS,
            "responses": responses,
        },
    }
