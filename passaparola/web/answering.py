"""Answering through the web app, for the pages and the JSON API alike: the actions are `ReplyActions`; what this
module adds is the one thing the web app must do differently, talking to the platform without holding the store
(a slow platform must not stall every page), and the data the reply box and the approval queue show."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.concurrency import run_in_threadpool

from passaparola.actions import Actor, Refusal, ReplyActions
from passaparola.actions.replies import Attempt, reply_row
from passaparola.web.context import Web
from storage.replies import Reply
from storage.store import Store


def actions(web: Web, store: Store) -> ReplyActions:
    return ReplyActions(web.settings, store, web.repliers)


async def deliver(web: Web, reply: Reply) -> Reply:
    """One try at a queued reply: claim it and record the outcome under the store's lock, post without it."""
    if reply.state != "queued":
        return reply
    started = await web.db.run(lambda store: actions(web, store).begin(reply.id, web.clock()))
    if not isinstance(started, Attempt):
        return started or reply
    outcome = await run_in_threadpool(started.run, web.clock())
    return await web.db.run(lambda store: actions(web, store).finish(started, outcome, web.clock()))


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true", "on", "yes")


async def send(web: Web, who: Actor, key: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Send (or record as copied by hand) the reply in ``fields``: ``text``, ``idempotency_key``,
    ``override_reason``, ``copied``. The reply's record, as `reply_row` shapes it."""
    text = str(fields.get("text", ""))
    if not text.strip():
        raise Refusal(400, "the draft is empty; write the reply first")
    idempotency = str(fields.get("idempotency_key", ""))[:100]
    override = str(fields.get("override_reason", ""))
    now = web.clock()

    def store_it(store: Store) -> Reply:
        if _flag(fields.get("copied")):
            return actions(web, store).copied(who, key, text, now, idempotency, override_reason=override)
        return actions(web, store).send(who, key, text, now, idempotency_key=idempotency, override_reason=override)

    reply = await web.db.run(store_it)
    return reply_row(await deliver(web, reply))


async def review(web: Web, who: Actor, reply_id: int, fields: dict[str, Any]) -> dict[str, Any]:
    """A supervisor approves (``approve``, maybe with an edited ``text`` and an ``override_reason``) or rejects
    (with a ``comment``) a reply waiting for approval; an approved one is sent at once."""
    approve = _flag(fields.get("approve"))
    now = web.clock()
    reply = await web.db.run(
        lambda store: actions(web, store).review(
            who,
            reply_id,
            approve,
            now,
            text=str(fields.get("text", "")),
            comment=str(fields.get("comment", "")),
            override_reason=str(fields.get("override_reason", "")),
        )
    )
    return reply_row(await deliver(web, reply))


def composer(web: Web, store: Store, who: Actor, key: str, now: datetime, query: str = "") -> dict[str, Any]:
    """What the reply box shows (`ReplyActions.composer`)."""
    return actions(web, store).composer(who, key, now, query)


def fill(web: Web, store: Store, who: Actor, key: str, name: str, reference: str) -> dict[str, Any]:
    """A saved reply filled in for this mention, and the house rules' verdict on it."""
    now = web.clock()
    done = actions(web, store)
    text = done.fill_saved(who, key, name, now, reference)
    return {"text": text, **done.check(who, key, text).as_dict()}


def approvals(web: Web, store: Store) -> list[dict[str, Any]]:
    return actions(web, store).approvals(web.clock())
