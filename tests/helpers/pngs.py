"""PNG bytes for tests: saved by Pillow, or assembled chunk by chunk.

Assembling by hand makes what Pillow will not write: interlaced images,
headers that lie about the size, damaged CRCs, odd bit depths.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import numpy as np
from PIL import Image

SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Adam7 passes: (x start, y start, x step, y step)
ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)


def unique_counts(array: np.ndarray) -> dict[int, int]:
    """value -> pixel count, computed the usual numpy way."""
    values, counts = np.unique(array, return_counts=True)
    return dict(zip(values.tolist(), counts.tolist(), strict=True))


def saved(image: Image.Image, fmt: str = "PNG", **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def gray_png(array: np.ndarray) -> bytes:
    """A mode "L" PNG of a uint8 array, as Pillow writes it."""
    return saved(Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8), "L"))


def palette_png(array: np.ndarray, **options: Any) -> bytes:
    """A mode "P" PNG whose indices are the array's values and whose colours are not."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    image = Image.frombytes("P", (array.shape[1], array.shape[0]), array.tobytes())
    # Colours deliberately unrelated to the indices: index i is drawn as 255 - i.
    image.putpalette([c for i in range(256) for c in (255 - i, (i * 7) % 256, 3)])
    return saved(image, **options)


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def ihdr(width: int, height: int, depth: int = 8, colour: int = 0, interlace: int = 0) -> bytes:
    return chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace))


def assemble(header: bytes, scanlines: bytes, *, extra: tuple[bytes, ...] = ()) -> bytes:
    """Signature + header + extra chunks + one IDAT of ``scanlines`` + IEND."""
    return SIGNATURE + header + b"".join(extra) + chunk(b"IDAT", zlib.compress(scanlines)) + IEND


IEND = chunk(b"IEND", b"")


def _pack(row: np.ndarray, depth: int) -> bytes:
    """One row of samples as PNG packs them: big-endian, ``depth`` bits each."""
    if depth == 16:
        return row.astype(">u2").tobytes()
    if depth == 8:
        return row.astype(np.uint8).tobytes()
    bits = np.unpackbits(row.astype(np.uint8)[:, None], axis=1)[:, 8 - depth :].ravel()
    return np.packbits(bits).tobytes()


def _palette_chunk(colour: int) -> tuple[bytes, ...]:
    return (chunk(b"PLTE", bytes(range(256)) * 3),) if colour == 3 else ()


def raw_gray_png(array: np.ndarray, *, depth: int = 8, colour: int = 0) -> bytes:
    """A PNG of a 2-D array of samples, filter "none" on every row, packed to ``depth`` bits."""
    height, width = array.shape
    rows = b"".join(b"\x00" + _pack(row, depth) for row in np.asarray(array))
    return assemble(ihdr(width, height, depth, colour), rows, extra=_palette_chunk(colour))


def interlaced_png(array: np.ndarray, *, depth: int = 8, colour: int = 0) -> bytes:
    """An Adam7-interlaced PNG (Pillow reads these but does not write them)."""
    array = np.asarray(array)
    height, width = array.shape
    data = bytearray()
    for x0, y0, dx, dy in ADAM7:
        sub = array[y0::dy, x0::dx]
        if sub.size == 0:  # empty passes have no scanlines at all
            continue
        for row in sub:
            data += b"\x00" + _pack(row, depth)
    header = ihdr(width, height, depth, colour, interlace=1)
    return assemble(header, bytes(data), extra=_palette_chunk(colour))


def interlaced_gray_png(array: np.ndarray) -> bytes:
    return interlaced_png(np.asarray(array, dtype=np.uint8))


def chunks(data: bytes) -> list[tuple[int, bytes, int]]:
    """(offset, type, length) of each chunk."""
    out = []
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        out.append((pos, kind, length))
        pos += 12 + length
    return out


def find(data: bytes, kind: bytes) -> tuple[int, int]:
    """(offset, length) of the first chunk of this type."""
    for pos, found, length in chunks(data):
        if found == kind:
            return pos, length
    raise AssertionError(f"no {kind!r} chunk")


def split_idat(data: bytes, size: int) -> bytes:
    """The same PNG with its image data cut into IDAT chunks of ``size`` bytes."""
    head, body, tail = [], bytearray(), []
    for pos, kind, length in chunks(data):
        raw = data[pos : pos + 12 + length]
        if kind == b"IDAT":
            body += data[pos + 8 : pos + 8 + length]
        elif body:
            tail.append(raw)
        else:
            head.append(raw)
    parts = [chunk(b"IDAT", bytes(body[i : i + size])) for i in range(0, len(body), size)]
    return SIGNATURE + b"".join(head) + b"".join(parts) + b"".join(tail)


def smooth_regions(size: int = 256, regions: int = 20, seed: int = 0) -> np.ndarray:
    """A mask like real ones: ``regions`` blobs with curved borders, values 0..regions-1."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    scale = size / 1024
    wx = xx + 40 * scale * np.sin(yy / (97 * scale) + rng.uniform(0, 6))
    wy = yy + 40 * scale * np.cos(xx / (89 * scale) + rng.uniform(0, 6))
    seeds = rng.uniform(0, size, (regions, 2)).astype(np.float32)
    best = np.full((size, size), np.inf, np.float32)
    out = np.zeros((size, size), np.uint8)
    for i, (px, py) in enumerate(seeds):
        d = (wx - px) ** 2 + (wy - py) ** 2
        closer = d < best
        best[closer] = d[closer]
        out[closer] = i
    return out
