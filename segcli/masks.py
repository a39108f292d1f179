"""Read a mask from wherever it lives, and find out what is in it.

``read_mask(uri)`` returns the file's bytes: local paths with plain ``open``
(no fsspec import), everything else through fsspec. ``inspect_png(data)``
returns the size, mode and per-value pixel counts of a single-channel 8-bit
PNG, or raises ``MaskFormatError`` with a stable code from ``segcli.codes``.

Inspection walks the PNG chunks itself (signature, IHDR, CRCs, IEND) and only
then hands the compressed pixel data to Pillow's C decoder, so a header that
claims a huge image or a mode we refuse is turned down before a single pixel
is decompressed, and a flipped byte anywhere in the file is caught.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from segcli.defaults import DEFAULT_MAX_PIXELS

if TYPE_CHECKING:
    from fsspec.implementations.http import HTTPFileSystem
    from PIL import Image

# DEFAULT_MAX_PIXELS (segcli.defaults): Pillow's own guard warns from ~89 M
# pixels, but segcli checks the header itself (see inspect_png) and never
# touches Pillow's global.

# A PNG within the pixel limit is at most ~100 MB even stored without
# compression (one byte a pixel plus one filter byte a row), so 128 MiB holds
# any acceptable mask and stops a wrong URL (a video, a dump) from filling
# memory.
DEFAULT_MAX_BYTES = 128 * 1024 * 1024

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")

# storage_options are keyed by protocol; these spellings share one entry.
_PROTOCOL_ALIASES = {"https": "http", "gcs": "gs", "s3a": "s3"}


class MaskReadError(Exception):
    """The mask's bytes could not be fetched. ``message`` says what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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


# --------------------------------------------------------------------------
# Reading


