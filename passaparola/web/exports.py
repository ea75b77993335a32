"""Advocate exports over HTTP: the same rows, columns and spreadsheet-safe cells as `passaparola advocates export`."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from passaparola.actions import Refusal
from passaparola.exports import FORMATS, advocate_export
from passaparola.web.context import Web
from rules.advocates import TIERS
from storage.store import Store


async def export_response(web: Web, request: Request) -> Response:
    """``?format=csv|json&tier=...&min_score=&channel=&topic=`` as a download named by date."""
    params = request.query_params
    fmt = params.get("format", "csv")
    if fmt not in FORMATS:
        raise Refusal(400, f"format={fmt!r} is not offered; use csv or json")
    tiers = tuple(params.getlist("tier"))
    if bad := [t for t in tiers if t not in TIERS]:
        raise Refusal(400, f"tier={bad[0]!r} is not one of {', '.join(TIERS)}")
    try:
        min_score = float(params["min_score"]) if params.get("min_score") else None
    except ValueError:
        raise Refusal(400, f"min_score={params['min_score']!r} is not a number") from None
    now = web.clock()

    def work(store: Store) -> str:
        topic, channel = params.get("topic", ""), params.get("channel", "")
        return advocate_export(store, web.settings.advocates, now, fmt, tiers, min_score, None, topic, channel)[0]

    text = await web.db.run(work)
    body = ("\ufeff" + text) if fmt == "csv" else text  # the BOM: spreadsheets then read UTF-8
    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/json"
    name = f"advocates-{now:%Y-%m-%d}.{fmt}"
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})
