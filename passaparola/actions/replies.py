"""Answering from passaparola: check a reply against the house rules, send it on the mention's own channel exactly
once, hold it for approval, and acknowledge mentions outside business hours. The CLI, the pages and the API all
answer through `ReplyActions`, so "may this be sent" has one definition.

Sending is an outbox: a reply is stored first (its idempotency key makes a double submit one row), then tried at
once; a try that gets no answer leaves it ``unknown``, and the next try looks the thread up for our reply before
posting again. The daemon's reply pass retries what is due, so a slow platform delays only its own replies.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from listener.model import Conversation, Mention
from listener.replying import Replier, ReplyError, SentReply
from passaparola.actions.base import Actor, Refusal
from passaparola.actions.mentions import MentionActions
from passaparola.config import Settings
from passaparola.links import safe_url
from rules.engagement import Finding, ReplyContext, lint_reply, out_of_hours_reply, spoken_wait, verdict
from rules.saved_replies import MissingValues, SavedReply, fill, first_name, search
from rules.triage import figures
from storage.replies import UNDER_WAY, Reply
from storage.store import Store

log = logging.getLogger(__name__)

MAX_REPLY_CHARS = 10_000
MAX_COMMENT = 500
#: A send whose attempt began this long ago and never finished is a crash in the middle: its outcome is unknown.
STALE_ATTEMPT = timedelta(minutes=2)
#: How long after an unanswered send the thread is looked up (platforms take a moment to list a new post).
LOOKUP_AFTER = timedelta(seconds=30)
#: When a transient failure gives no time, the next try.
RETRY_AFTER = timedelta(minutes=2)
#: Tries after which a reply still not posted goes back to a person (a platform down for hours, a lost answer).
MAX_ATTEMPTS = 10
#: Out-of-hours acknowledgements go only to mentions this fresh (never to a backlog heard late).
ACK_FRESH = timedelta(hours=2)
#: What the out-of-hours replies are signed as in the audit trail.
AUTOMATIC = "passaparola"

#: What a person at the draft should do, per platform problem (the platform's own words follow).
PROBLEM_ADVICE = {
    "expired_token": "the credentials were refused: renew the token (docs/answering.md says how); the draft is kept",
    "permission": "the channel's credentials may not post replies: grant the permission docs/answering.md names",
    "deleted": "the post to answer is gone or hidden: mark the mention ignored, or answer the author elsewhere",
    "rate_limited": "the platform asked us to wait: passaparola sends it again by itself",
    "duplicate": "the platform refuses the same text twice: change the wording and send again",
    "too_long": "shorten the reply and send again",
    "budget": "the monthly budget is spent: raise monthly_budget_usd, or post it yourself and mark it answered",
    "unavailable": "the platform could not be reached: passaparola sends it again by itself",
    "unknown": "no answer came back: passaparola looks the thread up before trying again, so it is never posted twice",
    "refused": "the platform refused it: change the reply, or post it yourself and mark it answered",
}


class ReplyBlocked(Refusal):
    """The house rules block the reply; ``findings`` says why. A supervisor may override with a reason."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        blocking = "; ".join(f.message for f in findings if f.level == "block")
        super().__init__(422, f"the house rules block this reply: {blocking}; fix it, or ask a supervisor to override")
        self.findings = list(findings)


