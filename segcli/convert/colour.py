"""Colour-coded masks (annotation tools' RGB exports) to index masks.

Each colour of the labels file is one label; a pixel of any other colour is
an unknown colour, reported per image with its pixel count (never matched
to the nearest one: a slightly different colour is a different class or
anti-aliasing, and both need a person to decide). Opaque RGBA masks are
read as RGB; palette masks by their colours. ``void_colours`` become void.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from segcli.convert.job import Job, WorkerContext
from segcli.convert.labels import Colour, Label, colour_name, packed, read_labels
from segcli.convert.mapping import Mapped, histogram, listing, lookup, unknown_values
from segcli.convert.png import SourceError, open_source, rgb_codes
from segcli.convert.sources import folder_jobs
from segcli.convert.void import void_candidate
from segcli.errors import UsageError


@dataclass(frozen=True, slots=True)
class ColourMasks:
    masks: str
    labels_path: str
    void_colours: tuple[Colour, ...] = ()
    pattern: str = "{reference_id}.png"
    storage_options: Any = None
    name: ClassVar[str] = "colour"

    def fingerprint(self) -> str:
        return f"labels={read_labels(self.labels_path)!r} void={self.void_colours}"

    def jobs(self) -> Iterator[Job]:
        labels = read_labels(self.labels_path)
        missing = [label.label for label in labels if label.colour is None]
        if missing:
            raise UsageError(
                f"{self.labels_path}: labels without a colour ({', '.join(missing[:10])}); "
                "give each a color: [R, G, B] (or use a labelmap.txt)"
            )
        seen: dict[Colour, str] = {}
        for label in labels:
            assert label.colour is not None
            if label.colour in seen:
                raise UsageError(
                    f"{self.labels_path}: {label.label!r} and {seen[label.colour]!r} share the "
                    f"colour {label.colour}; a colour must mean one label"
                )
            seen[label.colour] = label.label
        yield from folder_jobs(self.masks, self.pattern, self.storage_options, labels)

    def convert(self, job: Job, datas: Sequence[bytes], context: WorkerContext) -> Mapped:
        labels: tuple[Label, ...] = job.spec
        name = job.sources[0]
        image = open_source(datas[0], max_pixels=context.max_pixels, name=name)
        if image.mode == "P":
            image = image.convert("RGB")
        codes = rgb_codes(image, name=name, allow_opaque_alpha=True)
        ordered = sorted(labels, key=lambda label: label.index)
        candidates = [label.segment() for label in ordered]
        keys = [packed(label.colour) for label in ordered if label.colour is not None]
        targets = list(range(len(ordered)))
        void = [packed(c) for c in self.void_colours if packed(c) not in keys]
        if void:
            at = void_candidate(candidates, context.void)
            keys, targets = keys + void, targets + [at] * len(void)
        labelled, unknown = lookup(codes, keys, targets, below=1 << 24)
        if unknown:
            stray = sorted(unknown_values(codes, keys), key=lambda p: -p[1])
            raise SourceError(
                "unknown-value",
                f"colours in {name} that no label has: {listing(stray, show=colour_name)}; add "
                "them to the labels file (or --void-colour), or fix the mask",
            )
        return Mapped(labels=labelled, candidates=candidates, counts=histogram(labelled))
