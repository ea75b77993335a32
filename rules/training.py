"""Training the reading model: the labelled examples, the heads, the thresholds (the scores: `rules.evaluation`).

The default model is fitted on the project's customer-care corpus (``data/care-corpus``, MIT) and nothing else:
penalties, per-language heads, thresholds and the accurate mode's gate are chosen on its ``dev`` split, the
figures we publish come from its ``test`` split. Research sets are read only to be scored.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from rules.evaluation import evaluate as evaluate  # re-exported: callers import it from here
from rules.evaluation import scores as scores
from rules.evaluation import vader_label as vader_label
from rules.sentiment import (
    ANY_LANGUAGE,
    CHANNELS,
    LABELS,
    MODEL_DIR,
    MODEL_LANGUAGES,
    TASK_LABELS,
    TASKS,
    Embedder,
    Heads,
    ModelError,
    ReadingModel,
    SentimentClassifier,
    Signals,
    blend,
    confidence,
    decide,
    e5_signals,
    normalise,
)

CORPUS = Path(__file__).parent / "care_corpus" / "corpus.jsonl"
SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Example:
    """One labelled mention; ``needs_answer`` and ``kind`` are None where the source does not label them."""

    text: str  # normalised
    label: str
    language: str
    signals: Signals = field(default_factory=Signals)
    needs_answer: bool | None = None
    kind: str | None = None
    split: str = "train"
    aspects: tuple[tuple[str, str], ...] = ()
    style: tuple[str, ...] = ()
    raw: str = ""
    sector: str = ""  # "general" for everyday posts (sentiment only), else the business a care mention is about


def split_of(text: str) -> str:
    """70/10/20 by a hash of the lowercased text, the rule the corpus was split by (and a team's own labels are)."""
    bucket = int(hashlib.sha256(text.strip().lower().encode("utf-8")).hexdigest()[:8], 16) % 100
    return "train" if bucket < 70 else "dev" if bucket < 80 else "test"


def read_corpus(path: Path = CORPUS) -> list[Example]:
    """The customer-care corpus (JSONL, one labelled mention a line, see its GUIDE.md)."""
    examples = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ModelError(f"{path}: cannot read the corpus ({error.strerror}); reinstall or pass --corpus") from None
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
            examples.append(
                Example(
                    text=normalise(row["text"]),
                    label=row["sentiment"],
                    language=row["language"],
                    signals=Signals(row["channel"] if row["channel"] in CHANNELS else "", row.get("stars")),
                    needs_answer=None if row["needs_answer"] is None else bool(row["needs_answer"]),
                    kind=row["kind"],
                    split=row["split"],
                    aspects=tuple((a["term"], a["sentiment"]) for a in row.get("aspects", [])),
                    style=tuple(row.get("style", [])),
                    raw=row["text"],
                    sector=row.get("sector", ""),
                )
            )
        except (ValueError, KeyError, TypeError) as error:
            raise ModelError(f"{path}:{number}: not a corpus row ({error})") from None
    return examples


def read_examples(path: Path, language: str | None = None) -> list[Example]:
    """Read ``text<TAB>label[<TAB>language]`` lines (research sets, exported corrections): sentiment only."""
    default = language or path.name[:2].lower()
    examples: list[Example] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 2 or not parts[0].strip():
                if line.strip():
                    raise ModelError(f"{path}:{number}: expected text<TAB>label[<TAB>language], got {line[:60]!r}")
                continue
            label = parts[1].strip().lower()
            if label not in LABELS:
                raise ModelError(f"{path}:{number}: label {label!r} is not one of {', '.join(LABELS)}")
            lang = parts[2].strip().lower() if len(parts) > 2 and parts[2].strip() else default
            examples.append(Example(normalise(parts[0]), label, lang, split=split_of(parts[0]), raw=parts[0]))
    return examples


class EmbeddingCache:
    """Embeddings of texts already seen, on disk, so retraining and evaluation do not embed twice."""

    def __init__(self, path: Path | None, embedder: Embedder) -> None:
        self.path, self.embedder = path, embedder
        self._vectors: dict[str, np.ndarray] = {}
        if path is not None and path.exists():
            with np.load(path, allow_pickle=False) as data:
                self._vectors = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]

    def __call__(self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        missing = sorted({t for t in texts if self._key(t) not in self._vectors})
        for start in range(0, len(missing), 256):
            chunk = missing[start : start + 256]
            for text, vector in zip(chunk, self.embedder(chunk), strict=True):
                self._vectors[self._key(text)] = vector
            if progress:
                progress(min(start + 256, len(missing)), len(missing))
            if start % 2560 == 0:
                self.save()
        self.save()
        return np.stack([self._vectors[self._key(t)] for t in texts]) if texts else np.zeros((0, Embedder.dim))

    def save(self) -> None:
        if self.path is None or not self._vectors:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self._vectors), dtype="U24")
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=keys, vectors=np.stack(list(self._vectors.values())))
        os.replace(tmp, self.path)


