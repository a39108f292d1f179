"""How a manifest item differs from the segmentation a server holds for it.

The verdicts ``verify`` reports, and the pure functions that find them over
the item and the server's JSON; ``readback`` does the I/O.
Segments are compared by pixel value (index): a label or metadata that
differs, an index only the manifest has, an index only the server has. The
order of segments does not matter (the official client sorts them before
comparing, ``SegmentationAnnotation.__eq__``).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from segcli.model import MaskItem, Segment


class Check(str, enum.Enum):
    MATCH = "match"
    MISSING = "missing"
    DIFFERENT_SEGMENTS = "different-segments"
    DIFFERENT_MASK = "different-mask"
    EXTRA = "extra"
    INVALID = "invalid"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class ItemCheck:
    """The verdict on one item. ``differences`` holds one record per difference."""

    reference_id: str
    state: Check
    source: str | None = None
    message: str | None = None
    differences: tuple[dict[str, Any], ...] = ()
    mask: dict[str, Any] | None = None  # {"compared": "sha256"|"mask_url", "manifest", "server"}
    #: the manifest's item (None for an extra item), for the --html page; not in as_dict
    item: MaskItem | None = field(default=None, compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "reference_id": self.reference_id,
            "source": self.source,
            "state": self.state.value,
            "message": self.message,
            "differences": list(self.differences),
            "mask": self.mask,
        }


@dataclass
class VerifyStats:
    counts: dict[str, int] = field(default_factory=lambda: {c.value: 0 for c in Check})
    manifest_items: int = 0  # items read from the manifest (before sampling)

    @property
    def checked(self) -> int:
        return sum(self.counts.values())

    @property
    def ok(self) -> bool:
        return self.checked == self.counts[Check.MATCH.value]

    def as_dict(self) -> dict[str, Any]:
        return {
            "manifest_items": self.manifest_items,
            "checked": self.checked,
            "ok": self.ok,
            "counts": dict(self.counts),
        }


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def held_segmentation(body: Any) -> Mapping[str, Any] | None:
    """The first segmentation of a refloc-like answer (``annotations.segmentation``), if any."""
    if not isinstance(body, Mapping):
        return None
    annotations = body.get("annotations")
    if not isinstance(annotations, Mapping):
        return None
    segmentations = annotations.get("segmentation")
    if isinstance(segmentations, list) and segmentations:
        first = segmentations[0]
        return first if isinstance(first, Mapping) else None
    return None


def _held_segments(held: Mapping[str, Any]) -> dict[Any, Mapping[str, Any]]:
    out: dict[Any, Mapping[str, Any]] = {}
    for segment in held.get("annotations") or []:
        if isinstance(segment, Mapping):
            out.setdefault(segment.get("index"), segment)
    return out


def segment_differences(
    segments: Sequence[Segment], held: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """One record per difference: ``{"index", "field", "manifest", "server"}``.

    ``field`` is ``label``, ``metadata``, ``index`` (the value is in one table
    only; the other side is null) or ``annotation_id`` (index null).
    """
    found: list[dict[str, Any]] = []
    on_server = _held_segments(held)
    for segment in sorted(segments, key=lambda s: s.index):
        theirs = on_server.pop(segment.index, None)
        if theirs is None:
            found.append(_diff(segment.index, "index", segment.index, None))
            continue
        if theirs.get("label") != segment.label:
            found.append(_diff(segment.index, "label", segment.label, theirs.get("label")))
        mine_meta = dict(segment.metadata or {})
        their_meta = theirs.get("metadata") or {}
        if mine_meta != their_meta:  # as values: key order does not matter
            found.append(_diff(segment.index, "metadata", mine_meta, their_meta))
    for index in sorted(on_server, key=str):
        found.append(_diff(index, "index", None, index))
    return found


def annotation_id_difference(item: MaskItem, held: Mapping[str, Any]) -> dict[str, Any] | None:
    theirs = held.get("annotation_id")
    if theirs == item.annotation_id:
        return None
    return _diff(None, "annotation_id", item.annotation_id, theirs)


def describe(differences: Sequence[Mapping[str, Any]]) -> str:
    """The differences in one line: ``label of 1: 'car' here, 'truck' on the server``."""
    parts = []
    for d in differences:
        mine, theirs = d["manifest"], d["server"]
        if d["field"] == "index":
            where = "only in the manifest" if theirs is None else "only on the server"
            parts.append(f"segment {mine if theirs is None else theirs} is {where}")
        elif d["field"] == "annotation_id":
            parts.append(f"annotation_id {mine!r} here, {theirs!r} on the server")
        else:
            parts.append(f"{d['field']} of {d['index']}: {mine!r} here, {theirs!r} on the server")
    return "; ".join(parts)


def _diff(index: Any, field: str, manifest: Any, server: Any) -> dict[str, Any]:
    return {"index": index, "field": field, "manifest": manifest, "server": server}


def mask_message(mask: Mapping[str, Any]) -> str:
    if mask["compared"] == "sha256":
        return (
            f"the server's copy of the mask has other bytes ({mask['server']}) "
            f"than the file ({mask['manifest']}); re-upload with --update"
        )
    return f"the server holds mask_url {mask['server']!r}, the manifest {mask['manifest']!r}"


def scrubbed(check: ItemCheck, scrub: Callable[[str], str]) -> ItemCheck:
    """The check with the key blanked out of everything a server may have echoed."""

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return scrub(value)
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(clean(v) for v in value)
        return value

    return ItemCheck(
        check.reference_id,
        check.state,
        check.source,
        clean(check.message),
        clean(check.differences),
        clean(check.mask),
        check.item,
    )
