"""Feature centers in Redis (items, users), shared by every API replica (scale-out mode).

Layout under `PREFIX:FAMILY:` (FAMILY: items, users) — one key per row, so a batch read of the
ranked candidates is one pipelined round trip whatever the batch size:

    ids           hash   key -> dense index (allocated once, by a script, so replicas agree)
    keys          hash   dense index -> key
    n             string the number of indexes allocated
    r:IDX         string the row's numeric features packed as one little-endian record
    c:IDX         string its real-time counters (float64s), incremented in place by a script
    counts        stream the indexes whose counters changed, added by the same script (atomic
                  with the increment), so replicas re-read only those, off the request path;
                  an entry {"all": 1} after a whole counter column was rewritten
    o:IDX         hash   its object fields (title, tags, ...) as JSON

The counters live apart from the record so an upsert never races an increment: both are
scripts that write only their own bytes (SETRANGE), never read-modify-write from a client.
Scripts touch keys they compute, so this layout targets one Redis (with replicas or Sentinel),
not Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import redis

from tuijian.data.columnar import ColumnStore, NumericSpec, plain_record
from tuijian.data.items import COUNTERS, ColumnarItemStore, derived_columns
from tuijian.data.redis_backend import RedisTarget, unlink_matching
from tuijian.data.users import UserTable
from tuijian.domain import IntArray

CHUNK = 10_000  # indexes per round trip in whole-column reads and bulk writes
Derive = Callable[[pa.Table], dict[str, npt.NDArray[Any]]]

_ALLOC = """
local out = {}
for i, k in ipairs(ARGV) do
  local v = redis.call('HGET', KEYS[1], k)
  if not v then
    v = redis.call('INCR', KEYS[3]) - 1
    redis.call('HSET', KEYS[1], k, v)
    redis.call('HSET', KEYS[2], v, k)
  end
  out[i] = tonumber(v)
end
return out
"""
# ARGV: the default record, the number of spans, (offset, length) per span, one record per key
_WRITE = """
local nspans = tonumber(ARGV[2])
local base = 2 + 2 * nspans
for i, key in ipairs(KEYS) do
  local row = ARGV[base + i]
  redis.call('SET', key, ARGV[1], 'NX')
  for s = 0, nspans - 1 do
    local off = tonumber(ARGV[3 + 2 * s])
    redis.call('SETRANGE', key, off, string.sub(row, off + 1, off + tonumber(ARGV[4 + 2 * s])))
  end
end
return #KEYS
"""
# KEYS: the counts feed, then one counter record per amount (records may repeat)
# ARGV: zeroed counters, the counter's byte offset, the feed's length, the indexes packed, amounts
_ADD = """
local off = tonumber(ARGV[2])
for i = 2, #KEYS do
  local key = KEYS[i]
  redis.call('SET', key, ARGV[1], 'NX')
  local v = struct.unpack('<d', redis.call('GETRANGE', key, off, off + 7)) + tonumber(ARGV[3 + i])
  redis.call('SETRANGE', key, off, struct.pack('<d', v))
