"""Advocates: who speaks well of the brand, by how much, and what to offer them in return.

The score is a sum a person can read, one term per mention in the window (``advocates explain`` prints them)::

    value = sign x strength x reach_factor x decay
      sign          +1 for a positive mention, -1 for a negative one (neutral mentions count nothing)
      strength      the sentiment model's probability of that label (1.0 when a person corrected the label)
      reach_factor  1 + log10(1 + followers): 9 followers give 2, 99 give 3, a million give 7
      decay         0.5 ** (age in days / half_life_days)

A mention is shown but worth 0 when it is by the brand's own accounts or an employee, is self-promotion,
is a near-duplicate of one already counted, or comes past the day's burst cap (gaming by volume).

Offers are operator-written Jinja2 templates rendered in a sandbox with strict undefined variables; mention
text is only ever a *value* in the context, never template source.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from jinja2 import StrictUndefined, TemplateError, meta
from jinja2.sandbox import SandboxedEnvironment

from listener.model import Contribution, Person, Said, Score
from notifiers.alert import Alert

TIERS = ("fan", "advocate", "vip")
DEFAULT_TIERS: Mapping[str, float] = {"fan": 1.0, "advocate": 4.0, "vip": 10.0}
DEFAULT_SELF_PROMOTION = (
    "#ad",
    "#adv",
    "#sponsored",
    "#sponsorizzato",
    "codice sconto",
    "discount code",
    "use my code",
    "usa il mio codice",
    "link in bio",
    "affiliate",
    "affiliato",
)
#: The names an offer template may use; anything else is a configuration error found by `check`.
OFFER_VARIABLES = ("name", "handle", "handles", "channel", "channels", "tier", "score", "praised", "praised_text")

_SANDBOX = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_WORD = re.compile(r"\w+", re.UNICODE)
_NOISE = re.compile(r"https?://\S+|@\w+")


@dataclass(frozen=True, slots=True)
class OfferTemplate:
    """An offer the team wrote: for people of these ``tiers`` (and ``channels``, when given)."""

    name: str
    template: str
    tiers: tuple[str, ...] = ("advocate", "vip")
    channels: tuple[str, ...] = ()

    def fits(self, tier: str, channels: Iterable[str]) -> bool:
        return tier in self.tiers and (not self.channels or bool(set(self.channels) & set(channels)))


@dataclass(frozen=True, slots=True)
class AdvocateSettings:
    half_life_days: float = 30.0
    window_days: int = 180
    burst_cap_per_day: int = 3
    near_duplicate: float = 0.8  # word-set similarity (Jaccard) at which two texts count once
    tiers: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TIERS))
    excluded_handles: frozenset[str] = frozenset()  # the brand's accounts and the employees, lower case, no @
    self_promotion: tuple[str, ...] = DEFAULT_SELF_PROMOTION
    offers: tuple[OfferTemplate, ...] = ()
    offer_cooldown_days: int = 90
    route: str = "care"
    alert_promotion: bool = True
    alert_mention_tiers: tuple[str, ...] = ("advocate", "vip")
    mention_lookback_hours: int = 24


def scoring_key(settings: AdvocateSettings) -> str:
    """The settings a score depends on, as one string: a stored score computed under others is re-computed."""
    return json.dumps(
        {
            "half_life_days": settings.half_life_days,
            "window_days": settings.window_days,
            "burst_cap_per_day": settings.burst_cap_per_day,
            "near_duplicate": settings.near_duplicate,
            "tiers": dict(sorted(settings.tiers.items())),
            "excluded_handles": sorted(settings.excluded_handles),
            "self_promotion": list(settings.self_promotion),
        },
        sort_keys=True,
    )


def aged(exact: float, computed_at: datetime, now: datetime, settings: AdvocateSettings) -> tuple[float, float, str]:
    """A score with nothing new since ``computed_at``, as of ``now``: every term decays by the same factor, so the
    unrounded sum does too. Returns (unrounded, rounded, tier): what a re-score gives, give or take the rounding
    of its terms to four decimals (at most 0.00005 a counted mention)."""
    exact *= decay(computed_at, now, settings.half_life_days)
    score = round(exact, 4)
    return exact, score, tier_of(score, settings.tiers)


def reach_factor(followers: int) -> float:
    return 1.0 + math.log10(1 + max(followers, 0))


def decay(published_at: datetime, now: datetime, half_life_days: float) -> float:
    age_days = max((now - published_at).total_seconds(), 0.0) / 86_400
    return 0.5 ** (age_days / half_life_days)


def tier_of(score: float, tiers: Mapping[str, float]) -> str:
    """The highest tier whose threshold the score reaches; '' below the first."""
    reached = [name for name in TIERS if name in tiers and score >= tiers[name]]
    return reached[-1] if reached else ""


def _shingles(text: str) -> frozenset[str]:
    """The words of a text without links, handles and bare numbers: what spam varies between copies."""
    words = set(_WORD.findall(_NOISE.sub(" ", text.lower())))  # each word once before the number test
    return frozenset(w for w in words if not w.isdigit())


def _similar(a: frozenset[str], b: frozenset[str], threshold: float) -> bool:
    if not a or not b:
        return a == b
    return len(a & b) / len(a | b) >= threshold


@functools.lru_cache(maxsize=64)
def _cue_patterns(cues: tuple[str, ...]) -> tuple[tuple[str, str, re.Pattern[str]], ...]:
    """Each cue, lower case, and its whole-word pattern, compiled once."""
    return tuple((cue, cue.lower(), re.compile(rf"(?<!\w){re.escape(cue.lower())}(?!\w)")) for cue in cues)


def _self_promotion(text: str, cues: Sequence[str]) -> str:
    """The first of ``cues`` the text holds as a whole word or phrase, ignoring case; "" for none."""
    lowered = text.lower()
    for cue, lower, pattern in _cue_patterns(tuple(cues)):
        if lower in lowered and pattern.search(lowered):  # the substring test first: most texts hold no cue
            return cue
    return ""


def score_person(person_id: int, said: Sequence[Said], settings: AdvocateSettings, now: datetime) -> Score:
    """Score one person's mentions, oldest first (the first of near-duplicates is the one that counts)."""
    contributions: list[Contribution] = []
    exact = 0.0
    counted_shingles: list[frozenset[str]] = []
    per_day: Counter[str] = Counter()
    for s in sorted(said, key=lambda s: (s.published_at, s.key)):
        factor, weight = reach_factor(s.reach), decay(s.published_at, now, settings.half_life_days)
        sign = {"positive": 1.0, "negative": -1.0}.get(s.sentiment, 0.0)
        shingles = _shingles(s.text)
        day = s.published_at.date().isoformat()
        excluded = ""
        if s.handle.lower().lstrip("@") in settings.excluded_handles:
            excluded = "the brand's own account or an employee"
        elif cue := _self_promotion(s.text, settings.self_promotion):
            excluded = f"self-promotion ({cue!r})"
        elif sign == 0:
            excluded = "neutral"
        elif any(_similar(shingles, seen, settings.near_duplicate) for seen in counted_shingles):
            excluded = "a near-duplicate of a mention already counted"
        elif per_day[day] >= settings.burst_cap_per_day:
            excluded = f"past the burst cap of {settings.burst_cap_per_day} a day"
        if not excluded:
            counted_shingles.append(shingles)
            per_day[day] += 1
        value = 0.0 if excluded else sign * s.strength * factor * weight
        exact += value
        contributions.append(Contribution(s, round(factor, 4), round(weight, 4), round(value, 4), excluded))
    total = round(sum(c.value for c in contributions), 4)  # the terms `advocates explain` prints, added up
    praise = [c.said for c in contributions if c.value > 0]
    topics = Counter(t for s in praise for t in s.topics)
    return Score(
        person_id=person_id,
        score=total,
        tier=tier_of(total, settings.tiers),
        contributions=tuple(contributions),
        praised=tuple(t for t, _ in topics.most_common()),
        last_praise=max(praise, key=lambda s: s.published_at) if praise else None,
        exact=exact,
        counted=sum(1 for c in contributions if not c.excluded),
    )


