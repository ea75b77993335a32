"""The JSON API's one table: each endpoint's method, path, role, parameters, body and answer. The routes
(`passaparola.web.api`) and the OpenAPI description (`passaparola.web.openapi`) are both made from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # OpenAPI form: /api/mentions/{key}
    role: str
    summary: str
    query: tuple[str, ...] = ()  # names in `params.PARAMS`: what the endpoint reads; any other is a 400
    body: dict[str, Any] = field(default_factory=dict)  # JSON schema properties of the request body
    produces: str = "application/json"
    returns: str = ""  # the component schema of a 200 answer
    errors: tuple[int, ...] = ()  # besides those every endpoint of its kind can give (see `error_codes`)


FILTERS = ("q", "channel", "sentiment", "team", "assignee", "state", "language", "vip", "incident", "page")
ENDPOINTS = (
    Endpoint(
        "GET", "/api/me", "agent", "Who is calling, with their role and a CSRF token for session writes", returns="Me"
    ),
    Endpoint(
        "GET", "/api/inbox", "agent", "Mentions by SLA urgency, filtered and searched", FILTERS, returns="InboxPage"
    ),
    Endpoint(
        "GET",
        "/api/mentions/{key}",
        "agent",
        "A mention with its thread, the brand's answers and author card",
        returns="MentionWithThread",
    ),
    Endpoint(
        "POST",
        "/api/mentions/{key}/assign",
        "agent",
        "Assign (agents: to themselves)",
        body={"member": "string"},
        returns="MentionRow",
        errors=(409,),
    ),
    Endpoint(
        "POST",
        "/api/mentions/{key}/answered",
        "agent",
        "Mark answered (a reply typed elsewhere)",
        returns="MentionRow",
        errors=(409,),
    ),
    Endpoint(
        "POST",
        "/api/mentions/{key}/ignore",
        "agent",
        "Close without an answer",
        body={"reason": "string"},
        returns="MentionRow",
        errors=(409,),
    ),
    Endpoint(
        "POST",
        "/api/mentions/{key}/sentiment",
        "agent",
        "Correct the sentiment",
        body={"label": "string"},
        returns="MentionRow",
    ),
    Endpoint(
        "POST", "/api/mentions/{key}/ack", "agent", "Acknowledge the breach: escalation stops", returns="MentionRow"
    ),
    Endpoint(
        "POST", "/api/mentions/{key}/lint", "agent", "Check a draft reply", body={"draft": "string"}, returns="Lint"
    ),
    Endpoint(
        "GET",
        "/api/mentions/{key}/replies",
        "agent",
        "The reply box: whether the channel can be answered from here, saved replies, the draft back, every reply",
        returns="ReplyBox",
    ),
    Endpoint(
        "POST",
        "/api/mentions/{key}/replies",
        "agent",
        "Send a reply on the mention's channel, exactly once per idempotency_key (or record one posted by hand: "
        "copied); house rules enforced, a supervisor may override with override_reason",
        body={"text": "string", "idempotency_key": "string", "override_reason": "string", "copied": "boolean"},
        returns="Reply",
        errors=(409, 422),
    ),
    Endpoint(
        "POST",
        "/api/mentions/{key}/saved-replies",
        "agent",
        "A saved reply filled in for this mention (its variables), with the house rules' verdict",
        body={"name": "string", "reference": "string"},
        returns="FilledReply",
    ),
    Endpoint(
        "GET",
        "/api/replies/approvals",
        "supervisor",
        "Replies waiting for a supervisor's approval",
        returns="Approvals",
    ),
    Endpoint(
        "POST",
        "/api/replies/{id}/review",
        "supervisor",
        "Approve (maybe with an edited text; sent at once) or reject (with a comment) a reply waiting for approval",
        body={"approve": "boolean", "text": "string", "comment": "string", "override_reason": "string"},
        returns="Reply",
        errors=(409, 422),
    ),
    Endpoint(
        "POST",
        "/api/bulk",
        "agent",
        "One action on several mentions",
        body={"keys": "array", "action": "string", "member": "string", "reason": "string"},
        returns="BulkResult",
    ),
    Endpoint(
        "GET",
        "/api/cockpit",
        "supervisor",
        "Volume, spikes, response figures, workloads, complaints, alerts",
        ("days",),
        returns="Cockpit",
    ),
    Endpoint(
        "GET",
        "/api/advocates",
        "supervisor",
        "The advocate leaderboard with suggested offers",
        ("tier",),
        returns="Advocates",
    ),
    Endpoint(
        "GET",
        "/api/advocates/{person}/explain",
        "supervisor",
        "Every term of a person's score",
        returns="Explain",
    ),
    Endpoint(
        "GET",
        "/api/advocates/export",
        "supervisor",
        "Advocates as CSV or JSON",
        ("format", "tier", "min_score", "channel", "topic"),
        produces="text/csv",
        returns="Advocate",
    ),
    Endpoint("GET", "/api/sources", "supervisor", "Each source's health", returns="Sources"),
    Endpoint(
        "GET", "/api/teach", "agent", "The last day's mentions the model is least sure of, to label", returns="Teach"
    ),
    Endpoint(
        "POST",
        "/api/password",
        "agent",
        "Change your own password (12+ characters, not your name); your other sessions end",
        body={"current": "string", "new": "string"},
        returns="PasswordChanged",
        errors=(429,),
    ),
    Endpoint(
        "GET",
        "/api/sessions",
        "admin",
        "Live log-in sessions (user, since, last seen, address, browser), locks",
        returns="Sessions",
    ),
    Endpoint("POST", "/api/sessions/{id}/revoke", "admin", "End one session", returns="Revoked"),
    Endpoint(
        "POST",
        "/api/sessions/revoke",
        "admin",
        "End every session of one user",
        body={"user": "string"},
        returns="RevokedUser",
    ),
)


def query_of(path: str, method: str = "GET") -> tuple[str, ...]:
    """The query parameters endpoint ``method path`` reads (the pages read their API twin's, plus ``lang``)."""
    return next(e.query for e in ENDPOINTS if e.method == method and e.path == path)


# -- the OpenAPI description ----------------------------------------------------------------------
