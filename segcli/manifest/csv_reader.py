"""CSV manifests, in two layouts told apart by the header.

Wide, one row per mask::

    reference_id,mask,annotation_id,segments,width,height
    img_001,masks/img_001.png,,"[{""index"": 0, ""label"": ""bg""}]",640,480
    img_002,masks/img_002.png,,tables/street.yaml,,

``segments`` holds inline JSON (a list of ``{index, label, metadata}``) or
the path of a segment table file (YAML, JSON or CSV; relative to the
manifest's folder; each file is read once). An empty cell, or no such
column, means the default table (``--segments``). Columns other than
reference_id, mask (or mask_url), annotation_id, segments, width, height and
image are ignored with one ``unknown-field`` warning on the first item.

Long, one row per segment (the header has ``index`` and ``label``)::

    reference_id,mask,index,label,metadata,confidence
    img_001,masks/img_001.png,0,background,,
    img_001,,1,car,"{""color"": ""red""}",0.93

Consecutive rows with the same reference_id are one item, which starts at
its first row; mask, annotation_id, width, height and image may be left empty after
that row (a different value is a problem). A ``metadata`` cell holds a JSON
object and every other column adds a string value to it, so the ``car``
above gets ``{"color": "red", "confidence": "0.93"}``. A reference_id whose
rows are not consecutive is a duplicate.

Cells are stripped of surrounding spaces; an empty cell means "not given".
Quoted cells may hold commas and line breaks; an item's line is the line its
record starts on.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from segcli.codes import Finding
from segcli.errors import ManifestError
from segcli.manifest.items import ABSENT, ItemBuilder, RawItem
from segcli.manifest.segments import TableBuilder
from segcli.manifest.tables import segment_entry
from segcli.manifest.text import ManifestText
from segcli.model import MaskItem

WIDE_COLUMNS = (
    "reference_id",
    "mask",
    "mask_url",
    "annotation_id",
    "segments",
    "width",
    "height",
    "image",
)
LONG_COLUMNS = (
    "reference_id",
    "mask",
    "mask_url",
    "annotation_id",
    "width",
    "height",
    "image",
    "index",
    "label",
    "metadata",
)
# Fields of a long-layout item that its later rows may repeat but not change.
_ITEM_CELLS = ("mask", "annotation_id", "width", "height", "image")


@dataclass(slots=True)
class _Record:
    line: int
    cells: dict[str, str]
    raw: list[str]
    findings: list[Finding]


def read_csv(text: ManifestText, builder: ItemBuilder) -> Iterator[MaskItem]:
    records = _records(text)
    header = next(records, None)
    if header is None:
        return  # empty, or blank lines only
    if not header.raw or header.findings:
        raise ManifestError(
            f"{text.label}:{header.line}: the header cannot be read ({header.findings[0][1]})"
        )
    names = header.raw
    keys = _header_keys(text.label, names)
    if "index" in keys or "label" in keys:
        builder.segments_hint = (
            "add rows with its index and label, or give a default table (--segments FILE)"
        )
        yield from _long(builder, names, keys, records)
    else:
        builder.segments_hint = (
            "fill its segments cell (inline JSON or a table file), or give a default table "
            "(--segments FILE)"
        )
        yield from _wide(builder, keys, records)


def _header_keys(label: str, names: list[str]) -> list[str]:
    keys = [name.lower() for name in names]
    repeated = sorted({key for key in keys if keys.count(key) > 1 and key})
    if repeated:
        raise ManifestError(f"{label}: the header names {', '.join(repeated)} twice; keep one")
    missing = [c for c in ("reference_id", "mask") if c not in keys]
    if missing == ["mask"] and "mask_url" in keys:
        missing = []
    if missing:
        line = ",".join(names)
        hint = ""
        if ";" in line or "\t" in line:
            hint = " (segcli reads comma-separated files; this header uses ';' or tabs)"
        raise ManifestError(
            f"{label}: the header has no {' or '.join(missing)} column{hint}; the first line "
            f"must name the columns, e.g. reference_id,mask,segments (found: {line[:200]})"
        )
    if "mask" in keys and "mask_url" in keys:
        raise ManifestError(f"{label}: the header has both mask and mask_url; keep one")
    if ("index" in keys) != ("label" in keys):
        raise ManifestError(
            f"{label}: the header has only one of index and label; a one-row-per-segment "
            "manifest needs both"
        )
    if "index" in keys and "segments" in keys:
        raise ManifestError(
            f"{label}: the header has both segments and index/label columns; use one layout: "
            "a segments cell per row, or one row per segment"
        )
    return ["mask" if key == "mask_url" else key for key in keys]


def _records(text: ManifestText) -> Iterator[_Record]:
    """Non-blank records, with the line each starts on. ``raw`` is [] if unparseable."""
    reader = csv.reader(text)
    previous = 0
    width = 0
    keys: list[str] = []
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            start, previous = previous + 1, reader.line_num
            found = [("manifest-syntax", f"line {start}: {exc}; check its quotes")]
            yield _Record(start, {}, [], [*found, *_bad(text, previous)])
            continue
        start, previous = previous + 1, reader.line_num
        cells = [cell.strip() for cell in row]
        if not any(cells):
            text.take_bad(previous)
            continue
        found = _bad(text, previous)
        if not keys:
            keys = [c.lower() for c in cells]
            keys = ["mask" if key == "mask_url" else key for key in keys]
            width = len(keys)
        elif len(cells) > width and any(cells[width:]):
            # A record over several lines with too many cells is most often a
            # quote left open: name the lines it swallowed, or they vanish.
            spans = f" (lines {start}-{previous} were read as one record: is a quote left open?)"
            found.append(
                (
                    "manifest-syntax",
                    f"line {start} has {len(cells)} cells but the header names {width} columns; "
                    "quote cells that contain commas" + (spans if previous > start else ""),
                )
            )
        yield _Record(start, dict(zip(keys, cells, strict=False)), cells, found)


def _bad(text: ManifestText, upto: int) -> list[Finding]:
    return [("manifest-syntax", bad) for bad in text.take_bad(upto)]


def _wide(builder: ItemBuilder, keys: list[str], records: Iterator[_Record]) -> Iterator[MaskItem]:
    unknown = [k for k in keys if k not in WIDE_COLUMNS and k]
    builder.note(builder.unknown("column", unknown, "known columns: " + ", ".join(WIDE_COLUMNS)))
    for record in records:
        if not record.raw:
            yield builder.build(RawItem(line=record.line, findings=record.findings, broken=True))
            continue
        cells = record.cells
        segments, found = builder.segments_from(
            cells.get("segments"), text=True, where=lambda n: f"segment {n + 1}"
        )
        yield builder.build(
            RawItem(
                line=record.line,
                reference_id=cells.get("reference_id"),
                mask=cells.get("mask"),
                annotation_id=cells.get("annotation_id", ABSENT),
                width=cells.get("width"),
                height=cells.get("height"),
                image=cells.get("image"),
                segments=segments,
                findings=[*record.findings, *found],
                text=True,
            )
        )


@dataclass(slots=True)
class _Group:
    """The rows of one item in the long layout."""

    first: _Record
    table: TableBuilder = field(default_factory=TableBuilder)
    findings: list[Finding] = field(default_factory=list)
    has_segment_rows: bool = False

    @property
    def reference_id(self) -> str:
        return self.first.cells.get("reference_id", "")

    def raw_item(self, builder: ItemBuilder) -> RawItem:
        cells = self.first.cells
        return RawItem(
            line=self.first.line,
            reference_id=cells.get("reference_id"),
            mask=cells.get("mask"),
            annotation_id=cells.get("annotation_id", ABSENT),
            width=cells.get("width"),
            height=cells.get("height"),
            image=cells.get("image"),
            segments=self.table.result() if self.has_segment_rows else None,
            findings=[
                *self.findings,
                *self.table.findings,
                *builder.segment_fields(self.table.unknown),
            ],
            text=True,
        )

    def add(self, record: _Record, names: Sequence[str], keys: Sequence[str]) -> None:
        self.findings.extend(record.findings)
        if record is not self.first:
            self._agree(record)
        where = f"line {record.line}"
        entry, found = segment_entry(names, keys, record.raw, where, reserved=LONG_COLUMNS)
        self.findings.extend(found)
        if entry is not None:
            self.has_segment_rows = True
            self.table.add(entry, where, text=True)
        elif found:
            self.has_segment_rows = True

    def _agree(self, record: _Record) -> None:
        for name in _ITEM_CELLS:
            value = record.cells.get(name, "")
            mine = self.first.cells.get(name, "")
            if not value or value == mine:
                continue
            if not mine:  # the first row left it empty: take it from this one
                self.first.cells[name] = value
                continue
            self.findings.append(
                (
                    "manifest-syntax",
                    f"line {record.line}: {name} {value!r} differs from {mine!r} on line "
                    f"{self.first.line}; rows of one item must agree (leave it empty after "
                    "the first row)",
                )
            )


def _long(
    builder: ItemBuilder,
    names: list[str],
    keys: list[str],
    records: Iterator[_Record],
) -> Iterator[MaskItem]:
    group: _Group | None = None
    for record in records:
        if not record.raw:
            if group is not None:
                yield builder.build(group.raw_item(builder))
                group = None
            yield builder.build(RawItem(line=record.line, findings=record.findings, broken=True))
            continue
        reference_id = record.cells.get("reference_id", "")
        if group is None or not reference_id or reference_id != group.reference_id:
            if group is not None:
                yield builder.build(group.raw_item(builder))
            group = _Group(record)
        group.add(record, names, keys)
    if group is not None:
        yield builder.build(group.raw_item(builder))
