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
from spacy.util import compile_prefix_regex

from listener.model import Mention
from rules.sentiment import (
    CHANNELS,
    MODEL_LANGUAGES,
    Mode,
    ModelError,
    Reading,
    SentimentClassifier,
    Signals,
    normalise,
)

#: Languages the identifier tells apart besides the configured ones, so that German is called German
#: (and left unscored) rather than forced into Italian or English. Dutch and Portuguese were tried and left
#: out: low-accuracy lingua took short English posts for Dutch (11 of 92 English demo mentions).
OTHER_LANGUAGES: tuple[str, ...] = ("de", "es", "fr")
_NOT_LANGUAGE = re.compile(r"[@#]\w+|https?://\S+")
#: An @handle as X and the other platforms write it (the tokenizer keeps "@AuroraCaffe" one token too).
_HANDLE = re.compile(r"(?<![\w@])@(\w{1,50})")


def text_of(doc: Doc) -> str:
    """The doc's text. `Analyzer` keeps it in ``user_data`` as it makes the doc: ``Doc.text`` joins the tokens
    again, in Python, on every call (a fifth of the fast mode's time went there)."""
    text = doc.user_data.get("text")
    if text is None:
        text = doc.user_data["text"] = doc.text
    return str(text)


def named_handle(text: str, handles: set[str]) -> str:
    """The first of ``handles`` (lower case, no @) the text names as an @handle, as written; "" for none."""
    if not handles or "@" not in text:
        return ""
    return next((f"@{m.group(1)}" for m in _HANDLE.finditer(text) if m.group(1).lower() in handles), "")


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
    #: Praise and thanks addressed to the brand's handle need no answer unless the team wants to thank everyone.
    answer_praise_to_handle: bool = False


@dataclass(slots=True)
class DocReading:
    """What the components find in one mention, kept as one object in ``doc._.passaparola``: each ``doc._`` makes
    an accessor object, and one attribute a field was a tenth of the fast mode's time."""

    signals: Signals | None = None
    language: str | None = None
    language_confidence: float | None = None
    brand_match: bool | None = None
    brand_reason: str | None = None
    topics: list[str] | None = None
    topic_spans: dict[str, list[tuple[int, int]]] | None = None
    model_version: str | None = None
    reading: Reading | None = None
    sentiment: str | None = None
    sentiment_probs: dict[str, float] | None = None
    sentiment_reason: str | None = None
    topic_sentiment: dict[str, str] | None = None
    mixed_complaint: list[str] | None = None
    kind: str | None = None
    needs_answer: bool | None = None
    needs_answer_reason: str | None = None


if not Doc.has_extension("passaparola"):
    Doc.set_extension("passaparola", default=None)


def found(doc: Doc) -> DocReading:
    """The doc's `DocReading`, made on first use."""
    ext = doc._
    read: DocReading | None = ext.passaparola
    if read is None:
        read = ext.passaparola = DocReading()
    return read


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
        text = _NOT_LANGUAGE.sub(" ", text_of(doc))  # handles, hashtags and links say nothing of the language
        values = self.detector.compute_language_confidence_values(text) if text.strip() else []
        weighted = {}
        for value in values:
            code = value.language.iso_code_639_1.name.lower()
            weighted[code] = value.value * (self.configured_weight if code in self.configured else 1.0)
        total = sum(weighted.values())
        if total > 0:
            code, score = max(weighted.items(), key=lambda item: item[1])
            if score / total >= self.min_confidence:
                ext = found(doc)
                ext.language, ext.language_confidence = code, round(score / total, 3)
        return doc


