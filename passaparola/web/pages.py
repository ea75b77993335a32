"""The dashboard's pages: server-rendered, no script, each showing what `service` returns (the same data as the
JSON API). Forms post back with the session's CSRF token and redirect (303) with a flash message."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from passaparola.actions import Actor, Refusal, ReplyBlocked, assignable, listing
from passaparola.web import answering, charts, params, service
from passaparola.web.api import query_of
from passaparola.web.auth import MIN_PASSWORD, Refused, check_csrf, client_address, csrf_token, session_of
from passaparola.web.context import Web, language, local_path, translate
from passaparola.web.exports import export_response
from passaparola.web.params import BadParameter
from passaparola.web.sayings import said_text

Handler = Callable[[Request], Awaitable[Response]]


def routes(web: Web) -> list[Route]:
    settings = web.settings

    def lang_of(request: Request) -> str:
        return language(request.query_params.get("lang", ""), request.session, settings.web.language)

    def render(request: Request, name: str, who: Actor | None, code: int = 200, **context: Any) -> Response:
        lang = lang_of(request)
        flash = request.session.pop("flash", None)
        context |= {
            "request": request,
            "who": who,
            "lang": lang,
            "t": lambda key: translate(key, lang),
            "csrf": csrf_token(request),
            "flash": flash,
            "choices": listing.choices(settings),
            "assignable": assignable(settings, who) if who is not None else [],
        }
        return web.templates.TemplateResponse(request, name, context, status_code=code)

    def page(role: str, name: str, twin: str = "") -> Callable[[Callable[..., Awaitable[Response]]], Handler]:
        """Wrap a handler: log-in and role checks, query parameters (those of the ``twin`` API endpoint, plus
        ``lang``: `params`), CSRF on posts, refusals as a page in its language (or a redirect to log in)."""
        accepted = (*(query_of(twin) if twin else ()), "lang")

        def wrap(handler: Callable[..., Awaitable[Response]]) -> Handler:
            async def run(request: Request) -> Response:
                try:
                    who = web.gate.require(request, role)
                    params.check(request, accepted, settings)
                    if request.method == "POST":
                        form = dict((await request.form()).items())
                        check_csrf(request, who, str(form.get("csrf", "")))
                        return await handler(request, who, form)
                    return await handler(request, who)
                except Refusal as refused:
                    if refused.status == 401 and request.method == "GET":
                        return RedirectResponse("/login?" + urlencode({"next": request.url.path}), status_code=303)
                    caller = web.gate.principal(request)
                    message = refused.text(lang_of(request)) if isinstance(refused, BadParameter) else str(refused)
                    return render(request, "error.html", caller, refused.status, status=refused.status,
                                  message=message, page=name)  # fmt: skip

            return run

        return wrap

    def back(request: Request, form: dict[str, Any], default: str, text: str, kind: str = "ok") -> Response:
        request.session["flash"] = {"text": text, "kind": kind}
        return RedirectResponse(local_path(str(form.get("back", "")), default), status_code=303)

    async def home(request: Request) -> Response:
        return RedirectResponse("/inbox", status_code=303)

    def refusal(request: Request, name: str, who: Actor | None, refused: Refused, **context: Any) -> Response:
        """The form again with the refusal in the page's language (and ``Retry-After`` when throttled)."""
        response = render(request, name, who, refused.status, failed=refused.text(lang_of(request)), **context)
        if refused.retry_after:
            response.headers["Retry-After"] = str(refused.retry_after)
        return response

    async def login(request: Request) -> Response:
        try:
            params.check(request, ("next", "lang"), settings)
        except BadParameter as bad:
            return render(
                request, "error.html", None, 400, status=400, message=bad.text(lang_of(request)), page="login"
            )
        target = local_path(request.query_params.get("next"), "/inbox")
        if request.method == "GET":
            return render(request, "login.html", None, next=target, failed="", typed="", page="login")
        form = dict((await request.form()).items())
        try:
            check_csrf(request, None, str(form.get("csrf", "")))
        except Refusal as refused:
            return render(request, "error.html", None, 403, status=403, message=str(refused), page="login")
        name, target = str(form.get("name", ""))[:200], local_path(str(form.get("next", "")), "/inbox")
        try:
            made = await web.gate.log_in(
                name,
                str(form.get("password", "")),
                client_address(request),
                request.headers.get("user-agent", ""),
                replacing=request.session.get("sid"),  # rotation: the browser's previous session ends
            )
        except Refused as refused:
            return refusal(request, "login.html", None, refused, next=target, typed=name, page="login")
        if made is None:  # the name stays typed: a typo in the password should not cost the name too
            failed = translate("login_failed", lang_of(request))
            return render(request, "login.html", None, 401, next=target, failed=failed, typed=name, page="login")
        lang = request.session.get("lang")
        request.session.clear()  # a fresh cookie (and CSRF token) at log-in: no fixation
        request.session.update({"sid": made[1], **({"lang": lang} if lang else {})})
        return RedirectResponse(target, status_code=303)

    @page("agent", "logout")
    async def logout(request: Request, who: Actor, form: dict[str, Any]) -> Response:
        token = request.session.get("sid")
        if isinstance(token, str):
            await web.gate.log_out(token)  # ended server-side: a copy of the cookie opens nothing any more
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    @page("agent", "password")
    async def password(request: Request, who: Actor, form: dict[str, Any] | None = None) -> Response:
        context: dict[str, Any] = {"minimum": MIN_PASSWORD, "page": "password"}
        if form is None:
            return render(request, "password.html", who, failed="", **context)
        new = str(form.get("new", ""))
        try:
            if new != str(form.get("again", "")):
                raise Refused(400, "password_mismatch")
            current = str(form.get("current", ""))
            ended = await web.gate.change_password(who, session_of(request), current, new, client_address(request))
        except Refused as refused:
            return refusal(request, "password.html", who, refused, **context)
        return back(request, {}, "/password", translate("password_changed", lang_of(request)).format(n=ended))

    @page("admin", "sessions", "/api/sessions")
    async def sessions(request: Request, who: Actor) -> Response:
        live, locks = await web.gate.live()
        current = session_of(request)
        return render(request, "sessions.html", who, live=live, locks=locks, current=current.id if current else 0,
                      page="sessions")  # fmt: skip

    @page("admin", "sessions")
    async def revoke_session(request: Request, who: Actor, form: dict[str, Any]) -> Response:
        ended = await web.gate.revoke(int(request.path_params["id"]), who)
        key = "session_revoked" if ended else "session_gone"
        return back(request, form, "/sessions", translate(key, lang_of(request)), "ok" if ended else "error")

    @page("admin", "sessions")
    async def revoke_user(request: Request, who: Actor, form: dict[str, Any]) -> Response:
        user = str(form.get("user", ""))
        ended = await web.gate.revoke_user(user, who)
        return back(request, form, "/sessions", translate("sessions_revoked", lang_of(request)).format(n=ended))

    @page("agent", "inbox", "/api/inbox")
    async def inbox(request: Request, who: Actor) -> Response:
        values = params.given(request)
        f, number = listing.inbox_filter(values), values["page"]
        data = await web.db.run(lambda store: listing.inbox(store, web.clock(), f, number, grouped=True, viewer=who))
        query = {k: v for k, v in request.query_params.items() if k not in ("page", "lang") and v}

        def pager(n: int) -> str:
            return "/inbox?" + urlencode({**query, "page": n})

        here = "/inbox" + ("?" + urlencode(query) if query else "")
        return render(request, "inbox.html", who, data=data, pager=pager, back=here, page="inbox")

    @page("agent", "inbox")
    async def inbox_bulk(request: Request, who: Actor, form: dict[str, Any]) -> Response:
        keys = [str(k) for k in (await request.form()).getlist("keys")]
        fields = {k: str(v) for k, v in form.items()}
        result = await web.db.run(
            lambda store: service.bulk(settings, store, web.clock(), who, keys, fields.get("action", ""), fields)
        )
        lang, action = lang_of(request), fields.get("action", "")
        text = f"{len(result['done'])} ✓ " + translate(f"bulk_done_{action}", lang).format(member=fields.get("member"))
        text += "".join(f"; {f['key']}: {said_text('refusal', f['error'], lang)}" for f in result["failed"])
        return back(request, form, "/inbox", text, "error" if result["failed"] else "ok")

    def mention_page(request: Request, who: Actor, data: dict[str, Any], code: int = 200, **shown: Any) -> Response:
        """The mention view: ``shown`` are the reply box's draft, its check, the send's outcome or refusal."""
        context = {"lint": None, "draft": "", "outcome": None, "refused": "", "blocked": False, **shown}
        return render(request, "mention.html", who, code, data=data, page="inbox", **context)

    def viewed(store: Any, who: Actor, key: str, doing: str = "viewing") -> dict[str, Any]:
        data = service.mention(settings, store, web.clock(), key, who, doing)
        data["composer"] = answering.composer(web, store, who, key, web.clock())
        return data

    @page("agent", "inbox", "/api/mentions/{key}")
    async def mention(request: Request, who: Actor) -> Response:
        key = request.path_params["key"]
        return mention_page(request, who, await web.db.run(lambda store: viewed(store, who, key)))

    @page("agent", "inbox")
    async def act(request: Request, who: Actor, form: dict[str, Any]) -> Response:
        key = request.path_params["key"]
        fields = {k: str(v) for k, v in form.items()}
        here = "/mentions/" + key
        try:
            row = await web.db.run(
                lambda store: service.act(settings, store, web.clock(), who, key, fields.get("action", ""), fields)
            )
        except Refusal as refused:
            if refused.status in (401, 403):
                raise
            return back(request, form, here, said_text("refusal", str(refused), lang_of(request)), "error")
        lang = lang_of(request)  # the flash names the action done (and what it set), not just the state
        done = translate(f"done_{fields.get('action', '')}", lang)
        label = translate(fields.get("label", ""), lang)
        return back(request, form, here, f"{key}: " + done.format(member=row["assignee"] or "", label=label))

    @page("agent", "inbox")
    async def lint(request: Request, who: Actor, form: dict[str, Any]) -> Response:
        key = request.path_params["key"]
        draft = str(form.get("draft", ""))

        def work(store: Any) -> tuple[dict[str, Any], dict[str, Any]]:
            checked = service.lint(settings, store, who, key, draft, web.repliers)
            return viewed(store, who, key, "answering"), checked

        data, result = await web.db.run(work)
        return mention_page(request, who, data, lint=result, draft=draft)

    @page("agent", "inbox")
    async def reply(request: Request, who: Actor, form: dict[str, Any]) -> Response:
        """Send the draft on the mention's channel (or record it as posted by hand): sent or waiting for approval
        goes back to the mention with a flash; anything else shows the draft again with what to do."""
        key = request.path_params["key"]
        draft = str(form.get("draft", ""))
        fields = {**{k: str(v) for k, v in form.items()}, "text": draft, "copied": form.get("do") == "copied"}
        lang = lang_of(request)
        try:
            row = await answering.send(web, who, key, fields)
        except ReplyBlocked as blocked:
            data = await web.db.run(lambda store: viewed(store, who, key, "answering"))
            checked = {"verdict": "block", "findings": [asdict(f) for f in blocked.findings]}
            return mention_page(request, who, data, 422, lint=checked, draft=draft, blocked=True)
        except Refusal as refused:
            if refused.status == 401:
                raise
            data = await web.db.run(lambda store: viewed(store, who, key, "answering"))
            shown = said_text("refusal", str(refused), lang)
            return mention_page(request, who, data, refused.status, draft=draft, refused=shown)
        if row["state"] in ("sent", "copied", "pending_approval"):
            text = translate(f"reply_done_{row['state']}", lang).format(channel=translate(row["channel"], lang))
            return back(request, form, "/mentions/" + key, f"{key}: {text}")
        data = await web.db.run(lambda store: viewed(store, who, key, "answering"))
        return mention_page(request, who, data, draft=draft, outcome=row)

    @page("agent", "inbox")
    async def fill(request: Request, who: Actor, form: dict[str, Any]) -> Response:
        """A saved reply, picked by name (the browser's list filters them as one types), filled into the draft."""
        key = request.path_params["key"]
        name, reference = str(form.get("saved", "")).strip(), str(form.get("reference", ""))

        def work(store: Any) -> tuple[dict[str, Any], dict[str, Any] | None, str]:
            data = viewed(store, who, key, "answering")
            try:
                return data, answering.fill(web, store, who, key, name, reference), ""
            except Refusal as refused:
                return data, None, said_text("refusal", str(refused), lang_of(request))

        data, filled, refused = await web.db.run(work)
        if filled is None:
            return mention_page(request, who, data, 400, draft=str(form.get("draft", "")), refused=refused)
        return mention_page(request, who, data, lint=filled, draft=filled["text"])

    @page("supervisor", "approvals", "/api/replies/approvals")
    async def approvals(request: Request, who: Actor) -> Response:
        rows = await web.db.run(lambda store: answering.approvals(web, store))
        return render(request, "approvals.html", who, rows=rows, page="approvals")

    @page("supervisor", "approvals")
    async def review(request: Request, who: Actor, form: dict[str, Any]) -> Response:
        reply_id = int(request.path_params["id"])
        fields = {k: str(v) for k, v in form.items()} | {"approve": form.get("do") == "approve"}
        lang = lang_of(request)
        try:
            row = await answering.review(web, who, reply_id, fields)
        except Refusal as refused:
            if refused.status == 401:
                raise
            return back(request, form, "/approvals", said_text("refusal", str(refused), lang), "error")
        text = translate(f"reply_reviewed_{row['state']}", lang).format(id=reply_id)
        return back(request, form, "/approvals", text, "ok" if row["state"] in ("sent", "rejected") else "error")

    @page("supervisor", "cockpit", "/api/cockpit")
    async def cockpit(request: Request, who: Actor) -> Response:
        span = params.given(request)["days"]
        data = await web.db.run(lambda store: service.cockpit(settings, store, web.clock(), span))
        days = sorted({day for row in data["complaints"] for day in row["days"]})
        if not days:
            today = web.clock().date()
            days = [(today - timedelta(days=n)).isoformat() for n in range(6, -1, -1)]
        zone = settings.triage.business.zone
        drawn = {
            "volume": charts.volume(data["hours"], data["spikes"], zone),
            "response": charts.response(data["response_days"]),
            "sla": charts.sla(data["response_days"]),
            "topics": charts.topics(data["complaint_weeks"]["weeks"], data["complaint_weeks"]["topics"]),
            "workload": charts.workload(data["workloads"]),
        }
        return render(request, "cockpit.html", who, data=data, charts=drawn, complaint_days=days, page="cockpit")

    @page("supervisor", "advocates", "/api/advocates")
    async def advocates(request: Request, who: Actor) -> Response:
        tiers = params.given(request)["tier"]

        def work(store: Any) -> tuple[dict[str, Any], dict[int, str]]:
            data = service.advocates(settings, store, web.clock(), tiers)
            offers: dict[int, str] = {}
            used = ", " + translate("offer_used", lang_of(request))
            for o in store.people.offers():
                offers[o.person_id] = f"{o.offer} ({o.sent_at:%Y-%m-%d}{used if o.used_at else ''})"
            return data, offers

        data, offers = await web.db.run(work)
        return render(request, "advocates.html", who, data=data, offers=offers, page="advocates")

    @page("supervisor", "advocates", "/api/advocates/{person}/explain")
    async def explain(request: Request, who: Actor) -> Response:
        person = request.path_params["person"]
        data = await web.db.run(lambda store: service.explain(settings, store, web.clock(), person))
        return render(request, "explain.html", who, data=data, page="advocates")

    @page("supervisor", "advocates", "/api/advocates/export")
    async def export(request: Request, who: Actor) -> Response:
        return await export_response(web, request)

    @page("agent", "teach", "/api/teach")
    async def teach(request: Request, who: Actor) -> Response:
        data = await web.db.run(lambda store: service.teach(store, web.clock()))
        return render(request, "teach.html", who, data=data, page="teach")

    @page("supervisor", "sources", "/api/sources")
    async def sources(request: Request, who: Actor) -> Response:
        data = await web.db.run(lambda store: service.sources(settings, store, web.clock()))
        return render(request, "sources.html", who, data=data, page="sources")

    return [
        Route("/", home),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/password", password, methods=["GET", "POST"]),
        Route("/sessions", sessions),
        Route("/sessions/revoke-user", revoke_user, methods=["POST"]),
        Route("/sessions/{id:int}/revoke", revoke_session, methods=["POST"]),
        Route("/inbox", inbox),
        Route("/inbox/bulk", inbox_bulk, methods=["POST"]),
        Route("/mentions/{key:path}/act", act, methods=["POST"]),
        Route("/mentions/{key:path}/lint", lint, methods=["POST"]),
        Route("/mentions/{key:path}/reply", reply, methods=["POST"]),
        Route("/mentions/{key:path}/fill", fill, methods=["POST"]),
        Route("/mentions/{key:path}", mention),
        Route("/cockpit", cockpit),
        Route("/approvals", approvals),
        Route("/replies/{id:int}/review", review, methods=["POST"]),
        Route("/advocates", advocates),
        Route("/advocates/export", export),
        Route("/advocates/{person}/explain", explain),
        Route("/sources", sources),
        Route("/teach", teach),
    ]
