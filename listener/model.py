"""The nouns every package shares: what a source hears, and the protocol a source implements.

Everything here is a frozen dataclass: sources build them, taggers return copies with tags, storage
writes them. No dict crosses a package border.

Errors, drawn as a tree::

    SourceError            a poll failed; the source is marked failing, the others keep running
    └── RateLimited        the platform asked us to wait; the source pauses until ``retry_at``
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, Protocol

#: Where people spoke: ``web`` is blogs, news and alerts; ``site`` the brand's own site (the intake webhook);
#: ``review`` review sites heard through feeds; ``gbp``, ``appstore``, ``googleplay`` the reviews of the brand's
#: locations and apps through their platforms' APIs; ``bluesky``, ``mastodon``, ``youtube`` the open networks.
Platform = Literal[
    "x", "forum", "facebook", "review", "web", "site", "import",
    "gbp", "appstore", "googleplay", "bluesky", "mastodon", "youtube",
]  # fmt: skip
PLATFORMS: tuple[str, ...] = (
    "x", "forum", "facebook", "review", "web", "site", "import",
    "gbp", "appstore", "googleplay", "bluesky", "mastodon", "youtube",
)  # fmt: skip

#: Longest text we keep for one mention; longer text is cut (and marked) rather than refused.
MAX_TEXT_CHARS = 20_000
#: Longest value of one of a mention's `Mention.facts` (a device name, a version).
MAX_FACT_CHARS = 80


def clean_text(value: str, limit: int = MAX_TEXT_CHARS) -> str:
    """Make untrusted text safe to store: NFC, no lone surrogates, no NUL, at most ``limit`` characters.

    Lone surrogates (from a JSON ``"\\ud83d"``) would make SQLite's UTF-8 encoding crash the whole batch.
    """
    text = value.encode("utf-8", "replace").decode("utf-8")
    text = unicodedata.normalize("NFC", text).replace("\x00", "")
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def utc(moment: datetime) -> datetime:
    """Return ``moment`` as an aware UTC datetime; naive values are refused, never guessed."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: sources must give aware times")
    return moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Author:
    """Someone who wrote on a platform. ``reach`` is followers, or the platform's nearest figure."""

    platform: str
    platform_id: str
    handle: str
    display_name: str = ""
    reach: int = 0
    verified: bool = False

    @property
    def key(self) -> str:
        return f"{self.platform}:{self.platform_id}"

    @property
    def has_handle(self) -> bool:
        """Whether ``handle`` is an @-handle. Imports, the site, Facebook and feeds know only a name, which they
        store as both handle and display name; X always has handles, even one spelled like the name."""
        if self.platform in NAMES_ONLY:
            return False
        return self.platform == "x" or not self.display_name or self.handle != self.display_name

    @property
    def shown(self) -> str:
        """How texts name the author: ``@handle`` for a handle, the bare name otherwise ("@Sofia Marino" is
        nobody's handle)."""
        return f"@{self.handle}" if self.has_handle else self.display_name or self.handle


#: Platforms whose authors have a name and no handle.
NAMES_ONLY = ("import", "site")


@dataclass(frozen=True, slots=True)
class Mention:
    """Something someone said about the brand, as fetched. Enrichment returns a copy with ``tags``.

    ``thread_id`` groups a conversation (X conversation_id, forum topic, Facebook post);
    ``in_reply_to`` is the platform id of the post this one answers. ``metrics`` are the platform's figures
    (likes, and a review's ``rating``, 1 to 5 stars).
    """

    platform: str
    platform_id: str
    source: str
    text: str
    published_at: datetime
    author: Author
    url: str = ""
    thread_id: str = ""
    in_reply_to: str = ""
    language_hint: str = ""
    metrics: Mapping[str, int] = field(default_factory=dict)
    tags: Mapping[str, Any] = field(default_factory=dict, compare=False)
    #: Which of the brand's places or apps it is about (a Business Profile location, an app), as the source names
    #: it: the cockpit's ratings are per place.
    place: str = ""
    #: What the platform says about where it was written, as short strings a care agent answers with: an app
    #: review's ``territory`` (App Store, ISO 3166-1 alpha-3), ``app_version``, ``device`` and ``android`` (the
    #: Android SDK level, Google Play). Empty where the platform says nothing.
    facts: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "published_at", utc(self.published_at))
        object.__setattr__(self, "text", clean_text(self.text))
        if self.facts:
            facts = {clean_text(str(k), 40): clean_text(str(v), MAX_FACT_CHARS) for k, v in self.facts.items()}
            object.__setattr__(self, "facts", {k: v for k, v in facts.items() if k and v.strip()})

    @property
    def key(self) -> str:
        return f"{self.platform}:{self.platform_id}"

    def tagged(self, tags: Mapping[str, Any]) -> Mention:
        """A copy with ``tags`` added to its own: taggers' results. What ``__post_init__`` cleaned is copied as it is
        (`dataclasses.replace` would clean the text and the time again, an eighth of a bulk import's writing)."""
        copy = object.__new__(Mention)
        for name in _MENTION_FIELDS:
            object.__setattr__(copy, name, getattr(self, name))
        object.__setattr__(copy, "tags", {**self.tags, **tags})
        return copy


_MENTION_FIELDS = tuple(f.name for f in fields(Mention))


#: A `BrandReply.to_author_id` meaning "everyone who spoke earlier in this thread" (a forum answer to a topic).
EVERYONE_IN_THREAD = "*"