class ReadingComponent:
    """Reads each doc with the shipped (or the user's) model: sentiment, needs-an-answer and the kind of message,
    and, where a mention names several topics, the polarity of each (the clause that names it, read alone).

    Languages the model was not trained on get no sentiment and say why.
    """

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
        exts = [found(doc) for doc in docs]
        scored: list[tuple[Doc, DocReading]] = []
        version = self.classifier.model.version
        for doc, ext in zip(docs, exts, strict=True):
            ext.model_version = version
            language = ext.language
            if language in self.languages or (language is None and _has_signal(doc)):
                scored.append((doc, ext))
            else:
                ext.sentiment_reason = f"unsupported language: {language}" if language else "no text to read"
        texts = [normalise(text_of(d)) for d, _ in scored]
        languages = [ext.language for _, ext in scored]
        readings = self.classifier.predict(texts, languages, [ext.signals or Signals() for _, ext in scored])
        for (_, ext), reading in zip(scored, readings, strict=True):
            ext.sentiment, ext.sentiment_probs, ext.reading = reading.label, reading.probabilities, reading
        self._topic_polarity(scored)
        return docs

    def _topic_polarity(self, docs: list[tuple[Doc, DocReading]]) -> None:
        """In a mention of several clauses, each topic's polarity is that of the clauses naming it (a negative
        clause wins); a topic of a one-clause mention has the mention's own polarity, so it is not stored.

        ``docs``: each doc with its `DocReading`."""
        asks: list[tuple[DocReading, str, str]] = []
        named: list[tuple[DocReading, dict[str, list[tuple[int, int]]], dict[str, str]]] = []
        for doc, ext in docs:
            spans = ext.topic_spans or {}
            polarity: dict[str, str] = {}
            ext.topic_sentiment = polarity
            if not spans:
                continue
            named.append((ext, spans, polarity))
            text = text_of(doc)
            clauses = clauses_of(text)
            for topic, offsets in spans.items():
                parts = sorted({c for c in clauses for start, _ in offsets if c[0] <= start < c[1]})
                if len(clauses) > 1 and parts:  # one clause: the topic has the mention's own polarity
                    asks.extend((ext, topic, text[a:b]) for a, b in parts)
        if not asks:
            return
        readings = self.classifier.predict(
            [normalise(text) for _, _, text in asks],
            [ext.language for ext, _, _ in asks],
            [Signals() for _ in asks],  # a clause alone: the mention's stars and channel judge the whole
        )
        found: dict[tuple[int, str], list[str]] = {}
        for (ext, topic, _), reading in zip(asks, readings, strict=True):
            found.setdefault((id(ext), topic), []).append(reading.label)
        for ext, spans, polarity in named:
            for topic in spans:
                labels = found.get((id(ext), topic))
                if labels:
                    polarity[topic] = next((label for label in ("negative", "positive") if label in labels), "neutral")
            complained = [t for t, label in polarity.items() if label == "negative"]
            if complained and (ext.sentiment_probs or {}).get("positive", 0.0) >= SURE_PRAISE:
                for topic in complained:  # a clause misread alone: the whole is praise, and so is each topic
                    del polarity[topic]
            elif complained and ext.sentiment != "negative":  # good and bad in one message: act on the bad
                ext.sentiment = "negative"
                ext.mixed_complaint = complained


#: A mention read as praise this surely is praise, whatever one of its clauses reads alone ("Packaging compostabile e
#: caffè buonissimo." is not a complaint about sustainability): on the corpus's dev split, 1% of the mixed
#: complaints are read so surely positive whole, and short clauses alone are where the heads err most.
SURE_PRAISE = 0.85

#: Where one judgement ends and the next begins: sentence marks, commas, and the conjunctions of a contrast.
_CLAUSE_BREAK = re.compile(
    r"[.;:!?\n]+|,|\s[-–—]\s|\b(?:ma|però|pero|invece|mentre|tranne|purtroppo|peccato|anche se|but|however|"
    r"though|although|while|except|yet)\b",
    re.IGNORECASE,
)


def clauses_of(text: str) -> list[tuple[int, int]]:
    """Character spans of the clauses of ``text`` (blank ones left out)."""
    spans, start = [], 0
    for match in _CLAUSE_BREAK.finditer(text):
        if text[start : match.start()].strip():
            spans.append((start, match.start()))
        start = match.end()
    if text[start:].strip():
        spans.append((start, len(text)))
    return spans or [(0, len(text))]


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
        handle = named_handle(text_of(doc), self.handles) or None
        spans = [(doc.vocab.strings[m], s, e) for m, s, e in self.matcher(doc)]
        excluded = [(s, e) for label, s, e in spans if label == "EXCLUDE"]
        brand = [
            doc[s:e].text
            for label, s, e in spans
            if label == "BRAND" and not any(xs <= s and e <= xe for xs, xe in excluded)
        ]
        ext = found(doc)
        if handle:
            ext.brand_match, ext.brand_reason = True, f"addresses {handle}"
        elif brand:
            ext.brand_match, ext.brand_reason = True, f"names {brand[0]!r}"
        elif not self.configured:
            ext.brand_match, ext.brand_reason = True, "no brand terms configured"
        else:
            ext.brand_match = False
            ext.brand_reason = "only excluded senses" if excluded else "no brand term or handle"
        return doc


