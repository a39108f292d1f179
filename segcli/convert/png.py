"""PNG in and out for the converters: decode a source image, encode an index mask.

Sources are decoded by Pillow (every mode a dataset uses: 1/8/16-bit gray,
palette, RGB, RGBA), after the size in the header is checked against the
pixel limit, so a decompression bomb is refused before it is inflated.

Output masks are written here rather than by ``Image.save``: one 8-bit gray
channel, every row with PNG's "Up" filter, deflated with the run-length
strategy by zlib-ng. Measured on 1024x1024 masks of ~40 smooth regions:
0.4 ms and 7-10 KB a mask, against 2.1 ms for the same bytes with the
standard library's zlib, Pillow's 4.7 ms and 8.2 KB at its default level
(its adaptive filter choice costs more than it gains on masks) and 3.3 ms
and 14 KB at level 1; ISA-L (0.14 ms) makes 50% bigger files, libdeflate
takes 1.6 ms. It is lossless either way; every mask written is decoded
again by segcli's inspector before it is stored.
"""

from __future__ import annotations

import io
import struct
import types
import zlib
from typing import TYPE_CHECKING, Any

from segcli.png import PNG_SIGNATURE

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from PIL import Image

Finding = tuple[str, str]

_IHDR_END = 33  # signature (8) + length, type, 13 data bytes, CRC


