"""Who may do what: people log in with a password (argon2 hashes in the config), programs send an API token;
both carry a role. Sessions are signed cookies (Starlette's SessionMiddleware); every form and every cookie-borne
API write carries the session's CSRF token."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from starlette.requests import Request

from passaparola.config import WebSettings
from passaparola.web.service import Principal, ServiceError

_hasher = PasswordHasher()
#: Verified against when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY = _hasher.hash("not a password anyone has")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def hash_password(password: str) -> str:
    """An argon2id hash for ``web.users[].password_hash``."""
    return _hasher.hash(password)


class Gate:
    """Checks passwords, tokens, sessions and CSRF tokens against the web settings."""

    def __init__(self, web: WebSettings) -> None:
        self.users = {u.name: u for u in web.users}
        self.tokens = [
            (hashlib.sha256(t.token.get_secret_value().encode()).digest(), Principal(t.name, t.role, "", "token"))
            for t in web.tokens
        ]

    def login(self, name: str, password: str) -> Principal | None:
        user = self.users.get(name)
        stored = user.password_hash.get_secret_value() if user else _DUMMY
        try:
            _hasher.verify(stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if user is None:
            return None
        return Principal(user.name, user.role, user.member or user.name, "session")

    def token(self, given: str) -> Principal | None:
        digest = hashlib.sha256(given.encode()).digest()
        found = None
        for expected, principal in self.tokens:  # compare against every token: no early exit to time
            if hmac.compare_digest(digest, expected):
                found = principal
        return found

    def principal(self, request: Request) -> Principal | None:
        """The caller: a bearer token if one is sent, else the session's user (if still configured)."""
        header = request.headers.get("authorization", "")
        if header.startswith("Bearer "):
            return self.token(header.removeprefix("Bearer ").strip())
        name = request.session.get("user")
        user = self.users.get(name) if isinstance(name, str) else None
        if user is None:
            return None
        return Principal(user.name, user.role, user.member or user.name, "session")

    def require(self, request: Request, role: str) -> Principal:
        """The caller if they hold ``role`` (401 when nobody is logged in, 403 when the role is too low)."""
        who = self.principal(request)
        if who is None:
            raise ServiceError(401, "log in, or send Authorization: Bearer <an API token from web.tokens>")
        if not who.can(role):
            raise ServiceError(403, f"{who.name} is {who.role}; this needs {role} or above")
        return who


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use."""
    token = request.session.get("csrf")
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def check_csrf(request: Request, who: Principal | None, given: str) -> None:
    """Refuse a state-changing request from a browser session without the session's token (403)."""
    if request.method in SAFE_METHODS or (who is not None and who.via == "token"):
        return
    expected = request.session.get("csrf")
    given = given or request.headers.get("x-csrf-token", "")
    if not isinstance(expected, str) or not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise ServiceError(403, "missing or wrong CSRF token; reload the page and try again")
