"""Turn the fields of one manifest record into a checked ``MaskItem``.

The format readers only pick fields out of YAML, CSV or JSON; everything
they have in common lives here: coercions, mask path resolution, the
duplicate reference_id check, the default segment table, and warnings about
fields segcli does not use (each unknown name is reported once, on the first
item that has it, so a million-row CSV with one extra column gives one
warning, not a million).

Coercions, chosen to accept what people obviously meant and nothing else:

- reference_id and annotation_id: an integer becomes its decimal string
  (YAML reads ``reference_id: 123`` as a number); any other non-string is a
  problem. In CSV, where every cell is text, surrounding spaces are removed
  and an empty cell means "not given".
- width/height: positive integers; digits are accepted in CSV cells only.
- mask: a URI with a scheme (``s3://``, ``gs://``, ``https://``,
  ``memory://``...) is kept byte for byte, because a signed URL's query
  string must reach the server exactly as written. ``file:///abs/m.png``
  becomes ``/abs/m.png``. Any other value is a local path: ``~`` is
  expanded and a relative path is resolved against the manifest's folder
  (the working directory for standard input or a pipe), then made absolute.
- image (optional): the picture the mask belongs to, a path or URL resolved
  like mask; shown by ``segcli preview`` and the HTML report, never sent. A
  local image that is not there is an ``image-unreadable`` warning.
"""

from __future__ import annotations

import enum
import json
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit
from urllib.request import url2pathname

from segcli.codes import RULES, Finding, problem
from segcli.errors import ManifestError
from segcli.manifest.segments import TableBuilder, describe
from segcli.manifest.tables import SegmentTable, read_segment_table
from segcli.model import MaskItem, Segment, Severity, Source

# Distinct segment table files kept parsed; a manifest normally names a few.
TABLE_CACHE_SIZE = 64

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_DIGITS = re.compile(r"\+?[0-9]+")


class _Absent(enum.Enum):
    ABSENT = "absent"


#: a field that was not given at all (as opposed to given as null)
ABSENT = _Absent.ABSENT


@dataclass(slots=True)
class RawItem:
    """The fields of one record, as the format reader found them."""

    line: int
    reference_id: object = None
    mask: object = None
    annotation_id: object = ABSENT
    width: object = None
    height: object = None
    image: object = None
    #: the item's own table; None means "use the default"
    segments: tuple[Segment, ...] | None = None
    findings: list[Finding] = field(default_factory=list)
    #: True when every value is CSV text
    text: bool = False
    #: True when the record could not be parsed: only its findings are reported
    broken: bool = False


def _written_absolute(written: str) -> bool:
    """A mask written as a URL, ``~/...`` or an absolute path: no folder was needed."""
    text = written.strip()
    return bool(_SCHEME.match(text)) or text.startswith("~") or os.path.isabs(text)


def _plain_table_key(entries: list[object]) -> tuple[tuple[int, str], ...] | None:
    """``((index, label), ...)`` for a table of plain ``{index: int, label: str}`` entries.

    Types are tested exactly, so an index written ``true`` or ``1.0`` (equal
    to 1 in Python) never shares a key with ``1``; anything else (metadata,
    other keys, other types) gets None and is checked on its own.
    """
    key = []
    for entry in entries:
        if type(entry) is not dict or len(entry) != 2:
            return None
        index, label = entry.get("index"), entry.get("label")
        if type(index) is not int or type(label) is not str:
            return None
        key.append((index, label))
    return tuple(key)


