"""YAML manifests, read one item at a time.

Shape::

    segments:                       # optional default table for every item
      - {index: 0, label: background}
      - {index: 1, label: car, metadata: {color: red}}
    annotation_id: "{reference_id}-gt"   # optional default annotation_id
    items:
      - reference_id: img_001
        mask: masks/img_001.png     # relative to this file's folder
      - reference_id: img_002
        mask: s3://bucket/img_002.png
        annotation_id: special      # replaces the pattern for this item
        segments: [{index: 0, label: background}]   # replaces the default
        width: 640                  # optional expected size
        height: 480

``annotation_id`` at the top is a ``str.format`` pattern; ``{reference_id}``
is the only name it can use. A top-level ``segments`` may also be the path of
a segment table file, and so may an item's. A manifest may instead be a
plain list of items (no defaults). ``mask_url`` and ``annotations`` are
accepted for ``mask`` and ``segments`` (the Nucleus names).

Items are composed and built one by one from the parser's events, so a huge
list is never held whole. Top-level keys may come in any order (YAML
mappings are unordered; ``yaml.safe_dump`` sorts them, putting ``items``
first): a first pass reads them, and the syntax of the whole document,
before any item is built. Anchors and merge keys work across items. A key repeated in one mapping is
a ``manifest-syntax`` error on that item (plain YAML would silently keep the
last one); repeated top-level keys and broken YAML syntax are fatal.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    MappingEndEvent,
    MappingStartEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import Node, SequenceNode

from segcli.codes import Finding
from segcli.errors import ManifestError
from segcli.manifest.items import ABSENT, ItemBuilder, RawItem
from segcli.manifest.segments import describe
from segcli.manifest.tables import SegmentTable
from segcli.manifest.text import ManifestText
from segcli.manifest.yaml_nodes import (
    Composer,
    EventSource,
    construct,
    list_lines,
    mapping_value,
    parser,
    syntax_message,
)
from segcli.model import MaskItem, Segment

ITEM_FIELDS = frozenset(
    {"reference_id", "mask", "mask_url", "annotation_id", "segments", "annotations"}
    | {"width", "height", "type", "image"}
)
TOP_LEVEL_KEYS = ("segments", "annotation_id", "void", "items")
_ITEM_HINT = "an item has reference_id, mask, annotation_id, segments, width, height and image"


class _Chunks:
    """``read(size)`` over manifest lines, for the YAML parser."""

    def __init__(self, text: ManifestText) -> None:
        self.name = text.label
        self._text = text
        self._lines = iter(text)

    def read(self, size: int = -1) -> str:
        parts: list[str] = []
        total = 0
        for line in self._lines:
            parts.append(line)
            total += len(line)
            if 0 < size <= total:
                break
        if self._text.bad:
            first = min(self._text.bad)
            raise ManifestError(f"{self._text.label}: {self._text.bad[first]}")
        return "".join(parts)


def read_yaml(text: ManifestText, builder: ItemBuilder) -> Iterator[MaskItem]:
    """Two passes: the top-level keys (any order) and the syntax of the whole
    document, then the items one by one.

    The first pass only walks the parser's events past ``items`` (about a
    fifth of the cost of reading them), so a default segment table written
    after the items applies to all of them, and a syntax error on the last
    line stops the run before any item is checked or sent.
    """
    text.record()
    try:
        layout = _survey(text)
        if layout.kind == "empty":
            return  # an empty file: no items, and the caller says so
        _apply_top_level(text.label, layout, builder)
        with text.replay() as again:
            yield from _read(again, builder, layout)
    except yaml.MarkedYAMLError as exc:
        raise ManifestError(syntax_message(text.label, exc, text)) from exc
    except yaml.YAMLError as exc:
        raise ManifestError(f"{text.label} is not valid YAML: {exc}") from exc
    except RecursionError as exc:
        raise ManifestError(f"{text.label} is nested too deeply to read") from exc


@dataclass(slots=True)
class _TopKey:
    name: str
    line: int
    value: Any
    node: Node


@dataclass(slots=True)
class _Layout:
    """What the first pass found: the document's kind and its top-level keys but items."""

    kind: str  # "empty", "list", "mapping" or "null"
    keys: list[_TopKey] = field(default_factory=list)


