"""Rules of engagement: review a drafted reply before it goes out, and suggest an honest holding reply.

The checks are the team's own house rules, configured in ``[engagement]``: banned terms block a reply,
discouraged terms warn with the preferred wording, required elements (a greeting, the agent's signature, an
apology on a complaint, a reference number on billing) block when missing, and so does the channel's length
limit. The reminder to answer on the same channel is always given: an answer elsewhere is not seen by the
people watching the original post.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from string import Template
from typing import Literal

from rules.saved_replies import SavedReply

Level = Literal["block", "warn", "info"]
REQUIREMENTS = ("greeting", "signature", "apology_on_complaint", "reference_on_billing")
DEFAULT_GREETINGS = (
    "ciao",
    "buongiorno",
    "buonasera",
    "salve",
    "gentile",
    "hi",
    "hello",
    "hey",
    "dear",
    "good morning",
)
DEFAULT_APOLOGIES = ("scusa", "scusaci", "ci scusiamo", "ci dispiace", "mi dispiace", "sorry", "apologise", "apologize")
DEFAULT_LIMITS = {"x": 280, "facebook": 8000}
#: Holding replies by language: $handle, $wait ("25 minuti") and $wait_sentence (empty when we have no figure).
DEFAULT_HOLDING = {
    "it": "Ciao @$handle, abbiamo ricevuto il tuo messaggio e lo stiamo guardando.$wait_sentence",
    "en": "Hi @$handle, we got your message and we are looking into it.$wait_sentence",
}
#: Out-of-hours acknowledgements by language: $first_name, $back ("domani alle 9:00"), $signature.
DEFAULT_OUT_OF_HOURS = {
    "it": "Ciao $first_name, grazie per averci scritto. Ci dispiace, ora siamo fuori orario: "
    "ti rispondiamo $back. $signature",
    "en": "Hi $first_name, thanks for writing to us. Sorry, our team is away right now: "
    "we will answer you $back. $signature",
}
WEEKDAYS = {
    "it": ("lunedì", "martedì", "mercoledì", "giovedì", "venerdì", "sabato", "domenica"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
MONTHS = {
    "it": (
        "gennaio",
        "febbraio",
        "marzo",
        "aprile",
        "maggio",
        "giugno",
        "luglio",
        "agosto",
        "settembre",
        "ottobre",
        "novembre",
        "dicembre",
    ),
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}
WAIT_SENTENCE = {"it": " In questo momento rispondiamo in circa $wait.", "en": " Right now we answer in about $wait."}


@dataclass(frozen=True)
class EngagementRules:
    banned: tuple[str, ...] = ()
    discouraged: Mapping[str, str] = field(default_factory=dict)  # term -> preferred wording
    greetings: tuple[str, ...] = DEFAULT_GREETINGS
    apologies: tuple[str, ...] = DEFAULT_APOLOGIES
    require: frozenset[str] = frozenset(REQUIREMENTS)
    reference_pattern: str = r"\b[A-Z]{2,6}-?\d{4,}\b"
    reference_teams: tuple[str, ...] = ("billing",)
    max_length: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    holding: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_HOLDING))
    saved: tuple[SavedReply, ...] = ()
    out_of_hours: frozenset[str] = frozenset()  # channels that acknowledge outside business hours (off by default)
    out_of_hours_text: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_OUT_OF_HOURS))
    out_of_hours_signature: str = "Customer care"


@dataclass(frozen=True)
class ReplyContext:
    """What the draft answers: the channel, the team, whether it is a complaint, the agent's signature."""

    channel: str
    team: str = ""
    complaint: bool = False
    signature: str = ""
    handle: str = ""
    url: str = ""


@dataclass(frozen=True)
class Finding:
    level: Level
    code: str
    message: str


def _contains(text: str, terms: Sequence[str]) -> list[str]:
    return [t for t in terms if t.strip() and re.search(rf"(?<!\w){re.escape(t.strip())}(?!\w)", text, re.I)]


