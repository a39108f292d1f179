"""JSONL (NDJSON) manifests: one segmentation per line, as Nucleus writes it.

    {"reference_id": "img_001", "mask_url": "masks/img_001.png",
     "annotations": [{"label": "bg", "index": 0}], "annotation_id": null,
     "type": "mask"}

``mask`` is accepted for ``mask_url`` and ``segments`` for ``annotations``;
``width``/``height`` are optional. ``type``, when present, must be
``"mask"``. Blank lines are skipped. A line that is not a JSON object still
becomes an item (reference_id recovered when it can be), carrying one
``manifest-syntax`` problem, and reading goes on with the next line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from segcli.codes import Finding
from segcli.manifest.items import ABSENT, ItemBuilder, RawItem
from segcli.manifest.segments import describe
from segcli.manifest.text import ManifestText
from segcli.model import MaskItem

FIELDS = frozenset(
    {"reference_id", "mask_url", "mask", "annotations", "segments", "annotation_id", "type"}
    | {"width", "height", "image"}
)
_HINT = (
    "a line has reference_id, mask_url, annotations, annotation_id, type, width, height and image"
)
_REFERENCE_ID = re.compile(r'"reference_id"\s*:\s*"((?:[^"\\]|\\.)*)"')


def read_jsonl(text: ManifestText, builder: ItemBuilder) -> Iterator[MaskItem]:
    repeated: list[str] = []
    # One decoder for the whole file (json.loads with a hook builds one per line).
    decode = json.JSONDecoder(object_pairs_hook=_pairs_hook(repeated)).decode
    for number, line in enumerate(text, start=1):
        if not line.strip():
            text.take_bad(number)
            continue
        found: list[Finding] = [("manifest-syntax", bad) for bad in text.take_bad(number)]
        repeated.clear()
        try:
            # json.loads also refuses a byte-order mark, with its own message.
            record = decode(line) if not line.startswith("\ufeff") else json.loads(line)
        except (ValueError, RecursionError) as exc:
            found.append(("manifest-syntax", _syntax(number, line, exc)))
            yield builder.build(
                RawItem(line=number, reference_id=_recover_id(line), findings=found, broken=True)
            )
            continue
        if not isinstance(record, dict):
            found.append(
                (
                    "manifest-syntax",
                    f"line {number} holds {describe(record)}, not a JSON object; "
                    "each line must be one segmentation object",
                )
            )
            yield builder.build(RawItem(line=number, findings=found, broken=True))
            continue
        for key in dict.fromkeys(repeated):
            found.append(
                (
                    "manifest-syntax",
                    f"line {number}: the key {key!r} appears twice in one object; JSON keeps "
                    "only the last one, so remove one",
                )
            )
        yield builder.build(_raw_item(number, record, found, builder))


def _pairs_hook(repeated: list[str]) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    """A json object hook that notes repeated keys, which plain json.loads drops silently."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        record = dict(pairs)
        if len(record) != len(pairs):
            seen: set[str] = set()
            for key, _value in pairs:
                if key in seen:
                    repeated.append(key)
                seen.add(key)
        return record

    return hook


def _raw_item(
    number: int, record: dict[str, Any], found: list[Finding], builder: ItemBuilder
) -> RawItem:
    if not FIELDS.issuperset(record):
        found.extend(builder.unknown("field", [k for k in record if k not in FIELDS], _HINT))
    if "mask_url" in record and "mask" in record:
        found.append(("manifest-syntax", "the line gives both mask_url and mask; keep one"))
    if "annotations" in record and "segments" in record:
        found.append(("manifest-syntax", "the line gives both annotations and segments; keep one"))
    kind = record.get("type", "mask")
    if kind != "mask":
        found.append(
            (
                "manifest-syntax",
                f"type is {kind!r}; segcli reads segmentation masks only (type 'mask')",
            )
        )
    table = record["annotations"] if "annotations" in record else record.get("segments")
    segments, table_found = builder.segments_from(
        table, text=False, where=lambda n: f"segment {n + 1}"
    )
    found.extend(table_found)
    return RawItem(
        line=number,
        reference_id=record.get("reference_id"),
        mask=record["mask_url"] if "mask_url" in record else record.get("mask"),
        annotation_id=record.get("annotation_id", ABSENT),
        width=record.get("width"),
        height=record.get("height"),
        image=record.get("image"),
        segments=segments,
        findings=found,
    )


def _syntax(number: int, line: str, exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        # pos, not colno: a line ending in a newline would move the column to "line 2".
        column = min(exc.pos, len(line.rstrip("\r\n"))) + 1
        reason = f"{exc.msg} at column {column}"
    else:
        reason = "nested too deeply"
    return f"line {number} is not valid JSON ({reason}); each line must be one JSON object"


def _recover_id(line: str) -> str:
    match = _REFERENCE_ID.search(line)
    if match is None:
        return ""
    try:
        value = json.loads(f'"{match.group(1)}"')
    except ValueError:
        return ""
    return value if isinstance(value, str) else ""
