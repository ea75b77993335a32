"""A notifier that prints alerts and appends them to a JSON-lines file: dry runs and the demo."""

from __future__ import annotations

import json
import sys
import unicodedata
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

from notifiers.alert import Alert, Delivery

MARKS = {"info": "i", "success": "+", "warning": "!", "failure": "x"}


def printable(text: str) -> str:
    """Neutralise what a terminal would obey: control characters and bidi overrides become ``\\uXXXX``."""
    return "".join(
        ch if ch == "\n" or unicodedata.category(ch) not in ("Cc", "Cf") or ch == "\u200d" else f"\\u{ord(ch):04x}"
        for ch in text
    )


class LogNotifier:
    """Writes each alert to a stream (the console) and, if ``path`` is set, to a JSONL file."""

    def __init__(self, stream: TextIO | None = None, path: Path | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.path = path
        self.sent: list[Alert] = []

    def send(self, alert: Alert) -> Delivery:
        try:
            body = "\n".join(f"    {line}" for line in printable(alert.body).splitlines())
            self.stream.write(f"[{MARKS[alert.level]}] {alert.route}: {printable(alert.title)}\n{body}\n")
            self.stream.flush()
            if self.path is not None:
                with self.path.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(asdict(alert), ensure_ascii=False) + "\n")
        except OSError as error:
            return Delivery(False, f"cannot write the alert ({error.strerror})")
        self.sent.append(alert)
        return Delivery(True, "printed")
