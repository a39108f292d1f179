"""What a set of masks holds: the library behind ``segcli stats``.

    stats = segcli.stats.collect(segcli.load_manifest("masks.yaml"), ValidateSettings())
    stats.labels["car"].pixels, stats.sizes, stats.segment_counts

Per label: the masks it appears in, its segments (instances: one per index
that has pixels) and its pixel area; masks per size; masks per number of
segments. Each mask is read and decoded once, by the worker pool validate
uses (``segcli.pool``, with validate's settings and batching); only its size
and per-value counts come back. Items that cannot be counted (manifest errors, a mask that
cannot be read or decoded) are left out and counted by code, so the numbers
describe exactly the masks that could be read; ``segcli validate`` says why.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from segcli.codes import Finding
from segcli.model import MaskItem
from segcli.pool import make_executor, ordered_map
from segcli.validation import ITEMS_PER_TASK, WINDOW_PER_WORKER, ValidateSettings


@dataclass(slots=True)
class LabelStats:
    label: str
    masks: int = 0  # masks with at least one pixel of this label
    segments: int = 0  # segments (indices) of this label that have pixels
    pixels: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "masks": self.masks,
            "segments": self.segments,
            "pixels": self.pixels,
        }


@dataclass(slots=True)
class SetStats:
    """Running totals over the masks of a manifest, one ``add`` per mask."""

    items: int = 0  # items read from the manifest
    masks: int = 0  # masks counted
    pixels: int = 0
    labels: dict[str, LabelStats] = field(default_factory=dict)
    sizes: Counter[tuple[int, int]] = field(default_factory=Counter)
    segment_counts: Counter[int] = field(default_factory=Counter)
    #: pixels whose value has no segment, and in how many masks (void ones apart)
    unlabelled: LabelStats = field(default_factory=lambda: LabelStats("(no segment)"))
    void: LabelStats = field(default_factory=lambda: LabelStats("(void, no segment)"))
    #: items left out, by the code of their first error
    left_out: Counter[str] = field(default_factory=Counter)
    first_left_out: dict[str, str] = field(default_factory=dict)  # code -> "FILE:LINE ID"

    def add(self, item: MaskItem, width: int, height: int, counts: Mapping[int, int]) -> None:
        table: dict[int, str] = {}
        for s in item.segments:
            table.setdefault(s.index, s.label)  # a duplicate index: the first, as validate
        self.masks += 1
        self.pixels += width * height
        self.sizes[(width, height)] += 1
        seen: set[str] = set()
        segments = 0
        loose = {"unlabelled": 0, "void": 0}
        for value, n in counts.items():
            if n <= 0:
                continue
            label = table.get(value)
            if label is None:
                kind = self.void if value in item.void else self.unlabelled
                kind.pixels += n
                kind.segments += 1
                loose["void" if value in item.void else "unlabelled"] += 1
                continue
            found = self.labels.get(label)
            if found is None:
                found = self.labels[label] = LabelStats(label)
            found.segments += 1
            found.pixels += n
            segments += 1
            seen.add(label)
        for label in seen:
            self.labels[label].masks += 1
        self.unlabelled.masks += loose["unlabelled"] > 0
        self.void.masks += loose["void"] > 0
        self.segment_counts[segments] += 1

    def leave_out(self, item: MaskItem, code: str) -> None:
        self.left_out[code] += 1
        self.first_left_out.setdefault(code, f"{item.source} {item.reference_id or '-'}")

    def ranked(self) -> list[LabelStats]:
        """Labels by pixel area, the largest first (ties by name)."""
        return sorted(self.labels.values(), key=lambda s: (-s.pixels, s.label))

    def as_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "masks": self.masks,
            "pixels": self.pixels,
            "labels": [s.as_dict() for s in self.ranked()],
            "unlabelled": self.unlabelled.as_dict(),
            "void": self.void.as_dict(),
            "sizes": [
                {"width": w, "height": h, "masks": n}
                for (w, h), n in sorted(self.sizes.items(), key=lambda x: (-x[1], x[0]))
            ],
            "segment_counts": [
                {"segments": k, "masks": n} for k, n in sorted(self.segment_counts.items())
            ],
            "left_out": dict(sorted(self.left_out.items())),
        }


def collect(
    items: Iterable[MaskItem],
    settings: ValidateSettings | None = None,
    *,
    progress: Callable[[SetStats], None] | None = None,
) -> SetStats:
    """Count every mask of ``items`` (see the module's docstring); ``progress`` is called
    with the totals so far after each group of masks."""
    settings = settings or ValidateSettings()
    stats = SetStats()
    pool = make_executor(settings.pool, settings.workers)
    work = functools.partial(
        mask_sizes, max_pixels=settings.max_pixels, storage_options=settings.storage_options
    )
    try:
        window = max(1, settings.workers) * WINDOW_PER_WORKER
        for group, found in ordered_map(work, _groups(items, stats), pool, window=window):
            for item, got in zip(group, found, strict=True):
                if isinstance(got, MaskCount):
                    stats.add(item, got.width, got.height, got.counts)
                else:  # a (code, message) finding
                    stats.leave_out(item, got[0])
            if progress is not None:
                progress(stats)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return stats


def _groups(items: Iterable[MaskItem], stats: SetStats) -> Iterator[list[MaskItem]]:
    group: list[MaskItem] = []
    for item in items:
        stats.items += 1
        error = next((p for p in item.problems if p.is_error), None)
        if error is not None or not item.mask:
            # Counted apart: a duplicate reference_id would count one mask twice.
            stats.leave_out(item, error.code if error is not None else "missing-mask")
            continue
        group.append(item)
        if len(group) == ITEMS_PER_TASK:
            yield group
            group = []
    if group:
        yield group


@dataclass(frozen=True, slots=True)
class MaskCount:
    """What a worker sends back about one mask."""

    width: int
    height: int
    counts: dict[int, int]  # value -> pixels


def mask_sizes(
    items: list[MaskItem],
    *,
    max_pixels: int,
    storage_options: Mapping[str, Mapping[str, Any]] | None,
) -> list[MaskCount | Finding]:
    """In a worker: each mask's (width, height, value -> pixels), or why it cannot be counted.

    A mask shared by several items of the group is decoded once.
    """
    from segcli.checks import inspect_data
    from segcli.inspector import digest
    from segcli.png import MaskInfo
    from segcli.storage import MaskReadError, read_mask

    seen: dict[str, MaskInfo | Finding] = {}
    out: list[MaskCount | Finding] = []
    for item in items:
        try:
            data = read_mask(item.mask, storage_options=storage_options)
        except MaskReadError as exc:
            out.append(("mask-unreadable", exc.message))
            continue
        except Exception as exc:  # whatever a filesystem raises: this item only
            out.append(("mask-unreadable", f"{type(exc).__name__}: {exc}"))
            continue
        key = digest(data)
        found = seen.get(key)
        if found is None:
            found = seen[key] = inspect_data(data, max_pixels=max_pixels)
        if isinstance(found, MaskInfo):
            out.append(MaskCount(found.width, found.height, found.counts))
        else:
            out.append(found)
    return out
