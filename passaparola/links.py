"""Links shown to people, in the pages, the API and the exports: absolute http(s) only."""

from __future__ import annotations

from urllib.parse import urlsplit


def safe_url(url: str | None) -> str:
    """``url`` if it is an absolute http(s) link, else "" (no ``javascript:``, ``data:`` or relative tricks)."""
    if not url:
        return ""
    parts = urlsplit(url.strip())
    return url.strip() if parts.scheme in ("http", "https") and parts.netloc else ""
