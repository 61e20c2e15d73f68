"""Dedup: one listing per re-post, keeping the best-ranked copy.

Re-posting is the commonest spam on a classifieds site. Exact copies share the item id or the
(publisher, title) content key; near copies share most of their text (MinHash) or a photo
(perceptual hash). Every signature was computed once at ingest, so a request only sorts band
keys and verifies the few pairs that collide (`near_dup.py`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tuijian.data.signatures import BAND_COLUMNS, jaccard
from tuijian.domain import Candidates
from tuijian.rules.base import RuleContext, RuleReport
from tuijian.rules.near_dup import (
    ImageHashes,
    Pairs,
    distinct_pairs,
    greedy_drop,
    image_distance,
    image_pairs,
    text_pairs,
)
from tuijian.rules.spec import DedupSpec


def exact_duplicates(keys: np.ndarray) -> np.ndarray:
    """Rows that repeat an earlier row's item or content key: the content keys of the rows'
    items, and a repeated item repeats its key, so "not the first of its key" covers both."""
    first = np.zeros(len(keys), bool)
    first[np.unique(keys, return_index=True)[1]] = True
    return ~first


class Dedup:
    name = "dedup"

    def __init__(self, spec: DedupSpec) -> None:
        self.spec = spec

    def apply(self, cands: Candidates, ctx: RuleContext) -> tuple[Candidates, RuleReport]:
        if len(cands) == 0:
            return cands, RuleReport(self.name)
        drop = (exact_duplicates(ctx.store.gather(cands.idx, ("content_key",))["content_key"])
                if self.spec.exact else np.zeros(len(cands), bool))
        live = np.flatnonzero(~drop)[: max(self.spec.depth * ctx.n, 100)]
        # the signatures of the rows compared only (a third of the list, often)
        near = self.near_pairs(ctx.store.gather(cands.idx[live], self.columns()[1:]))
        drop[live[greedy_drop(len(live), near)]] = True
        return cands.take(np.flatnonzero(~drop)), RuleReport(self.name, removed=int(drop.sum()))

    def near_pairs(self, cols: dict[str, np.ndarray]) -> Pairs:
        """Near-duplicate row pairs under this spec (also what the offline evaluation scores)."""
        spec = self.spec
        found: list[Pairs] = []
        bands = _bands(cols) if spec.text is not None else None
        images = None
        if spec.image is not None:
            images = (ImageHashes.covers(cols["cover_hash"], cols["n_images"])
                      if spec.image.images == 1
                      else ImageHashes.from_lists(cols["image_hashes"], spec.image.images))
        if spec.mode == "any":
            if bands is not None and spec.text is not None:
                found.append(text_pairs(bands, spec.text.min_jaccard))
            if images is not None and spec.image is not None:
                found.append(image_pairs(images, spec.image.max_distance))
        else:  # weighted: score every pair either signal proposes, then threshold the blend
            w = spec.weights
            loose = [text_pairs(bands, 0.3)] if bands is not None else []
            if images is not None:
                loose.append(image_pairs(images, 16))
            cand = distinct_pairs(np.concatenate(loose)) if loose else np.empty((0, 2), int)
            score = np.zeros(len(cand))
            if bands is not None:
                score += w.text * jaccard(bands[cand[:, 0]], bands[cand[:, 1]])
            if images is not None:
                score += w.image * (1 - image_distance(images, cand) / 64)
            found.append(cand[score >= w.threshold])
        found = [p for p in found if len(p)]
        if not found:
            return np.empty((0, 2), np.int64)
        return distinct_pairs(np.concatenate(found))

    def columns(self) -> tuple[str, ...]:
        """The content key, then what `near_pairs` reads."""
        cols = ["content_key"]
        if self.spec.text is not None:
            cols += BAND_COLUMNS
        if self.spec.image is not None:
            cols += (["cover_hash", "n_images"] if self.spec.image.images == 1
                     else ["image_hashes"])
        return tuple(cols)


def _bands(cols: dict[str, np.ndarray]) -> npt.NDArray[np.int64]:
    """The (rows, bands) matrix of the band columns, filled column by column (faster than
    np.stack on the short columns of a request)."""
    out = np.empty((len(cols[BAND_COLUMNS[0]]), len(BAND_COLUMNS)), np.int64)
    for b, c in enumerate(BAND_COLUMNS):
        out[:, b] = cols[c]
    return out
