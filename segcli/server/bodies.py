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

from aiohttp import MultipartReader, web

from segcli.server.responses import HttpError

CHUNK_BYTES = 64 * 1024

_FILENAME_EXT = re.compile(r";\s*filename\*\s*=\s*([^;]*)", re.IGNORECASE)
_FILENAME = re.compile(r';\s*filename\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)', re.IGNORECASE)
_NAME = re.compile(r';\s*name\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)', re.IGNORECASE)
_ESCAPED = re.compile(r"\\(.)")


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


async def read_multipart(request: web.Request, limit: int, max_files: int) -> MultipartBody:
    """All parts of a multipart/form-data body; files beyond ``max_files`` are a 400."""
    check_declared_length(request, limit)
    body = MultipartBody()
    received = 0
    try:
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            if isinstance(part, MultipartReader):
                raise HttpError(400, "Nested multipart bodies are not supported.")
            name, filename = disposition_name_and_filename(
                part.headers.get("Content-Disposition", "")
            )
            if filename is not None and len(body.files) >= max_files:
                raise HttpError(400, f"At most {max_files} files may be sent in one request.")
            data = bytearray()
            while True:
                chunk = await part.read_chunk(CHUNK_BYTES)
                if not chunk:
                    break
                data += chunk
                received += len(chunk)
                if received > limit:
                    raise too_large(limit)
            if filename is not None:
                body.files.append(UploadedFile(name, filename, bytes(data)))
            else:
                body.fields[name] = bytes(data)
    except HttpError:
        raise
    except Exception as exc:
        # The multipart parser raises assorted types on malformed input
        # (ValueError, AssertionError, RuntimeError...): all mean a bad body.
        raise HttpError(400, f"Malformed multipart body: {exc}") from None
    return body
