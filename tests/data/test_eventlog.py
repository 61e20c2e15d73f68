from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pytest

from tuijian.data import eventlog
from tuijian.data.eventlog import COLUMNS, EventLog
from tuijian.domain import Event

DAY = 86400.0
T0 = 1_700_000_000.0  # 2023-11-14 UTC


def ev(eid: str, ts: float = T0, type_: str = "click", **kw: Any) -> Event:
    return Event(eid, type_, "u1", 42, ts, **kw)


def lines(root: Path) -> list[bytes]:
    return [ln for p in sorted(root.glob("events-*.jsonl")) for ln in p.read_bytes().splitlines()]


def test_schema_covers_every_event_field() -> None:
    assert list(COLUMNS) == [f.name for f in dataclasses.fields(Event)]


def test_append_then_scan_round_trips_values_and_types(tmp_path: Path) -> None:
    full = Event(
        "e1",
        "dwell",
        "u9",
        2**40,
        T0 + 0.25,
        tracking="tk",
        subtype="video",
        dwell_s=12.5,
        exposure_id="x1",
        scene="feed",
        recall_id="r",
        rank_id="k",
        rule_id="ru",
        display_id="d",
        position=3,
        source="cf",
        platform="ios",
    )
    with EventLog(tmp_path) as log:
        assert log.append([full, ev("e2")]) == [True, True]
        table = log.scan()
    assert table.schema.field("item_id").type == pa.int64()
    assert table.schema.field("position").type == pa.int32()
    assert table.schema.field("dwell_s").type == pa.float64()
    rows = table.to_pylist()
    assert rows[0] == dataclasses.asdict(full)
    assert rows[1]["dwell_s"] is None and rows[1]["position"] is None


def test_duplicates_are_reported_and_written_once(tmp_path: Path) -> None:
    with EventLog(tmp_path) as log:
        assert log.append([ev("a"), ev("b"), ev("a")]) == [True, True, False]
        assert log.append([ev("b"), ev("c")]) == [False, True]
        assert log.append([]) == []
    with EventLog(tmp_path) as log:
        assert log.append([ev("a"), ev("d"), ev("c")]) == [False, True, False]
        assert len(log) == log.count() == 4
        ids = [r[0] for r in log.query("SELECT event_id FROM events")[1]]
    assert ids == ["a", "b", "c", "d"]
    assert len(lines(tmp_path)) == 4


def test_torn_trailing_line_is_truncated_on_reopen(tmp_path: Path) -> None:
    with EventLog(tmp_path) as log:
        log.append([ev("a"), ev("b")])
    (segment,) = tmp_path.glob("events-*.jsonl")
    with segment.open("ab") as f:
        f.write(orjson.dumps(ev("torn"))[:30])  # what a crash mid-write leaves behind
    with EventLog(tmp_path) as log:
        assert [r["event_id"] for r in log.scan().to_pylist()] == ["a", "b"]
        assert log.append([ev("torn"), ev("c")]) == [True, True]
    assert [orjson.loads(ln)["event_id"] for ln in lines(tmp_path)] == ["a", "b", "torn", "c"]


def test_segment_holding_only_a_torn_line_is_emptied(tmp_path: Path) -> None:
    (tmp_path / "events-20231114.jsonl").write_bytes(b'{"event_id":"x","ty')
    with EventLog(tmp_path) as log:
        assert len(log) == 0 and log.scan().num_rows == 0
    assert (tmp_path / "events-20231114.jsonl").read_bytes() == b""


def test_readers_skip_a_half_written_line_while_open(tmp_path: Path) -> None:
    with EventLog(tmp_path) as log:
        log.append([ev("a")])
        (segment,) = tmp_path.glob("events-*.jsonl")
        with segment.open("ab") as f:  # a concurrent write in progress, as a reader sees it
            f.write(b'{"event_id":"b","type":"cl')
        assert log.scan()["event_id"].to_pylist() == ["a"]


def test_scan_filters_time_range_half_open_and_types(tmp_path: Path) -> None:
    with EventLog(tmp_path) as log:
        log.append(
            [
                ev("a", T0, "exposure"),
                ev("b", T0 + 1, "click"),
                ev("c", T0 + 2, "exposure"),
                ev("d", T0 + 3, "convert"),
            ]
        )

        def ids(**kw: Any) -> list[str]:
            return list(log.scan(**kw)["event_id"].to_pylist())

        assert ids(start_ts=T0 + 1, end_ts=T0 + 3) == ["b", "c"]
        assert ids(types=["exposure", "convert"]) == ["a", "c", "d"]
        assert ids(start_ts=T0 + 1, types=["exposure"]) == ["c"]
        assert ids(types=[]) == []


