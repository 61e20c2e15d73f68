"""Near-duplicate signatures computed once per item at ingest.

Text: a 64-slot MinHash of the item's title and body tokens (words, Han characters, and the
bigrams of both), each slot kept as its low 16 bits (b-bit MinHash, Li & König 2010). Two items'
share of equal slots estimates the Jaccard similarity of their token sets; the 64 slots are
stored as 16 int64 *band keys* of 4 slots, so locality-sensitive hashing is "equal band key"
and the rules stage can find near-duplicate pairs among 500 items with one sort.

Written by hand because the maintained MinHash library (datasketch) hashes one document at a
time in Python, which is minutes at a million listings; here tokenizing is one DuckDB query and
hashing is chunked numpy over all tokens.
"""

from __future__ import annotations

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

SLOTS = 64
BAND_SLOTS = 4
BANDS = SLOTS // BAND_SLOTS
BAND_COLUMNS = tuple(f"text_band_{b:02d}" for b in range(BANDS))
_EMPTY = np.uint64((1 << 58) - 1)
_STEP = np.uint64(0x9E37_79B9_7F4A_7C15)  # odd: a copy's distance changes its value
_RNG_FILL = np.random.default_rng()

# Latin words and numbers as tokens, every Han character as one (Chinese has no spaces); the
# query then adds each pair of neighbours, so word order counts a little without making a
# suffix or a swapped word cost more than a few tokens.
_TOKENS = r"""
WITH t AS (
  SELECT r,
         regexp_extract_all(lower(coalesce(title, '') || ' ' || coalesce(body, '')),
                            '\p{Han}|[\p{L}\p{N}¥²]+') AS w
  FROM docs)
SELECT r, hash(tok) AS h FROM (
  SELECT r, unnest(w) AS tok FROM t
  UNION ALL
  SELECT r, unnest(list_transform(range(1, len(w)), lambda i: w[i] || ' ' || w[i + 1])) AS tok
  FROM t)
ORDER BY r
"""


def text_bands(title: pa.Array | pa.ChunkedArray,
               body: pa.Array | pa.ChunkedArray | None = None) -> npt.NDArray[np.int64]:
    """(n, BANDS) int64 band keys of each row's MinHash; rows without tokens never match."""
    n = len(title)
    docs = pa.table({"r": np.arange(n), "title": title, "body": body if body is not None
                     else pa.nulls(n, pa.string())})
    con = duckdb.connect()
    con.register("docs", docs)
    cols = con.execute(_TOKENS).fetchnumpy()
    con.close()
    rows = np.asarray(cols["r"], np.int64)
    hashes = np.asarray(cols["h"], np.uint64)
    # One permutation hashing: the top 6 bits pick a slot, the slot keeps its least value
    slots = np.full(n * SLOTS, _EMPTY, np.uint64)
    np.minimum.at(slots, rows * SLOTS + (hashes >> np.uint64(58)).astype(np.int64),
                  hashes & _EMPTY)
    slots = _densify(slots.reshape(n, SLOTS))
    low = (slots & np.uint64(0xFFFF)).astype(np.uint16)
    return np.ascontiguousarray(low).view(np.int64).reshape(n, BANDS)


def _densify(slots: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """Fill each empty slot from the next non-empty one to its right, circularly, offset by
    the distance (densified one permutation hashing, Shrivastava & Li 2014): similar texts
    fill their gaps alike, so the equal-slot share still estimates Jaccard."""
    n = len(slots)
    # column-major so the running minimum sweeps whole rows of n at a time
    filled = np.tile(slots != _EMPTY, 2).T
    cols = np.arange(2 * SLOTS, dtype=np.int16)
    at = np.where(filled, cols[:, None], np.int16(2 * SLOTS))
    nxt = np.minimum.accumulate(at[::-1], axis=0)[::-1][:SLOTS].T.astype(np.int64)
    tokenless = nxt[:, 0] >= 2 * SLOTS
    nxt = np.where(tokenless[:, None], 0, nxt)
    dist = (nxt - np.arange(SLOTS)).astype(np.uint64)
    with np.errstate(over="ignore"):
        out = (slots[np.arange(n)[:, None], nxt % SLOTS] + dist * _STEP) & _EMPTY
    out[tokenless] = _RNG_FILL.integers(0, 2**58, (int(tokenless.sum()), SLOTS), np.uint64)
    return out


def jaccard(a: npt.NDArray[np.int64], b: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Estimated Jaccard similarity of paired rows of band keys: the share of equal slots."""
    sa = np.ascontiguousarray(a).view(np.uint16)
    sb = np.ascontiguousarray(b).view(np.uint16)
    return np.asarray((sa == sb).mean(axis=-1), np.float64)
