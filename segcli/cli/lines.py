"""Problem and state lines for people: in manifest order, repeats collapsed, counted by code.

An upload finishes items out of order (a slow batch, a fast skip), but a
person reads a report top to bottom, so lines wait here until every earlier
item has finished. The same problem on item after item (one segment table
for a whole folder of masks, a folder that is not there) is printed a few
times, then counted: ``... and 49 more items with the same problem``. The
full list is always in ``--report``.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from segcli.model import MaskItem, Problem

#: lines of one kind printed before the rest are only counted
SHOWN_PER_KIND = 3

_NUMBER = re.compile(r"\d+")


@dataclass(slots=True)
class _Kind:
    first: str  # where it was first seen (FILE:LINE ID)
    label: str  # e.g. "[mask-unreadable]" or "rejected"
    shown: int = 0
    hidden: int = 0


@dataclass(slots=True)
class ItemLines:
    """What one item has to say: (collapse key or None, text) pairs, in order."""

    lines: list[tuple[tuple[str, str] | None, str, str]] = field(default_factory=list)

    def add(self, text: str, *, kind: tuple[str, str] | None = None, where: str = "") -> None:
        self.lines.append((kind, text, where))


def problem_line(problem: Problem, item: MaskItem) -> str:
    """``FILE:LINE REFERENCE_ID: SEVERITY [CODE] MESSAGE``, the one shape scripts grep."""
    return f"{where(item, problem)}: {problem.severity.value} [{problem.code}] {problem.message}"


def where(item: MaskItem, problem: Problem | None = None) -> str:
    source = problem.source if problem is not None and problem.source else item.source
    return f"{source} {item.reference_id or '-'}"


def shape(message: str, item: MaskItem) -> str:
    """The message with what is particular to the item blanked: two items with the
    same shape have the same problem."""
    for particular in (item.mask, os.path.basename(item.mask), item.reference_id):
        if particular:
            message = message.replace(particular, "\x00")
    return _NUMBER.sub("#", message)


class OrderedLines:
    """Prints each item's lines once every earlier item has finished, collapsing repeats.

    ``add(seq, lines)`` takes item number ``seq`` (0, 1, 2... in manifest
    order, each exactly once). Memory holds only items that finished ahead
    of an earlier one, and nothing for items with nothing to say beyond
    their number.
    """

    def __init__(self, write: Callable[[str], None], *, shown_per_kind: int = SHOWN_PER_KIND):
        self._write = write
        self._shown_per_kind = shown_per_kind
        self._next = 0
        self._waiting: dict[int, ItemLines | None] = {}
        self._kinds: dict[tuple[str, str], _Kind] = {}

    def add(self, seq: int, lines: ItemLines | None) -> None:
        if seq != self._next:
            self._waiting[seq] = lines if lines is not None and lines.lines else None
            return
        self._emit(lines)
        self._next += 1
        while self._next in self._waiting:
            self._emit(self._waiting.pop(self._next))
            self._next += 1

    def finish(self) -> None:
        """Print whatever still waits (items that never finished leave gaps)."""
        for seq in sorted(self._waiting):
            self._emit(self._waiting[seq])
        self._waiting.clear()

    def collapsed(self, *, report: bool) -> list[str]:
        """One line per kind of line that was only counted after the first few."""
        where_to_look = "all of them are in the report" if report else "--report FILE lists all"
        out = []
        for kind in self._kinds.values():
            if not kind.hidden:
                continue
            n = f"{kind.hidden:,} more {plural(kind.hidden, 'item')}"
            if kind.label.startswith("["):
                what = f"{n} with the same {kind.label} problem as {kind.first}"
            else:  # a state: failed, rejected, ignored
                what = f"{n} {kind.label} the same way as {kind.first}"
            out.append(f"  ... and {what} ({where_to_look})")
        return out

    def _emit(self, lines: ItemLines | None) -> None:
        if lines is None:
            return
        for key, text, first in lines.lines:
            if key is None:
                self._write(text)
                continue
            kind = self._kinds.get(key)
            if kind is None:
                kind = self._kinds[key] = _Kind(first=first, label=key[0])
            if kind.shown < self._shown_per_kind:
                kind.shown += 1
                self._write(text)
            else:
                kind.hidden += 1


class CodeCounts:
    """How many items had each problem code, for the closing summary."""

    def __init__(self) -> None:
        self.items = 0
        self.by_code: Counter[str] = Counter()

    def add(self, problems: tuple[Problem, ...]) -> None:
        self.items += 1
        self.by_code.update({p.code for p in problems})

    def lines(self) -> list[str]:
        return [
            f"  {code}: {n:,} of {self.items:,} {plural(self.items, 'item')}"
            for code, n in sorted(self.by_code.items())
        ]


def plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


# Characters a terminal would act on rather than show: control codes, and the
# bidirectional overrides and isolates that reorder the rest of a line.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` safe to print on a terminal: what it would act on shown as ``\\uXXXX``."""
    return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
