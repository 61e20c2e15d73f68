import numpy as np

from tuijian.domain import Candidates
from tuijian.recall.fusion import exclude, fuse


def _r(code: int, ids: list[int]) -> tuple[int, np.ndarray, np.ndarray]:
    return code, np.array(ids, np.int64), np.linspace(1, 0, len(ids))


def test_tiered_fills_in_priority_order_and_dedups() -> None:
    c = fuse([_r(0, [1, 2, 3]), _r(1, [3, 4, 5])], [3, 3], 4, "tiered")
    assert c.idx.tolist() == [1, 2, 3, 4]
    assert c.source.tolist() == [0, 0, 0, 1]  # 3 is credited to the first source
    assert c.sources.tolist() == [1, 1, 3, 2]  # ...and remembered as found by both


def test_quota_gives_each_source_its_share_first() -> None:
    c = fuse([_r(0, list(range(10))), _r(1, list(range(100, 110)))], [1, 1], 6, "quota")
    assert sorted(c.idx.tolist()) == [0, 1, 2, 100, 101, 102]
    c = fuse([_r(0, [1, 2]), _r(1, list(range(100, 110)))], [1, 1], 6, "quota")
    assert len(c) == 6 and {1, 2} <= set(c.idx.tolist())  # short source: others fill in


def test_exclude_drops_banned_items() -> None:
    c = Candidates.placed(np.array([1, 2, 3]), np.zeros(3), 0)
    assert exclude(c, np.array([2]), np.array([], np.int64)).idx.tolist() == [1, 3]


def test_rrf_lifts_items_several_sources_rank_high() -> None:
    a = (0, np.array([1, 2, 3, 4]), np.zeros(4))
    b = (1, np.array([5, 3, 6, 7]), np.zeros(4))
    c = fuse([a, b], [4, 4], 3, "rrf")
    assert c.idx[0] == 3  # ranked 3rd and 2nd beats ranked 1st by one source
    assert set(c.idx.tolist()) == {3, 1, 5}
    assert c.sources[0] == 3 and len(c) == 3
    assert c.source[c.idx.tolist().index(5)] == 1


def test_quota_keeps_each_share_when_sources_overlap() -> None:
    a = _r(0, list(range(100)))
    b = _r(1, list(range(40)) + list(range(1000, 1060)))  # its head duplicates a's list
    c = fuse([a, b], [100, 100], 100, "quota")
    assert (c.source == 0).sum() == 50 and (c.source == 1).sum() == 50
    assert set(c.idx[c.source == 1].tolist()) <= set(range(40, 90)) | set(range(1000, 1060))
    both = c.idx < 40
    assert (c.sources[both] == 3).all()
