"""Declared void values: pixel values a manifest allows without a segment.

``void: [0, 255]`` at the top of a YAML manifest, or ``--void 0,255`` for any
manifest: ``segcli validate`` reports such a value without a segment as a
warning (``void-without-segment``) instead of an error. Use it for masks
whose "no label" value has, on purpose, no segment (Nucleus reads the mask
as it is); ``segcli convert`` gives void pixels a segment instead.
"""

from __future__ import annotations

from collections.abc import Iterable


def parse_void(value: object) -> tuple[int, ...]:
    """Values 0..255 from a list, one integer, or text such as ``"0, 255"``; sorted, unique.

    Raises ValueError with a message that says what is wrong.
    """
    parts: Iterable[object]
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
    elif isinstance(value, list):
        parts = value
    elif value is None:
        parts = []
    else:
        parts = [value]
    out: set[int] = set()
    for part in parts:
        number = part
        if isinstance(part, str) and part.lstrip("+-").isdigit():
            number = int(part)
        if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= 255:
            raise ValueError(
                f"void values must be integers 0..255 (a list such as [0, 255]), not {part!r}"
            )
        out.add(number)
    return tuple(sorted(out))


def merged(*groups: Iterable[int]) -> tuple[int, ...]:
    return tuple(sorted({v for group in groups for v in group}))