def build_repliers(settings: Settings) -> dict[str, Replier]:
    """The sources that can answer on their platform, by source name (built once: each holds a client)."""
    found: dict[str, Replier] = {}
    for spec in settings.sources:
        make = getattr(spec.source, "replier", None)
        replier = make() if callable(make) else None
        if replier is not None:
            found[spec.name] = replier
    return found


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try at posting a reply, between claiming its row and recording the outcome: the only step that talks to
    the platform, so the web app runs it without holding the store."""

    reply: Reply
    mention: Mention
    replier: Replier
    unknown: bool  # the last try's outcome never came back: look the thread up before posting

    def run(self, now: datetime) -> SentReply | ReplyError:
        try:
            if self.unknown:
                since = self.reply.created_at - LOOKUP_AFTER
                if (found := self.replier.find(self.mention, self.reply.text, since, now)) is not None:
                    log.info(
                        "reply %s was already posted as %s: recorded, not posted again",
                        self.reply.id,
                        found.platform_id,
                    )
                    return found
            return self.replier.reply(self.mention, self.reply.text, now)
        except ReplyError as error:
            return error


@dataclass(frozen=True, slots=True)
class Checked:
    """A reply's text against the house rules and the channel's own limits."""

    findings: list[Finding]

    @property
    def verdict(self) -> str:
        return verdict(self.findings)

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "findings": [asdict(f) for f in self.findings]}


class ReplyActions:
    """The answering actions against one store, with the configured members and the repliers of the sources."""

    def __init__(self, settings: Settings, store: Store, repliers: Mapping[str, Replier] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.repliers = build_repliers(settings) if repliers is None else dict(repliers)
        self.mentions = MentionActions(settings, store)

    # -- what the composer shows -------------------------------------------------------------------

    def replier(self, c: Conversation) -> Replier | None:
        """How this mention can be answered on its own channel, or None (copy the reply and open the post)."""
        replier = self.repliers.get(c.mention.source)
        return replier if replier is not None and replier.channel == c.mention.platform else None

    def signature(self, member: str) -> str:
        return next((m.signature for m in self.settings.triage.members if m.name == member), "")

    def needs_approval(self, actor: Actor) -> bool:
        """Whether ``actor``'s replies wait for a supervisor (supervisors approve their own)."""
        if actor.can("supervisor"):
            return False
        return any(m.name == actor.member and m.needs_approval for m in self.settings.triage.members)

    def median_wait(self, channel: str, now: datetime) -> float | None:
        """The median first-response time on ``channel`` over the last day, else the last week: what we can promise."""
        for days in (1, 7):
            group = figures(self.store.conversations.between(now - timedelta(days=days), now), now).get("channel", {})
            if channel in group and group[channel].median_seconds is not None:
                return group[channel].median_seconds
        return None

    def values(self, actor: Actor, c: Conversation, now: datetime, reference: str = "") -> dict[str, str]:
        """The saved replies' variables for this mention and this agent."""
        language = str(c.mention.tags.get("language") or self.settings.analysis.languages[0])
        median = self.median_wait(c.mention.platform, now)
        author = c.mention.author
        return {
            "first_name": first_name(author.display_name, author.handle),
            "handle": author.handle,
            "signature": self.signature(actor.member),
            "median_wait": spoken_wait(median, language) if median is not None else "",
            "reference": reference.strip(),
        }

    def saved(self, c: Conversation, query: str = "") -> list[SavedReply]:
        """The saved replies for this mention, best first, filtered by ``query`` as the agent types."""
        language = str(c.mention.tags.get("language") or "")
        topics = [str(t) for t in c.mention.tags.get("topics") or []]
        return search(self.settings.engagement.saved, query, language, topics)

    def fill_saved(self, actor: Actor, key: str, name: str, now: datetime, reference: str = "") -> str:
        """The saved reply ``name`` (or the only one its words find) filled in for this mention; a 400 names what the
        agent still has to give."""
        c = self.mentions.known(key)
        saved = next((s for s in self.settings.engagement.saved if s.name == name), None)
        if saved is None:  # what was typed in the search box: one match is the one meant
            found = self.saved(c, name) if name.strip() else []
            if len(found) != 1:
                known = ", ".join(s.name for s in (found or self.settings.engagement.saved)) or "none configured"
                raise Refusal(404, f"no saved reply {name!r}; known: {known} ([[engagement.saved]])")
            saved = found[0]
        try:
            return fill(saved, self.values(actor, c, now, reference))
        except MissingValues as missing:
            asks = {
                "reference": "type the order or ticket number (reference)",
                "signature": "sign in as a member with a signature",
                "median_wait": "no median wait yet on this channel: pick another saved reply or write the wait",
            }
            raise Refusal(
                400, f"{name}: {'; '.join(asks.get(v, f'give {v}') for v in missing.missing)}, then fill it in again"
            ) from None

    def composer(self, actor: Actor, key: str, now: datetime, query: str = "") -> dict[str, Any]:
        """Everything the reply box shows: the channel can answer or not (and why), the saved replies, the draft
        left by a failed or rejected reply with what to do, and the replies on their way (every reply's audit is the
        mention's own, `service.mention`)."""
        c = self.mentions.known(key)
        replier = self.replier(c)
        replies = self.store.replies.for_mention(key)
        last = replies[-1] if replies else None
        draft = last if last is not None and last.state in ("failed", "rejected") else None
        return {
            "can_send": replier is not None,
            "channel": c.mention.platform,
            "manual_reason": "" if replier is not None else self._manual_reason(c),
            "needs_approval": self.needs_approval(actor),
            "saved": [
                {"name": s.name, "language": s.language, "topics": list(s.topics), "text": s.text, "preview": s.preview}
                for s in self.saved(c, query)
            ],
            "draft": draft.text if draft else "",
            "draft_problem": self._told(draft) if draft else "",
            "draft_back": reply_row(draft) if draft else None,
            "under_way": [reply_row(r) for r in replies if r.state in UNDER_WAY],
            "idempotency_key": new_idempotency_key(),
        }

    def _manual_reason(self, c: Conversation) -> str:
        spec = next((s for s in self.settings.sources if s.name == c.mention.source), None)
        if spec is not None and callable(getattr(spec.source, "replier", None)):
            return f"{c.mention.platform}: no write credentials configured for source {c.mention.source!r}"
        return f"{c.mention.platform} has no API to answer on"

    @staticmethod
    def _told(reply: Reply) -> str:
        if reply.state == "rejected":
            return f"rejected by {reply.approved_by}: {reply.reviewed_comment or 'no comment'}"
        return f"{reply.error} ({PROBLEM_ADVICE.get(reply.problem, '')})".strip()

    # -- the house rules -------------------------------------------------------------------------

    def check(self, actor: Actor, key: str, text: str, now: datetime | None = None) -> Checked:
        """``text`` against the house rules in the mention's context, signed by ``actor``, and against the
        channel's own limit counted as the platform counts (X counts links as 23 and emoji as 2). With ``now``,
        ``actor`` counts as answering the mention from then (the collision notice)."""
        if not text.strip():
            raise Refusal(400, "the draft is empty; write the reply first")
        c = self.mentions.known(key)
        if now is not None:
            self.mentions.present(actor, key, "answering", now)
        context = ReplyContext(
            channel=c.mention.platform,
            team=c.team,
            complaint=c.mention.tags.get("sentiment") == "negative",
            signature=self.signature(actor.member),
            handle=c.mention.author.handle,
            url=c.mention.url,
        )
        findings = lint_reply(text, context, self.settings.engagement)
        replier = self.replier(c)
        if replier is not None:  # the platform's count is the one that matters
            findings = [f for f in findings if f.code != "too_long"]
            if problem := replier.check(text.strip()):
                findings.insert(0, Finding("block", "too_long", problem))
        return Checked(findings)

    # -- sending ---------------------------------------------------------------------------------

    def send(
        self,
        actor: Actor,
        key: str,
        text: str,
        now: datetime,
        idempotency_key: str = "",
        override_reason: str = "",
    ) -> Reply:
        """Store ``text`` as the brand's reply to mention ``key``, ``queued`` to send (the caller then runs `attempt`,
        or `begin`/`finish`) or waiting for approval. A blocked reply is refused (`ReplyBlocked`) unless a supervisor
        overrides with a reason; the same ``idempotency_key`` twice is one reply."""

        def state(c: Conversation, text: str) -> str:
            replier = self.replier(c)
            if replier is None:
                raise Refusal(
                    409,
                    f"{self._manual_reason(c)}: copy the reply, post it on {c.mention.platform} yourself "
                    f"({c.mention.url or 'the original post'}), then record it with action copied",
                )
            self._budget(c, replier, text, now)
            return "pending_approval" if self.needs_approval(actor) else "queued"

        return self._write(actor, key, text, now, idempotency_key, override_reason, state)

    def copied(
        self,
        actor: Actor,
        key: str,
        text: str,
        now: datetime,
        idempotency_key: str = "",
        override_reason: str = "",
    ) -> Reply:
        """A channel with no write API: the agent copied the reply and posted it themselves; the mention is answered
        by them, and the text kept for the audit. The house rules apply as to any reply."""
        reply = self._write(actor, key, text, now, idempotency_key, override_reason, lambda c, text: "copied")
        c = self.mentions.known(key)
        if reply.state == "copied" and c.is_open:
            self.store.conversations.mark_answered(key, reply.written_by, now, detail="reply copied and posted by hand")
        return reply

    def _write(
        self,
        actor: Actor,
        key: str,
        text: str,
        now: datetime,
        idempotency_key: str,
        override_reason: str,
        state: Callable[[Conversation, str], str],
    ) -> Reply:
        """The one way a reply is stored: signed by a member, within the size kept, checked by the house rules (a
        supervisor's override kept with it), in the ``state`` the caller gives (which may refuse)."""
        if idempotency_key and (done := self.store.replies.by_idempotency(idempotency_key)) is not None:
            return done
        member = self._signer(actor)
        text = text.strip()
        if len(text) > MAX_REPLY_CHARS:
            raise Refusal(413, f"the reply is {len(text)} characters; passaparola keeps at most {MAX_REPLY_CHARS}")
        c = self.mentions.known(key)
        checked = self.check(actor, key, text, now)
        override_by = self._override(actor, checked, override_reason)
        reply, _ = self.store.replies.create(
            idempotency_key or new_idempotency_key(),
            c.mention,
            text,
            state(c, text),
            member,
            now,
            findings=[asdict(f) for f in checked.findings if f.level != "info"],
            override_by=override_by,
            override_reason=" ".join(override_reason.split())[:MAX_COMMENT] if override_by else "",
        )
        return reply

    def review(
        self,
        actor: Actor,
        reply_id: int,
        approve: bool,
        now: datetime,
        text: str = "",
        comment: str = "",
        override_reason: str = "",
    ) -> Reply:
        """A supervisor approves (possibly editing the text: the edit is checked again) or rejects (with a comment
        the author sees on their draft) a reply waiting for approval; an approved reply is ``queued`` to send."""
        if not actor.can("supervisor"):
            raise Refusal(403, "only a supervisor approves or rejects replies")
        reply = self.store.replies.get(reply_id)
        if reply is None:
            raise Refusal(404, f"no reply {reply_id}; see the approval queue")
        if reply.state != "pending_approval":
            raise Refusal(409, f"reply {reply_id} is {reply.state.replace('_', ' ')}, not waiting for approval")
        comment = " ".join(comment.split())[:MAX_COMMENT]
        final = (text or reply.text).strip()
        override_by = ""
        if approve:
            author = Actor(reply.written_by, "agent", reply.written_by, "session")
            override_by = self._override(actor, self.check(author, reply.key, final), override_reason)
            c = self.mentions.known(reply.key)
            replier = self.replier(c)
            if replier is not None:
                self._budget(c, replier, final, now)
        elif not comment:
            raise Refusal(400, "say why it is rejected: the comment is what the author sees on their draft")
        reason = " ".join(override_reason.split())[:MAX_COMMENT] if override_by else ""
        reviewed = self.store.replies.review(reply_id, actor.signs, approve, final, comment, now, override_by, reason)
        if reviewed is None:
            raise Refusal(409, f"reply {reply_id} was reviewed by someone else meanwhile")
        return reviewed

    def approvals(self, now: datetime) -> list[dict[str, Any]]:
        """The approval queue as the cockpit shows it: each reply with its mention's SLA (the clock keeps running)."""
        waiting = self.store.replies.awaiting_approval()
        rows = []
        for reply in waiting:
            c = self.store.conversation(reply.key)
            row = reply_row(reply)
            row["due_at"] = c.due_at.isoformat() if c and c.due_at else None
            row["overdue"] = bool(c and c.due_at and c.due_at <= now)
            row["mention_text"] = c.mention.text if c else ""
            row["author"] = c.mention.author.shown if c else ""
            rows.append(row)
        return rows

    # -- the outbox ------------------------------------------------------------------------------

    def begin(self, reply_id: int, now: datetime) -> Attempt | Reply | None:
        """Take a due reply for one try: the `Attempt` to run (with no lock held: it talks to the platform), or the
        reply itself when it cannot be tried any more, or None when it is not due or another sender holds it."""
        claimed = self.store.replies.claim(reply_id, now, now - STALE_ATTEMPT)
        if claimed is None:
            return None
        reply, unknown = claimed
        c = self.store.conversation(reply.key)
        replier = self.repliers.get(reply.source)
        if c is None or replier is None:
            gone = f"source {reply.source!r} can no longer answer (removed, or its write credentials were taken away)"
            return self.store.replies.record_problem(reply, "failed", "refused", gone, now)
        return Attempt(reply, c.mention, replier, unknown)

    def finish(self, attempt: Attempt, outcome: SentReply | ReplyError, now: datetime) -> Reply:
        """Record what the platform said: the reply as the brand's answer, or the problem and the next try."""
        if isinstance(outcome, ReplyError):
            return self._problem(attempt.reply, outcome, now, attempt.unknown)
        return self.store.replies.record_sent(
            attempt.reply,
            outcome,
            attempt.mention,
            attempt.replier.account,
            attempt.replier.cost_usd(attempt.reply.text),
            now,
            holding=attempt.reply.kind == "out_of_hours",
        )

    def attempt(self, reply_id: int, now: datetime) -> Reply | None:
        """`begin`, run and `finish` in one go: for the command line and the daemon, which hold no shared lock."""
        started = self.begin(reply_id, now)
        if not isinstance(started, Attempt):
            return started
        return self.finish(started, started.run(now), now)

    def _problem(self, reply: Reply, error: ReplyError, now: datetime, unknown: bool) -> Reply:
        """Record a try that did not post, or may have (``unknown``: the thread is looked up before the next one).
        A try that began unknown stays unknown on a transient failure: its lookup has not said "not there" yet."""
        log.warning("reply %s on %s not posted: %s (%s)", reply.id, reply.channel, error.problem, error)
        if error.transient and reply.attempts >= MAX_ATTEMPTS:
            gave_up = f"{error} (gave up after {reply.attempts} tries: check the thread on {reply.channel} first)"
            return self.store.replies.record_problem(reply, "failed", error.problem, gave_up, now)
        if error.problem == "unknown" or (unknown and error.transient):
            retry = max(error.retry_at or now, now + LOOKUP_AFTER)
            return self.store.replies.record_problem(reply, "unknown", error.problem, str(error), now, retry)
        if error.transient:
            retry = error.retry_at or now + RETRY_AFTER
            return self.store.replies.record_problem(reply, "queued", error.problem, str(error), now, retry)
        return self.store.replies.record_problem(reply, "failed", error.problem, str(error), now)

    def deliver_due(self, now: datetime, limit: int = 50) -> int:
        """The daemon's reply pass: every due reply gets one try. Returns how many were posted."""
        posted = 0
        for reply in self.store.replies.due(now, now - STALE_ATTEMPT, limit):
            done = self.attempt(reply.id, now)
            posted += done is not None and done.state == "sent"
        return posted

    # -- out of hours ----------------------------------------------------------------------------

    def acknowledge_out_of_hours(self, now: datetime) -> int:
        """Outside business hours, an honest holding reply to each fresh mention needing an answer, on the channels
        that asked for one: at most one per author a day, checked by the house rules, recorded. Returns how many."""
        rules = self.settings.engagement
        hours = self.settings.triage.business
        if not rules.out_of_hours or hours.is_open(now):
            return 0
        back = hours.add(now, timedelta(seconds=1))
        sent = 0
        for c in self.store.conversations.open_between(now, now - ACK_FRESH):
            if c.mention.platform not in rules.out_of_hours or not c.mention.tags.get("needs_answer"):
                continue
            replier = self.replier(c)
            author = c.mention.author
            if replier is None or self.store.replies.for_mention(c.mention.key):
                continue
            if self.store.replies.acknowledged_since(author.key, now - timedelta(days=1)):
                continue
            language = str(c.mention.tags.get("language") or self.settings.analysis.languages[0])
            zone = hours.zone
            text = out_of_hours_reply(
                first_name(author.display_name, author.handle),
                language,
                back.astimezone(zone),
                now.astimezone(zone),
                rules,
            )
            context = ReplyContext(
                channel=c.mention.platform,
                complaint=c.mention.tags.get("sentiment") == "negative",
                signature=rules.out_of_hours_signature,
            )
            findings = lint_reply(text, context, rules)
            if replier.check(text):
                findings.insert(0, Finding("block", "too_long", replier.check(text)))
            blocked = verdict(findings) == "block"
            reply, _ = self.store.replies.create(
                f"out-of-hours:{c.mention.key}",
                c.mention,
                text,
                "failed" if blocked else "queued",
                AUTOMATIC,
                now,
                findings=[asdict(f) for f in findings if f.level != "info"],
                kind="out_of_hours",
            )
            if blocked:
                log.warning(
                    "out-of-hours reply to %s blocked by the house rules; fix engagement.out_of_hours_text",
                    c.mention.key,
                )
                continue
            done = self.attempt(reply.id, now)
            sent += done is not None and done.state == "sent"
        return sent

    # -- the rules every reply shares --------------------------------------------------------------

    def _signer(self, actor: Actor) -> str:
        if not actor.member or actor.member not in self.mentions.members():
            raise Refusal(
                403, "a reply is signed by a member: log in as one of [[triage.members]] (API tokens cannot sign)"
            )
        return actor.member

    @staticmethod
    def _override(actor: Actor, checked: Checked, reason: str) -> str:
        """Who overrides a blocked reply ("" when nothing blocks); only a supervisor, and only with a reason."""
        if checked.verdict != "block":
            return ""
        if not reason.strip():
            raise ReplyBlocked(checked.findings)
        if not actor.can("supervisor"):
            raise Refusal(403, "only a supervisor can override the house rules; fix the reply or ask one")
        return actor.signs

    def _budget(self, c: Conversation, replier: Replier, text: str, now: datetime) -> None:
        """Refuse a write the source's monthly budget cannot pay for (reads and writes together), or its platform's
        quota (a replier that counts units, as YouTube's does, says why through ``quota_problem``)."""
        quota = getattr(replier, "quota_problem", None)
        if callable(quota) and (problem := quota(self.store.cursor(c.mention.source), text, now)):
            raise Refusal(409, problem)
        cost = replier.cost_usd(text)
        spec = next((s for s in self.settings.sources if s.name == c.mention.source), None)
        limit = float(getattr(spec.source, "monthly_budget_usd", 0) or 0) if spec else 0.0
        if not cost or not limit:
            return
        month = now.astimezone(UTC).strftime("%Y-%m")
        budget = dict((self.store.cursor(c.mention.source) or {}).get("budget") or {})
        reads = float(budget.get("cost_usd", 0) or 0) if budget.get("month") == month else 0.0
        start = datetime.fromisoformat(f"{month}-01T00:00:00+00:00")
        writes = self.store.replies.spent_usd(c.mention.source, start)
        if reads + writes + cost > limit:
            raise Refusal(
                409,
                f"{c.mention.platform} budget: ${reads + writes:.2f} of ${limit:.2f} spent this month (reads "
                f"${reads:.2f}, replies ${writes:.2f}) and this reply costs ${cost:.3f}"
                f"{' (it has a link)' if cost >= 0.1 else ''}: raise monthly_budget_usd of source "
                f"{c.mention.source!r}, or post it yourself and mark the mention answered",
            )


