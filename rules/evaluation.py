"""Scoring the reading model: accuracy, macro-F1 and the recall of complaints per language, with VADER's scores
beside as the baseline. What `passaparola sentiment eval`, the model cards and a retrain's swap decision read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from rules.sentiment import LABELS, SentimentClassifier

if TYPE_CHECKING:
    from rules.training import Example


def scores(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    """Accuracy, macro-F1, macro-recall and negative recall over the three labels, in percent."""
    from sklearn.metrics import accuracy_score, f1_score, recall_score

    if not truth:
        return {"n": 0}
    recalls = recall_score(truth, predicted, labels=list(LABELS), average=None, zero_division=0)
    return {
        "accuracy": round(100 * float(accuracy_score(truth, predicted)), 1),
        "macro_f1": round(100 * float(f1_score(truth, predicted, labels=list(LABELS), average="macro")), 1),
        "macro_recall": round(100 * float(np.mean(recalls)), 1),
        "negative_recall": round(100 * float(recalls[0]), 1),
        "n": len(truth),
    }


def vader_label(analyzer: Any, text: str) -> str:
    """VADER's own thresholds (±0.05), the baseline reported beside our model."""
    compound = analyzer.polarity_scores(text)["compound"]
    return "positive" if compound >= 0.05 else "negative" if compound <= -0.05 else "neutral"


def evaluate(
    classifier: SentimentClassifier, examples: Iterable[Example], with_vader: bool = True
) -> dict[str, dict[str, Any]]:
    """Per language: the model's scores, needs-answer accuracy where labelled, and VADER's scores beside."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    vader = SentimentIntensityAnalyzer() if with_vader else None
    by_language: dict[str, list[Example]] = {}
    for example in examples:
        by_language.setdefault(example.language, []).append(example)
    report: dict[str, dict[str, Any]] = {}
    for language, group in sorted(by_language.items()):
        readings = classifier.predict([e.text for e in group], [language] * len(group), [e.signals for e in group])
        model = scores([e.label for e in group], [r.label for r in readings])
        labelled = [(e, r) for e, r in zip(group, readings, strict=True) if e.needs_answer is not None]
        if labelled:
            model["needs_answer_accuracy"] = round(
                100 * float(np.mean([e.needs_answer == r.needs_answer for e, r in labelled])), 1
            )
        model["e5_share"] = round(100 * float(np.mean([r.read_by == "e5" for r in readings])), 1)
        report[language] = {"model": model}
        if vader is not None:
            report[language]["vader"] = scores(
                [e.label for e in group], [vader_label(vader, e.raw or e.text) for e in group]
            )
    return report
