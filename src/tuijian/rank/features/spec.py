"""The feature config file: which features a model reads, from which raw inputs, transformed how.

A config is declared by hand (YAML) and *fitted* on training rows (normalization statistics,
quantile bucket boundaries); the fitted config is saved beside the model file, so a deployed
model is a model file plus exactly the feature config it was trained with.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tuijian.config import ConfigError, explain_errors

Side = Literal["user", "item", "publisher", "context", "cross"]
Transform = Literal["numeric", "normalize", "bucketize", "categorical", "hash_cross",
                    "embedding_id"]
# Transforms whose output is a categorical field (an id per row) rather than a dense value.
CATEGORICAL: frozenset[str] = frozenset({"bucketize", "categorical", "hash_cross",
                                         "embedding_id"})


class FeatureSpec(BaseModel):
    """One feature. Numeric transforms give a dense column; the others give an id field.

    - numeric: the value (optionally log'd or log1p'd, and clipped); missing → 0
    - normalize: (value - mean) / std with mean and std fitted on training rows
    - bucketize: the index of the bucket among `boundaries` (fixed) or `quantiles` (fitted);
      id 0 is missing
    - categorical: an integer code in [0, size), id 0 for anything else (unknown, -1)
    - hash_cross: the hash of several integer inputs, modulo `buckets`
    - embedding_id: a high-cardinality id (item, publisher) hashed into `buckets`
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    side: Side
    inputs: list[str] = Field(min_length=1)
    transform: Transform
    log1p: bool = False
    # natural log (floored at 1e-6): for rates that multiply into the click probability, so
    # a linear model over logs fits the product
    log: bool = False
    clip: tuple[float, float] | None = None
    boundaries: list[float] | None = None
    quantiles: int | None = Field(None, ge=2, le=1000)
    size: int | None = Field(None, gt=0, le=1_000_000)
    buckets: int | None = Field(None, gt=1, le=10_000_000)
    mean: float | None = None
    std: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _params_fit_transform(self) -> FeatureSpec:
        t = self.transform
        if t != "hash_cross" and len(self.inputs) != 1:
            raise ValueError(f"{t} takes exactly one input, got {len(self.inputs)}")
        if t == "hash_cross" and len(self.inputs) < 2:
            raise ValueError("hash_cross needs at least two inputs")
        # both is a fitted config: boundaries learnt from the declared quantiles
        if t == "bucketize" and self.boundaries is None and self.quantiles is None:
            raise ValueError("bucketize needs boundaries or quantiles")
        if self.boundaries is not None and any(
                b >= c for b, c in zip(self.boundaries, self.boundaries[1:], strict=False)):
            raise ValueError("boundaries must be strictly increasing")
        if t == "categorical" and self.size is None:
            raise ValueError("categorical needs size (codes run 0..size-1)")
        if t in ("hash_cross", "embedding_id") and self.buckets is None:
            raise ValueError(f"{t} needs buckets")
        if self.log and self.log1p:
            raise ValueError("log and log1p are exclusive")
        if self.clip is not None and self.clip[0] >= self.clip[1]:
            raise ValueError("clip must be (low, high) with low < high")
        return self

    @property
    def categorical(self) -> bool:
        return self.transform in CATEGORICAL

    @property
    def fitted(self) -> bool:
        if self.transform == "normalize":
            return self.mean is not None and self.std is not None
        if self.transform == "bucketize":
            return self.boundaries is not None
        return True

    @property
    def cardinality(self) -> int:
        """Ids this field can take (categorical features only), 0 included."""
        if self.transform == "bucketize":
            return len(self.boundaries or ()) + 2
        if self.transform == "categorical":
            return (self.size or 0) + 1
        return self.buckets or 0


class FeatureConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    version: int = Field(1, ge=1)
    features: list[FeatureSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> FeatureConfig:
        seen: set[str] = set()
        for f in self.features:
            if f.name in seen:
                raise ValueError(f"feature {f.name!r} is declared twice")
            seen.add(f.name)
        return self

    @property
    def fitted(self) -> bool:
        return all(f.fitted for f in self.features)

    @property
    def inputs(self) -> list[str]:
        """Every raw input the features read, in first-use order."""
        return list(dict.fromkeys(i for f in self.features for i in f.inputs))

    def check_inputs(self, known: Iterable[str]) -> None:
        """Reject inputs no input builder provides (called with the builder's names)."""
        known = set(known)
        for i, f in enumerate(self.features):
            for name in f.inputs:
                if name not in known:
                    raise ConfigError(
                        f"features[{i}] ({f.name}).inputs: unknown input {name!r} "
                        f"(known: {', '.join(sorted(known))})")

    def dumps(self) -> bytes:
        return orjson.dumps(self.model_dump(exclude_none=True), option=orjson.OPT_INDENT_2)


def parse_features(raw: object, where: str) -> FeatureConfig:
    try:
        return FeatureConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(explain_errors(exc, where)) from None


def load_features(path: Path) -> FeatureConfig:
    """A feature config from YAML (declared) or JSON (fitted, as saved beside a model)."""
    try:
        text = path.read_text()
        raw = orjson.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, yaml.YAMLError, orjson.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return parse_features(raw, str(path))
