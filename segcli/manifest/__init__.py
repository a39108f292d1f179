"""Manifests: which mask belongs to which image, and what its values mean.

``load_manifest`` reads YAML, CSV (wide or long) or JSONL from a file or
standard input and yields one ``MaskItem`` per mask, lazily: a manifest of
any length is read in constant memory, except for the set of reference_ids
seen so far (needed to report duplicates). Each format's module documents
its shape: ``yaml_reader``, ``csv_reader``, ``jsonl_reader``; segment table
files are in ``tables``, the segment rules in ``segments`` and the rules
shared by every format (coercions, paths) in ``items``.

What stops the whole manifest raises ``ManifestError``: a file that cannot
be opened, text that is not UTF-8 from its first line (UTF-16, binary), an
unknown format, a CSV header without reference_id and mask, YAML that is not
a mapping or list or breaks YAML syntax, a broken default segment table.
Everything about one item is a ``Problem`` on that item, and the next item
is read as usual: a JSON line that does not parse, a CSV line with bytes
that are not UTF-8, a duplicate reference_id, a bad segment. An empty
manifest yields nothing (the caller reports that there are no items).

The format comes from ``format``, else the extension (``.yaml``/``.yml``,
``.csv``, ``.jsonl``/``.ndjson``), else the content: a first non-blank line
that is a one-line JSON object means JSONL; one holding a comma and
``reference_id`` means CSV; anything else is YAML (which also reads a JSON
document, so ``.json`` files are sniffed too).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TextIO

from segcli.errors import ManifestError
from segcli.manifest.items import ItemBuilder
from segcli.manifest.tables import SegmentTable, checked_table, load_segment_table
from segcli.manifest.text import STDIN_LABEL, ManifestText, open_text, unreadable_message
from segcli.model import MaskItem

__all__ = ["FORMATS", "ManifestItems", "load_manifest", "load_segment_table", "sniff_format"]

FORMATS = ("yaml", "csv", "jsonl")
_FORMAT_NAMES = {"yaml": "yaml", "yml": "yaml", "csv": "csv", "jsonl": "jsonl", "ndjson": "jsonl"}
_EXTENSIONS = {
    ".yaml": "yaml",
    ".yml": "yaml",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
_SEGMENTS_HINT = (
    "give it a segments list, add a top-level 'segments:' default, "
    "or give a default table (--segments FILE)"
)

Reader = Callable[[ManifestText, ItemBuilder], Iterator[MaskItem]]


def load_manifest(
    source: str | os.PathLike[str],
    *,
    format: str | None = None,
    default_segments: str | os.PathLike[str] | None = None,
    stdin: TextIO | None = None,
    base_dir: str | os.PathLike[str] | None = None,
    void: tuple[int, ...] = (),
) -> ManifestItems:
    """Yield the items of a manifest, each with the problems found in it.

    ``source`` is a path, or ``"-"`` for standard input (``stdin``, default
    ``sys.stdin``). ``format`` is ``"yaml"``, ``"csv"`` or ``"jsonl"``;
    None picks it from the extension or the content. ``default_segments``
    is a segment table file used by every item that has no table of its own
    (it wins over a YAML manifest's top-level ``segments``). ``base_dir`` is the
    folder relative mask and table paths resolve against; by default the
    manifest's folder (the working directory for standard input). ``void``
    lists pixel values allowed without a segment (see ``segcli.manifest.void``),
    added to a YAML manifest's own ``void:``.

    The result is lazy: nothing is read until the first item is asked for.
    A missing file, an unknown format or a bad default table raise
    ``ManifestError`` at the call; a problem found later that stops the whole
    manifest (broken YAML syntax, say) raises it from the iteration.
    """
    name = os.fspath(source)
    kind = _format_name(format) if format is not None else None
    if name != "-":
        if kind is None:
            kind = _EXTENSIONS.get(os.path.splitext(name)[1].lower())
        # Only the cheap, certain cases here; a pipe such as /dev/fd/63 is fine.
        if not os.path.exists(name):
            raise ManifestError(unreadable_message(name, FileNotFoundError()))
        if os.path.isdir(name):
            raise ManifestError(unreadable_message(name, IsADirectoryError()))
    table = checked_table(os.fspath(default_segments)) if default_segments is not None else None
    if base_dir is not None and not os.path.isdir(base_dir):
        raise ManifestError(f"--base-dir {os.fspath(base_dir)} is not a folder; check the path")
    base = os.fspath(base_dir) if base_dir is not None else None
    return ManifestItems(
        STDIN_LABEL if name == "-" else name, _items(name, kind, table, stdin, base, void)
    )


class ManifestItems(Iterator[MaskItem]):
    """The items of one manifest, lazily, with the manifest's name for messages."""

    def __init__(self, label: str, items: Iterator[MaskItem]) -> None:
        self.label = label
        self._items = items

    def __next__(self) -> MaskItem:
        return next(self._items)

    def close(self) -> None:
        close = getattr(self._items, "close", None)
        if close is not None:
            close()


def _items(
    name: str,
    kind: str | None,
    table: SegmentTable | None,
    stdin: TextIO | None,
    base_dir: str | None,
    void: tuple[int, ...] = (),
) -> Iterator[MaskItem]:
    with open_text(name, stdin, base_dir=base_dir) as text:
        if kind is None:
            kind = sniff_format(text.first_nonblank())
        builder = ItemBuilder(
            text.label, text.base_dir, segments_hint=_SEGMENTS_HINT, base_note=text.base_note
        )
        builder.void = tuple(sorted(set(void)))
        if table is not None:
            builder.default = table.segments
            builder.note(table.findings)  # only warnings: errors were raised
            builder.note(builder.segment_fields(table.unknown))
        yield from _reader(kind)(text, builder)


def sniff_format(first_line: str | None) -> str:
    """Guess the format from the first non-blank line (None: empty input)."""
    line = (first_line or "").strip()
    if line.startswith("{") and line.endswith("}"):
        return "jsonl"
    if (
        "," in line
        and "reference_id" in line.lower()
        and not line.startswith(("-", "#", "{", "["))
        and ": " not in line
    ):
        return "csv"
    return "yaml"


def _format_name(format: str) -> str:
    kind = _FORMAT_NAMES.get(format.strip().lower())
    if kind is None:
        raise ManifestError(f"unknown manifest format {format!r}; use one of {', '.join(FORMATS)}")
    return kind


def _reader(kind: str) -> Reader:
    # Imported on demand: reading a CSV never loads yaml.
    if kind == "yaml":
        from segcli.manifest.yaml_reader import read_yaml

        return read_yaml
    if kind == "csv":
        from segcli.manifest.csv_reader import read_csv

        return read_csv
    from segcli.manifest.jsonl_reader import read_jsonl

    return read_jsonl
