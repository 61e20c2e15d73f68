"""Perceptual hashes of listing photos, and synthetic photos with planted re-posts to test them.

Re-posted listings rarely reuse the exact file: the publisher re-uploads a photo that has been
re-compressed, rescaled, cropped a little or watermarked, so byte hashes miss them. A 64-bit
pHash survives all of that. It is computed once per image at ingest, from the uploaded bytes,
and stored in an int64 column, so near-duplicate checks at request time are XOR + popcount.

The renderer exists so the marketplace generator can plant near-duplicates as real image bytes:
dedup quality is then measured through real decoding and hashing, not through simulated hashes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import imagehash
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageChops, ImageDraw, ImageEnhance, ImageFont, ImageOps

MAX_BYTES = 10 * 1024 * 1024
# Checked on the header size before decoding: covers 48/50 MP phone photos, and is below
# Pillow's own warning level, so hostile dimensions are refused before any pixel is allocated.
MAX_PIXELS = 50_000_000
# Suggested default near-duplicate threshold (distance <= this): on repost_copy ~97% of
# re-posts fall within it, while distinct photos start at 12-14 bits (p1 22, median 32). The
# small crops cause the misses. pHash sets 32 of 64 bits (median split, barring ties), so distances
# are even: 11 would behave exactly like 10.
REPOST_HAMMING = 10

_HASH_SIZE = 8
_DRAFT = (64, 64)  # JPEGs decode at 1/2..1/8 scale; pHash only looks at 32x32 anyway


class ImageError(ValueError):
    """The uploaded bytes cannot be hashed; the message says what is wrong with them."""


def image_hash(data: bytes) -> int:
    """The signed int64 pHash of an encoded image (two's complement, for int64 columns)."""
    if not data:
        raise ImageError("empty image")
    if len(data) > MAX_BYTES:
        raise ImageError(f"image is {len(data)} bytes, more than the {MAX_BYTES} allowed")
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise ImageError(f"image is {w}x{h} pixels, more than {MAX_PIXELS} allowed")
            im.draft("L", _DRAFT)
            # Phones store rotation in EXIF; a re-upload often has it applied to the pixels.
            bits = imagehash.phash(ImageOps.exif_transpose(im), hash_size=_HASH_SIZE).hash
    except ImageError:
        raise
    except Image.DecompressionBombError as e:
        raise ImageError(f"image has too many pixels: {e}") from e
    except Image.UnidentifiedImageError as e:
        raise ImageError("not a decodable image (unknown or corrupt format)") from e
    except Exception as e:  # decoders of untrusted bytes raise OSError, SyntaxError, struct.error…
        raise ImageError(f"not a decodable image: {type(e).__name__}: {e}") from e
    return int.from_bytes(np.packbits(bits.ravel()).tobytes(), "big", signed=True)


def image_hashes(images: Sequence[bytes]) -> npt.NDArray[np.int64]:
    """Hashes for a batch; raises ImageError on the first bad image, naming its position."""
    out = np.empty(len(images), dtype=np.int64)
    for i, data in enumerate(images):
        try:
            out[i] = image_hash(data)
        except ImageError as e:
            raise ImageError(f"image {i}: {e}") from e
    return out


def hamming(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """Bits that differ between int64 hashes (broadcasts), the near-duplicate distance."""
    x = np.asarray(a, dtype=np.int64).view(np.uint64)
    y = np.asarray(b, dtype=np.int64).view(np.uint64)
    return np.bitwise_count(x ^ y)


def render_photo(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A distinct "listing photo" per seed: a room-like backdrop, a few objects, sensor noise.

    Large shapes of varied brightness make the low frequencies, which pHash reads, differ
    between seeds; the noise gives JPEG something realistic to lose on re-encoding.
    """
    rng = np.random.default_rng(seed)
    w, h = size
    # Backdrop: wall over floor at a random horizon, each a gradient in a random direction.
    # Gradients are built as 8-bit ramps and coloured by Pillow's LUT: per-pixel float RGB
    # maths in numpy would cost more than everything else together.
    horizon = int(rng.uniform(0.35, 0.8) * h)
    colours = [tuple(int(c) for c in rgb) for rgb in rng.integers(20, 236, (4, 3))]
    photo = Image.new("RGB", size)
    for part, (y0, y1) in enumerate(((0, horizon), (horizon, h))):
        a = rng.uniform(0, 2 * np.pi)
        ramp = (np.arange(w, dtype=np.float32) * (np.cos(a) / w)
                + np.arange(y1 - y0, dtype=np.float32)[:, None] * (np.sin(a) / h))
        ramp = (ramp - ramp.min()) * (255 / (np.ptp(ramp) + 1e-6))
        grey = Image.fromarray(ramp.astype(np.uint8), "L")
        photo.paste(ImageOps.colorize(grey, colours[2 * part], colours[2 * part + 1]), (0, y0))
    draw = ImageDraw.Draw(photo)
    for _ in range(int(rng.integers(4, 9))):
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        rx, ry = rng.uniform(0.06, 0.3) * w, rng.uniform(0.06, 0.3) * h
        box = (cx - rx, cy - ry, cx + rx, cy + ry)
        kind = rng.integers(3)
        if kind == 0:
            draw.rectangle(box, fill=fill)
        elif kind == 1:
            draw.ellipse(box, fill=fill)
        else:
            k = int(rng.integers(3, 7))
            phi = np.sort(rng.uniform(0, 2 * np.pi, k))
            r = rng.uniform(0.5, 1.0, k)
            pts = np.stack([cx + rx * r * np.cos(phi), cy + ry * r * np.sin(phi)], axis=1)
            draw.polygon([(float(x), float(y)) for x, y in pts], fill=fill)
    # Luminance noise, shared by the three channels: cheap and camera-like enough.
    noise = Image.fromarray(rng.integers(0, 25, (h, w), dtype=np.uint8), "L").convert("RGB")
    return ImageChops.add(photo, noise, 1.0, -12)


def encode_jpeg(img: Image.Image, quality: int = 90) -> bytes:
    """JPEG bytes, the format nearly every listing photo arrives in."""
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def repost_copy(img: Image.Image, rng: np.random.Generator) -> bytes:
    """The photo as a re-posting publisher uploads it again: edited, re-encoded, as JPEG bytes.

    Every edit is one that byte hashes and exact-match dedup miss but a perceptual hash must
    tolerate; the ranges bound what REPOST_HAMMING has to absorb.
    """
    w, h = img.size
    left, top, right, bottom = rng.uniform(0, 0.04, 4) * (w, h, w, h)
    out = img.crop((round(left), round(top), round(w - right), round(h - bottom)))
    scale = rng.uniform(0.75, 1.3)
    out = out.resize((max(1, round(out.width * scale)), max(1, round(out.height * scale))),
                     Image.Resampling.BILINEAR)
    out = ImageEnhance.Brightness(out).enhance(rng.uniform(0.88, 1.12))
    out = ImageEnhance.Contrast(out).enhance(rng.uniform(0.88, 1.12))
    if rng.random() < 0.3:
        draw = ImageDraw.Draw(out)
        font = ImageFont.load_default(size=max(10, out.height // 16))
        text = f"@shop{int(rng.integers(100, 1000))}"
        x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
        pad = 4
        x = pad if rng.random() < 0.5 else out.width - (x1 - x0) - pad
        y = pad if rng.random() < 0.5 else out.height - (y1 - y0) - pad
        draw.text((x - x0, y - y0), text, font=font, fill=(255, 255, 255))
    return encode_jpeg(out, quality=int(rng.integers(50, 96)))
