"""Tracking params: signed, versioned, URL-safe strings that tie every event to its list.

Every list gets a list param and every item an item param. Clients pass them back untouched on
each event, so the event log can be joined to exposures without trusting client-side fields.
Format: ``v1.<base64url(json payload)>.<base64url(hmac-sha256(payload)[:12])>``. The HMAC
(stdlib `hmac`) means a forged or edited param fails verification and is quarantined.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

import orjson

VERSION = "v1"
_SIG_BYTES = 12


class TrackingError(ValueError):
    """Why a tracking param cannot be trusted: a fixed `code` (metrics label) and a message
    (the quarantine reason)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(slots=True, frozen=True)
class TrackingParam:
    exposure_id: str
    scene: str
    recall_id: str
    rank_id: str
    rule_id: str
    display_id: str
    user_id: str
    platform: str
    ts: int
    item_id: int | None = None  # item params only
    position: int | None = None
    source: str | None = None
    item_ids: tuple[int, ...] = ()  # list params only
    sources: int = 0  # item params: a bit per recall source code that found the item
    creative: str | None = None  # item params: the image shown, so effect data can compare
    # the experiment and variant of every layer the request was in (`ID:variant[!]`)
    experiments: tuple[str, ...] = ()
    slot: str | None = None  # the client placement (None: the scene)

    def for_item(self, item_id: int, position: int, source: str, sources: int = 0,
                 creative: str | None = None) -> TrackingParam:
        return TrackingParam(
            self.exposure_id, self.scene, self.recall_id, self.rank_id, self.rule_id,
            self.display_id, self.user_id, self.platform, self.ts, item_id, position, source,
            (), sources, creative, self.experiments, self.slot,
        )


class TrackingCodec:
    def __init__(self, secret: str) -> None:
        self._key = secret.encode()

    def encode(self, p: TrackingParam) -> str:
        payload = orjson.dumps([
            p.exposure_id, p.scene, p.recall_id, p.rank_id, p.rule_id, p.display_id,
            p.user_id, p.platform, p.ts, p.item_id, p.position, p.source, list(p.item_ids),
            p.sources, p.creative, list(p.experiments), p.slot,
        ])
        return f"{VERSION}.{_b64(payload)}.{_b64(self._sign(payload))}"

    def decode(self, token: str | None) -> TrackingParam:
        """The verified param, or TrackingError naming what is wrong with it."""
        if not token:
            raise TrackingError("tracking_missing", "tracking: missing")
        parts = token.split(".")
        if len(parts) != 3:
            raise TrackingError("tracking_malformed",
                                "tracking: malformed (expected 3 dot-separated parts)")
        if parts[0] != VERSION:
            raise TrackingError("tracking_version",
                                f"tracking: unsupported version {parts[0][:8]!r}")
        try:
            payload, sig = _unb64(parts[1]), _unb64(parts[2])
        except (binascii.Error, ValueError):
            raise TrackingError("tracking_malformed", "tracking: malformed (bad base64)") from None
        if not hmac.compare_digest(sig, self._sign(payload)):
            raise TrackingError("tracking_signature", "tracking: bad signature (forged or altered)")
        try:
            f = orjson.loads(payload)
            return TrackingParam(
                str(f[0]), str(f[1]), str(f[2]), str(f[3]), str(f[4]), str(f[5]), str(f[6]),
                str(f[7]), int(f[8]), f[9], f[10], f[11], tuple(int(i) for i in f[12]),
                int(f[13]) if len(f) > 13 else 0,
                str(f[14]) if len(f) > 14 and f[14] is not None else None,
                tuple(str(t) for t in f[15]) if len(f) > 15 else (),
                str(f[16]) if len(f) > 16 and f[16] is not None else None,
            )
        except (orjson.JSONDecodeError, IndexError, TypeError, ValueError):
            raise TrackingError("tracking_malformed", "tracking: malformed payload") from None

    def _sign(self, payload: bytes) -> bytes:
        return hmac.digest(self._key, payload, hashlib.sha256)[:_SIG_BYTES]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
