"""Creative choice: which of an item's images (creatives) to show, learned from clicks.

Why a bandit: the best image is only knowable from traffic, and each impression spent on a
worse image costs clicks. Thompson sampling spends impressions in proportion to the chance a
creative is the best, so it explores new images and settles on winners without a tuned schedule.

Why Beta-Binomial smoothing: a creative's CTR is Beta(a0 + clicks, b0 + non-clicks) with a prior
mean m equal to the context's predicted CTR (the ranker's CTR for the item, or the global CTR)
and a prior weight of `prior_strength` pseudo-exposures, so 1 click in 1 exposure does not
outrank 30 in 300. When creatives carry image embeddings, m is shifted by a small online
logistic model shared by all items, so a brand-new image that looks like past winners starts
with a higher prior.

The chosen creative id belongs in the item's tracking param, so effect data can compare them.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_CTR = 0.05  # global CTR assumed before any traffic has been recorded
_EPS = 1e-4  # prior means are clipped to [_EPS, 1 - _EPS] so Beta parameters stay positive
_ZMAX = math.log((1.0 - _EPS) / _EPS)  # the same clip on the log-odds scale
_SNAPSHOT_VERSION = 1


@dataclass(slots=True)
class CreativeStat:
    """One creative's counts and smoothed CTR, for APIs and dashboards."""

    creative: str
    exposures: float
    clicks: float
    posterior_mean: float


def _logit(p: float) -> float:
    p = min(max(p, _EPS), 1.0 - _EPS)
    return math.log(p / (1.0 - p))


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