def _survey(text: ManifestText) -> _Layout:
    events = parser(_Chunks(text))
    composer = Composer(events)
    events.get_event()  # stream start
    if events.check_event(StreamEndEvent):
        return _Layout("empty")
    events.get_event()  # document start
    if events.check_event(SequenceStartEvent):
        layout = _Layout("list")
        _skip(events)
    elif events.check_event(MappingStartEvent):
        events.get_event()
        layout = _Layout("mapping", _survey_keys(text.label, composer))
    else:
        value = construct(composer.node())
        if value is not None:
            raise ManifestError(
                f"{text.label} is not a manifest: it holds {describe(value)}, not a mapping with "
                "an 'items' list or a list of items (for CSV or JSONL pass --format)"
            )
        layout = _Layout("null")
    events.get_event()  # document end
    if not events.check_event(StreamEndEvent):
        mark = events.peek_event().start_mark
        raise ManifestError(
            f"{text.label}:{mark.line + 1}: a second YAML document; "
            "put every item in one document (remove the '---')"
        )
    return layout


def _survey_keys(label: str, composer: Composer) -> list[_TopKey]:
    events = composer.events
    keys: list[_TopKey] = []
    seen: dict[str, int] = {}
    while not events.check_event(MappingEndEvent):
        key_node = composer.node()
        name = str(construct(key_node))
        line = key_node.start_mark.line + 1
        if name in seen:
            raise ManifestError(
                f"{label}:{line}: the top-level key {name!r} appears twice (first at line "
                f"{seen[name]}); keep one"
            )
        seen[name] = line
        if name == "items":
            if events.check_event(SequenceStartEvent, AliasEvent):
                _skip(events)  # read item by item in the second pass
                keys.append(_TopKey(name, line, None, key_node))
                continue
            value = construct(composer.node())
            if value is not None:
                raise ManifestError(
                    f"{label}:{line}: 'items' must be a list of items, not {describe(value)}"
                )
            continue
        value_node = composer.node()
        repeated = composer.take_duplicates()
        if repeated:
            raise ManifestError(f"{label}: {repeated[0][1]}")
        keys.append(_TopKey(name, line, construct(value_node), value_node))
    events.get_event()  # mapping end
    return keys


def _skip(events: EventSource) -> None:
    """Pass over one node (a scalar, an alias or a whole collection) event by event."""
    depth = 0
    while True:
        event = events.get_event()
        if isinstance(event, (SequenceStartEvent, MappingStartEvent)):
            depth += 1
        elif isinstance(event, (SequenceEndEvent, MappingEndEvent)):
            depth -= 1
        if depth == 0:
            return


def _apply_top_level(label: str, layout: _Layout, builder: ItemBuilder) -> None:
    for key in layout.keys:
        if key.name == "items":
            continue
        if key.name == "segments":
            _default_segments(label, key.line, key.value, key.node, builder)
        elif key.name == "annotation_id":
            builder.annotation_pattern = _pattern(label, key.line, key.value)
        elif key.name == "void":  # see segcli.manifest.void
            builder.void = _void(label, key.line, key.value, builder.void)
        elif key.name in ITEM_FIELDS:
            raise ManifestError(
                f"{label}:{key.line}: {key.name!r} is an item field at the top level; list "
                "items under 'items:' (each with reference_id and mask)"
            )
        else:
            builder.note(
                builder.unknown(
                    "top-level key", [key.name], "known keys: " + ", ".join(TOP_LEVEL_KEYS)
                )
            )


def _read(text: ManifestText, builder: ItemBuilder, layout: _Layout) -> Iterator[MaskItem]:
    """The second pass: items one at a time (everything fatal was found in the first)."""
    events = parser(_Chunks(text))
    composer = Composer(events)
    events.get_event()  # stream start
    events.get_event()  # document start
    if layout.kind == "list":
        events.get_event()
        yield from _items(composer, builder)
        return
    if layout.kind != "mapping":
        return
    events.get_event()  # mapping start
    while not events.check_event(MappingEndEvent):
        key = construct(composer.node())
        if key != "items":
            composer.node()  # composed for the anchors items may use; applied already
            composer.take_duplicates()
            continue
        if events.check_event(SequenceStartEvent):
            events.get_event()
            yield from _items(composer, builder)
            continue
        node = composer.node()
        if isinstance(node, SequenceNode):  # an alias to a list defined above
            for child in node.value:
                yield builder.build(_raw_item(child, construct(child), [], builder))


