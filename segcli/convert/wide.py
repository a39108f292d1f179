"""Wide masks: 16- or 32-bit one-channel instance masks to index masks.

Every distinct value is one segment (at most 256 per image), numbered in
ascending value. Its class is ``value // class_divisor`` (Mapillary Vistas
writes ``class * 256 + instance``: divisor 256; 1 makes every value its own
class) and its label the class's in the segment table; the metadata adds
``class_id`` and ``instance_id`` (``value % class_divisor``) to the table's.
``void_values`` (raw values) become void.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from segcli.convert.job import Job, WorkerContext
from segcli.convert.mapping import MAX_SEGMENTS, Mapped, histogram, listing, lookup
from segcli.convert.png import SourceError, gray_values, open_source
from segcli.convert.sources import folder_jobs
from segcli.convert.void import void_candidate
from segcli.errors import ManifestError, UsageError
from segcli.model import Segment


@dataclass(frozen=True, slots=True)
class WideMasks:
    masks: str
    segments_path: str
    class_divisor: int = 256
    void_values: tuple[int, ...] = ()
    pattern: str = "{reference_id}.png"
    storage_options: Any = None
    name: ClassVar[str] = "wide"

    def __post_init__(self) -> None:
        if self.class_divisor < 1:
            raise UsageError("--class-divisor must be 1 or more")

    def _table(self) -> dict[int, Segment]:
        from segcli.manifest import load_segment_table

        try:
            return {s.index: s for s in load_segment_table(self.segments_path)}
        except ManifestError as exc:
            raise UsageError(str(exc)) from exc

    def fingerprint(self) -> str:
        return f"table={self._table()!r} divisor={self.class_divisor} void={self.void_values}"

    def jobs(self) -> Iterator[Job]:
        yield from folder_jobs(self.masks, self.pattern, self.storage_options, self._table())

    def convert(self, job: Job, datas: Sequence[bytes], context: WorkerContext) -> Mapped:
        import numpy as np

        table: dict[int, Segment] = job.spec
        name = job.sources[0]
        image = open_source(datas[0], max_pixels=context.max_pixels, name=name)
        values = gray_values(image, name=name, wide=True)
        present, counts = np.unique(values, return_counts=True)
        void = [int(v) for v in present if int(v) in self.void_values]
        real = [int(v) for v in present if int(v) not in self.void_values]
        if len(real) + (1 if void else 0) > MAX_SEGMENTS:
            raise SourceError(
                "too-many-segments",
                f"{name} has {len(real)} distinct values; a mask holds at most {MAX_SEGMENTS}: "
                "split the image's instances, or use a coarser mask",
            )
        unknown = [
            (v, int(n))
            for v, n in zip(present.tolist(), counts.tolist(), strict=True)
            if v in real and v // self.class_divisor not in table
        ]
        if unknown:
            raise SourceError(
                "unknown-value",
                f"values in {name} whose class (value // {self.class_divisor}) has no segment "
                f"in the table: {listing(unknown)}; add the classes, or check --class-divisor",
            )
        candidates = [self._segment(n, v, table) for n, v in enumerate(real)]
        keys, targets = list(real), list(range(len(real)))
        if void:
            at = void_candidate(candidates, context.void)
            keys, targets = keys + void, targets + [at] * len(void)
        labels, _ = lookup(values, keys, targets)
        return Mapped(labels=labels, candidates=candidates, counts=histogram(labels))

    def _segment(self, n: int, value: int, table: dict[int, Segment]) -> Segment:
        entry = table[value // self.class_divisor]
        meta = {**(entry.metadata or {}), "class_id": value // self.class_divisor}
        if self.class_divisor > 1:
            meta["instance_id"] = value % self.class_divisor
        return Segment(index=n, label=entry.label, metadata=meta)
