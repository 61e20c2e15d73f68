"""Feed sessions: what a user has already been shown in this scrolling session.

A page token names a session; every page excludes what earlier pages showed. Bounded LRU in
memory: a lost session only means a feed may start over, never a wrong answer.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict

import numpy as np

from tuijian.domain import IntArray

MAX_SESSIONS = 100_000
MAX_SEEN = 2_000


class FeedSessions:
    def __init__(self, max_sessions: int = MAX_SESSIONS) -> None:
        self.max_sessions = max_sessions
        self._seen: OrderedDict[str, tuple[str, list[int]]] = OrderedDict()
        self._lock = threading.Lock()

    def open(self, token: str | None, user_id: str) -> tuple[str, IntArray]:
        """The session for `token` (a new one if unknown, expired or another user's), and the
        items it has already shown."""
        with self._lock:
            entry = self._seen.get(token) if token else None
            if token is None or entry is None or entry[0] != user_id:
                token = secrets.token_urlsafe(12)
                entry = (user_id, [])
                self._seen[token] = entry
            self._seen.move_to_end(token)
            while len(self._seen) > self.max_sessions:
                self._seen.popitem(last=False)
            return token, np.array(entry[1], np.int64)

    def add(self, token: str, idx: IntArray) -> None:
        with self._lock:
            entry = self._seen.get(token)
            if entry is not None:
                entry[1].extend(idx.tolist())
                del entry[1][:-MAX_SEEN]