class SourceError(Exception):
    """A source image cannot be used. ``code`` is one of segcli.codes.RULES."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    @property
    def finding(self) -> Finding:
        return (self.code, self.message)


def open_source(data: bytes, *, max_pixels: int, name: str) -> Image.Image:
    """Decode a source image (any PNG mode); raise ``SourceError`` when it is unusable."""
    from PIL import Image, UnidentifiedImageError

    if data[:8] != PNG_SIGNATURE:
        kind = "an empty file" if not data else "not a PNG (judged by its content)"
        raise SourceError(
            "source-corrupt", f"{name} is {kind}; export it again as PNG from its source"
        )
    if len(data) >= _IHDR_END:
        width, height = struct.unpack_from(">II", data, 16)
        if width * height > max_pixels:
            raise SourceError(
                "source-corrupt",
                f"{name} is {width}x{height} = {width * height:,} pixels, more than the limit "
                f"of {max_pixels:,}; raise --max-pixels if this size is real",
            )
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise SourceError(
            "source-corrupt",
            f"{name} cannot be decoded ({exc}): the file is truncated or damaged; "
            "copy or export it again",
        ) from None
    except Exception as exc:  # hostile bytes: one bad file is one problem, never a crash
        raise SourceError(
            "source-corrupt", f"{name} cannot be decoded ({type(exc).__name__}: {exc})"
        ) from None
    return image


def rgb_codes(image: Image.Image, *, name: str, allow_opaque_alpha: bool = False) -> np.ndarray:
    """``R + 256 G + 256**2 B`` of every pixel (COCO's rgb2id), as a uint32 array.

    Pillow keeps RGB pixels in 4 bytes, so the packed "RGBX" bytes viewed as
    little-endian uint32, with the pad byte masked off, are the ids: no
    per-channel arithmetic on three arrays.
    """
    import numpy as np

    if image.mode == "RGBA" and allow_opaque_alpha:
        if image.getchannel("A").getextrema() != (255, 255):
            raise SourceError(
                "source-mode",
                f"{name} is RGBA with transparent pixels; a colour mask must be opaque: "
                "flatten it onto its background colour and save it as RGB",
            )
        image = image.convert("RGB")
    if image.mode != "RGB":
        raise SourceError("source-mode", f"{name}: {_mode_phrase(image.mode)}; expected RGB")
    codes = np.frombuffer(image.tobytes("raw", "RGBX"), dtype="<u4")
    ids: npt.NDArray[Any] = np.bitwise_and(codes, 0xFFFFFF).reshape(image.height, image.width)
    return ids


def decode_rgb_codes(data: bytes, *, max_pixels: int, name: str) -> np.ndarray | None:
    """``rgb_codes`` of an 8-bit RGB PNG, decoded straight into a uint32 array.

    Pillow's decoder writes the pixels into the array's memory (an "RGBX"
    image over it), so no image is copied out: 4.8 ms a 1024x1024 id PNG
    against 9.3 ms through ``Image.open`` and ``tobytes``. Returns None for
    any other PNG (other modes, interlaced): the caller takes the general path.
    """
    import numpy as np
    from PIL import Image

    from segcli.png import MaskFormatError, png_layout

    try:
        width, height, depth, colour, interlace, idat = png_layout(data)
    except MaskFormatError as exc:
        raise SourceError("source-corrupt", f"{name}: {exc.message}") from None
    if (depth, colour, interlace) != (8, 2, 0):
        return None
    if width * height > max_pixels:
        return None  # open_source says why
    pixels = np.zeros((height, width), dtype="<u4")
    image = Image.frombuffer("RGBX", (width, height), pixels, "raw", "RGBX", 0, 1)
    try:
        image.frombytes(idat, "zip", ("RGB", 0))
    except (ValueError, OSError) as exc:
        raise SourceError(
            "source-corrupt", f"{name} cannot be decoded ({exc}): the file is truncated or damaged"
        ) from None
    # Decoded pixels have the pad byte 255; a stream that ended early left zeros.
    if int(pixels[-1].min()) >> 24 != 255:
        raise SourceError(
            "source-corrupt",
            f"{name}: the image data ends before the last row: the file is truncated; "
            "copy or export it again",
        )
    return np.bitwise_and(pixels, 0xFFFFFF, out=pixels)


def gray_values(image: Image.Image, *, name: str, wide: bool) -> np.ndarray:
    """The values of a one-channel image: 8-bit (or, with ``wide``, 16/32-bit) gray."""
    import numpy as np

    modes = ("L", "I;16", "I;16B", "I;16L", "I") if wide else ("L",)
    if image.mode not in modes:
        want = "one channel of 8, 16 or 32 bits" if wide else "one 8-bit channel"
        raise SourceError("source-mode", f"{name}: {_mode_phrase(image.mode)}; expected {want}")
    values = np.asarray(image)
    if values.dtype.kind == "i" and values.size and int(values.min()) < 0:
        raise SourceError("source-mode", f"{name} holds negative values; ids must be >= 0")
    return values


def _mode_phrase(mode: str) -> str:
    return {
        "RGB": "an RGB image (3 channels)",
        "RGBA": "an RGBA image (4 channels); drop the alpha channel if it carries nothing",
        "LA": "a gray + alpha image (2 channels)",
        "P": "a palette image",
        "L": "an 8-bit gray image",
        "1": "a 1-bit image",
        "I;16": "a 16-bit gray image",
        "I;16B": "a 16-bit gray image",
        "I": "a 32-bit gray image",
    }.get(mode, f"an image of mode {mode}")


def encode_mask(labels: npt.NDArray[np.uint8], *, level: int = 6) -> bytes:
    """A single-channel 8-bit PNG of ``labels`` (H x W uint8), losslessly."""
    import numpy as np

    height, width = labels.shape
    rows = np.empty((height, width + 1), dtype=np.uint8)
    rows[:, 0] = 2  # "Up": each byte minus the one above (row 0: minus zero)
    rows[0, 1:] = labels[0]
    np.subtract(labels[1:], labels[:-1], out=rows[1:, 1:])  # wraps mod 256, as PNG wants
    deflate = _deflate.compressobj(level, _deflate.DEFLATED, 15, 9, _deflate.Z_RLE)
    idat = deflate.compress(rows.data) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"".join((PNG_SIGNATURE, _chunk(b"IHDR", header), _chunk(b"IDAT", idat), _IEND))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


_IEND = _chunk(b"IEND", b"")

_deflate: types.ModuleType
try:
    from zlib_ng import zlib_ng as _deflate
except ImportError:  # no wheel for this platform: the same stream, slower
    _deflate = zlib
