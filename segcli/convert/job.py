"""The values a conversion passes around: one ``Job`` per image, one ``ImageResult`` back.

A converter (``CocoPanoptic``, ``Cityscapes``, ``Palette``...) is a frozen
dataclass of its options. In the parent it plans ``jobs()`` from its
sources; in a worker process its ``convert(job, datas, context)`` turns the
bytes of the job's sources into a ``Mapped`` image. Everything else (reading,
resume, encoding, the inspector, writing) is the runner's, the same for all.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from segcli.convert.mapping import Mapped
from segcli.convert.void import VoidRule
from segcli.model import MaskItem, Problem, Source

Finding = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Job:
    """One image to convert, as planned in the parent (small and picklable)."""

    reference_id: str
    sources: tuple[str, ...]  # URIs of the files the worker reads (mask PNGs, or a manifest's)
    where: Source  # for messages: the JSON record, the source file
    spec: Any = None  # the converter's own per-image data (segments_info, a segment table...)
    width: int | None = None  # the size the source says the image has
    height: int | None = None
    annotation_id: str | None = None
    findings: tuple[Finding, ...] = ()  # found while planning; errors fail the image
    output: str = ""  # set by the runner
    known_digest: str | None = None  # what an earlier run saw, set by the runner
    image: str | None = None  # the source item's image, carried into the new manifest

    def check_size(self, width: int, height: int, name: str, said: str) -> None:
        """Raise ``SourceError`` when the image is not the size its source says (``said``)."""
        from segcli.convert.png import SourceError

        if self.width is None or self.height is None:
            return
        if (width, height) != (self.width, self.height):
            raise SourceError(
                "size-mismatch",
                f"{name} is {width}x{height} but {said} says {self.width}x{self.height}; "
                "a mask must have its image's size: pair the right files or fix the record",
            )


@dataclass(frozen=True, slots=True)
class WorkerContext:
    """Settings every converter's ``convert`` may read."""

    void: VoidRule
    max_pixels: int


@dataclass(frozen=True, slots=True)
class ImageResult:
    """What became of one image. ``state``: converted, skipped or failed."""

    reference_id: str
    where: Source
    state: str
    item: MaskItem | None  # the manifest item of the output (None when failed)
    problems: tuple[Problem, ...]
    digest: str | None = None
    sources: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.state != "failed"

    def as_dict(self) -> dict[str, Any]:
        return {
            "reference_id": self.reference_id,
            "source": str(self.where),
            "sources": list(self.sources),
            "state": self.state,
            "mask": self.item.mask if self.item else None,
            "segments": [s.payload() for s in self.item.segments] if self.item else None,
            "problems": [p.as_dict() for p in self.problems],
        }


class Converter(Protocol):
    """What the runner needs of a converter."""

    @property
    def name(self) -> str: ...

    def fingerprint(self) -> str:
        """The options that shape the output: a changed one converts every image again."""
        ...

    def jobs(self) -> Iterator[Job]: ...

    def convert(self, job: Job, datas: Sequence[bytes], context: WorkerContext) -> Mapped: ...
