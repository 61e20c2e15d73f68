import json

import pytest
from typer.testing import CliRunner

from tuijian.cli import app
from tuijian.config import load_strategies
from tuijian.rules.evaluate import (
    MODES,
    Marketplace,
    build_marketplace,
    score_dedup,
    score_rules,
)


@pytest.fixture(scope="module")
def market() -> Marketplace:
    return build_marketplace(600, seed=3)


def test_mixed_dedup_finds_what_either_signal_alone_misses(market: Marketplace) -> None:
    spec = load_strategies().rule["ru_default"]
    assert spec.dedup is not None
    got = score_dedup(market, spec.dedup)
    assert set(got) == {"text", "image", "mixed"}
    # every kind of re-post is planted: text alone misses new-text ones, image alone new photos
    assert {MODES[m] for m in market.mode[market.mode >= 0]} == set(MODES)
    assert got["mixed"]["recall"] > max(got["text"]["recall"], got["image"]["recall"])
    assert got["mixed"]["recall"] >= 0.9 and got["mixed"]["precision"] >= 0.9
    assert got["text"]["recall"] < 0.95 and got["image"]["recall"] < 0.95


def test_rule_chain_meets_scatter_on_generated_lists(market: Marketplace) -> None:
    spec = load_strategies().rule["ru_default"]
    out = score_rules(market, spec, lists=20, size=300, n=30)
    assert out["scatter"]["violations"] == 0 and out["removed_per_list"] > 0
    assert out["rules_p99_ms"] > 0


def test_eval_rules_command_prints_the_documented_json() -> None:
    r = CliRunner().invoke(app, ["eval", "rules", "--json", "--items", "200", "--lists", "5",
                                 "--size", "100", "--shown", "20"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    for kind in ("text", "image", "mixed"):
        scores = out["dedup"][kind]
        assert 0 <= scores["precision"] <= 1 and 0 <= scores["recall"] <= 1
    assert out["scatter"]["violations"] == 0 and out["rules_p99_ms"] > 0
    bad = CliRunner().invoke(app, ["eval", "rules", "--rule", "nope"])
    assert bad.exit_code == 2 and "unknown rule id" in bad.output
