"""Real-time item-CF, in process and in Redis (real server): the same clicks give the same
neighbours and scores, decay and the co-click window included."""

from __future__ import annotations

import numpy as np
import pytest

from tuijian.data.redis_backend import Breaker
from tuijian.recall.item_cf_realtime import RealtimeItemCF
from tuijian.recall.item_cf_realtime_redis import RedisRealtimeItemCF
from tuijian.recall.neighbors import walk

DAY = 86_400.0


def _clicks() -> list[tuple[str, int, float]]:
    rng = np.random.default_rng(3)
    out = []
    t = 1_700_000_000.0
    for _ in range(400):
        t += float(rng.exponential(3_000.0))  # ~a day between some clicks: windows bite
        out.append((f"u{rng.integers(12)}", int(rng.zipf(1.6) % 40), t))
    return out


def _as_dict(pair: tuple[np.ndarray, np.ndarray]) -> dict[int, float]:
    return dict(zip(pair[0].tolist(), pair[1].tolist(), strict=True))


def test_redis_matches_the_in_process_model(redis_url: str) -> None:
    memory = RealtimeItemCF(history=5, window_s=DAY, half_life_s=2 * DAY)
    remote = RedisRealtimeItemCF(redis_url, Breaker("test"), history=5, window_s=DAY,
                                 half_life_s=2 * DAY)
    for user, idx, ts in _clicks():
        memory.observe_click(user, idx, ts)
        remote.observe_click(user, idx, ts)
    compared = 0
    for idx in range(40):
        want, got = _as_dict(memory.neighbors(idx)), _as_dict(remote.neighbors(idx))
        assert got.keys() == want.keys(), idx
        for j, score in want.items():
            assert got[j] == pytest.approx(score, rel=1e-9), (idx, j)
        compared += len(want)
        scores = remote.neighbors(idx)[1]
        assert (np.diff(scores) <= 0).all()  # best first
    assert compared > 100  # the sequence really built co-clicks
    ids, _ = walk(remote, [1, 2, 3], 0.8, 10)
    assert ids.tolist() == walk(memory, [1, 2, 3], 0.8, 10)[0].tolist()
    remote.clear()
    assert remote.neighbors(1)[0].size == 0


def test_rows_stay_bounded_and_keep_the_strongest(redis_url: str) -> None:
    remote = RedisRealtimeItemCF(redis_url, Breaker("test"), history=30, max_neighbors=3)
    for j in range(1, 8):  # item 0 co-clicked with 1..7, with 7 more often than the rest
        for _ in range(1 + (j == 7) * 3):
            remote.observe_click(f"u{j}", 0, 1_000.0)
            remote.observe_click(f"u{j}", j, 1_001.0)
    ids, _ = remote.neighbors(0)
    assert ids[0] == 7 and len(ids) <= 6  # pruned to 3 once past 6, then grew again


def test_a_dead_server_costs_nothing_but_the_recall() -> None:
    dead = RedisRealtimeItemCF("redis://127.0.0.1:1/0", Breaker("dead"))
    dead.observe_click("u", 1, 1.0)
    assert dead.neighbors(1)[0].size == 0 and dead.breaker.open