@dataclass(frozen=True, slots=True)
class BrandReply:
    """A post by one of the brand's own accounts that answers a mention, wherever it was typed.

    ``in_reply_to`` is the platform id of the mention it answers; ``thread_id`` and ``to_author_id``
    let a brand post in the same conversation, addressed to the mention's author, count too;
    ``to_author_id = EVERYONE_IN_THREAD`` answers every earlier post in the thread.
    """

    platform: str
    platform_id: str
    source: str
    published_at: datetime
    author_handle: str
    in_reply_to: str = ""
    thread_id: str = ""
    to_author_id: str = ""
    text: str = ""
    url: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "published_at", utc(self.published_at))
        object.__setattr__(self, "text", clean_text(self.text))

    @property
    def key(self) -> str:
        return f"{self.platform}:{self.platform_id}"


@dataclass(frozen=True, slots=True)
class HourCount:
    """How many posts the platform itself counted for the source's query in one UTC hour (X's recent counts).

    It is history from before passaparola listened: the volume baseline needs it on the first day.
    ``hour`` is the hour's start, aware UTC.
    """

    hour: datetime
    count: int

    def __post_init__(self) -> None:
        hour = utc(self.hour)
        if (hour.minute, hour.second, hour.microsecond) != (0, 0, 0):
            raise ValueError(f"{hour.isoformat()} is not the start of an hour")
        if self.count < 0:
            raise ValueError(f"a count of posts cannot be negative ({self.count})")
        object.__setattr__(self, "hour", hour)


@dataclass(frozen=True, slots=True)
class Poll:
    """What one poll brought: new mentions, the brand's replies, and the cursor to store with them.

    ``cursor`` is opaque to everybody but the source; storage writes it in the same transaction as the
    mentions, so a crash can never advance it past unsaved data. ``details`` is what the source wants people
    to see in its health (reads this month, estimated cost, paused streams, budget exhausted). ``history`` is
    the platform's own hourly counts for the source's query, where it has them (X), for spike baselines.
    ``removed`` names stored mentions the platform deleted.
    """

    mentions: tuple[Mention, ...] = ()
    replies: tuple[BrandReply, ...] = ()
    cursor: Mapping[str, Any] | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    history: tuple[HourCount, ...] = ()
    #: Keys (``platform:platform_id``) of mentions the platform no longer has (a review its author deleted): kept
    #: for the record, closed if still open, never answered.
    removed: tuple[str, ...] = ()


class SourceError(Exception):
    """A poll failed. The message says what is wrong and what to do; it never holds a secret."""


class RateLimited(SourceError):
    """The platform asked us to wait: the source is paused until ``retry_at`` (aware UTC)."""

    def __init__(self, message: str, retry_at: datetime) -> None:
        super().__init__(message)
        self.retry_at = retry_at


class Source(Protocol):
    """A place the brand is talked about. ``poll`` must be bounded in time: it never sleeps."""

    kind: ClassVar[str]
    name: str

    def poll(self, cursor: Mapping[str, Any] | None, now: datetime) -> Poll: ...


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """How a source is doing, as stored: read by rules (source failing) and by `status`."""

    name: str
    kind: str
    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None
    consecutive_failures: int = 0
    last_error: str = ""
    next_retry_at: datetime | None = None
    mentions_total: int = 0
    details: Mapping[str, Any] = field(default_factory=dict)
    failures_total: int = 0  # every failed poll since the source was first seen (for /metrics)


State = Literal["new", "assigned", "answered", "ignored", "reopened"]
#: The states of a mention still waiting for an answer.
OPEN_STATES: tuple[str, ...] = ("new", "assigned", "reopened")


@dataclass(frozen=True, slots=True)
class Conversation:
    """A stored mention with its conversation state: what triage and alerts reason about.

    ``warn_at`` and ``due_at`` are the first-response (or, for a follow-up, next-response) deadlines in
    business time; ``acknowledged_at`` stops the escalation ladder.
    """

    mention: Mention
    state: State
    answered_at: datetime | None = None
    response_seconds: float | None = None
    assignee: str = ""
    state_reason: str = ""
    seen_at: datetime | None = None  # when passaparola first stored it
    priority: str = "normal"
    team: str = ""
    target_minutes: int | None = None
    warn_at: datetime | None = None
    due_at: datetime | None = None
    follows_key: str = ""  # the answered mention this one follows up (same author, same thread)
    answered_by: str = ""
    breach_handed_on: bool = False
    acknowledged_at: datetime | None = None
    acknowledged_by: str = ""

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES


# -- advocates: what storage hands the scorer, and what the scorer hands back ------------------------


@dataclass(frozen=True, slots=True)
class Said:
    """A positive or negative mention by a person, as the advocate score reads it."""

    key: str
    person_id: int
    platform: str
    handle: str
    reach: int
    published_at: datetime
    sentiment: str
    strength: float
    text: str
    url: str = ""
    topics: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Contribution:
    """One mention's part in a score: ``value`` is 0 with the reason in ``excluded`` when it does not count."""

    said: Said
    reach_factor: float
    decay: float
    value: float
    excluded: str = ""  # why it counts nothing, when it does not


@dataclass(frozen=True, slots=True)
class Score:
    """A person's advocate score: the sum of the contributions' values, and the tier it reaches."""

    person_id: int
    score: float
    tier: str
    contributions: tuple[Contribution, ...]
    praised: tuple[str, ...]  # topics of the counted positive mentions, most frequent first
    last_praise: Said | None
    exact: float = 0.0  # the sum of the unrounded terms: what ages in place (``exact * decay``), as every term does
    counted: int = 0  # how many contributions count (not excluded)


@dataclass(frozen=True, slots=True)
class Person:
    """Someone behind one or more authors (the same customer on X and Facebook): what offers and exports need."""

    id: int
    name: str
    handles: tuple[str, ...]
    channels: tuple[str, ...]  # most mentions first
    opted_out: bool = False
    last_offer_at: datetime | None = None
