"""Manifest text: open a file or standard input and hand out its lines.

Bytes are decoded line by line so that one bad byte spoils one line, not the
whole manifest: undecodable bytes become U+FFFD and the line number is kept
in ``bad`` for the reader to turn into a problem on the item that holds it
(YAML, which cannot be read around a hole, raises instead). Lines keep their
endings (``newline=""``) because the csv module needs them to read quoted
fields that span lines.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from collections.abc import Iterable, Iterator
from typing import TextIO

from segcli.errors import ManifestError

STDIN_LABEL = "<stdin>"

# surrogateescape turns each undecodable byte into one of these code points.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
_UTF16_BOMS = ("\udcff\udcfe", "\udcfe\udcff")


class ManifestText:
    """The decoded lines of one manifest, with a one-way peek for sniffing."""

    def __init__(self, stream: Iterable[str], label: str, base_dir: str) -> None:
        self.label = label
        #: folder that relative mask paths resolve against (absolute)
        self.base_dir = base_dir
        #: line number -> what is wrong with its bytes, until a reader takes it
        self.bad: dict[int, str] = {}
        self._stream = iter(stream)
        self._peeked: list[str] = []
        self._read_count = 0

    def first_nonblank(self) -> str | None:
        """The first line with something on it, without consuming any line."""
        for line in self._peeked:
            if line.strip():
                return line
        while True:
            read = self._read()
            if read is None:
                return None
            self._peeked.append(read)
            if read.strip():
                return read

    def __iter__(self) -> Iterator[str]:
        while self._peeked:
            yield self._peeked.pop(0)
        while True:
            line = self._read()
            if line is None:
                return
            yield line

    def take_bad(self, upto: int) -> list[str]:
        """Descriptions of bad lines numbered ``upto`` or less, removed from ``bad``."""
        if not self.bad:
            return []
        found = sorted(n for n in self.bad if n <= upto)
        return [self.bad.pop(n) for n in found]

    def _read(self) -> str | None:
        try:
            line = next(self._stream, None)
        except OSError as exc:
            raise ManifestError(
                f"{self.label}: reading failed after line {self._read_count}: {exc}"
            ) from exc
        if line is None:
            return None
        self._read_count += 1
        if self._read_count == 1:
            line = self._check_first(line)
        if not line.isascii():
            hit = _ESCAPED_BYTE.search(line)
            if hit is not None:
                byte = ord(hit.group()) - 0xDC00
                self.bad[self._read_count] = (
                    f"line {self._read_count} has bytes that are not UTF-8 "
                    f"(0x{byte:02x} at column {hit.start() + 1}); save the manifest as UTF-8"
                )
                line = _ESCAPED_BYTE.sub("\ufffd", line)
        return line

    def _check_first(self, line: str) -> str:
        if line.startswith("\udc89PNG"):
            raise ManifestError(
                f"{self.label} is a PNG image, not a manifest; give the YAML, CSV or JSONL "
                "file that lists the masks"
            )
        if line.startswith(_UTF16_BOMS) or "\x00" in line:
            raise ManifestError(
                f"{self.label} is not UTF-8 text (it looks like UTF-16 or a binary file); "
                "save it as UTF-8"
            )
        return line.removeprefix("\ufeff")


@contextlib.contextmanager
def open_text(source: str, stdin: TextIO | None) -> Iterator[ManifestText]:
    """Open ``source`` (a path, or ``-`` for standard input) as ``ManifestText``."""
    if source == "-":
        stream = stdin if stdin is not None else sys.stdin
        base_dir = os.getcwd()
        buffer = getattr(stream, "buffer", None)
        if buffer is None:  # a text-only stream such as io.StringIO
            yield ManifestText(stream, STDIN_LABEL, base_dir)
            return
        wrapper = _decoder(buffer)
        try:
            yield ManifestText(wrapper, STDIN_LABEL, base_dir)
        finally:
            # Leave the caller's stdin open: closing our wrapper would close it.
            wrapper.detach()
        return
    try:
        raw = open(source, "rb")  # noqa: SIM115 - closed through the wrapper below
    except OSError as exc:
        raise ManifestError(unreadable_message(source, exc)) from exc
    # A pipe (``<(command)`` in a shell, /dev/fd/N) has no folder of its own.
    regular = os.path.isfile(source)
    base_dir = os.path.dirname(os.path.abspath(source)) if regular else os.getcwd()
    with _decoder(raw) as wrapper:
        yield ManifestText(wrapper, source, base_dir)


def unreadable_message(path: str, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"manifest {path} does not exist; check the path"
    if isinstance(exc, IsADirectoryError):
        return (
            f"manifest {path} is a folder; give the manifest file inside it, or make one from "
            f"the masks in it: segcli manifest {path} --segments classes.yaml -o manifest.yaml"
        )
    if isinstance(exc, PermissionError):
        return f"manifest {path} cannot be read: permission denied; check its permissions"
    return f"manifest {path} cannot be read: {exc.strerror or exc}"


def _decoder(buffer: io.BufferedIOBase | object) -> io.TextIOWrapper:
    return io.TextIOWrapper(
        buffer,  # type: ignore[arg-type]
        encoding="utf-8",
        errors="surrogateescape",
        newline="",
    )
