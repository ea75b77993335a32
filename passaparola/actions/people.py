"""Actions on people (the persons behind authors): link and unlink accounts, offers opt-out, erasure."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from passaparola.actions.base import Actor, Refusal
from storage.people import PeopleError
from storage.store import Store

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Erasure:
    person_id: int
    accounts: tuple[str, ...]
    removed: dict[str, int]  # rows removed per table


class PeopleActions:
    """Link, unlink, opt out and erase; linking needs a supervisor, erasing an admin."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def _allowed(actor: Actor, role: str, doing: str) -> None:
        if not actor.can(role):
            raise Refusal(403, f"{actor.name} is {actor.role}; {doing} needs {role} or above")

    @staticmethod
    def _people(work: Callable[[], T]) -> T:
        """The people store's own errors (unknown person, author or offer) as refusals."""
        try:
            return work()
        except PeopleError as error:
            raise Refusal(404 if str(error).startswith("no ") else 400, str(error)) from None

    def resolve(self, ref: str) -> int:
        """A person id from ``12``, an author key ``x:2000035`` or a handle ``@martaespresso``."""
        return self._people(lambda: self.store.people.resolve(ref))

    def link(self, actor: Actor, person: str, author: str, now: datetime) -> int:
        """Make ``author`` one of ``person``'s accounts; returns the person's id."""
        self._allowed(actor, "supervisor", "linking accounts")
        person_id = self.resolve(person)
        self._people(lambda: self.store.people.link(person_id, author, actor.signs, now))
        return person_id

    def unlink(self, actor: Actor, author: str, now: datetime) -> int:
        """Give ``author`` a person of their own again; returns that person's id."""
        self._allowed(actor, "supervisor", "unlinking accounts")
        return self._people(lambda: self.store.people.unlink(author, actor.signs, now))

    def opt_out(self, actor: Actor, person: str, out: bool, now: datetime) -> int:
        self._allowed(actor, "supervisor", "changing offer consent")
        person_id = self.resolve(person)
        self.store.people.opt_out(person_id, out, now)
        return person_id

    def erasure(self, actor: Actor, person: str, now: datetime) -> tuple[int, tuple[str, ...]]:
        """Who an erasure of ``person`` would remove, to confirm before doing it: (id, their accounts)."""
        self._allowed(actor, "admin", "erasing a person")
        self.store.people.sync(now)
        person_id = self.resolve(person)
        return person_id, tuple(a.key for a in self.store.people.authors(person_id))

    def erase(self, actor: Actor, person: str, now: datetime) -> Erasure:
        """Remove the person and every account of theirs everywhere; they are never ingested again."""
        person_id, accounts = self.erasure(actor, person, now)
        removed = self._people(lambda: self.store.people.erase(person_id, now))
        return Erasure(person_id, accounts, removed)
