import numpy as np
import pyarrow as pa

from tuijian.data.items import ColumnarItemStore
from tuijian.domain import Candidates
from tuijian.rules.dedup import ExactDedup
from tuijian.rules.scatter import Scatter


def _store(pubs: list[int], titles: list[str]) -> ColumnarItemStore:
    n = len(pubs)
    return ColumnarItemStore(pa.table({
        "item_id": list(range(1, n + 1)), "line": [0] * n, "category": [0] * n,
        "city": [0] * n, "district": [0] * n, "title": titles, "publisher_id": pubs,
    }))


def _cands(n: int) -> Candidates:
    return Candidates.placed(np.arange(n), np.linspace(1, 0, n), 0)


def test_dedup_keeps_the_best_ranked_copy() -> None:
    store = _store([1, 1, 2, 1], ["x", "y", "x", "x"])
    cands = Candidates.placed(np.array([3, 0, 1, 2, 0]), np.zeros(5), 0)
    out, report = ExactDedup().apply(cands, store, 10)
    assert out.idx.tolist() == [3, 1, 2]  # 0 is a re-post of 3 (and listed twice)
    assert report.removed == 2


def test_scatter_respects_windows_and_keeps_order_otherwise() -> None:
    pubs = [1, 1, 1, 2, 2, 3, 4, 1, 5, 6]
    store = _store(pubs, [f"t{i}" for i in range(len(pubs))])
    out, report = Scatter("publisher_id", k=1, window=3).apply(_cands(len(pubs)), store, 10)
    placed = [pubs[i] for i in out.idx.tolist()]
    for start in range(len(placed) - 2):
        window = placed[start:start + 3]
        assert len(set(window)) == 3, placed
    assert out.idx[0] == 0 and report.moved > 0
    assert sorted(out.idx.tolist()) == list(range(len(pubs)))  # nothing lost
