"""How the store writes: every write transaction takes SQLite's write lock at its start (``BEGIN IMMEDIATE``).

sqlite-utils' ``atomic()`` opens a deferred ``BEGIN``. When the first statement inside reads (an upsert reads the
table's columns first), the transaction holds a read snapshot; if another connection commits before it writes,
SQLite refuses the upgrade at once with "database is locked", without waiting on the busy timeout. With several
threads writing (polls, delivery, replies, the heartbeat) that refused the heartbeat for seconds on a busy machine.
``BEGIN IMMEDIATE`` waits for the lock instead, for up to the busy timeout.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlite_utils import Database


@contextlib.contextmanager
def writing(db: Database) -> Iterator[Database]:
    """One write transaction (a savepoint when one is already open): committed on success, rolled back on error."""
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.conn.rollback()
        raise
    try:
        db.conn.execute("COMMIT")
    except BaseException:
        db.conn.rollback()
        raise