# --- fitting ----------------------------------------------------------------------------------------------


def _objective(task: str, truth: np.ndarray, predicted: np.ndarray) -> float:
    """What the development split maximises: accuracy, and for sentiment also the recall of complaints."""
    accuracy = float(np.mean(truth == predicted))
    if task != "sentiment":
        return accuracy
    negatives = truth == 0
    return accuracy + 0.5 * (float(np.mean(predicted[negatives] == 0)) if negatives.any() else 0.0)


@dataclass
class TaskData:
    """The rows of one task that carry its label, as class indices."""

    rows: np.ndarray
    labels: np.ndarray


def task_data(examples: Sequence[Example], task: str) -> TaskData:
    rows, labels = [], []
    for index, e in enumerate(examples):
        value: Any = e.label if task == "sentiment" else e.needs_answer if task == "needs_answer" else e.kind
        if value is None:
            continue
        rows.append(index)
        labels.append(int(value) if task == "needs_answer" else TASK_LABELS[task].index(value))
    return TaskData(np.array(rows, dtype=int), np.array(labels, dtype=int))


def _regression(task: str, c: float, seed: int, sparse: bool = True) -> Any:
    """Class-balanced (a rare kind, or the rarer answer, counts as much as a common one); saga is the quick solver
    over hashed sparse features, lbfgs over the e5 head's few dense ones."""
    from sklearn.linear_model import LogisticRegression

    weights = "balanced"
    solver = "saga" if sparse else "lbfgs"
    return LogisticRegression(C=c, class_weight=weights, solver=solver, max_iter=300, tol=1e-3, random_state=seed)


def _as_rows(fitted: Any, task: str) -> tuple[np.ndarray, np.ndarray]:
    """A fitted regression's weights as (classes, features) over every label of the task (absent ones get -inf)."""
    classes = len(TASK_LABELS[task])
    if classes == 2:
        return fitted.coef_.astype(np.float32), fitted.intercept_.astype(np.float64)
    coef = np.zeros((classes, fitted.coef_.shape[1]), dtype=np.float32)
    intercept = np.full(classes, -30.0)
    for row, label in enumerate(fitted.classes_):
        coef[label], intercept[label] = fitted.coef_[row], fitted.intercept_[row]
    return coef, intercept


def _probabilities(coef: np.ndarray, intercept: np.ndarray, features: Any, task: str) -> np.ndarray:
    heads = Heads({task: (ANY_LANGUAGE,)}, {task: coef[None]}, {task: intercept[None]})
    return heads.probabilities(task, features, [None] * features.shape[0])


@dataclass
class FitReport:
    penalties: dict[str, dict[str, float]] = field(default_factory=dict)
    routes: dict[str, dict[str, str]] = field(default_factory=dict)


