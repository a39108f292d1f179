"""Manifest text: open a file or standard input and hand out its lines.

Bytes are decoded line by line so that one bad byte spoils one line, not the
whole manifest: undecodable bytes become U+FFFD and the line number is kept
in ``bad`` for the reader to turn into a problem on the item that holds it
(YAML, which cannot be read around a hole, raises instead). Lines keep their
endings (``newline=""``) because the csv module needs them to read quoted
fields that span lines.

A reader that needs two passes (YAML, whose top-level keys may come in any
order) calls ``record()`` before the first and ``replay()`` for the second:
a regular file is simply opened again; standard input or a pipe is copied
to a temporary file as the first pass reads it, so memory stays flat.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO, TextIO

from segcli.errors import ManifestError

STDIN_LABEL = "<stdin>"

# surrogateescape turns each undecodable byte into one of these code points.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
_UTF16_BOMS = ("\udcff\udcfe", "\udcfe\udcff")


class ManifestText:
    """The decoded lines of one manifest, with a one-way peek for sniffing."""

    def __init__(
        self,
        stream: Iterable[str],
        label: str,
        base_dir: str,
        *,
        base_note: str | None = None,
        path: str | None = None,
    ) -> None:
        self.label = label
        #: folder that relative mask paths resolve against (absolute)
        self.base_dir = base_dir
        #: that folder and why it is the one, for messages
        self.base_note = base_note or base_dir
        #: line number -> what is wrong with its bytes, until a reader takes it
        self.bad: dict[int, str] = {}
        self._stream = iter(stream)
        self._peeked: list[str] = []
        self._read_count = 0
        self._path = path  # a regular file: a second pass opens it again
        self._copy: IO[str] | None = None  # otherwise what the first pass read

    def record(self) -> None:
        """Keep what is read from now on (and what was peeked), for ``replay``."""
        if self._path is None and self._copy is None:
            self._copy = tempfile.TemporaryFile("w+", encoding="utf-8", newline="")  # noqa: SIM115 - closed by close()
            for line in self._peeked:
                self._copy.write(line)

    @contextlib.contextmanager
    def replay(self) -> Iterator[ManifestText]:
        """The same manifest from its first line, for a second pass."""
        if self._path is not None:
            with open(self._path, "rb") as raw, _decoder(raw) as wrapper:
                yield self._again(wrapper)
            return
        if self._copy is None:
            raise RuntimeError("replay() needs record() before the first pass")
        self._copy.seek(0)
        yield self._again(self._copy)

    def line(self, number: int) -> str | None:
        """Line ``number`` (1-based) as read, for an error message; None if unknown."""
        if self._path is not None:
            with open(self._path, encoding="utf-8", errors="replace", newline="") as source:
                return _nth(source, number)
        if self._copy is not None:
            self._copy.seek(0)
            return _nth(self._copy, number)
        return None

    def close(self) -> None:
        if self._copy is not None:
            self._copy.close()
            self._copy = None

    def _again(self, stream: Iterable[str]) -> ManifestText:
        return ManifestText(stream, self.label, self.base_dir, base_note=self.base_note)

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
        if self._copy is not None:
            self._copy.write(line)
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


def _nth(lines: Iterable[str], number: int) -> str | None:
    for n, text in enumerate(lines, start=1):
        if n == number:
            return text
    return None


@contextlib.contextmanager
def open_text(
    source: str, stdin: TextIO | None, *, base_dir: str | None = None
) -> Iterator[ManifestText]:
    """Open ``source`` (a path, or ``-`` for standard input) as ``ManifestText``.

    Relative paths in it resolve against ``base_dir`` when given, else the
    manifest's folder, else (standard input, a pipe) the working directory.
    """
    if source == "-":
        stream = stdin if stdin is not None else sys.stdin
        base, note = _base(base_dir, None, "standard input")
        buffer = getattr(stream, "buffer", None)
        if buffer is None:  # a text-only stream such as io.StringIO
            text = ManifestText(stream, STDIN_LABEL, base, base_note=note)
            try:
                yield text
            finally:
                text.close()
            return
        wrapper = _decoder(buffer)
        text = ManifestText(wrapper, STDIN_LABEL, base, base_note=note)
        try:
            yield text
        finally:
            text.close()
            # Leave the caller's stdin open: closing our wrapper would close it.
            wrapper.detach()
        return
    try:
        raw = open(source, "rb")  # noqa: SIM115 - closed through the wrapper below
    except OSError as exc:
        raise ManifestError(unreadable_message(source, exc)) from exc
    # A pipe (``<(command)`` in a shell, /dev/fd/N) has no folder of its own.
    regular = os.path.isfile(source)
    folder = os.path.dirname(os.path.abspath(source)) if regular else None
    base, note = _base(base_dir, folder, "a pipe")
    with _decoder(raw) as wrapper:
        text = ManifestText(wrapper, source, base, base_note=note, path=source if regular else None)
        try:
            yield text
        finally:
            text.close()


def _base(base_dir: str | None, folder: str | None, stream: str) -> tuple[str, str]:
    """The folder relative paths resolve against, and how to say why in a message."""
    if base_dir is not None:
        base = os.path.abspath(base_dir)
        return base, f"--base-dir {base}"
    if folder is not None:
        return folder, f"the manifest's folder {folder}"
    cwd = os.getcwd()
    return cwd, (
        f"the working directory {cwd}, as the manifest came from {stream}; "
        "--base-dir DIR resolves them elsewhere"
    )


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
