"""The event log's id memory answers exactly as a set of the ids would, across merges, and
agrees with the digests DuckDB computes when the log is reopened."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from tuijian.data import seen_ids
from tuijian.data.seen_ids import HALVES_SQL, SeenIds, digest


def test_seen_matches_a_set_across_merges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(seen_ids, "MERGE_AT", 50)  # many merges in a small test
    rng = np.random.default_rng(4)
    start = [f"e{i}" for i in range(300)]
    ids, truth = SeenIds.of(start), set(start)
    for _ in range(40):
        batch = [f"e{int(i)}" for i in rng.integers(0, 2000, 30)]
        keys = [digest(i) for i in batch]
        assert ids.seen(keys) == [i in truth for i in batch]
        ids.add({k for k, i in zip(keys, batch, strict=True) if i not in truth})
        truth.update(batch)
        assert len(ids) == len(truth)
    assert len(ids._hi) > len(start)  # merged, not all in the set
    assert ids.seen([digest("never")]) == [False]
    assert SeenIds().seen([digest("e1")]) == [False]


def test_duckdb_digests_the_log_as_python_does() -> None:
    ids = ["abc.1", "事件-7", "x" * 300, ""]
    halves = duckdb.connect().execute(
        f"SELECT {HALVES_SQL} FROM (SELECT unnest(?) AS event_id)", [ids]).fetchnumpy()
    loaded = SeenIds(halves["hi"], halves["lo"])
    assert loaded.seen([digest(i) for i in ids]) == [True] * 4
    assert loaded.seen([digest("abc.2")]) == [False]
