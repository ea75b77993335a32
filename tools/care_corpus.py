"""The customer-care corpus (``rules/care_corpus/corpus.jsonl``): check a writer's part, and add it to the corpus.

Writers type rows in a compact tab-separated form, one row a line. A customer-care row has ten columns::

    language channel stars sector sentiment needs kind aspects style text

``stars`` is 1-5 or ``-``; ``sentiment`` is ``neg``/``neu``/``pos``; ``needs`` is ``y``/``n``; ``aspects`` is ``-``
or ``term=neg;other term=pos``; ``style`` is ``-`` or a comma list; ``text`` has no tab (``\\n`` for a line break).
A general social-media row (sentiment only, no needs-answer or kind) has four: ``language channel sentiment text``.

    python tools/care_corpus.py check part.tsv      # errors and the part's make-up
    python tools/care_corpus.py add part.tsv ...    # append the part's new texts to the corpus, with their splits
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parent.parent / "rules" / "care_corpus" / "corpus.jsonl"
LANGUAGES = ("it", "en")
CHANNELS = ("x", "facebook", "instagram", "review", "forum", "appstore", "googleplay", "email", "phone", "blog")
RATED_CHANNELS = ("review", "appstore", "googleplay")
SECTORS = ("food", "ecommerce", "telco", "bank", "transport", "utility", "gym", "hotel")
SENTIMENTS = {"neg": "negative", "neu": "neutral", "pos": "positive"}
KINDS = (
    "complaint", "question", "request", "suggestion", "praise", "thanks", "mixed", "sarcasm", "news", "share",
    "spam", "homonym",
)  # fmt: skip
NEVER_ANSWERED = ("news", "share", "spam", "homonym", "praise", "thanks")
ALWAYS_ANSWERED = ("complaint", "question", "request", "suggestion", "sarcasm")
STYLES = ("typo", "no_accents", "dialect", "slang", "emoji", "caps", "short", "long", "code_mix")
COLUMNS = 10


def split_of(text: str) -> str:
    """70/10/20 by a hash of the lowercased text: the same text can never be on both sides."""
    bucket = int(hashlib.sha256(text.strip().lower().encode("utf-8")).hexdigest()[:8], 16) % 100
    return "train" if bucket < 70 else "dev" if bucket < 80 else "test"


GENERAL_CHANNELS = ("x", "facebook", "instagram", "forum", "blog")


def parse_general(parts: list[str]) -> dict[str, Any]:
    """A general social-media row: language, channel, sentiment, text."""
    language, channel, sentiment, text = (p.strip() for p in parts)
    problems = []
    if language not in LANGUAGES:
        problems.append(f"language {language!r} not in {LANGUAGES}")
    if channel not in GENERAL_CHANNELS:
        problems.append(f"channel {channel!r} not in {GENERAL_CHANNELS}")
    if sentiment not in SENTIMENTS:
        problems.append(f"sentiment {sentiment!r} must be neg, neu or pos")
    if len(text) < 2:
        problems.append("text is empty")
    if problems:
        raise ValueError("; ".join(problems))
    return {
        "text": text.replace("\\n", "\n"),
        "language": language,
        "channel": channel,
        "stars": None,
        "sector": "general",
        "sentiment": SENTIMENTS[sentiment],
        "needs_answer": None,
        "kind": None,
        "aspects": [],
        "style": [],
    }


def parse_line(line: str) -> dict[str, Any]:
    """One compact row into a corpus record; raises ValueError naming the field that is wrong."""
    parts = line.rstrip("\n").split("\t")
    if len(parts) == 4:
        return parse_general(parts)
    if len(parts) != COLUMNS:
        raise ValueError(f"expected {COLUMNS} tab-separated columns, got {len(parts)}")
    language, channel, stars, sector, sentiment, needs, kind, aspects, style, text = (p.strip() for p in parts)
    text = text.replace("\\n", "\n")
    problems = []
    if language not in LANGUAGES:
        problems.append(f"language {language!r} not in {LANGUAGES}")
    if channel not in CHANNELS:
        problems.append(f"channel {channel!r} not in {CHANNELS}")
    rating: int | None = None
    if stars != "-":
        if stars not in {"1", "2", "3", "4", "5"}:
            problems.append(f"stars {stars!r} must be 1-5 or -")
        else:
            rating = int(stars)
    if channel in RATED_CHANNELS and rating is None:
        problems.append(f"channel {channel} needs stars 1-5")
    if channel not in RATED_CHANNELS and rating is not None:
        problems.append(f"channel {channel} has no stars: use -")
    if sector not in SECTORS:
        problems.append(f"sector {sector!r} not in {SECTORS}")
    if sentiment not in SENTIMENTS:
        problems.append(f"sentiment {sentiment!r} must be neg, neu or pos")
    if needs not in {"y", "n"}:
        problems.append(f"needs {needs!r} must be y or n")
    if kind not in KINDS:
        problems.append(f"kind {kind!r} not in {KINDS}")
    if kind in NEVER_ANSWERED and needs == "y":
        problems.append(f"kind {kind} never needs an answer: use n")
    if kind in ALWAYS_ANSWERED and needs == "n":
        problems.append(f"kind {kind} always needs an answer: use y")
    if kind in ("news", "share", "spam", "homonym") and sentiment != "neu":
        problems.append(f"kind {kind} is neutral: use neu")
    if kind in ("complaint", "sarcasm") and sentiment != "neg":
        problems.append(f"kind {kind} is negative: use neg")
    if kind in ("praise", "thanks") and sentiment != "pos":
        problems.append(f"kind {kind} is positive: use pos")
    found_aspects = []
    if aspects != "-":
        for item in aspects.split(";"):
            term, _, polarity = item.partition("=")
            term = term.strip()
            if polarity.strip() not in SENTIMENTS or not term:
                problems.append(f"aspect {item!r} must be term=neg|neu|pos")
            elif term.lower() not in text.lower():
                problems.append(f"aspect term {term!r} does not occur in the text")
            else:
                found_aspects.append({"term": term, "sentiment": SENTIMENTS[polarity.strip()]})
    if kind == "mixed" and len(found_aspects) < 2:
        problems.append("kind mixed needs at least two aspects (term=pos;term=neg)")
    styles = [] if style == "-" else [s.strip() for s in style.split(",")]
    problems.extend(f"style {s!r} not in {STYLES}" for s in styles if s not in STYLES)
    if not text or len(text) < 2:
        problems.append("text is empty")
    if problems:
        raise ValueError("; ".join(problems))
    return {
        "text": text,
        "language": language,
        "channel": channel,
        "stars": rating,
        "sector": sector,
        "sentiment": SENTIMENTS[sentiment],
        "needs_answer": needs == "y",
        "kind": kind,
        "aspects": found_aspects,
        "style": styles,
    }


def read_part(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    rows, errors = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            rows.append(parse_line(line))
        except ValueError as error:
            errors.append(f"{path.name}:{number}: {error}")
    return rows, errors


def describe(rows: list[dict[str, Any]]) -> str:
    def share(counter: Counter[Any]) -> str:
        return ", ".join(f"{k} {v}" for k, v in counter.most_common())

    return "\n".join(
        [
            f"rows {len(rows)}",
            "language: " + share(Counter(r["language"] for r in rows)),
            "sentiment: " + share(Counter(r["sentiment"] for r in rows)),
            "needs_answer: " + share(Counter(r["needs_answer"] for r in rows)),
            "kind: " + share(Counter(r["kind"] for r in rows)),
            "channel: " + share(Counter(r["channel"] for r in rows)),
            "sector: " + share(Counter(r["sector"] for r in rows)),
            "style: " + share(Counter(s for r in rows for s in r["style"])),
        ]
    )


def check(paths: list[Path]) -> int:
    status = 0
    for path in paths:
        rows, errors = read_part(path)
        duplicates = [t for t, n in Counter(r["text"].strip().lower() for r in rows).items() if n > 1]
        for error in errors:
            print(error)
        for text in duplicates:
            print(f"{path.name}: duplicate text: {text[:80]!r}")
        print(describe(rows))
        status = status or int(bool(errors or duplicates))
    return status


def add(paths: list[Path], corpus: Path) -> int:
    """Append the parts' rows whose text the corpus does not hold yet, with ids, writers and splits; refuse on
    any bad row (nothing is written then)."""
    existing = [json.loads(line) for line in corpus.read_text(encoding="utf-8").splitlines()] if corpus.exists() else []
    seen = {r["text"].strip().lower() for r in existing}
    taken = Counter(r["writer"] for r in existing)
    records, errors = [], []
    for path in paths:
        rows, part_errors = read_part(path)
        errors.extend(part_errors)
        for row in rows:
            folded = row["text"].strip().lower()
            if folded in seen:
                continue
            seen.add(folded)
            taken[path.stem] += 1
            ident = f"{path.stem}-{taken[path.stem]:04d}"
            records.append({"id": ident, "writer": path.stem, **row, "split": split_of(row["text"])})
    if errors:
        print("\n".join(errors), file=sys.stderr)
        print(f"{len(errors)} bad rows: fix them, nothing was added", file=sys.stderr)
        return 1
    corpus.parent.mkdir(parents=True, exist_ok=True)
    with corpus.open("a", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"added {len(records)} rows to {corpus}")
    everything = existing + records
    print(describe(everything))
    print("split: " + ", ".join(f"{k} {v}" for k, v in Counter(r["split"] for r in everything).most_common()))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    checking = sub.add_parser("check", help="check parts and print their make-up")
    checking.add_argument("paths", nargs="+", type=Path)
    adding = sub.add_parser("add", help="append parts to the corpus")
    adding.add_argument("paths", nargs="+", type=Path)
    adding.add_argument("--corpus", type=Path, default=CORPUS)
    args = parser.parse_args(argv)
    return check(args.paths) if args.command == "check" else add(args.paths, args.corpus)


if __name__ == "__main__":
    sys.exit(main())