class TopicsComponent:
    """The configured topics whose terms occur, in config order (routing and offers read them)."""

    def __init__(self, nlp: Language, name: str, topics: dict[str, list[str]]):
        self.order = list(topics)
        self.matcher = _matcher(nlp, topics)

    def __call__(self, doc: Doc) -> Doc:
        spans: dict[str, list[tuple[int, int]]] = {}
        for match, start, end in self.matcher(doc):
            spans.setdefault(doc.vocab.strings[match], []).append((doc[start].idx, doc[end - 1].idx))
        ext = found(doc)
        ext.topics, ext.topic_spans = [t for t in self.order if t in spans], spans
        return doc


class NeedsAnswerComponent:
    """Deserves an answer when the model says so, explained by the kind of message it read (a question, a
    complaint, sarcasm about a problem...) and how sure it is. Praise and thanks addressed to the brand's handle
    need no answer unless ``answer_praise_to_handle`` says the team thanks everyone."""

    def __init__(self, nlp: Language, name: str, handles: list[str], answer_praise_to_handle: bool):
        self.handles = {h.lower().lstrip("@") for h in handles}
        self.answer_praise_to_handle = answer_praise_to_handle

    def __call__(self, doc: Doc) -> Doc:
        ext = found(doc)
        reading: Reading | None = ext.reading
        if reading is None:
            ext.needs_answer = False
            ext.needs_answer_reason = f"not read: {ext.sentiment_reason or 'no text'}"
            return doc
        ext.kind = reading.kind
        handle = named_handle(text_of(doc), self.handles)
        certainty = f"{reading.needs_probability if reading.needs_answer else 1 - reading.needs_probability:.0%}"
        if ext.mixed_complaint:
            ext.kind = "mixed"
            ext.needs_answer = True
            ext.needs_answer_reason = f"mixed: complains about {', '.join(ext.mixed_complaint)}"
        elif reading.needs_answer:
            ext.needs_answer, ext.needs_answer_reason = True, f"{reading.kind} ({certainty} sure)"
        elif handle and self.answer_praise_to_handle and reading.kind in ("praise", "thanks"):
            ext.needs_answer = True
            ext.needs_answer_reason = f"{reading.kind} addressed to {handle} (analysis.answer_praise_to_handle)"
        else:
            ext.needs_answer = False
            ext.needs_answer_reason = f"no answer needed: {reading.kind} ({certainty} sure)"
        return doc


@Language.factory(
    "passaparola_language",
    default_config={"languages": ["it", "en"], "min_confidence": 0.5, "configured_weight": 3.0},
    assigns=["doc._.passaparola"],
)
def make_language(
    nlp: Language, name: str, languages: list[str], min_confidence: float, configured_weight: float
) -> LanguageIdentifier:
    return LanguageIdentifier(nlp, name, languages, min_confidence, configured_weight)


@Language.factory(
    "passaparola_reading",
    default_config={"mode": "accurate", "threads": 1, "model_dir": "", "languages": ["it", "en"]},
    requires=["doc._.passaparola"],
    assigns=["doc._.passaparola"],
)
def make_reading(
    nlp: Language, name: str, mode: str, threads: int, model_dir: str, languages: list[str]
) -> ReadingComponent:
    return ReadingComponent(nlp, name, mode, threads, model_dir, languages)


@Language.factory(
    "passaparola_brand",
    default_config={"terms": [], "exclusions": [], "handles": []},
    assigns=["doc._.passaparola"],
)
def make_brand(nlp: Language, name: str, terms: list[str], exclusions: list[str], handles: list[str]) -> BrandComponent:
    return BrandComponent(nlp, name, terms, exclusions, handles)


@Language.factory("passaparola_topics", default_config={"topics": {}}, assigns=["doc._.passaparola"])
def make_topics(nlp: Language, name: str, topics: dict[str, list[str]]) -> TopicsComponent:
    return TopicsComponent(nlp, name, topics)


@Language.factory(
    "passaparola_needs_answer",
    default_config={"handles": [], "answer_praise_to_handle": False},
    requires=["doc._.passaparola"],
    assigns=["doc._.passaparola"],
)
def make_needs_answer(
    nlp: Language, name: str, handles: list[str], answer_praise_to_handle: bool
) -> NeedsAnswerComponent:
    return NeedsAnswerComponent(nlp, name, handles, answer_praise_to_handle)


#: Italian articles and prepositions elided before a vowel ("l'app", "dell'ordine", "un'ora", "c'è").
ITALIAN_ELISION = r"(?i:l|dell|all|dall|nell|sull|coll|un|quest|quell|c|d|m|t|s|v|n)['’](?=\w)"


