"""Finding source files: a local folder or an ``s3://`` / ``gs://`` prefix, and JSON records.

Listing is in sorted order so runs are reproducible. A local folder is
walked one directory at a time; an object store's prefix is listed by
fsspec (its listing of one prefix is one answer held in memory: names only).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any

from segcli.convert.outputs import scheme_of
from segcli.errors import UsageError
from segcli.storage import filesystem_for, storage_options_for

StorageOptions = Mapping[str, Mapping[str, Any]] | None


def join(root: str, name: str) -> str:
    return f"{root.rstrip('/')}/{name}" if scheme_of(root) else os.path.join(root, name)


def list_files(
    root: str, keep: Callable[[str], bool], storage_options: StorageOptions = None
) -> Iterator[tuple[str, str]]:
    """``(uri, path relative to root with / separators)`` of every file ``keep`` accepts."""
    scheme = scheme_of(root)
    if scheme is None:
        if not os.path.isdir(root):
            what = "does not exist" if not os.path.exists(root) else "is not a folder"
            raise UsageError(f"{root} {what}; give the folder that holds the masks")
        yield from _walk(os.path.abspath(root), "", keep)
        return
    fs, path = filesystem_for(root, scheme, storage_options_for(scheme, storage_options))
    try:
        found = fs.find(path)
    except Exception as exc:
        raise UsageError(f"cannot list {root}: {type(exc).__name__}: {exc}") from exc
    base = path.rstrip("/") + "/"
    prefix = root.split("://", 1)[0] + "://"
    for name in sorted(found):
        relative = name[len(base) :] if name.startswith(base) else name
        if keep(relative):
            yield prefix + name, relative


def _walk(folder: str, relative: str, keep: Callable[[str], bool]) -> Iterator[tuple[str, str]]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise UsageError(f"cannot list {folder}: {exc.strerror or exc}") from exc
    for entry in entries:
        rel = f"{relative}{entry.name}"
        if entry.is_dir():
            if not entry.name.startswith("."):  # .git, .segcli state and friends
                yield from _walk(entry.path, rel + "/", keep)
        elif keep(rel):
            yield entry.path, rel


def is_png(relative: str) -> bool:
    return relative.lower().endswith(".png")


def open_binary(uri: str, storage_options: StorageOptions = None) -> IO[bytes]:
    """Open a (possibly remote) file for reading; raise UsageError when it cannot be."""
    scheme = scheme_of(uri)
    try:
        if scheme is None:
            return open(uri, "rb")
        fs, path = filesystem_for(uri, scheme, storage_options_for(scheme, storage_options))
        handle: IO[bytes] = fs.open(path, "rb")
        return handle
    except FileNotFoundError as exc:
        raise UsageError(f"{uri} does not exist; check the path") from exc
    except OSError as exc:
        raise UsageError(f"cannot read {uri}: {exc.strerror or exc}") from exc


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """A file-name pattern with ``{reference_id}`` as a regular expression."""
    if pattern.count("{reference_id}") != 1:
        raise UsageError(
            f"the id pattern {pattern!r} must hold {{reference_id}} exactly once, "
            "e.g. '{reference_id}_mask.png'"
        )
    head, tail = pattern.split("{reference_id}")
    return re.compile(re.escape(head) + r"(?P<reference_id>.+?)" + re.escape(tail))


def folder_jobs(
    root: str, pattern: str, storage_options: StorageOptions = None, spec: Any = None
) -> Iterator[Any]:
    """One ``Job`` per PNG under ``root`` whose name gives a reference_id by ``pattern``."""
    import posixpath

    from segcli.convert.job import Job
    from segcli.model import Source

    regex = pattern_regex(pattern)
    for number, (uri, relative) in enumerate(list_files(root, is_png, storage_options), 1):
        name = relative if "/" in pattern else posixpath.basename(relative)
        match = regex.fullmatch(name)
        if match is None:
            continue  # not one of the masks (a preview, a colour legend...)
        yield Job(
            reference_id=match.group("reference_id"),
            sources=(uri,),
            where=Source(root, number),
            spec=spec,
        )
