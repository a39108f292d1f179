"""Segment table files: the ``--segments FILE`` default and per-item tables.

A table file is one of:

- YAML: a list of ``{index, label, metadata}`` mappings, or a mapping whose
  ``segments`` key holds that list;
- JSON (``.json``): the same shapes;
- CSV: a header with ``index`` and ``label``; a ``metadata`` column holds a
  JSON object, and every other column becomes a string metadata value
  (empty cells are left out). The same rule applies to one-row-per-segment
  CSV manifests.

Tables are small, so a file is read whole.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from segcli.codes import RULES, Finding
from segcli.errors import ManifestError
from segcli.manifest.segments import TableBuilder, describe
from segcli.model import Segment, Severity

#: CSV columns with a meaning of their own in a segment row
SEGMENT_COLUMNS = ("index", "label", "metadata")


@dataclass(frozen=True, slots=True)
class SegmentTable:
    segments: tuple[Segment, ...]
    #: problems of single segments; messages name the file and line
    findings: tuple[Finding, ...]
    #: segment keys that are not index/label/metadata
    unknown: frozenset[str]

    def errors(self) -> list[str]:
        return [msg for code, msg in self.findings if RULES[code][0] is Severity.ERROR]


def load_segment_table(path: str | os.PathLike[str]) -> tuple[Segment, ...]:
    """Read a segment table file; raise ``ManifestError`` if any segment is wrong."""
    return checked_table(os.fspath(path)).segments


def checked_table(path: str) -> SegmentTable:
    """A table that is usable as a default for every item: no errors, not empty."""
    table = read_segment_table(path)
    errors = table.errors()
    if errors:
        listing = "\n  ".join(errors)
        raise ManifestError(f"segment table {path} has problems; fix them:\n  {listing}")
    if not table.segments:
        raise ManifestError(f"segment table {path} has no segments; list at least one")
    return table


def read_segment_table(path: str, *, label: str | None = None) -> SegmentTable:
    """Parse a table file; only unreadable or unparseable files raise."""
    name = label if label is not None else path
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            text = handle.read()
    except FileNotFoundError as exc:
        raise ManifestError(f"segment table {name} does not exist; check the path") from exc
    except UnicodeDecodeError as exc:
        raise ManifestError(
            f"segment table {name} is not UTF-8 text ({exc.reason}); save it as UTF-8"
        ) from exc
    except OSError as exc:
        raise ManifestError(f"segment table {name} cannot be read: {exc.strerror or exc}") from exc
    kind = table_format(path, text)
    builder = TableBuilder()
    if kind == "csv":
        _csv_table(text, name, builder)
    else:
        entries, where = _yaml_table(text, name) if kind == "yaml" else _json_table(text, name)
        for entry, place in zip(entries, where, strict=True):
            builder.add(entry, place)
    return SegmentTable(builder.result(), tuple(builder.findings), frozenset(builder.unknown))


def table_format(path: str, text: str) -> str:
    extension = os.path.splitext(path)[1].lower()
    if extension in (".yaml", ".yml"):
        return "yaml"
    if extension == ".json":
        return "json"
    if extension in (".csv", ".tsv"):
        return "csv"
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if first.startswith(("[", "{")):
        return "json"
    if "," in first and "index" in first and ":" not in first:
        return "csv"
    return "yaml"


def _entries(value: object, name: str) -> list[Any]:
    if isinstance(value, dict) and "segments" in value:
        value = value["segments"]
    if value is None:
        return []
    if not isinstance(value, list):
        raise ManifestError(
            f"segment table {name} must be a list of {{index, label}} mappings (or a mapping "
            f"with a 'segments' list), not {describe(value)}"
        )
    return value


def _json_table(text: str, name: str) -> tuple[list[Any], list[str]]:
    try:
        value = json.loads(text) if text.strip() else None
    except ValueError as exc:
        raise ManifestError(f"segment table {name} is not valid JSON: {exc}") from exc
    entries = _entries(value, name)
    return entries, [f"{name}: segment {n + 1}" for n in range(len(entries))]


def _yaml_table(text: str, name: str) -> tuple[list[Any], list[str]]:
    from segcli.manifest.yaml_nodes import load_document

    value, node, duplicates = load_document(text, name)
    if duplicates:
        raise ManifestError(f"segment table {name}: {duplicates[0][1]}")
    entries = _entries(value, name)
    lines = _entry_lines(node, len(entries))
    return entries, [
        f"{name}:{line}" if line else f"{name}: segment {n + 1}" for n, line in enumerate(lines)
    ]


def _entry_lines(node: Any, count: int) -> list[int | None]:
    from segcli.manifest.yaml_nodes import list_lines, mapping_value

    if node is not None and mapping_value(node, "segments") is not None:
        node = mapping_value(node, "segments")
    lines: list[int | None] = [*list_lines(node)]
    return lines if len(lines) == count else [None] * count


def _csv_table(text: str, name: str, builder: TableBuilder) -> None:
    rows = csv_rows(csv.reader(io.StringIO(text, newline="")))
    header = next(rows, None)
    if header is None:
        return
    _, names = header
    keys = [column.lower() for column in names]
    if "index" not in keys or "label" not in keys:
        raise ManifestError(
            f"segment table {name} needs a header with 'index' and 'label' columns "
            f"(found: {', '.join(names)})"
        )
    for line, cells in rows:
        entry, found = segment_entry(names, keys, cells, f"{name}:{line}")
        builder.findings.extend(found)
        if entry is not None:
            builder.add(entry, f"{name}:{line}", text=True)


def csv_rows(reader: Iterator[list[str]]) -> Iterator[tuple[int, list[str]]]:
    """Non-blank CSV records with the line each starts on, cells stripped."""
    line_num = getattr(reader, "line_num", 0)
    previous = line_num
    for row in reader:
        start = previous + 1
        previous = getattr(reader, "line_num", previous + 1)
        cells = [cell.strip() for cell in row]
        if any(cells):
            yield start, cells


def segment_entry(
    names: Sequence[str],
    keys: Sequence[str],
    cells: Sequence[str],
    where: str,
    reserved: Sequence[str] = SEGMENT_COLUMNS,
) -> tuple[dict[str, Any] | None, list[Finding]]:
    """The ``{index, label, metadata}`` entry of one CSV row.

    A ``metadata`` cell holds a JSON object; every column that is not in
    ``reserved`` adds a string value to it (empty cells are skipped). A row
    whose index and label are both empty carries no segment (None).
    """
    row = dict(zip(keys, cells, strict=False))
    index = row.get("index", "")
    label = row.get("label", "")
    if not index and not label:
        return None, []
    metadata: object = None
    cell = row.get("metadata", "")
    if cell:
        try:
            metadata = json.loads(cell)
        except ValueError as exc:
            reason = getattr(exc, "msg", str(exc))
            return None, [
                (
                    "bad-metadata",
                    f"{where}: the metadata cell is not valid JSON ({reason}); write a JSON "
                    'object such as {"color": "red"}',
                )
            ]
    extra = {
        name: value
        for name, key, value in zip(names, keys, cells, strict=False)
        if key not in reserved and value
    }
    if extra:
        if metadata is None:
            metadata = extra
        elif isinstance(metadata, dict):
            metadata = {**metadata, **extra}
    return {"index": index, "label": label, "metadata": metadata}, []
