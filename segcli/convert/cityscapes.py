"""Cityscapes: ``*_gtFine_labelIds.png`` and ``*_gtFine_instanceIds.png`` to index masks.

- ``semantic``: labelIds (8-bit class ids), one segment per class.
- ``instance``: instanceIds (16-bit): a value of 1000 or more is
  ``class * 1000 + instance``, one segment per instance; a value below 1000
  is a class id: for a class with instances it is a crowd group (kept, with
  ``iscrowd: true``), any other class is stuff and joins ``background``.
- ``panoptic``: instanceIds, stuff classes one segment each, instances and
  crowd groups one each.

Classes ignored in evaluation (``unlabeled``, ``ego vehicle``, ...) become
void (``keep_ignored`` keeps them as their own segments). The reference_id
is ``{city}_{seq}_{frame}`` from the file name; images must be 2048x1024
(``size`` changes that, for resized sets). Metadata: ``cityscapes_id``,
``category``, ``isthing`` and, for instances, ``instance_id`` and ``iscrowd``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from segcli.convert.cityscapes_labels import BY_ID, CityscapesLabel
from segcli.convert.job import Job, WorkerContext
from segcli.convert.mapping import MAX_SEGMENTS, Mapped, histogram, listing, lookup
from segcli.convert.png import SourceError, gray_values, open_source
from segcli.convert.sources import is_png, list_files
from segcli.convert.void import void_candidate
from segcli.errors import UsageError
from segcli.model import Segment, Source

KINDS = ("semantic", "instance", "panoptic")
SIZE = (2048, 1024)
_NAME = re.compile(r"(?P<ref>.+_\d+_\d+)_gt(?:Fine|Coarse)_(?P<kind>labelIds|instanceIds)\.png")


@dataclass(frozen=True, slots=True)
class Cityscapes:
    root: str
    kind: str = "semantic"
    keep_ignored: bool = False
    size: tuple[int, int] | None = SIZE
    storage_options: Any = None
    name: ClassVar[str] = "cityscapes"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UsageError(f"--kind {self.kind!r}: use semantic, instance or panoptic")

    def fingerprint(self) -> str:
        return f"kind={self.kind} keep_ignored={self.keep_ignored} size={self.size}"

    def jobs(self) -> Iterator[Job]:
        wanted = "labelIds" if self.kind == "semantic" else "instanceIds"
        for number, (uri, relative) in enumerate(
            list_files(self.root, is_png, self.storage_options), 1
        ):
            match = _NAME.fullmatch(relative.rsplit("/", 1)[-1])
            if match is None or match.group("kind") != wanted:
                continue
            width, height = self.size or (None, None)
            yield Job(
                reference_id=match.group("ref"),
                sources=(uri,),
                where=Source(self.root, number),
                width=width,
                height=height,
            )

    def convert(self, job: Job, datas: Sequence[bytes], context: WorkerContext) -> Mapped:
        import numpy as np

        name = job.sources[0]
        image = open_source(datas[0], max_pixels=context.max_pixels, name=name)
        job.check_size(image.width, image.height, name, "Cityscapes")
        values = gray_values(image, name=name, wide=self.kind != "semantic")
        if self.kind != "semantic" and image.mode == "L":
            raise SourceError(
                "source-mode",
                f"{name} is 8-bit; instanceIds images are 16-bit (class * 1000 + instance)",
            )
        present = np.flatnonzero(np.bincount(values.ravel())) if values.size else np.array([])
        candidates: list[Segment] = []
        keys: list[int] = []
        targets: list[int] = []
        void: list[int] = []
        background: int | None = None
        unknown: list[int] = []
        for value in (int(v) for v in present):
            class_id, instance = (value // 1000, value % 1000) if value >= 1000 else (value, None)
            label = BY_ID.get(class_id)
            if label is None:
                unknown.append(value)
                continue
            if label.ignore_in_eval and not self.keep_ignored:
                void.append(value)
                continue
            keys.append(value)
            if self.kind == "instance" and instance is None and not label.has_instances:
                if background is None:
                    background = len(candidates)
                    candidates.append(Segment(len(candidates), "background", {"isthing": False}))
                targets.append(background)
                continue
            targets.append(len(candidates))
            meta = _metadata(label, instance, instances=self.kind != "semantic")
            candidates.append(Segment(len(candidates), label.name, meta))
        if unknown:
            counts = np.bincount(values.ravel())
            stray = listing([(v, int(counts[v])) for v in unknown])
            raise SourceError(
                "unknown-value",
                f"values in {name} that are no Cityscapes class: {stray}; "
                "is it a Cityscapes label image?",
            )
        if void:
            at = void_candidate(candidates, context.void)
            keys, targets = keys + void, targets + [at] * len(void)
        if len(candidates) > MAX_SEGMENTS:
            raise SourceError(
                "too-many-segments",
                f"{name} has {len(candidates)} segments; a mask holds at most {MAX_SEGMENTS}",
            )
        labels, _ = lookup(values, keys, targets)
        return Mapped(labels=labels, candidates=candidates, counts=histogram(labels))


def _metadata(label: CityscapesLabel, instance: int | None, *, instances: bool) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "cityscapes_id": label.id,
        "category": label.category,
        "isthing": label.has_instances,
    }
    if label.has_instances and instances:
        meta["iscrowd"] = instance is None  # a class id alone: a group of instances
        if instance is not None:
            meta["instance_id"] = instance
    return meta
