"""Mentions and their tags: a poll saved in one transaction, the derived fields, corrections and reanalysis, the
hourly volumes the baselines read, and the retention window.

A poll is saved in one transaction (mentions, authors, brand replies, answers, cursor, health): a crash anywhere
loses nothing and duplicates nothing, and re-ingesting the same post is a no-op for everything passaparola derived
from it. `Mentions` shares the store's connection (``store.mentions``) and writes a poll's answers and health through
the store's `Conversations` and `Health`, so each table keeps one owner.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlite_utils import Database

from listener.model import Author, BrandReply, Mention, Poll
from storage.conversations import Conversations
from storage.health import Health
from storage.people import People, delete_mentions
from storage.times import iso
from storage.writes import put_rows, writing

#: Tag names stored in their own columns; any other tag goes to ``mention_tags.extra``.
TAG_COLUMNS = (
    "language",
    "sentiment",
    "sentiment_probs",
    "model_version",
    "needs_answer",
    "needs_answer_reason",
    "topics",
    "route",
)
#: The JSON of a mention's facts and of its tags' ``extra``, one encoder each: ``json.dumps`` with options builds a
#: new encoder on every call, twice a row.
_FACTS_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode
_EXTRA_JSON = json.JSONEncoder(default=str).encode


@dataclass(frozen=True, slots=True)
class SaveResult:
    """What one saved poll changed: new mentions and replies, and mentions newly answered."""

    new_mentions: int
    new_replies: int
    answered: int


class Mentions:
    def __init__(self, db: Database, people: People, conversations: Conversations, health: Health) -> None:
        self.db = db
        self.people = people
        self.conversations = conversations
        self.health = health

    # -- ingest ----------------------------------------------------------------------------------

    def known(self, keys: Iterable[str]) -> set[str]:
        """Which of these mention keys are stored already (so only new ones are tagged)."""
        keys = list(keys)
        if not keys:
            return set()
        rows = self.db.execute(
            "SELECT key FROM mentions WHERE key IN (SELECT value FROM json_each(?))", [json.dumps(keys)]
        )
        return {row[0] for row in rows}

    def edited(self, mentions: Iterable[Mention]) -> set[str]:
        """Which of these mentions are stored already with other words or another rating: a review its author
        edited, whose stored reading (sentiment, topics, needs an answer) is of words that are gone."""
        heard = {m.key: m for m in mentions}
        if not heard:
            return set()
        rows = self.db.execute(
            "SELECT key, text, json_extract(metrics, '$.rating') FROM mentions "
            "WHERE key IN (SELECT value FROM json_each(?))",
            [json.dumps(list(heard))],
        )
        return {
            key
            for key, text, rating in rows.fetchall()
            if text != heard[key].text or rating != heard[key].metrics.get("rating")
        }

    def save_poll(self, source: str, kind: str, poll: Poll, at: datetime, reread: Collection[str] = ()) -> SaveResult:
        """Write a poll's mentions, replies, answers, cursor and health in one transaction.

        Mentions by erased authors are dropped: they are never stored again. A stored mention's derived fields are
        kept, unless its key is in ``reread``: a mention its author edited, tagged anew (`edited`, `save_fresh`).
        """
        now = iso(at)
        erased = self.people.suppressed(m.author.key for m in poll.mentions)
        if erased:
            poll = replace(poll, mentions=tuple(m for m in poll.mentions if m.author.key not in erased))
        with writing(self.db):
            new_keys = {m.key for m in poll.mentions} - self.known(m.key for m in poll.mentions)
            self._upsert_authors([m.author for m in poll.mentions], now)
            put_rows(self.db, "mentions", (self._mention_row(m, now) for m in poll.mentions), key="key")
            self.db.execute(
                "UPDATE mentions SET first_seen_at = ? WHERE key IN (SELECT value FROM json_each(?))",
                [now, json.dumps(sorted(new_keys))],
            )
            fresh = [m for m in poll.mentions if m.key in new_keys]
            put_rows(
                self.db,
                "mention_tags",
                (self._tags_row(m.key, m.tags, now) for m in fresh if m.tags),
                "key",
                ignore=True,
            )
            self._reread([m for m in poll.mentions if m.key in reread and m.key not in new_keys], now)
            self.conversations.start([m.key for m in fresh], now)
            new_replies = self.insert_replies(poll.replies, now)
            answered = self.conversations.apply_answers(sorted(new_keys), [r.key for r in poll.replies], now)
            self.conversations.close_removed(poll.removed, now)
            self.health.record_success(source, kind, poll.cursor, poll.details, len(new_keys), now)
        return SaveResult(new_mentions=len(new_keys), new_replies=new_replies, answered=answered)

    def _reread(self, mentions: Sequence[Mention], now: str) -> None:
        """Replace the reading of stored mentions read again (an edited review, tagged anew). A person's sentiment
        correction labelled the words that are gone, so it goes too (it would teach the model the new words with
        the old label); the conversation, its answer included, is kept as it is."""
        tagged = [m for m in mentions if m.tags]
        if not tagged:
            return
        put_rows(self.db, "mention_tags", (self._tags_row(m.key, m.tags, now) for m in tagged), key="key")
        self.db.execute(
            "DELETE FROM sentiment_corrections WHERE key IN (SELECT value FROM json_each(?))",
            [json.dumps([m.key for m in tagged])],
        )

    def _upsert_authors(self, authors: Sequence[Author], now: str) -> None:
        """Each author once, its profile refreshed; ``first_seen_at`` is set when it is new and kept after."""
        unique = {a.key: a for a in authors}
        put_rows(
            self.db,
            "authors",
            (
                {
                    "key": a.key,
                    "platform": a.platform,
                    "platform_id": a.platform_id,
                    "handle": a.handle,
                    "display_name": a.display_name,
                    "reach": a.reach,
                    "verified": int(a.verified),
                    "updated_at": now,
                    "first_seen_at": now,
                }
                for a in unique.values()
            ),
            key="key",
            keep=("first_seen_at",),
        )

    @staticmethod
    def _mention_row(m: Mention, now: str) -> dict[str, Any]:
        return {
            "key": m.key,
            "platform": m.platform,
            "platform_id": m.platform_id,
            "source": m.source,
            "author_key": m.author.key,
            "text": m.text,
            "url": m.url,
            "published_at": iso(m.published_at),
            "thread_id": m.thread_id,
            "in_reply_to": m.in_reply_to,
            "language_hint": m.language_hint,
            "metrics": json.dumps(dict(m.metrics)),
            "place": m.place,
            "facts": _FACTS_JSON(dict(m.facts)),
            "updated_at": now,
        }

    @staticmethod
    def _tags_row(key: str, tags: Mapping[str, Any], now: str) -> dict[str, Any]:
        row: dict[str, Any] = {"key": key, "tagged_at": now, **dict.fromkeys(TAG_COLUMNS)}
        extra = {}
        for name, value in tags.items():
            if name in TAG_COLUMNS:
                row[name] = json.dumps(value) if isinstance(value, (list, dict, tuple)) else value
            elif value is not None:
                extra[name] = value
        row["extra"] = _EXTRA_JSON(extra)
        return row

    def insert_replies(self, replies: Sequence[BrandReply], now: str, holding: bool = False) -> int:
        """Store brand replies (a reply already stored is kept as it is); ``holding`` marks acknowledgements that
        answer nothing (passaparola's out-of-hours replies)."""
        before = self.db.conn.total_changes
        self.db.table("brand_replies").insert_all(
            (
                {
                    "key": r.key,
                    "platform": r.platform,
                    "platform_id": r.platform_id,
                    "source": r.source,
                    "in_reply_to": r.in_reply_to,
                    "thread_id": r.thread_id,
                    "to_author_id": r.to_author_id,
                    "author_handle": r.author_handle,
                    "text": r.text,
                    "url": r.url,
                    "published_at": iso(r.published_at),
                    "first_seen_at": now,
                    "holding": int(holding),
                }
                for r in replies
            ),
            pk="key",
            ignore=True,
            batch_size=500,
        )
        return self.db.conn.total_changes - before

    # -- analysis: tags, corrections, reanalysis ---------------------------------------------------

    def tags(self, key: str) -> dict[str, Any] | None:
        """The derived fields of one mention, a person's sentiment correction applied (``corrected`` says so)."""
        rows = list(
            self.db.query(
                "SELECT t.*, sc.label AS corrected_label FROM mentions m LEFT JOIN mention_tags t ON t.key = m.key "
                "LEFT JOIN sentiment_corrections sc ON sc.key = m.key WHERE m.key = ?",
                [key],
            )
        )
        if not rows:
            return None
        row = rows[0]
        tags: dict[str, Any] = {name: row[name] for name in TAG_COLUMNS if row.get(name) is not None}
        for name in ("sentiment_probs", "topics"):
            if name in tags:
                tags[name] = json.loads(tags[name])
        tags.update(json.loads(row.get("extra") or "{}"))
        if row["corrected_label"]:
            tags["sentiment"], tags["corrected"] = row["corrected_label"], True
        return tags

    def correct_sentiment(self, key: str, label: str, by: str, at: datetime) -> None:
        """Record a person's label; raises `KeyError` for an unknown mention."""
        with writing(self.db):
            found = list(
                self.db.query(
                    "SELECT t.sentiment FROM mentions m LEFT JOIN mention_tags t ON t.key = m.key WHERE m.key = ?",
                    [key],
                )
            )
            if not found:
                raise KeyError(key)
            self.db.table("sentiment_corrections").upsert(
                {
                    "key": key,
                    "label": label,
                    "model_label": found[0]["sentiment"],
                    "corrected_by": by,
                    "corrected_at": iso(at),
                },
                pk="key",
            )

    def corrections(self) -> list[dict[str, Any]]:
        """Every corrected mention as labelled data: text, label, language (for retraining)."""
        return list(
            self.db.query(
                "SELECT m.text, sc.label, COALESCE(t.language, m.language_hint, '') AS language, sc.key, "
                "m.platform, m.source, json_extract(m.metrics, '$.rating') AS stars "
                "FROM sentiment_corrections sc JOIN mentions m ON m.key = sc.key "
                "LEFT JOIN mention_tags t ON t.key = sc.key ORDER BY sc.corrected_at, sc.key"
            )
        )

    def texts(self, after_key: str = "", limit: int = 500) -> list[tuple[str, str, str, str, Any]]:
        """(key, text, platform, source, rating) pages in key order, for reanalysis."""
        rows = self.db.execute(
            "SELECT key, text, platform, source, json_extract(metrics, '$.rating') FROM mentions "
            "WHERE key > ? ORDER BY key LIMIT ?",
            [after_key, limit],
        )
        return [tuple(row) for row in rows.fetchall()]

    def replace_tags(self, tags: Mapping[str, Mapping[str, Any]], at: datetime) -> int:
        """Overwrite the derived fields of these mentions (corrections live apart and are kept).

        Returns how many of them the model now labels differently.
        """
        now = iso(at)
        with writing(self.db):
            before = dict(
                self.db.execute(
                    "SELECT key, sentiment FROM mention_tags WHERE key IN (SELECT value FROM json_each(?))",
                    [json.dumps(list(tags))],
                ).fetchall()
            )
            put_rows(self.db, "mention_tags", (self._tags_row(key, t, now) for key, t in tags.items()), key="key")
        return sum(before.get(key) != t.get("sentiment") for key, t in tags.items())

    # -- volumes for rules -----------------------------------------------------------------------

    def ratings(self, now: datetime, days: int = 30) -> list[dict[str, Any]]:
        """Star ratings per channel and place (a location, an app) over the last ``days``, with the ``days`` before
        for the trend: count, average, the previous average and the change, most reviewed first."""
        rows = self.db.execute(
            """
            SELECT platform, place,
                   sum(published_at > :start), avg(CASE WHEN published_at > :start THEN rating END),
                   sum(published_at <= :start), avg(CASE WHEN published_at <= :start THEN rating END)
            FROM (SELECT platform, place, published_at, json_extract(metrics, '$.rating') AS rating FROM mentions
                  WHERE published_at > :before AND published_at <= :now AND json_extract(metrics, '$.rating') > 0)
            GROUP BY platform, place ORDER BY 3 DESC, 1, 2
            """,
            {"now": iso(now), "start": iso(now - timedelta(days=days)), "before": iso(now - timedelta(days=2 * days))},
        ).fetchall()
        found = []
        for platform, place, count, average, before_count, before in rows:
            found.append(
                {
                    "channel": platform,
                    "place": place,
                    "count": int(count or 0),
                    "average": round(average, 2) if average is not None else None,
                    "previous_count": int(before_count or 0),
                    "previous_average": round(before, 2) if before is not None else None,
                    "change": round(average - before, 2) if average is not None and before is not None else None,
                }
            )
        return found

    def hourly_counts(self, since: datetime, until: datetime) -> dict[datetime, int]:
        """Mentions per UTC hour published in [since, until), for baselines (hours with none left out).

        The whole hours between are the counts kept by the hour (`Conversations.hour_counts`, m022); only the two
        partial hours at the ends are counted live (#23: four weeks of history, every minute)."""
        first = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        first += timedelta(hours=1) if first < since else timedelta(0)
        last = until.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        if first >= last:
            return self._hourly("published_at >= ? AND published_at < ?", [iso(since), iso(until)])
        found = self._hourly("published_at >= ? AND published_at < ?", [iso(since), iso(first)])
        for hour, (n, _, _) in Conversations(self.db).hour_counts(first, last).items():
            if n:
                found[hour] = n
        found.update(self._hourly("published_at >= ? AND published_at < ?", [iso(last), iso(until)]))
        return found

    def _hourly(self, where: str, params: Sequence[Any]) -> dict[datetime, int]:
        rows = self.db.execute(
            f"SELECT substr(published_at, 1, 13) AS hour, count(*) FROM mentions WHERE {where} GROUP BY hour",
            list(params),
        )
        return {datetime.fromisoformat(f"{hour}:00:00+00:00"): count for hour, count in rows.fetchall()}

    def source_activity(self, since: datetime) -> dict[str, tuple[list[datetime], datetime]]:
        """Per source: the UTC hours since ``since`` in which it brought new mentions, and when it last did.

        Read by hops along the (source, first_seen_at) index, one per source and hour heard: the work grows with the
        hours a source was heard in, not with the mentions it brought."""
        hours: dict[str, list[datetime]] = {}
        last: dict[str, str] = {}
        source = self.db.execute("SELECT min(source) FROM mentions").fetchone()[0]
        while source is not None:
            bound = iso(since)
            while True:
                found = self.db.execute(
                    "SELECT min(first_seen_at) FROM mentions WHERE source = ? AND first_seen_at >= ?", [source, bound]
                ).fetchone()[0]
                if found is None:
                    break
                hour = datetime.fromisoformat(f"{found[:13]}:00:00+00:00")
                hours.setdefault(source, []).append(hour)
                bound = (hour + timedelta(hours=1)).strftime("%Y-%m-%dT%H")  # past every time of that hour
            if source in hours:
                last[source] = self.db.execute(
                    "SELECT max(first_seen_at) FROM mentions WHERE source = ?", [source]
                ).fetchone()[0]
            source = self.db.execute("SELECT min(source) FROM mentions WHERE source > ?", [source]).fetchone()[0]
        return {source: (found, datetime.fromisoformat(last[source])) for source, found in hours.items()}

    # -- retention -------------------------------------------------------------------------------

    def delete_published_before(self, cutoff: datetime, batch: int = 5000) -> int:
        """The retention window: delete mentions published before ``cutoff`` with what was derived from them.

        Authors left with nothing said go too, and people left with no author. Alert history stays (it holds no
        more than the alert said). Works in batches so the daemon's other
        jobs and the web app are never locked out for long.
        """
        deleted = 0
        while True:
            keys = [
                row[0]
                for row in self.db.execute(
                    "SELECT key FROM mentions WHERE published_at < ? LIMIT ?", [iso(cutoff), batch]
                ).fetchall()
            ]
            if not keys:
                break
            with writing(self.db):
                deleted += delete_mentions(self.db, keys, with_alerts=False)["mentions"]
        if deleted:
            self.people.prune_silent()
        return deleted
