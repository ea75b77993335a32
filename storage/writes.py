"""How the store writes: every write transaction takes SQLite's write lock at its start (``BEGIN IMMEDIATE``).

sqlite-utils' ``atomic()`` opens a deferred ``BEGIN``. When the first statement inside reads (an upsert reads the
table's columns first), the transaction holds a read snapshot; if another connection commits before it writes,
SQLite refuses the upgrade at once with "database is locked", without waiting on the busy timeout. With several
threads writing (polls, delivery, replies, the heartbeat) that refused the heartbeat for seconds on a busy machine.
``BEGIN IMMEDIATE`` waits for the lock instead, for up to the busy timeout.
"""

from __future__ import annotations

import contextlib
import itertools
import operator
import sqlite3
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Any

from sqlite_utils import Database


@contextlib.contextmanager
def writing(db: Database) -> Iterator[Database]:
    """One write transaction (a savepoint when one is already open): committed on success, rolled back on error."""
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    db.conn.execute("BEGIN IMMEDIATE")
    with _begun(db):
        yield db


@contextlib.contextmanager
def _begun(db: Database) -> Iterator[None]:
    """The rest of a transaction begun with ``BEGIN IMMEDIATE``: committed on success, rolled back on error."""
    try:
        yield
    except BaseException:
        db.conn.rollback()
        raise
    try:
        db.conn.execute("COMMIT")
    except BaseException:
        db.conn.rollback()
        raise


@contextlib.contextmanager
def writing_if_free(db: Database, wait_ms: int) -> Iterator[bool]:
    """A write transaction if the lock comes within ``wait_ms``: yields whether it is held (committed at the end,
    rolled back on error); False inside another transaction, or when another writer holds the lock past the wait,
    so that a reader keeping what it counted (`Board.response_tallies`) never waits on the daemon's writes."""
    conn = db.conn
    if conn.in_transaction:
        yield False
        return
    (busy,) = conn.execute("PRAGMA busy_timeout").fetchone()
    conn.execute(f"PRAGMA busy_timeout = {min(int(busy), wait_ms)}")
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError:
        conn.execute(f"PRAGMA busy_timeout = {int(busy)}")
        yield False
        return
    conn.execute(f"PRAGMA busy_timeout = {int(busy)}")
    with _begun(db):
        yield True


#: Bound values per statement: SQLite's default limit before 3.32 (999), so any build runs these statements.
MAX_VALUES = 999


def put_rows(
    db: Database,
    table: str,
    rows: Iterable[Mapping[str, Any]],
    key: str,
    keep: Collection[str] = (),
    ignore: bool = False,
) -> None:
    """Insert ``rows`` (each with the same columns) into ``table``: on a conflict on ``key``, update every column but
    ``key`` and ``keep`` (or, with ``ignore``, leave the stored row as it is).

    Many rows go in each statement (``VALUES (...), (...)``): a statement's fixed cost (the FTS and bookkeeping
    triggers' set-up) is paid once for the lot, not once a row as with ``executemany``; and none of sqlite-utils'
    per-value Python work (type checks, JSON), which cost a bulk import a third of its writing time: these tables
    have fixed columns, made by the migrations."""
    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        return
    columns = list(first)
    names = ", ".join(f'"{c}"' for c in columns)
    updates = ", ".join(f'"{c}" = excluded."{c}"' for c in columns if c != key and c not in keep)
    conflict = "DO NOTHING" if ignore or not updates else f"DO UPDATE SET {updates}"
    one = "(" + ", ".join("?" for _ in columns) + ")"
    per_statement = max(1, MAX_VALUES // len(columns))
    values = operator.itemgetter(*columns) if len(columns) > 1 else lambda row: (row[columns[0]],)
    batch: list[Any] = []
    count = 0
    for row in itertools.chain((first,), rows):
        if row.keys() != first.keys():
            raise ValueError(f"{table}: every row must have the columns {columns}, not {list(row)}")
        batch.extend(values(row))
        count += 1
        if count == per_statement:
            _put(db, table, names, one, count, conflict, key, batch)
            batch, count = [], 0
    if count:
        _put(db, table, names, one, count, conflict, key, batch)


def _put(
    db: Database, table: str, names: str, one: str, count: int, conflict: str, key: str, values: list[Any]
) -> None:
    marks = ", ".join([one] * count)
    db.conn.execute(f'INSERT INTO "{table}" ({names}) VALUES {marks} ON CONFLICT("{key}") {conflict}', values)
