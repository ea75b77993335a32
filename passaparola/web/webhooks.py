"""The listeners' webhooks. They only verify and queue (answering fast, as Meta asks); the daemon ingests the queue
through the same path as polling, so a comment heard by webhook and by polling is stored once.

Every refusal says what is wrong and stores nothing: 401/403 for a bad token or signature, 413 for a body over
``web.max_body_bytes``, 415 for a body that is not JSON, 400 for JSON of the wrong shape or text that is not valid
Unicode (a lone surrogate outside free text), 422 (with one line per bad item) for intake items that break the schema.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from listener.facebook import FacebookSource
from listener.webhooks import facebook_poll, intake_items, intake_mentions, queued_body, unpaired, valid_signature
from passaparola.web.context import Web, error


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 past ``limit`` bytes (before reading it when Content-Length says so)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body over {limit} bytes; send less per request")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body over {limit} bytes; send less per request")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as problem:
        raise HTTPException(400, f"the body is not UTF-8 JSON ({problem}); send a JSON object") from None


def bearer(header: str) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (the scheme in any case, as RFC 7235 says), else None.

    A bare token is refused: it is no standard form, and accepting it hides a caller's broken header.
    """
    scheme, space, token = header.partition(" ")
    token = token.lstrip(" ")  # RFC 6750 allows more than one space after the scheme
    if scheme.lower() != "bearer" or not space or not token:
        return None
    return token


def unauthorized(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=401, headers={"WWW-Authenticate": "Bearer"})


#: Meta batches a Page's changes into one delivery, which can outgrow ``web.max_body_bytes`` (sized for the intake);
#: a signed delivery is read up to this size.
META_MAX_BODY_BYTES = 1 << 20


def routes(web: Web) -> list[Route]:
    settings, db, clock = web.settings, web.db, web.clock
    limit = settings.web.max_body_bytes
    pages: dict[str, FacebookSource] = {
        s.name: s.source for s in settings.sources if s.type == "facebook" and s.source.webhook
    }

    def page(request: Request) -> FacebookSource:
        found = pages.get(request.path_params["name"])
        if found is None:
            raise HTTPException(404, "no facebook source with a webhook by that name; set app_secret and verify_token")
        return found

    async def facebook_verify(request: Request) -> Response:
        source = page(request)
        params = request.query_params
        token = params.get("hub.verify_token", "").encode("utf-8")
        expected = source.verify_token.get_secret_value().encode("utf-8")
        challenge = params.get("hub.challenge", "")
        if params.get("hub.mode") == "subscribe" and challenge and hmac.compare_digest(token, expected):
            return PlainTextResponse(challenge)
        return PlainTextResponse("verification failed: wrong hub.verify_token or hub.mode", status_code=403)

    async def facebook_notify(request: Request) -> Response:
        source = page(request)
        body = await read_body(request, max(limit, META_MAX_BODY_BYTES))
        signature = request.headers.get("x-hub-signature-256")
        if not valid_signature(source.app_secret.get_secret_value(), body, signature):
            return error(
                403, "missing or invalid X-Hub-Signature-256 (HMAC-SHA256 of the raw body with the app secret)"
            )
        try:
            facebook_poll(parse_json(body), source.page_id, source.name)
        except ValueError as problem:
            return error(400, str(problem))
        digest = hashlib.sha256(body).hexdigest()
        queued, at = [(f"facebook:{digest}", body.decode())], clock()
        fresh = await db.run(lambda store: store.inbound.receive("facebook", source.name, queued, at))
        return JSONResponse({"status": "queued" if fresh[0] else "duplicate"})

    async def intake(request: Request) -> Response:
        token = settings.web.intake_token
        if token is None:
            return error(404, "the intake webhook is off; set web.intake_token to turn it on")
        given = bearer(request.headers.get("authorization", ""))
        if given is None:
            return unauthorized(
                "missing or malformed Authorization header; send exactly Authorization: Bearer <web.intake_token> "
                "(the word Bearer, a space, then the token)"
            )
        if not hmac.compare_digest(given.encode("utf-8"), token.get_secret_value().encode("utf-8")):
            return unauthorized("wrong bearer token; send Authorization: Bearer <web.intake_token>")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return error(415, "send Content-Type: application/json")
        payload = parse_json(await read_body(request, limit))
        try:
            items = intake_items(payload)
        except ValueError as problem:
            return error(422, str(problem))
        broken = unpaired(items)
        if broken:
            return error(400, "nothing was stored; these fields are not valid Unicode text", problems=broken)
        mentions, problems = intake_mentions(items, clock())
        if problems:
            return error(422, "nothing was stored; fix these items and send them again", problems=problems)
        queued = [(m.key, queued_body(item)) for m, item in zip(mentions, items, strict=True)]
        at = clock()
        fresh = await db.run(lambda store: store.inbound.receive("intake", "intake", queued, at))
        results = [
            {"id": m.platform_id, "key": m.key, "status": "accepted" if new else "duplicate"}
            for m, new in zip(mentions, fresh, strict=True)
        ]
        return JSONResponse({"results": results}, status_code=202)

    return [
        Route("/webhooks/facebook/{name}", facebook_verify, methods=["GET"]),
        Route("/webhooks/facebook/{name}", facebook_notify, methods=["POST"]),
        Route("/intake", intake, methods=["POST"]),
    ]