def test_segments_rotate_by_utc_day_and_read_as_one(tmp_path: Path) -> None:
    now = [T0]
    with EventLog(tmp_path, clock=lambda: now[0]) as log:
        log.append([ev("a")])
        now[0] += DAY
        log.append([ev("b"), ev("a")])
        assert log.scan()["event_id"].to_pylist() == ["a", "b"]
    names = sorted(p.name for p in tmp_path.glob("events-*.jsonl"))
    assert names == ["events-20231114.jsonl", "events-20231115.jsonl"]
    with EventLog(tmp_path) as log:
        assert log.append([ev("a"), ev("b")]) == [False, False]


def test_quarantine_rows_come_back_with_reasons(tmp_path: Path) -> None:
    with EventLog(tmp_path, clock=lambda: T0 + 5) as log:
        assert log.quarantine_count() == 0
        log.quarantine([ev("q1"), ev("q2", dwell_s=-1.0)], ["bad signature", "negative dwell"])
        with pytest.raises(ValueError):
            log.quarantine([ev("q3")], [])
        assert len(log) == 0
    with EventLog(tmp_path) as log:
        assert log.quarantine_count() == 2
        rows = log.quarantined().to_pylist()
        assert log.query("SELECT count(*) FROM quarantine")[1] == [(2,)]
    assert [(r["event_id"], r["reason"]) for r in rows] == [
        ("q1", "bad signature"),
        ("q2", "negative dwell"),
    ]
    assert rows[1]["dwell_s"] == -1.0 and rows[0]["quarantined_at"] == T0 + 5


def test_empty_log_relation_is_typed_and_empty(tmp_path: Path) -> None:
    with EventLog(tmp_path) as log:
        rel = duckdb.connect().sql(f"SELECT * FROM {log.relation_sql()} AS e")
        assert rel.columns == list(COLUMNS)
        assert [str(t) for t in rel.types] == list(COLUMNS.values())
        assert rel.fetchall() == []
        assert log.scan(start_ts=0).num_rows == 0
        assert log.quarantined().num_rows == 0


def test_concurrent_appends_lose_nothing(tmp_path: Path) -> None:
    n_threads, n_batches, size = 4, 20, 50
    wins: list[list[bool]] = [[] for _ in range(n_threads)]
    with EventLog(tmp_path) as log:

        def work(t: int) -> None:
            for b in range(n_batches):
                own = [ev(f"{t}-{b}-{i}") for i in range(size)]
                wins[t] += log.append([*own, ev(f"shared-{b}")])

        threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert len(log) == n_threads * n_batches * size + n_batches
    assert sum(map(sum, wins)) == n_threads * n_batches * size + n_batches
    assert len(lines(tmp_path)) == len({orjson.loads(ln)["event_id"] for ln in lines(tmp_path)})
    with EventLog(tmp_path) as log:
        assert len(log) == n_threads * n_batches * size + n_batches


def test_failed_fsync_rolls_back_the_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with EventLog(tmp_path) as log:
        log.append([ev("a")])

        def fail(fd: int) -> None:
            raise OSError("disk gone")

        monkeypatch.setattr(eventlog.os, "fsync", fail)
        with pytest.raises(OSError):
            log.append([ev("b")])
        monkeypatch.undo()
        assert log.append([ev("b")]) == [True]
    assert [orjson.loads(ln)["event_id"] for ln in lines(tmp_path)] == ["a", "b"]


def test_second_open_of_same_root_is_refused(tmp_path: Path) -> None:
    with EventLog(tmp_path), pytest.raises(RuntimeError, match="another process"):
        EventLog(tmp_path)
    EventLog(tmp_path).close()  # the lock is released on close


def test_closed_log_refuses_writes(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.close()
    log.close()
    with pytest.raises(ValueError):
        log.append([ev("a")])
    assert lines(tmp_path) == []


def test_the_exposure_writer_completes_rows_off_the_request_path(tmp_path: Path) -> None:
    from tuijian.data.exposures import ExposureWriter

    log = EventLog(tmp_path / "events")
    writer = ExposureWriter(log, interval_s=60)  # only explicit flushes write
    try:
        rows = [ev("x.0", type_="exposure"), ev("x.1", type_="exposure")]

        def complete() -> None:
            for r, p in zip(rows, (0.25, 0.125), strict=True):
                r.pctr = p

        def broken() -> None:
            raise RuntimeError("model gone")

        writer.write(rows, complete)
        writer.write([ev("y.0", type_="exposure")], broken)
        assert rows[0].pctr is None  # nothing ran on the caller's thread
        writer.flush()
        _, got = log.query("SELECT event_id, pctr FROM events ORDER BY event_id")
        # a failing completion costs its rows' prediction, never the rows
        assert got == [("x.0", 0.25), ("x.1", 0.125), ("y.0", None)]
    finally:
        writer.close()
        log.close()
