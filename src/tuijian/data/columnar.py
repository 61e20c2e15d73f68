"""A growable columnar table keyed by an external id, with an fsynced upsert journal.

Both feature centers (items, users) are this: numpy columns over dense integer indexes, a dict
from external id to index, Parquet snapshots, and a journal so an acknowledged upsert survives a
crash between snapshots. Written by hand because no maintained library offers in-place,
index-stable numpy columns with O(1) id lookup; Arrow tables are immutable.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tuijian.data.durable import fsync_dir, fsync_file
from tuijian.domain import IntArray

NumericSpec = dict[str, tuple[type[np.generic], float]]


class ColumnStore:
    """Numeric columns (`numeric`: name -> (dtype, missing value)) and object columns."""

    key: str = "id"
    numeric: NumericSpec = {}
    objects: tuple[str, ...] = ()
    required: tuple[str, ...] = ()

    def __init__(self, table: pa.Table, journal: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._n = 0
        self._cap = 0
        self._cols: dict[str, npt.NDArray[Any]] = {}
        self._pos: dict[Any, int] = {}
        self._journal = journal
        self._grow(max(table.num_rows, 1024))
        self._apply(table)
        if journal is not None and journal.exists():
            for line in journal.read_bytes().splitlines():
                if line.strip():
                    self._apply(pa.Table.from_pylist(orjson.loads(line)))

    @classmethod
    def open(cls, snapshot: Path, journal: Path) -> Self:
        """Load `snapshot` (Parquet) and replay `journal` (upserts since) on top."""
        return cls(pq.read_table(snapshot), journal=journal)

    def __len__(self) -> int:
        return self._n

    def keys(self) -> list[Any]:
        """Every external id, in dense-index order."""
        return list(self._pos)

    def position(self, key: Any) -> int:
        """The dense index of one external id, or -1."""
        return self._pos.get(key, -1)

    def index_of(self, keys: Iterable[Any]) -> IntArray:
        get = self._pos.get
        return np.fromiter((get(k, -1) for k in keys), dtype=np.int64)

    def column(self, name: str) -> npt.NDArray[Any]:
        return self._cols[name][: self._n]

    def gather(self, idx: IntArray, columns: Sequence[str]) -> dict[str, npt.NDArray[Any]]:
        return {c: self._cols[c][idx] for c in columns}

    def record(self, idx: int) -> dict[str, Any]:
        """One row as plain Python values, "not applicable" as None (for API responses)."""
        return plain_record(self.numeric, {n: self._cols[n][idx] for n in self.numeric},
                            {n: self._cols[n][idx] for n in self.objects})

    def upsert(self, table: pa.Table) -> IntArray:
        """Insert or replace rows; returns their dense indexes. Visible to the next read."""
        missing = [c for c in self.required if c not in table.column_names]
        if missing:
            raise ValueError(f"missing required column(s): {', '.join(missing)}")
        with self._lock:
            if self._journal is not None:
                created = not self._journal.exists()
                with self._journal.open("ab") as fh:
                    fh.write(orjson.dumps(table.to_pylist()) + b"\n")
                    fh.flush()
                    os.fsync(fh.fileno())
                if created:
                    fsync_dir(self._journal.parent)
            return self._apply(table)

    def to_table(self) -> pa.Table:
        data: dict[str, Any] = {}
        if self.key not in self.numeric:  # a string key (user ids) is no numeric column
            data[self.key] = pa.array(self.keys(), pa.string())
        data.update({c: self.column(c) for c in self.numeric})
        for name in self.objects:
            data[name] = pa.array(self.column(name).tolist())
        return pa.table(data)

    def save(self, snapshot: Path) -> None:
        """Write a full snapshot atomically, then drop the journal it now contains."""
        tmp = snapshot.with_suffix(".tmp")
        with self._lock:
            pq.write_table(self.to_table(), tmp)
            fsync_file(tmp)
            tmp.replace(snapshot)
            fsync_dir(snapshot.parent)  # the snapshot is durable before its journal goes
            if self._journal is not None and self._journal.exists():
                self._journal.unlink()

    def _derive(self, table: pa.Table, idx: IntArray) -> None:
        """Hook: compute derived columns for freshly applied rows."""

    def _grow(self, need: int) -> None:
        cap = max(need, int(self._cap * 1.5) + 16)
        for name, (dtype, missing) in self.numeric.items():
            self._cols[name] = _resized(self._cols.get(name), cap, dtype, missing)
        for name in self.objects:
            self._cols[name] = _resized(self._cols.get(name), cap, np.object_, None)
        self._cap = cap

    def _apply(self, table: pa.Table) -> IntArray:
        if table.num_rows == 0:
            return np.empty(0, np.int64)
        keys = table.column(self.key).to_pylist()
        idx = np.empty(len(keys), np.int64)
        n = self._n
        pos = self._pos
        for j, k in enumerate(keys):
            p = pos.get(k)
            if p is None:
                p = pos[k] = n
                n += 1
            idx[j] = p
        if n > self._cap:
            self._grow(n)
        self._n = n
        names = set(table.column_names)
        for name, (dtype, missing) in self.numeric.items():
            if name in names:
                col = table.column(name)
                if col.null_count == len(col):
                    self._cols[name][idx] = missing
                    continue
                if col.null_count:
                    col = pc.fill_null(col, pa.scalar(missing).cast(col.type, safe=False))
                self._cols[name][idx] = col.to_numpy(zero_copy_only=False).astype(dtype)
        for name in self.objects:
            if name in names:
                self._cols[name][idx] = table.column(name).to_numpy(zero_copy_only=False)
        self._derive(table, idx)
        return idx


def plain_record(numeric: NumericSpec, values: dict[str, Any], objects: dict[str, Any]
                 ) -> dict[str, Any]:
    """One row's values as plain Python, a column's missing value as None: the shape API
    responses and every backend's `record` share."""
    out: dict[str, Any] = {}
    for name, (_, missing) in numeric.items():
        v = values[name].item() if isinstance(values[name], np.generic) else values[name]
        na = (isinstance(v, float) and v != v) or (missing == -1 and v == -1)
        out[name] = None if na else v
    for name, v in objects.items():
        out[name] = v.tolist() if isinstance(v, np.ndarray) else v
    return out


def _resized(
    old: npt.NDArray[Any] | None, cap: int, dtype: type[np.generic], fill: Any
) -> npt.NDArray[Any]:
    new = np.full(cap, fill, dtype=dtype)
    if old is not None:
        new[: old.shape[0]] = old
    return new
