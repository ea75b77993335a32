"""Storage: migrations, WAL, one transaction per poll, idempotent re-ingest, answers, refusal of bad files."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from listener import Author, BrandReply, Mention, Poll
from storage import StorageError, Store
from storage.migrations import migrations
from tests.conftest import ROOT, T0

ANNA = Author(platform="x", platform_id="42", handle="anna", display_name="Anna Rossi", reach=120)


def mention(pid: str, minutes: int = 0, text: str = "Ordine in ritardo @AuroraCaffe", **kw: Any) -> Mention:
    return Mention(
        platform="x",
        platform_id=pid,
        source="x-brand",
        text=text,
        author=ANNA,
        published_at=T0 + timedelta(minutes=minutes),
        thread_id=kw.pop("thread_id", pid),
        **kw,
    )


def reply(pid: str, to: str, minutes: int, **kw: Any) -> BrandReply:
    return BrandReply(
        platform="x",
        platform_id=pid,
        source="x-brand",
        author_handle="AuroraCaffe",
        published_at=T0 + timedelta(minutes=minutes),
        in_reply_to=to,
        **kw,
    )


def test_file_database_is_migrated_in_wal_mode(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "p.db")
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert [m.name for m in migrations.applied(store.db)] == [m.name for m in migrations._migrations]
    store.close()
    Store.open(tmp_path / "p.db").close()  # reopening applies nothing twice


def test_reingesting_the_same_posts_three_times_stores_each_once(store: Store) -> None:
    poll = Poll(mentions=(mention("1"), mention("2", 5)), cursor={"since_id": "2"})
    first = store.save_poll("x-brand", "x", poll, T0)
    first_seen = store.db.execute("SELECT first_seen_at FROM mentions WHERE key = 'x:1'").fetchone()[0]
    for later in (1, 2):
        again = store.save_poll("x-brand", "x", poll, T0 + timedelta(hours=later))
        assert again.new_mentions == 0
    assert first.new_mentions == 2
    assert store.db.table("mentions").count == 2
    assert store.db.execute("SELECT first_seen_at FROM mentions WHERE key = 'x:1'").fetchone()[0] == first_seen


def test_an_author_seen_again_keeps_when_first_seen_and_gets_the_new_profile(store: Store) -> None:
    store.save_poll("x-brand", "x", Poll(mentions=(mention("1"),)), T0)
    renamed = replace(ANNA, handle="anna_r", reach=900)
    store.save_poll("x-brand", "x", Poll(mentions=(replace(mention("2", 5), author=renamed),)), T0 + timedelta(hours=2))
    row = store.db.execute("SELECT handle, reach, first_seen_at, updated_at FROM authors WHERE key = 'x:42'").fetchone()
    assert row == ("anna_r", 900, T0.isoformat(), (T0 + timedelta(hours=2)).isoformat())


def test_rows_of_different_columns_are_refused_naming_the_table(store: Store) -> None:
    from storage.writes import put_rows

    rows = [{"key": "a", "state": "new", "updated_at": "t"}, {"key": "b", "state": "new"}]
    with pytest.raises(ValueError, match="conversations: every row must have the columns"):
        put_rows(store.db, "conversations", rows, "key")


def test_reingest_updates_raw_text_but_never_clobbers_derived_fields(store: Store) -> None:
    tagged = replace(mention("1"), tags={"sentiment": "negative", "needs_answer": 1})
    store.save_poll("x-brand", "x", Poll(mentions=(tagged,)), T0)
    store.db.table("conversations").update("x:1", {"state": "ignored", "state_reason": "spam"})
    edited = replace(mention("1", text="Ordine in ritardo (modificato)"), tags={"sentiment": "positive"})
    store.save_poll("x-brand", "x", Poll(mentions=(edited,)), T0 + timedelta(minutes=1))
    row = store.db.execute(
        "SELECT m.text, t.sentiment, c.state FROM mentions m JOIN mention_tags t USING (key) "
        "JOIN conversations c USING (key)"
    ).fetchone()
    assert row == ("Ordine in ritardo (modificato)", "negative", "ignored")


def test_cursor_moves_only_with_the_mentions_it_covers(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store.save_poll("x-brand", "x", Poll(mentions=(mention("1"),), cursor={"since_id": "1"}), T0)

    def crash(*args: object, **kwargs: object) -> int:
        raise RuntimeError("power cut after the mentions, before the cursor")

    monkeypatch.setattr(store.health, "record_success", crash)
    with pytest.raises(RuntimeError):
        store.save_poll("x-brand", "x", Poll(mentions=(mention("2"), mention("3")), cursor={"since_id": "3"}), T0)
    assert store.cursor("x-brand") == {"since_id": "1"}
    assert store.mentions.known(["x:2", "x:3"]) == set()  # rolled back with the cursor
    monkeypatch.undo()
    retried = store.save_poll("x-brand", "x", Poll(mentions=(mention("2"), mention("3")), cursor={"since_id": "3"}), T0)
    assert retried.new_mentions == 2 and store.cursor("x-brand") == {"since_id": "3"}


def test_a_brand_reply_answers_its_mention_with_the_response_time(store: Store) -> None:
    store.save_poll("x-brand", "x", Poll(mentions=(mention("1"),)), T0)
    result = store.save_poll("x-own", "x", Poll(replies=(reply("9", to="1", minutes=23),)), T0 + timedelta(hours=1))
    conversation = store.conversation("x:1")
    assert result.answered == 1
    assert conversation is not None and conversation.state == "answered"
    assert conversation.response_seconds == 23 * 60


def test_a_mention_the_platform_deleted_is_closed_and_kept_and_an_answered_one_keeps_its_answer(store: Store) -> None:
    store.save_poll("x-brand", "x", Poll(mentions=(mention("1"), mention("2", 1))), T0)
    store.save_poll("x-own", "x", Poll(replies=(reply("9", to="2", minutes=20),)), T0)
    store.save_poll("x-brand", "x", Poll(removed=("x:1", "x:2", "x:404")), T0 + timedelta(hours=1))
    gone, answered = store.conversation("x:1"), store.conversation("x:2")
    assert gone is not None and (gone.state, gone.state_reason) == ("ignored", "deleted on the platform")
    assert gone.mention.text == "Ordine in ritardo @AuroraCaffe"  # kept for the record
    assert answered is not None and answered.state == "answered" and answered.response_seconds == 19 * 60


def test_ratings_average_per_place_with_the_trend_against_the_month_before(store: Store) -> None:
    def review(pid: str, stars: int, days_ago: int, place: str) -> Mention:
        who = Author("gbp", f"a{pid}", f"a{pid}")
        at = T0 - timedelta(days=days_ago)
        return Mention("gbp", pid, "gbp", "…", at, who, metrics={"rating": stars}, place=place)

    reviews = [review("1", 5, 2, "milano"), review("2", 3, 10, "milano"), review("3", 2, 40, "milano")]
    reviews += [review("4", 1, 5, "roma"), review("5", 4, 70, "roma")]  # 70 days: outside both windows
    store.save_poll("gbp", "gbp", Poll(mentions=(*reviews, mention("9"))), T0)
    assert store.mentions.ratings(T0) == [
        {"channel": "gbp", "place": "milano", "count": 2, "average": 4.0, "previous_count": 1,
         "previous_average": 2.0, "change": 2.0},
        {"channel": "gbp", "place": "roma", "count": 1, "average": 1.0, "previous_count": 0,
         "previous_average": None, "change": None},
    ]  # fmt: skip


def test_a_reply_seen_before_its_mention_still_answers_it(store: Store) -> None:
    store.save_poll("x-own", "x", Poll(replies=(reply("9", to="1", minutes=10),)), T0)
    store.save_poll("x-brand", "x", Poll(mentions=(mention("1"),)), T0 + timedelta(minutes=30))
    conversation = store.conversation("x:1")
    assert conversation is not None and conversation.state == "answered"


def test_a_later_brand_post_in_the_thread_to_the_author_counts_as_an_answer(store: Store) -> None:
    store.save_poll("x-brand", "x", Poll(mentions=(mention("1", thread_id="T"),)), T0)
    elsewhere = reply("9", to="", minutes=15, thread_id="T", to_author_id="42")
    earlier = reply("8", to="", minutes=-5, thread_id="T", to_author_id="42")  # before the mention: no
    to_someone_else = reply("7", to="", minutes=5, thread_id="T", to_author_id="99")
    store.save_poll("x-own", "x", Poll(replies=(earlier, to_someone_else, elsewhere)), T0 + timedelta(hours=1))
    conversation = store.conversation("x:1")
    assert conversation is not None and conversation.state == "answered"
    assert conversation.response_seconds == 15 * 60


def test_text_with_lone_surrogates_and_nul_is_stored_not_crashing_the_batch(store: Store) -> None:
    bad = mention("1", text="ciao \ud83d e \x00 fine")
    store.save_poll("x-brand", "x", Poll(mentions=(bad, mention("2"))), T0)
    assert store.db.execute("SELECT text FROM mentions WHERE key='x:1'").fetchone()[0] == "ciao ? e  fine"


def test_a_corrupt_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    path.write_bytes(b"this is not a database, but somebody's data" * 100)
    before = path.read_bytes()
    with pytest.raises(StorageError, match=r"unreadable.*restore it from a backup"):
        Store.open(path)
    assert path.read_bytes() == before
    assert not (tmp_path / "p.db-wal").exists()


def test_a_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    Store.open(tmp_path / "p.db").close()
    with sqlite3.connect(tmp_path / "p.db") as raw:
        raw.execute(
            "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) "
            "VALUES ('passaparola', 'm999_from_the_future', '2030-01-01')"
        )
    with pytest.raises(StorageError, match=r"newer passaparola .*m999_from_the_future"):
        Store.open(tmp_path / "p.db")


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"folder .*nope does not exist"):
        Store.open(tmp_path / "nope" / "p.db")


def test_outbox_keeps_one_row_per_key_and_tracks_attempts(store: Store) -> None:
    from notifiers import Alert

    alert = Alert(key="k1", kind="test", title="t", body="b")
    assert store.enqueue([alert, alert], T0) == 1
    assert store.enqueue([alert], T0 + timedelta(days=1)) == 0
    store.outbox.mark_failed("k1", T0, "receiver down", retry_at=T0 + timedelta(minutes=1))
    assert store.outbox.due(T0) == []
    due = store.outbox.due(T0 + timedelta(minutes=1))
    assert [(i.alert.key, i.attempts) for i in due] == [("k1", 1)]
    store.outbox.mark_sent("k1", T0 + timedelta(minutes=1))
    assert store.outbox.due(T0 + timedelta(days=2)) == []


def test_processes_opening_a_new_database_at_once_never_collide(tmp_path: Path) -> None:
    """The daemon starting while the container's health check opens the same fresh volume (found in CI)."""
    db, start = tmp_path / "fresh.db", time.time() + 1.5
    script = (
        "import sys, time; from storage import Store\n"
        f"time.sleep(max({start} - time.time(), 0))\n"
        f"Store.open({str(db)!r}).close()\n"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stderr=subprocess.PIPE, text=True) for _ in range(6)
    ]
    errors = [p.communicate(timeout=60)[1] for p in processes]
    assert [p.returncode for p in processes] == [0] * 6, "\n".join(errors)
    store = Store.open(db)
    names = [m.name for m in migrations.applied(store.db)]
    assert len(names) == len(set(names)) and names == [m.name for m in migrations._migrations]  # each applied once
    store.close()


def test_the_heartbeat_waits_for_another_writer_instead_of_failing(tmp_path: Path) -> None:
    """Another connection holds the write lock for a moment (a poll saving its batch): the heartbeat waits for it
    and is recorded. A deferred transaction would read first, find its snapshot stale once the other commits, and
    fail at once with "database is locked" (what the busy daemon showed)."""
    daemon, poll = Store.open(tmp_path / "p.db"), Store.open(tmp_path / "p.db", shared=True)
    daemon.health.beat(T0)  # the table exists and the daemon has read it once
    poll.db.execute("BEGIN IMMEDIATE")
    poll.db.execute("UPDATE daemon SET updated_at = updated_at")

    def commit_soon() -> None:
        time.sleep(0.5)
        poll.db.conn.commit()

    writer = threading.Thread(target=commit_soon)
    writer.start()
    daemon.health.beat(T0 + timedelta(seconds=5))
    writer.join()
    assert daemon.health.heartbeat() == T0 + timedelta(seconds=5)
    daemon.close()
    poll.close()
