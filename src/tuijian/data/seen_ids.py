"""The ids of every stored event, for de-duplication at append, in ~16 bytes each.

The event log must refuse an id it already holds however old (a stream redelivers after a
crash; a client retries), so it keeps them all. As a Python set of the id strings that cost
~100 bytes an event and grew the ingesting process by megabytes a minute under steady traffic.
Here an id is its MD5 digest as two uint64 halves — the same numbers DuckDB's
`md5_number_upper` / `md5_number_lower` give, so a restart loads them vectorized from the log
— in arrays sorted by the first half, plus a set of the newest digests merged in at insertion
points (linear, no re-sort) once it holds MERGE_AT or 1/64 of the arrays. A batch is checked
with one vectorized binary search. MD5 is not there for security: any two of 10^12 ids
collide with probability ~10^-15, and a client able to forge colliding ids could send the
events themselves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

MERGE_AT = 1 << 16
# the log's ids as the two halves `digest` gives (DuckDB hashes the UTF-8 bytes, as Python)
HALVES_SQL = "md5_number_upper(event_id) AS hi, md5_number_lower(event_id) AS lo"

U64 = npt.NDArray[np.uint64]


def digest(event_id: str) -> bytes:
    return hashlib.md5(event_id.encode(), usedforsecurity=False).digest()


class SeenIds:
    def __init__(self, hi: U64 | None = None, lo: U64 | None = None) -> None:
        """The stored ids' digest halves, in any order (none: an empty log)."""
        hi = np.empty(0, np.uint64) if hi is None else np.asarray(hi, np.uint64)
        lo = np.empty(0, np.uint64) if lo is None else np.asarray(lo, np.uint64)
        order = np.argsort(hi, kind="stable")
        self._hi, self._lo = hi[order], lo[order]
        self._recent: set[bytes] = set()

    @classmethod
    def of(cls, ids: Iterable[str]) -> SeenIds:
        hi, lo = _halves([digest(i) for i in ids])
        return cls(hi, lo)

    def __len__(self) -> int:
        return len(self._hi) + len(self._recent)

    def seen(self, keys: Sequence[bytes]) -> list[bool]:
        """Per digest, whether it was added before."""
        out = [k in self._recent for k in keys]
        n = len(self._hi)
        if not n or not keys:
            return out
        hi, lo = _halves(keys)
        left = np.searchsorted(self._hi, hi, "left")
        right = np.searchsorted(self._hi, hi, "right")
        found = (right - left == 1) & (self._lo[np.minimum(left, n - 1)] == lo)
        for j in np.flatnonzero(right - left > 1).tolist():  # equal first halves: ~never
            found[j] = bool((self._lo[left[j]:right[j]] == lo[j]).any())
        return [a or b for a, b in zip(out, found.tolist(), strict=True)]

    def add(self, keys: Iterable[bytes]) -> None:
        """Digests not seen before (the caller checked with `seen`)."""
        self._recent.update(keys)
        if len(self._recent) >= max(MERGE_AT, len(self._hi) // 64):
            hi, lo = _halves(list(self._recent))
            order = np.argsort(hi)
            hi, lo = hi[order], lo[order]
            at = np.searchsorted(self._hi, hi)
            self._hi, self._lo = np.insert(self._hi, at, hi), np.insert(self._lo, at, lo)
            self._recent = set()


def _halves(keys: Sequence[bytes]) -> tuple[U64, U64]:
    pairs = np.frombuffer(b"".join(keys), "<u8").reshape(-1, 2)
    return pairs[:, 0].copy(), pairs[:, 1].copy()
