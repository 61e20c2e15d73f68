"""Bucket hashing for the experiment platform, frozen per version.

Changing how units map to buckets silently moves every user of every running experiment to a
different variant, so the function is versioned and pinned by test vectors (tests and
docs/EXPERIMENTS.md). Version 1:

    bucket = int.from_bytes(blake2b(f"{salt}:{unit}".encode("utf-8"), digest_size=8), "big")
             % n_buckets

BLAKE2b (stdlib `hashlib`) rather than Python's `hash()`, which is salted per process, or
CRC32, whose low bits correlate for similar ids. The modulo bias of a 64-bit value over at
most 10,000 buckets is below 1e-15. Each layer hashes with its own salt, so a unit's bucket in
one layer says nothing about its bucket in another: that is what makes layers orthogonal.
"""

from __future__ import annotations

import hashlib

HASH_VERSION = 1
DOMAIN_SALT = "domain"
DOMAIN_BUCKETS = 1000
VARIANT_BUCKETS = 10_000


def bucket(unit: str, salt: str, n_buckets: int, version: int = HASH_VERSION) -> int:
    """The unit's bucket in [0, n_buckets) under `salt`."""
    if version != 1:
        raise ValueError(f"hash version {version} is unknown (known: 1)")
    digest = hashlib.blake2b(f"{salt}:{unit}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % n_buckets
