import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tuijian.data.items import ColumnarItemStore
from tuijian.data.users import MemoryProfileStore, UserTable


def _items(ids: list[int], titles: list[str], pubs: list[int]) -> pa.Table:
    n = len(ids)
    return pa.table({
        "item_id": ids, "line": [0] * n, "category": [0] * n, "city": [0] * n,
        "district": [0] * n, "title": titles, "publisher_id": pubs, "price": [1000.0] * n,
    })


def test_gather_is_columnar_and_upsert_replaces_or_appends(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = ColumnarItemStore(_items([10, 20, 30], ["a", "b", "c"], [1, 2, 3]),
                              journal=tmp_path / "j.jsonl")
    got = store.gather(np.array([2, 0]), ("item_id", "publisher_id"))
    assert got["item_id"].tolist() == [30, 10]
    assert got["publisher_id"].tolist() == [3, 1]
    idx = store.upsert(_items([20, 40], ["b2", "d"], [2, 4]))
    assert idx.tolist() == [1, 3]
    assert len(store) == 4
    assert store.record(1)["title"] == "b2"
    assert store.index_of([40, 99]).tolist() == [3, -1]
    assert store.record(3)["rooms"] is None  # "not applicable" comes back as None


def test_content_key_matches_exact_reposts_only() -> None:
    store = ColumnarItemStore(_items([1, 2, 3, 4], ["Flat A", "flat a ", "Flat A", "Flat B"],
                                     [7, 7, 8, 7]))
    key = store.column("content_key")
    assert key[0] == key[1]  # same publisher, same title up to case/space
    assert key[0] != key[2]  # another publisher
    assert key[0] != key[3]


def test_journal_replays_after_a_crash_and_snapshot_folds_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    snap, journal = tmp_path / "items.parquet", tmp_path / "items.journal.jsonl"
    pq.write_table(_items([1], ["a"], [1]), snap)
    store = ColumnarItemStore.open(snap, journal)
    store.upsert(_items([2], ["new"], [1]))
    reopened = ColumnarItemStore.open(snap, journal)  # as after a crash: journal replayed
    assert reopened.record(reopened.position(2))["title"] == "new"
    reopened.save(snap)
    assert not journal.exists()
    assert len(ColumnarItemStore.open(snap, journal)) == 2


def test_profiles_cold_start_clicks_and_bounded_shown_memory() -> None:
    users = UserTable(pa.table({"user_id": ["u1"], "city": [3], "district": [10],
                                "lat": [30.0], "lon": [120.0]}))
    profiles = MemoryProfileStore(users, shown_memory=5)
    assert profiles.get("u1").known and profiles.get("u1").city == 3
    cold = profiles.get("stranger")
    assert not cold.known and cold.city == -1
    profiles.record_click("u1", 42, {"line": 2, "category": 7, "district": 10, "brand": -1})
    profiles.record_click("u1", 43, {"line": 2, "category": 8, "district": 10, "brand": -1})
    prof = profiles.get("u1")
    assert prof.top_interest("line") == 2
    assert "brand" not in prof.interests  # -1 means not applicable
    assert prof.clicked_array().tolist() == [42, 43]
    profiles.record_exposures("u1", np.arange(8))
    assert prof.shown_array().tolist() == [3, 4, 5, 6, 7]


def test_profile_state_is_bounded_lru() -> None:
    profiles = MemoryProfileStore(UserTable(pa.table({"user_id": ["a"]})), max_profiles=2)
    profiles.record_click("a", 1, {"line": 0})
    profiles.record_click("b", 2, {"line": 1})
    profiles.get("a")  # a is now the most recent
    profiles.record_click("c", 3, {"line": 2})
    assert sorted(profiles.active_users()) == ["a", "c"]
    assert profiles.get("a").clicked_array().tolist() == [1]
