"""Raw input columns → one model matrix, vectorized over the whole batch.

The raw inputs of a batch are a dict of equal-length numpy columns (`Raw`); the output is a
`FeatureMatrix`: a float32 dense block (numeric features) and an int64 block of categorical
ids, one column per field, each id offset into one global id space so linear models, FMs and
embedding tables can all index a single weight table. Training and serving both call
`FeatureSet.transform`, so a feature cannot mean one thing offline and another online.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tuijian.domain import FloatArray, IntArray
from tuijian.rank.features.spec import FeatureConfig, FeatureSpec

Raw = Mapping[str, npt.NDArray[Any]]

_M1, _M2, _GOLDEN = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(
    0x9E3779B97F4A7C15)


def mix64(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """SplitMix64's finalizer: a fixed, documented hash, identical in every process (Python's
    `hash` is salted per process, which would break a model moved between machines)."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))


def hash_ids(columns: list[npt.NDArray[Any]], buckets: int, salt: int) -> IntArray:
    """Hash one or more integer columns together into [0, buckets); the salt (the feature's
    position) keeps two features hashing the same inputs apart."""
    with np.errstate(over="ignore"):
        h = np.full(columns[0].shape[0], np.uint64(salt) * _GOLDEN, np.uint64)
        for col in columns:
            h = mix64(h ^ (np.asarray(col).astype(np.int64).view(np.uint64) + _GOLDEN))
    return (h % np.uint64(buckets)).astype(np.int64)


@dataclass(slots=True)
class FeatureMatrix:
    """One batch as a model sees it. `cat` holds global ids (field offset + local id)."""

    dense: npt.NDArray[np.float32]
    cat: IntArray

    def __len__(self) -> int:
        return int(self.dense.shape[0])

    def take(self, rows: npt.NDArray[Any]) -> FeatureMatrix:
        return FeatureMatrix(self.dense[rows], self.cat[rows])


@dataclass(frozen=True, slots=True)
class FeatureLayout:
    """The shape of a matrix: what a model needs to size its weights, and what a deployed
    model file is checked against before it is allowed to serve."""

    dense_names: tuple[str, ...]
    field_names: tuple[str, ...]
    field_sizes: tuple[int, ...]

    @property
    def n_dense(self) -> int:
        return len(self.dense_names)

    @property
    def n_fields(self) -> int:
        return len(self.field_names)

    @property
    def n_ids(self) -> int:
        return int(sum(self.field_sizes))

    @property
    def offsets(self) -> IntArray:
        return np.concatenate([[0], np.cumsum(self.field_sizes)[:-1]]).astype(np.int64)


class FeatureSet:
    """A fitted feature config, compiled for fast transforms."""

    def __init__(self, config: FeatureConfig) -> None:
        if not config.fitted:
            unfitted = [f.name for f in config.features if not f.fitted]
            raise ValueError(f"feature config {config.name!r} is not fitted: {unfitted}")
        self.config = config
        self.dense = [f for f in config.features if not f.categorical]
        self.fields = [f for f in config.features if f.categorical]
        self.layout = FeatureLayout(
            tuple(f.name for f in self.dense), tuple(f.name for f in self.fields),
            tuple(f.cardinality for f in self.fields))
        self._offsets = self.layout.offsets
        self._salts = {f.name: i for i, f in enumerate(config.features)}

    @staticmethod
    def fit(config: FeatureConfig, raw: Raw) -> FeatureSet:
        """Fill in what is learnt from the training rows (means, stds, quantile boundaries)."""
        fitted = []
        for f in config.features:
            update: dict[str, Any] = {}
            if f.transform == "normalize" and not f.fitted:
                v = _numeric(f, raw)
                ok = v[np.isfinite(v)]
                update = {"mean": float(ok.mean()) if ok.size else 0.0,
                          "std": float(ok.std()) if ok.size and ok.std() > 1e-12 else 1.0}
            elif f.transform == "bucketize" and f.boundaries is None:
                v = _numeric(f, raw)
                ok = v[np.isfinite(v)]
                qs = np.quantile(ok, np.linspace(0, 1, (f.quantiles or 2) + 1)[1:-1]) \
                    if ok.size else np.zeros(0)
                update = {"boundaries": [float(b) for b in np.unique(qs)] or [0.0]}
            fitted.append(f.model_copy(update=update))
        return FeatureSet(config.model_copy(update={"features": fitted}))

    def transform(self, raw: Raw) -> FeatureMatrix:
        n = _rows(raw)
        dense = np.empty((n, len(self.dense)), np.float32)
        for j, f in enumerate(self.dense):
            v = _numeric(f, raw)
            if f.transform == "normalize":
                v = (v - (f.mean or 0.0)) / (f.std or 1.0)
            dense[:, j] = np.where(np.isfinite(v), v, 0.0)
        cat = np.empty((n, len(self.fields)), np.int64)
        for j, f in enumerate(self.fields):
            cat[:, j] = self._ids(f, raw) + self._offsets[j]
        return FeatureMatrix(dense, cat)

    def _ids(self, f: FeatureSpec, raw: Raw) -> IntArray:
        if f.transform == "bucketize":
            v = _numeric(f, raw)
            ids = np.searchsorted(np.asarray(f.boundaries), v, side="right") + 1
            return np.where(np.isfinite(v), ids, 0).astype(np.int64)
        if f.transform == "categorical":
            code = _integers(raw[f.inputs[0]])
            size = f.size or 0
            return np.where((code >= 0) & (code < size), code + 1, 0)
        return hash_ids([_integers(raw[i]) for i in f.inputs], f.buckets or 1,
                        self._salts[f.name])


def _rows(raw: Raw) -> int:
    lengths = {len(v) for v in raw.values()}
    if len(lengths) > 1:
        raise ValueError(f"raw input columns differ in length: {sorted(lengths)}")
    return lengths.pop() if lengths else 0


def _numeric(f: FeatureSpec, raw: Raw) -> FloatArray:
    v = np.asarray(raw[f.inputs[0]], np.float64)
    if f.log1p:
        v = np.log1p(np.maximum(v, 0.0))
    elif f.log:
        v = np.log(np.maximum(v, 1e-6))
    if f.clip is not None:
        v = np.clip(v, *f.clip)
    return v


def _integers(v: npt.NDArray[Any]) -> IntArray:
    """Integer codes; missing floats (NaN) become -1, the unknown code."""
    if v.dtype.kind == "f":
        return np.where(np.isfinite(v), v, -1).astype(np.int64)
    return v.astype(np.int64)