end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'idx', ARGV[4])
return #KEYS - 1
"""
# announcements of changed counters kept: a replica further behind re-reads every counter
COUNTS_FEED_MAXLEN = 100_000


class RedisColumnStore:
    """A `ColumnStore` schema's rows in Redis; see the module docstring for the layout.

    Counter columns (float64, incremented by events) are kept in their own record so an
    upsert never races an increment; `derive` computes the columns an upsert does not carry
    (the same function the embedded store uses)."""

    def __init__(self, url: str, schema: type[ColumnStore], family: str,
                 counters: Sequence[str] = (), derive: Derive | None = None,
                 client: redis.Redis | None = None) -> None:
        target = RedisTarget.parse(url)
        self.target = target
        self.r = client or target.connect()
        self.ns = f"{target.prefix}:{family}:"
        self.counts_feed = self.ns + "counts"
        self.key = schema.key
        self.required = schema.required
        self.numeric: NumericSpec = schema.numeric
        self.objects = schema.objects
        self.counters = tuple(counters)
        self.fields = [n for n in self.numeric if n not in self.counters]
        self.row = np.dtype([(n, np.dtype(self.numeric[n][0]).newbyteorder("<"))
                             for n in self.fields])
        self.counts = np.dtype([(n, "<f8") for n in self.counters])
        self.default_row = _defaults(self.row, self.numeric)
        self.zero_counts = bytes(self.counts.itemsize)
        self._derive = derive
        self._alloc = self.r.register_script(_ALLOC)
        self._write = self.r.register_script(_WRITE)
        self._add = self.r.register_script(_ADD)

    # -- reads --------------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.r.get(self.ns + "n") or 0)

    def position(self, key: Any) -> int:
        v = self.r.hget(self.ns + "ids", str(key))
        return -1 if v is None else int(v)

    def index_of(self, keys: Iterable[Any]) -> IntArray:
        keys = [str(k) for k in keys]
        if not keys:
            return np.empty(0, np.int64)
        got = self.r.hmget(self.ns + "ids", keys)
        return np.fromiter((-1 if v is None else int(v) for v in got), np.int64, len(keys))

    def keys(self) -> list[Any]:
        """Every key, in dense-index order."""
        pairs: dict[bytes, bytes] = self.r.hgetall(self.ns + "keys")  # type: ignore[assignment]
        out: list[Any] = [None] * len(pairs)
        numeric = self.key in self.numeric
        for i, k in pairs.items():
            out[int(i)] = int(k) if numeric else k.decode()
        return out

    def gather(self, idx: IntArray, columns: Sequence[str]) -> dict[str, npt.NDArray[Any]]:
        """The columns of `idx`, in one pipelined round trip (one MGET per key family)."""
        idx = np.asarray(idx, np.int64)
        fields = [c for c in columns if c in self.row.names]  # type: ignore[operator]
        counters = [c for c in columns if c in self.counters]
        objects = [c for c in columns if c in self.objects]
        unknown = set(columns) - set(fields) - set(counters) - set(objects)
        if unknown:
            raise KeyError(f"unknown column(s): {', '.join(sorted(unknown))}")
        ids = idx.tolist()
        pipe = self.r.pipeline(transaction=False)
        if fields:
            pipe.mget([f"{self.ns}r:{i}" for i in ids])
        if counters:
            pipe.mget([f"{self.ns}c:{i}" for i in ids])
        for i in ids if objects else ():
            pipe.hmget(f"{self.ns}o:{i}", objects)
        replies = iter(pipe.execute()) if ids else iter(())
        out: dict[str, npt.NDArray[Any]] = {}
        if fields:
            rows = _records(next(replies, []), self.row, self.default_row, len(ids))
            for c in fields:
                out[c] = rows[c].astype(self.numeric[c][0])
        if counters:
            counts = _records(next(replies, []), self.counts, self.zero_counts, len(ids))
            for c in counters:
                out[c] = counts[c].astype(np.float64)
        if objects:
            cols: dict[str, list[Any]] = {c: [] for c in objects}
            for reply in replies:
                for c, v in zip(objects, reply, strict=True):
                    cols[c].append(None if v is None else orjson.loads(v))
            for c in objects:
                out[c] = _object_array(cols[c], len(ids))
        return out

    def column(self, name: str) -> npt.NDArray[Any]:
        """A whole column (index building, batch jobs), read CHUNK rows per round trip."""
        n = len(self)
        parts = [self.gather(np.arange(s, min(s + CHUNK, n)), (name,))[name]
                 for s in range(0, n, CHUNK)]
        if parts:
            return np.concatenate(parts)
        return np.empty(0, object if name in self.objects else self.numeric[name][0])

    def record(self, idx: int) -> dict[str, Any]:
        got = self.gather(np.array([idx]), [*self.fields, *self.counters, *self.objects])
        return plain_record(self.numeric, {n: got[n][0] for n in self.numeric},
                            {n: got[n][0] for n in self.objects})

    def rows(self, idx: IntArray) -> pa.Table:
        """Whole rows (every column, derived ones included) in `idx` order, CHUNK per round
        trip: what a replica's local copy applies to follow the shared store."""
        idx = np.asarray(idx, np.int64)
        names = [*self.fields, *self.counters, *self.objects]
        parts = [self.gather(idx[s:s + CHUNK], names) for s in range(0, len(idx), CHUNK)]
        data: dict[str, Any] = {}
        for name in names:
            values = [p[name] for p in parts]
            if name in self.objects:
                data[name] = pa.array([v for part in values for v in part.tolist()])
            else:
                data[name] = (np.concatenate(values) if values
                              else np.empty(0, self.numeric[name][0]))
        # keys come from the allocation (written with the index, atomically); a row read
        # between its allocation and its write has default values: it is copied inactive,
        # under its own key, and the writer's announcement brings the values
        raw: list[Any] = self.r.hmget(self.ns + "keys", idx.tolist()) if len(idx) else []
        if self.key in self.numeric:
            keys = np.array([int(k) for k in raw], np.int64)
            unwritten = data[self.key] != keys
            if "active" in data:
                data["active"][unwritten] = 0
            data[self.key] = keys
        else:
            data[self.key] = pa.array([k.decode() for k in raw], pa.string())
        return pa.table(data)

    # -- writes -------------------------------------------------------------------------------

    def upsert(self, table: pa.Table) -> IntArray:
        """Insert or replace rows (the columns given; the others keep their values)."""
        missing = [c for c in self.required if c not in table.column_names]
        if missing:
            raise ValueError(f"missing required column(s): {', '.join(missing)}")
        if table.num_rows == 0:
            return np.empty(0, np.int64)
        keys = [str(k) for k in table.column(self.key).to_pylist()]
        idx = np.concatenate([
            np.asarray(self._alloc(keys=[self.ns + "ids", self.ns + "keys", self.ns + "n"],
                                   args=keys[s:s + CHUNK]), np.int64)
            for s in range(0, len(keys), CHUNK)])
        values = {n: _numeric(table.column(n), self.numeric[n])
                  for n in self.numeric if n in table.column_names}
        if self._derive is not None:
            values.update(self._derive(table))
        self._write_records(idx, self.row, "r",
                            {n: v for n, v in values.items() if n in self.fields},
                            self.default_row)
        self._write_records(idx, self.counts, "c",
                            {n: v for n, v in values.items() if n in self.counters},
                            self.zero_counts)
        objects = [n for n in self.objects if n in table.column_names]
        if objects:
            cols = {n: table.column(n).to_pylist() for n in objects}
            for s in range(0, len(idx), CHUNK):
                pipe = self.r.pipeline(transaction=False)
                for j, i in enumerate(idx[s:s + CHUNK].tolist(), start=s):
                    pipe.hset(f"{self.ns}o:{i}", mapping={
                        n: orjson.dumps(cols[n][j], option=orjson.OPT_SERIALIZE_NUMPY)
                        for n in objects})
                pipe.execute()
        return idx

    def add_counts(self, idx: IntArray, counter: str,
                   amount: float | npt.NDArray[np.float64] = 1.0,
                   client: redis.Redis | redis.client.Pipeline | None = None) -> None:
        """Increments in Redis (`client`: a pipeline to add them to; default: now)."""
        idx = np.asarray(idx, np.int64)
        if counter not in self.counters:
            raise KeyError(f"unknown counter {counter!r}")
        amounts = np.broadcast_to(np.asarray(amount, np.float64), idx.shape)
        offset = self.counts.fields[counter][1]  # type: ignore[index]
        for s in range(0, len(idx), CHUNK):
            part = idx[s:s + CHUNK]
            self._add(keys=[self.counts_feed, *(f"{self.ns}c:{i}" for i in part.tolist())],
                      args=[self.zero_counts, offset, COUNTS_FEED_MAXLEN,
                            part.astype("<i8").tobytes(),
                            *map(repr, amounts[s:s + CHUNK].tolist())],
                      client=client)

    def set_counts(self, counter: str, values: npt.NDArray[np.float64]) -> None:
        n = len(self)
        self._write_records(np.arange(n), self.counts, "c", {counter: values[:n]},
                            self.zero_counts)
        self.r.xadd(self.counts_feed, {"all": 1}, maxlen=COUNTS_FEED_MAXLEN, approximate=True)

    def drop(self) -> int:
        """Delete every key of this store (tests, re-imports); returns how many."""
        return unlink_matching(self.r, self.ns + "*", CHUNK)

    def _write_records(self, idx: IntArray, dtype: np.dtype[Any], family: str,
                       values: dict[str, npt.NDArray[Any]], default: bytes) -> None:
        """Write the given fields of each record; a record not yet stored starts from
        `default`. Contiguous fields go as one span, a full record as a plain MSET."""
        if not values:
            return
        rows = np.frombuffer(default * len(idx), dtype).copy()
        for name, v in values.items():
            rows[name] = v
        spans = _spans(dtype, set(values))
        raw = rows.tobytes()
        size = dtype.itemsize
        for s in range(0, len(idx), CHUNK):
            part = idx[s:s + CHUNK].tolist()
            keys = [f"{self.ns}{family}:{i}" for i in part]
            chunk = [raw[(s + j) * size:(s + j + 1) * size] for j in range(len(part))]
            if spans == [(0, size)]:
                self.r.mset(dict(zip(keys, chunk, strict=True)))
            else:
                self._write(keys=keys, args=[default, len(spans),
                                             *(x for span in spans for x in span), *chunk])


