"""Saved replies: the team's answers to the questions that come back, per language and topic, with variables.

A saved reply is a `string.Template`: ``$first_name`` (the author's first name, or their handle), ``$handle``,
``$signature`` (the agent's), ``$median_wait`` (the current median first response, in words) and ``$reference``
(an order or ticket number the agent types in). Filling one in never guesses: a variable with no value is named,
so the agent knows what to type, and the house rules still check the final text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from string import Template

VARIABLES = ("first_name", "handle", "signature", "median_wait", "reference")


@dataclass(frozen=True, slots=True)
class SavedReply:
    name: str
    text: str
    language: str = ""  # "" for any language
    topics: tuple[str, ...] = ()

    @property
    def preview(self) -> str:
        """The text as a list shows it: each variable a "…", at most 80 characters."""
        shown = re.sub(r"\$(\w+|\{\w+\})", "…", self.text)
        return shown if len(shown) <= 80 else shown[:79] + "…"

    @property
    def variables(self) -> list[str]:
        """The variables the text uses, in order of first use."""
        found = [m.group("named") or m.group("braced") for m in Template.pattern.finditer(self.text)]
        return list(dict.fromkeys(v for v in found if v))


def unknown_variables(text: str) -> list[str]:
    """Variables in ``text`` that saved replies do not know (a typo would otherwise reach a customer)."""
    saved = SavedReply("check", text)
    bad = [v for v in saved.variables if v not in VARIABLES]
    if any(m.group("invalid") is not None for m in Template.pattern.finditer(text)):
        bad.append("$ (write $$ for a dollar sign)")
    return bad


class MissingValues(ValueError):
    """A saved reply needs values nobody gave; ``missing`` names them."""

    def __init__(self, missing: Sequence[str]) -> None:
        super().__init__(", ".join(missing))
        self.missing = list(missing)


def fill(saved: SavedReply, values: Mapping[str, str]) -> str:
    """The saved reply with its variables filled in; `MissingValues` names any left empty."""
    missing = [v for v in saved.variables if not str(values.get(v, "")).strip()]
    if missing:
        raise MissingValues(missing)
    return Template(saved.text).substitute({v: str(values[v]).strip() for v in saved.variables})


def first_name(display_name: str, handle: str) -> str:
    """What to call the author: the first word of their name, else their handle (never "@")."""
    words = display_name.split()
    name = words[0] if words else handle.lstrip("@")
    return name.strip(",.;:") or handle.lstrip("@")


def _folded(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def search(
    saved: Sequence[SavedReply], query: str = "", language: str = "", topics: Sequence[str] = ()
) -> list[SavedReply]:
    """The saved replies that fit, best first: every word of ``query`` in the name or text (accents ignored), in
    the mention's language (or any), those on one of the mention's topics before the others."""
    words = re.findall(r"\w+", _folded(query))
    wanted = set(topics)

    def fits(s: SavedReply) -> bool:
        haystack = _folded(f"{s.name} {s.text} {' '.join(s.topics)}")
        return (not language or not s.language or s.language == language) and all(w in haystack for w in words)

    def rank(s: SavedReply) -> tuple[int, int, str]:
        return (0 if wanted & set(s.topics) else 1, 0 if s.language == language else 1, s.name)

    return sorted((s for s in saved if fits(s)), key=rank)
