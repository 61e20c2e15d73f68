from pathlib import Path

import pytest

from tuijian.data.eventlog import EventLog
from tuijian.domain import Event
from tuijian.jobs.behavior import behavior_matrix
from tuijian.jobs.engine import DuckDBEngine

NOW = 1_800_000_000.0


def test_actions_weigh_by_intent_and_fade_with_age(tmp_path: Path) -> None:
    with EventLog(tmp_path / "ev") as log:
        log.append([
            Event("1", "click", "a", 10, NOW),
            Event("2", "convert", "a", 10, NOW, subtype="call"),
            Event("3", "click", "a", 20, NOW - 30 * 86_400),  # one half-life old
            Event("4", "convert", "b", 20, NOW, subtype="favorite"),
            Event("5", "exposure", "b", 30, NOW),  # exposures are not interactions
            Event("6", "dwell", "b", 20, NOW, dwell_s=30),
        ])
    m = behavior_matrix(DuckDBEngine.over_log(tmp_path / "ev"), NOW)
    assert m.user_ids == ["a", "b"] and m.item_ids.tolist() == [10, 20]
    dense = m.X.toarray()
    assert dense[0, 0] == pytest.approx(1 + 4)  # click + call
    assert dense[0, 1] == pytest.approx(0.5)  # a click, 30 days old
    assert dense[1, 1] == pytest.approx(2.0)  # a favourite
    assert m.X.nnz == 3
