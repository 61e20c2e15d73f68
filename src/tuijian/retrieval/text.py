"""Title text match: every query word must occur in the title (AND), ranked by BM25.

Hand-written rather than a full-text library (tantivy, Whoosh, SQLite FTS5) because titles are
a few words long and what the engine needs is the matching set as a roaring bitmap it can AND
with its other filters in microseconds; those libraries answer with scored documents under
their own document ids, which we would have to map back and re-intersect, and they make an
upsert visible only after a commit and a reader reload. Tokens: lowercased runs of letters and
digits (Arrow's RE2, vectorized over the whole catalog at build), and for CJK text, which has
no spaces, overlapping character bigrams, the usual CJK-safe unit (北京朝阳 → 北京 京朝 朝阳).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from pyroaring import BitMap

from tuijian.data.items import ItemFeatureCenter
from tuijian.domain import FloatArray, IntArray
from tuijian.retrieval.postings import StringPostings, intersect

_CJK = "".join(
    f"{chr(a)}-{chr(b)}"
    for a, b in (
        (0x3040, 0x30FF),
        (0x3400, 0x4DBF),
        (0x4E00, 0x9FFF),
        (0xAC00, 0xD7AF),
        (0xF900, 0xFAFF),
    )
)
_SPLIT = r"[^\p{L}\p{N}]+"  # RE2: anything but a letter or a digit separates words
_HAS_CJK = f"[{_CJK}]"
_RUNS = re.compile(f"[{_CJK}]+|[^{_CJK}]+")
_IS_CJK = re.compile(_HAS_CJK)
K1, B = 1.2, 0.75  # BM25's usual constants


def tokenize(texts: npt.NDArray[Any] | list[str | None]) -> tuple[pa.Array, IntArray]:
    """(every token, its row) for a batch of texts; the one tokenizer for build, upserts and
    queries, so they always agree."""
    strings = pa.array(texts, type=pa.string())
    parts = pc.split_pattern_regex(pc.utf8_lower(strings), _SPLIT)
    flat = pc.list_flatten(parts)
    rows = np.asarray(pc.list_parent_indices(parts), dtype=np.int64)
    # rows with CJK take the (slower) Python path; testing whole titles is 2x faster than words
    has_cjk = pc.fill_null(pc.match_substring_regex(strings, _HAS_CJK), False)
    cjk = np.asarray(has_cjk, dtype=bool)[rows]
    plain = np.asarray(pc.not_equal(flat, ""), dtype=bool) & ~cjk
    tokens, at = [flat.filter(pa.array(plain))], [rows[plain]]
    if cjk.any():
        words: list[str] = []
        word_rows: list[int] = []
        for word, row in zip(
            flat.filter(pa.array(cjk)).to_pylist(), rows[cjk].tolist(), strict=True
        ):
            for token in _cjk_tokens(word):
                words.append(token)
                word_rows.append(row)
        tokens.append(pa.array(words, type=pa.string()))
        at.append(np.array(word_rows, dtype=np.int64))
    return pa.concat_arrays(tokens), np.concatenate(at)


@lru_cache(maxsize=4096)
def query_tokens(text: str) -> tuple[str, ...]:
    """A query's distinct tokens (cached: the same searches repeat across users)."""
    tokens, _ = tokenize([text])
    return tuple(dict.fromkeys(tokens.to_pylist()))


class TextIndex:
    def __init__(self, store: ItemFeatureCenter) -> None:
        self._store = store
        self.words = StringPostings(store.column("title"), tokenize)

    def update(self, idx: IntArray) -> None:
        self.words.update(idx, self._store.gather(idx, ("title",))["title"])

    def match(self, text: str) -> BitMap | None:
        """Items whose title holds every token of `text`; None when `text` has no tokens
        (an AND of nothing constrains nothing)."""
        tokens = query_tokens(text)
        if not tokens:
            return None
        return intersect([self.words.get(t) for t in tokens])

    def scores(self, text: str, ids: IntArray, n_docs: int) -> FloatArray:
        """BM25 of matching titles. Every candidate holds every query token and titles rarely
        repeat a word, so tf is taken as 1: the sum of idf is shared and the title's length
        alone orders the candidates, shorter (more focused) titles first."""
        idf = sum(_idf(len(self.words.get(t)), n_docs) for t in query_tokens(text))
        avg = max(self.words.total / max(n_docs, 1), 1.0)
        length = self.words.counts[ids].astype(np.float64)
        return idf * (K1 + 1) / (1 + K1 * (1 - B + B * length / avg))


def _idf(df: int, n_docs: int) -> float:
    return math.log(1 + (n_docs - df + 0.5) / (df + 0.5))


def _cjk_tokens(word: str) -> Iterator[str]:
    """A word's non-CJK runs as they are, its CJK runs as bigrams (a lone character alone)."""
    for run in _RUNS.findall(word):
        if _IS_CJK.match(run) and len(run) > 1:
            yield from (run[i : i + 2] for i in range(len(run) - 1))
        else:
            yield run
