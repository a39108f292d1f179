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

import json
import os
import sys
from collections.abc import Sequence
from types import TracebackType
from typing import IO, Any

from segcli.errors import UsageError
from segcli.model import MaskItem, Segment

WRITE_FORMATS = ("yaml", "csv", "jsonl")
_EXTENSIONS = {
    ".yaml": "yaml",
    ".yml": "yaml",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
CSV_HEADER = ("reference_id", "mask", "annotation_id", "width", "height", "segments")


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
                ]
            )
        else:
            entry: dict[str, Any] = {"reference_id": item.reference_id, "mask": mask}
            if item.annotation_id is not None:
                entry["annotation_id"] = item.annotation_id
            if item.width is not None:
                entry["width"], entry["height"] = item.width, item.height
            self._out.write(_indent(_dump([entry]), "  "))
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


def _dump(value: Any) -> str:
    import yaml

    # Block style for the item (one field a line), flow style for each segment.
    text: str = yaml.safe_dump(
        value, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1000
    )
    return text


def _segment_lines(segments: list[dict[str, Any]], prefix: str) -> str:
    import yaml

    return "".join(
        f"{prefix}- "
        + yaml.safe_dump(
            s, sort_keys=False, default_flow_style=True, allow_unicode=True, width=10**6
        )
        for s in segments
    )


def _indent(text: str, prefix: str) -> str:
    return "".join(prefix + line + "\n" for line in text.splitlines())