def lint_reply(draft: str, context: ReplyContext, rules: EngagementRules) -> list[Finding]:
    """Every finding on the draft, blocking ones first."""
    found: list[Finding] = []
    text = draft.strip()
    for term in _contains(text, rules.banned):
        found.append(Finding("block", "banned_term", f"{term!r} must never be used; rephrase"))
    for term in _contains(text, list(rules.discouraged)):
        found.append(Finding("warn", "discouraged_term", f"avoid {term!r}; say {rules.discouraged[term]!r}"))
    opening = text[:60]
    if "greeting" in rules.require and not _contains(opening, rules.greetings):
        found.append(Finding("block", "missing_greeting", "open with a greeting (e.g. " + rules.greetings[0] + ")"))
    if "signature" in rules.require:
        if not context.signature:
            found.append(Finding("block", "missing_signature", "say who signs: pass the agent (--member)"))
        elif context.signature.casefold() not in text[-80:].casefold():
            found.append(Finding("block", "missing_signature", f"sign the reply at the end: {context.signature}"))
    if "apology_on_complaint" in rules.require and context.complaint and not _contains(text, rules.apologies):
        found.append(Finding("block", "missing_apology", "this answers a complaint: apologise (e.g. ci dispiace)"))
    if (
        "reference_on_billing" in rules.require
        and context.team in rules.reference_teams
        and not re.search(rules.reference_pattern, text)
    ):
        found.append(
            Finding("block", "missing_reference", f"a {context.team} reply needs a reference number (e.g. AUR-12345)")
        )
    limit = rules.max_length.get(context.channel)
    if limit and len(text) > limit:
        found.append(
            Finding("block", "too_long", f"{len(text)} characters; {context.channel} allows {limit}: shorten it")
        )
    where = f" in reply to {context.url}" if context.url else ""
    found.append(Finding("info", "same_channel", f"answer on {context.channel}{where}, where the customer spoke"))
    order = {"block": 0, "warn": 1, "info": 2}
    return sorted(found, key=lambda f: order[f.level])


def verdict(findings: Sequence[Finding]) -> Level | Literal["ok"]:
    """``block`` if anything blocks, ``warn`` if anything warns, else ``ok``."""
    levels = {f.level for f in findings}
    return "block" if "block" in levels else "warn" if "warn" in levels else "ok"


def spoken_wait(seconds: float, language: str) -> str:
    """A wait we can keep, in words: rounded *up* to 5 minutes below an hour, to half hours above."""
    minutes = max(5, math.ceil(seconds / 60 / 5) * 5)
    if minutes < 60:
        return f"{minutes} minuti" if language == "it" else f"{minutes} minutes"
    hours = math.ceil(minutes / 30) / 2
    shown = f"{hours:g}".replace(".", "," if language == "it" else ".")
    if language == "it":
        return f"{shown} {'ora' if hours == 1 else 'ore'}"
    return f"{shown} {'hour' if hours == 1 else 'hours'}"


def holding_reply(handle: str, language: str, median_seconds: float | None, rules: EngagementRules) -> str:
    """An acknowledgement for a busy moment, stating the current median wait only when there is one."""
    language = _language(language, rules.holding)
    wait = spoken_wait(median_seconds, language) if median_seconds is not None else ""
    sentence = Template(WAIT_SENTENCE.get(language, WAIT_SENTENCE["en"])).substitute(wait=wait) if wait else ""
    return Template(rules.holding[language]).safe_substitute(handle=handle, wait=wait, wait_sentence=sentence)


def _language(language: str, texts: Mapping[str, str]) -> str:
    return language if language in texts else "en" if "en" in texts else next(iter(texts))


def back_phrase(back: datetime, now: datetime, language: str) -> str:
    """When the team is back, as a person says it on the team's wall clock (both times in the team's zone):
    "oggi alle 9:00", "domani alle 9:00", "lunedì 7 dicembre alle 9:00"."""
    language = language if language in WEEKDAYS else "en"
    clock = f"{back.hour}:{back.minute:02d}"
    days = (back.date() - now.date()).days
    at = "alle" if language == "it" else "at"
    if days == 0:
        return f"{'oggi' if language == 'it' else 'today'} {at} {clock}"
    if days == 1:
        return f"{'domani' if language == 'it' else 'tomorrow'} {at} {clock}"
    day = f"{WEEKDAYS[language][back.weekday()]} {back.day} {MONTHS[language][back.month - 1]}"
    return f"{day} {at} {clock}" if language == "it" else f"on {day} {at} {clock}"


def out_of_hours_reply(first_name: str, language: str, back: datetime, now: datetime, rules: EngagementRules) -> str:
    """The honest holding reply sent outside business hours: we got it, we are away, and when we are back."""
    language = _language(language, rules.out_of_hours_text)
    return Template(rules.out_of_hours_text[language]).safe_substitute(
        first_name=first_name, back=back_phrase(back, now, language), signature=rules.out_of_hours_signature
    )
