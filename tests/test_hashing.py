"""The fast mode's cached hashing gives scikit-learn's `HashingVectorizer` matrix, bit for bit: the shipped heads
were fitted on that matrix, so any difference would change readings."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from scipy.sparse import hstack
from sklearn.feature_extraction.text import HashingVectorizer

from rules.hashing import TextHasher
from rules.sentiment import _WORDS, normalise

CORPUS = Path(__file__).resolve().parents[1] / "rules" / "care_corpus" / "corpus.jsonl"
N_CHARS, N_WORDS = 2**16, 2**15

HARD = [
    "",
    "   ",
    "a",
    "ok",
    "NON FUNZIONA!!! 😡😡",
    "Ottimo caffè, pessima app",
    "perche nn mi risp?? aaaaaaaaaa",
    "İstanbul ΣΊΣΥΦΟΣ straße",  # lowercasing that changes a word's length
    "e\u0301 e\u0300 naïve café",  # combining accents and precomposed ones
    "tab\there\nnew line\r\n and  two  spaces",
    "@user http ciao, ciao, ciao ciao",
    "x" * 400,
    "emoji🙂inside👍🏽words and 🇮🇹 flags",
    "数字 123 4.50€ 10%",
]


def reference(texts: list[str]) -> object:
    """The matrix the model was trained on: two `HashingVectorizer` blocks side by side."""
    chars = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 5), n_features=N_CHARS, alternate_sign=False)
    words = HashingVectorizer(token_pattern=_WORDS, ngram_range=(1, 2), n_features=N_WORDS, alternate_sign=False)
    return hstack([chars.transform(texts), words.transform(texts)], format="csr")


def assert_same(ours: object, theirs: object) -> None:
    ours_csr, theirs_csr = ours.tocsr(), theirs.tocsr()  # type: ignore[attr-defined]
    assert ours_csr.shape == theirs_csr.shape
    assert np.array_equal(ours_csr.indptr, theirs_csr.indptr)
    assert np.array_equal(ours_csr.indices, theirs_csr.indices)
    assert np.array_equal(ours_csr.data, theirs_csr.data)  # exact: the same counts, summed in the same order


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [normalise(row["text"]) for row in rows]


def test_the_care_corpus_hashes_as_the_vectorizer_does(corpus: list[str]) -> None:
    hasher = TextHasher(N_CHARS, N_WORDS, _WORDS)
    for start in range(0, len(corpus), 997):  # batches that share words, so the cache answers most of them
        batch = corpus[start : start + 997]
        assert_same(hasher(batch), reference(batch))


def test_hard_texts_hash_as_the_vectorizer_does() -> None:
    hasher = TextHasher(N_CHARS, N_WORDS, _WORDS)
    assert_same(hasher(HARD), reference(HARD))
    assert_same(hasher(list(reversed(HARD))), reference(list(reversed(HARD))))  # all from the cache now
    assert hasher([]).shape == (0, N_CHARS + N_WORDS)


def test_a_full_cache_starts_again_and_changes_nothing(corpus: list[str]) -> None:
    hasher = TextHasher(N_CHARS, N_WORDS, _WORDS)
    for block in (hasher._chars, hasher._words):
        block.limit = 300  # far fewer than one batch's features: cleared again and again
    words = set()
    for start in range(0, 3000, 500):
        batch = corpus[start : start + 500]
        assert_same(hasher(batch), reference(batch))
        words.update(word for text in batch for word in text.lower().split())
    assert len(hasher._chars._ids) < len(words)  # it did start again


def test_threads_sharing_one_hasher_read_alike(corpus: list[str]) -> None:
    hasher = TextHasher(N_CHARS, N_WORDS, _WORDS)
    for block in (hasher._chars, hasher._words):
        block.limit = 2_000  # threads keep extending and clearing the cache under each other
    batches = [corpus[start : start + 200] for start in range(0, 4000, 200)]
    expected = [reference(batch) for batch in batches]
    failures: list[BaseException] = []

    def work(order: list[int]) -> None:
        try:
            for index in order:
                assert_same(hasher(batches[index]), expected[index])
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    threads = [threading.Thread(target=work, args=(list(range(k, len(batches))) + list(range(k)),)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
