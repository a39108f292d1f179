"""Where converted masks go: a local folder, or an ``s3://`` / ``gs://`` prefix through fsspec.

A local mask is written to a temporary name and renamed into place, so a
run killed mid-write never leaves a half-written PNG that a resumed run
would take for finished. An object store's PUT is atomic already.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from typing import Any

from segcli.errors import UsageError
from segcli.storage import filesystem_for, storage_options_for

StorageOptions = Mapping[str, Mapping[str, Any]] | None

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,150}")
REMOTE_OUT = ("s3", "gs", "gcs", "memory")


def scheme_of(uri: str) -> str | None:
    match = _SCHEME.match(uri)
    return match.group(1).lower() if match else None


def is_remote(uri: str) -> bool:
    return scheme_of(uri) is not None


def check_out(out: str) -> str:
    """The output location, normalised; local folders are made absolute and created."""
    scheme = scheme_of(out)
    if scheme is None:
        path = os.path.abspath(os.path.expanduser(out))
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise UsageError(
                f"cannot create the folder {out}: {exc.strerror or exc}; choose another --out"
            ) from exc
        return path
    if scheme not in REMOTE_OUT:
        raise UsageError(
            f"--out {out}: masks can be written to a local folder, s3:// or gs://, not {scheme}://"
        )
    return out.rstrip("/")


def output_name(reference_id: str) -> str:
    """A file name for a reference_id: itself when it is a plain name, else a safe one.

    Unsafe characters (``/``, spaces, ``..``) are replaced and a digest of the
    reference_id is appended, so two ids never share a file.
    """
    if _SAFE_NAME.fullmatch(reference_id) and ".." not in reference_id:
        return f"{reference_id}.png"
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", reference_id).strip("._")[:100] or "mask"
    digest = hashlib.sha256(reference_id.encode()).hexdigest()[:10]
    return f"{cleaned}-{digest}.png"


def output_uri(out: str, reference_id: str) -> str:
    name = output_name(reference_id)
    return f"{out}/{name}" if is_remote(out) else os.path.join(out, name)


def write_output(uri: str, data: bytes, storage_options: StorageOptions) -> None:
    """Store ``data`` at ``uri``; raise OSError (or the backend's error) on failure."""
    scheme = scheme_of(uri)
    if scheme is None:
        temporary = f"{uri}.{os.getpid()}.tmp"
        with open(temporary, "wb") as handle:
            handle.write(data)
        os.replace(temporary, uri)
        return
    fs, path = filesystem_for(uri, scheme, storage_options_for(scheme, storage_options))
    fs.pipe_file(path, data)


def output_exists(uri: str, storage_options: StorageOptions) -> bool:
    scheme = scheme_of(uri)
    if scheme is None:
        return os.path.isfile(uri)
    fs, path = filesystem_for(uri, scheme, storage_options_for(scheme, storage_options))
    try:
        return bool(fs.exists(path))
    except Exception:  # an unreachable store: convert again rather than trust the state
        return False
