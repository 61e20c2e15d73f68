"""The bucket hash is a contract: its test vectors are in docs/EXPERIMENTS.md too."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from scipy import stats

from tuijian.experiments.hashing import bucket

VECTORS = [  # (unit, salt, buckets, bucket) under hash version 1
    ("u1", "recall", 1000, 992),
    ("u1", "rank", 1000, 509),
    ("device-7f3a", "recall", 10_000, 6946),
    ("用户42", "launch", 1000, 383),
    ("u1", "domain", 1000, 541),
    ("u123456", "recall.7", 10_000, 6682),
]


@pytest.mark.parametrize(("unit", "salt", "n", "expected"), VECTORS)
def test_version_1_test_vectors(unit: str, salt: str, n: int, expected: int) -> None:
    assert bucket(unit, salt, n) == expected
    # the documented definition, spelled out independently of the implementation
    digest = hashlib.blake2b(f"{salt}:{unit}".encode(), digest_size=8).digest()
    assert int.from_bytes(digest, "big") % n == expected


def test_unknown_version_is_refused() -> None:
    with pytest.raises(ValueError, match="hash version 2"):
        bucket("u1", "recall", 1000, version=2)


def test_buckets_are_uniform() -> None:
    counts = np.bincount([bucket(f"u{i}", "recall", 100) for i in range(50_000)], minlength=100)
    assert stats.chisquare(counts).pvalue > 0.001
