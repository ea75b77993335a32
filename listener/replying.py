"""The seam for answering on a mention's own channel: a source that can reply says so, and how.

A source with a write API offers ``replier()``, returning a `Replier` (or None when it is configured without the
credentials a write needs: then the mention view offers "copy the reply and open the post"). Everything a replier
does is bounded in time and never sleeps; what went wrong comes back as a `ReplyError` whose ``code`` the action
layer turns into what the person at the draft should do.

Exactly once is shared between the replier and the reply outbox: before any retry of a send whose outcome is not
known (a timeout, a crash between the platform accepting the post and passaparola recording it), the outbox asks
``find`` for a reply of ours with the same text in the mention's thread, and records that instead of posting again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from listener.model import Mention, utc

#: Why a reply was refused, as the draft shows it. ``unknown`` is the one outcome that may have posted.
ReplyProblem = Literal[
    "expired_token",  # the credential is wrong, expired or revoked: renew the secret
    "permission",  # the credential lacks the write permission: grant it (the docs name it per platform)
    "deleted",  # the post to answer is gone or not visible: mark the mention ignored or answer elsewhere
    "rate_limited",  # the platform asked us to wait: retry after ``retry_at``
    "duplicate",  # the platform refuses the same text twice: change the wording
    "too_long",  # longer than the channel allows, counted as the platform counts it
    "budget",  # the monthly spend limit would be passed: raise it or answer on the platform
    "unavailable",  # the platform could not be reached or failed: passaparola retries (nothing was posted)
    "unknown",  # no answer came back: the post may exist; the thread is looked up before any retry
    "refused",  # anything else the platform said no to (its words are in the message)
]
#: Problems after which a later retry can succeed without anyone changing the draft.
TRANSIENT: frozenset[str] = frozenset({"rate_limited", "unavailable", "unknown"})


class ReplyError(Exception):
    """A reply was not posted (or, for ``unknown``, may have been). The message says what to do, never a secret."""

    def __init__(self, problem: ReplyProblem, message: str, retry_at: datetime | None = None) -> None:
        super().__init__(message)
        self.problem: ReplyProblem = problem
        self.retry_at = retry_at

    @property
    def transient(self) -> bool:
        return self.problem in TRANSIENT


@dataclass(frozen=True, slots=True)
class SentReply:
    """The platform's record of a reply we posted: its id, link, the text as posted, and when."""

    platform_id: str
    url: str
    text: str
    published_at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "published_at", utc(self.published_at))


@runtime_checkable
class Replier(Protocol):
    """How one source answers on its platform. ``channel`` is the platform name (``x``, ``facebook``)."""

    channel: str
    #: The brand account's handle or name, as the brand's reply is stored (the answer's author on the platform).
    account: str

    def check(self, text: str) -> str:
        """Why ``text`` cannot be posted as it is (too long as the platform counts), or "" when it can."""
        ...

    def cost_usd(self, text: str) -> float:
        """What posting ``text`` costs on a pay-per-use plan (0 where writes are free)."""
        ...

    def reply(self, mention: Mention, text: str, now: datetime) -> SentReply:
        """Post ``text`` as the brand's answer to ``mention``, in its thread. Raises `ReplyError`."""
        ...

    def find(self, mention: Mention, text: str, since: datetime, now: datetime) -> SentReply | None:
        """Our reply to ``mention`` with exactly ``text``, posted at or after ``since``, if the platform has it.

        Called before retrying a send whose outcome is unknown. Raises `ReplyError` when the lookup itself fails
        (then nothing is retried yet)."""
        ...
