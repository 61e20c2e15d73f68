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
from dataclasses import dataclass, field
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


@dataclass(slots=True)
class _Arm:  # mutable per-creative state; slotted so event updates stay cheap
    exposures: float = 0.0
    clicks: float = 0.0
    embedding: np.ndarray | None = None


@dataclass(slots=True)
class _Item:  # an item's creatives + the base log-odds last used as its prior (training/stats)
    arms: dict[str, _Arm] = field(default_factory=dict)
    base_logit: float | None = None


def _logit(p: float) -> float:
    p = min(max(p, _EPS), 1.0 - _EPS)
    return math.log(p / (1.0 - p))


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


class CreativeChooser:
    """Thompson-sampling creative chooser with Beta-Binomial smoothing and an embedding prior.

    Thread-safe: `choose` runs on the request loop while `record_*` arrive from event threads;
    one lock guards the counts and the embedding model, held only for dict/arithmetic work.
    """

    def __init__(self, prior_strength: float = 20.0, seed: int | None = None,
                 embedding_dim: int | None = None, learning_rate: float = 0.05) -> None:
        if prior_strength <= 0:
            raise ValueError("prior_strength must be positive")
        self.prior_strength = float(prior_strength)
        self.learning_rate = float(learning_rate)
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._items: dict[int, _Item] = {}
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
        got: list[_Arm | None] = []
        with self._lock:
            prior = self._item_prior(base_ctr, position_ctr, n)
            if len(multi) < n:
                prior = prior[multi]
            logits = None if base_ctr is None else np.log(prior / (1.0 - prior)).tolist()
            items = self._items
            for r, i in enumerate(multi):
                st = items.get(item_ids[i])
                if logits is not None:  # remember the prior for embedding training and stats
                    if st is None:
                        st = items[item_ids[i]] = _Item()
                    st.base_logit = logits[r]
                if st is None:
                    got.extend([None] * sizes[r])
                else:
                    got.extend([st.arms.get(c) for c in creatives[i]])
            exp = np.array([0.0 if a is None else a.exposures for a in got])
            clk = np.array([0.0 if a is None else a.clicks for a in got])
            w = None if self._w is None else self._w.copy()
            vecs = None if w is None else [None if a is None else a.embedding for a in got]
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
    def _arm(self, item_id: int, creative: str) -> tuple[_Item, _Arm]:
        st = self._items.get(item_id)
        if st is None:
            st = self._items[item_id] = _Item()
        a = st.arms.get(creative)
        if a is None:
            a = st.arms[creative] = _Arm()
        return st, a

    def _prior_logit(self, st: _Item, a: _Arm, base: float | None = None) -> float:
        """Log-odds of the prior mean: base (or the item's last, or global) + embedding offset."""
        if base is None:
            base = st.base_logit if st.base_logit is not None else _logit(self._global_ctr())
        w = self._w
        if a.embedding is None or w is None:
            return base
        return base + float(w[0]) + float(w[1:] @ a.embedding)

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
            st, a = self._arm(item_id, creative)
            a.exposures += weight
            self._tot_exp += weight
            w = self._w
            if a.embedding is not None and w is not None:
                g = self.learning_rate * weight * _sigmoid(self._prior_logit(st, a))
                w[0] -= g
                w[1:] -= g * a.embedding

    def record_click(self, item_id: int, creative: str) -> None:
        """Count a click on `creative` (and push the embedding model toward it)."""
        with self._lock:
            _, a = self._arm(item_id, creative)
            a.clicks += 1.0
            self._tot_clk += 1.0
            w = self._w
            if a.embedding is not None and w is not None:
                w[0] += self.learning_rate
                w[1:] += self.learning_rate * a.embedding

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
            self._arm(item_id, creative)[1].embedding = v

    # ---- reading --------------------------------------------------------------------------
    def stats(self, item_id: int, base_ctr: float | None = None) -> list[CreativeStat]:
        """The item's creatives by descending posterior mean (no sampling).

        The prior mean uses `base_ctr` if given, else the item's last prior from `choose`,
        else the global CTR; plus the embedding model's offset for creatives with a vector.
        """
        with self._lock:
            st = self._items.get(item_id)
            if st is None:
                return []
            base = None if base_ctr is None else _logit(base_ctr)
            s, out = self.prior_strength, []
            for c, a in st.arms.items():
                m = min(max(_sigmoid(self._prior_logit(st, a, base)), _EPS), 1.0 - _EPS)
                alpha = m * s + a.clicks
                beta = (1.0 - m) * s + max(a.exposures - a.clicks, 0.0)
                out.append(CreativeStat(c, a.exposures, a.clicks, alpha / (alpha + beta)))
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
            items = {str(iid): {"base_logit": st.base_logit, "creatives": {
                c: [a.exposures, a.clicks, None if a.embedding is None else a.embedding.tolist()]
                for c, a in st.arms.items()}} for iid, st in self._items.items()}
            return {"version": _SNAPSHOT_VERSION, "totals": [self._tot_exp, self._tot_clk],
                    "model": None if self._w is None else self._w.tolist(), "items": items}

    def restore(self, data: dict[str, Any]) -> None:
        """Replace all state with a `snapshot()` (e.g. after a restart)."""
        if data.get("version") != _SNAPSHOT_VERSION:
            raise ValueError(f"unsupported creatives snapshot version {data.get('version')!r}")
        items: dict[int, _Item] = {}
        for iid, raw in data["items"].items():
            bl = raw["base_logit"]
            st = items[int(iid)] = _Item(base_logit=None if bl is None else float(bl))
            for c, (e, k, emb) in raw["creatives"].items():
                st.arms[c] = _Arm(float(e), float(k),
                                  None if emb is None else np.asarray(emb, dtype=np.float64))
        model = data["model"]
        with self._lock:
            self._items = items
            self._tot_exp, self._tot_clk = (float(x) for x in data["totals"])
            self._w = None if model is None else np.asarray(model, dtype=np.float64)