def _default_segments(
    label: str, line: int, value: object, node: Node, builder: ItemBuilder
) -> None:
    lines = list_lines(node)
    segments, found = builder.segments_from(
        value,
        text=False,
        where=lambda n: f"segment at line {lines[n]}" if n < len(lines) else f"segment {n + 1}",
    )
    table = SegmentTable(segments or (), tuple(found), frozenset())
    errors = table.errors()
    if errors:
        listing = "\n  ".join(errors)
        raise ManifestError(
            f"{label}:{line}: the default segment table has problems; fix them:\n  {listing}"
        )
    if not segments:
        raise ManifestError(
            f"{label}:{line}: the default segment table is empty; list its segments or remove it"
        )
    builder.note(found)  # the warnings (unknown segment fields)
    # A table given to the command (--segments) wins over the manifest's own default.
    if builder.default is None:
        builder.default = segments


def _void(label: str, line: int, value: object, given: tuple[int, ...]) -> tuple[int, ...]:
    from segcli.manifest.void import merged, parse_void

    try:
        return merged(given, parse_void(value))
    except ValueError as exc:
        raise ManifestError(f"{label}:{line}: {exc}") from exc


def _pattern(label: str, line: int, value: object) -> str:
    if not isinstance(value, str):
        raise ManifestError(
            f"{label}:{line}: annotation_id must be a pattern string such as "
            f"'{{reference_id}}-gt', not {describe(value)}"
        )
    try:
        value.format(reference_id="x")
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise ManifestError(
            f"{label}:{line}: annotation_id pattern {value!r} cannot be used ({exc!r}); "
            "{reference_id} is the only name it may use, and a literal brace is written {{ or }}"
        ) from exc
    return value


def _items(composer: Composer, builder: ItemBuilder) -> Iterator[MaskItem]:
    events = composer.events
    while not events.check_event(SequenceEndEvent):
        node = composer.node()
        found = composer.take_duplicates()
        yield builder.build(_raw_item(node, construct(node), found, builder))
    events.get_event()  # sequence end


def _raw_item(node: Node, value: Any, found: list[Finding], builder: ItemBuilder) -> RawItem:
    line = node.start_mark.line + 1
    if not isinstance(value, dict):
        found.append(
            (
                "manifest-syntax",
                f"line {line}: an item must be a mapping with reference_id and mask, "
                f"not {describe(value)}",
            )
        )
        return RawItem(line=line, findings=found, broken=True)
    found.extend(
        builder.unknown("field", [str(k) for k in value if k not in ITEM_FIELDS], _ITEM_HINT)
    )
    mask = _one_of(value, "mask", "mask_url", found)
    table_key = "annotations" if "annotations" in value and "segments" not in value else "segments"
    _one_of(value, "segments", "annotations", found)
    kind = value.get("type", "mask")
    if kind != "mask":
        found.append(
            (
                "manifest-syntax",
                f"type is {kind!r}; segcli reads segmentation masks only (type 'mask')",
            )
        )
    segments: tuple[Segment, ...] | None = None
    if table_key in value:
        lines = list_lines(mapping_value(node, table_key))
        segments, table_found = builder.segments_from(
            value[table_key],
            text=False,
            where=lambda n: f"segment at line {lines[n]}" if n < len(lines) else f"segment {n + 1}",
        )
        found.extend(table_found)
    return RawItem(
        line=line,
        reference_id=value.get("reference_id"),
        mask=mask,
        annotation_id=value.get("annotation_id", ABSENT),
        width=value.get("width"),
        height=value.get("height"),
        image=value.get("image"),
        segments=segments,
        findings=found,
    )


def _one_of(value: dict[Any, Any], name: str, alias: str, found: list[Finding]) -> Any:
    if name in value and alias in value:
        found.append(("manifest-syntax", f"the item gives both {name} and {alias}; keep one"))
    return value[name] if name in value else value.get(alias)
