"""Reading request bodies with a bound: never more than ``limit`` bytes.

A declared Content-Length over the limit is refused before reading; a
chunked body is counted as it streams and refused when it passes the limit.
Whatever a malformed body makes the parsers raise, the answer is a 400.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from segcli.server.responses import HttpError

CHUNK_BYTES = 64 * 1024

_FILENAME_EXT = re.compile(r";\s*filename\*\s*=\s*([^;]*)", re.IGNORECASE)
_FILENAME = re.compile(r';\s*filename\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)', re.IGNORECASE)
_NAME = re.compile(r';\s*name\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)', re.IGNORECASE)
_ESCAPED = re.compile(r"\\(.)")
_BOUNDARY = re.compile(r';\s*boundary\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)', re.IGNORECASE)


def too_large(limit: int) -> HttpError:
    return HttpError(413, f"The request body is larger than {limit} bytes.")


def check_declared_length(request: web.Request, limit: int) -> None:
    if request.content_length is not None and request.content_length > limit:
        raise too_large(limit)


async def read_body(request: web.Request, limit: int) -> bytes:
    check_declared_length(request, limit)
    data = bytearray()
    async for chunk in request.content.iter_chunked(CHUNK_BYTES):
        data += chunk
        if len(data) > limit:
            raise too_large(limit)
    return bytes(data)


def parse_json(data: bytes, what: str = "The request body") -> Any:
    if not data.strip():
        return {}
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HttpError(400, f"{what} is not valid JSON: {exc}") from None


async def read_json(request: web.Request, limit: int) -> Any:
    return parse_json(await read_body(request, limit))


@dataclass(frozen=True)
class UploadedFile:
    field: str
    filename: str  # percent-decoded, exactly as the client named it
    data: bytes


@dataclass
class MultipartBody:
    fields: dict[str, bytes] = field(default_factory=dict)
    files: list[UploadedFile] = field(default_factory=list)


def _unquote_param(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = _ESCAPED.sub(r"\1", value[1:-1])
    return value


def disposition_name_and_filename(header: str) -> tuple[str, str | None]:
    """``name`` and percent-decoded ``filename`` of a form-data part.

    Parsed here rather than by aiohttp, whose parser strips leading slashes
    from file names, and a file name here is a client's absolute path that
    must match the ``mask_url`` it pairs with.
    """
    name_match = _NAME.search(header)
    name = _unquote_param(name_match.group(1)) if name_match else ""
    ext = _FILENAME_EXT.search(header)
    if ext:
        charset, _, rest = ext.group(1).strip().partition("'")
        _lang, _, encoded = rest.partition("'")
        try:
            return name, unquote(encoded, encoding=charset or "utf-8", errors="strict")
        except (LookupError, UnicodeDecodeError):
            raise HttpError(400, "A multipart file name cannot be decoded.") from None
    plain = _FILENAME.search(header)
    if plain is None:
        return name, None
    return name, unquote(_unquote_param(plain.group(1)))


def media_type(request: web.Request) -> str:
    """The Content-Type without its parameters, lower case.

    A plain split rather than aiohttp's ``content_type``, which runs the
    email package's header parser on every request.
    """
    return request.headers.get("Content-Type", "").partition(";")[0].strip().lower()


def boundary_of(content_type: str) -> str | None:
    match = _BOUNDARY.search(content_type)
    if match is None:
        return None
    return _unquote_param(match.group(1)) or None


async def read_multipart(request: web.Request, limit: int, max_files: int) -> MultipartBody:
    """All parts of a multipart/form-data body; files beyond ``max_files`` are a 400."""
    boundary = boundary_of(request.headers.get("Content-Type", ""))
    if boundary is None:
        raise HttpError(400, "Malformed multipart body: the Content-Type names no boundary.")
    return parse_multipart(await read_body(request, limit), boundary, max_files)


def parse_multipart(data: bytes, boundary: str, max_files: int) -> MultipartBody:
    """Split a whole multipart/form-data body (RFC 2046) into fields and files.

    The body is already in memory (``read_body`` bounds it), so the parts
    are found with ``bytes.find``: a request of ten masks takes microseconds
    here, where aiohttp's streaming reader spends milliseconds of Python.
    """
    delimiter = b"--" + boundary.encode("utf-8", "surrogateescape")
    body = MultipartBody()
    view = memoryview(data)
    if data.startswith(delimiter):
        pos = len(delimiter)
    else:  # a preamble before the first delimiter is allowed, and ignored
        found = data.find(b"\r\n" + delimiter)
        if found < 0:
            raise _malformed("no delimiter line matches the boundary")
        pos = found + 2 + len(delimiter)
    while True:
        if data.startswith(b"--", pos):
            return body  # the closing delimiter; anything after it is epilogue
        pos = _line_end(data, pos)
        # The delimiter cannot occur inside a part, so the next one ends it.
        end = data.find(b"\r\n" + delimiter, pos)
        if end < 0:
            raise _malformed("the body ends inside a part (no closing delimiter)")
        if data.startswith(b"\r\n", pos):
            headers, start = b"", pos + 2
        else:
            blank = data.find(b"\r\n\r\n", pos, end + 2)
            if blank < 0:
                raise _malformed("a part's headers do not end before the next delimiter")
            headers, start = data[pos:blank], blank + 4
        if start > end:
            raise _malformed("a part has no blank line between its headers and its content")
        fields = _part_headers(headers)
        if fields.get("content-type", "").strip().lower().startswith("multipart/"):
            raise HttpError(400, "Nested multipart bodies are not supported.")
        name, filename = disposition_name_and_filename(fields.get("content-disposition", ""))
        if filename is not None:
            if len(body.files) >= max_files:
                raise HttpError(400, f"At most {max_files} files may be sent in one request.")
            body.files.append(UploadedFile(name, filename, bytes(view[start:end])))
        else:
            body.fields[name] = bytes(view[start:end])
        pos = end + 2 + len(delimiter)


def _line_end(data: bytes, pos: int) -> int:
    """Past the CRLF that ends a delimiter line (after optional transport padding)."""
    while data[pos : pos + 1] in (b" ", b"\t"):
        pos += 1
    if not data.startswith(b"\r\n", pos):
        raise _malformed("a delimiter line is not followed by a line break")
    return pos + 2


def _part_headers(block: bytes) -> dict[str, str]:
    """Header name (lower case) -> value; folded lines are joined."""
    fields: dict[str, str] = {}
    last = ""
    for line in block.decode("utf-8", "surrogateescape").split("\r\n"):
        if line[:1] in (" ", "\t") and last:
            fields[last] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise _malformed(f"bad part header line {line[:80]!r}")
        last = name.strip().lower()
        fields[last] = value.strip()
    return fields


def _malformed(reason: str) -> HttpError:
    return HttpError(400, f"Malformed multipart body: {reason}.")
