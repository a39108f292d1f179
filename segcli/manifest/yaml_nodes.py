"""YAML below the manifest: a parser of events, a composer of subtrees, small node helpers.

Used by the manifest reader (``yaml_reader``) and by segment table files
(``tables``); it imports neither, so neither imports the other through it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (
    AliasEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from segcli.codes import Finding
from segcli.errors import ManifestError

if TYPE_CHECKING:
    from segcli.manifest.text import ManifestText

#: libyaml parses about ten times faster; the pure-Python parser is the fallback
USE_LIBYAML = bool(getattr(yaml, "__with_libyaml__", False))

_MERGE_TAG = "tag:yaml.org,2002:merge"


class EventSource(Protocol):
    def check_event(self, *choices: type[Event]) -> bool: ...
    def peek_event(self) -> Any: ...
    def get_event(self) -> Any: ...


def parser(stream: Any) -> EventSource:
    if USE_LIBYAML:
        from yaml._yaml import CParser

        return CParser(stream)
    return _PyParser(stream)


class _PyParser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
    def __init__(self, stream: Any) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)


class Composer:
    """Builds nodes from parser events, one subtree at a time.

    PyYAML's own composer only builds whole documents. This one also
    records repeated mapping keys (before merge keys are applied, so an
    override of a merged key is not a repeat).
    """

    def __init__(self, events: EventSource) -> None:
        self.events = events
        self.anchors: dict[str, Node] = {}
        self.duplicates: list[Finding] = []
        self._resolver = Resolver()

    def node(self) -> Node:
        event = self.events.get_event()
        # Any: libyaml's events carry its own Mark type, which the stubs keep apart.
        start: Any = getattr(event, "start_mark", None)
        if isinstance(event, AliasEvent):
            if event.anchor not in self.anchors:
                raise yaml.composer.ComposerError(
                    None, None, f"found undefined alias {event.anchor!r}", start
                )
            return self.anchors[event.anchor]
        node: Node
        if isinstance(event, ScalarEvent):
            tag = event.tag
            if tag is None or tag == "!":
                tag = self._resolve(ScalarNode, event.value, event.implicit)
            end: Any = event.end_mark
            node = ScalarNode(tag, event.value, start, end, event.style)
            self._anchor(event, node)
        elif isinstance(event, SequenceStartEvent):
            node = SequenceNode(self._tag(event, SequenceNode), [], start)
            self._anchor(event, node)
            while not self.events.check_event(SequenceEndEvent):
                node.value.append(self.node())
            node.end_mark = self.events.get_event().end_mark
        elif isinstance(event, MappingStartEvent):
            node = MappingNode(self._tag(event, MappingNode), [], start)
            self._anchor(event, node)
            seen: dict[tuple[str, str], int] = {}
            while not self.events.check_event(MappingEndEvent):
                key = self.node()
                node.value.append((key, self.node()))
                self._check_repeat(key, seen)
            node.end_mark = self.events.get_event().end_mark
        else:
            raise yaml.composer.ComposerError(
                None, None, f"unexpected {type(event).__name__}", start
            )
        return node

    def _resolve(self, kind: type[Node], value: str | None, implicit: Any) -> str:
        # PyYAML's stubs leave Resolver.resolve untyped: its answer is a tag string.
        tag: str = self._resolver.resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
        return tag

    def take_duplicates(self) -> list[Finding]:
        found, self.duplicates = self.duplicates, []
        return found

    def _tag(self, event: Any, kind: type[Node]) -> str:
        tag: str | None = event.tag
        if tag is None or tag == "!":
            tag = self._resolve(kind, None, event.implicit)
        assert tag is not None
        return tag

    def _anchor(self, event: Any, node: Node) -> None:
        if event.anchor is not None:
            self.anchors[event.anchor] = node

    def _check_repeat(self, key: Node, seen: dict[tuple[str, str], int]) -> None:
        if not isinstance(key, ScalarNode) or key.tag == _MERGE_TAG:
            return
        line = key.start_mark.line + 1
        first = seen.get((key.tag, key.value))
        if first is None:
            seen[(key.tag, key.value)] = line
        else:
            self.duplicates.append(
                (
                    "manifest-syntax",
                    f"line {line}: the key {key.value!r} appears twice in one mapping (first "
                    f"at line {first}); YAML keeps only the last one, so remove one",
                )
            )


def construct(node: Node) -> Any:
    # A fresh constructor per subtree: it caches every object it builds.
    return SafeConstructor().construct_document(node)


def syntax_message(label: str, exc: yaml.MarkedYAMLError, text: ManifestText | None = None) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f"{label}:{mark.line + 1}" if mark is not None else label
    what = " ".join(part for part in (exc.context, exc.problem) if part)
    line = text.line(mark.line + 1) if text is not None and mark is not None else None
    if "tab" in what or (line is not None and "\t" in line[: len(line) - len(line.lstrip())]):
        return (
            f"{where}: not valid YAML ({what}): that line is indented with a tab; "
            "YAML indents with spaces only, so replace the tab with spaces"
        )
    return f"{where}: not valid YAML ({what}); check the indentation and quoting on that line"


def mapping_value(node: Node | None, key: str) -> Node | None:
    """The value node of ``key`` in a mapping node (merge keys are not followed)."""
    if not isinstance(node, MappingNode):
        return None
    for key_node, value_node in node.value:
        if isinstance(key_node, ScalarNode) and key_node.value == key:
            found: Node = value_node
            return found
    return None


def list_lines(node: Node | None) -> list[int]:
    """The 1-based line of each entry of a sequence node ([] for anything else)."""
    if not isinstance(node, SequenceNode):
        return []
    return [child.start_mark.line + 1 for child in node.value]


def load_document(text: str, label: str) -> tuple[Any, Node | None, list[Finding]]:
    """Parse a whole small YAML document (a segment table file)."""

    class _Named:
        name = label

        def __init__(self) -> None:
            self.done = False

        def read(self, size: int = -1) -> str:
            if self.done:
                return ""
            self.done = True
            return text

    try:
        events = parser(_Named())
        composer = Composer(events)
        events.get_event()
        if events.check_event(StreamEndEvent):
            return None, None, []
        events.get_event()
        node = composer.node()
        events.get_event()
        if not events.check_event(StreamEndEvent):
            raise ManifestError(f"segment table {label} holds more than one YAML document")
        return construct(node), node, composer.take_duplicates()
    except yaml.MarkedYAMLError as exc:
        raise ManifestError(syntax_message(label, exc)) from exc
    except yaml.YAMLError as exc:
        raise ManifestError(f"{label} is not valid YAML: {exc}") from exc
