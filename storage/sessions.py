"""Log-in sessions held in the database, failed log-ins per account and per client address, changed passwords.

A session's id lives only in the person's cookie: the database keeps its SHA-256, so a copy of the database
(a backup, a support dump) opens nobody's session. Admins act on a session by its row ``id``, never by its
secret. `Sessions` shares the store's connection (``store.sessions``); the rules (how many failures, how long a
lock) belong to the web app, this module only counts and remembers.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlite_utils import Database

from storage.times import iso, parse_time
from storage.writes import writing

#: ``last_seen_at`` is rewritten at most this often: a page view should not be a database write each time.
TOUCH_EVERY = timedelta(seconds=60)
#: Ended and expired sessions stay listed this long (for audits), then go.
KEEP_ENDED = timedelta(days=30)
AGENT_CHARS = 200
SUBJECT_CHARS = 100
KINDS = ("account", "address")


def token_hash(token: str) -> str:
    """What the database keeps of a session id."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: int
    user: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    address: str
    user_agent: str


@dataclass(frozen=True, slots=True)
class Failures:
    """Failed log-ins of one account name or one client address, counted until a quiet spell forgets them."""

    kind: str  # "account" or "address"
    subject: str
    failures: int
    first_at: datetime
    last_at: datetime
    locked_until: datetime | None


@dataclass(frozen=True, slots=True)
class StoredPassword:
    """A password a person set themselves; it stands only while the config still has the hash it replaced."""

    password_hash: str
    replaces: str  # SHA-256 of the config's password_hash when it was set
    changed_at: datetime


_COLUMNS = "id, user_name, created_at, last_seen_at, expires_at, address, user_agent"


def _session(row: Sequence[object]) -> SessionRow:
    return SessionRow(
        int(str(row[0])),
        str(row[1]),
        datetime.fromisoformat(str(row[2])),
        datetime.fromisoformat(str(row[3])),
        datetime.fromisoformat(str(row[4])),
        str(row[5] or ""),
        str(row[6] or ""),
    )


def _failures(row: Sequence[object]) -> Failures:
    return Failures(
        str(row[0]),
        str(row[1]),
        int(str(row[2])),
        datetime.fromisoformat(str(row[3])),
        datetime.fromisoformat(str(row[4])),
        parse_time(str(row[5])) if row[5] else None,
    )