def new_idempotency_key() -> str:
    """A fresh key for one reply: the composer carries it, so a double submit is one reply."""
    return secrets.token_urlsafe(16)


def reply_row(reply: Reply) -> dict[str, Any]:
    """A reply as pages and the API show it: the audit (who wrote, approved or overrode, what was sent, when,
    the platform's id and link) and, for a problem, what to do."""
    return {
        "id": reply.id,
        "key": reply.key,
        "kind": reply.kind,
        "state": reply.state,
        "text": reply.text,
        "channel": reply.channel,
        "written_by": reply.written_by,
        "approved_by": reply.approved_by,
        "approved_at": reply.approved_at.isoformat() if reply.approved_at else None,
        "reviewed_comment": reply.reviewed_comment,
        "override_by": reply.override_by,
        "override_reason": reply.override_reason,
        "findings": [dict(f) for f in reply.findings],
        "attempts": reply.attempts,
        "problem": reply.problem,
        "error": reply.error,
        "advice": PROBLEM_ADVICE.get(reply.problem, "") if reply.state != "sent" else "",
        "next_attempt_at": reply.next_attempt_at.isoformat()
        if reply.next_attempt_at and reply.state in ("queued", "unknown")
        else None,
        "platform_id": reply.platform_id,
        "url": safe_url(reply.url),
        "cost_usd": reply.cost_usd,
        "sent_at": reply.sent_at.isoformat() if reply.sent_at else None,
        "created_at": reply.created_at.isoformat(),
    }
