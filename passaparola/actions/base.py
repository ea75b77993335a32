"""Who acts, and how an action says no."""

from __future__ import annotations

from dataclasses import dataclass

#: The roles, lowest first: each may do what the ones below it may.
RANK = {"agent": 0, "supervisor": 1, "admin": 2}


class Refusal(Exception):
    """An action that cannot be done as asked. ``status`` is its HTTP form (400 bad input, 401 nobody logged in,
    403 not allowed, 404 unknown, 409 the state forbids it, 429 too many tries); the message says what to do."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting: a person logged in to the dashboard, an API token, or the operator at the command line."""

    name: str
    role: str  # agent, supervisor or admin
    member: str  # their name in [[triage.members]] ("" for an API token)
    via: str  # "session", "token" or "cli"

    def can(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]

    @property
    def signs(self) -> str:
        """The name the audit trail keeps for what they do."""
        return self.member or self.name


def operator(by: str) -> Actor:
    """The person at the command line: they run the machine, so they hold every role; ``by`` is kept as who."""
    return Actor(by, "admin", by, "cli")
