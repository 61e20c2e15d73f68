"""Store-and-forward for publishes the broker refused: events are never refused for its sake.

When the stream's broker is down, an API replica would otherwise have to answer 503 to every
event post (and lose the exposures it serves). Instead it appends the encoded messages to a
local spool file, fsynced before the client is answered (so `accepted` keeps meaning durable),
and a background loop forwards spooled files in order once the broker answers again, deleting
each only after the broker took all of it. A crash between the publish and the delete forwards
a file twice; the worker drops repeated event ids, as for any redelivery. The spool lives on
the replica's disk: a replica removed for good while the broker is down takes its spool with
it (give it a persistent volume where that matters).

File format: records of a 4-byte little-endian length and the message bytes. A torn last
record (a crash mid-append, never acknowledged) is dropped when the file is read.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tuijian.data.durable import fsync_dir
from tuijian.data.stream import Delivery, EventStream, StreamUnavailable

log = logging.getLogger(__name__)
_LEN = struct.Struct("<I")


class Spool:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._seq = 0

    def append(self, payloads: Sequence[bytes]) -> None:
        """Hold `payloads` durably (one file per call, fsynced with its directory)."""
        with self._lock:
            self._seq += 1
            name = f"{time.time_ns():020d}-{os.getpid()}-{self._seq:06d}.spool"
        tmp = self.dir / f".{name}.tmp"
        with tmp.open("wb") as fh:
            for p in payloads:
                fh.write(_LEN.pack(len(p)))
                fh.write(p)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.rename(self.dir / name)
        fsync_dir(self.dir)

    def pending(self) -> int:
        """Spooled files not yet forwarded."""
        return sum(1 for _ in self.dir.glob("*.spool"))

    def forward(self, publish: Callable[[list[bytes]], object]) -> int:
        """Publish spooled files oldest first, deleting each once published; stops at the
        first failure (raised: the broker is still down). Returns the messages forwarded."""
        sent = 0
        with self._lock:  # one forwarder at a time, so no file goes out twice concurrently
            for path in sorted(self.dir.glob("*.spool")):
                records = _read(path.read_bytes())
                if records:
                    publish(records)
                path.unlink()
                sent += len(records)
        if sent:
            fsync_dir(self.dir)
            log.info("forwarded %d spooled messages to the stream", sent)
        return sent


def _read(raw: bytes) -> list[bytes]:
    out, at = [], 0
    while at + _LEN.size <= len(raw):
        (n,) = _LEN.unpack_from(raw, at)
        if at + _LEN.size + n > len(raw):
            break  # torn by a crash before the fsync: that append was never acknowledged
        out.append(raw[at + _LEN.size:at + _LEN.size + n])
        at += _LEN.size + n
    return out


class SpooledStream:
    """An `EventStream` whose publishes fall back to a `Spool` while the broker is down, so
    `accepted` still means durable; `forward` (a background loop) sends the spool on."""

    def __init__(self, stream: EventStream, spool: Spool,
                 on_spool: Callable[[int], None] = lambda n: None) -> None:
        self.stream, self.spool, self.on_spool = stream, spool, on_spool

    def publish(self, payloads: Sequence[bytes]) -> list[str]:
        try:
            return self.stream.publish(payloads)
        except StreamUnavailable as exc:
            try:
                self.spool.append(payloads)
            except OSError as disk:
                raise StreamUnavailable(f"{exc}; and the spool failed: {disk}") from disk
            self.on_spool(len(payloads))
            return ["spooled"] * len(payloads)

    def forward(self) -> int:
        """Send spooled messages on; 0 while the broker is still down."""
        try:
            return self.spool.forward(self.stream.publish)
        except StreamUnavailable:
            return 0

    def read(self, count: int, block_s: float) -> list[Delivery]:
        return self.stream.read(count, block_s)

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        self.stream.ack(deliveries)

    def trim(self) -> int:
        return self.stream.trim()

    def ping(self) -> None:
        self.stream.ping()

    def close(self) -> None:
        self.stream.close()
