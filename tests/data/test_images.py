"""Perceptual hashing through real Pillow decoding: robustness to re-posts, separation between
different photos, and refusal of bytes that are not a safe image."""

from __future__ import annotations

import io
import struct
import zlib

import imagehash
import numpy as np
import pytest
from PIL import Image

from tuijian.data.images import (
    MAX_PIXELS,
    REPOST_HAMMING,
    ImageError,
    encode_jpeg,
    hamming,
    image_hash,
    image_hashes,
    render_photo,
    repost_copy,
)

SEEDS = range(200)


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    return [render_photo(s) for s in SEEDS]


@pytest.fixture(scope="module")
def original_hashes(photos: list[Image.Image]) -> np.ndarray:
    return image_hashes([encode_jpeg(p) for p in photos])


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _bilevel_png(width: int, height: int) -> bytes:
    """A valid all-black 1-bit PNG: a few hundred KB that would decode to width*height pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    z = zlib.compressobj(9)
    rows = bytes(1 + (width + 7) // 8) * 1000  # filter byte + packed bits, per row
    idat = b"".join(z.compress(rows) for _ in range(height // 1000)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


def test_jpeg_and_png_of_the_same_photo_hash_alike(photos: list[Image.Image]) -> None:
    for img in photos[:20]:
        assert hamming(image_hash(encode_jpeg(img, quality=75)), image_hash(_png(img))) <= 4


def test_webp_decodes_too(photos: list[Image.Image]) -> None:
    buf = io.BytesIO()
    photos[0].save(buf, "WEBP", quality=80)
    assert hamming(image_hash(buf.getvalue()), image_hash(_png(photos[0]))) <= 4


def test_reposts_are_near_and_different_photos_far(
    photos: list[Image.Image], original_hashes: np.ndarray
) -> None:
    rng = np.random.default_rng(2024)
    reposts = image_hashes([repost_copy(p, rng) for p in photos])
    near = hamming(original_hashes, reposts)
    assert np.mean(near <= REPOST_HAMMING) >= 0.95, np.sort(near)[-20:]

    pairs = np.triu_indices(len(photos), 1)
    apart = hamming(original_hashes[:, None], original_hashes[None, :])[pairs]
    assert np.mean(apart > REPOST_HAMMING) >= 0.99, np.sort(apart)[:20]
    assert np.median(apart) >= 25


def test_rendering_and_hashing_are_deterministic() -> None:
    a, b = render_photo(7), render_photo(7)
    assert a.tobytes() == b.tobytes()
    assert render_photo(7, (160, 120)).size == (160, 120)
    assert image_hash(encode_jpeg(a)) == image_hash(encode_jpeg(b))


def test_hashes_are_signed_int64_in_imagehash_bit_order(original_hashes: np.ndarray) -> None:
    assert original_hashes.dtype == np.int64
    img = render_photo(3)
    h = image_hash(_png(img))
    assert isinstance(h, int)
    assert -(2**63) <= h < 2**63
    # the same 64 bits imagehash prints (MSB first), read as two's complement
    unsigned = int(str(imagehash.phash(img)), 16)
    assert h == unsigned - (1 << 64 if unsigned >= 1 << 63 else 0)
    assert h < 0  # the DC coefficient (first bit) is always above the median
    assert image_hashes([]).dtype == np.int64


def test_hamming_counts_bits_of_signed_hashes() -> None:
    a = np.array([0, -1, -(2**63), 0x0F0F], dtype=np.int64)
    b = np.array([-1, -1, 2**63 - 1, 0x00FF], dtype=np.int64)
    assert hamming(a, b).tolist() == [64, 0, 64, 8]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (np.random.default_rng(0).bytes(5000), "not a decodable image"),
        (b"\xff\xd8\xff\xe0" + bytes(100), "not a decodable image"),
    ],
    ids=["empty", "garbage", "jpeg-magic-then-zeros"],
)
def test_bad_bytes_raise_image_error(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        image_hash(data)


def test_truncated_jpeg_raises_image_error(photos: list[Image.Image]) -> None:
    data = encode_jpeg(photos[0])
    with pytest.raises(ImageError, match="truncated"):
        image_hash(data[: len(data) // 2])


def test_oversized_input_is_refused_before_decoding() -> None:
    with pytest.raises(ImageError, match="more than"):
        image_hash(bytes(10 * 1024 * 1024 + 1))


def test_decompression_bomb_raises_image_error() -> None:
    bomb = _bilevel_png(30_000, 30_000)
    assert len(bomb) < 1_000_000
    with pytest.raises(ImageError, match="too many pixels"):
        image_hash(bomb)


def test_pixel_limit_is_ours_not_only_pillows(monkeypatch: pytest.MonkeyPatch) -> None:
    # Even with Pillow's guard switched off, the header size is checked before decoding.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    side = int(MAX_PIXELS**0.5) + 1000
    with pytest.raises(ImageError, match="pixels, more than"):
        image_hash(_bilevel_png(side, side))


def test_batch_error_names_the_position(photos: list[Image.Image]) -> None:
    with pytest.raises(ImageError, match="image 1: empty"):
        image_hashes([encode_jpeg(photos[0]), b""])
