"""The ranking-model boundary: every model kind trains on and predicts from a FeatureMatrix.

One interface for LR, GBDT, FM, the GBDT hybrids, FTRL and the PyTorch networks, so the
trainer, the model registry and the rank stage never branch on a model's kind. A model saves
itself as files in a directory, in safe formats only (safetensors, LightGBM text, JSON): a
registry must never unpickle a file, since a pickle runs code when loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, Self

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from safetensors.numpy import load_file, save_file

from tuijian.domain import FloatArray
from tuijian.rank.features.featureset import FeatureLayout, FeatureMatrix

Task = Literal["binary", "regression"]
# (what is happening, fraction done in [0, 1]); the CLI draws it as a progress bar
Progress = Callable[[str, float], None]


class ModelFileError(ValueError):
    """A model file that cannot serve: corrupt, of another kind, or built for another
    feature layout. The registry rejects the version and the old one keeps serving."""


@dataclass(slots=True)
class TrainSet:
    """Rows and labels. `click` is set for objectives trained over exposures with an auxiliary
    click label (ESMM-style conversion); `weight` for sample weights."""

    x: FeatureMatrix
    y: FloatArray
    click: FloatArray | None = None
    weight: FloatArray | None = None

    def __len__(self) -> int:
        return len(self.x)

    def take(self, rows: npt.NDArray[Any]) -> TrainSet:
        def part(a: FloatArray | None) -> FloatArray | None:
            return None if a is None else a[rows]

        return TrainSet(self.x.take(rows), self.y[rows], part(self.click), part(self.weight))


class RankModel(Protocol):
    kind: ClassVar[str]

    def __init__(self, layout: FeatureLayout, task: Task, params: dict[str, Any]) -> None: ...

    def fit(self, train: TrainSet, valid: TrainSet | None = None,
            progress: Progress | None = None) -> None:
        """Train from scratch; `valid` (if given) drives early stopping where the kind has it."""
        ...

    def predict(self, x: FeatureMatrix) -> FloatArray:
        """P(label = 1) for a binary task, the predicted value for a regression task."""
        ...

    def save(self, path: Path) -> None:
        """Write the model's files into the directory `path` (which exists)."""
        ...

    @classmethod
    def load(cls, path: Path, layout: FeatureLayout, task: Task,
             params: dict[str, Any]) -> Self:
        """Read what `save` wrote; raise ModelFileError if it is unusable with `layout`."""
        ...


def one_hot(x: FeatureMatrix, layout: FeatureLayout) -> sp.csr_matrix:
    """Dense values, then one column per categorical id: the design matrix of linear models."""
    n = len(x)
    f = layout.n_fields
    ids = sp.csr_matrix(
        (np.ones(n * f, np.float32), x.cat.ravel(), np.arange(0, n * f + 1, f)),
        shape=(n, layout.n_ids))
    return sp.hstack([sp.csr_matrix(x.dense), ids], format="csr")


def sigmoid(z: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -35.0, 35.0))), np.float64)


def save_arrays(path: Path, arrays: dict[str, npt.NDArray[Any]]) -> None:
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(path))


def load_arrays(path: Path, expect: dict[str, tuple[int, ...]]) -> dict[str, npt.NDArray[Any]]:
    """Read a safetensors file and check every expected tensor's shape against the layout."""
    try:
        arrays = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise ModelFileError(f"{path.name}: unreadable ({exc})") from None
    for name, shape in expect.items():
        if name not in arrays:
            raise ModelFileError(f"{path.name}: no tensor {name!r}")
        if tuple(arrays[name].shape) != shape:
            raise ModelFileError(
                f"{path.name}: {name} has shape {tuple(arrays[name].shape)}, the feature "
                f"config needs {shape}")
    return arrays


def check_task(kind: str, task: Task, supported: tuple[Task, ...]) -> None:
    if task not in supported:
        raise ValueError(f"model {kind!r} does not support task {task!r} "
                         f"(supported: {', '.join(supported)})")


def require(path: Path) -> Path:
    if not path.is_file():
        raise ModelFileError(f"{path.name}: missing")
    return path
