"""Every query parameter the pages and the JSON API accept, read in one place.

Each parameter is declared once in `PARAMS` (its kind, bounds and accepted values); `read` turns a request's
query string into typed values, and a bad one is a 400 (`BadParameter`) that names the parameter and what is
accepted, never a silent default or a 500. The same declarations give the OpenAPI description its parameter
schemas (`schema`), so what is documented is what is checked.

An empty value (``channel=``, as an unfilled form field sends it) means the parameter was not given.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from starlette.requests import Request

from passaparola.actions import Refusal, listing
from passaparola.config import Settings
from passaparola.exports import FORMATS
from passaparola.web.i18n import LANGUAGES
from passaparola.web.service import COCKPIT_DAYS

Kind = Literal["int", "choice", "bool", "text", "number"]
TRUE, FALSE = ("1", "true", "on"), ("0", "false", "off")
#: The longest value shown back in a message: a hostile megabyte is not echoed.
SHOWN = 60


class BadParameter(Refusal):
    """A 400 about one query parameter, in English (the API) and Italian (the pages, `text`)."""

    def __init__(self, english: str, italian: str) -> None:
        super().__init__(400, english)
        self.italian = italian

    def text(self, language: str) -> str:
        return self.italian if language == "it" else str(self)


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    kind: Kind
    description: str
    low: int = 1  # int: the smallest accepted
    high: int = 0  # int: the largest accepted
    default: Any = None
    values: tuple[str, ...] = ()  # choice (and int): the accepted values, when they do not depend on the config
    offered: bool = False  # choice: the accepted values are `listing.choices(settings)[name]` (teams, members...)
    many: bool = False  # may be given more than once (tier=fan&tier=vip); read as a list
    longest: int = 200  # text: the most characters
    noun: tuple[str, str] = ("a number", "un numero")  # int: what the value should be, for messages

    def accepted(self, settings: Settings | None) -> tuple[str, ...]:
        """The values a choice accepts (`offered` ones need the settings; without them, none are listed)."""
        if self.offered:
            return tuple(listing.choices(settings)[self.name]) if settings is not None else ()
        return self.values


PARAMS: dict[str, Param] = {
    p.name: p
    for p in (
        Param("q", "text", "Words to search for, all required (accents and case ignored)"),
        Param("channel", "choice", "Only this channel", offered=True),
        Param("sentiment", "choice", "Only this sentiment (a person's correction wins over the model)", offered=True),
        Param("team", "choice", "Only this team ([[triage.teams]])", offered=True),
        Param("assignee", "choice", "Only this member's mentions; \"-\" for nobody's", offered=True),
        Param("state", "choice", '"open" (the default) is every state still waiting for an answer', offered=True),
        Param("language", "choice", "Only this language (analysis.languages)", offered=True),
        Param("vip", "bool", "Only mentions by VIP advocates", default=False),
        Param("incident", "text", "Only the mentions of this spike alert (its key)"),
        Param(
            "page",
            "int",
            "Page number, 50 mentions a page",
            low=1,
            high=10_000,
            default=1,
            noun=("a page number", "un numero di pagina"),
        ),
        Param(
            "days",
            "int",
            "Days the response figures cover",
            default=COCKPIT_DAYS[0],
            values=tuple(map(str, COCKPIT_DAYS)),
            noun=("a number of days", "un numero di giorni"),
        ),
        Param("tier", "choice", "Only this tier; repeat for several", offered=True, many=True),
        Param("format", "choice", "The file's format", default="csv", values=FORMATS),
        Param("min_score", "number", "Only people scoring at least this"),
        Param("topic", "text", "Only people who praised this topic", longest=100),
        Param("lang", "choice", "The page's language (remembered for the session)", values=LANGUAGES),
        Param("next", "text", "Where to go once logged in (a path on this site)", longest=2000),
    )
}


def shown(value: str) -> str:
    return repr(value if len(value) <= SHOWN else value[:SHOWN] + "…")


def listed(values: Sequence[str], italian: bool = False) -> str:
    if not values:
        return "nessuno" if italian else "none configured"
    return ", ".join(values)


def value_of(param: Param, raw: str, settings: Settings | None) -> Any:
    """One given (non-empty) value as its type, or `BadParameter`."""
    name, seen = param.name, shown(raw)
    if param.kind == "int":
        if param.values:
            use_en, use_it = f"use one of {', '.join(param.values)}", f"usa uno di {', '.join(param.values)}"
        else:
            use_en, use_it = f"use {param.low} to {param.high}", f"usa da {param.low} a {param.high}"
        digits = raw.isascii() and raw.isdigit() and len(raw) <= 9  # never int() a 10,000-digit string
        number = int(raw) if digits else None
        if number is None or (not param.values and not param.low <= number <= param.high):
            raise BadParameter(
                f"{name}={seen} is not {param.noun[0]}; {use_en}", f"{name}={seen} non è {param.noun[1]}; {use_it}"
            )
        if param.values and str(number) not in param.values:
            raise BadParameter(
                f"{name}={number} is not offered; {use_en}", f"{name}={number} non è tra le scelte; {use_it}"
            )
        return number
    if param.kind == "choice":
        accepted = param.accepted(settings)
        if raw not in accepted:
            raise BadParameter(
                f"{name}={seen} is not offered; use one of {listed(accepted)}",
                f"{name}={seen} non è tra le scelte; usa uno di {listed(accepted, italian=True)}",
            )
        return raw
    if param.kind == "bool":
        if raw.lower() in TRUE:
            return True
        if raw.lower() in FALSE:
            return False
        words = ", ".join((*TRUE, *FALSE))
        raise BadParameter(
            f"{name}={seen} is not yes or no; use one of {words}", f"{name}={seen} non è sì o no; usa uno di {words}"
        )
    if param.kind == "number":
        try:
            real = float(raw) if len(raw) <= 32 else math.nan
        except ValueError:
            real = math.nan
        if not math.isfinite(real):
            raise BadParameter(
                f"{name}={seen} is not a number; use e.g. 2.5", f"{name}={seen} non è un numero; usa ad es. 2.5"
            )
        return real
    if len(raw) > param.longest:
        raise BadParameter(
            f"{name} is {len(raw)} characters long; use at most {param.longest}",
            f"{name} è lungo {len(raw)} caratteri; usane al massimo {param.longest}",
        )
    return raw


def empty(param: Param) -> Any:
    """What a parameter reads as when it is not given."""
    if param.many:
        return []
    if param.default is not None:
        return param.default
    return None if param.kind == "number" else ""


def read(
    items: Iterable[tuple[str, str]], accepted: Sequence[str], settings: Settings | None, where: str
) -> dict[str, Any]:
    """Every parameter in ``accepted`` as its type (absent ones as `empty`); a parameter ``where`` does not take,
    one given twice that is not `Param.many`, or a bad value is a `BadParameter`."""
    given: dict[str, list[str]] = {}
    for name, value in items:
        if name not in accepted:
            use = ", ".join(accepted)
            raise BadParameter(
                f"{shown(name)} is not a parameter of {where}; " + (f"use {use}" if use else "it takes none"),
                f"{shown(name)} non è un parametro di {where}; " + (f"usa {use}" if use else "non ne accetta"),
            )
        if value != "":
            given.setdefault(name, []).append(value)
    out: dict[str, Any] = {}
    for name in accepted:
        param = PARAMS[name]
        values = given.get(name, [])
        if len(values) > 1 and not param.many:
            raise BadParameter(
                f"{name} is given {len(values)} times; give it once",
                f"{name} è dato {len(values)} volte; dallo una volta",
            )
        typed = [value_of(param, v, settings) for v in values]
        out[name] = typed if param.many else (typed[0] if typed else empty(param))
    return out


def check(request: Request, accepted: Sequence[str], settings: Settings) -> dict[str, Any]:
    """`read` the request's query string, keeping the values for the handler (`given`)."""
    values = read(request.query_params.multi_items(), accepted, settings, request.url.path)
    request.state.query = values
    return values


def given(request: Request) -> dict[str, Any]:
    """The values `check` read for this request."""
    values: dict[str, Any] = request.state.query
    return values


def schema(name: str, settings: Settings | None) -> dict[str, Any]:
    """The OpenAPI schema of one query parameter, as `read` checks it."""
    param = PARAMS[name]
    one: dict[str, Any]
    if param.kind == "int":
        one = {"type": "integer"}
        if param.values:
            one["enum"] = [int(v) for v in param.values]
        else:
            one |= {"minimum": param.low, "maximum": param.high}
    elif param.kind == "choice":
        one = {"type": "string"}
        if accepted := param.accepted(settings):
            one["enum"] = list(accepted)
    elif param.kind == "bool":
        one = {"type": "boolean", "description": f"also {', '.join((*TRUE, *FALSE))}"}
    elif param.kind == "number":
        one = {"type": "number"}
    else:
        one = {"type": "string", "maxLength": param.longest}
    if param.many:
        return {"type": "array", "items": one}
    if param.default is not None:
        one["default"] = param.default
    return one
