"""What is in a mask's bytes: the size, mode and per-value pixel counts of a PNG.

``inspect_png(data)`` returns a ``MaskInfo`` for a single-channel 8-bit PNG,
or raises ``MaskFormatError`` with a stable code from ``segcli.codes``.

Inspection walks the PNG chunks itself (signature, IHDR, CRCs, IEND) and only
then decodes, so a header that claims a huge image or a mode we refuse is
turned down before a single pixel is decompressed, and a flipped byte anywhere
in the file is caught.

Decoding is where validation spends its time. A grayscale mask goes through
libspng (pyspng), the fastest of the decoders measured (1.3 ms for a 1024x1024
mask of smooth regions, against 1.5 for libpng and 1.9 for Pillow), and its
values are counted from the runs along the rows. libspng turns palette masks
into colours, so those, and anything libspng refuses, take Pillow's decoder,
which says exactly what is wrong with a damaged file.
"""

from __future__ import annotations

import struct
import threading
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from segcli.defaults import DEFAULT_MAX_PIXELS

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

# DEFAULT_MAX_PIXELS (segcli.defaults): Pillow's own guard warns from ~89 M
# pixels, but segcli checks the header itself (see inspect_png) and never
# touches Pillow's global.

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class MaskFormatError(Exception):
    """The bytes are not an acceptable mask. ``code`` is one of segcli.codes.RULES."""

    def __init__(self, code: str, message: str) -> None:
        # Both in args so the exception survives pickling between processes.
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(frozen=True, slots=True)
class MaskInfo:
    """What inspect_png found in a mask."""

    width: int
    height: int
    mode: str  # Pillow's mode name: "L" or "P"
    counts: dict[int, int]  # pixel value -> number of pixels (only values present)
    palette: bool  # a "P" mask: its indices are the values, its colours are ignored


# (bit depth, colour type) -> Pillow's mode name, as PngImagePlugin names them.
_PNG_MODES = {
    (1, 0): "1",
    (2, 0): "L;2",
    (4, 0): "L;4",
    (8, 0): "L",
    (16, 0): "I;16",
    (8, 2): "RGB",
    (16, 2): "RGB;16",
    (1, 3): "P",
    (2, 3): "P",
    (4, 3): "P",
    (8, 3): "P",
    (8, 4): "LA",
    (16, 4): "LA;16",
    (8, 6): "RGBA",
    (16, 6): "RGBA;16",
}

# What to do about each refused mode. A mask must hold one class index per
# pixel in one byte; each conversion below keeps the values only when the
# stated condition holds, which is why none is applied silently.
_MODE_ADVICE = {
    "1": (
        "a 1-bit mask: Pillow reads its pixels as 0 and 255, not 0 and 1. If 0/1 are "
        "your indices, save it as 8-bit with "
        "`Image.open(p).convert('L').point(lambda v: 1 if v else 0).save(q)`"
    ),
    "L;2": (
        "a 2-bit grayscale mask: readers disagree on its values (Pillow scales 0..3 to "
        "0..255). Save it as 8-bit ('L') holding the class indices"
    ),
    "L;4": (
        "a 4-bit grayscale mask: readers disagree on its values (Pillow scales 0..15 to "
        "0..255). Save it as 8-bit ('L') holding the class indices"
    ),
    "I;16": (
        "a 16-bit grayscale mask. If every value is below 256, save it as 8-bit: "
        "`Image.fromarray(np.asarray(Image.open(p)).astype(np.uint8)).save(q)` "
        "(check `arr.max() < 256` first)"
    ),
    "RGB": (
        "an RGB mask (3 channels). For a colour-coded mask, map each colour to its "
        "class index first and save a one-channel uint8 array "
        "(`Image.fromarray(index_array, 'L')`); if R, G and B are equal and are your "
        "indices, `Image.open(p).convert('L')` is enough"
    ),
    "RGB;16": (
        "a 16-bit RGB mask (3 channels). Map each colour to its class index and save "
        "a one-channel uint8 array (`Image.fromarray(index_array, 'L')`)"
    ),
    "LA": (
        "a grayscale + alpha mask (2 channels). If the gray levels are your class "
        "indices, drop the alpha with `Image.open(p).getchannel('L').save(q)`"
    ),
    "LA;16": (
        "a 16-bit grayscale + alpha mask (2 channels). Save the gray channel as a "
        "one-channel uint8 array holding the class indices"
    ),
    "RGBA": (
        "an RGBA mask (4 channels). For a colour-coded mask, map each colour to its "
        "class index first and save a one-channel uint8 array "
        "(`Image.fromarray(index_array, 'L')`); if the gray levels are your indices, "
        "`Image.open(p).convert('L')` is enough (alpha is dropped)"
    ),
    "RGBA;16": (
        "a 16-bit RGBA mask (4 channels). Map each colour to its class index and save "
        "a one-channel uint8 array (`Image.fromarray(index_array, 'L')`)"
    ),
}

