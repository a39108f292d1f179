"""Label tables for the palette and colour converters.

- ``labelmap.txt``, as CVAT's "Segmentation mask" export and Datumaro's VOC
  writer make it: ``name:R,G,B:parts:actions`` per line, ``#`` comments.
  A label's index is its line's place among the labels (0-based).
- a segment table (YAML, JSON or CSV: index, label, metadata), where a
  colour, when needed, is the metadata key ``color`` (``[R, G, B]``,
  ``"R,G,B"`` or ``"#rrggbb"``); it is not kept in the output's metadata.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from segcli.errors import UsageError
from segcli.model import Segment

Colour = tuple[int, int, int]
_HEX = re.compile(r"#?([0-9a-fA-F]{6})")


@dataclass(frozen=True, slots=True)
class Label:
    index: int
    label: str
    colour: Colour | None
    metadata: dict[str, Any] | None = None

    def segment(self) -> Segment:
        return Segment(index=self.index, label=self.label, metadata=self.metadata)


def read_labels(path: str) -> tuple[Label, ...]:
    """The labels of a labelmap.txt or a segment table; raise UsageError when unusable."""
    if os.path.basename(path).lower().endswith(".txt"):
        return _labelmap(path)
    from segcli.errors import ManifestError
    from segcli.manifest.tables import checked_table

    try:
        table = checked_table(path)
    except ManifestError as exc:
        raise UsageError(str(exc)) from exc
    labels = []
    for s in table.segments:
        meta = dict(s.metadata or {})
        raw = meta.pop("color", None)
        colour = None if raw is None else _colour(raw, f"{path}: segment {s.index}")
        labels.append(Label(s.index, s.label, colour, meta or None))
    return tuple(labels)


def _labelmap(path: str) -> tuple[Label, ...]:
    try:
        with open(path, encoding="utf-8-sig") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read the labels {path}: {exc.strerror or exc}") from exc
    labels: list[Label] = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name, _, rest = text.partition(":")
        colour_text = rest.split(":", 1)[0]
        if not name.strip() or not colour_text.strip():
            raise UsageError(
                f"{path}:{number}: expected name:R,G,B:: (a labelmap.txt line), got {text!r}"
            )
        colour = _colour(colour_text, f"{path}:{number}")
        labels.append(Label(len(labels), name.strip(), colour))
    if not labels:
        raise UsageError(f"{path} lists no labels; one line per label: name:R,G,B::")
    if len(labels) > 256:
        raise UsageError(f"{path} lists {len(labels)} labels; a mask holds at most 256")
    return tuple(labels)


def _colour(value: object, where: str) -> Colour:
    parts: list[Any]
    if isinstance(value, str):
        hexed = _HEX.fullmatch(value.strip())
        if hexed:
            n = int(hexed.group(1), 16)
            return (n >> 16, (n >> 8) & 255, n & 255)
        parts = [p.strip() for p in value.split(",")]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = []
    try:
        numbers = [int(p) for p in parts]
    except (TypeError, ValueError):
        numbers = []
    if len(numbers) != 3 or not all(0 <= n <= 255 for n in numbers):
        raise UsageError(f"{where}: the colour {value!r} is not R,G,B with each 0..255")
    return (numbers[0], numbers[1], numbers[2])


def parse_colour(text: str, where: str) -> Colour:
    """``R,G,B`` or ``#rrggbb`` from the command line; raise UsageError when it is neither."""
    return _colour(text, where)


def packed(colour: Colour) -> int:
    """A colour as the code ``rgb_codes`` gives its pixels: R + 256 G + 256**2 B."""
    r, g, b = colour
    return r + (g << 8) + (b << 16)


def colour_name(code: int) -> str:
    return f"({code & 255},{(code >> 8) & 255},{code >> 16})"
