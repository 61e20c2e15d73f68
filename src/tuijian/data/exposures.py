"""The server-side exposure writer: a list served is logged without waiting on the disk.

Requests hand their exposure rows to a buffer; a background thread appends (and fsyncs) them
to the event log in batches. This keeps fsync off the request path; `flush()` drains the
buffer on demand (shutdown, joins, tests). A request may also hand over work that completes
its rows (a model's prediction to log), run by the same thread just before they are written.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from tuijian.domain import Event

log = logging.getLogger(__name__)


class EventSink(Protocol):
    """Where served exposures go: the event log (embedded) or the event stream (scale-out)."""

    def append(self, events: Sequence[Event]) -> list[bool]: ...


class ExposureWriter:
    def __init__(self, log: EventSink, interval_s: float = 0.2) -> None:
        self.log = log
        self.interval_s = interval_s
        self._buf: list[Event] = []
        self._completions: list[Callable[[], None]] = []
        self.failures = 0
        self._lock = threading.Lock()
        # held through a whole flush: a flush that finds the buffer empty while the writer
        # thread's batch is still being appended must wait for it, or "flushed" would not
        # mean "in the log, listeners run" (a test caught it reading the log mid-append)
        self._flushing = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="exposure-writer", daemon=True)
        self._thread.start()

    def write(self, events: Sequence[Event], complete: Callable[[], None] | None = None
              ) -> None:
        with self._lock:
            self._buf.extend(events)
            if complete is not None:
                self._completions.append(complete)

    def flush(self) -> None:
        """Append what is buffered. On failure the rows go back to the front of the buffer
        (to be retried), the failure is counted, and the error propagates."""
        with self._flushing:
            with self._lock:
                batch, self._buf = self._buf, []
                completions, self._completions = self._completions, []
            for complete in completions:
                try:
                    complete()
                except Exception:  # the rows are logged without what it would have added
                    log.exception("completing exposure rows failed")
            if not batch:
                return
            try:
                self.log.append(batch)
            except BaseException:
                with self._lock:
                    self._buf[:0] = batch
                    self.failures += 1
                raise

    def pending(self) -> int:
        return len(self._buf)

    def close(self) -> None:
        self._stop = True
        self._wake.set()
        self._thread.join(timeout=5)
        self.flush()

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self.interval_s)
            try:
                self.flush()
            except Exception:  # keep the writer alive; the rows stay buffered for a retry
                log.exception("exposure write failed; retrying in %.1fs", self.interval_s)