def fit_heads(
    train_x: Any,
    train: Sequence[Example],
    dev_x: Any,
    dev: Sequence[Example],
    grid: Sequence[float],
    seed: int,
    report: FitReport,
    name: str,
    fallback: Heads | None = None,
) -> Heads:
    """For each task: a head over every language and one per model language, each penalty picked on ``dev``;
    a language keeps its own head only where it beats the shared one on ``dev``."""
    train_languages = np.array([e.language for e in train])
    dev_languages = np.array([e.language for e in dev])
    names: dict[str, tuple[str, ...]] = {}
    coef: dict[str, np.ndarray] = {}
    intercept: dict[str, np.ndarray] = {}
    for task in TASKS:
        fit_rows, dev_rows = task_data(train, task), task_data(dev, task)
        fitted: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
        for head in (ANY_LANGUAGE, *MODEL_LANGUAGES):
            mask = np.ones(len(fit_rows.rows), bool) if head == ANY_LANGUAGE else train_languages[fit_rows.rows] == head
            dev_mask = (
                np.ones(len(dev_rows.rows), bool) if head == ANY_LANGUAGE else dev_languages[dev_rows.rows] == head
            )
            rows, labels = fit_rows.rows[mask], fit_rows.labels[mask]
            if len(np.unique(labels)) < 2 or len(rows) < 50 or not dev_mask.any():
                continue
            best: tuple[float, float, Any] = (-1.0, grid[0], None)
            for c in grid:
                model = _regression(task, c, seed, sparse=not isinstance(train_x, np.ndarray)).fit(
                    train_x[rows], labels
                )
                weights = _as_rows(model, task)
                probs = _probabilities(*weights, dev_x[dev_rows.rows[dev_mask]], task)
                score = _objective(task, dev_rows.labels[dev_mask], probs.argmax(axis=1))
                if score > best[0]:
                    best = (score, c, weights)
            fitted[head] = (best[2][0], best[2][1], best[1])
        if ANY_LANGUAGE not in fitted and fallback is not None and task != "sentiment":
            # Data that labels sentiment alone (a team's corrections, a TSV): this task's heads come from the model
            # shipped with passaparola, which was fitted on the same features.
            names[task], coef[task], intercept[task] = (
                fallback.heads[task],
                fallback.coef[task],
                fallback.intercept[task],
            )
            report.penalties.setdefault(name, {})[task] = 0.0
            report.routes.setdefault(name, {})[task] = "shipped"
            continue
        if ANY_LANGUAGE not in fitted:
            raise ModelError(f"training needs examples of at least two labels for {task}")
        route: dict[str, str] = {}
        for language in MODEL_LANGUAGES:
            dev_mask = dev_languages[dev_rows.rows] == language
            if language not in fitted or not dev_mask.any():
                route[language] = ANY_LANGUAGE
                continue
            truth = dev_rows.labels[dev_mask]
            own = _probabilities(fitted[language][0], fitted[language][1], dev_x[dev_rows.rows[dev_mask]], task)
            shared = _probabilities(*fitted[ANY_LANGUAGE][:2], dev_x[dev_rows.rows[dev_mask]], task)
            better = _objective(task, truth, own.argmax(axis=1)) > _objective(task, truth, shared.argmax(axis=1))
            route[language] = language if better else ANY_LANGUAGE
        names[task] = (*(lang for lang in MODEL_LANGUAGES if route[lang] == lang), ANY_LANGUAGE)
        coef[task] = np.stack([fitted[h][0] for h in names[task]])
        intercept[task] = np.stack([fitted[h][1] for h in names[task]])
        report.penalties.setdefault(name, {})[task] = fitted[ANY_LANGUAGE][2]
        report.routes.setdefault(name, {})[task] = ", ".join(f"{k}→{v}" for k, v in route.items())
    return Heads(names, coef, intercept)


#: The negative bias keeps at least this recall of complaints on the development split, then maximises accuracy.
NEGATIVE_RECALL_FLOOR = 0.9


