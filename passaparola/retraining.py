"""Teach it your brand: a candidate reading model from the shipped corpus plus the team's corrections, swapped in
only when it is not worse, on the project's test split and on the brand's own held-out labels; every swap is
recorded with both scores and can be rolled back.

The models live beside the database (``<storage folder>/models/<version>/``); the live one is the last swap's.
A team's corrections are split by the same text hash as the corpus: a fifth of them is never trained on and
judges every candidate.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rules.analysis import signals
from rules.sentiment import MODEL_DIR, ModelError, SentimentClassifier, normalise
from rules.training import CORPUS, Example, evaluate, read_corpus, split_of, train
from storage.store import Store

log = logging.getLogger("passaparola.retraining")

#: At least this many corrections before a candidate is worth building: fewer cannot judge it.
MIN_CORRECTIONS = 20


def models_root(database: Path) -> Path:
    return database.resolve().parent / "models"


def live_model_dir(store: Store, configured: Path | None) -> Path | None:
    """The folder the analyzer loads: the last swap's, else the configured one, else None (the shipped model)."""
    swap = store.models.live()
    if swap and Path(swap["to_dir"]).is_dir():
        return Path(swap["to_dir"])
    return configured


def brand_examples(store: Store) -> list[Example]:
    """The team's corrections as labelled examples: ``test`` (held out) or ``train`` by the corpus's text hash."""
    examples = []
    for row in store.mentions.corrections():
        split = "test" if split_of(row["text"]) == "test" else "train"
        read = signals(row["platform"], row["source"], row["stars"])
        examples.append(
            Example(normalise(row["text"]), row["label"], row["language"] or "", read, split=split, raw=row["text"])
        )
    return examples


def _summary(classifier: SentimentClassifier, examples: list[Example]) -> dict[str, float]:
    """One accuracy and negative recall over every language of ``examples`` (weighted by their counts)."""
    report = evaluate(classifier, examples, with_vader=False)
    total = sum(r["model"]["n"] for r in report.values()) or 1
    return {
        "accuracy": round(sum(r["model"]["accuracy"] * r["model"]["n"] for r in report.values()) / total, 1),
        "negative_recall": round(
            sum(r["model"].get("negative_recall", 0) * r["model"]["n"] for r in report.values()) / total, 1
        ),
        "n": total,
    }


@dataclass(frozen=True)
class Outcome:
    swapped: bool
    reason: str
    live: dict[str, Any]
    candidate: dict[str, Any]
    version: str = ""


def retrain(
    store: Store, database: Path, configured: Path | None, now: datetime, threads: int = 2, corpus: Path = CORPUS
) -> Outcome:
    """Build a candidate on the corpus and the team's training corrections; swap it in if not worse on both
    the corpus's test split and the held-out corrections. Records the attempt, whatever its outcome."""
    brand = brand_examples(store)
    if len(brand) < MIN_CORRECTIONS:
        raise ModelError(
            f"only {len(brand)} corrections: label at least {MIN_CORRECTIONS} mentions (the dashboard's "
            "'Teach' page shows the ones the model is least sure of) before retraining"
        )
    held_out = [e for e in brand if e.split == "test"]
    learned = [e for e in brand if e.split == "train"]
    examples = read_corpus(corpus)
    cache = models_root(database) / "e5-cache.npz"  # the corpus is embedded once, not at every retraining
    fast, accurate = train([*examples, *learned], seed=13, threads=threads, cache=cache)
    assert accurate is not None
    version = f"brand-{now.strftime('%Y%m%dT%H%M%S')}"
    folder = models_root(database) / version
    fast.version, accurate.version = f"fast-{version}", f"accurate-{version}"
    accurate.card["fast_version"] = fast.version
    for model in (fast, accurate):
        model.card["data"] = ["care corpus (train split)", f"{len(learned)} of the team's corrections"]
        model.save(folder / f"sentiment-{model.mode}.npz")

    live_dir = live_model_dir(store, configured) or MODEL_DIR
    live = SentimentClassifier.shipped("accurate", threads, live_dir)
    candidate = SentimentClassifier.shipped("accurate", threads, folder)
    corpus_test = [e for e in examples if e.split == "test" and e.sector != "general"]
    scores: dict[str, dict[str, Any]] = {
        "live": {"version": live.model.version, "corpus_test": _summary(live, corpus_test)},
        "candidate": {"version": candidate.model.version, "corpus_test": _summary(candidate, corpus_test)},
    }
    if held_out:
        scores["live"]["brand_held_out"] = _summary(live, held_out)
        scores["candidate"]["brand_held_out"] = _summary(candidate, held_out)
    worse = [
        f"{split} {metric} {scores['candidate'][split][metric]} < {scores['live'][split][metric]}"
        for split in ("corpus_test", "brand_held_out")
        if split in scores["live"]
        for metric in ("accuracy", "negative_recall")
        if scores["candidate"][split][metric] < scores["live"][split][metric]
    ]
    swapped = not worse
    reason = "not worse on the corpus test split and the held-out corrections" if swapped else "; ".join(worse)
    store.models.record(
        "swap" if swapped else "rejected",
        from_dir=str(live_dir),
        to_dir=str(folder),
        from_version=live.model.version,
        to_version=candidate.model.version,
        scores=scores,
        reason=reason,
        at=now,
    )
    log.info(
        "sentiment retrain: candidate %s %s (%s); scores %s",
        candidate.model.version,
        "swapped in" if swapped else "rejected",
        reason,
        json.dumps(scores),
    )
    return Outcome(swapped, reason, scores["live"], scores["candidate"], candidate.model.version)


def rollback(store: Store, now: datetime) -> dict[str, Any]:
    """Go back to the model live before the last swap; raises ModelError when nothing was swapped."""
    swap = store.models.live()
    if swap is None:
        raise ModelError("no retrained model is live: the shipped (or configured) model is already in use")
    store.models.record(
        "rollback",
        from_dir=swap["to_dir"],
        to_dir=swap["from_dir"],
        from_version=swap["to_version"],
        to_version=swap["from_version"],
        scores={},
        reason=f"rolled back swap {swap['id']}",
        at=now,
    )
    return swap