def score_all(said: Iterable[Said], settings: AdvocateSettings, now: datetime) -> list[Score]:
    """Every person's score, best first."""
    by_person: dict[int, list[Said]] = {}
    for s in said:
        by_person.setdefault(s.person_id, []).append(s)
    scores = [score_person(pid, items, settings, now) for pid, items in by_person.items()]
    return sorted(scores, key=lambda s: (-s.score, s.person_id))


def score_each(groups: Iterable[tuple[int, Sequence[Said]]], settings: AdvocateSettings, now: datetime) -> list[Score]:
    """`score_all` of mentions already grouped by person (`storage.people.People.said_by_person`), best first.

    Each score keeps no contributions (its count, praise and topics stay): the daemon stores no more, and holds one
    person's mentions at a time instead of the whole window's."""
    scores = [replace(score_person(pid, items, settings, now), contributions=()) for pid, items in groups]
    return sorted(scores, key=lambda s: (-s.score, s.person_id))


# -- offers ------------------------------------------------------------------------------------------


def offer_problems(template: str, where: str) -> list[str]:
    """What is wrong with an offer template: bad syntax, an unknown variable, an expression the sandbox refuses."""
    try:
        unknown = sorted(meta.find_undeclared_variables(_SANDBOX.parse(template)) - set(OFFER_VARIABLES))
    except TemplateError as error:
        return [f"{where}: not a valid template ({error}); fix the {{{{ }}}} and {{% %}} syntax"]
    if unknown:
        return [f"{where}: unknown variable {', '.join(unknown)}; offers may use {', '.join(OFFER_VARIABLES)}"]
    sample = {
        "name": "Marta",
        "handle": "marta",
        "handles": ["marta"],
        "channel": "x",
        "channels": ["x"],
        "tier": "vip",
        "score": 12.5,
        "praised": ["espresso"],
        "praised_text": "espresso",
    }
    try:
        render_offer(template, sample)
    except TemplateError as error:
        return [f"{where}: the template cannot be rendered ({error}); use only plain variables and filters"]
    return []


