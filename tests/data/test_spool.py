"""The event spool: what the broker refused is held durably and forwarded in order, a torn
append is dropped, and a failed forward keeps everything for the next try."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuijian.data.spool import Spool
from tuijian.data.stream import StreamUnavailable


def test_forwards_in_order_and_only_deletes_what_was_taken(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append([b"a", b"bb"])
    spool.append([b""])  # an empty message is a message
    spool.append([b"c" * 70_000])
    sent: list[list[bytes]] = []

    def refuse(batch: list[bytes]) -> None:
        if len(sent) == 1:
            raise StreamUnavailable("down again")
        sent.append(batch)

    with pytest.raises(StreamUnavailable):
        spool.forward(refuse)
    assert sent == [[b"a", b"bb"]] and spool.pending() == 2  # the failed file is kept
    assert spool.forward(sent.append) == 2
    assert sent[1:] == [[b""], [b"c" * 70_000]] and spool.pending() == 0


def test_a_torn_last_record_is_dropped_not_misread(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append([b"whole", b"torn-off"])
    (path,) = tmp_path.glob("*.spool")
    path.write_bytes(path.read_bytes()[:-3])  # a crash mid-append (never acknowledged)
    got: list[list[bytes]] = []
    assert spool.forward(got.append) == 1 and got == [[b"whole"]]
