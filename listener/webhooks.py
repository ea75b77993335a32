"""What arrives by push rather than by polling: Facebook Page ``feed`` webhooks and the intake webhook.

The web app only verifies and queues a request (answering fast, as Meta asks); the daemon later turns the queued
body into a `Poll` here and sends it down the same ingest path as polling. A comment heard both ways has the
same key (``facebook:<comment id>``), so it is stored once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from listener.facebook import read_comment
from listener.imports import FREE_TEXT, lone_surrogate, mention_from_row, surrogate_problem
from listener.model import BrandReply, Mention, Poll, clean_text

#: The most mentions one intake request may carry (all are checked before any is accepted).
MAX_INTAKE_ITEMS = 100


def valid_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``X-Hub-Signature-256`` is ``sha256=`` + the HMAC-SHA256 of the raw body, compared in constant time."""
    if not secret or not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest().encode("ascii")
    given = header[len("sha256=") :].strip().lower().encode("utf-8", "replace")
    return hmac.compare_digest(expected, given)


def facebook_poll(payload: Mapping[str, Any], page_id: str, source: str) -> Poll:
    """The comments (and the Page's own replies) in a Page ``feed`` webhook body.

    Only ``item: comment`` changes with verb ``add`` or ``edited`` count; others (likes, removals, posts) are
    skipped. Raises `ValueError` naming what is wrong when the body is not a Page webhook.
    """
    if payload.get("object") != "page" or not isinstance(payload.get("entry"), list):
        raise ValueError('not a Page webhook: expected {"object": "page", "entry": [...]}')
    mentions: list[Mention] = []
    replies: list[BrandReply] = []
    for entry in payload["entry"]:
        for change in entry.get("changes", []) if isinstance(entry, dict) else []:
            value = change.get("value") if isinstance(change, dict) else None
            if change.get("field") != "feed" or not isinstance(value, dict):
                continue
            if value.get("item") != "comment" or value.get("verb") not in ("add", "edited"):
                continue
            comment_id, post_id = str(value.get("comment_id", "")), str(value.get("post_id", ""))
            if not comment_id or not post_id:
                raise ValueError("a comment change without comment_id or post_id")
            parent = str(value.get("parent_id", ""))
            sender = value.get("from")
            heard = read_comment(
                page_id,
                source,
                comment_id=comment_id,
                post_id=post_id,
                parent="" if parent in ("", post_id) else parent,  # a top-level comment's parent is the post
                author=sender if isinstance(sender, dict) else {},
                text=str(value.get("message", "")),
                when=datetime.fromtimestamp(int(value.get("created_time", 0)), UTC),
                url=f"https://www.facebook.com/{post_id}?comment_id={comment_id}",
            )
            if isinstance(heard, BrandReply):
                replies.append(heard)
            else:
                mentions.append(heard)
    return Poll(mentions=tuple(mentions), replies=tuple(replies))


def intake_items(payload: Any) -> list[Mapping[str, Any]]:
    """The objects of an intake body: one object, or a list of at most `MAX_INTAKE_ITEMS`."""
    items = payload if isinstance(payload, list) else [payload]
    if not items or len(items) > MAX_INTAKE_ITEMS:
        raise ValueError(f"send one object or a list of 1 to {MAX_INTAKE_ITEMS} objects")
    if not all(isinstance(item, dict) for item in items):
        raise ValueError("every item must be a JSON object with id, text, published_at and author")
    return items


def unpaired(items: Sequence[Mapping[str, Any]]) -> list[str]:
    """``item N: reason`` for each field name, or value outside free text, holding a lone surrogate.

    JSON lets a body escape half an emoji (``"\\ud83d"``); SQLite cannot store it, and in an id it would make a
    key that matches nothing the caller sends again, so it is refused rather than guessed at.
    """
    problems = []
    for index, item in enumerate(items):
        for name, value in item.items():
            if lone_surrogate(str(name)):
                problems.append(f"item {index}: the field name {name!a} holds a lone surrogate; fix the name")
            elif isinstance(value, str) and name not in FREE_TEXT and lone_surrogate(value):
                problems.append(f"item {index}: {surrogate_problem(str(name))}")
    return problems


def queued_body(item: Mapping[str, Any]) -> str:
    """The item as JSON to queue, its free text cleaned of lone surrogates as the stored mention will be."""
    cleaned = {
        k: clean_text(v) if isinstance(v, str) and k in FREE_TEXT and lone_surrogate(v) else v for k, v in item.items()
    }
    return json.dumps(cleaned, ensure_ascii=False)


def intake_mentions(items: Sequence[Mapping[str, Any]], now: datetime) -> tuple[list[Mention], list[str]]:
    """Validate every item (the import column set, on the ``site`` platform); problems are ``item N: reason``."""
    mentions, problems = [], []
    for index, item in enumerate(items):
        nested = [k for k, v in item.items() if isinstance(v, (dict, list))]
        if nested:
            problems.append(f"item {index}: {', '.join(map(str, nested))} must be text, not an object or a list")
            continue
        try:
            mentions.append(mention_from_row(item, now, platform="site"))
        except ValueError as error:
            problems.append(f"item {index}: {error}")
    return mentions, problems
