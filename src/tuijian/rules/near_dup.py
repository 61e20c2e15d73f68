"""Near-duplicate pairs among a set of items, by locality-sensitive hashing then verification.

One implementation serves the rules stage (500 ranked items per request) and the offline
evaluation (a whole catalog): candidate pairs are rows sharing a band key, found with one
sort; only those are verified, so the cost follows the number of near pairs, not n².
Text: MinHash band keys (`data/signatures.py`), verified by estimated Jaccard. Images: 64-bit
perceptual hashes compared pairwise by popcount (few per list: the covers users see).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tuijian.domain import IntArray

Pairs = npt.NDArray[np.int64]  # (p, 2): row indexes, first < second
_MIX = np.uint64(0x9E37_79B9_7F4A_7C15)
_BLOCK = 1024
_MAX_BUCKET = 8
# every pair of places in a bucket of _MAX_BUCKET rows; a smaller bucket uses those below its size
_PAIR_A, _PAIR_B = np.triu_indices(_MAX_BUCKET, 1)


def shared_key_pairs(keys: npt.NDArray[np.uint64], owner: IntArray) -> Pairs:
    """Distinct owner pairs (a < b, a != b) that share at least one key.

    A key shared by more than `_MAX_BUCKET` rows is skipped, as LSH usually does with
    oversized buckets: it says "same template", not "same listing", and true near-duplicates
    share several other bands anyway.
    """
    if len(keys) < 2:
        return np.empty((0, 2), np.int64)
    order = np.argsort(keys)
    k = keys[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]])
    sizes = np.diff(np.r_[starts, len(k)])
    useful = (sizes > 1) & (sizes <= _MAX_BUCKET)
    if not useful.any():
        return np.empty((0, 2), np.int64)
    # every bucket at once, each padded to _MAX_BUCKET places and the places past its size
    # masked off: one set of array operations, where a loop per bucket size cost one set each
    first, size = starts[useful, None], sizes[useful, None]
    inside = size > _PAIR_B
    at = order[(first + _PAIR_A)[inside]], order[(first + _PAIR_B)[inside]]
    return _distinct(owner[at[0]], owner[at[1]])


def distinct_pairs(pairs: Pairs) -> Pairs:
    """Each unordered pair once, as (low, high), without self-pairs."""
    return _distinct(pairs[:, 0], pairs[:, 1])


def _distinct(a: IntArray, b: IntArray) -> Pairs:
    """`distinct_pairs` of the pairs (a[i], b[i]), sorted."""
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    code = np.sort((lo << 32 | hi)[lo != hi])  # 1-D: np.unique(axis=0) is 10x slower
    code = code[np.r_[True, code[1:] != code[:-1]]] if len(code) else code
    return np.stack([code >> 32, code & 0xFFFF_FFFF], axis=1)


def text_pairs(bands: npt.NDArray[np.int64], min_jaccard: float) -> Pairs:
    """Row pairs whose estimated Jaccard similarity is at least `min_jaccard`."""
    n, nb = bands.shape
    # a band's index is mixed into its key so equal values in different bands don't meet
    with np.errstate(over="ignore"):
        keys = (bands.view(np.uint64) ^ (np.arange(nb, dtype=np.uint64) * _MIX)).ravel()
    pairs = shared_key_pairs(keys, np.repeat(np.arange(n), nb))
    if len(pairs) == 0:
        return pairs
    same = bands[pairs[:, 0]].view(np.uint16) == bands[pairs[:, 1]].view(np.uint16)
    # equal slots per pair (jaccard() without the float mean), counted as the set bits of the
    # bools read 8 at a time: numpy bools are bytes 0 or 1, and this beats count_nonzero(axis=1)
    equal = np.bitwise_count(same.view(np.uint64)).sum(axis=1)
    return pairs[equal >= min_jaccard * same.shape[1] - 1e-9]


@dataclass(slots=True, frozen=True)
class ImageHashes:
    """Every image hash of a set of items, flat, with the row each belongs to."""

    hashes: npt.NDArray[np.uint64]
    owner: IntArray

    @staticmethod
    def covers(cover: npt.NDArray[np.int64], count: npt.NDArray[np.integer]) -> ImageHashes:
        """One hash per item that has an image: the cover, from its numeric column."""
        rows = np.flatnonzero(count > 0)
        return ImageHashes(cover[rows].view(np.uint64), rows)

    @staticmethod
    def from_lists(lists: npt.NDArray[np.object_] | list[list[int] | None],
                   per_item: int = 1) -> ImageHashes:
        """The first `per_item` hashes of each row's list (the cover first)."""
        heads = [list(v[:per_item]) if v is not None else [] for v in lists]
        counts = np.fromiter((len(v) for v in heads), np.int64, len(heads))
        flat = [h for v in heads for h in v]
        hashes = np.array(flat, np.int64).view(np.uint64) if flat else np.empty(0, np.uint64)
        return ImageHashes(hashes, np.repeat(np.arange(len(lists)), counts))


def image_pairs(images: ImageHashes, max_distance: int) -> Pairs:
    """Row pairs with at least one pair of images within `max_distance` bits.

    All pairs, by XOR and popcount in blocks: at the thresholds pHash needs (about 10 bits),
    band keys narrow enough to guarantee a shared band collide for a third of unrelated pairs,
    so LSH would verify more pairs than it saves.
    """
    h = images.hashes
    found = []
    for lo in range(0, len(h), _BLOCK):
        block = h[lo:lo + _BLOCK]
        near = np.bitwise_count(block[:, None] ^ h[None, lo:]) <= max_distance
        a, b = np.divmod(np.flatnonzero(near), near.shape[1])  # 2-D nonzero is 5x slower
        keep = b > a
        a, b = a[keep], b[keep]
        found.append(np.stack([images.owner[a + lo], images.owner[b + lo]], axis=1))
    pairs = np.concatenate(found) if found else np.empty((0, 2), np.int64)
    # one hash per row (covers) gives each pair once already
    return pairs if bool(np.all(np.diff(images.owner) > 0)) else distinct_pairs(pairs)


def image_distance(images: ImageHashes, pairs: Pairs) -> npt.NDArray[np.float64]:
    """Least Hamming distance between any image of a and any of b, per pair (64 if either has
    none): what a weighted text+image similarity needs for pairs found by text alone."""
    out = np.full(len(pairs), 64.0)
    if len(pairs) == 0 or len(images.hashes) == 0:
        return out
    by_row: dict[int, npt.NDArray[np.uint64]] = {}
    for r in np.unique(pairs):
        by_row[int(r)] = images.hashes[images.owner == r]
    for j, (a, b) in enumerate(pairs.tolist()):
        ha, hb = by_row[a], by_row[b]
        if len(ha) and len(hb):
            out[j] = float(np.bitwise_count(ha[:, None] ^ hb[None, :]).min())
    return out


def greedy_drop(n: int, pairs: Pairs) -> npt.NDArray[np.bool_]:
    """Which rows to drop so the best-ranked of each near-duplicate group stays: walking rows in
    order, a row goes when it is near one that stayed (a row near only dropped ones stays)."""
    drop = np.zeros(n, bool)
    if len(pairs) == 0:
        return drop
    order = np.lexsort((pairs[:, 0], pairs[:, 1]))
    for a, b in pairs[order].tolist():
        if not drop[a]:
            drop[b] = True
    return drop