def read_mask(
    uri: str,
    *,
    storage_options: Mapping[str, Mapping[str, Any]] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> bytes:
    """Return the bytes of the mask at ``uri``; raise ``MaskReadError`` if that fails.

    ``uri`` is a local path, ``file://``, ``s3://``, ``gs://``, ``http(s)://``
    or ``memory://``. ``storage_options`` holds keyword arguments for each
    protocol's filesystem, e.g. ``{"s3": {"endpoint_url": ..., "key": ...}}``.
    This call blocks; remote reads run on fsspec's own event loop thread.
    """
    match = _SCHEME.match(uri)
    if match is None:
        return _read_local(uri, uri, max_bytes)
    scheme = match.group(1).lower()
    if scheme == "file":
        path = uri[match.end() :]
        if path.startswith("localhost/"):
            path = path[len("localhost") :]
        return _read_local(path, uri, max_bytes)
    options = _options_for(scheme, storage_options)
    try:
        if scheme in ("http", "https"):
            return _read_http(uri, options, max_bytes)
        return _read_fsspec(uri, scheme, options, max_bytes)
    except MaskReadError:
        raise
    except Exception as exc:
        # Each fsspec backend raises its own family (aiohttp, botocore,
        # google-auth...); whatever it is, this item is unreadable and the
        # run goes on.
        raise MaskReadError(_explain(uri, scheme, exc)) from exc


def _options_for(
    scheme: str, storage_options: Mapping[str, Mapping[str, Any]] | None
) -> dict[str, Any]:
    if not storage_options:
        return {}
    found = storage_options.get(scheme)
    if found is None:
        found = storage_options.get(_PROTOCOL_ALIASES.get(scheme, scheme), {})
    return dict(found)


def _read_local(path: str, uri: str, max_bytes: int) -> bytes:
    # O_NONBLOCK: opening a FIFO (say /dev/stdin by mistake) must not hang the
    # run; it has no effect on regular files.
    flags = (
        os.O_RDONLY
        | getattr(os, "O_NONBLOCK", 0)
        | getattr(os, "O_CLOEXEC", 0)
        | getattr(os, "O_BINARY", 0)
    )
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise MaskReadError(f"{uri}: no such file; check the path") from None
    except IsADirectoryError:
        raise MaskReadError(f"{uri}: is a folder, not a PNG file") from None
    except PermissionError:
        raise MaskReadError(
            f"{uri}: permission denied; make the file readable by this user"
        ) from None
    except OSError as exc:
        raise MaskReadError(_local_os_error(uri, exc)) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise MaskReadError(f"{uri}: is a folder, not a PNG file")
        if not stat.S_ISREG(st.st_mode):
            raise MaskReadError(f"{uri}: not a regular file (a pipe or a device?)")
        if st.st_size > max_bytes:
            raise MaskReadError(_too_many_bytes(uri, st.st_size, max_bytes))
        with open(fd, "rb", buffering=0, closefd=False) as f:
            return f.readall()
    except OSError as exc:
        raise MaskReadError(_local_os_error(uri, exc)) from None
    finally:
        os.close(fd)


def _local_os_error(uri: str, exc: OSError) -> str:
    import errno

    if exc.errno == errno.ELOOP:
        return f"{uri}: symbolic link loop; point the manifest at the real file"
    if exc.errno == errno.ENOTDIR:
        return f"{uri}: a part of the path is a file, not a folder; check the path"
    if exc.errno == errno.EISDIR:
        return f"{uri}: is a folder, not a PNG file"
    return f"{uri}: cannot read it: {exc.strerror or exc}"


def filesystem_for(uri: str, scheme: str, options: Mapping[str, Any]) -> tuple[Any, str]:
    """The fsspec filesystem for ``uri`` and the path within it (for reads and writes)."""
    # fsspec caches filesystem instances by their arguments, so every mask
    # of one bucket reuses one client and its connections.
    if scheme in ("gs", "gcs"):
        # gcsfs's plain JSON-API class, not the one registered for gs://:
        # since gcsfs 2025 that one first asks Google's storage-control gRPC
        # API for the bucket's layout, which against an emulator, a proxy
        # endpoint or with anonymous access fails only after a 30 s timeout,
        # and is not cached, so every read would pay it. Reading an object
        # needs none of it (only gRPC-only "zonal" buckets are left out).
        # That class is not exported at the top of gcsfs, hence the bound on
        # gcsfs in pyproject.toml.
        from gcsfs.core import GCSFileSystem

        fs = GCSFileSystem(**options)
        return fs, uri.split("://", 1)[1]  # bucket/key, as the filesystem names it
    from fsspec.core import url_to_fs

    return url_to_fs(uri, **options)


def storage_options_for(
    scheme: str, storage_options: Mapping[str, Mapping[str, Any]] | None
) -> dict[str, Any]:
    """The keyword arguments for ``scheme``'s filesystem out of per-protocol options."""
    return _options_for(scheme, storage_options)


def _read_fsspec(uri: str, scheme: str, options: dict[str, Any], max_bytes: int) -> bytes:
    fs, path = filesystem_for(uri, scheme, options)
    info = fs.info(path)
    if info.get("type") == "directory":
        raise MaskReadError(f"{uri}: is a folder, not a PNG file")
    size = info.get("size")
    if size is not None and size > max_bytes:
        raise MaskReadError(_too_many_bytes(uri, size, max_bytes))
    data = fs.cat_file(path)
    if len(data) > max_bytes:
        raise MaskReadError(_too_many_bytes(uri, len(data), max_bytes))
    return bytes(data)


def _read_http(url: str, options: dict[str, Any], max_bytes: int) -> bytes:
    import fsspec
    from fsspec.asyn import sync

    # encoded=True: yarl must not re-encode the query string, or a signed
    # URL's signature no longer matches (%2F would come back as /).
    fs = fsspec.filesystem("http", **{**options, "encoded": True})
    data: bytes = sync(fs.loop, _http_get, fs, url, max_bytes)
    return data


async def _http_get(fs: HTTPFileSystem, url: str, max_bytes: int) -> bytes:
    # One GET and nothing else: a presigned S3 GET URL refuses HEAD, which
    # fsspec's open() would send first to learn the size. Reading the stream
    # ourselves also lets us stop at max_bytes instead of buffering a body of
    # any size (what cat_file would do).
    session = await fs.set_session()
    async with session.get(fs.encode_url(url), **fs.kwargs) as response:
        if response.status >= 400:
            raise MaskReadError(_http_status(url, response.status, response.reason))
        declared = response.content_length
        if declared is not None and declared > max_bytes:
            raise MaskReadError(_too_many_bytes(_redact(url), declared, max_bytes))
        chunks: list[bytes] = []
        total = 0
        async for chunk in response.content.iter_any():
            total += len(chunk)
            if total > max_bytes:
                raise MaskReadError(_too_many_bytes(_redact(url), total, max_bytes))
            chunks.append(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _redact(uri: str) -> str:
    """The URI without its query string: a signed URL's query is a credential."""
    base, sep, _ = uri.partition("?")
    return f"{base}?..." if sep else uri


def _http_status(url: str, status: int, reason: str | None) -> str:
    where = f"{_redact(url)}: HTTP {status} {reason or ''}".rstrip()
    if status in (401, 403):
        return (
            f"{where}; the server refused access: a signed URL may have expired or "
            "been altered (sign it again), or the object is private"
        )
    if status == 404:
        return f"{where}; nothing at this URL, check it"
    if status >= 500:
        return f"{where}; the server failed, try again later"
    return f"{where}; the server refused the request"


def _too_many_bytes(uri: str, size: int, max_bytes: int) -> str:
    return (
        f"{uri}: the file is {size:,} bytes, more than the {max_bytes:,} a mask may be; "
        "is it really a mask?"
    )


def _explain(uri: str, scheme: str, exc: BaseException) -> str:
    where = _redact(uri)
    text = str(exc)
    query = uri.partition("?")[2]
    if query:  # keep a signed URL's signature out of messages and reports
        text = text.replace(uri, where).replace(query, "...")
    if isinstance(exc, FileNotFoundError):
        return f"{where}: not found; check the bucket and the path"
    if isinstance(exc, PermissionError):
        return (
            f"{where}: access denied; check the credentials (storage options or the "
            "usual AWS / Google settings) and the object's permissions"
        )
    if isinstance(exc, IsADirectoryError):
        return f"{where}: is a folder, not a PNG file"
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return f"{where}: timed out; check the network, or try again"
    if isinstance(exc, ImportError):
        return f"{where}: {scheme}:// needs an extra package: {text}"
    if isinstance(exc, ValueError) and "protocol not known" in text.lower():
        return (
            f"{where}: unknown scheme {scheme}://; use a local path, file://, s3://, "
            "gs://, http(s):// or memory://"
        )
    if "credential" in text.lower():
        return f"{where}: no usable credentials ({text}); configure them for {scheme}://"
    if isinstance(exc, OSError):
        return (
            f"{where}: cannot reach or read it: {text or type(exc).__name__}; "
            "check the address and that its server is up, then re-run"
        )
    return f"{where}: cannot read it: {type(exc).__name__}: {text}"


# --------------------------------------------------------------------------
# Inspecting

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
