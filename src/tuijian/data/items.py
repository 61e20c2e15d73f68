"""The item feature center: every item's features as columns over dense integer indexes.

A batch read of the ranked candidates is one numpy fancy-index per column, which is what makes
feature access for 150 items a matter of microseconds (DESIGN.md, performance rules).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from tuijian.data.columnar import ColumnStore, NumericSpec
from tuijian.data.signatures import BAND_COLUMNS, text_bands
from tuijian.domain import IntArray

COUNTERS: tuple[str, ...] = ("exposures", "clicks", "converts", "expected_clicks")


class ItemFeatureCenter(Protocol):
    """Batch access to item features by dense index; the boundary other backends implement."""

    def __len__(self) -> int: ...
    def position(self, key: Any) -> int: ...
    def index_of(self, keys: Iterable[Any]) -> IntArray: ...
    def column(self, name: str) -> npt.NDArray[Any]: ...
    def gather(self, idx: IntArray, columns: Sequence[str]) -> dict[str, npt.NDArray[Any]]: ...
    def upsert(self, table: pa.Table) -> IntArray: ...
    def record(self, idx: int) -> dict[str, Any]: ...
    def add_counts(self, idx: IntArray, counter: str,
                   amount: float | npt.NDArray[np.float64] = 1.0) -> None: ...
    def set_counts(self, counter: str, values: npt.NDArray[np.float64]) -> None: ...


class ColumnarItemStore(ColumnStore):
    """The embedded item feature center. Counters are dynamic features folded in from events."""

    key = "item_id"
    required = ("item_id", "line", "category", "city", "district", "title")
    # images: creative ids (the cover first); image_hashes: their pHashes, in the same order
    objects = ("title", "body", "tags", "images", "image_hashes")
    numeric: NumericSpec = {
        "item_id": (np.int64, -1),
        "line": (np.int8, -1),
        "category": (np.int16, -1),
        "city": (np.int16, -1),
        "district": (np.int16, -1),
        "lat": (np.float32, np.nan),
        "lon": (np.float32, np.nan),
        "price": (np.float32, np.nan),
        "price_band": (np.int8, -1),
        "rooms": (np.int8, -1),
        "area": (np.float32, np.nan),
        "floor": (np.int16, -1),
        "brand": (np.int16, -1),
        "series": (np.int16, -1),
        "year": (np.int16, -1),
        "mileage_km": (np.float32, np.nan),
        "salary_band": (np.int8, -1),
        "job_type": (np.int8, -1),
        "publisher_id": (np.int32, -1),
        "quality": (np.float32, 0.5),
        "created_ts": (np.int64, 0),
        "refreshed_ts": (np.int64, 0),
        "active": (np.int8, 1),  # 0 once a listing is taken down; recall filters it out
        # derived: equal for exact re-posts (same publisher and title)
        "content_key": (np.int64, 0),
        # derived: the title and body's MinHash as band keys, for near-duplicate text
        **dict.fromkeys(BAND_COLUMNS, (np.int64, 0)),
        # derived: the first image's pHash and the image count, so a request's image dedup
        # reads two numeric columns instead of a list per item
        "cover_hash": (np.int64, 0),
        "n_images": (np.int16, 0),
        "exposures": (np.float64, 0.0),
        "clicks": (np.float64, 0.0),
        "converts": (np.float64, 0.0),
        # sum over exposures of the position's CTR: the denominator of COEC
        "expected_clicks": (np.float64, 0.0),
    }

    def add_counts(self, idx: IntArray, counter: str,
                   amount: float | npt.NDArray[np.float64] = 1.0) -> None:
        np.add.at(self._cols[counter], idx, amount)

    def set_counts(self, counter: str, values: npt.NDArray[np.float64]) -> None:
        self._cols[counter][: self._n] = values[: self._n]

    def _derive(self, table: pa.Table, idx: IntArray) -> None:
        for name, values in derived_columns(table).items():
            self._cols[name][idx] = values


def derived_columns(table: pa.Table) -> dict[str, npt.NDArray[Any]]:
    """The columns computed at ingest from an upsert's rows (those it does not carry itself):
    exact re-post keys, the cover photo's hash and image count, the text's MinHash bands.
    Every feature-center backend stores these, so they are computed here once."""
    out: dict[str, npt.NDArray[Any]] = {}
    if "content_key" not in table.column_names:
        out["content_key"] = _content_keys(table)
    if "image_hashes" in table.column_names and "cover_hash" not in table.column_names:
        lists = table.column("image_hashes").combine_chunks()
        counts = pc.fill_null(pc.list_value_length(lists), 0).to_numpy()
        starts = lists.offsets.to_numpy()[:-1]
        flat = (lists.values.to_numpy(zero_copy_only=False).astype(np.int64)
                if counts.any() else np.zeros(1, np.int64))
        out["n_images"] = counts
        out["cover_hash"] = np.where(counts > 0, flat[np.minimum(starts, len(flat) - 1)], 0)
    if BAND_COLUMNS[0] not in table.column_names:
        body = table.column("body") if "body" in table.column_names else None
        bands = text_bands(table.column("title"), body)
        for b, c in enumerate(BAND_COLUMNS):
            out[c] = bands[:, b]
    return out


def _content_keys(table: pa.Table) -> npt.NDArray[np.int64]:
    """A hash of (publisher, title) per row, vectorized in DuckDB: equal for exact re-posts."""
    names = table.column_names
    pub = table.column("publisher_id") if "publisher_id" in names else None
    t = pa.table({
        "p": pub if pub is not None else pa.array(np.full(table.num_rows, -1, np.int32)),
        "t": table.column("title"),
    })
    con = duckdb.connect()
    con.register("t", t)
    sql = "SELECT (hash(p, lower(trim(t))) >> 1)::BIGINT AS k FROM t"
    keys = con.execute(sql).fetchnumpy()["k"]
    con.close()
    return np.asarray(keys, dtype=np.int64)
