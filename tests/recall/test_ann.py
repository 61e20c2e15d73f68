import numpy as np
import scipy.sparse as sp

from tuijian.recall.ann import ItemIndex


def test_exact_and_hnsw_agree_and_exclusions_never_win(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3000, 16)).astype(np.float32)
    queries = rng.normal(size=(20, 16)).astype(np.float32)
    exact = ItemIndex.build(vectors, exact_below=10_000)
    hnsw = ItemIndex.build(vectors, exact_below=100)
    assert exact.exact and not hnsw.exact
    e_ids, e_scores = exact.search(queries, 10)
    h_ids, _ = hnsw.search(queries, 10)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    assert (e_ids == truth).all()
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(h_ids, truth, strict=True)])
    assert overlap > 0.9
    assert np.all(np.diff(e_scores, axis=1) <= 1e-6)
    banned = sp.csr_matrix((np.ones(20), (np.arange(20), truth[:, 0])), shape=(20, 3000))
    ids, _ = exact.search(queries, 10, banned)
    assert (ids[:, 0] == truth[:, 1]).all() and not np.any(ids == truth[:, :1])
    exact.save(tmp_path / "i.faiss")
    again = ItemIndex.load(tmp_path / "i.faiss")
    assert (again.search(queries, 10)[0] == e_ids).all()
