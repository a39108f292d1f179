"""Write a manifest, one item at a time: YAML, wide CSV or JSONL.

The reverse of the readers, for ``segcli manifest`` and ``segcli convert``:
what it writes, ``load_manifest`` reads back to equal items. Items stream
out as they come (the YAML ``items:`` list is opened once and appended to),
so a manifest of any length is written in constant memory.

Local mask paths are written relative to the manifest's folder (the
manifest and its masks move together), or absolute when the manifest goes
to standard output (where readers resolve against the working directory).
URLs are written as they are.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import IO, Any

from segcli.errors import UsageError
from segcli.manifest import _EXTENSIONS  # the readers' extensions are the writer's
from segcli.model import MaskItem, Segment

WRITE_FORMATS = ("yaml", "csv", "jsonl")
CSV_HEADER = ("reference_id", "mask", "annotation_id", "width", "height", "segments", "image")


def output_format(target: str, format: str | None) -> str:
    """The format to write: ``format``, else the extension; standard output defaults to JSONL."""
    if format:
        kind: str | None = {"yml": "yaml", "ndjson": "jsonl"}.get(format.lower(), format.lower())
        if kind not in WRITE_FORMATS:
            raise UsageError(f"unknown manifest format {format!r}; use yaml, csv or jsonl")
        return kind
    if target == "-":
        return "jsonl"  # line by line: what a pipe into `segcli upload -` reads best
    kind = _EXTENSIONS.get(os.path.splitext(target)[1].lower())
    if kind is None:
        raise UsageError(
            f"cannot tell the manifest format of {target} from its name; "
            "end it in .yaml, .csv or .jsonl, or give --format"
        )
    return kind


class ManifestWriter:
    """``write(item)`` for each item, then ``close()`` (or use it as a context manager).

    ``default_segments`` (YAML only) is written once at the top; items whose
    table equals it leave theirs out. ``void`` (YAML only) becomes the
    manifest's ``void:`` key.
    """

    def __init__(
        self,
        target: str,
        *,
        format: str | None = None,
        default_segments: Sequence[Segment] | None = None,
        void: Sequence[int] = (),
        comment: str | None = None,
        stdout: IO[str] | None = None,
    ) -> None:
        self.target = target
        self.format = output_format(target, format)
        self.count = 0
        self._default = (
            tuple(default_segments) if default_segments and self.format == "yaml" else None
        )
        self._to_stdout = target == "-"
        self._base = None if self._to_stdout else os.path.dirname(os.path.abspath(target))
        self._temporary = None if self._to_stdout else f"{target}.{os.getpid()}.tmp"
        try:
            if self._base is not None:
                os.makedirs(self._base, exist_ok=True)
            self._out: IO[str] = (
                (stdout or sys.stdout)
                if self._to_stdout
                else open(self._temporary or target, "w", encoding="utf-8", newline="")  # noqa: SIM115
            )
        except OSError as exc:
            raise UsageError(
                f"cannot write the manifest {target}: {exc.strerror or exc}; choose another -o"
            ) from exc
        self._csv: Any = None
        # The header waits for the first item: a run that fails before any
        # item leaves standard output empty rather than a manifest's start.
        self._header = (comment, list(void))
        self._started = False

    def _start(self) -> None:
        if self._started:
            return
        self._started = True
        comment, void = self._header
        if self.format == "csv":
            import csv

            self._csv = csv.writer(self._out, lineterminator="\n")
            self._csv.writerow(CSV_HEADER)
            return
        if self.format != "yaml":
            return
        if comment:
            self._out.write("".join(f"# {line}\n" for line in comment.splitlines()))
        if void:
            self._out.write(f"void: [{', '.join(str(v) for v in void)}]\n")
        if self._default:
            self._out.write(
                "segments:\n" + _segment_lines([_segment(s) for s in self._default], "  ")
            )
        self._out.write("items:\n")

    def write(self, item: MaskItem) -> None:
        self._start()
        mask = self._mask(item.mask)
        image = self._mask(item.image) if item.image else None  # written like the mask
        segments = [_segment(s) for s in item.segments]
        if self.format == "jsonl":
            record: dict[str, Any] = {
                "type": "mask",
                "mask_url": mask,
                "annotations": segments,
                "annotation_id": item.annotation_id,
                "reference_id": item.reference_id,
            }
            if item.width is not None:
                record["width"], record["height"] = item.width, item.height
            if image is not None:
                record["image"] = image
            self._out.write(json.dumps(record, ensure_ascii=False) + "\n")
        elif self.format == "csv":
            self._csv.writerow(
                [
                    item.reference_id,
                    mask,
                    item.annotation_id or "",
                    item.width or "",
                    item.height or "",
                    json.dumps(segments, ensure_ascii=False),
                    image or "",
                ]
            )
        else:
            entry: dict[str, Any] = {"reference_id": item.reference_id, "mask": mask}
            if item.annotation_id is not None:
                entry["annotation_id"] = item.annotation_id
            if item.width is not None:
                entry["width"], entry["height"] = item.width, item.height
            if image is not None:
                entry["image"] = image
            first = True
            for key, value in entry.items():
                self._out.write(f"{'  - ' if first else '    '}{key}: {flow(value)}\n")
                first = False
            if self._default is None or tuple(item.segments) != self._default:
                self._out.write("    segments:\n" + _segment_lines(segments, "      "))
        self.count += 1
        if self._to_stdout:
            self._out.flush()  # the reader at the other end of a pipe starts at once

    def _mask(self, mask: str) -> str:
        if self._base is None or "://" in mask or not os.path.isabs(mask):
            return mask
        relative = os.path.relpath(mask, self._base)
        # Inside the manifest's folder: relative, so both move together; elsewhere absolute.
        return mask if relative.startswith("..") else relative.replace(os.sep, "/")

    def close(self, *, keep: bool = True) -> None:
        """Finish the file; with ``keep=False`` (a failed run) an unfinished file is removed."""
        if keep:
            self._start()
        if self._to_stdout:
            self._out.flush()
            return
        if keep and self.format == "yaml" and self.count == 0:
            self._out.write("  []\n")
        self._out.close()
        if self._temporary is not None:
            if keep:
                os.replace(self._temporary, self.target)
            else:
                os.unlink(self._temporary)

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(keep=exc_type is None)


def _segment(segment: Segment) -> dict[str, Any]:
    out: dict[str, Any] = {"index": segment.index, "label": segment.label}
    if segment.metadata:
        out["metadata"] = dict(segment.metadata)
    return out


def _segment_lines(segments: list[dict[str, Any]], prefix: str) -> str:
    return "".join(f"{prefix}- {flow(s)}\n" for s in segments)


# Plain YAML scalars for the usual labels and keys; anything else is quoted.
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_ .()/-]*")
# Words YAML 1.1 reads as booleans or null.
_YAML_WORDS = frozenset(["y", "n", "yes", "no", "true", "false", "on", "off", "null", "~"])


def flow(value: Any) -> str:
    """One value in YAML flow style, for ``yaml.safe_load`` to read back equal.

    Written here, not by PyYAML's dumper: that costs ~1 ms a segment (54 ms
    for an image of 41 segments, more than converting it). Strings that could
    be read as something else are double-quoted (a JSON string is a valid
    YAML double-quoted scalar).
    """
    kind = type(value)
    if kind is str:
        return _string(value)
    if kind is dict:
        return "{" + ", ".join(f"{_string(str(k))}: {flow(v)}" for k, v in value.items()) + "}"
    if kind is int:
        return str(value)
    if kind is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    if kind is float:
        text = repr(value)
        if "e" in text and "." not in text:  # YAML 1.1 floats need the dot: 1e-05 -> 1.0e-05
            mantissa, exponent = text.split("e")
            sign = "" if exponent[0] in "+-" else "+"
            text = f"{mantissa}.0e{sign}{exponent}"
        return text
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return flow(dict(value))
    if isinstance(value, str):
        return _string(str(value))
    if isinstance(value, int):  # an int subclass (IntEnum...)
        return flow(bool(value) if isinstance(value, bool) else int(value))
    return _quoted(str(value))


@functools.lru_cache(maxsize=4096)  # labels and keys repeat on every item
def _string(text: str) -> str:
    plain = _PLAIN.fullmatch(text) and text.lower() not in _YAML_WORDS and text[-1] != " "
    return text if plain else _quoted(text)


# JSON leaves these raw; YAML refuses them, or reads them as line breaks.
_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")


def _quoted(text: str) -> str:
    quoted = json.dumps(text, ensure_ascii=False)
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)
