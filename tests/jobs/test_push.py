import calendar
import json

import orjson

from tuijian.jobs.push import in_quiet_hours, run_push
from tuijian.serving.service import Service

# 12:00 in UTC+8 on a fixed day: outside quiet hours
NOON = calendar.timegm((2026, 5, 4, 4, 0, 0))
MIDNIGHT = calendar.timegm((2026, 5, 4, 16, 0, 0))


def test_quiet_hours_wrap_midnight(service: Service) -> None:
    spec = service.strategies.push
    assert not in_quiet_hours(NOON, spec)
    assert in_quiet_hours(MIDNIGHT, spec)
    assert in_quiet_hours(calendar.timegm((2026, 5, 4, 23, 30, 0)), spec)  # 07:30 local


def test_push_sends_above_threshold_capped_per_day(service: Service) -> None:
    service.strategies.push.threshold = 0.0
    service.strategies.push.max_per_user_per_day = 2
    users = ["u1", "u2", "u3"]
    for _ in range(3):
        summary = run_push(service, users, now=NOON)
    assert summary["capped"] == 3 and summary["sent"] == 0
    notes = [orjson.loads(x) for x in (service.settings.data_dir / "push" /
                                       "notifications.jsonl").read_bytes().splitlines()]
    assert len(notes) == 6
    assert {n["user_id"] for n in notes} == set(users)
    assert all(service.codec.decode(n["tracking"]).item_id == n["item_id"] for n in notes)
    state = json.loads((service.settings.data_dir / "push" / "state.json").read_text())
    assert list(state.values()) == [{"u1": 2, "u2": 2, "u3": 2}]
    # the next local day starts a fresh cap
    assert run_push(service, users, now=NOON + 86400)["sent"] == 3


def test_push_respects_threshold_and_quiet_hours(service: Service) -> None:
    service.strategies.push.threshold = 10.0  # no score reaches it
    assert run_push(service, ["u1", "u2"], now=NOON)["below_threshold"] == 2
    service.strategies.push.threshold = 0.0
    quiet = run_push(service, ["u1", "u2"], now=MIDNIGHT)
    assert quiet["quiet_hours"] == 2 and quiet["sent"] == 0