class Sessions:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- sessions ----------------------------------------------------------------------------------

    def start(
        self,
        user: str,
        at: datetime,
        expires_at: datetime,
        address: str = "",
        user_agent: str = "",
        replacing: str | None = None,
    ) -> tuple[str, SessionRow]:
        """A new session for ``user``: its secret id (for the cookie only) and its row.

        ``replacing`` is the id the browser had before (rotation at log-in: it ends here, so a planted or
        copied pre-login cookie is worth nothing). Old ended sessions are pruned on the way.
        """
        token = secrets.token_urlsafe(32)
        now = iso(at)
        with writing(self.db):
            if replacing:
                self.db.execute(
                    "UPDATE web_sessions SET revoked_at = ?, revoked_reason = 'replaced' "
                    "WHERE token_hash = ? AND revoked_at IS NULL",
                    [now, token_hash(replacing)],
                )
            self.db.execute(
                "DELETE FROM web_sessions WHERE expires_at < ? OR revoked_at < ?",
                [iso(at - KEEP_ENDED), iso(at - KEEP_ENDED)],
            )
            cursor = self.db.execute(
                "INSERT INTO web_sessions (token_hash, user_name, created_at, last_seen_at, expires_at, address, "
                "user_agent) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [token_hash(token), user, now, now, iso(expires_at), address, user_agent[:AGENT_CHARS]],
            )
        row = self.db.execute(f"SELECT {_COLUMNS} FROM web_sessions WHERE id = ?", [cursor.lastrowid]).fetchone()
        return token, _session(row)

    def find(self, token: str, at: datetime, idle: timedelta | None = None) -> SessionRow | None:
        """The live session with this secret id (not ended, not expired, not idle too long), seen now."""
        now = iso(at)
        row = self.db.execute(
            f"SELECT {_COLUMNS} FROM web_sessions WHERE token_hash = ? AND revoked_at IS NULL AND expires_at > ?",
            [token_hash(token), now],
        ).fetchone()
        if row is None:
            return None
        found = _session(row)
        if idle is not None and at - found.last_seen_at >= idle:
            with writing(self.db):
                self.db.execute(
                    "UPDATE web_sessions SET revoked_at = ?, revoked_reason = 'idle' WHERE id = ?", [now, found.id]
                )
            return None
        if at - found.last_seen_at >= TOUCH_EVERY:
            with writing(self.db):
                self.db.execute("UPDATE web_sessions SET last_seen_at = ? WHERE id = ?", [now, found.id])
        return found

    def end(self, token: str, at: datetime, reason: str) -> bool:
        """End the session with this secret id (log-out); False if it was not live."""
        with writing(self.db):
            cursor = self.db.execute(
                "UPDATE web_sessions SET revoked_at = ?, revoked_reason = ? "
                "WHERE token_hash = ? AND revoked_at IS NULL",
                [iso(at), reason, token_hash(token)],
            )
        return cursor.rowcount > 0

    def revoke(self, session_id: int, at: datetime, reason: str) -> SessionRow | None:
        """End a session by its row id (an admin's button); None if no such live session."""
        row = self.db.execute(
            f"SELECT {_COLUMNS} FROM web_sessions WHERE id = ? AND revoked_at IS NULL AND expires_at > ?",
            [session_id, iso(at)],
        ).fetchone()
        if row is None:
            return None
        with writing(self.db):
            self.db.execute(
                "UPDATE web_sessions SET revoked_at = ?, revoked_reason = ? WHERE id = ?", [iso(at), reason, session_id]
            )
        return _session(row)

    def revoke_user(self, user: str, at: datetime, reason: str, keep: int | None = None) -> int:
        """End every live session of ``user`` but ``keep``; how many ended."""
        with writing(self.db):
            cursor = self.db.execute(
                "UPDATE web_sessions SET revoked_at = ?, revoked_reason = ? "
                "WHERE user_name = ? AND revoked_at IS NULL AND id IS NOT ?",
                [iso(at), reason, user, keep],
            )
        return cursor.rowcount

    def revoke_others(self, users: Iterable[str], at: datetime, reason: str) -> int:
        """End every live session of anyone not in ``users`` (people removed from the config)."""
        names = sorted(set(users))
        marks = ", ".join("?" for _ in names)
        with writing(self.db):
            cursor = self.db.execute(
                "UPDATE web_sessions SET revoked_at = ?, revoked_reason = ? "
                f"WHERE revoked_at IS NULL AND user_name NOT IN ({marks})",
                [iso(at), reason, *names],
            )
        return cursor.rowcount

    def live(self, at: datetime, idle: timedelta | None = None) -> list[SessionRow]:
        """Sessions that would let someone in now, by user then most recently seen."""
        rows = self.db.execute(
            f"SELECT {_COLUMNS} FROM web_sessions WHERE revoked_at IS NULL AND expires_at > ? AND last_seen_at > ? "
            "ORDER BY user_name, last_seen_at DESC, id DESC",
            [iso(at), iso(at - idle) if idle is not None else ""],
        ).fetchall()
        return [_session(r) for r in rows]

    def live_count(self, at: datetime) -> int:
        row = self.db.execute(
            "SELECT count(*) FROM web_sessions WHERE revoked_at IS NULL AND expires_at > ?", [iso(at)]
        ).fetchone()
        return int(row[0])

    # -- failed log-ins ------------------------------------------------------------------------------

    def failures(self, keys: Iterable[tuple[str, str]]) -> list[Failures]:
        """The counters of these (kind, subject) pairs that exist."""
        found = []
        for kind, subject in keys:
            row = self.db.execute(
                "SELECT kind, subject, failures, first_at, last_at, locked_until FROM login_failures "
                "WHERE kind = ? AND subject = ?",
                [kind, subject[:SUBJECT_CHARS]],
            ).fetchone()
            if row is not None:
                found.append(_failures(row))
        return found

    def fail(self, kind: str, subject: str, at: datetime, forget_after: timedelta) -> Failures:
        """Count one failure; a counter quiet for ``forget_after`` starts again from one."""
        subject, now = subject[:SUBJECT_CHARS], iso(at)
        with writing(self.db):
            self.db.execute(
                "DELETE FROM login_failures WHERE last_at < ? AND (locked_until IS NULL OR locked_until < ?)",
                [iso(at - forget_after), now],
            )
            self.db.execute(
                "INSERT INTO login_failures (kind, subject, failures, first_at, last_at) VALUES (?, ?, 1, ?, ?) "
                "ON CONFLICT (kind, subject) DO UPDATE SET "
                "failures = CASE WHEN last_at <= ? THEN 1 ELSE failures + 1 END, "
                "first_at = CASE WHEN last_at <= ? THEN excluded.first_at ELSE first_at END, "
                "locked_until = CASE WHEN last_at <= ? THEN NULL ELSE locked_until END, "
                "last_at = excluded.last_at",
                [kind, subject, now, now, *[iso(at - forget_after)] * 3],
            )
        return self.failures([(kind, subject)])[0]

    def lock(self, kind: str, subject: str, until: datetime) -> None:
        with writing(self.db):
            self.db.execute(
                "UPDATE login_failures SET locked_until = ? WHERE kind = ? AND subject = ?",
                [iso(until), kind, subject[:SUBJECT_CHARS]],
            )

    def clear(self, kind: str, subject: str) -> None:
        """Forget a counter (an account's, after a right password)."""
        with writing(self.db):
            self.db.execute(
                "DELETE FROM login_failures WHERE kind = ? AND subject = ?", [kind, subject[:SUBJECT_CHARS]]
            )

    def locks(self, at: datetime) -> list[Failures]:
        """Accounts and addresses locked now, the longest lock first."""
        rows = self.db.execute(
            "SELECT kind, subject, failures, first_at, last_at, locked_until FROM login_failures "
            "WHERE locked_until > ? ORDER BY locked_until DESC, kind, subject",
            [iso(at)],
        ).fetchall()
        return [_failures(r) for r in rows]

    # -- passwords people set themselves -----------------------------------------------------------

    def password(self, user: str) -> StoredPassword | None:
        row = self.db.execute(
            "SELECT password_hash, replaces, changed_at FROM web_passwords WHERE user_name = ?", [user]
        ).fetchone()
        return StoredPassword(str(row[0]), str(row[1]), datetime.fromisoformat(str(row[2]))) if row else None

    def set_password(self, user: str, password_hash: str, replaces: str, at: datetime) -> None:
        with writing(self.db):
            self.db.execute(
                "INSERT INTO web_passwords (user_name, password_hash, replaces, changed_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (user_name) DO UPDATE SET password_hash = excluded.password_hash, "
                "replaces = excluded.replaces, changed_at = excluded.changed_at",
                [user, password_hash, replaces, iso(at)],
            )
