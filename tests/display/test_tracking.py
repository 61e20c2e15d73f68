import base64

import pytest

from tuijian.display.tracking import TrackingCodec, TrackingError, TrackingParam

BASE = TrackingParam("e1", "feed", "r1", "k1", "u1", "d1", "user-7", "ios", 1_700_000_000)


def test_roundtrip_list_and_item_params() -> None:
    codec = TrackingCodec("s3cret")
    lst = TrackingParam(*[getattr(BASE, f) for f in (
        "exposure_id", "scene", "recall_id", "rank_id", "rule_id", "display_id", "user_id",
        "platform", "ts")], item_ids=(5, 9))
    assert codec.decode(codec.encode(lst)) == lst
    item = BASE.for_item(9, 1, "hot")
    token = codec.encode(item)
    assert codec.decode(token) == item
    assert all(c.isalnum() or c in "-_." for c in token)  # URL-safe


def test_tampered_forged_and_malformed_params_are_rejected() -> None:
    codec = TrackingCodec("s3cret")
    token = codec.encode(BASE.for_item(9, 1, "hot"))
    version, payload, sig = token.split(".")
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    edited = base64.urlsafe_b64encode(raw.replace(b"9,1", b"8,1")).rstrip(b"=").decode()
    with pytest.raises(TrackingError, match="signature"):
        codec.decode(f"{version}.{edited}.{sig}")
    with pytest.raises(TrackingError, match="signature"):
        TrackingCodec("other").decode(token)
    with pytest.raises(TrackingError, match="missing"):
        codec.decode(None)
    with pytest.raises(TrackingError, match="malformed"):
        codec.decode("garbage")
    with pytest.raises(TrackingError, match="version"):
        codec.decode("v9." + token.split(".", 1)[1])
