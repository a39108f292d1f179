"""Read a mask's bytes from wherever it lives.

``read_mask(uri)`` returns the file's bytes: local paths with plain ``open``
(no fsspec import), everything else through fsspec (``s3://``, ``gs://``,
``memory://``...), and ``http(s)://`` signed URLs requested byte for byte
(one GET, never ``HEAD``). Whatever stops a read is a ``MaskReadError``
whose message names the mask and what to do.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fsspec.implementations.http import HTTPFileSystem

# A PNG within the pixel limit is at most ~100 MB even stored without
# compression (one byte a pixel plus one filter byte a row), so 128 MiB holds
# any acceptable mask and stops a wrong URL (a video, a dump) from filling
# memory.
DEFAULT_MAX_BYTES = 128 * 1024 * 1024

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")

# storage_options are keyed by protocol; these spellings share one entry.
_PROTOCOL_ALIASES = {"https": "http", "gcs": "gs", "s3a": "s3"}


class MaskReadError(Exception):
    """The mask's bytes could not be fetched. ``message`` says what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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

    fs, path = url_to_fs(uri, **options)
    return fs, str(path)


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
    # asyncio's own TimeoutError (a separate class before Python 3.11) can only
    # come from a loaded asyncio: a pool worker, which never loads it, is spared
    # the import (a tenth of its start-up).
    loaded_asyncio = sys.modules.get("asyncio")
    timeouts = (
        (TimeoutError,) if loaded_asyncio is None else (TimeoutError, loaded_asyncio.TimeoutError)
    )
    if isinstance(exc, timeouts):
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
