"""`tuijian eval rules`: dedup, scatter and speed measured against a generated marketplace.

The generator plants re-posts (`dup_of`) and this module gives every listing real photos and
free-text descriptions, so each kind of re-post a de-duplicator meets is present: the same
photo re-uploaded with the text lightly edited; a new photo with the text kept; and the text
rewritten around a re-uploaded photo. Text dedup alone, image dedup alone and mixed dedup are
scored as pairwise precision / recall against the generator's truth (two listings are
duplicates when they are copies of the same original).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from tuijian.data.generator import generate_marketplace
from tuijian.data.images import encode_jpeg, image_hashes, render_photo, repost_copy
from tuijian.data.items import ColumnarItemStore
from tuijian.domain import Candidates
from tuijian.rules.base import RuleContext
from tuijian.rules.chain import rule_chain
from tuijian.rules.dedup import Dedup
from tuijian.rules.near_dup import Pairs
from tuijian.rules.scatter import violations
from tuijian.rules.spec import DedupSpec, RuleStrategy

# Free text a publisher writes; three per listing make unrelated listings' texts differ the way
# real descriptions do, instead of being identical templates over the same attributes.
PHRASES = (
    "viewing any time", "owner direct", "no agents please", "quick sale", "well kept",
    "recently renovated", "bright and airy", "quiet neighbourhood", "close to the market",
    "price slightly negotiable", "serious buyers only", "call after six", "weekend viewing",
    "moving abroad", "must go this week", "all papers ready", "genuine listing",
    "photos are real", "near a park", "good condition", "first come first served",
    "family owned", "clean and tidy", "new in box", "receipt available", "flexible hours",
    "friendly team", "free delivery nearby", "cash or transfer", "long term preferred",
)
MODES = ("copy", "new_photo", "rewrite")
_MODE_P = (0.5, 0.25, 0.25)


@dataclass(slots=True)
class Marketplace:
    """Items with photo hashes and descriptions, and the truth: each row's cluster (the row of
    the original it copies, itself for originals) and, for re-posts, how they were made."""

    store: ColumnarItemStore
    cluster: npt.NDArray[np.int64]
    mode: npt.NDArray[np.int8]  # index into MODES, -1 for originals


def build_marketplace(n_items: int, seed: int = 7, now: float = 1.75e9) -> Marketplace:
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        generate_marketplace(Path(tmp), n_items, 10, seed, now)
        table = pq.read_table(Path(tmp) / "items.parquet")
    dup_of = table.column("dup_of").to_numpy()
    n = table.num_rows
    orig = np.where(dup_of > 0, dup_of - 1, np.arange(n))
    mode = np.where(dup_of > 0, rng.choice(len(MODES), n, p=_MODE_P), -1).astype(np.int8)
    phrases = rng.integers(0, len(PHRASES), (n, 3))
    keeps_text = mode != MODES.index("rewrite")
    phrases[keeps_text] = phrases[orig[keeps_text]]
    title = table.column("title").to_pylist()
    body = table.column("body").to_pylist()
    photos: list[bytes] = []
    for i in range(n):
        own_photo = mode[i] in (-1, MODES.index("new_photo"))
        picture = render_photo(int(seed * 10_000_000 + (i if own_photo else orig[i])))
        photos.append(encode_jpeg(picture) if own_photo else repost_copy(picture, rng))
        if mode[i] == MODES.index("rewrite"):
            words = title[i].split()
            rng.shuffle(words)
            title[i] = " ".join(words)
        body[i] = f"{body[i]} {', '.join(PHRASES[p] for p in phrases[i]).capitalize()}."
    hashes = image_hashes(photos)
    table = table.drop_columns(["title", "body", "image_hashes", "dup_of"]).append_column(
        "title", pa.array(title)).append_column("body", pa.array(body)).append_column(
        "image_hashes", pa.array([[int(h)] for h in hashes], pa.list_(pa.int64())))
    return Marketplace(ColumnarItemStore(table), orig.astype(np.int64), mode)


def _scores(pred: Pairs, cluster: npt.NDArray[np.int64]) -> dict[str, float]:
    sizes = np.bincount(cluster)
    true_pairs = int((sizes * (sizes - 1) // 2).sum())
    hits = int((cluster[pred[:, 0]] == cluster[pred[:, 1]]).sum()) if len(pred) else 0
    return {"precision": round(hits / len(pred), 4) if len(pred) else 1.0,
            "recall": round(hits / true_pairs, 4) if true_pairs else 1.0,
            "pairs": len(pred), "true_pairs": true_pairs}


def score_dedup(market: Marketplace, spec: DedupSpec) -> dict[str, dict[str, float]]:
    """Precision / recall of text alone, image alone and mixed, on every pair of the catalog."""
    store = market.store
    dedup = {
        "text": Dedup(spec.model_copy(update={"image": None})),
        "image": Dedup(spec.model_copy(update={"text": None})),
        "mixed": Dedup(spec),
    }
    idx = np.arange(len(store))
    out = {}
    for name, rule in dedup.items():
        pairs = rule.near_pairs(store.gather(idx, rule.columns()))
        out[name] = _scores(pairs, market.cluster)
    return out


def score_rules(market: Marketplace, spec: RuleStrategy, lists: int, size: int, n: int,
                seed: int = 3) -> dict[str, Any]:
    """Run the whole rule chain on `lists` ranked lists of `size` items: scatter violations in
    the n shown (the generated catalog always leaves enough publishers to meet the windows)
    and the chain's latency."""
    rng = np.random.default_rng(seed)
    chain = rule_chain(spec)
    ctx = RuleContext(market.store, n, time.time())
    fields = tuple(s.field for s in spec.scatter)
    elapsed, bad, removed = [], 0, 0
    for _ in range(lists):
        idx = rng.choice(len(market.store), size, replace=False)
        cands = Candidates.placed(idx, np.sort(rng.random(size))[::-1], 0)
        t0 = time.perf_counter()
        for rule in chain:
            cands, report = rule.apply(cands, ctx)
            removed += report.removed
        elapsed.append(time.perf_counter() - t0)
        if fields:
            cols = market.store.gather(cands.idx[:n], fields)
            keys = list(zip(*(cols[f].tolist() for f in fields), strict=True))
            bad += violations(keys, spec.scatter)
    ms = np.array(elapsed) * 1e3
    return {"scatter": {"violations": bad, "lists": lists, "shown": n},
            "rules_p50_ms": round(float(np.percentile(ms, 50)), 3),
            "rules_p99_ms": round(float(np.percentile(ms, 99)), 3),
            "removed_per_list": round(removed / lists, 2)}


def run(spec: RuleStrategy, n_items: int = 3000, lists: int = 500, size: int = 500,
        n: int = 50, seed: int = 7) -> dict[str, Any]:
    """What `tuijian eval rules --json` prints."""
    t0 = time.perf_counter()
    market = build_marketplace(n_items, seed)
    built = time.perf_counter() - t0
    dedup_spec = spec.dedup or DedupSpec()
    result: dict[str, Any] = {"dedup": score_dedup(market, dedup_spec)}
    result.update(score_rules(market, spec, lists, min(size, len(market.store)), n))
    modes = {m: int((market.mode == i).sum()) for i, m in enumerate(MODES)}
    result["marketplace"] = {"items": len(market.store), "reposts": modes,
                             "build_s": round(built, 1)}
    return result
