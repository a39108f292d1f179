"""Palette masks (Pascal VOC, CVAT's "Segmentation mask"): palette indices to index masks.

The pixels of a mode-P PNG are indices into its palette, and the index is
the class: read the indices, never the colours (reading RGB is how such
masks get silently broken). A mask already saved as 8-bit gray is read the
same way. An RGB mask is refused with a pointer to ``segcli convert
colour``. Index 255 (VOC's object borders) is void by default. Where the
labels give colours, a palette colour that differs is a warning: the
labels file may not be the one the masks were made with.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from segcli.convert.job import Job, WorkerContext
from segcli.convert.labels import Label, read_labels
from segcli.convert.mapping import Mapped, histogram, listing, lookup, unknown_values
from segcli.convert.png import SourceError, open_source
from segcli.convert.sources import folder_jobs
from segcli.convert.void import void_candidate


@dataclass(frozen=True, slots=True)
class Palette:
    masks: str
    labels_path: str
    void_indices: tuple[int, ...] = (255,)
    pattern: str = "{reference_id}.png"
    storage_options: Any = None
    name: ClassVar[str] = "palette"

    def fingerprint(self) -> str:
        return f"labels={read_labels(self.labels_path)!r} void={self.void_indices}"

    def jobs(self) -> Iterator[Job]:
        labels = read_labels(self.labels_path)
        yield from folder_jobs(self.masks, self.pattern, self.storage_options, labels)

    def convert(self, job: Job, datas: Sequence[bytes], context: WorkerContext) -> Mapped:
        import numpy as np

        labels: tuple[Label, ...] = job.spec
        name = job.sources[0]
        image = open_source(datas[0], max_pixels=context.max_pixels, name=name)
        if image.mode in ("RGB", "RGBA"):
            raise SourceError(
                "source-mode",
                f"{name} is an {image.mode} mask, not palette indices: its colours would have "
                "to be matched to labels; use `segcli convert colour` with the same --labels",
            )
        if image.mode not in ("P", "L"):
            raise SourceError(
                "source-mode",
                f"{name} has mode {image.mode}; a palette mask holds one 8-bit index per pixel",
            )
        values = np.asarray(image)
        ordered = sorted(labels, key=lambda label: label.index)
        candidates = [label.segment() for label in ordered]
        keys = [label.index for label in ordered]
        targets = list(range(len(ordered)))
        void = [v for v in self.void_indices if v not in keys]
        if void:
            at = void_candidate(candidates, context.void)
            keys, targets = keys + void, targets + [at] * len(void)
        codes, unknown = lookup(values, keys, targets)
        if unknown:
            stray = listing(unknown_values(values, keys))
            raise SourceError(
                "unknown-value",
                f"palette indices in {name} with no label: {stray}; "
                "add them to the labels file (or declare them void with --void-index)",
            )
        counts = histogram(codes)
        findings = []
        palette = image.getpalette() if image.mode == "P" else None
        if palette:
            wrong = [
                (label, tuple(palette[3 * label.index : 3 * label.index + 3]))
                for position, label in enumerate(ordered)
                if counts[position]
                and label.colour is not None
                and tuple(palette[3 * label.index : 3 * label.index + 3]) != label.colour
            ]
            if wrong:
                shown = ", ".join(
                    f"{lab.index} {lab.label!r}: {got} not {lab.colour}" for lab, got in wrong[:5]
                )
                findings.append(
                    (
                        "palette-colour-mismatch",
                        f"palette colours of {name} differ from the labels' ({shown}); the "
                        "indices were used: check that the labels file is the masks' own",
                    )
                )
        return Mapped(labels=codes, candidates=candidates, findings=findings, counts=counts)