class CreativeChooser:
    """Thompson-sampling creative chooser with Beta-Binomial smoothing and an embedding prior.

    Thread-safe: `choose` runs on the request loop while `record_*` arrive from event threads;
    one lock guards the counts and the embedding model, held only for dict/arithmetic work.

    State is kept out of the garbage collector's sight: one row per (item, creative) in numpy
    count arrays, found by a string key, and plain dicts of strings and numbers, none of which
    the collector tracks. An object or two per creative (as this once was) made every full
    collection walk them all: 30-45 ms pauses once a replica had shown ~40k items, growing
    with the share of the catalog shown.
    """

    def __init__(self, prior_strength: float = 20.0, seed: int | None = None,
                 embedding_dim: int | None = None, learning_rate: float = 0.05) -> None:
        if prior_strength <= 0:
            raise ValueError("prior_strength must be positive")
        self.prior_strength = float(prior_strength)
        self.learning_rate = float(learning_rate)
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._rows: dict[str, int] = {}  # f"{item}/{creative}" -> its row of the counts
        self._exp = np.zeros(1024)  # position-normalised exposures per row
        self._clk = np.zeros(1024)
        self._names: dict[int, tuple[str, ...]] = {}  # an item's creatives that have rows
        self._base: dict[int, float] = {}  # an item's base log-odds last used as its prior
        self._vectors: dict[int, np.ndarray] = {}  # row -> image embedding
        self._tot_exp = self._tot_clk = 0.0
        # weights[0] is a bias, weights[1:] the embedding coefficients (log-odds offset);
        # created lazily from the first registered vector when embedding_dim is None
        self._w: np.ndarray | None = None if embedding_dim is None else np.zeros(embedding_dim + 1)

    # ---- choosing -------------------------------------------------------------------------
    def choose(self, item_ids: Sequence[int], creatives: Sequence[Sequence[str]],
               base_ctr: np.ndarray | None = None, position_ctr: np.ndarray | None = None,
               embeddings: Sequence[np.ndarray | None] | None = None) -> list[str | None]:
        """One creative per item: None with no creatives, the only one without sampling, else
        the argmax of one Beta draw per creative (all items sampled in a single `rng.beta`).

        base_ctr: per-item predicted CTR (the ranker's); None means the global CTR.
        position_ctr: per-item CTR of the slot it will show in relative to position 1. Counts
            are position-normalised (see `record_exposure`), so a base_ctr predicted *at that
            slot* is divided by it to get the position-1 CTR the counts estimate.
        embeddings: per item, a (n_creatives, dim) array or None; overrides registered vectors
            for the prior only (call `register_embedding` so events train the model; ignored
            until the model has a dimension).
        """
        n = len(item_ids)
        if len(creatives) != n or (embeddings is not None and len(embeddings) != n):
            raise ValueError("item_ids, creatives and embeddings must have the same length")
        out: list[str | None] = [cs[0] if len(cs) == 1 else None for cs in creatives]
        multi = [i for i, cs in enumerate(creatives) if len(cs) > 1]
        if not multi:
            return out
        sizes = [len(creatives[i]) for i in multi]
        with self._lock:
            prior = self._item_prior(base_ctr, position_ctr, n)
            if len(multi) < n:
                prior = prior[multi]
            if base_ctr is not None:  # remember the prior for embedding training and stats
                logits = np.log(prior / (1.0 - prior)).tolist()
                for r, i in enumerate(multi):
                    self._base[item_ids[i]] = logits[r]
            find = self._rows.get
            rows = np.fromiter((find(f"{item_ids[i]}/{c}", -1) for i in multi
                                for c in creatives[i]), np.int64, sum(sizes))
            known = rows >= 0
            exp = np.where(known, self._exp[rows], 0.0)
            clk = np.where(known, self._clk[rows], 0.0)
            w = None if self._w is None else self._w.copy()
            vecs = None if w is None else [self._vectors.get(r) for r in rows.tolist()]
        m = np.repeat(prior, sizes)
        if w is not None and vecs is not None:
            if embeddings is not None:
                pos = 0
                for r, i in enumerate(multi):
                    given = embeddings[i]
                    if given is not None:
                        if len(given) != sizes[r]:
                            raise ValueError("embeddings need one row per creative")
                        vecs[pos:pos + sizes[r]] = list(given)
                    pos += sizes[r]
            have = [v for v in vecs if v is not None]
            if have:
                at = (slice(None) if len(have) == len(vecs)
                      else np.asarray([k for k, v in enumerate(vecs) if v is not None]))
                z = np.log(m[at] / (1.0 - m[at])) + w[0] + np.array(have) @ w[1:]
                m[at] = 1.0 / (1.0 + np.exp(-np.minimum(np.maximum(z, -_ZMAX), _ZMAX)))
        s = self.prior_strength
        draws = self._rng.beta(m * s + clk, (1.0 - m) * s + np.maximum(exp - clk, 0.0))
        kmax = max(sizes)
        if min(sizes) == kmax:  # the common case: every item has the same number of images
            best = draws.reshape(-1, kmax).argmax(axis=1)
        else:
            starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
            grid = np.full((len(multi), kmax), -1.0)
            grid[np.repeat(np.arange(len(multi)), sizes), np.arange(len(draws)) - starts] = draws
            best = grid.argmax(axis=1)
        for i, b in zip(multi, best.tolist(), strict=True):
            out[i] = creatives[i][b]
        return out

    def _item_prior(self, base_ctr: np.ndarray | None, position_ctr: np.ndarray | None,
                    n: int) -> np.ndarray:
        """Per-item prior CTR in position-1 units, clipped to keep Beta parameters valid."""
        if base_ctr is None:
            return np.full(n, self._global_ctr())
        m = np.asarray(base_ctr, dtype=np.float64).reshape(-1)
        if len(m) != n:
            raise ValueError("base_ctr must have one value per item")
        if position_ctr is not None:
            m = m / np.maximum(np.asarray(position_ctr, dtype=np.float64).reshape(-1), _EPS)
        return np.clip(m, _EPS, 1.0 - _EPS)

    def _global_ctr(self) -> float:
        """All traffic's CTR, itself smoothed toward DEFAULT_CTR so it is sane when cold."""
        s = self.prior_strength
        return (self._tot_clk + DEFAULT_CTR * s) / (self._tot_exp + s)

    # ---- events ---------------------------------------------------------------------------
    def _row(self, item_id: int, creative: str) -> int:
        """The creative's row, added (zero counts) the first time it is seen."""
        key = f"{item_id}/{creative}"
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = len(self._rows)
            if row == self._exp.shape[0]:
                self._exp = np.concatenate([self._exp, np.zeros(row)])
                self._clk = np.concatenate([self._clk, np.zeros(row)])
            self._names[item_id] = (*self._names.get(item_id, ()), creative)
        return row

    def _prior_logit(self, item_id: int, row: int, base: float | None = None) -> float:
        """Log-odds of the prior mean: base (or the item's last, or global) + embedding offset."""
        if base is None:
            base = self._base.get(item_id)
            if base is None:
                base = _logit(self._global_ctr())
        w, v = self._w, self._vectors.get(row)
        if v is None or w is None:
            return base
        return base + float(w[0]) + float(w[1:] @ v)

    def record_exposure(self, item_id: int, creative: str, weight: float = 1.0) -> None:
        """Count an impression of `creative`.

        Position bias: pass `weight` = the CTR of the slot it was shown in relative to
        position 1 (e.g. 0.6 at slot 5). The exposure then counts as that fraction of a
        position-1 exposure, so clicks / exposures estimates the position-1 CTR and a creative
        that happened to be shown low is not penalised. The default 1.0 counts raw exposures.

        With an embedding registered this is also the "no click" half of a logistic SGD step:
        gradient weight * sigmoid(z) * x; `record_click` adds the -x half, so exposure + click
        sum to the usual (sigmoid(z) - y) * x for a positive example.
        """
        with self._lock:
            row = self._row(item_id, creative)
            self._exp[row] += weight
            self._tot_exp += weight
            w, v = self._w, self._vectors.get(row)
            if v is not None and w is not None:
                g = self.learning_rate * weight * _sigmoid(self._prior_logit(item_id, row))
                w[0] -= g
                w[1:] -= g * v

    def record_click(self, item_id: int, creative: str) -> None:
        """Count a click on `creative` (and push the embedding model toward it)."""
        with self._lock:
            row = self._row(item_id, creative)
            self._clk[row] += 1.0
            self._tot_clk += 1.0
            w, v = self._w, self._vectors.get(row)
            if v is not None and w is not None:
                w[0] += self.learning_rate
                w[1:] += self.learning_rate * v

    def register_embedding(self, item_id: int, creative: str, vector: np.ndarray) -> None:
        """Attach an image embedding so this creative's prior and events use the shared model.

        Vectors should be roughly unit-scale (e.g. L2-normalised): the SGD step is not scaled.
        """
        v = np.asarray(vector, dtype=np.float64).reshape(-1)
        with self._lock:
            if self._w is None:
                self._w = np.zeros(len(v) + 1)
            elif len(v) != len(self._w) - 1:
                raise ValueError(f"embedding has {len(v)} dims, expected {len(self._w) - 1}")
            self._vectors[self._row(item_id, creative)] = v

    # ---- reading --------------------------------------------------------------------------
    def stats(self, item_id: int, base_ctr: float | None = None) -> list[CreativeStat]:
        """The item's creatives by descending posterior mean (no sampling).

        The prior mean uses `base_ctr` if given, else the item's last prior from `choose`,
        else the global CTR; plus the embedding model's offset for creatives with a vector.
        """
        with self._lock:
            base = None if base_ctr is None else _logit(base_ctr)
            s, out = self.prior_strength, []
            for c in self._names.get(item_id, ()):
                row = self._rows[f"{item_id}/{c}"]
                exp, clk = float(self._exp[row]), float(self._clk[row])
                m = min(max(_sigmoid(self._prior_logit(item_id, row, base)), _EPS), 1.0 - _EPS)
                alpha = m * s + clk
                beta = (1.0 - m) * s + max(exp - clk, 0.0)
                out.append(CreativeStat(c, exp, clk, alpha / (alpha + beta)))
        out.sort(key=lambda x: -x.posterior_mean)
        return out

    def best(self, item_id: int, base_ctr: float | None = None) -> str | None:
        """The creative with the highest posterior mean (exploitation only), None if unknown."""
        st = self.stats(item_id, base_ctr)
        return st[0].creative if st else None

    @property
    def embedding_weights(self) -> np.ndarray | None:
        """A copy of the embedding model: [bias, coefficients...], or None when unused."""
        with self._lock:
            return None if self._w is None else self._w.copy()

    # ---- persistence ----------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """JSON-able state: counts, base priors, embeddings and the model (not the RNG)."""
        with self._lock:
            items = {}
            for iid in dict.fromkeys([*self._names, *self._base]):
                arms = {}
                for c in self._names.get(iid, ()):
                    row = self._rows[f"{iid}/{c}"]
                    v = self._vectors.get(row)
                    arms[c] = [float(self._exp[row]), float(self._clk[row]),
                               None if v is None else v.tolist()]
                items[str(iid)] = {"base_logit": self._base.get(iid), "creatives": arms}
            return {"version": _SNAPSHOT_VERSION, "totals": [self._tot_exp, self._tot_clk],
                    "model": None if self._w is None else self._w.tolist(), "items": items}

    def restore(self, data: dict[str, Any]) -> None:
        """Replace all state with a `snapshot()` (e.g. after a restart)."""
        if data.get("version") != _SNAPSHOT_VERSION:
            raise ValueError(f"unsupported creatives snapshot version {data.get('version')!r}")
        fresh = CreativeChooser(self.prior_strength, learning_rate=self.learning_rate)
        for iid, raw in data["items"].items():
            item = int(iid)
            if raw["base_logit"] is not None:
                fresh._base[item] = float(raw["base_logit"])
            for c, (e, k, emb) in raw["creatives"].items():
                row = fresh._row(item, c)
                fresh._exp[row], fresh._clk[row] = float(e), float(k)
                if emb is not None:
                    fresh._vectors[row] = np.asarray(emb, dtype=np.float64)
        model = data["model"]
        with self._lock:
            self._rows, self._exp, self._clk = fresh._rows, fresh._exp, fresh._clk
            self._names, self._base, self._vectors = fresh._names, fresh._base, fresh._vectors
            self._tot_exp, self._tot_clk = (float(x) for x in data["totals"])
            self._w = None if model is None else np.asarray(model, dtype=np.float64)