class ItemBuilder:
    """Builds the items of one manifest, remembering what it has seen."""

    def __init__(
        self,
        label: str,
        base_dir: str,
        *,
        default: tuple[Segment, ...] | None = None,
        segments_hint: str = "",
        base_note: str | None = None,
    ) -> None:
        self.label = label
        self.base_dir = base_dir
        #: where relative paths lead and why, for messages ("the manifest's folder /data")
        self.base_note = base_note or base_dir
        self.default = default
        #: a str.format pattern with {reference_id}, for items without annotation_id
        self.annotation_pattern: str | None = None
        #: pixel values declared void (``void:`` / ``--void``), sorted
        self.void: tuple[int, ...] = ()
        self.segments_hint = segments_hint
        self._first_line: dict[str, int] = {}
        self._warned: set[tuple[str, str]] = set()
        self._pending: list[Finding] = []
        self._tables: OrderedDict[str, SegmentTable | str] = OrderedDict()
        # Inline tables that checked clean, by content: most manifests repeat
        # one table on every line, and checking it again is most of the cost
        # of reading such a line. Items with equal tables then share one
        # tuple, which lets later stages cache per table.
        self._plain_tables: OrderedDict[tuple[tuple[int, str], ...], tuple[Segment, ...]] = (
            OrderedDict()
        )

    # -- notes about the whole manifest, attached to the next item built

    def note(self, findings: Iterable[Finding]) -> None:
        self._pending.extend(findings)

    def unknown(self, kind: str, names: Collection[str], hint: str) -> list[Finding]:
        """``unknown-field`` warnings for names not reported before."""
        out: list[Finding] = []
        if not names:
            return out
        for name in sorted(names):
            if (kind, name) in self._warned:
                continue
            self._warned.add((kind, name))
            out.append(
                (
                    "unknown-field",
                    f"{kind} {name!r} is not used by segcli and is ignored ({hint}); "
                    "each unknown name is reported once",
                )
            )
        return out

    # -- segment tables

    def segments_from(
        self, value: object, *, text: bool, where: Callable[[int], str]
    ) -> tuple[tuple[Segment, ...] | None, list[Finding]]:
        """An item's own table from a list, inline JSON (CSV) or a table file path."""
        if value is None:
            return None, []
        if isinstance(value, str):
            cell = value.strip()
            if not cell:
                return None, []
            if not (text and cell.startswith("[")):
                return self._table_file(cell)
            try:
                value = json.loads(cell)
            except ValueError as exc:
                reason = getattr(exc, "msg", str(exc))
                return (), [
                    (
                        "manifest-syntax",
                        f"the segments cell is not valid JSON ({reason}); write a JSON list "
                        'such as [{"index": 0, "label": "background"}] or a table file path',
                    )
                ]
        if not isinstance(value, list):
            return (), [
                (
                    "manifest-syntax",
                    "segments must be a list of {index, label} mappings or the path of a "
                    f"segment table file, not {describe(value)}",
                )
            ]
        key = _plain_table_key(value)
        if key is not None:
            known = self._plain_tables.get(key)
            if known is not None:
                self._plain_tables.move_to_end(key)
                return known, []
        table = TableBuilder()
        for number, entry in enumerate(value):
            table.add(entry, where(number))
        segments = table.result()
        found = table.findings + self.segment_fields(table.unknown)
        if key is not None and not found:
            self._plain_tables[key] = segments
            if len(self._plain_tables) > TABLE_CACHE_SIZE:
                self._plain_tables.popitem(last=False)
        return segments, found

    def segment_fields(self, names: Collection[str]) -> list[Finding]:
        return self.unknown("segment field", names, "put extra values under metadata")

    def _table_file(self, written: str) -> tuple[tuple[Segment, ...] | None, list[Finding]]:
        if _SCHEME.match(written):
            return (), [
                (
                    "missing-segments",
                    f"segment table {written} is a URL; segment tables must be local files",
                )
            ]
        path = self.local_path(written)
        table = self._tables.get(path)
        if table is None:
            try:
                table = read_segment_table(path, label=written)
            except ManifestError as exc:
                table = str(exc)
            self._tables[path] = table
            if len(self._tables) > TABLE_CACHE_SIZE:
                self._tables.popitem(last=False)
        else:
            self._tables.move_to_end(path)
        if isinstance(table, str):
            if not os.path.isabs(written) and "does not exist" in table:
                table += f" (resolved against {self.base_note})"
            return (), [("missing-segments", table)]
        return table.segments, [*table.findings, *self.segment_fields(table.unknown)]

    # -- items

    def build(self, raw: RawItem) -> MaskItem:
        source = Source(self.label, raw.line)
        found: list[Finding] = []
        reference_id = self._reference_id(raw.reference_id, raw.text, found)
        relative = False
        if raw.broken:
            found = raw.findings
            mask = ""
            segments: tuple[Segment, ...] = ()
            annotation_id = width = height = image = None
        else:
            mask = self._mask(raw.mask, raw.text, found)
            relative = isinstance(raw.mask, str) and mask != "" and not _written_absolute(raw.mask)
            annotation_id = self._annotation_id(raw.annotation_id, reference_id, raw.text, found)
            width = self._size("width", raw.width, raw.text, found)
            height = self._size("height", raw.height, raw.text, found)
            image = self._image(raw.image, raw.text, found)
            found.extend(raw.findings)
            segments = self._segments(raw.segments, found)
            self._check_duplicate(reference_id, raw.line, found)
        if self._pending:
            found.extend(self._pending)
            self._pending = []
        problems = tuple(
            problem(code, message, reference_id=reference_id or None, source=source)
            for code, message in found
        )
        return MaskItem(
            reference_id=reference_id,
            mask=mask,
            segments=segments,
            source=source,
            annotation_id=annotation_id,
            width=width,
            height=height,
            problems=problems,
            base_note=self.base_note if relative else None,
            void=self.void,
            image=image,
        )

    def local_path(self, written: str) -> str:
        if written.startswith("~"):
            written = os.path.expanduser(written)
        return os.path.normpath(os.path.join(self.base_dir, written))

    def _segments(
        self, own: tuple[Segment, ...] | None, found: list[Finding]
    ) -> tuple[Segment, ...]:
        segments = own if own is not None else self.default
        if segments is None:
            found.append(
                ("missing-segments", f"the item has no segment table; {self.segments_hint}")
            )
            return ()
        if not segments and not any(RULES[code][0] is Severity.ERROR for code, _ in found):
            found.append(
                ("missing-segments", "the item's segment table is empty; list its segments")
            )
        return segments

    def _check_duplicate(self, reference_id: str, line: int, found: list[Finding]) -> None:
        if not reference_id:
            return
        first = self._first_line.get(reference_id)
        if first is None:
            self._first_line[reference_id] = line
            return
        found.append(
            (
                "duplicate-reference-id",
                f"reference_id {reference_id!r} already appears at {self.label}:{first}; "
                "Nucleus keeps one mask per item, so remove or rename one of them",
            )
        )

    def _reference_id(self, value: object, text: bool, found: list[Finding]) -> str:
        if isinstance(value, str):
            cleaned = value.strip() if text else value
            if cleaned.strip():
                return cleaned
        elif isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        elif value is not None:
            found.append(
                (
                    "manifest-syntax",
                    f"reference_id must be a string, not {describe(value)}; quote it",
                )
            )
            return ""
        found.append(
            (
                "missing-reference-id",
                "the item has no reference_id; give the reference_id of the dataset item "
                "this mask belongs to",
            )
        )
        return ""

    def _mask(self, value: object, text: bool, found: list[Finding]) -> str:
        if isinstance(value, str) and value.strip():
            return self.resolve_mask(value.strip() if text else value)
        if value is None or isinstance(value, str):
            found.append(
                ("missing-mask", "the item has no mask; give the path or URL of its PNG mask")
            )
        else:
            found.append(("manifest-syntax", f"mask must be a path or URL, not {describe(value)}"))
        return ""

    def resolve_mask(self, written: str) -> str:
        if _SCHEME.match(written):
            if written[:5].lower() != "file:":
                return written  # s3://, gs://, https://...: kept exactly as written
            parts = urlsplit(written)
            if (
                parts.scheme.lower() == "file"
                and parts.netloc in ("", "localhost")
                and not parts.query
                and not parts.fragment
            ):
                return url2pathname(parts.path)
            return written
        return self.local_path(written)

    def _annotation_id(
        self, value: object, reference_id: str, text: bool, found: list[Finding]
    ) -> str | None:
        if value is ABSENT or (text and isinstance(value, str) and not value.strip()):
            if self.annotation_pattern is None or not reference_id:
                return None
            return self.annotation_pattern.format(reference_id=reference_id)
        if value is None:
            return None
        if isinstance(value, str):
            if value.strip():
                return value.strip() if text else value
            reason = "annotation_id is empty; give a non-empty string or leave it out"
        elif isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        else:
            reason = f"annotation_id must be a string, not {describe(value)}; quote it"
        found.append(("bad-annotation-id", reason))
        return None

    def _image(self, value: object, text: bool, found: list[Finding]) -> str | None:
        """The image's path or URL, resolved like a mask's; a local one must exist.

        Only ``segcli preview`` and the HTML report read it, so a missing
        file is a warning here (a stat, no read): the mask is still checked
        and sent.
        """
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str):
            found.append(("manifest-syntax", f"image must be a path or URL, not {describe(value)}"))
            return None
        written = value.strip() if text else value
        image = self.resolve_mask(written)
        if _SCHEME.match(image) is None and not os.path.isfile(image):
            why = "is a folder" if os.path.isdir(image) else "does not exist"
            where = "" if _written_absolute(written) else f" (resolved against {self.base_note})"
            found.append(
                (
                    "image-unreadable",
                    f"image {image} {why}{where}; fix the path or leave image out (it is "
                    "only shown by segcli preview and --html, never sent)",
                )
            )
        return image

    def _size(self, name: str, value: object, text: bool, found: list[Finding]) -> int | None:
        if value is None:
            return None
        number: int | None = None
        if isinstance(value, str) and text:
            cell = value.strip()
            if not cell:
                return None
            if _DIGITS.fullmatch(cell):
                number = int(cell)
        elif isinstance(value, int) and not isinstance(value, bool):
            number = value
        if number is not None and number > 0:
            return number
        found.append(
            (
                "bad-size",
                f"{name} {value!r} is not a positive integer; give the mask's {name} in "
                "pixels, or leave it out",
            )
        )
        return None
