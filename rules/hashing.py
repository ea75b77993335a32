"""The fast mode's hashed text features, the matrix scikit-learn's `HashingVectorizer` makes, at less than half
its cost.

`HashingVectorizer` cuts every text into n-grams and hashes each n-gram again, one Python call per n-gram (about
fifty a mention). The fast mode's features are sums over the words of a text: a word's character n-grams are the
same wherever it occurs, and a word n-gram is the same string each time. So each `HashedBlock` hashes a feature
(a word's character n-grams, a word, a pair of words) once, with scikit-learn's own `FeatureHasher` (the same
murmurhash and the same index rule), keeps its column indices, and builds each batch's rows by gathering the
indices of its features with numpy. The counts, their order and the L2 norm (`sklearn.preprocessing.normalize`)
are the vectorizer's, so the matrix is equal to the one the model was trained on, bit for bit:
`tests/test_hashing.py` compares the two on the care corpus and on hard cases.

The cache is bounded (`CACHE_FEATURES` per block): past it, it starts again empty, which changes the cost, never
the result. A lock keeps a daemon's threads from reading a block while another thread extends it.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

#: Features a block remembers (words for the characters, words and pairs for the words): about 15 MB each, full.
CACHE_FEATURES = 1 << 17
#: The character n-grams, taken within words padded with a space (scikit-learn's ``char_wb``).
CHAR_NGRAMS = (3, 5)


def char_wb_ngrams(word: str, low: int = CHAR_NGRAMS[0], high: int = CHAR_NGRAMS[1]) -> list[str]:
    """The ``char_wb`` n-grams of one word, as `HashingVectorizer(analyzer="char_wb")` makes them: the word padded
    with a space each side, every n from ``low`` to ``high``, a word shorter than n counted once."""
    padded = f" {word} "
    grams = []
    for n in range(low, high + 1):
        offset = 0
        grams.append(padded[:n])
        while offset + n < len(padded):
            offset += 1
            grams.append(padded[offset : offset + n])
        if offset == 0:
            break
    return grams


def word_ngrams(tokens: list[str]) -> list[str]:
    """Words and pairs of adjacent words, joined by a space (``ngram_range=(1, 2)``)."""
    return tokens + [f"{a} {b}" for a, b in itertools.pairwise(tokens)]


class HashedBlock:
    """One block of hashed columns (``width`` of them): each row the L2-normed counts of its features' n-grams."""

    def __init__(self, width: int, ngrams: Callable[[str], list[str]], limit: int = CACHE_FEATURES) -> None:
        from sklearn.feature_extraction import FeatureHasher

        self.width, self.ngrams, self.limit = width, ngrams, limit
        self._hasher = FeatureHasher(width, input_type="string", alternate_sign=False)
        self._lock = threading.Lock()
        self._clear()

    def _clear(self) -> None:
        self._ids: dict[str, int] = {}
        self._indices = np.zeros(0, dtype=np.int32)  #: every known feature's column indices, one after another
        self._start = np.zeros(0, dtype=np.int64)
        self._length = np.zeros(0, dtype=np.int64)

    def _learn(self, features: list[str]) -> None:
        hashed = self._hasher.transform([self.ngrams(f) for f in features])
        counts = hashed.data.astype(np.int64)  # an n-gram twice in one word: its index twice, as the vectorizer
        owner = np.repeat(np.arange(len(features)), np.diff(hashed.indptr))
        lengths = np.bincount(owner, weights=counts, minlength=len(features)).astype(np.int64)
        first = len(self._ids)
        self._start = np.concatenate([self._start, len(self._indices) + np.cumsum(lengths) - lengths])
        self._length = np.concatenate([self._length, lengths])
        self._indices = np.concatenate([self._indices, np.repeat(hashed.indices, counts).astype(np.int32)])
        self._ids.update((feature, first + k) for k, feature in enumerate(features))

    def rows(self, rows: Sequence[list[str]]) -> Any:
        """A CSR matrix, one row per list of features."""
        from scipy.sparse import csr_matrix
        from sklearn.preprocessing import normalize

        with self._lock:
            new = list(dict.fromkeys(f for row in rows for f in row if f not in self._ids))
            if new and len(self._ids) + len(new) > self.limit:  # start again, with this batch's features
                self._clear()
                new = list(dict.fromkeys(f for row in rows for f in row))
            if new:
                self._learn(new)
            ids = self._ids
            per_row = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
            found = np.fromiter((ids[f] for row in rows for f in row), dtype=np.int64, count=int(per_row.sum()))
            lengths = self._length[found]
            total = int(lengths.sum())
            before = np.cumsum(lengths) - lengths
            indices = self._indices[np.repeat(self._start[found] - before, lengths) + np.arange(total)]
        row_lengths = np.bincount(np.repeat(np.arange(len(rows)), per_row), weights=lengths, minlength=len(rows))
        indptr = np.concatenate([[0], np.cumsum(row_lengths, dtype=np.int64)])
        matrix = csr_matrix((np.ones(total), indices, indptr), shape=(len(rows), self.width))
        matrix.sum_duplicates()  # counts, and sorted indices: the vectorizer's order, so the norm sums alike
        return normalize(matrix, copy=False) if len(rows) else matrix


class TextHasher:
    """The fast mode's text features: hashed character 3-5-grams (within words) and word 1-2-grams (``words``:
    a `re` pattern of what a word is), both L2-normed, side by side.

    Bigrams of characters cost a quarter of the hashing and added nothing the words and longer grams lacked."""

    def __init__(self, n_chars: int, n_words: int, words: str) -> None:
        self.width = n_chars + n_words
        self._chars = HashedBlock(n_chars, char_wb_ngrams)
        self._words = HashedBlock(n_words, lambda feature: [feature])
        self._tokens = re.compile(words).findall

    def __call__(self, texts: Sequence[str]) -> Any:
        from scipy.sparse import hstack

        lowered = [text.lower() for text in texts]
        chars = self._chars.rows([text.split() for text in lowered])
        words = self._words.rows([word_ngrams(self._tokens(text)) for text in lowered])
        return hstack([chars, words], format="csr")
