"""Actions on one mention (assign, answered, ignore, correct the sentiment, acknowledge) and on several at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from listener.model import Conversation
from passaparola.actions.base import Actor, Refusal
from passaparola.config import Settings
from rules.sentiment import LABELS
from storage.store import Store

MENTION_ACTIONS = ("assign", "answered", "ignore", "sentiment", "ack")
BULK_ACTIONS = ("assign", "answered", "ignore")
#: The most mentions one bulk action touches (a page of the inbox).
BULK_LIMIT = 50
MAX_REASON = 200
#: How long someone who opened a mention, or checked a draft for it, counts as being on it.
PRESENCE = timedelta(minutes=5)


def assignable(settings: Settings, actor: Actor) -> list[str]:
    """The members ``actor`` may give a mention to: anyone for a supervisor, only themselves for an agent (the
    assign menus offer exactly these)."""
    members = [m.name for m in settings.triage.members]
    if actor.can("supervisor"):
        return members
    return [actor.member] if actor.member in members else []


@dataclass(frozen=True, slots=True)
class Bulk:
    """What a bulk action did: the keys done, and each refused key with the refusal's message."""

    done: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


class MentionActions:
    """The actions on mentions, against one store, with the configured members."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store

    # -- the rules every door shares --------------------------------------------------------------

    def known(self, key: str) -> Conversation:
        """The mention's conversation, or a 404 that says what keys look like."""
        found = self.store.conversation(key)
        if found is None:
            raise Refusal(404, f"no mention {key!r}; keys look like x:1234567890 (see the inbox or the triage queue)")
        return found

    def members(self) -> list[str]:
        return [m.name for m in self.settings.triage.members]

    def assignable(self, actor: Actor) -> list[str]:
        return assignable(self.settings, actor)

    def _member(self, actor: Actor, member: str) -> str:
        member = member.strip()
        known = self.members()
        if member not in known:
            raise Refusal(
                400, f"member={member!r} is not in [[triage.members]]; known: {', '.join(known) or 'none configured'}"
            )
        if member not in self.assignable(actor):
            raise Refusal(403, "agents assign mentions to themselves only; ask a supervisor")
        return member

    @staticmethod
    def _open(c: Conversation, doing: str) -> None:
        if not c.is_open:
            raise Refusal(409, f"{c.mention.key} is already {c.state}; only open mentions can be {doing}")

    # -- who else is on it ------------------------------------------------------------------------

    def present(self, actor: Actor, key: str, doing: str, now: datetime) -> None:
        """``actor`` opened the mention (viewing) or checked a draft for it (answering). API tokens are nobody."""
        if actor.via != "token":
            self.store.presence.mark(key, actor.signs, doing, now)

    def others(self, actor: Actor | None, keys: list[str], now: datetime) -> dict[str, list[dict[str, str]]]:
        """Per mention of ``keys``: who else has it open or is answering it (the collision notice)."""
        signs = actor.signs if actor is not None else ""
        found = self.store.presence.others(keys, signs, now - PRESENCE)
        return {
            key: [{"member": p.member, "doing": p.doing, "at": p.at.isoformat()} for p in people]
            for key, people in found.items()
        }

    # -- actions ---------------------------------------------------------------------------------

    def assign(self, actor: Actor, key: str, member: str, now: datetime) -> Conversation:
        c = self.known(key)
        member = self._member(actor, member)
        self._open(c, "assigned")
        self.store.conversations.assign([(key, member, f"assigned by {actor.name}", False)], now)
        return self.known(key)

    def answered(self, actor: Actor, key: str, now: datetime, at: datetime | None = None) -> Conversation:
        """Marked answered by ``actor`` (a reply made elsewhere: a phone call back, an e-mail), at ``at`` or now."""
        c = self.known(key)
        self._open(c, "marked answered")
        if at is not None and at > now:
            raise Refusal(400, f"--at {at.isoformat()} is in the future; give when the answer was made")
        return self.store.conversations.mark_answered(key, actor.signs, now, answered_at=at)

    def ignore(self, actor: Actor, key: str, reason: str, now: datetime) -> Conversation:
        reason = " ".join(reason.split())
        if not reason:
            raise Refusal(400, "say why it needs no answer: reason=spam, not about us...")
        c = self.known(key)
        self._open(c, "ignored")
        return self.store.conversations.mark_ignored(key, reason[:MAX_REASON], actor.signs, now)

    def correct(self, actor: Actor, key: str, label: str, now: datetime) -> Conversation:
        """A person's sentiment label: it wins over the model's and survives reanalysis."""
        if label not in LABELS:
            raise Refusal(400, f"label={label!r} is not one of {', '.join(LABELS)}")
        self.known(key)
        self.store.mentions.correct_sentiment(key, label, actor.signs, now)
        return self.known(key)

    def acknowledge(self, actor: Actor, key: str, now: datetime) -> Conversation:
        """Someone takes charge of a breach (``key``: the mention, or the key of an alert about it)."""
        mention_key = self.store.outbox.alert_mention(key) or key
        self.known(mention_key)
        return self.store.conversations.acknowledge(mention_key, actor.signs, now)

    def act(
        self, actor: Actor, key: str, action: str, now: datetime, member: str = "", reason: str = "", label: str = ""
    ) -> Conversation:
        """``action`` by its name, as the pages and the API post it."""
        if action == "assign":
            return self.assign(actor, key, member, now)
        if action == "answered":
            return self.answered(actor, key, now)
        if action == "ignore":
            return self.ignore(actor, key, reason, now)
        if action == "sentiment":
            return self.correct(actor, key, label, now)
        if action == "ack":
            return self.acknowledge(actor, key, now)
        raise Refusal(404, f"no action {action!r}; use one of {', '.join(MENTION_ACTIONS)}")

    def bulk(
        self, actor: Actor, keys: list[str], action: str, now: datetime, member: str = "", reason: str = ""
    ) -> Bulk:
        """The same action on several mentions; one refusal stops none of the others."""
        if action not in BULK_ACTIONS:
            raise Refusal(400, f"bulk action {action!r} is not offered; use one of {', '.join(BULK_ACTIONS)}")
        if not keys:
            raise Refusal(400, "select at least one mention")
        if len(keys) > BULK_LIMIT:
            raise Refusal(400, f"{len(keys)} mentions selected; one bulk action takes at most {BULK_LIMIT}")
        outcome = Bulk()
        for key in dict.fromkeys(keys):
            try:
                self.act(actor, key, action, now, member=member, reason=reason)
                outcome.done.append(key)
            except Refusal as refusal:
                outcome.refused.append((key, str(refusal)))
        return outcome
