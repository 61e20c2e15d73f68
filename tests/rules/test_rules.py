import collections
import itertools
import time

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tuijian.data.items import ColumnarItemStore
from tuijian.domain import Candidates
from tuijian.rules.base import RuleContext
from tuijian.rules.chain import rule_chain
from tuijian.rules.dedup import Dedup
from tuijian.rules.scatter import Scatter, arrange, violations
from tuijian.rules.spec import DedupSpec, RuleStrategy, ScatterSpec

NOW = time.time()


def _store(pubs: list[int], titles: list[str], **cols: list) -> ColumnarItemStore:
    n = len(pubs)
    return ColumnarItemStore(pa.table({
        "item_id": list(range(1, n + 1)), "line": cols.pop("line", [0] * n),
        "category": [0] * n, "city": [0] * n, "district": [0] * n, "title": titles,
        "publisher_id": pubs, **cols,
    }))


def _cands(n: int) -> Candidates:
    return Candidates.placed(np.arange(n), np.linspace(1, 0, n), 0)


def _ctx(store: ColumnarItemStore, n: int = 10) -> RuleContext:
    return RuleContext(store, n, NOW)


def test_exact_dedup_keeps_the_best_ranked_copy() -> None:
    store = _store([1, 1, 2, 1], ["x", "y", "x", "x"])
    cands = Candidates.placed(np.array([3, 0, 1, 2, 0]), np.zeros(5), 0)
    spec = DedupSpec(text=None, image=None)
    out, report = Dedup(spec).apply(cands, _ctx(store))
    assert out.idx.tolist() == [3, 1, 2]  # 0 is a re-post of 3 (and listed twice)
    assert report.removed == 2


def test_near_duplicate_text_is_removed_and_distinct_text_kept() -> None:
    titles = [
        "Chaoyang 2BR 80m² whole rent near subway, south facing, new kitchen ¥5500/mo",
        "Haidian 1BR 45m² shared rent, quiet street, pets ok, ¥2100/mo",
        "Chaoyang 2BR 80m² whole rent near subway, south facing, new kitchen ¥5500/mo (urgent)",
        "2BR Chaoyang 80m² whole rent near subway, south facing, new kitchen ¥5500/mo",
    ]
    store = _store([1, 2, 3, 4], titles)
    out, report = Dedup(DedupSpec(image=None)).apply(_cands(4), _ctx(store))
    assert out.idx.tolist() == [0, 1]
    assert report.removed == 2


def test_near_duplicate_cover_photo_is_removed() -> None:
    base = 0x5A5A_F0F0_1234_8765
    near = base ^ 0b1011  # 3 bits off: a re-encoded copy
    far = base ^ ((1 << 64) - 1)
    hashes = [[v - (1 << 64) if v >= 1 << 63 else v] for v in (base, far, near)]
    store = _store([1, 2, 3], ["a b c", "d e f", "g h i"], image_hashes=hashes)
    spec = DedupSpec(exact=False, text=None)
    out, report = Dedup(spec).apply(_cands(3), _ctx(store))
    assert out.idx.tolist() == [0, 1] and report.removed == 1
    mixed = DedupSpec(exact=False)  # text OR image: the photo alone is enough
    assert Dedup(mixed).apply(_cands(3), _ctx(store))[0].idx.tolist() == [0, 1]


def test_a_row_near_only_a_dropped_row_stays() -> None:
    # A~B and B~C but not A~C: B goes (near A), C stays (near only B, which went)
    a, b, c = 0, 0b1111_1111, 0b1111_1111_1111_1111
    store = _store([1, 2, 3], ["x1", "x2", "x3"], image_hashes=[[a], [b], [c]])
    spec = DedupSpec(exact=False, text=None, image={"max_distance": 8})
    out, _ = Dedup(spec).apply(_cands(3), _ctx(store))
    assert out.idx.tolist() == [0, 2]


def _keys(values: list[int]) -> list[tuple[int, ...]]:
    return [(v,) for v in values]


def _feasible(values: list[int], spec: ScatterSpec, n: int) -> bool:
    """Brute force: does any ordering of any n of the values meet the windows?"""
    for combo in itertools.combinations(range(len(values)), n):
        for perm in itertools.permutations(combo):
            if violations(_keys([values[j] for j in perm]), [spec]) == 0:
                return True
    return False


@settings(max_examples=150, deadline=None)
@given(values=st.lists(st.integers(0, 3), min_size=1, max_size=7),
       k=st.integers(1, 2), window=st.integers(2, 4), n=st.integers(1, 7))
def test_scatter_meets_every_window_whenever_some_order_can(
        values: list[int], k: int, window: int, n: int) -> None:
    if k >= window:
        return
    spec = ScatterSpec(k=k, window=window)
    n = min(n, len(values))
    order = arrange(_keys(values), [spec], n)
    assert sorted(order) == list(range(len(values)))  # nothing lost, nothing repeated
    shown = _keys([values[j] for j in order[:n]])
    if _feasible(values, spec, n):
        assert violations(shown, [spec]) == 0, (values, order)


