"""The JSON API: everything the pages show and do, for scripts and other tools. One table (`ENDPOINTS`) declares
each endpoint's method, path, role and parameters; the routes and the OpenAPI description are both made from it,
so the description cannot drift from what is served.

Callers authenticate with ``Authorization: Bearer <token>`` (``[[web.tokens]]``) or a browser session; a
session's writes also send ``X-CSRF-Token``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from passaparola.actions import MENTION_ACTIONS, Actor, Refusal, ReplyBlocked, listing
from passaparola.web import answering, params, service
from passaparola.web.auth import Refused, check_csrf, client_address, csrf_token, session_of
from passaparola.web.context import Web, error
from passaparola.web.endpoints import ENDPOINTS, FILTERS, Endpoint, query_of
from passaparola.web.exports import export_response
from passaparola.web.openapi import error_codes, openapi
from passaparola.web.webhooks import parse_json, read_body
from storage.sessions import SessionRow
from storage.times import iso

__all__ = ["ENDPOINTS", "FILTERS", "Endpoint", "error_codes", "openapi", "query_of", "routes"]


def routes(web: Web) -> list[Route]:
    settings = web.settings

    async def body_of(request: Request) -> dict[str, Any]:
        if request.method != "POST":
            return {}
        raw = await read_body(request, settings.web.max_body_bytes)
        if not raw.strip():
            return {}
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise Refusal(415, "send Content-Type: application/json")
        data = parse_json(raw)
        if not isinstance(data, dict):
            raise Refusal(400, "send a JSON object")
        return data

    def endpoint(e: Endpoint, handler: Callable[[Request, Actor, dict[str, Any]], Awaitable[Any]]) -> Any:
        async def run(request: Request) -> Response:
            try:
                who = web.gate.require(request, e.role)
                check_csrf(request, who, "")
                params.check(request, e.query, settings)  # after the gate: nobody probes what is accepted
                result = await handler(request, who, await body_of(request))
            except Refusal as refused:
                headers = {"WWW-Authenticate": "Bearer"} if refused.status == 401 else None
                answer: dict[str, Any] = {"error": str(refused)}
                if isinstance(refused, ReplyBlocked):
                    answer["findings"] = [asdict(f) for f in refused.findings]
                return JSONResponse(answer, status_code=refused.status, headers=headers)
            return result if isinstance(result, Response) else JSONResponse(result)

        return run

    def fields(body: dict[str, Any]) -> dict[str, str]:
        return {k: str(v) for k, v in body.items() if isinstance(v, str | int | float)}

    async def me(request: Request, who: Actor, body: dict[str, Any]) -> Any:
        found = session_of(request)
        session = {"id": found.id, "expires_at": iso(found.expires_at)} if found and who.via == "session" else None
        return {"name": who.name, "role": who.role, "member": who.member, "csrf": csrf_token(request),
                "session": session}  # fmt: skip

    async def password(request: Request, who: Actor, body: dict[str, Any]) -> Any:
        current, new = body.get("current"), body.get("new")
        if not isinstance(current, str) or not isinstance(new, str):
            raise Refusal(400, 'send {"current": "your password", "new": "the new one"}')
        try:
            ended = await web.gate.change_password(who, session_of(request), current, new, client_address(request))
        except Refused as refused:
            if not refused.retry_after:
                raise
            headers = {"Retry-After": str(refused.retry_after)}
            return JSONResponse({"error": str(refused)}, status_code=refused.status, headers=headers)
        return {"changed": True, "sessions_ended": ended}

    def session_row(row: SessionRow, current: SessionRow | None) -> dict[str, Any]:
        return {"id": row.id, "user": row.user, "since": iso(row.created_at), "last_seen": iso(row.last_seen_at),
                "expires_at": iso(row.expires_at), "address": row.address, "agent": row.user_agent,
                "current": current is not None and row.id == current.id}  # fmt: skip

    async def sessions(request: Request, who: Actor, body: dict[str, Any]) -> Any:
        live, locks = await web.gate.live()
        current = session_of(request)
        return {
            "items": [session_row(row, current) for row in live],
            "locks": [{"kind": f.kind, "subject": f.subject, "failures": f.failures,
                       "locked_until": iso(f.locked_until) if f.locked_until else None} for f in locks],
        }  # fmt: skip

    async def revoke(request: Request, who: Actor, body: dict[str, Any]) -> Any:
        wanted = request.path_params["id"]
        ended = await web.gate.revoke(int(wanted), who) if wanted.isdigit() else None
        if ended is None:
            raise Refusal(404, f"no live session {wanted}; see GET /api/sessions")
        return {"revoked": session_row(ended, None)}

    async def revoke_user(request: Request, who: Actor, body: dict[str, Any]) -> Any:
        user = body.get("user")
        if not isinstance(user, str) or not user:
            raise Refusal(400, 'send {"user": "their name"}')
        return {"user": user, "revoked": await web.gate.revoke_user(user, who)}

    async def inbox(request: Request, who: Actor, body: dict[str, Any]) -> Any:
        values = params.given(request)
        f = listing.inbox_filter(values)
        return await web.db.run(lambda store: listing.inbox(store, web.clock(), f, values["page"], viewer=who))

    async def mention(request: Request, who: Actor, body: dict[str, Any]) -> Any:
        key = request.path_params["key"]
        return await web.db.run(lambda store: service.mention(settings, store, web.clock(), key, who))

    def action(name: str) -> Callable[[Request, Actor, dict[str, Any]], Awaitable[Any]]:
        async def run(request: Request, who: Actor, body: dict[str, Any]) -> Any:
            key = request.path_params["key"]
            return await web.db.run(
                lambda store: service.act(settings, store, web.clock(), who, key, name, fields(body))
            )

        return run

    async def lint(request: Request, who: Actor, body: dict[str, Any]) -> Any:
        key, draft = request.path_params["key"], str(body.get("draft", ""))
        return await web.db.run(lambda store: service.lint(settings, store, who, key, draft, web.repliers, web.clock()))

    async def reply_box(request: Request, who: Actor, body: dict[str, Any]) -> Any:
        key = request.path_params["key"]
        return await web.db.run(lambda store: answering.composer(web, store, who, key, web.clock()))

    async def reply(request: Request, who: Actor, body: dict[str, Any]) -> Any:
        if "text" in body and not isinstance(body["text"], str):
            raise Refusal(400, 'send {"text": "the reply", "idempotency_key": "any unique string"}')
        row = await answering.send(web, who, request.path_params["key"], body)
        return JSONResponse(row, status_code=201 if row["state"] == "sent" else 202)

    async def fill(request: Request, who: Actor, body: dict[str, Any]) -> Any:
        key, name, reference = request.path_params["key"], str(body.get("name", "")), str(body.get("reference", ""))
        return await web.db.run(lambda store: answering.fill(web, store, who, key, name, reference))

    async def approvals(request: Request, who: Actor, body: dict[str, Any]) -> Any:
        return await web.db.run(lambda store: answering.approvals(web, store))

    async def review(request: Request, who: Actor, body: dict[str, Any]) -> Any:
        wanted = request.path_params["id"]
        if not wanted.isdigit():
            raise Refusal(404, f"no reply {wanted}; see GET /api/replies/approvals")
        if not isinstance(body.get("approve"), bool):
            raise Refusal(400, 'send {"approve": true} or {"approve": false, "comment": "why"}')
        return await answering.review(web, who, int(wanted), body)

    async def bulk(request: Request, who: Actor, body: dict[str, Any]) -> Any:
        keys = body.get("keys")
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise Refusal(400, 'keys must be a list of mention keys, e.g. ["x:123", "facebook:456"]')
        act = str(body.get("action", ""))
        return await web.db.run(lambda store: service.bulk(settings, store, web.clock(), who, keys, act, fields(body)))

    async def cockpit(request: Request, who: Actor, body: dict[str, Any]) -> Any:
        span = params.given(request)["days"]
        return await web.db.run(lambda store: service.cockpit(settings, store, web.clock(), span))

    async def advocates(request: Request, who: Actor, body: dict[str, Any]) -> Any:
        tiers = params.given(request)["tier"]
        return await web.db.run(lambda store: service.advocates(settings, store, web.clock(), tiers))

    async def explain(request: Request, who: Actor, body: dict[str, Any]) -> Any:
        person = request.path_params["person"]
        return await web.db.run(lambda store: service.explain(settings, store, web.clock(), person))

    async def export(request: Request, who: Actor, body: dict[str, Any]) -> Any:
        return await export_response(web, request)

    async def sources(request: Request, who: Actor, body: dict[str, Any]) -> Any:
        return await web.db.run(lambda store: service.sources(settings, store, web.clock()))

    async def teach(request: Request, who: Actor, body: dict[str, Any]) -> Any:
        return await web.db.run(lambda store: service.teach(store, web.clock()))

    async def description(request: Request) -> Response:
        return Response(json.dumps(openapi(settings), indent=1), media_type="application/json")

    async def unknown(request: Request) -> Response:
        return error(404, f"no API endpoint {request.method} {request.url.path}; see /api/openapi.json")

    handlers: dict[tuple[str, str], Callable[[Request, Actor, dict[str, Any]], Awaitable[Any]]] = {
        ("GET", "/api/me"): me,
        ("GET", "/api/inbox"): inbox,
        ("GET", "/api/mentions/{key}"): mention,
        ("POST", "/api/mentions/{key}/lint"): lint,
        ("GET", "/api/mentions/{key}/replies"): reply_box,
        ("POST", "/api/mentions/{key}/replies"): reply,
        ("POST", "/api/mentions/{key}/saved-replies"): fill,
        ("GET", "/api/replies/approvals"): approvals,
        ("POST", "/api/replies/{id}/review"): review,
        ("POST", "/api/bulk"): bulk,
        ("GET", "/api/cockpit"): cockpit,
        ("GET", "/api/advocates"): advocates,
        ("GET", "/api/advocates/{person}/explain"): explain,
        ("GET", "/api/advocates/export"): export,
        ("GET", "/api/sources"): sources,
        ("GET", "/api/teach"): teach,
        ("POST", "/api/password"): password,
        ("GET", "/api/sessions"): sessions,
        ("POST", "/api/sessions/{id}/revoke"): revoke,
        ("POST", "/api/sessions/revoke"): revoke_user,
    } | {("POST", f"/api/mentions/{{key}}/{name}"): action(name) for name in MENTION_ACTIONS}
    served = []
    # Specific paths first: /api/advocates/export before /api/advocates/{person}/..., actions before the mention.
    for e in sorted(ENDPOINTS, key=lambda e: (e.path.count("{"), -len(e.path))):
        path = e.path.replace("{key}", "{key:path}")
        served.append(Route(path, endpoint(e, handlers[(e.method, e.path)]), methods=[e.method]))
    served.append(Route("/api/openapi.json", description))
    served.append(Route("/api/{rest:path}", unknown, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]))
    return served