def render_offer(template: str, context: Mapping[str, Any]) -> str:
    """Render an operator's template in the sandbox; raises `jinja2.TemplateError` on anything unsafe or undefined."""
    return _SANDBOX.from_string(template).render(**context).strip()


def offer_context(person: Person, tier: str, score: float, praised: Sequence[str]) -> dict[str, Any]:
    """What an offer template can use (`OFFER_VARIABLES`): values only, never template source."""
    return {
        "name": person.name,
        "handle": person.handles[0] if person.handles else "",
        "handles": list(person.handles),
        "channel": person.channels[0] if person.channels else "",
        "channels": list(person.channels),
        "tier": tier,
        "score": round(score, 1),
        "praised": list(praised),
        "praised_text": ", ".join(praised),
    }


@dataclass(frozen=True, slots=True)
class Suggestion:
    """The offer for a person now, or why there is none."""

    offer: str = ""
    text: str = ""
    reason: str = ""


def suggest_offer(
    person: Person, tier: str, score: float, praised: Sequence[str], settings: AdvocateSettings, now: datetime
) -> Suggestion:
    """The first configured offer that fits the person's tier and channels, unless they opted out or had one lately."""
    if person.opted_out:
        return Suggestion(reason="opted out of offers")
    if person.last_offer_at is not None:
        again = person.last_offer_at + timedelta(days=settings.offer_cooldown_days)
        if again > now:
            return Suggestion(reason=f"had an offer on {person.last_offer_at.date()}; next from {again.date()}")
    for template in settings.offers:
        if template.fits(tier, person.channels):
            return Suggestion(
                template.name, render_offer(template.template, offer_context(person, tier, score, praised))
            )
    return Suggestion(reason=f"no offer for tier {tier or 'none'}")


def testimonials(said: Iterable[Said], settings: AdvocateSettings, now: datetime) -> list[tuple[float, Said]]:
    """Positive mentions worth showing, strongest first: strength x reach factor x recency, no brand or promo posts."""
    ranked = []
    for s in said:
        if s.sentiment != "positive" or s.handle.lower().lstrip("@") in settings.excluded_handles:
            continue
        if _self_promotion(s.text, settings.self_promotion):
            continue
        rank = s.strength * reach_factor(s.reach) * decay(s.published_at, now, settings.half_life_days)
        ranked.append((round(rank, 4), s))
    return sorted(ranked, key=lambda r: (-r[0], r[1].key))


# -- alerts ------------------------------------------------------------------------------------------


def promotion_alert(person: Person, score: Score, suggestion: Suggestion, route: str) -> Alert:
    """A person has just become a VIP: once per person (the key), with the offer to send them."""
    praise = score.last_praise
    lines = [
        f"{person.name} ({', '.join('@' + h for h in person.handles)}) is now a VIP: score {score.score:.1f}.",
        f"Praised: {', '.join(score.praised) or 'the brand'}.",
    ]
    if praise is not None:
        lines.append(f"Latest praise on {praise.platform}: {praise.text[:280]}")
    lines.append(_offer_line(suggestion))
    return Alert(
        key=f"vip_promotion:{person.id}",
        kind="vip_promotion",
        title=f"New VIP: {person.name}",
        body="\n".join(lines),
        level="success",
        route=route,
        mentions=(praise.key,) if praise else (),
    )


def advocate_mention_alert(person: Person, score: Score, said: Said, suggestion: Suggestion, route: str) -> Alert:
    """An advocate or VIP spoke well of us: a chance to thank and reward them. At most one a person a day."""
    return Alert(
        key=f"advocate_mention:{person.id}:{said.published_at.date().isoformat()}",
        kind="advocate_mention",
        title=f"{score.tier.upper()} {person.name} praised us on {said.platform}",
        body="\n".join(
            [
                f"{person.name} (@{said.handle}, {score.tier}, score {score.score:.1f}) on {said.platform}:",
                said.text[:500],
                said.url,
                _offer_line(suggestion),
            ]
        ),
        level="success",
        route=route,
        mentions=(said.key,),
    )


def _offer_line(suggestion: Suggestion) -> str:
    if suggestion.text:
        return f"Suggested offer ({suggestion.offer}): {suggestion.text}"
    return f"No offer now: {suggestion.reason}."