@settings(max_examples=150, deadline=None)
@given(values=st.lists(st.integers(0, 5), min_size=1, max_size=40),
       k=st.integers(1, 2), window=st.integers(2, 5))
def test_scatter_keeps_the_ranked_order_when_it_already_fits(
        values: list[int], k: int, window: int) -> None:
    if k >= window:
        return
    spec = ScatterSpec(k=k, window=window)
    keys = _keys(values)
    order = arrange(keys, [spec], len(values))
    if violations(keys, [spec]) == 0:
        assert order == list(range(len(values)))


def test_scatter_on_two_fields_at_once() -> None:
    pubs = [1, 1, 1, 2, 2, 3, 4, 1, 5, 6, 7, 8]
    store = _store(pubs, [f"t{i}" for i in range(len(pubs))],
                   line=[0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 5])
    specs = [ScatterSpec(field="publisher_id", k=1, window=3),
             ScatterSpec(field="line", k=1, window=2)]
    out, report = Scatter(specs).apply(_cands(len(pubs)), _ctx(store, n=len(pubs)))
    cols = store.gather(out.idx, ("publisher_id", "line"))
    keys = list(zip(cols["publisher_id"].tolist(), cols["line"].tolist(), strict=True))
    assert violations(keys, specs) == 0
    assert report.moved > 0 and sorted(out.idx.tolist()) == list(range(len(pubs)))


def test_scatter_places_the_best_ranked_item_that_fits() -> None:
    # A is blocked after A, so B (rank 2) goes up past the second A, which returns next
    assert arrange(_keys([0, 0, 1, 2]), [ScatterSpec(k=1, window=2)], 4) == [0, 2, 1, 3]
    # a window of 3 with k=2: the third A waits one place, C stays behind it
    assert arrange(_keys([0, 0, 0, 1, 2]), [ScatterSpec(k=2, window=3)], 5) == [0, 1, 3, 2, 4]
    # only the first n places are arranged; the rest keep their order
    assert arrange(_keys([0, 0, 1, 0, 2]), [ScatterSpec(k=1, window=2)], 2) == [0, 2, 1, 3, 4]


def test_scatter_takes_the_careful_pass_when_the_best_fit_paints_into_a_corner() -> None:
    # best fit gives A B C A and then only an A is left; A B A C A breaks no window
    assert arrange(_keys([0, 1, 2, 0, 0]), [ScatterSpec(k=1, window=2)], 5) == [0, 1, 3, 2, 4]
    # with no arrangement possible the best-ranked item breaks the window
    assert arrange(_keys([0, 0, 0]), [ScatterSpec(k=1, window=2)], 3) == [0, 1, 2]


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2)), min_size=1,
                       max_size=30), n=st.integers(1, 30))
def test_scatter_on_two_constraints_greedy_is_the_best_fit_at_every_place(
        values: list[tuple[int, int]], n: int) -> None:
    specs = [ScatterSpec(k=1, window=3), ScatterSpec(k=2, window=4)]
    order = arrange(values, specs, n)
    shown = [values[j] for j in order[:n]]
    if violations(shown, specs):
        return  # the careful pass or a broken window: not a plain best-fit list
    left = list(range(len(values)))
    for place, row in enumerate(order[: min(n, len(values))]):
        before = shown[:place]
        fits = [j for j in left if violations([*before, values[j]], specs) == 0]
        # the careful pass may skip a fit to stay completable, never take a worse-ranked one
        # when the best fit would also have completed: best fit or a later one
        assert fits and row >= fits[0]
        left.remove(row)


