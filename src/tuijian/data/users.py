"""The user feature center: demographic attributes, recent behavior and interest tags.

Static attributes live in a columnar table (users.parquet plus upserts); behavior state is
built from events as they arrive (and rebuilt from the event log by the build job), kept only
for users who have acted. An unknown user id is not an error: it gets an empty profile, which
is what sends it down the cold-start path.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from tuijian.data.columnar import ColumnStore, NumericSpec
from tuijian.domain import IntArray

# Which item columns become interest tags, and how fast old interest fades per new click.
INTEREST_FIELDS: tuple[str, ...] = ("line", "category", "district", "brand", "series",
                                     "price_band")
INTEREST_DECAY = 0.95
# Item fields whose exposures and clicks are counted per user: the user's CTR on a line, a
# category, ... is the ranking signal that separates "shown a lot" from "likes".
TAG_FIELDS: tuple[str, ...] = ("line", "category", "district", "brand", "price_band")
RECENT_CLICKS = 50
# Behavior state is kept for this many users, least recently active evicted first (their
# state comes back from the event log on the next restart or build).
MAX_PROFILES = 500_000


class UserTable(ColumnStore):
    """Static user attributes. Latent simulator preferences in users.parquet are not loaded."""

    key = "user_id"
    required = ("user_id",)
    objects = ("device_id",)
    numeric: NumericSpec = {
        "city": (np.int16, -1),
        "district": (np.int16, -1),
        "lat": (np.float32, np.nan),
        "lon": (np.float32, np.nan),
        "age_band": (np.int8, -1),
        "gender": (np.int8, -1),
        "platform": (np.int8, -1),
    }


@dataclass(slots=True)
class UserProfile:
    """What the pipeline knows about one user at request time."""

    user_id: str
    known: bool = False
    city: int = -1
    district: int = -1
    lat: float | None = None
    lon: float | None = None
    recent_clicks: deque[int] = field(default_factory=lambda: deque(maxlen=RECENT_CLICKS))
    shown: OrderedDict[int, None] = field(default_factory=OrderedDict)
    interests: dict[str, dict[int, float]] = field(default_factory=dict)
    n_shown: int = 0
    n_clicked: int = 0
    shown_tags: dict[str, dict[int, int]] = field(default_factory=dict)
    clicked_tags: dict[str, dict[int, int]] = field(default_factory=dict)

    def top_interest(self, name: str) -> int:
        tags = self.interests.get(name)
        return max(tags, key=tags.__getitem__) if tags else -1

    def shown_array(self) -> IntArray:
        return np.fromiter(self.shown, np.int64, len(self.shown))

    def clicked_array(self) -> IntArray:
        return np.fromiter(self.recent_clicks, np.int64, len(self.recent_clicks))


class StaticUsers(Protocol):
    """Users' static attributes by dense index: the embedded `UserTable` or a replica's copy
    of the shared one."""

    def __len__(self) -> int: ...
    def keys(self) -> list[Any]: ...
    def position(self, key: Any) -> int: ...
    def index_of(self, keys: Iterable[Any]) -> IntArray: ...
    def gather(self, idx: IntArray, columns: Sequence[str]) -> dict[str, npt.NDArray[Any]]: ...
    def upsert(self, table: pa.Table) -> IntArray: ...


class UserProfileStore(Protocol):
    """Profiles by user id, updated by the real-time processors: in memory (embedded) or in
    Redis, shared by every replica (`users_redis.RedisProfileStore`)."""

    @property
    def table(self) -> StaticUsers: ...
    @property
    def shown_memory(self) -> int: ...
    def get(self, user_id: str) -> UserProfile: ...
    def peek(self, user_id: str) -> UserProfile: ...
    def record_exposures(self, user_id: str, idx: IntArray) -> None: ...
    def record_click(self, user_id: str, idx: int, tags: dict[str, int]) -> None: ...
    def count_exposures(self, user_id: str, tags: dict[str, IntArray]) -> None: ...
    def upsert(self, table: pa.Table) -> IntArray: ...
    def active_users(self) -> list[str]: ...
    def clear_behavior(self) -> None: ...


class MemoryProfileStore:
    """The embedded profile store: static columns plus per-user state in memory."""

    def __init__(self, table: UserTable, shown_memory: int = 300,
                 max_profiles: int = MAX_PROFILES) -> None:
        self.table = table
        self.shown_memory = shown_memory
        self.max_profiles = max_profiles
        self._state: OrderedDict[str, UserProfile] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, user_id: str) -> UserProfile:
        with self._lock:
            prof = self._state.get(user_id)
            if prof is not None:
                self._state.move_to_end(user_id)
                return prof
        prof = self._fresh(user_id)
        with self._lock:
            prof = self._state.setdefault(user_id, prof)
            while len(self._state) > self.max_profiles:
                self._state.popitem(last=False)
        return prof

    def peek(self, user_id: str) -> UserProfile:
        """The profile without creating state for a user who has none (for read-only APIs)."""
        return self._state.get(user_id) or self._fresh(user_id)

    def record_exposures(self, user_id: str, idx: IntArray) -> None:
        if self.shown_memory == 0:
            return
        shown = self.get(user_id).shown
        for i in idx.tolist():
            shown[i] = None
            shown.move_to_end(i)
        while len(shown) > self.shown_memory:
            shown.popitem(last=False)

    def count_exposures(self, user_id: str, tags: dict[str, IntArray]) -> None:
        """Count shown items per tag value (`tags`: TAG_FIELDS → the items' values)."""
        prof = self.get(user_id)
        for name in TAG_FIELDS:
            bucket = prof.shown_tags.setdefault(name, {})
            for v in tags[name].tolist():  # a page of items: cheaper than np.unique
                bucket[v] = bucket.get(v, 0) + 1
        prof.n_shown += len(tags[TAG_FIELDS[0]])

    def record_click(self, user_id: str, idx: int, tags: dict[str, int]) -> None:
        prof = self.get(user_id)
        prof.recent_clicks.append(idx)
        prof.n_clicked += 1
        for name in TAG_FIELDS:
            if name in tags:
                counts = prof.clicked_tags.setdefault(name, {})
                counts[tags[name]] = counts.get(tags[name], 0) + 1
        for name, value in tags.items():
            if value < 0:
                continue
            bucket = prof.interests.setdefault(name, {})
            for k in bucket:
                bucket[k] *= INTEREST_DECAY
            bucket[value] = bucket.get(value, 0.0) + 1.0

    def upsert(self, table: pa.Table) -> IntArray:
        idx = self.table.upsert(table)
        with self._lock:
            for uid in table.column("user_id").to_pylist():
                old = self._state.pop(uid, None)
                if old is not None:
                    new = self._fresh(uid)
                    for name in ("recent_clicks", "shown", "interests", "n_shown",
                                 "n_clicked", "shown_tags", "clicked_tags"):
                        setattr(new, name, getattr(old, name))
                    self._state[uid] = new
        return idx

    def active_users(self) -> list[str]:
        return list(self._state)

    def clear_behavior(self) -> None:
        with self._lock:
            self._state.clear()

    def _fresh(self, user_id: str) -> UserProfile:
        return static_profile(self.table, user_id)


def static_profile(table: StaticUsers, user_id: str) -> UserProfile:
    """A profile with the user's static attributes and no behavior yet."""
    pos = table.position(user_id)
    if pos < 0:
        return UserProfile(user_id=user_id)
    row: dict[str, Any] = table.gather(np.array([pos]), ("city", "district", "lat", "lon"))
    lat, lon = float(row["lat"][0]), float(row["lon"][0])
    return UserProfile(
        user_id=user_id,
        known=True,
        city=int(row["city"][0]),
        district=int(row["district"][0]),
        lat=None if np.isnan(lat) else lat,
        lon=None if np.isnan(lon) else lon,
    )