class RedisItemStore(RedisColumnStore):
    """The item feature center (`ItemFeatureCenter`) in Redis."""

    def __init__(self, url: str, client: redis.Redis | None = None) -> None:
        super().__init__(url, ColumnarItemStore, "items", COUNTERS, derived_columns, client)


class RedisUserTable(RedisColumnStore):
    """Users' static attributes in Redis (the user feature center's columns)."""

    def __init__(self, url: str, client: redis.Redis | None = None) -> None:
        super().__init__(url, UserTable, "users", client=client)


def _defaults(dtype: np.dtype[Any], numeric: NumericSpec) -> bytes:
    row = np.zeros(1, dtype)
    for name in dtype.names or ():
        row[name] = numeric[name][1]
    return row.tobytes()


def _numeric(col: pa.ChunkedArray, spec: tuple[Any, Any]) -> npt.NDArray[Any]:
    dtype, missing = spec
    if col.null_count == len(col):
        return np.full(len(col), missing, dtype)
    if col.null_count:
        col = pc.fill_null(col, pa.scalar(missing).cast(col.type, safe=False))
    return col.to_numpy(zero_copy_only=False).astype(dtype)


def _records(replies: list[bytes | None], dtype: np.dtype[Any], default: bytes, n: int
             ) -> npt.NDArray[Any]:
    """Decode one MGET's packed records; a key never written reads as the defaults."""
    if not n:
        return np.empty(0, dtype)
    buf = b"".join(default if r is None else r for r in replies)
    return np.frombuffer(buf, dtype, n)


def _object_array(values: list[Any], n: int) -> npt.NDArray[Any]:
    out = np.empty(n, object)
    for i, v in enumerate(values):
        out[i] = v
    return out


def _spans(dtype: np.dtype[Any], names: set[str]) -> list[tuple[int, int]]:
    """Byte (offset, length) spans covering the named fields, adjacent ones merged."""
    spans: list[tuple[int, int]] = []
    for name in dtype.names or ():
        if name not in names:
            continue
        sub, off = dtype.fields[name][:2]  # type: ignore[index]
        if spans and spans[-1][0] + spans[-1][1] == off:
            spans[-1] = (spans[-1][0], spans[-1][1] + sub.itemsize)
        else:
            spans.append((off, sub.itemsize))
    return spans
