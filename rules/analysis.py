"""Reading a mention: one spaCy pipeline (``spacy.blank`` plus our own components) that sets, per mention,
language, sentiment, needs-answer with its reason, topics and whether it is about the brand at all.

The pipeline is built once per `Analyzer` and runs batches through ``nlp.pipe``; the sentiment component
implements ``pipe`` itself so the model sees a whole batch at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc

from listener.model import Mention
from rules.sentiment import MODEL_LANGUAGES, Mode, ModelError, SentimentClassifier, normalise

#: Languages the identifier tells apart besides the configured ones, so that German is called German
#: (and left unscored) rather than forced into Italian or English. Dutch and Portuguese were tried and left
#: out: low-accuracy lingua took short English posts for Dutch (11 of 92 English demo mentions).
OTHER_LANGUAGES: tuple[str, ...] = ("de", "es", "fr")
_NOT_LANGUAGE = re.compile(r"[@#]\w+|https?://\S+")

QUESTION_STARTS = {
    "it": [
        "come", "quando", "dove", "perché", "perche", "quanto", "quanti", "quale", "quali", "chi", "cosa", "posso",
        "potete", "avete", "sapete", "siete",
    ],
    "en": [
        "how", "when", "where", "why", "what", "which", "who", "can", "could", "do", "does", "did", "is", "are",
        "will", "would", "any", "anyone",
    ],
}  # fmt: skip
REQUEST_CUES = {
    "it": [
        "vorrei", "potete", "potreste", "aiuto", "aiutatemi", "mi serve", "per favore", "per piacere", "rimborso",
        "contattatemi", "scrivetemi", "richiamatemi", "in privato", "rispondete", "chiedo", "fatemi sapere",
    ],
    "en": [
        "please", "help", "i need", "refund", "contact me", "dm me", "can you", "could you", "i'd like",
        "i would like", "let me know", "get back to me", "call me", "reply",
    ],
}  # fmt: skip
COMPLAINT_CUES = {
    "it": [
        "non funziona", "non è arrivato", "non arriva", "mai arrivato", "nessuno risponde", "da giorni",
        "ancora niente", "vergogna", "pessimo", "pessima", "truffa", "rotto", "rotta", "in ritardo", "delusissimo",
        "deluso", "delusa", "schifo", "inaccettabile", "reclamo", "addebitato", "disdetta",
    ],
    "en": [
        "doesn't work", "does not work", "not working", "never arrived", "still waiting", "no answer", "broken",
        "worst", "terrible", "awful", "scam", "late", "charged twice", "unacceptable", "complaint", "disappointed",
        "can't cancel", "cannot cancel",
    ],
}  # fmt: skip


@dataclass(frozen=True)
class AnalysisSettings:
    """What the pipeline needs to know about the brand. Term lists are matched case-insensitively."""

    mode: Mode = "accurate"
    languages: tuple[str, ...] = ("it", "en")
    brand_terms: tuple[str, ...] = ()
    brand_exclusions: tuple[str, ...] = ()
    brand_handles: tuple[str, ...] = ()
    topics: Mapping[str, Sequence[str]] = field(default_factory=dict)
    threads: int = 1
    model_dir: Path | None = None


for _name in (
    "language",
    "language_confidence",
    "sentiment",
    "sentiment_probs",
    "sentiment_reason",
    "model_version",
    "needs_answer",
    "needs_answer_reason",
    "topics",
    "brand_match",
    "brand_reason",
):
    if not Doc.has_extension(_name):
        Doc.set_extension(_name, default=None)


def unknown_languages(codes: Sequence[str]) -> list[str]:
    """The codes lingua cannot detect (not ISO 639-1, or not among its 75 languages)."""
    from lingua import IsoCode639_1

    return [code for code in codes if not hasattr(IsoCode639_1, code.upper()) or len(code) != 2]


class LanguageIdentifier:
    """lingua (its models ship in the wheel), low-accuracy mode: about 40 MB and 10,000 short texts a second.

    The configured languages get a prior (``configured_weight`` times their confidence before the choice): the
    brand's customers mostly write in them, and low-accuracy mode can take a short English post for Dutch.
    """

    def __init__(
        self, nlp: Language, name: str, languages: list[str], min_confidence: float, configured_weight: float
    ) -> None:
        from lingua import IsoCode639_1, LanguageDetectorBuilder
        from lingua import Language as Lingua

        codes = list(dict.fromkeys([*languages, *OTHER_LANGUAGES]))
        try:
            wanted = [Lingua.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())) for code in codes]
        except AttributeError as error:
            raise ModelError(
                f"analysis.languages: {error.name!r} is not an ISO 639-1 code (use e.g. 'it', 'en')"
            ) from None
        self.detector = LanguageDetectorBuilder.from_languages(*wanted).with_low_accuracy_mode().build()
        self.configured = set(languages)
        self.min_confidence = min_confidence
        self.configured_weight = configured_weight

    def __call__(self, doc: Doc) -> Doc:
        text = _NOT_LANGUAGE.sub(" ", doc.text)  # handles, hashtags and links say nothing of the language
        values = self.detector.compute_language_confidence_values(text) if text.strip() else []
        weighted = {}
        for value in values:
            code = value.language.iso_code_639_1.name.lower()
            weighted[code] = value.value * (self.configured_weight if code in self.configured else 1.0)
        total = sum(weighted.values())
        if total > 0:
            code, score = max(weighted.items(), key=lambda item: item[1])
            if score / total >= self.min_confidence:
                doc._.language, doc._.language_confidence = code, round(score / total, 3)
        return doc


class SentimentComponent:
    """Labels each doc with the shipped (or the user's) model; languages it was not trained on get None."""

    def __init__(self, nlp: Language, name: str, mode: str, threads: int, model_dir: str, languages: list[str]):
        directory = Path(model_dir) if model_dir else None
        self.classifier = SentimentClassifier.shipped(mode, threads, directory)  # type: ignore[arg-type]
        self.languages = set(languages) & set(MODEL_LANGUAGES)

    def __call__(self, doc: Doc) -> Doc:
        return next(iter(self.pipe([doc])))

    def pipe(self, docs: Iterable[Doc], batch_size: int = 64) -> Iterator[Doc]:
        batch: list[Doc] = []
        for doc in docs:
            batch.append(doc)
            if len(batch) >= batch_size:
                yield from self._label(batch)
                batch = []
        yield from self._label(batch)

    def _label(self, docs: list[Doc]) -> list[Doc]:
        scored = [d for d in docs if d._.language in self.languages or (d._.language is None and _has_signal(d))]
        chosen = {id(d) for d in scored}
        for doc in docs:
            doc._.model_version = self.classifier.model.version
            if id(doc) not in chosen:
                doc._.sentiment_reason = (
                    f"unsupported language: {doc._.language}" if doc._.language else "no text to read"
                )
        texts = [normalise(d.text) for d in scored]
        for doc, prediction in zip(scored, self.classifier.predict(texts, [d._.language for d in scored]), strict=True):
            doc._.sentiment = prediction.label
            doc._.sentiment_probs = prediction.probabilities
        return docs


def _has_signal(doc: Doc) -> bool:
    """Text with no identifiable language (emoji only, one word) is still scored if it has something to read."""
    return any(not t.is_space and not t.is_punct for t in doc)


def _matcher(nlp: Language, groups: Mapping[str, Iterable[str]]) -> PhraseMatcher:
    matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
    for label, terms in groups.items():
        patterns = [nlp.make_doc(t) for t in terms if t.strip()]
        if patterns:
            matcher.add(label, patterns)
    return matcher


class BrandComponent:
    """Is it about us? A brand term or handle that is not inside an exclusion ("Aurora" vs "aurora boreale")."""

    def __init__(self, nlp: Language, name: str, terms: list[str], exclusions: list[str], handles: list[str]):
        self.matcher = _matcher(nlp, {"BRAND": terms, "EXCLUDE": exclusions})
        self.handles = {h.lower().lstrip("@") for h in handles}
        self.configured = bool(terms or handles)

    def __call__(self, doc: Doc) -> Doc:
        handle = next((t.text for t in doc if t.text.startswith("@") and t.text[1:].lower() in self.handles), None)
        spans = [(doc.vocab.strings[m], s, e) for m, s, e in self.matcher(doc)]
        excluded = [(s, e) for label, s, e in spans if label == "EXCLUDE"]
        brand = [
            doc[s:e].text
            for label, s, e in spans
            if label == "BRAND" and not any(xs <= s and e <= xe for xs, xe in excluded)
        ]
        if handle:
            doc._.brand_match, doc._.brand_reason = True, f"addresses {handle}"
        elif brand:
            doc._.brand_match, doc._.brand_reason = True, f"names {brand[0]!r}"
        elif not self.configured:
            doc._.brand_match, doc._.brand_reason = True, "no brand terms configured"
        else:
            doc._.brand_match = False
            doc._.brand_reason = "only excluded senses" if excluded else "no brand term or handle"
        return doc


class TopicsComponent:
    """The configured topics whose terms occur, in config order (routing and offers read them)."""

    def __init__(self, nlp: Language, name: str, topics: dict[str, list[str]]):
        self.order = list(topics)
        self.matcher = _matcher(nlp, topics)

    def __call__(self, doc: Doc) -> Doc:
        found = {doc.vocab.strings[m] for m, _, _ in self.matcher(doc)}
        doc._.topics = [t for t in self.order if t in found]
        return doc


class NeedsAnswerComponent:
    """Deserves an answer when it asks, requests, complains or addresses the brand; says which."""

    def __init__(self, nlp: Language, name: str, handles: list[str]):
        self.requests = _matcher(nlp, {lang: cues for lang, cues in REQUEST_CUES.items()})
        self.complaints = _matcher(nlp, {lang: cues for lang, cues in COMPLAINT_CUES.items()})
        self.starts = {word for words in QUESTION_STARTS.values() for word in words}
        self.handles = {h.lower().lstrip("@") for h in handles}

    def __call__(self, doc: Doc) -> Doc:
        words = [t for t in doc if not t.is_punct and not t.is_space and not t.text.startswith("@")]
        reason = ""
        if any("?" in t.text for t in doc) or (words and words[0].lower_ in self.starts and len(words) > 2):
            reason = "question"
        elif found := self.requests(doc):
            reason = f"request: {doc[found[0][1] : found[0][2]].text.lower()!r}"
        elif doc._.sentiment == "negative" and (doc._.sentiment_probs or {}).get("negative", 0) >= 0.6:
            reason = "complaint: negative sentiment"
        elif found := self.complaints(doc):
            reason = f"complaint: {doc[found[0][1] : found[0][2]].text.lower()!r}"
        elif handle := next((t.text for t in doc if t.text[1:].lower() in self.handles and t.text[0] == "@"), ""):
            reason = f"addresses {handle}"
        doc._.needs_answer = bool(reason)
        doc._.needs_answer_reason = reason or "no question, request, complaint or address to the brand"
        return doc


@Language.factory(
    "passaparola_language",
    default_config={"languages": ["it", "en"], "min_confidence": 0.5, "configured_weight": 3.0},
    assigns=["doc._.language"],
)
def make_language(
    nlp: Language, name: str, languages: list[str], min_confidence: float, configured_weight: float
) -> LanguageIdentifier:
    return LanguageIdentifier(nlp, name, languages, min_confidence, configured_weight)


@Language.factory(
    "passaparola_sentiment",
    default_config={"mode": "accurate", "threads": 1, "model_dir": "", "languages": ["it", "en"]},
    requires=["doc._.language"],
    assigns=["doc._.sentiment", "doc._.sentiment_probs"],
)
def make_sentiment(
    nlp: Language, name: str, mode: str, threads: int, model_dir: str, languages: list[str]
) -> SentimentComponent:
    return SentimentComponent(nlp, name, mode, threads, model_dir, languages)


@Language.factory(
    "passaparola_brand",
    default_config={"terms": [], "exclusions": [], "handles": []},
    assigns=["doc._.brand_match"],
)
def make_brand(nlp: Language, name: str, terms: list[str], exclusions: list[str], handles: list[str]) -> BrandComponent:
    return BrandComponent(nlp, name, terms, exclusions, handles)


@Language.factory("passaparola_topics", default_config={"topics": {}}, assigns=["doc._.topics"])
def make_topics(nlp: Language, name: str, topics: dict[str, list[str]]) -> TopicsComponent:
    return TopicsComponent(nlp, name, topics)


@Language.factory(
    "passaparola_needs_answer",
    default_config={"handles": []},
    requires=["doc._.sentiment"],
    assigns=["doc._.needs_answer"],
)
def make_needs_answer(nlp: Language, name: str, handles: list[str]) -> NeedsAnswerComponent:
    return NeedsAnswerComponent(nlp, name, handles)


def build_pipeline(settings: AnalysisSettings) -> Language:
    """``spacy.blank("xx")`` (one tokenizer for Italian and English) plus our five components."""
    import spacy

    nlp = spacy.blank("xx")
    languages = list(settings.languages)
    nlp.add_pipe("passaparola_language", config={"languages": languages})
    nlp.add_pipe(
        "passaparola_sentiment",
        config={
            "mode": settings.mode,
            "threads": settings.threads,
            "model_dir": str(settings.model_dir or ""),
            "languages": languages,
        },
    )
    nlp.add_pipe(
        "passaparola_brand",
        config={
            "terms": list(settings.brand_terms),
            "exclusions": list(settings.brand_exclusions),
            "handles": list(settings.brand_handles),
        },
    )
    nlp.add_pipe("passaparola_topics", config={"topics": {k: list(v) for k, v in settings.topics.items()}})
    nlp.add_pipe("passaparola_needs_answer", config={"handles": list(settings.brand_handles)})
    return nlp


def _safe_text(text: str) -> str:
    """What the pipeline reads: valid UTF-8, at most 10,000 characters (the model itself reads fewer)."""
    return text.encode("utf-8", "replace").decode("utf-8")[:10_000]


class Analyzer:
    """The tagger the daemon runs on new mentions, and the engine of ``passaparola analyze``."""

    def __init__(self, settings: AnalysisSettings) -> None:
        self.settings = settings
        self._nlp: Language | None = None

    @property
    def nlp(self) -> Language:
        if self._nlp is None:
            self._nlp = build_pipeline(self.settings)
        return self._nlp

    @property
    def model_version(self) -> str:
        component: Any = self.nlp.get_pipe("passaparola_sentiment")
        return str(component.classifier.model.version)

    def analyze(self, texts: Sequence[str], batch_size: int = 64) -> list[dict[str, Any]]:
        """One result per text, in order: the fields `Mention.tags` carries."""
        return [
            {
                "language": doc._.language,
                "sentiment": doc._.sentiment,
                "sentiment_probs": doc._.sentiment_probs,
                "sentiment_reason": doc._.sentiment_reason,
                "model_version": doc._.model_version,
                "needs_answer": doc._.needs_answer,
                "needs_answer_reason": doc._.needs_answer_reason,
                "topics": doc._.topics,
                "brand_match": doc._.brand_match,
                "brand_reason": doc._.brand_reason,
            }
            for doc in self.nlp.pipe((_safe_text(t) for t in texts), batch_size=batch_size)
        ]

    def tag(self, mentions: Sequence[Mention]) -> list[Mapping[str, Any]]:
        tags: list[Mapping[str, Any]] = []
        tags.extend(self.analyze([m.text for m in mentions]))
        return tags