def choose_thresholds(probabilities: dict[str, np.ndarray], dev: Sequence[Example]) -> dict[str, Any]:
    """Per language, the negative bias (the most accurate one that still finds `NEGATIVE_RECALL_FLOOR` of the
    complaints) and the needs-answer threshold that score best on the development split."""
    thresholds: dict[str, dict[str, float]] = {"negative_bias": {}, "needs_answer": {}}
    languages = np.array([e.language for e in dev])
    for language in (*MODEL_LANGUAGES, ANY_LANGUAGE):
        mask = np.ones(len(dev), bool) if language == ANY_LANGUAGE else languages == language
        if not mask.any():
            continue
        truth = np.array([LABELS.index(e.label) for e in dev])[mask]
        # The floor is on complaints: everyday posts' negatives (a lost match, a rainy day) count for accuracy only,
        # else the more of them the corpus holds, the more everyday posts the bias calls negative.
        care = np.array([e.sector != "general" for e in dev])[mask]
        complaints = (truth == 0) & care if ((truth == 0) & care).any() else truth == 0
        logs = np.log(np.clip(probabilities["sentiment"][mask], 1e-9, 1.0))
        candidates = []
        for bias in np.arange(-0.5, 1.51, 0.1):
            shifted = logs.copy()
            shifted[:, 0] += bias
            predicted = shifted.argmax(axis=1)
            recall = float(np.mean(predicted[complaints] == 0)) if complaints.any() else 1.0
            accuracy = float(np.mean(predicted == truth)) - abs(bias) * 1e-4  # ties: nearer 0
            candidates.append(
                (recall >= NEGATIVE_RECALL_FLOOR, accuracy if recall >= NEGATIVE_RECALL_FLOOR else recall, bias)
            )
        thresholds["negative_bias"][language] = round(float(max(candidates)[2]), 2)
        labelled = np.array([e.needs_answer is not None for e in dev]) & mask
        if labelled.any():
            needs_truth = np.array([bool(e.needs_answer) for e in dev])[labelled]
            yes = probabilities["needs_answer"][labelled][:, 1]
            cuts = np.arange(0.2, 0.81, 0.025)
            accuracies = [float(np.mean((yes >= cut) == needs_truth)) - abs(cut - 0.5) * 1e-3 for cut in cuts]
            thresholds["needs_answer"][language] = round(float(cuts[int(np.argmax(accuracies))]), 3)
    return thresholds


#: The e5 head embeds at most this share of the development split: it is the costly part of the accurate mode.
MAX_E5_SHARE = 0.45


def choose_gate(
    fast: dict[str, np.ndarray], e5: dict[str, np.ndarray], dev: Sequence[Example], thresholds: dict[str, Any]
) -> tuple[float, float, float]:
    """The confidence gate and blend that score best on the development split with at most `MAX_E5_SHARE` of it
    embedded. Returns the gate, the blend (the fast heads' share) and the share of development mentions embedded."""
    languages = [e.language for e in dev]
    truth = np.array([LABELS.index(e.label) for e in dev])
    needs_rows = np.array([e.needs_answer is not None for e in dev])
    needs_truth = np.array([bool(e.needs_answer) for e in dev])
    sure = confidence(fast)
    best = (-1.0, 0.0, 1.0, 0.0)
    for gate in np.arange(0.3, 1.0, 0.05):
        use = sure < gate
        if np.mean(use) > MAX_E5_SHARE:
            break
        for weight in (0.0, 0.2, 0.3, 0.4, 0.5, 0.6):
            mixed = blend(fast, e5, weight)
            chosen = {t: np.where(use[:, None], mixed[t], fast[t]) for t in TASKS}
            readings = decide(chosen, languages, thresholds, "")
            score = _objective("sentiment", truth, np.array([LABELS.index(r.label) for r in readings]))
            needs = np.array([r.needs_answer for r in readings])
            score += float(np.mean(needs[needs_rows] == needs_truth[needs_rows]))
            if score > best[0] + 1e-9:
                best = (score, round(float(gate), 3), weight, round(float(np.mean(use)), 3))
    return best[1], best[2], best[3]


def _shipped(mode: str, n_chars: int, n_words: int) -> Heads | None:
    """The shipped model's heads of ``mode``, where its features are the ones being trained (else None)."""
    try:
        model = ReadingModel.load(MODEL_DIR / f"sentiment-{mode}.npz")
    except ModelError:
        return None
    same = mode == "accurate" or (model.n_chars, model.n_words) == (n_chars, n_words)
    return model.heads if same else None


_USER = re.compile(r"\s*@user\b[,:]?")


def without_handles(examples: Sequence[Example]) -> list[Example]:
    """The training rows, plus a copy without its handles of each customer-care row that addresses someone.

    Keyword search hears complaints that name no handle at all; without the copies the model learns that a post
    without ``@user`` is news or a namesake, because the corpus's writers mostly addressed the brand."""
    extra = []
    for e in examples:
        if e.sector != "general" and "@user" in e.text:
            bare = _USER.sub(" ", e.text).strip()
            if len(bare) > 3:
                extra.append(replace(e, text=bare))
    return [*examples, *extra]