def _brute_dedup(keys: list[int], bands: np.ndarray, covers: list[int | None],
                 min_jaccard: float, max_distance: int) -> list[int]:
    """Rows Dedup keeps, by checking every pair: a repeated content key goes first; of the
    rest, a row goes when it is near an earlier row that stayed, by a shared band key (of a
    band bucket of at most 8 of those rows) with enough equal MinHash slots, or by covers
    within the distance."""
    live = [j for j in range(len(keys)) if keys[j] not in keys[:j]]
    buckets = collections.Counter((b, v) for j in live for b, v in enumerate(bands[j].tolist()))
    slots = bands.view(np.uint16)

    def near(i: int, j: int) -> bool:
        shared = any(bands[i, b] == bands[j, b] and buckets[b, int(bands[i, b])] <= 8
                     for b in range(bands.shape[1]))
        if shared and (slots[i] == slots[j]).sum() >= min_jaccard * slots.shape[1] - 1e-9:
            return True
        ci, cj = covers[i], covers[j]
        return ci is not None and cj is not None and (ci ^ cj).bit_count() <= max_distance

    kept: list[int] = []
    for j in live:
        if not any(near(i, j) for i in kept):
            kept.append(j)
    return kept


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=st.integers(1, 60))
def test_dedup_drops_what_a_pairwise_check_drops(seed: int, size: int) -> None:
    rng = np.random.default_rng(seed)
    # few originals, copies with some bands or slots changed, so every bucket size appears
    base = rng.integers(0, 1 << 62, (max(size // 4, 1), 16))
    bands = base[rng.integers(0, len(base), size)]
    changed = rng.random((size, 16)) < rng.random() * 0.6
    bands[changed] = rng.integers(0, 3, int(changed.sum()))
    keys = rng.integers(0, 2 * size, size).tolist()
    photos = rng.integers(0, 1 << 62, max(size // 3, 1))[rng.integers(0, max(size // 3, 1), size)]
    flips = np.left_shift(1, rng.integers(0, 62, (size, 2))).sum(axis=1) * (rng.random(size) < .5)
    covers = [int(p ^ f) if has else None for p, f, has in
              zip(photos.tolist(), flips.tolist(), (rng.random(size) < 0.8).tolist(), strict=True)]
    store = _store(list(range(size)), [f"t{i}" for i in range(size)], content_key=keys,
                   cover_hash=[c or 0 for c in covers],
                   n_images=[int(c is not None) for c in covers],
                   **{f"text_band_{b:02d}": bands[:, b].tolist() for b in range(16)})
    spec = DedupSpec(text={"min_jaccard": 0.6}, image={"max_distance": 1})
    out, report = Dedup(spec).apply(_cands(size), _ctx(store))
    assert out.idx.tolist() == _brute_dedup(keys, bands, covers, 0.6, 1)
    assert report.removed == size - len(out)


def _business_store() -> ColumnarItemStore:
    n = 8
    return _store(list(range(1, n + 1)), [f"title {i}" for i in range(n)],
                  line=[3, 3, 0, 0, 2, 3, 5, 0],  # job, job, rent, rent, car, job, goods, rent
                  price=[800.0, 9000, 3000, 4000, 1e5, 500, 20, 5000],
                  quality=[0.9, 0.2, 0.5, 0.95, 0.5, 0.5, 0.1, 0.5],
                  active=[1, 1, 1, 1, 1, 1, 1, 0])


def _run(business: list[dict], n: int = 8) -> tuple[list[int], dict]:
    spec = RuleStrategy.model_validate({"dedup": False, "business": business})
    store = _business_store()
    cands = _cands(7)  # item 8 (index 7) is not recalled
    ctx = _ctx(store, n)
    reports = {}
    for rule in rule_chain(spec):
        cands, rep = rule.apply(cands, ctx)
        reports[rep.rule] = rep
    return cands.idx.tolist(), reports


def test_filter_boost_bury_quota_and_pin() -> None:
    out, rep = _run([{"action": "filter", "name": "cheap_jobs",
                      "when": {"line": "job", "price": {"lt": 1000}}}])
    assert out == [1, 2, 3, 4, 6] and rep["cheap_jobs"].removed == 2
    out, rep = _run([{"action": "boost", "when": {"quality": {"gte": 0.9}}, "factor": 10}])
    assert out[:2] == [0, 3] and rep["boost"].moved > 0
    out, _ = _run([{"action": "bury", "when": {"line": {"in": ["job", "goods"]}}}])
    assert out == [2, 3, 4, 0, 1, 5, 6]
    out, rep = _run([{"action": "quota", "field": "line", "max": {"job": 1}}], n=4)
    assert out[:4] == [0, 2, 3, 4] and rep["quota_line"].moved == 1
    out, _ = _run([{"action": "quota", "field": "line", "share": {"house_rent": 0.25}}], n=4)
    assert out[:4] == [0, 1, 2, 4]
    out, rep = _run([{"action": "pin", "when": {"line": "car"}, "position": 0}])
    assert out[0] == 4 and sorted(out) == list(range(7))
    out, rep = _run([{"action": "pin", "item_ids": [7, 999], "position": 2}])
    assert out[2] == 6 and len(out) == 7 and rep["pin"].added == 0
    out, rep = _run([{"action": "pin", "item_ids": [8], "position": 1}])  # inactive: not added
    assert 7 not in out


@pytest.mark.parametrize(("business", "message"), [
    ([{"action": "filter", "when": {"colour": "red"}}], "when.colour: unknown field"),
    ([{"action": "filter", "when": {"line": "spaceships"}}], "unknown line 'spaceships'"),
    ([{"action": "filter", "when": {"price": {"about": 3}}}], "unknown operator"),
    ([{"action": "filter", "when": {"price": {"in": 3}}}], "expects a list"),
    ([{"action": "boost", "when": {"line": "job"}}], "factor"),
    ([{"action": "quota", "field": "line", "max": {"jobs": 1}}], "unknown line 'jobs'"),
    ([{"action": "pin", "position": 0}], "exactly one of item_ids or when"),
    ([{"action": "promote", "when": {"line": "job"}}], "action"),
])
def test_bad_business_rules_are_refused_with_the_reason(business: list, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RuleStrategy.model_validate({"business": business})


def test_scatter_spec_that_constrains_nothing_is_refused() -> None:
    with pytest.raises(ValidationError, match="constrains nothing"):
        RuleStrategy.model_validate({"scatter": {"field": "category", "k": 4, "window": 4}})
