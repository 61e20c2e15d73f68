"""The rank models a serving process is using, hot-swapped as the registry's CURRENT moves.

Requests read an immutable dict through one attribute (`get`: no lock, no I/O). A background
thread calls `poll`, which loads and warms a new version completely (DeployedModel.load
validates files, layout and a warm-up prediction) and only then replaces the dict, so a
request sees the old model or the new one, never a partly loaded one, and never waits. A
version that fails to load is marked REJECTED in the registry, counted in
`tuijian_model_load_failures_total{model, reason}`, and not tried again; the old one serves.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tuijian.rank.deployed import FEATURES, MANIFEST, DeployedModel
from tuijian.rank.model_registry import ModelStore, RegistryError
from tuijian.rank.models.base import ModelFileError

if TYPE_CHECKING:
    from tuijian.serving.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Loaded:
    version: str
    model: DeployedModel
    loaded_at: float


def failure_reason(exc: BaseException) -> str:
    """A short, bounded class of load failure for the metric label (the full message goes to
    the registry's REJECTED marker and the log)."""
    if not isinstance(exc, ModelFileError):
        return "io" if isinstance(exc, OSError) else "error"
    msg = str(exc)
    if "unreadable" in msg:
        return "corrupt"
    if msg.endswith(": missing"):
        return "missing_file"
    if "layout differs" in msg or "no tensor" in msg or " has shape " in msg:
        return "incompatible"
    if msg.startswith("warm-up"):
        return "warmup"
    if msg.startswith(MANIFEST):
        return "manifest"
    if msg.startswith(FEATURES):
        return "features"
    return "invalid"


class LiveModels:
    def __init__(self, store: ModelStore, metrics: Metrics | None = None) -> None:
        self.store = store
        self.metrics = metrics
        self._live: dict[str, Loaded] = {}  # replaced, never mutated: readers need no lock
        self._failed: set[tuple[str, str]] = set()
        self._poll_lock = threading.Lock()  # one loader at a time; readers never take it

    def get(self, name: str) -> DeployedModel | None:
        """The model serving under `name`, or None if none has loaded. Called per request."""
        loaded = self._live.get(name)
        return loaded.model if loaded is not None else None

    def version(self, name: str) -> str | None:
        loaded = self._live.get(name)
        return loaded.version if loaded is not None else None

    def poll(self) -> list[str]:
        """Load every model whose CURRENT version differs from the one serving; returns the
        names swapped. Runs in the caller's thread (the service's background loop)."""
        with self._poll_lock:
            swapped = []
            for name in self.store.names():
                try:
                    if self._poll_one(name):
                        swapped.append(name)
                except Exception:  # a registry read failing must not stop the other models
                    log.exception("polling rank model %s failed; keeping what serves", name)
            return swapped

    def _poll_one(self, name: str) -> bool:
        current = self.store.current(name)
        if current is None:
            return False
        loaded = self._live.get(name)
        if loaded is not None and loaded.version == current:
            return False
        candidates = [current]
        if loaded is None:
            # nothing serves yet (a restart after a bad deploy): fall back to the version the
            # last loader swapped in, which passed the same checks
            last_good = self.store.serving(name)
            if last_good is not None and last_good != current:
                candidates.append(last_good)
        return any(self._try(name, version) for version in candidates)

    def _try(self, name: str, version: str) -> bool:
        if (name, version) in self._failed:
            return False
        reason = self.store.rejection(name, version)
        if reason is not None:  # rejected by another process, or before a restart
            self._failed.add((name, version))
            log.warning("rank model %s %s was rejected earlier (%s); not loading it", name,
                        version, reason)
            return False
        try:
            model = DeployedModel.load(self.store.path(name, version))
        except Exception as exc:
            self._reject(name, version, exc)
            return False
        self._swap(name, Loaded(version, model, time.time()))
        return True

    def _swap(self, name: str, new: Loaded) -> None:
        old = self._live.get(name)
        self._live = {**self._live, name: new}  # one reference assignment: atomic for readers
        log.info("rank model %s: serving %s (was %s)", name, new.version,
                 old.version if old else "none")
        try:
            self.store.mark_serving(name, new.version)
        except Exception:  # a registry hiccup must not undo the swap
            log.warning("could not record that %s %s serves", name, new.version, exc_info=True)
        if self.metrics is not None:
            if old is not None:
                with contextlib.suppress(KeyError):
                    self.metrics.model_version_info.remove(name, old.version)
            self.metrics.model_version_info.labels(name, new.version).set(1)
            self.metrics.model_loaded_timestamp.labels(name).set(new.loaded_at)

    def _reject(self, name: str, version: str, exc: Exception) -> None:
        reason = str(exc) if isinstance(exc, ModelFileError) else f"{type(exc).__name__}: {exc}"
        self._failed.add((name, version))
        serving = self.version(name)
        log.error("rank model %s %s rejected: %s; %s", name, version, reason,
                  f"{serving} keeps serving" if serving else "no version serves")
        try:
            self.store.reject(name, version, reason)
        except (OSError, RegistryError):  # e.g. the version was pruned while loading
            log.warning("could not mark %s %s rejected", name, version, exc_info=True)
        if self.metrics is not None:
            self.metrics.model_load_failures.labels(name, failure_reason(exc)).inc()