def train(
    examples: Sequence[Example],
    seed: int = 13,
    version: str = "",
    n_chars: int = 2**16,
    n_words: int = 2**15,
    threads: int | None = None,
    cache: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    with_accurate: bool = True,
) -> tuple[ReadingModel, ReadingModel | None]:
    """Fit the fast model on the ``train`` rows, then the e5 head over it; choose everything else on ``dev``."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a few hundred passes are enough for these heads
        return _train(examples, seed, version, n_chars, n_words, threads, cache, progress, with_accurate)


def _train(
    examples: Sequence[Example],
    seed: int,
    version: str,
    n_chars: int,
    n_words: int,
    threads: int | None,
    cache: Path | None,
    progress: Callable[[int, int], None] | None,
    with_accurate: bool,
) -> tuple[ReadingModel, ReadingModel | None]:
    train_set = without_handles([e for e in examples if e.split == "train"])
    dev = [e for e in examples if e.split == "dev"]
    if len({e.label for e in train_set}) < len(LABELS) or not dev:
        raise ModelError("training needs train rows of all three sentiments and a dev split to choose on")
    report = FitReport()
    placeholder = ReadingModel("fast", "", Heads({}, {}, {}), n_chars, n_words)
    classifier = SentimentClassifier(placeholder)
    featurize = classifier.fast_features
    train_x = featurize([e.text for e in train_set], [e.language for e in train_set], [e.signals for e in train_set])
    dev_x = featurize([e.text for e in dev], [e.language for e in dev], [e.signals for e in dev])
    shipped = {mode: _shipped(mode, n_chars, n_words) for mode in ("fast", "accurate")}
    fast_heads = fit_heads(train_x, train_set, dev_x, dev, (3.0, 10.0, 30.0), seed, report, "fast", shipped["fast"])
    dev_languages = [e.language for e in dev]
    dev_fast = {t: fast_heads.probabilities(t, dev_x, dev_languages) for t in TASKS}
    counts: dict[str, dict[str, int]] = {}
    for e in train_set:
        counts.setdefault(e.language, dict.fromkeys(LABELS, 0))[e.label] += 1
    card: dict[str, Any] = {"seed": seed, "trained_on": counts, "examples": len(train_set), "dev": len(dev)}
    fast_card = {**card, "C": report.penalties["fast"], "routes": report.routes["fast"]}
    fast_card["thresholds"] = choose_thresholds(dev_fast, dev)
    digest = hashlib.sha256(json.dumps({**fast_card, "n": n_chars + n_words}, sort_keys=True).encode()).hexdigest()
    fast = ReadingModel("fast", f"fast-{version or digest[:8]}", fast_heads, n_chars, n_words, fast_card)
    if not with_accurate:
        return fast, None

    embed = EmbeddingCache(cache, Embedder(threads or os.cpu_count() or 1))
    train_in = SentimentClassifier.e5_features(
        embed([e.text for e in train_set], progress),
        e5_signals([e.text for e in train_set], [e.language for e in train_set], [e.signals for e in train_set]),
    )
    dev_in = SentimentClassifier.e5_features(
        embed([e.text for e in dev], progress),
        e5_signals([e.text for e in dev], dev_languages, [e.signals for e in dev]),
    )
    # Raw embeddings (unit length, small values) under a penalty chosen on dev, no weaker than C=3: a head that
    # leans on what e5 learned in pretraining, and so reads everyday posts better than one fitted to the corpus.
    e5_heads = fit_heads(
        train_in, train_set, dev_in, dev, (0.3, 1.0, 3.0), seed, report, "accurate", shipped["accurate"]
    )
    dev_e5 = {t: e5_heads.probabilities(t, dev_in, dev_languages) for t in TASKS}
    accurate_card = {**card, "C": report.penalties["accurate"], "routes": report.routes["accurate"]}
    gate, weight, share = choose_gate(dev_fast, dev_e5, dev, fast_card["thresholds"])
    accurate_card["thresholds"] = choose_thresholds(blend(dev_fast, dev_e5, weight), dev)
    accurate_card.update(gate=gate, blend=weight, gate_share_dev=share, fast_version=fast.version)
    accurate = ReadingModel("accurate", f"accurate-{version or digest[:8]}", e5_heads, card=accurate_card)
    return fast, accurate
