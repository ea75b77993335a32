"""People, advocate scores, offers, testimonial agreement and erasure: the SQL of the advocates capability.

An author is one account on one platform; a person groups authors (the same customer on X, Facebook and the
forum). Every author gets a person of their own when first scored; people link them by hand, helped by
suggestions where handles match. `People` shares the store's connection (``store.people``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlite_utils import Database

from listener.model import Person, Said, Score
from storage.times import iso
from storage.writes import writing

_HANDLE_NOISE = re.compile(r"[._\-\s]")


class PeopleError(ValueError):
    """An unknown person, author or offer, or a move that makes no sense; the message says what to do."""


def suppression_hash(author_key: str) -> str:
    """What an erased author leaves behind: enough to refuse them again, not enough to read who they were."""
    return hashlib.sha256(f"passaparola-erased:{author_key}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class AuthorRow:
    key: str
    platform: str
    handle: str
    display_name: str
    reach: int


@dataclass(frozen=True, slots=True)
class LinkSuggestion:
    handle: str
    people: tuple[int, ...]
    authors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class OfferRow:
    id: int
    person_id: int
    offer: str
    text: str
    sent_at: datetime
    sent_by: str
    used_at: datetime | None


@dataclass(frozen=True, slots=True)
class Leader:
    """A scored person as the leaderboard and the exports show them."""

    person: Person
    score: float
    tier: str
    counted: int
    praised: tuple[str, ...]
    last_praise_at: datetime | None
    last_praise: str


class People:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- people and their authors ------------------------------------------------------------------

    def sync(self, at: datetime) -> int:
        """Give every author without a person a person of their own; returns how many were made."""
        rows = self.db.execute(
            "SELECT a.key, COALESCE(NULLIF(a.display_name, ''), a.handle) FROM authors a "
            "LEFT JOIN person_authors pa ON pa.author_key = a.key WHERE pa.author_key IS NULL ORDER BY a.key"
        ).fetchall()
        now = iso(at)
        with writing(self.db):
            for author_key, name in rows:
                person_id = self.db.table("people").insert({"name": name, "created_at": now}).last_pk
                self.db.table("person_authors").insert(
                    {"author_key": author_key, "person_id": person_id, "linked_by": "auto", "linked_at": now}
                )
        return len(rows)

    def resolve(self, ref: str) -> int:
        """A person id from ``12``, an author key ``x:2000035`` or a handle ``@martaespresso``."""
        ref = ref.strip()
        if ref.lstrip("#").isdigit():
            person_id = int(ref.lstrip("#"))
            if self.db.execute("SELECT 1 FROM people WHERE id = ?", [person_id]).fetchone() is None:
                raise PeopleError(f"no person {person_id}; see `passaparola advocates list` for ids")
            return person_id
        if ":" in ref and not ref.startswith("@"):
            row = self.db.execute("SELECT person_id FROM person_authors WHERE author_key = ?", [ref]).fetchone()
            if row is None:
                raise PeopleError(f"no author {ref!r}; author keys look like x:2000035 (platform:id)")
            return int(row[0])
        handle = ref.lstrip("@").lower()
        rows = self.db.execute(
            "SELECT DISTINCT pa.person_id, a.key FROM authors a JOIN person_authors pa ON pa.author_key = a.key "
            "WHERE lower(a.handle) = ?",
            [handle],
        ).fetchall()
        people = sorted({row[0] for row in rows})
        if not people:
            raise PeopleError(f"no author with the handle @{handle}; give a person id or an author key instead")
        if len(people) > 1:
            listed = ", ".join(f"{key} (person {pid})" for pid, key in rows)
            raise PeopleError(f"@{handle} is more than one person ({listed}); give the person id or author key")
        return people[0]

    def authors(self, person_id: int) -> list[AuthorRow]:
        rows = self.db.execute(
            "SELECT a.key, a.platform, a.handle, a.display_name, a.reach FROM person_authors pa "
            "JOIN authors a ON a.key = pa.author_key WHERE pa.person_id = ? ORDER BY a.platform, a.key",
            [person_id],
        ).fetchall()
        return [AuthorRow(*row) for row in rows]

    def person(self, person_id: int) -> Person:
        return self.persons([person_id])[person_id]

    def persons(self, ids: Iterable[int]) -> dict[int, Person]:
        """People with their handles and channels (most mentions first) and their last offer."""
        ids = sorted(set(ids))
        found: dict[int, Person] = {}
        param = json.dumps(ids)
        heads = self.db.execute(
            "SELECT p.id, p.name, p.opted_out, (SELECT max(sent_at) FROM offers o WHERE o.person_id = p.id) "
            "FROM people p WHERE p.id IN (SELECT value FROM json_each(?))",
            [param],
        ).fetchall()
        accounts: dict[int, list[tuple[str, str, int]]] = defaultdict(list)
        for person_id, platform, handle, said in self.db.execute(
            "SELECT pa.person_id, a.platform, a.handle, "
            "(SELECT count(*) FROM mentions m WHERE m.author_key = a.key) AS said FROM person_authors pa "
            "JOIN authors a ON a.key = pa.author_key WHERE pa.person_id IN (SELECT value FROM json_each(?))",
            [param],
        ).fetchall():
            accounts[person_id].append((platform, handle, said))
        for person_id, name, opted_out, last_offer in heads:
            mine = sorted(accounts[person_id], key=lambda a: (-a[2], a[0], a[1]))
            channels: Counter[str] = Counter()
            for platform, _, said in mine:
                channels[platform] += said
            found[person_id] = Person(
                id=person_id,
                name=name or "",
                handles=tuple(dict.fromkeys(h for _, h, _ in mine)),
                channels=tuple(c for c, _ in sorted(channels.items(), key=lambda c: (-c[1], c[0]))),
                opted_out=bool(opted_out),
                last_offer_at=datetime.fromisoformat(last_offer) if last_offer else None,
            )
        return found

    def link(self, person_id: int, author_key: str, by: str, at: datetime) -> int:
        """Move an author to a person. A person left without authors is merged in (offers kept); returns their id."""
        row = self.db.execute("SELECT person_id FROM person_authors WHERE author_key = ?", [author_key]).fetchone()
        if row is None:
            raise PeopleError(f"no author {author_key!r}; author keys look like x:2000035 (platform:id)")
        self.resolve(str(person_id))
        old = int(row[0])
        if old == person_id:
            raise PeopleError(f"{author_key} is already person {person_id}")
        with writing(self.db):
            self.db.execute(
                "UPDATE person_authors SET person_id = ?, linked_by = ?, linked_at = ? WHERE author_key = ?",
                [person_id, by, iso(at), author_key],
            )
            left = self.db.execute("SELECT count(*) FROM person_authors WHERE person_id = ?", [old]).fetchone()[0]
            if not left:
                self.db.execute("UPDATE offers SET person_id = ? WHERE person_id = ?", [person_id, old])
                opted = self.db.execute("SELECT opted_out, opted_out_at FROM people WHERE id = ?", [old]).fetchone()
                if opted[0]:  # whoever opted out on any account stays out
                    self.db.execute(
                        "UPDATE people SET opted_out = 1, opted_out_at = ? WHERE id = ?", [opted[1], person_id]
                    )
                self.db.execute("DELETE FROM advocate_scores WHERE person_id = ?", [old])
                self.db.execute("DELETE FROM people WHERE id = ?", [old])
        return old

    def unlink(self, author_key: str, by: str, at: datetime) -> int:
        """Give an author a person of their own again; returns the new person id."""
        row = self.db.execute(
            "SELECT pa.person_id, COALESCE(NULLIF(a.display_name, ''), a.handle) FROM person_authors pa "
            "JOIN authors a ON a.key = pa.author_key WHERE pa.author_key = ?",
            [author_key],
        ).fetchone()
        if row is None:
            raise PeopleError(f"no author {author_key!r}; author keys look like x:2000035 (platform:id)")
        if len(self.authors(row[0])) == 1:
            raise PeopleError(f"{author_key} is the only author of person {row[0]}; nothing to unlink")
        with writing(self.db):
            person_id = self.db.table("people").insert({"name": row[1], "created_at": iso(at)}).last_pk
            self.db.execute(
                "UPDATE person_authors SET person_id = ?, linked_by = ?, linked_at = ? WHERE author_key = ?",
                [person_id, by, iso(at), author_key],
            )
        return int(str(person_id))

    def suggestions(self) -> list[LinkSuggestion]:
        """Authors on different platforms whose handles match (ignoring case, dots, dashes, underscores)."""
        groups: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
        for key, platform, handle, person_id in self.db.execute(
            "SELECT a.key, a.platform, a.handle, pa.person_id FROM authors a "
            "JOIN person_authors pa ON pa.author_key = a.key"
        ).fetchall():
            groups[_HANDLE_NOISE.sub("", handle.lower())].append((key, platform, person_id))
        found = []
        for handle, accounts in sorted(groups.items()):
            people = tuple(sorted({pid for _, _, pid in accounts}))
            if len(people) > 1 and len({platform for _, platform, _ in accounts}) > 1:
                found.append(LinkSuggestion(handle, people, tuple(sorted(k for k, _, _ in accounts))))
        return found

    def opt_out(self, person_id: int, out: bool, at: datetime) -> None:
        with writing(self.db):
            self.db.execute(
                "UPDATE people SET opted_out = ?, opted_out_at = ? WHERE id = ?",
                [int(out), iso(at) if out else None, person_id],
            )

    # -- scores ------------------------------------------------------------------------------------

    _SAID = """
            SELECT m.key, pa.person_id, m.platform, a.handle, a.reach, m.published_at,
                   COALESCE(sc.label, t.sentiment) AS label,
                   CASE WHEN sc.label IS NOT NULL OR COALESCE(t.sentiment_probs, '') = '' THEN 1.0
                        ELSE COALESCE(json_extract(t.sentiment_probs, '$.' || t.sentiment), 1.0) END AS strength,
                   m.text, m.url, t.topics
            FROM mentions m
            JOIN person_authors pa ON pa.author_key = m.author_key
            JOIN authors a ON a.key = m.author_key
            LEFT JOIN mention_tags t ON t.key = m.key
            LEFT JOIN sentiment_corrections sc ON sc.key = m.key
            WHERE m.published_at > ? AND COALESCE(sc.label, t.sentiment) IN ('positive', 'negative')
            """

    def said(self, since: datetime, person_id: int | None = None) -> list[Said]:
        """Every positive or negative mention since ``since`` by someone with a person, as the scorer reads it."""
        where = "AND pa.person_id = ?" if person_id is not None else ""
        rows = self.db.execute(
            f"{self._SAID} {where}", [iso(since), *([person_id] if person_id is not None else [])]
        ).fetchall()
        return [self._said(row) for row in rows]

    def said_by_person(
        self, since: datetime, people: Collection[int] | None = None, batch: int = 2000
    ) -> Iterator[tuple[int, list[Said]]]:
        """What `said` returns, one person at a time (by person id), for everyone or for ``people`` alone: a scorer
        holds one person's mentions in memory, not the whole window's. (Grouping the window's rows here instead of
        sorting them in SQL is a little faster and holds them all: over 250 MB more at a million mentions.)"""
        if people is not None and not people:
            return
        where, params = ("", []) if people is None else ("AND pa.person_id IN (SELECT value FROM json_each(?))", [
            json.dumps(sorted(people))
        ])  # fmt: skip
        cursor = self.db.execute(f"{self._SAID} {where} ORDER BY pa.person_id", [iso(since), *params])
        current: int | None = None
        group: list[Said] = []
        while rows := cursor.fetchmany(batch):
            for row in rows:
                said = self._said(row)
                if said.person_id != current:
                    if current is not None:
                        yield current, group
                    current, group = said.person_id, []
                group.append(said)
        if current is not None:
            yield current, group

    @staticmethod
    def _said(row: Sequence[Any]) -> Said:
        key, pid, platform, handle, reach, published, label, strength, text, url, topics = row
        return Said(
            key=key,
            person_id=pid,
            platform=platform,
            handle=handle,
            reach=reach or 0,
            published_at=datetime.fromisoformat(published),
            sentiment=label,
            strength=round(float(strength), 4),  # the model's probability of its label, 1.0 when a person set it
            text=text,
            url=url or "",
            topics=tuple(json.loads(topics)) if topics else (),
        )

    def claim_changed(self, settings_key: str, since: datetime, now: datetime) -> set[int] | None:
        """The people this cycle must re-score: those a write marked (`advocate_dirty`, filled by triggers) and those
        with a mention that has left the window since the last cycle; ``None`` for everyone (no cycle yet, other
        settings, or a clock behind the last cycle's). The marks are claimed, and cleared by `save_scores`; a mark
        made after this keeps its person for the next cycle."""
        with writing(self.db):
            self.db.execute("UPDATE advocate_dirty SET claimed = 1 WHERE claimed = 0")
            last = self.db.execute("SELECT scored_at, window_since, settings FROM advocate_runs").fetchone()
            marked = {row[0] for row in self.db.execute("SELECT person_id FROM advocate_dirty")}
        if last is None or last[2] != settings_key:
            return None
        scored_at, window_since = datetime.fromisoformat(last[0]), datetime.fromisoformat(last[1])
        if scored_at > now or window_since > since:
            return None
        left = self.db.execute(
            "SELECT DISTINCT pa.person_id FROM mentions m JOIN person_authors pa ON pa.author_key = m.author_key "
            "WHERE m.published_at > ? AND m.published_at <= ?",
            [iso(window_since), iso(since)],
        )
        return marked | {row[0] for row in left.fetchall()}

    def save_scores(
        self,
        scores: Sequence[Score],
        at: datetime,
        rescored: Collection[int] | None,
        settings_key: str,
        since: datetime,
    ) -> list[int]:
        """Store the scores of the people re-scored (``rescored``; ``None``: everyone, replacing every score), clear
        the marks `claim_changed` claimed and note the cycle; returns the people who have just become VIP."""
        now = iso(at)
        with writing(self.db):
            if rescored is None:
                before = dict(self.db.execute("SELECT person_id, tier FROM advocate_scores").fetchall())
                self.db.execute("DELETE FROM advocate_scores")
            else:
                ids = json.dumps(sorted(rescored))
                before = dict(
                    self.db.execute(
                        "SELECT person_id, tier FROM advocate_scores "
                        "WHERE person_id IN (SELECT value FROM json_each(?))",
                        [ids],
                    ).fetchall()
                )
                self.db.execute(
                    "DELETE FROM advocate_scores WHERE person_id IN (SELECT value FROM json_each(?))", [ids]
                )
            self.db.execute("DELETE FROM advocate_dirty WHERE claimed = 1")
            self.db.execute(
                "INSERT INTO advocate_runs (id, scored_at, window_since, settings) VALUES (1, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET scored_at = excluded.scored_at, window_since = excluded.window_since, "
                "settings = excluded.settings",
                [now, iso(since), settings_key],
            )
            self.db.table("advocate_scores").insert_all(
                (
                    {
                        "person_id": s.person_id,
                        "score": s.score,
                        "tier": s.tier,
                        "counted": s.counted,
                        "praised": json.dumps(list(s.praised), ensure_ascii=False),
                        "last_praise_key": s.last_praise.key if s.last_praise else None,
                        "last_praise_at": iso(s.last_praise.published_at) if s.last_praise else None,
                        "computed_at": now,
                        "exact": s.exact,
                    }
                    for s in scores
                ),
                pk="person_id",
                batch_size=500,
            )
        return [s.person_id for s in scores if s.tier == "vip" and before.get(s.person_id) != "vip"]

    def stale_scores(self, computed_before: datetime, limit: int) -> list[tuple[int, float, datetime]]:
        """(person, unrounded score, when computed) of the scores computed longest ago, before ``computed_before``:
        the ones `age_scores` brings up to date next."""
        rows = self.db.execute(
            "SELECT person_id, COALESCE(exact, score), computed_at FROM advocate_scores WHERE computed_at < ? "
            "ORDER BY computed_at LIMIT ?",
            [iso(computed_before), limit],
        ).fetchall()
        return [(pid, exact, datetime.fromisoformat(at)) for pid, exact, at in rows]

    def age_scores(self, aged: Iterable[tuple[int, float, float, str]], at: datetime) -> None:
        """Store (person, unrounded score, score, tier) as of ``at`` for people with nothing new: their score only
        decayed."""
        with writing(self.db):
            self.db.conn.executemany(
                "UPDATE advocate_scores SET exact = ?, score = ?, tier = ?, computed_at = ? WHERE person_id = ?",
                [(exact, score, tier, iso(at), pid) for pid, exact, score, tier in aged],
            )

    def tiered_authors(self, tiers: Sequence[str]) -> dict[str, str]:
        """Author key -> tier, for the accounts of people in these tiers (VIP priority, VIP negative alerts)."""
        rows = self.db.execute(
            "SELECT pa.author_key, s.tier FROM advocate_scores s JOIN person_authors pa ON pa.person_id = s.person_id "
            "WHERE s.tier IN (SELECT value FROM json_each(?))",
            [json.dumps(list(tiers))],
        )
        return dict(rows.fetchall())

    def leaders(
        self,
        tiers: Sequence[str] = (),
        min_score: float | None = None,
        since: datetime | None = None,
        topic: str = "",
        channel: str = "",
        limit: int = -1,
        person_id: int | None = None,
    ) -> list[Leader]:
        """People with a positive score, best first, filtered as the export and the leaderboard ask."""
        clauses: list[str] = ["s.score > 0"]
        params: list[Any] = []
        if person_id is not None:
            clauses.append("s.person_id = ?")
            params.append(person_id)
        if tiers:
            clauses.append("s.tier IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(list(tiers)))
        if min_score is not None:
            clauses.append("s.score >= ?")
            params.append(min_score)
        if since is not None:
            clauses.append("s.last_praise_at >= ?")
            params.append(iso(since))
        if topic:
            clauses.append("EXISTS (SELECT 1 FROM json_each(s.praised) WHERE lower(value) = lower(?))")
            params.append(topic)
        if channel:
            clauses.append(
                "EXISTS (SELECT 1 FROM person_authors pa JOIN authors a ON a.key = pa.author_key "
                "WHERE pa.person_id = s.person_id AND a.platform = ?)"
            )
            params.append(channel)
        rows = self.db.execute(
            f"SELECT s.person_id, s.score, s.tier, s.counted, s.praised, s.last_praise_at, m.text "
            f"FROM advocate_scores s LEFT JOIN mentions m ON m.key = s.last_praise_key "
            f"WHERE {' AND '.join(clauses)} ORDER BY s.score DESC, s.person_id LIMIT {int(limit)}",
            params,
        ).fetchall()
        persons = self.persons(row[0] for row in rows)
        return [
            Leader(
                person=persons[pid],
                score=score,
                tier=tier or "",
                counted=counted,
                praised=tuple(json.loads(praised or "[]")),
                last_praise_at=datetime.fromisoformat(at) if at else None,
                last_praise=text or "",
            )
            for pid, score, tier, counted, praised, at, text in rows
        ]

    # -- offers ------------------------------------------------------------------------------------

    def record_offer(self, person_id: int, offer: str, text: str, by: str, at: datetime) -> int:
        with writing(self.db):
            table = self.db.table("offers")
            table.insert({"person_id": person_id, "offer": offer, "text": text, "sent_at": iso(at), "sent_by": by})
            return int(str(table.last_pk))

    def offers(self, person_id: int | None = None) -> list[OfferRow]:
        where, params = ("WHERE person_id = ?", [person_id]) if person_id is not None else ("", [])
        rows = self.db.execute(
            f"SELECT id, person_id, offer, text, sent_at, sent_by, used_at FROM offers {where} ORDER BY sent_at, id",
            params,
        ).fetchall()
        return [
            OfferRow(i, p, o, t, datetime.fromisoformat(s), b, datetime.fromisoformat(u) if u else None)
            for i, p, o, t, s, b, u in rows
        ]

    def offer_used(self, offer_id: int, at: datetime) -> None:
        if self.db.execute("SELECT 1 FROM offers WHERE id = ?", [offer_id]).fetchone() is None:
            raise PeopleError(f"no offer {offer_id}; see `passaparola advocates offers PERSON` for ids")
        with writing(self.db):
            self.db.execute("UPDATE offers SET used_at = ? WHERE id = ?", [iso(at), offer_id])

    # -- testimonials ------------------------------------------------------------------------------

    def agree_testimonial(self, key: str, agreed: bool, by: str, at: datetime, note: str = "") -> None:
        if self.db.execute("SELECT 1 FROM mentions WHERE key = ?", [key]).fetchone() is None:
            raise PeopleError(f"no mention {key!r}; keys look like x:1800000000007914703")
        with writing(self.db):
            self.db.table("testimonial_consent").upsert(
                {"key": key, "agreed": int(agreed), "recorded_at": iso(at), "recorded_by": by, "note": note},
                pk="key",
            )

    def testimonial_agreement(self, keys: Iterable[str]) -> dict[str, bool]:
        rows = self.db.execute(
            "SELECT key, agreed FROM testimonial_consent WHERE key IN (SELECT value FROM json_each(?))",
            [json.dumps(list(keys))],
        )
        return {key: bool(agreed) for key, agreed in rows.fetchall()}

    def prune_silent(self) -> dict[str, int]:
        """Forget authors with no mention left (after retention), and people left with no author."""
        with writing(self.db):
            silent = "SELECT key FROM authors a WHERE NOT EXISTS (SELECT 1 FROM mentions m WHERE m.author_key = a.key)"
            self.db.execute(f"DELETE FROM person_authors WHERE author_key IN ({silent})")
            authors = self.db.execute(f"DELETE FROM authors WHERE key IN ({silent})").rowcount
            alone = (
                "SELECT id FROM people p WHERE NOT EXISTS (SELECT 1 FROM person_authors pa WHERE pa.person_id = p.id)"
            )
            for table in ("offers", "advocate_scores"):
                self.db.execute(f"DELETE FROM {table} WHERE person_id IN ({alone})")
            people = self.db.execute(f"DELETE FROM people WHERE id IN ({alone})").rowcount
        return {"authors": authors, "people": people}

    # -- erasure and suppression -------------------------------------------------------------------

    def suppressed(self, author_keys: Iterable[str]) -> set[str]:
        """Which of these authors were erased and must not be ingested again."""
        by_hash = {suppression_hash(k): k for k in set(author_keys)}
        if not by_hash:
            return set()
        rows = self.db.execute(
            "SELECT hash FROM suppressed WHERE hash IN (SELECT value FROM json_each(?))", [json.dumps(list(by_hash))]
        )
        return {by_hash[row[0]] for row in rows.fetchall()}

    def erase(self, person_id: int, at: datetime) -> dict[str, int]:
        """Remove a person and every author of theirs everywhere; keep only hashes that refuse them later.

        Deleted pages are overwritten (``secure_delete``), the search index is merged (dropping the words of
        the deleted mentions) and the WAL is checkpointed and truncated, so the text does not linger in the files.
        """
        accounts = self.authors(person_id)
        keys = [a.key for a in accounts]
        param = json.dumps(keys)
        mention_keys = [
            row[0]
            for row in self.db.execute(
                "SELECT key FROM mentions WHERE author_key IN (SELECT value FROM json_each(?))", [param]
            )
        ]
        self.db.execute("PRAGMA secure_delete = ON")
        try:
            counts: dict[str, int] = {}
            with writing(self.db):
                counts |= delete_mentions(self.db, mention_keys, with_alerts=True)
                ids = json.dumps([[a.platform, a.key.split(":", 1)[1]] for a in accounts])
                counts["inbound"] = self.db.execute(
                    "DELETE FROM inbound WHERE EXISTS (SELECT 1 FROM json_each(?) j "
                    "WHERE inbound.channel = json_extract(j.value, '$[0]') "
                    "AND instr(inbound.body, '\"' || json_extract(j.value, '$[1]') || '\"') > 0)",
                    [ids],
                ).rowcount
                counts["offers"] = self.db.execute("DELETE FROM offers WHERE person_id = ?", [person_id]).rowcount
                self.db.execute("DELETE FROM advocate_scores WHERE person_id = ?", [person_id])
                self.db.execute("DELETE FROM person_authors WHERE person_id = ?", [person_id])
                counts["people"] = self.db.execute("DELETE FROM people WHERE id = ?", [person_id]).rowcount
                counts["authors"] = self.db.execute(
                    "DELETE FROM authors WHERE key IN (SELECT value FROM json_each(?))", [param]
                ).rowcount
                self.db.table("suppressed").insert_all(
                    ({"hash": suppression_hash(k), "created_at": iso(at)} for k in keys), pk="hash", ignore=True
                )
                # FTS5 keeps a deleted row's tokens in old index segments until they are merged: merge them now.
                self.db.execute("INSERT INTO mentions_fts(mentions_fts) VALUES ('optimize')")
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self.db.execute("PRAGMA secure_delete = OFF")
        return counts


def delete_mentions(db: Database, keys: Sequence[str], with_alerts: bool) -> dict[str, int]:
    """Delete mentions with everything derived from them (call inside a transaction).

    ``with_alerts`` also deletes the outbox rows about them (erasure); retention keeps alert history.
    """
    param = json.dumps(list(keys))
    inside = "IN (SELECT value FROM json_each(?))"
    counts: dict[str, Any] = {}
    if with_alerts:
        counts["alerts"] = db.execute(
            f"DELETE FROM outbox WHERE EXISTS (SELECT 1 FROM json_each(outbox.mentions) j WHERE j.value {inside})",
            [param],
        ).rowcount
    counts["brand_replies"] = db.execute(
        f"DELETE FROM brand_replies WHERE EXISTS (SELECT 1 FROM mentions m WHERE m.key {inside} "
        "AND m.platform = brand_replies.platform AND m.platform_id = brand_replies.in_reply_to)",
        [param],
    ).rowcount
    derived = ("mention_tags", "conversations", "sentiment_corrections", "conversation_events", "testimonial_consent")
    for table in derived:
        db.execute(f"DELETE FROM {table} WHERE key {inside}", [param])
    counts["mentions"] = db.execute(f"DELETE FROM mentions WHERE key {inside}", [param]).rowcount
    return counts
