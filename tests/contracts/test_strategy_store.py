"""The StrategyStore contract, on SQLite and on a real PostgreSQL database: seeding, versioned
changes, refusals that write nothing, audit rows, revisions, and concurrent writers."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tuijian.config import ConfigError, StrategyFile, load_strategies
from tuijian.strategies.store import (
    Bodies,
    SqlStrategyStore,
    StrategyConflict,
    bodies_of,
)

from ..conftest import concurrently


@pytest.fixture(scope="module")
def strategies() -> StrategyFile:
    return load_strategies()


@pytest.fixture
def store(metadata_url: str, strategies: StrategyFile) -> Iterator[SqlStrategyStore]:
    s = SqlStrategyStore(metadata_url)
    assert s.seed(strategies, "seed")
    yield s
    s.close()


def test_seed_once_then_load_what_the_file_says(metadata_url: str, store: SqlStrategyStore,
                                                strategies: StrategyFile) -> None:
    rev, loaded = store.load()
    assert rev == 1 and loaded == strategies
    rev, entries = store.entries()
    assert set(entries) == set(bodies_of(strategies))
    assert {e.version for e in entries.values()} == {1}
    assert ("settings", "filters") in entries and ("scenes", "feed") in entries
    # a second starter (another replica) seeds nothing: the store is the truth
    other = SqlStrategyStore(metadata_url)
    changed = strategies.model_copy(update={"push": strategies.push.model_copy(
        update={"threshold": 0.5})})
    assert not other.seed(changed, "seed")
    assert other.load() == (1, strategies)
    other.close()


def test_change_is_versioned_audited_and_bumps_the_revision(store: SqlStrategyStore) -> None:
    body = store.entries()[1][("recall", "r_push")].body
    entry = store.put("recall", "r_push", {**body, "size": 150}, "admin:ann")
    assert (entry.version, entry.body["size"], entry.actor) == (2, 150, "admin:ann")
    assert store.revision() == 2
    assert store.load()[1].recall["r_push"].size == 150  # type: ignore[union-attr]
    [last, first] = store.audit("recall", "r_push")
    assert (last.version, last.actor, last.action) == (2, "admin:ann", "put")
    assert last.before is not None and last.after is not None
    assert (last.before["size"], last.after["size"]) == (200, 150)
    assert (first.action, first.before) == ("seed", None)
    # resubmitting the same body (defaults spelled out or not) is no change
    store.put("recall", "r_push", {**body, "size": 150}, "admin:ann")
    assert store.revision() == 2 and len(store.audit("recall", "r_push")) == 2


def test_a_new_id_and_a_scene_pointing_at_it(store: SqlStrategyStore) -> None:
    store.put("display", "d_two", {"style": "text", "fields": ["title"]}, "cli")
    store.put("scenes", "push", {"recall": "r_push", "rank": "rk_rule", "rule": "ru_push",
                                 "display": "d_two"}, "cli")
    loaded = store.load()[1]
    assert loaded is not None and loaded.scenes["push"].display == "d_two"  # type: ignore[index]
    assert store.revision() == 3


@pytest.mark.parametrize(("stage", "sid", "body", "field"), [
    # a scene naming a missing id: the reference is checked across sections
    ("scenes", "feed", {"recall": "r_nope", "rank": "rk_rule", "rule": "ru_default",
                        "display": "d_card"}, "scenes.feed.recall"),
    ("recall", "r_push", {"size": 300, "sources": [{"name": "hot", "k": 100}]},
     "recall.r_push"),  # the sources could never fill 300
    ("recall", "r_push", {"sources": [{"name": "nope", "k": 400}]},
     "recall.r_push.sources.0.name"),
    ("rank", "rk_rule", {"ranker": "nope"}, "rank.rk_rule.ranker"),
    ("display", "d_card", {"fields": ["title", "nope"]}, "display.d_card.fields"),
    ("display", "d_card", {"style": "card", "colour": "red"}, "display.d_card.colour"),
    ("settings", "filters", {"shown_memory": -1}, "filters.shown_memory"),
    ("settings", "other", {}, "id"),
    ("stages", "x", {}, "stage"),
])
def test_invalid_change_is_refused_naming_the_field_and_writes_nothing(
        store: SqlStrategyStore, stage: str, sid: str, body: dict, field: str) -> None:
    before = store.entries()
    with pytest.raises(ConfigError) as err:
        store.put(stage, sid, body, "cli")
    assert err.value.field == field, str(err.value)
    assert store.entries() == before and len(store.audit()) == len(before[1])


def test_a_refusal_from_the_caller_writes_nothing(store: SqlStrategyStore) -> None:
    def refuse(s: StrategyFile) -> None:
        raise ConfigError("experiments: no", "experiments")

    body = store.entries()[1][("display", "d_text")].body
    with pytest.raises(ConfigError):
        store.put("display", "d_text", {**body, "fields": ["title"]}, "cli", refuse)
    assert store.entries()[1][("display", "d_text")].body == body and store.revision() == 1


def test_expected_version_guards_a_stale_write(store: SqlStrategyStore) -> None:
    body = store.entries()[1][("rank", "rk_rule")].body
    store.put("rank", "rk_rule", {**body, "params": {"freshness_half_life_h": 24}}, "a", None, 1)
    with pytest.raises(StrategyConflict, match="version 2, not 1"):
        store.put("rank", "rk_rule", {**body, "params": {"freshness_half_life_h": 12}}, "b",
                  None, 1)
    with pytest.raises(StrategyConflict):
        store.put("rank", "rk_new", body, "b", None, 1)  # 0 would mean "a new id"
    assert store.entries()[1][("rank", "rk_rule")].body["params"] == {
        "freshness_half_life_h": 24}


def test_concurrent_changes_from_two_connections_lose_no_update(
        metadata_url: str, store: SqlStrategyStore) -> None:
    """Read-modify-write in two processes' connections at once: each change runs in one
    transaction that holds the write lock, so all of them land."""
    rounds = 8
    start = store.entries()[1][("recall", "r_default")].body["size"]

    def grow(bodies: Bodies) -> str:
        bodies[("recall", "r_default")]["size"] += 1
        return "grow"

    def writer() -> None:
        own = SqlStrategyStore(metadata_url)
        try:
            for _ in range(rounds):
                own.change(grow, "writer")
        finally:
            own.close()

    concurrently(writer)
    entry = store.entries()[1][("recall", "r_default")]
    assert entry.body["size"] == start + 2 * rounds
    assert entry.version == 1 + 2 * rounds and store.revision() == 1 + 2 * rounds
    sizes = [a.after["size"] for a in store.audit("recall", "r_default") if a.after]
    assert sorted(sizes[:-1]) == list(range(start + 1, start + 2 * rounds + 1))


def test_one_of_two_racing_guarded_writes_wins(metadata_url: str,
                                               store: SqlStrategyStore) -> None:
    body = store.entries()[1][("rule", "ru_push")].body
    results: list[str] = []
    barrier = threading.Barrier(2)

    def writer(window: int) -> None:
        own = SqlStrategyStore(metadata_url)
        scatter = [{"field": "category", "k": 1, "window": window}]
        barrier.wait()
        try:
            own.put("rule", "ru_push", {**body, "scatter": scatter}, f"w{window}", None, 1)
            results.append("ok")
        except StrategyConflict:
            results.append("conflict")
        finally:
            own.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in (4, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["conflict", "ok"]
    assert store.entries()[1][("rule", "ru_push")].version == 2 and store.revision() == 2


def test_rollback_to_an_earlier_version_from_the_audit(store: SqlStrategyStore) -> None:
    """Every version's body is in the audit log: restoring one is one more change."""
    body = store.entries()[1][("display", "d_big")].body
    store.put("display", "d_big", {**body, "fields": ["title"]}, "a")
    store.put("display", "d_big", {**body, "fields": ["title", "price"]}, "a")
    v1 = next(a.after for a in store.audit("display", "d_big") if a.version == 1)
    assert v1 is not None
    entry = store.put("display", "d_big", v1, "rollback")
    assert entry.version == 4 and entry.body == body
