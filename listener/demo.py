"""The `demo` source: replays the bundled sample of Caffè Aurora mentions, shifted relative to now.

It needs no credentials and no network, so a newcomer can watch passaparola work. The first poll fixes
an anchor time in the cursor; every later poll, and every restart on the same database, replays the same
times, so re-running never duplicates or moves a mention.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

from listener.model import Author, BrandReply, Mention, Poll, SourceError


def bundled_sample() -> Path:
    """Where the bundled sample lives inside the installed package."""
    return Path(str(resources.files("listener") / "data" / "demo_mentions.jsonl"))


@dataclass
class DemoSource:
    """Replays a JSONL sample (default: the bundled Caffè Aurora sample); ``#`` lines are comments."""

    kind: ClassVar[str] = "demo"
    name: str = "demo"
    path: str = ""

    def _rows(self) -> list[dict[str, Any]]:
        path = Path(self.path) if self.path else bundled_sample()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise SourceError(f"cannot read demo sample {path}: {error.strerror}; check sources.path") from None
        rows = []
        for number, line in enumerate(lines, start=1):
            if not line.strip() or line.startswith("#"):
                continue  # blank lines and comments (fixtures say what they test)
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise SourceError(f"{path}:{number}: not JSON ({error.msg}); fix or remove that line") from None
        return rows

    def poll(self, cursor: Mapping[str, Any] | None, now: datetime) -> Poll:
        anchor = datetime.fromisoformat(cursor["anchor"]) if cursor and "anchor" in cursor else now
        mentions: list[Mention] = []
        replies: list[BrandReply] = []
        for row in self._rows():
            at = anchor - timedelta(minutes=row["minutes_ago"])
            if at > now:
                continue
            if row["type"] == "reply":
                replies.append(
                    BrandReply(
                        platform=row["platform"],
                        platform_id=row["id"],
                        source=self.name,
                        published_at=at,
                        author_handle=row["author_handle"],
                        in_reply_to=row["in_reply_to"],
                        thread_id=row["thread"],
                        to_author_id=row["to_author_id"],
                        text=row["text"],
                        url=row["url"],
                    )
                )
                continue
            who = row["author"]
            mentions.append(
                Mention(
                    platform=row["platform"],
                    platform_id=row["id"],
                    source=self.name,
                    text=row["text"],
                    published_at=at,
                    url=row["url"],
                    thread_id=row["thread"],
                    in_reply_to=row["in_reply_to"],
                    language_hint=row.get("lang", ""),
                    metrics={"rating": int(row["rating"])} if row.get("rating") else {},
                    place=row.get("place", ""),
                    author=Author(
                        platform=row["platform"],
                        platform_id=who["id"],
                        handle=who["handle"],
                        display_name=who["name"],
                        reach=int(who["reach"]),
                    ),
                )
            )
        return Poll(mentions=tuple(mentions), replies=tuple(replies), cursor={"anchor": anchor.isoformat()})
