"""Segment tables: read ``{index, label, metadata}`` entries and check them.

Rules (each finding names the segment and says how to fix it):

- ``index``: an integer 0..255 (a uint8 mask holds nothing else). Booleans
  and floats are refused, even ``3.0``; a string of digits is accepted only
  where every value is text (CSV cells), elsewhere it must be a number.
- ``label``: a non-empty string. Numbers are turned into strings (``5`` ->
  ``"5"``) because that is surely what was meant; a boolean is refused since
  it is YAML reading an unquoted ``yes``/``no``/``on``/``off``.
- ``metadata``: absent, or a mapping with string keys whose values are JSON
  (strings, finite numbers, booleans, null, lists, mappings). NaN and
  infinity are refused: they are not JSON and Nucleus would reject them.
- an index used twice in one table: the later segment is dropped.

A segment with a problem is left out of the table; the finding stays.
Findings are ``(code, message)`` pairs: the item reader turns them into
``Problem``s once it knows the item's reference_id and source line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from segcli.codes import Finding
from segcli.model import Segment

SEGMENT_FIELDS = frozenset({"index", "label", "metadata"})
MAX_INDEX = 255
_JSON_SCALARS = frozenset({str, int, bool})
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")


class TableBuilder:
    """Collects the segments of one table, checking each as it is added."""

    def __init__(self) -> None:
        self.segments: list[Segment] = []
        self.findings: list[Finding] = []
        #: segment keys that are not index/label/metadata
        self.unknown: set[str] = set()
        self._where_of_index: dict[int, str] = {}

    def add(self, entry: object, where: str, *, text: bool = False) -> None:
        """Check one entry; ``text`` says its values are CSV text."""
        if not isinstance(entry, (dict, Mapping)):  # dict first: the ABC check is slow
            self.findings.append(
                (
                    "manifest-syntax",
                    f"{where}: a segment must be a mapping with index and label, "
                    f"not {describe(entry)}",
                )
            )
            return
        if not SEGMENT_FIELDS.issuperset(entry):
            self.unknown.update(str(k) for k in entry if k not in SEGMENT_FIELDS)
        index = self._index(entry.get("index"), where, text)
        label = self._label(entry.get("label"), where)
        metadata, metadata_ok = self._metadata(entry.get("metadata"), where)
        if index is None or label is None or not metadata_ok:
            return
        first = self._where_of_index.get(index)
        if first is not None:
            self.findings.append(
                (
                    "duplicate-segment-index",
                    f"{where}: index {index} is used twice (first by {first}); "
                    "each pixel value maps to one segment, so remove or renumber one",
                )
            )
            return
        self._where_of_index[index] = where
        self.segments.append(Segment(index=index, label=label, metadata=metadata))

    def result(self) -> tuple[Segment, ...]:
        return tuple(self.segments)

    def _index(self, value: object, where: str, text: bool) -> int | None:
        number: int | None = None
        reason = ""
        if value is None or (isinstance(value, str) and not value.strip()):
            reason = "segment has no index; give it its pixel value in the mask, 0..255"
        elif isinstance(value, bool):
            reason = f"index {describe(value)} is not an integer; give the pixel value 0..255"
        elif isinstance(value, int):
            number = value
        elif isinstance(value, str) and text and _INTEGER_TEXT.fullmatch(value.strip()):
            number = int(value)
        elif isinstance(value, str) and not text:
            reason = f"index {value!r} is a string; write it as a number, without quotes"
        elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
            reason = f"index {value!r} is not an integer; write it as {int(value)}"
        else:
            reason = f"index {value!r} is not an integer; give the pixel value 0..255"
        if number is None:
            self.findings.append(("bad-segment-index", f"{where}: {reason}"))
            return None
        if not 0 <= number <= MAX_INDEX:
            self.findings.append(
                (
                    "bad-segment-index",
                    f"{where}: segment index {number} is outside 0..{MAX_INDEX}; "
                    f"a uint8 mask can only hold values 0..{MAX_INDEX}",
                )
            )
            return None
        return number

    def _label(self, value: object, where: str) -> str | None:
        if isinstance(value, str):
            if value.strip():
                return value
            self.findings.append(
                ("empty-label", f"{where}: label is empty; give every segment a label")
            )
            return None
        if value is None:
            self.findings.append(
                ("empty-label", f"{where}: segment has no label; give every segment a label")
            )
            return None
        if isinstance(value, bool):
            reason = (
                f"label {str(value).lower()} is a boolean (YAML reads unquoted yes/no/on/off as "
                "booleans); put the label in quotes"
            )
        elif isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
            return str(value)
        else:
            reason = f"label must be a string, not {describe(value)}"
        self.findings.append(("manifest-syntax", f"{where}: {reason}"))
        return None

    def _metadata(self, value: object, where: str) -> tuple[Mapping[str, Any] | None, bool]:
        if value is None:
            return None, True
        if not isinstance(value, (dict, Mapping)):
            reason = f"metadata must be a mapping such as {{color: red}}, not {describe(value)}"
            self.findings.append(("bad-metadata", f"{where}: {reason}"))
            return None, False
        problem = json_problem(value, "metadata", set())
        if problem is not None:
            self.findings.append(("bad-metadata", f"{where}: {problem}"))
            return None, False
        return (dict(value) or None), True


def json_problem(value: object, path: str, active: set[int]) -> str | None:
    """Why ``value`` cannot be sent as JSON, or None when it can."""
    if value is None or type(value) in _JSON_SCALARS or isinstance(value, (str, int)):
        return None
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return f"{path} is {value!r}; NaN and infinity are not JSON, use null or a finite number"
    if isinstance(value, (dict, list, tuple, Mapping)):
        if id(value) in active:  # a YAML alias that contains itself
            return f"{path} contains itself (a recursive YAML alias); JSON cannot hold that"
        active.add(id(value))
        try:
            if isinstance(value, Mapping):
                for key, item in value.items():
                    if not isinstance(key, str):
                        return f"{path} has the key {key!r}, which is not a string; quote it"
                    found = json_problem(item, f"{path}.{key}", active)
                    if found:
                        return found
            else:
                for number, item in enumerate(value):
                    found = json_problem(item, f"{path}[{number}]", active)
                    if found:
                        return found
        finally:
            active.discard(id(value))
        return None
    return (
        f"{path} is {describe(value)}, which is not a JSON value; quote it to keep it as a string"
    )


def describe(value: object) -> str:
    """A short phrase for a value of the wrong kind: 'a list', 'the number 3'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__} ({str(value)[:40]})"
