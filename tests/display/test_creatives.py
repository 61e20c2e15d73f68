"""Creative choice, tested by simulation: true CTRs are drawn at random, clicks are Bernoulli
draws from them, and the chooser only ever sees exposures and clicks."""

from __future__ import annotations

import gc
import json
import math
import threading

import numpy as np
import pytest

from tuijian.display.creatives import CreativeChooser


def _names(k: int) -> list[str]:
    return [f"img{j}" for j in range(k)]


def _simulate(chooser: CreativeChooser, true_ctr: list[np.ndarray], rounds: int, batch: int,
              rng: np.random.Generator, base: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Serve `rounds` requests of `batch` random items; return (item, chosen idx) per impression."""
    names = [_names(len(t)) for t in true_ctr]
    items_out, chosen_out = [], []
    for _ in range(rounds):
        ids = rng.choice(len(true_ctr), size=batch, replace=False)
        picks = chooser.choose(ids.tolist(), [names[i] for i in ids],
                               base_ctr=None if base is None else base[ids])
        idx = [int(p[3:]) for p in picks if p is not None]
        ctr = np.array([true_ctr[i][j] for i, j in zip(ids, idx, strict=True)])
        clicks = rng.random(batch) < ctr
        for i, p, c in zip(ids.tolist(), picks, clicks.tolist(), strict=True):
            assert p is not None
            chooser.record_exposure(i, p)
            if c:
                chooser.record_click(i, p)
        items_out.append(ids)
        chosen_out.append(idx)
    return np.concatenate(items_out), np.concatenate(chosen_out)


def test_converges_to_the_best_creative_with_low_regret() -> None:
    rng = np.random.default_rng(11)
    n_items = 100
    true_ctr = []
    for _ in range(n_items):
        k = int(rng.integers(3, 5))
        ctr = rng.uniform(0.02, 0.08, size=k)  # the others
        ctr[rng.integers(k)] = rng.uniform(0.11, 0.15)  # one clearly best
        true_ctr.append(ctr)
    # the "ranker's" item CTR: the item's mean CTR with multiplicative noise
    base = np.array([t.mean() for t in true_ctr]) * rng.lognormal(0.0, 0.2, n_items)
    chooser = CreativeChooser(prior_strength=20.0, seed=3)
    rounds, batch = 4000, 20  # 80k impressions, ~800 per item
    items, chosen = _simulate(chooser, true_ctr, rounds, batch, rng, base)

    best_idx = np.array([int(t.argmax()) for t in true_ctr])
    tail = slice(int(0.8 * len(items)), None)
    traffic = np.bincount(items, minlength=n_items)
    enough = traffic[items[tail]] >= 200
    share = float((chosen[tail] == best_idx[items[tail]])[enough].mean())
    assert enough.mean() > 0.9
    assert share >= 0.80, share

    best_ctr = np.array([t.max() for t in true_ctr])
    mean_ctr = np.array([t.mean() for t in true_ctr])
    got = np.array([true_ctr[i][j] for i, j in zip(items, chosen, strict=True)])
    regret = float((best_ctr[items] - got).sum())
    uniform_regret = float((best_ctr[items] - mean_ctr[items]).sum())
    assert regret < 0.4 * uniform_regret, (regret, uniform_regret)
    # exploitation agrees with the truth on (nearly) every item
    agree = np.mean([chooser.best(i) == f"img{best_idx[i]}" for i in range(n_items)])
    assert agree >= 0.9


def test_a_new_better_creative_is_tried_and_takes_over() -> None:
    rng = np.random.default_rng(5)
    chooser = CreativeChooser(seed=8)
    ctr = {"a": 0.03, "b": 0.05, "c": 0.08}

    def serve(names: list[str]) -> str:
        pick = chooser.choose([1], [names])[0]
        assert pick is not None
        chooser.record_exposure(1, pick)
        if rng.random() < ctr[pick]:
            chooser.record_click(1, pick)
        return pick

    old = list(ctr)
    picks = [serve(old) for _ in range(4000)]
    assert chooser.best(1) == "c"
    assert picks[-500:].count("c") / 500 >= 0.8  # converged on the old best

    ctr["new"] = 0.15
    picks = [serve([*old, "new"]) for _ in range(3000)]
    first_try = picks.index("new")
    assert first_try < 50  # a fresh creative's wide prior gets it sampled quickly
    windows = [picks[s:s + 200].count("new") / 200 for s in range(0, 2801, 100)]
    takeover = next(s for s, w in zip(range(0, 2801, 100), windows, strict=True) if w >= 0.8)
    assert takeover <= 1500, windows
    assert chooser.best(1) == "new"


def test_no_data_means_uniform_choice() -> None:
    names = _names(4)
    n = 8000
    for base in (None, np.full(n, 0.05)):
        chooser = CreativeChooser(seed=1)
        picks = chooser.choose([7] * n, [names] * n, base_ctr=base)
        counts = np.array([picks.count(c) for c in names])
        chi2 = float(((counts - n / 4) ** 2 / (n / 4)).sum())
        assert chi2 < 16.27, counts  # chi-square, 3 d.o.f., p = 0.001


def test_smoothing_keeps_one_lucky_click_from_dominating() -> None:
    def means(prior_strength: float) -> dict[str, float]:
        chooser = CreativeChooser(prior_strength=prior_strength, seed=0)
        chooser.record_exposure(3, "lucky")
        chooser.record_click(3, "lucky")
        for _ in range(300):
            chooser.record_exposure(3, "steady")
        for _ in range(30):
            chooser.record_click(3, "steady")
        return {s.creative: s.posterior_mean for s in chooser.stats(3, base_ctr=0.05)}

    smoothed = means(20.0)
    assert smoothed["lucky"] < smoothed["steady"]
    assert smoothed["lucky"] == pytest.approx((0.05 * 20 + 1) / 21)
    assert smoothed["steady"] == pytest.approx((0.05 * 20 + 30) / 320)
    raw = means(1e-3)  # (almost) no smoothing: the raw 100% CTR wins
    assert raw["lucky"] > 0.9 > raw["steady"]


def test_position_weight_normalises_exposures() -> None:
    chooser = CreativeChooser(seed=0)
    for _ in range(200):
        chooser.record_exposure(4, "top")  # shown at position 1
        chooser.record_exposure(4, "low", weight=0.5)  # a slot with half position 1's CTR
    for _ in range(20):
        chooser.record_click(4, "top")
    for _ in range(10):
        chooser.record_click(4, "low")
    st = {s.creative: s for s in chooser.stats(4, base_ctr=0.05)}
    assert st["low"].exposures == pytest.approx(100.0)
    assert st["low"].posterior_mean == pytest.approx(st["top"].posterior_mean, rel=0.05)
    # a base CTR predicted at a slot is turned into position-1 units for the prior
    chooser.choose([5], [["x", "y"]], base_ctr=np.array([0.03]), position_ctr=np.array([0.5]))
    bl = chooser.snapshot()["items"]["5"]["base_logit"]
    assert bl == pytest.approx(math.log(0.06 / 0.94))


def test_embedding_model_ranks_new_items_creatives() -> None:
    rng = np.random.default_rng(21)
    dim, k = 8, 4
    w_true = rng.normal(size=dim)
    w_true *= 0.9 * math.sqrt(dim) / np.linalg.norm(w_true)  # w·e has sd ~0.9 for e ~ N(0, I/dim)

    def make_items(n: int) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray]]:
        base_logit = rng.normal(math.log(0.05 / 0.95), 0.3, size=n)
        embs = [rng.normal(size=(k, dim)) / math.sqrt(dim) for _ in range(n)]
        ctr = [1 / (1 + np.exp(-(b + e @ w_true))) for b, e in zip(base_logit, embs, strict=True)]
        return embs, 1 / (1 + np.exp(-base_logit)), ctr

    chooser = CreativeChooser(seed=4, embedding_dim=dim)
    train_embs, train_base, train_ctr = make_items(400)
    for i, e in enumerate(train_embs):
        for j, name in enumerate(_names(k)):
            chooser.register_embedding(i, name, e[j])
    _simulate(chooser, train_ctr, rounds=3000, batch=20, rng=rng, base=train_base)
    w = chooser.embedding_weights
    assert w is not None
    cosine = float(w[1:] @ w_true / np.linalg.norm(w[1:]) / np.linalg.norm(w_true))
    assert cosine > 0.8, cosine

    # brand-new items: no clicks at all, so the ranking comes from the embedding prior alone
    new_embs, new_base, new_ctr = make_items(300)
    rhos, top1 = [], []
    for n, (e, b, t) in enumerate(zip(new_embs, new_base, new_ctr, strict=True)):
        item = 10_000 + n
        for j, name in enumerate(_names(k)):
            chooser.register_embedding(item, name, e[j])
        prior = {s.creative: s.posterior_mean for s in chooser.stats(item, base_ctr=float(b))}
        p = np.array([prior[name] for name in _names(k)])
        rank_p, rank_t = p.argsort().argsort(), t.argsort().argsort()
        rhos.append(float(np.corrcoef(rank_p, rank_t)[0, 1]))
        top1.append(int(p.argmax()) == int(t.argmax()))
    assert np.mean(rhos) > 0.7, np.mean(rhos)  # chance: 0
    assert np.mean(top1) > 0.7, np.mean(top1)  # chance: 1/k = 0.25

    # embeddings passed to choose() (not registered) tilt the sampling toward the true best
    ids = list(range(20_000, 20_300))
    best = np.array([int(t.argmax()) for t in new_ctr])
    hits = {True: 0, False: 0}
    for _ in range(30):
        for use in (True, False):
            picks = chooser.choose(ids, [_names(k)] * len(ids), base_ctr=new_base,
                                   embeddings=new_embs if use else None)
            hits[use] += sum(p == f"img{b}" for p, b in zip(picks, best, strict=True))
    with_share, without_share = hits[True] / 9000, hits[False] / 9000
    assert with_share > without_share + 0.2, (with_share, without_share)


def test_snapshot_restore_round_trip() -> None:
    rng = np.random.default_rng(2)
    chooser = CreativeChooser(seed=1)
    chooser.register_embedding(1, "img0", rng.normal(size=3))
    chooser.choose([1, 2], [_names(2), _names(3)], base_ctr=np.array([0.04, 0.07]))
    for _ in range(50):
        chooser.record_exposure(1, "img0")
        chooser.record_exposure(2, "img2", weight=0.7)
    chooser.record_click(1, "img0")
    chooser.record_click(2, "img1")
    snap = json.loads(json.dumps(chooser.snapshot()))  # JSON-able

    restored = CreativeChooser(seed=1)
    restored.restore(snap)
    for item in (1, 2):
        assert restored.stats(item) == chooser.stats(item)
        assert restored.best(item) == chooser.best(item)
    w0, w1 = chooser.embedding_weights, restored.embedding_weights
    assert w0 is not None and w1 is not None
    np.testing.assert_allclose(w0, w1)
    assert restored.snapshot() == snap
    with pytest.raises(ValueError, match="version"):
        restored.restore({**snap, "version": 99})


def test_recording_is_thread_safe() -> None:
    chooser = CreativeChooser(seed=0, embedding_dim=4)
    rng = np.random.default_rng(0)
    pairs = [(i, c) for i in range(5) for c in ("a", "b")]
    for i, c in pairs:
        chooser.register_embedding(i, c, rng.normal(size=4) / 2)
    n_threads, n_exp, n_clk = 4, 5000, 1000
    done = threading.Event()

    def worker() -> None:
        for n in range(n_exp):
            chooser.record_exposure(*pairs[n % len(pairs)])
        for n in range(n_clk):
            chooser.record_click(*pairs[n % len(pairs)])

    def reader() -> None:
        while not done.is_set():
            picks = chooser.choose(list(range(5)), [["a", "b"]] * 5)
            assert all(p in ("a", "b") for p in picks)

    threads = [threading.Thread(target=worker) for _ in range(n_threads)]
    r = threading.Thread(target=reader)
    r.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    r.join()
    for i in range(5):
        for s in chooser.stats(i):
            assert s.exposures == n_threads * n_exp / len(pairs)
            assert s.clicks == n_threads * n_clk / len(pairs)
    assert chooser.snapshot()["totals"] == [n_threads * n_exp, n_threads * n_clk]
    w = chooser.embedding_weights
    assert w is not None and np.isfinite(w).all()


def test_items_with_zero_or_one_creative() -> None:
    chooser = CreativeChooser(seed=6)
    assert chooser.choose([], []) == []
    assert chooser.choose([1, 2], [[], ["only"]]) == [None, "only"]
    assert chooser.best(1) is None and chooser.stats(1) == []
    # singles and empties consume no random draws: the multi-creative picks are unchanged
    a, b = CreativeChooser(seed=9), CreativeChooser(seed=9)
    many = [_names(3)] * 30
    mixed = a.choose([0, *range(1, 31), 99], [[], *many, ["solo"]], base_ctr=np.full(32, 0.05))
    plain = b.choose(list(range(1, 31)), many, base_ctr=np.full(30, 0.05))
    assert mixed[0] is None and mixed[-1] == "solo" and mixed[1:-1] == plain
    with pytest.raises(ValueError):
        chooser.choose([1], [["a"], ["b"]])


def test_statistics_stay_out_of_the_garbage_collectors_sight() -> None:
    """Full collections walk every tracked object: a replica's per-creative counts must not
    add any, or pauses grow with the share of the catalog shown."""
    chooser = CreativeChooser(seed=3)
    chooser.register_embedding(0, "0-0", np.ones(4))
    gc.collect()
    before = len(gc.get_objects())
    for item in range(5000):
        for j in range(3):
            chooser.record_exposure(item, f"{item}-{j}", 0.5)
        chooser.record_click(item, f"{item}-1")
    chooser.choose(list(range(100)), [[f"{i}-{j}" for j in range(3)] for i in range(100)],
                   base_ctr=np.full(100, 0.05))
    gc.collect()
    assert len(gc.get_objects()) - before < 100  # 15,000 creatives, 5,000 items
    assert chooser.stats(7)[0].creative == "7-1" and chooser.stats(7)[0].clicks == 1.0