def build_pipeline(settings: AnalysisSettings) -> Language:
    """``spacy.blank("xx")`` (one tokenizer for Italian and English) plus our five components."""
    import spacy

    nlp = spacy.blank("xx")
    tokenizer: Any = nlp.tokenizer
    elision = compile_prefix_regex([*(nlp.Defaults.prefixes or ()), ITALIAN_ELISION])
    tokenizer.prefix_search = elision.search  # "l'app" is "l'" + "app", so the topic "app" is found
    languages = list(settings.languages)
    nlp.add_pipe("passaparola_language", config={"languages": languages})
    nlp.add_pipe(
        "passaparola_brand",
        config={
            "terms": list(settings.brand_terms),
            "exclusions": list(settings.brand_exclusions),
            "handles": list(settings.brand_handles),
        },
    )
    nlp.add_pipe("passaparola_topics", config={"topics": {k: list(v) for k, v in settings.topics.items()}})
    nlp.add_pipe(
        "passaparola_reading",
        config={
            "mode": settings.mode,
            "threads": settings.threads,
            "model_dir": str(settings.model_dir or ""),
            "languages": languages,
        },
    )
    nlp.add_pipe(
        "passaparola_needs_answer",
        config={"handles": list(settings.brand_handles), "answer_praise_to_handle": settings.answer_praise_to_handle},
    )
    return nlp


def _safe_text(text: str) -> str:
    """What the pipeline reads: valid UTF-8, at most 10,000 characters (the model itself reads fewer)."""
    return text.encode("utf-8", "replace").decode("utf-8")[:10_000]


#: The model's channel for each platform we listen to (an import's channel is its source); others give none.
PLATFORM_CHANNELS = {
    "x": "x", "facebook": "facebook", "instagram": "instagram", "forum": "forum", "review": "review", "web": "blog",
    "appstore": "appstore", "googleplay": "googleplay", "bluesky": "x", "mastodon": "x", "gbp": "review",
    "youtube": "facebook",
}  # fmt: skip
IMPORT_CHANNELS = {"phone": "phone", "email": "email", "review": "review"}


def signals(platform: str, source: str, rating: Any) -> Signals:
    """Where a mention was written and the stars it gave, as the model reads them (an import's channel is its
    source; a platform the model does not know gives no channel)."""
    imported = platform in ("import", "site")
    channel = IMPORT_CHANNELS.get(source, "") if imported else PLATFORM_CHANNELS.get(platform, "")
    return Signals(channel if channel in CHANNELS else "", rating if rating in (1, 2, 3, 4, 5) else None)


def signals_of(mention: Mention) -> Signals:
    return signals(mention.platform, mention.source, mention.metrics.get("rating"))


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
    def classifier(self) -> SentimentClassifier:
        component: Any = self.nlp.get_pipe("passaparola_reading")
        return component.classifier

    @property
    def model_version(self) -> str:
        return str(self.classifier.model.version)

    def analyze(
        self, texts: Sequence[str], signals: Sequence[Signals] | None = None, batch_size: int = 256
    ) -> list[dict[str, Any]]:
        """One result per text, in order: the fields `Mention.tags` carries."""

        def docs() -> Iterator[Doc]:  # made as the pipeline asks for them: memory stays one batch deep
            for index, text in enumerate(texts):
                safe = _safe_text(text)
                doc = self.nlp.make_doc(safe)
                doc.user_data["text"] = safe
                doc._.passaparola = DocReading(signals=signals[index] if signals is not None else None)
                yield doc

        results = []
        for doc in self.nlp.pipe(docs(), batch_size=batch_size):
            read = found(doc)
            reading: Reading | None = read.reading
            results.append(
                {
                    "language": read.language,
                    "sentiment": read.sentiment,
                    "sentiment_probs": read.sentiment_probs,
                    "sentiment_reason": read.sentiment_reason,
                    "model_version": read.model_version,
                    "needs_answer": read.needs_answer,
                    "needs_answer_reason": read.needs_answer_reason,
                    "kind": read.kind,
                    "certainty": reading.margin if reading else None,
                    "topics": read.topics,
                    "topic_sentiment": read.topic_sentiment or {},
                    "brand_match": read.brand_match,
                    "brand_reason": read.brand_reason,
                }
            )
        return results

    def tag(self, mentions: Sequence[Mention]) -> list[Mapping[str, Any]]:
        return list(self.analyze([m.text for m in mentions], [signals_of(m) for m in mentions]))
