"""FTRL-Proximal logistic regression (McMahan et al., "Ad Click Prediction: a View from the
Trenches", KDD 2013): the linear CTR model that keeps learning online, from the event stream.

Coordinates are those of LR (dense columns, then one per global id) plus an unregularized bias.
Each coordinate i keeps two numbers, z_i and n_i (the sum of squared gradients); its weight is

    w_i = 0                                               if |z_i| <= l1
    w_i = -(z_i - sign(z_i) l1) / ((beta + sqrt(n_i)) / alpha + l2)   otherwise

so L1 gives exact zeros per coordinate, and the learning rate alpha / (beta + sqrt(n_i)) adapts
per coordinate (a rare id keeps learning fast while a frequent one settles). `fit` also fixes a
constant offset, the log-odds of the training CTR, that the bias coordinate learns around: FTRL
starting from p = 0.5 on a 5% CTR pushes every coordinate of the first minibatches the same way
at once and overshoots by far (a mean prediction of 1e-4 after a 1,500-row fit, without it).

Written by hand with numpy: no maintained Python library does FTRL-Proximal online updates
(scikit-learn's SGDClassifier has neither FTRL nor a per-coordinate adaptive L1), and the
update is a dozen vectorized lines.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from tuijian.domain import FloatArray, IntArray
from tuijian.rank.features.featureset import FeatureLayout, FeatureMatrix
from tuijian.rank.models.base import (
    ModelFileError,
    Progress,
    Task,
    TrainSet,
    check_task,
    load_arrays,
    require,
    save_arrays,
    sigmoid,
)
from tuijian.rank.models.linear import LinearWeights

STATE = "ftrl.safetensors"


@dataclass(frozen=True, slots=True)
class FTRLParams:
    """Hyperparameters. `epochs` is the number of passes of the offline `fit`; `batch_size`
    its minibatch, and the most rows an online update learns with one frozen set of weights."""

    alpha: float = 0.1
    beta: float = 1.0
    l1: float = 1.0
    l2: float = 1.0
    epochs: int = 3
    batch_size: int = 256
    seed: int = 0

    @classmethod
    def parse(cls, params: dict[str, Any]) -> FTRLParams:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"ftrl: unknown params {unknown} (known: {sorted(known)})")
        p = cls(**params)
        # the one table of limits: (value, lowest allowed, whether the bound is exclusive)
        limits = {"alpha": (p.alpha, 0.0, True), "beta": (p.beta, 0.0, False),
                  "l1": (p.l1, 0.0, False), "l2": (p.l2, 0.0, False),
                  "epochs": (p.epochs, 1, False), "batch_size": (p.batch_size, 1, False)}
        for name, (value, low, exclusive) in limits.items():
            if not np.isfinite(value) or value < low or (exclusive and value == low):
                raise ValueError(f"ftrl: {name} must be {'>' if exclusive else '>='} {low}, "
                                 f"got {value}")
        return p


class _State:
    """One immutable version of (z, n). Its weights are derived on first use and cached on the
    version itself, so an update (which publishes a new version) invalidates them by
    construction, and a reader racing an update can never cache stale weights for the new
    version."""

    __slots__ = ("z", "n", "offset", "flat", "_weights")

    def __init__(self, z: FloatArray, n: FloatArray, offset: float = 0.0,
                 flat: FloatArray | None = None) -> None:
        self.z, self.n, self.offset = z, n, offset
        self.flat = flat  # every coordinate's weight, the bias last; None until derived
        self._weights: LinearWeights | None = None

    def weights(self, model: FTRLModel) -> LinearWeights:
        w = self._weights
        if w is None:  # two threads deriving it at once derive the same thing
            if self.flat is None:
                self.flat = model.coordinate_weights(self.z, self.n)
            w = LinearWeights(model.layout)
            w.set_flat(self.flat[:-1], float(self.flat[-1]) + self.offset)
            self._weights = w
        return w


def _closed_form(z: FloatArray, n: FloatArray, alpha: float, beta: float, l1: float,
                 l2: float) -> FloatArray:
    w = -(z - np.sign(z) * l1) / ((beta + np.sqrt(n)) / alpha + l2)
    w[np.abs(z) <= l1] = 0.0
    return np.asarray(w, np.float64)


class FTRLModel:
    """Per-coordinate FTRL-Proximal logistic regression.

    Thread safety: `predict` may run on the request thread while `partial_fit` runs on another.
    Updates are copy-on-write: `partial_fit` copies z and n (2 MB each at the marketplace's
    ~260k coordinates; about 2 ms per update with the weights, measured), updates the copies
    and publishes them as a new `_State` with one reference assignment; `predict` reads that
    reference once, so it sees one whole version, never a half-applied batch. Updaters are
    serialized by a lock, so two concurrent batches cannot lose each other's update; predict
    never takes it.
    """

    kind: ClassVar[str] = "ftrl"

    def __init__(self, layout: FeatureLayout, task: Task, params: dict[str, Any]) -> None:
        check_task(self.kind, task, ("binary",))
        self.layout, self.task = layout, task
        self.params = FTRLParams.parse(params)
        self.n_coords = layout.n_dense + layout.n_ids + 1  # the last one is the bias
        self._state = _State(np.zeros(self.n_coords), np.zeros(self.n_coords))
        self._update_lock = threading.Lock()

    # -- weights -------------------------------------------------------------------------------

    def coordinate_weights(self, z: FloatArray, n: FloatArray,
                           coords: IntArray | None = None) -> FloatArray:
        """The FTRL-Proximal closed form for the weights of `coords` (all if None), given
        every coordinate's z and n. The bias coordinate, the last, is not regularized."""
        p = self.params
        zc, nc = (z, n) if coords is None else (z[coords], n[coords])
        w = _closed_form(zc, nc, p.alpha, p.beta, p.l1, p.l2)
        bias = self.n_coords - 1
        at = [len(zc) - 1] if coords is None else np.flatnonzero(coords == bias)
        w[at] = _closed_form(zc[at], nc[at], p.alpha, p.beta, 0.0, 0.0)
        return w

    def weights(self) -> LinearWeights:
        """The current weights (cached per version of the state)."""
        return self._state.weights(self)

    # -- training ------------------------------------------------------------------------------

    def fit(self, train: TrainSet, valid: TrainSet | None = None,
            progress: Progress | None = None) -> None:
        """From scratch: `epochs` passes over shuffled minibatches, each the same update as
        `partial_fit`. The passes update private arrays in place (no copy per batch); the
        result is published once at the end. `valid` is unused: no early stopping."""
        p = self.params
        z, n = np.zeros(self.n_coords), np.zeros(self.n_coords)
        ctr = float(np.clip(np.average(train.y, weights=train.weight), 1e-6, 1 - 1e-6))
        offset = float(np.log(ctr / (1.0 - ctr)))
        rng = np.random.default_rng(p.seed)
        rows = len(train)
        batches = max(1, -(-rows // p.batch_size))
        for epoch in range(p.epochs):
            order = rng.permutation(rows)
            for b in range(batches):
                take = order[b * p.batch_size:(b + 1) * p.batch_size]
                if take.size == 0:
                    continue
                weight = None if train.weight is None else train.weight[take]
                self._step(z, n, offset, train.x.take(take), train.y[take], weight)
                if progress is not None and b % 50 == 0:
                    progress(f"ftrl: pass {epoch + 1}/{p.epochs}",
                             (epoch * batches + b) / (p.epochs * batches))
        with self._update_lock:
            self._state = _State(z, n, offset)
        if progress is not None:
            progress("ftrl: done", 1.0)

    def partial_fit(self, x: FeatureMatrix, y: FloatArray,
                    weight: FloatArray | None = None) -> None:
        """Learn a batch on top of the current state (the online update), published at once.

        A batch larger than `batch_size` is learnt in steps of `batch_size` rows, so no row
        is predicted with weights more than `batch_size` rows stale: a backlog of 100k rows
        learnt as one frozen-weight step would overshoot like a fit from scratch does."""
        if len(x) == 0:
            return
        y = np.asarray(y, np.float64)
        size = self.params.batch_size
        with self._update_lock:
            old = self._state
            z, n = old.z.copy(), old.n.copy()
            touched = []
            for start in range(0, len(x), size):
                rows = np.arange(start, min(start + size, len(x)))
                touched.append(self._step(z, n, old.offset, x.take(rows), y[rows],
                                          None if weight is None else weight[rows]))
            # derive the new weights here, on the updating thread, so the first request after
            # an update does not pay for it: only the touched coordinates change
            flat = None
            if old.flat is not None:
                coords = np.unique(np.concatenate(touched))
                flat = old.flat.copy()
                flat[coords] = self.coordinate_weights(z, n, coords)
            new = _State(z, n, old.offset, flat)
            new.weights(self)
            self._state = new

    def _step(self, z: FloatArray, n: FloatArray, offset: float, x: FeatureMatrix,
              y: FloatArray, weight: FloatArray | None) -> IntArray:
        """One minibatch, in place on z and n; returns the coordinates it touched.

        The standard minibatch approximation: every row is predicted with the weights as
        they were at the start of the batch, then each coordinate takes the sum of its
        gradients g and of their squares. That is exactly per-row FTRL with the weights frozen
        for the batch, since the per-row sigma_i terms telescope to
        (sqrt(n_i + sum g^2) - sqrt(n_i)) / alpha. Only the coordinates the batch touches are
        read or written.
        """
        nd, rows, f = self.layout.n_dense, len(x), self.layout.n_fields
        ids, inv = np.unique(x.cat.ravel(), return_inverse=True)
        coords = np.concatenate([np.arange(nd), nd + ids, [self.n_coords - 1]])
        w = self.coordinate_weights(z, n, coords)
        margin = (x.dense @ w[:nd] + w[nd:-1][inv].reshape(rows, f).sum(axis=1) + w[-1]
                  + offset)
        r = sigmoid(margin) - y  # d logloss / d margin
        if weight is not None:
            r = r * weight
        r2 = r * r
        dense = x.dense.astype(np.float64)
        rf, r2f = np.repeat(r, f), np.repeat(r2, f)  # cat.ravel() is row-major
        g = np.concatenate([dense.T @ r, np.bincount(inv, rf, len(ids)), [r.sum()]])
        g2 = np.concatenate([(dense * dense).T @ r2, np.bincount(inv, r2f, len(ids)),
                             [r2.sum()]])
        nc = n[coords]
        sigma = (np.sqrt(nc + g2) - np.sqrt(nc)) / self.params.alpha
        z[coords] += g - sigma * w
        n[coords] = nc + g2
        return coords

    # -- serving -------------------------------------------------------------------------------

    def predict(self, x: FeatureMatrix) -> FloatArray:
        return sigmoid(self._state.weights(self).margin(x))

    def save(self, path: Path) -> None:
        s = self._state
        dims = np.array([self.layout.n_dense, self.layout.n_ids], np.int64)
        save_arrays(path / STATE, {"z": s.z, "n": s.n, "offset": np.array([s.offset]),
                                   "dims": dims})

    @classmethod
    def load(cls, path: Path, layout: FeatureLayout, task: Task,
             params: dict[str, Any]) -> Self:
        try:
            model = cls(layout, task, params)
        except ValueError as exc:
            raise ModelFileError(f"{STATE}: {exc}") from None
        a = load_arrays(require(path / STATE), {"z": (model.n_coords,), "n": (model.n_coords,),
                                                "offset": (1,), "dims": (2,)})
        if a["dims"].tolist() != [layout.n_dense, layout.n_ids]:
            raise ModelFileError(f"{STATE}: built for (dense, ids) = {a['dims'].tolist()}, the "
                                 f"feature config has {[layout.n_dense, layout.n_ids]}")
        z, n = np.asarray(a["z"], np.float64), np.asarray(a["n"], np.float64)
        offset = np.asarray(a["offset"], np.float64)
        if not (np.all(np.isfinite(z)) and np.all(np.isfinite(n)) and np.all(n >= 0)
                and np.all(np.isfinite(offset))):
            raise ModelFileError(f"{STATE}: z, n or offset is not finite, or n is negative")
        model._state = _State(z, n, float(offset[0]))
        return model
