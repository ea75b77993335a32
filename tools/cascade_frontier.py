"""How the accurate mode's cascade trades customer care against everyday tweets (never run in CI).

The shipped heads are read as they are (nothing is trained); only the cascade's three knobs move: the blend (the
fast heads' share where e5 reads), the confidence gate and the negative bias. For each setting it prints the care
test split's accuracy and negative recall per language and the research validation sets' macro-F1 and
macro-recall, so the card's statement "no threshold meets both" can be checked. Embeddings are cached in
``var/cache/cascade-e5.npz`` (the first run embeds about 5,000 texts: several minutes on one core).

    python -m tools.cascade_frontier [--data ../shared/data/sentiment]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from rules.evaluation import scores
from rules.sentiment import TASKS, Embedder, SentimentClassifier, blend, confidence, decide, e5_signals
from rules.training import EmbeddingCache, Example, read_corpus, read_examples

BLENDS = (0.0, 0.2, 0.5)
GATES = (0.6, 0.8, 0.9)
BIASES = (0.0, 0.2, 0.4)


def probabilities(
    classifier: SentimentClassifier, cache: EmbeddingCache, examples: list[Example]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The fast heads' and the e5 head's probabilities for every example (both read everything)."""
    assert classifier.accurate is not None
    texts, languages, signals = (
        [e.text for e in examples],
        [e.language for e in examples],
        [e.signals for e in examples],
    )
    fast = classifier.fast_probabilities(classifier.fast_features(texts, languages, signals), languages)
    inputs = classifier.e5_features(cache(texts), e5_signals(texts, languages, signals))
    return fast, {t: classifier.accurate.heads.probabilities(t, inputs, languages) for t in TASKS}


def labels(
    fast: dict[str, np.ndarray], e5: dict[str, np.ndarray], languages: list[str], setting: tuple[float, float, float]
) -> list[str]:
    weight, gate, bias = setting
    use = confidence(fast) < gate
    mixed = blend(fast, e5, weight)
    chosen = {t: np.where(use[:, None], mixed[t], fast[t]) for t in TASKS}
    thresholds: dict[str, Any] = {"negative_bias": {"*": bias, "en": bias, "it": bias}, "needs_answer": {}}
    return [r.label for r in decide(chosen, languages, thresholds, "")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/sentiment"))
    args = parser.parse_args()
    classifier = SentimentClassifier.shipped("accurate", threads=1)
    cache = EmbeddingCache(Path("var/cache/cascade-e5.npz"), Embedder(1))
    Path("var/cache").mkdir(parents=True, exist_ok=True)
    sets = {"care": [e for e in read_corpus() if e.split == "test"]}
    for name in ("en_val.tsv", "it_val.tsv"):
        if (args.data / name).exists():
            sets[name] = read_examples(args.data / name)
    read = {name: probabilities(classifier, cache, examples) for name, examples in sets.items()}
    print("blend gate bias | care it acc/negrec | care en acc/negrec | research macro-F1/macro-recall")
    for setting in ((w, g, b) for w in BLENDS for g in GATES for b in BIASES):
        cells = []
        for name, examples in sets.items():
            predicted = labels(*read[name], [e.language for e in examples], setting)
            if name == "care":
                for language in ("it", "en"):
                    rows = [i for i, e in enumerate(examples) if e.language == language]
                    s = scores([examples[i].label for i in rows], [predicted[i] for i in rows])
                    cells.append(f"{s['accuracy']:5.1f}/{s['negative_recall']:5.1f}")
            else:
                s = scores([e.label for e in examples], predicted)
                cells.append(f"{name} {s['macro_f1']:5.1f}/{s['macro_recall']:5.1f}")
        print(f"{setting[0]:.1f} {setting[1]:.1f} {setting[2]:.1f} | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