# Content sniffing for files that are not PNGs: (magic prefix, what it is).
_MAGIC = (
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"BM", "a BMP image"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image"),
    (b"\x93NUMPY", "a NumPy .npy array"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"%PDF", "a PDF document"),
)


def inspect_png(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> MaskInfo:
    """Size, mode and pixel counts of an 8-bit single-channel PNG mask.

    Raises ``MaskFormatError`` with code ``mask-not-png``, ``mask-corrupt``,
    ``mask-too-large`` or ``mask-mode``. Judges by content, never by name.
    """
    if data[:8] != PNG_SIGNATURE:
        raise _not_png(data)
    width, height, depth, colour, interlace = _read_ihdr(data)
    if width * height > max_pixels:
        raise MaskFormatError(
            "mask-too-large",
            f"the mask is {width}x{height} = {width * height:,} pixels, more than the "
            f"limit of {max_pixels:,}; raise the limit if this size is real",
        )
    mode = _PNG_MODES.get((depth, colour))
    if mode is None:
        raise MaskFormatError(
            "mask-corrupt", f"invalid PNG header: bit depth {depth} with colour type {colour}"
        )
    if mode not in ("L", "P"):
        raise MaskFormatError(
            "mask-mode", f"{_MODE_ADVICE[mode]}; a mask must be one 8-bit channel"
        )
    compressed = _image_data(data, palette=mode == "P")
    counts = _gray_counts(data) if mode == "L" else None
    if counts is None:
        counts = _pixel_counts(compressed, mode, depth, width, height, interlace)
    return MaskInfo(width=width, height=height, mode=mode, counts=counts, palette=mode == "P")


def png_layout(data: bytes) -> tuple[int, int, int, int, int, bytes | memoryview]:
    """``(width, height, bit depth, colour type, interlace, IDAT payload)`` of a PNG.

    Checks the signature, the header, every chunk's CRC and the end chunk, as
    ``inspect_png`` does; raises ``MaskFormatError`` (for converters that
    decode other modes themselves).
    """
    if data[:8] != PNG_SIGNATURE:
        raise _not_png(data)
    width, height, depth, colour, interlace = _read_ihdr(data)
    return width, height, depth, colour, interlace, _image_data(data, palette=colour == 3)


def _read_ihdr(data: bytes) -> tuple[int, int, int, int, int]:
    if len(data) < 33:
        raise _corrupt("truncated: the file ends inside the PNG header")
    length, ctype = struct.unpack_from(">I4s", data, 8)
    if length != 13 or ctype != b"IHDR":
        raise _corrupt("the PNG does not start with a valid IHDR header chunk")
    (crc,) = struct.unpack_from(">I", data, 29)
    if zlib.crc32(memoryview(data)[12:29]) != crc:
        raise _corrupt("CRC mismatch in the IHDR header chunk: the file is damaged")
    width, height, depth, colour, compression, filtering, interlace = struct.unpack_from(
        ">IIBBBBB", data, 16
    )
    if width == 0 or height == 0 or width > 0x7FFFFFFF or height > 0x7FFFFFFF:
        raise _corrupt(f"invalid PNG size {width}x{height}")
    if compression != 0 or filtering != 0 or interlace > 1:
        raise _corrupt("invalid PNG header: unknown compression, filter or interlace method")
    return width, height, depth, colour, interlace


def _image_data(data: bytes, *, palette: bool) -> bytes | memoryview:
    """The concatenated IDAT payload, after checking every chunk's CRC and IEND."""
    view = memoryview(data)
    end = len(data)
    pos = 8
    parts: list[memoryview] = []
    seen_plte = False
    while True:
        if pos + 8 > end:
            raise _corrupt(f"truncated: the file ends after {end:,} bytes, before its end chunk")
        length, ctype = struct.unpack_from(">I4s", data, pos)
        if length > 0x7FFFFFFF or not ctype.isalpha():
            raise _corrupt(f"damaged chunk header at byte {pos:,}")
        name = ctype.decode("ascii")
        stop = pos + 8 + length
        if stop + 4 > end:
            raise _corrupt(
                f"truncated: the file ends after {end:,} bytes, inside its {name} chunk "
                f"(a partial download or copy?)"
            )
        (crc,) = struct.unpack_from(">I", data, stop)
        if zlib.crc32(view[pos + 4 : stop]) != crc:
            raise _corrupt(f"CRC mismatch in the {name} chunk at byte {pos:,}: the file is damaged")
        if ctype == b"IDAT":
            parts.append(view[pos + 8 : stop])
        elif ctype == b"IEND":
            break
        elif ctype == b"PLTE":
            seen_plte = True
        pos = stop + 4
    if not parts:
        raise _corrupt("the PNG has no image data (IDAT chunk)")
    if palette and not seen_plte:
        raise _corrupt("a palette PNG without its palette (PLTE chunk)")
    # A mask of smooth regions compresses to one or a few chunks: joining
    # them copies kilobytes, not the image.
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _gray_counts(data: bytes) -> dict[int, int] | None:
    """Pixel counts of an 8-bit grayscale PNG through libspng, or None to use Pillow.

    Called after the chunks are checked. Any refusal (a short or damaged
    stream) returns None: Pillow then decodes the same bytes and names the
    fault, so a file is judged the same whichever decoder runs.
    """
    import numpy as np
    import pyspng

    try:
        pixels = pyspng.load(data)
    except MemoryError:
        return None  # Pillow's path reports it as mask-too-large
    except RuntimeError:  # pyspng's only error: "could not decode image: ..."
        return None
    flat = pixels.reshape(-1)
    edges = np.not_equal(flat[1:], flat[:-1], out=_scratch(flat.size - 1))
    if np.count_nonzero(edges) > flat.size // 8:
        # Noise-like masks: counting runs would cost more than counting pixels.
        return _histogram(pixels)
    # A mask is regions: count each run of equal values once, by its length.
    starts = np.concatenate(([0], np.flatnonzero(edges) + 1))
    lengths = np.diff(starts, append=flat.size)
    totals = np.bincount(flat[starts], weights=lengths, minlength=256)
    return {value: int(n) for value, n in enumerate(totals.tolist()) if n}


_local = threading.local()
_SCRATCH_MAX = 1 << 25  # 32 MB: a 5,792 x 5,792 mask


def _scratch(size: int) -> np.ndarray:
    """A boolean buffer of ``size`` kept per thread between masks.

    A fresh megabyte array per mask comes from new pages each time, and the
    page faults cost a third of the counting (2.4 against 1.8 ms a mask).
    A huge mask gets its own array, so a worker never holds on to more than
    _SCRATCH_MAX bytes.
    """
    import numpy as np

    if size > _SCRATCH_MAX:
        return np.empty(size, bool)
    buffer: np.ndarray | None = getattr(_local, "edges", None)
    if buffer is None or buffer.size < size:
        buffer = _local.edges = np.empty(size, bool)
    return buffer[:size]


def _histogram(pixels: np.ndarray) -> dict[int, int]:
    from PIL import Image

    height, width = pixels.shape
    # frombuffer shares the array's memory: Pillow counts it in C, no copy.
    image = Image.frombuffer("L", (width, height), pixels, "raw", "L", 0, 1)
    return {value: n for value, n in enumerate(image.histogram()) if n}


def _pixel_counts(
    compressed: bytes | memoryview, mode: str, depth: int, width: int, height: int, interlace: int
) -> dict[int, int]:
    from PIL import Image

    size = (width, height)
    args = ("L" if mode == "L" else ("P" if depth == 8 else f"P;{depth}"), interlace)
    probe = _last_decoded(width, height, interlace)
    try:
        # Pillow's "zip" decoder inflates and unfilters in C (interlaced or
        # not) straight into the image. Calling it through the documented
        # Image.frombytes skips Image.open's second parse of the chunks and
        # its global decompression-bomb check (our limit was applied to the
        # header). Data cut short raises "not enough image data" here, so
        # LOAD_TRUNCATED_IMAGES never comes into play.
        image = Image.new(mode, size, 255)
        image.frombytes(compressed, "zip", args)
        # A zlib stream that ends cleanly before the last row is "done" for
        # Pillow, which leaves the rest as it was. So the image starts
        # filled with 255 and the last pixels the decoder writes are looked
        # at; only if they are still all 255 (a real mask can end that way)
        # is it decoded again over 0s to tell which.
        if _uniform(image.crop(probe), 255):
            image = Image.new(mode, size, 0)
            image.frombytes(compressed, "zip", args)
            if _uniform(image.crop(probe), 0):
                raise _corrupt(
                    "the image data ends before the last row: the file is truncated or "
                    "was written by a broken encoder"
                )
    except MemoryError:
        raise MaskFormatError(
            "mask-too-large",
            f"not enough memory to decode this {width}x{height} mask; lower the pixel "
            "limit or use a machine with more memory",
        ) from None
    except (ValueError, OSError) as exc:
        raise _corrupt(
            f"the pixel data cannot be decoded ({exc}): the file is truncated or damaged"
        ) from None
    # histogram() counts in C without building an array: the distinct values
    # are the non-zero bins (256 of them for "L" and "P").
    return {value: n for value, n in enumerate(image.histogram()) if n}


def _last_decoded(width: int, height: int, interlace: int) -> tuple[int, int, int, int]:
    """The box of pixels Pillow's decoder writes last."""
    if not interlace:
        return (0, height - 1, width, height)
    if height >= 2:
        # Adam7's last pass fills whole odd rows.
        row = height - 1 if (height - 1) % 2 else height - 2
        return (0, row, width, row + 1)
    # One row: the last non-empty pass fills its odd columns (or pass 1 its only pixel).
    x = 0 if width == 1 else (width - 1 if (width - 1) % 2 else width - 2)
    return (x, 0, x + 1, 1)


def _uniform(region: Image.Image, value: int) -> bool:
    return region.getextrema() == (value, value)


def _corrupt(message: str) -> MaskFormatError:
    # Whatever broke the file, the fix is the same: a fresh copy from its source.
    return MaskFormatError("mask-corrupt", f"{message}; export or copy the mask again")


def _not_png(data: bytes) -> MaskFormatError:
    if not data:
        return MaskFormatError(
            "mask-not-png", "the file is empty (0 bytes); write or download it again"
        )
    head = bytes(data[:16])
    if head[1:4] == b"PNG":
        return _corrupt(
            "the PNG signature is damaged (line endings converted by a text-mode "
            "transfer?); copy the file again in binary mode"
        )
    kind = _sniff(head, bytes(data[:1024]))
    if kind == "a JPEG image":
        advice = (
            "JPEG compression changes pixel values, so class indices do not survive it; "
            "export the mask again as PNG from its source"
        )
    elif kind in ("a GIF image", "a TIFF image", "a BMP image", "a WebP image"):
        advice = (
            "convert it losslessly, e.g. `Image.open(p).save('mask.png')`, if its pixel "
            "values are the class indices"
        )
    elif kind == "a NumPy .npy array":
        advice = "save it as PNG: `Image.fromarray(np.load(p).astype(np.uint8)).save(q)`"
    elif kind == "an HTML page":
        advice = (
            "the URL probably leads to a login, error or preview page; check the link "
            "(an expired signed URL?)"
        )
    elif kind is None:
        kind = f"unknown content (first bytes: {head[:8].hex(' ')})"
        advice = "point the manifest at the PNG mask"
    else:
        advice = "point the manifest at the PNG mask"
    return MaskFormatError(
        "mask-not-png", f"not a PNG (judged by content, not name): it is {kind}; {advice}"
    )


def _sniff(head: bytes, start: bytes) -> str | None:
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    text = start.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html")) or b"<html" in text:
        return "an HTML page"
    if text.startswith(b"<?xml") or text.startswith(b"<error"):
        return "an XML document (often a storage service's error reply)"
    if text.startswith(b"<svg"):
        return "an SVG drawing"
    if text.startswith((b"{", b"[")):
        return "JSON text"
    return None
