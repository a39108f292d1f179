"""COCO panoptic: RGB id PNGs plus ``segments_info`` to index masks.

Each PNG pixel holds a segment id, ``R + 256 G + 256**2 B``; 0 is void. The
JSON (read as a stream by ijson, twice: categories and image sizes first,
then the annotations one by one) says, per image, which ids exist and what
they are. Per image, as panopticapi's evaluator checks: a PNG id absent
from segments_info, a segment absent from the PNG, and a category_id that
is not in ``categories`` are errors; an ``area`` that differs from the
pixel count is a warning. Segments keep segments_info's order; void is the
last segment. Metadata: ``{category_id, coco_id, isthing, iscrowd, area,
bbox, supercategory}``; a merged segment (``merge_stuff``, ``merge_crowd``)
has the list of its ``coco_id``s, the sum of the areas and the union of the
boxes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from segcli.convert.coco_table import build_spec, checks, id_counts
from segcli.convert.job import Job, WorkerContext
from segcli.convert.mapping import MAX_SEGMENTS, Mapped, listing, lookup, unknown_values
from segcli.convert.png import SourceError, decode_rgb_codes, open_source, rgb_codes
from segcli.convert.sources import join, open_binary
from segcli.convert.void import void_candidate
from segcli.errors import ManifestError
from segcli.model import Source

READ_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class CocoPanoptic:
    json_path: str
    masks: str | None = None  # default: the JSON's path without .json (panopticapi's rule)
    merge_stuff: bool = False
    merge_crowd: bool = False
    storage_options: Any = None
    name: ClassVar[str] = "coco-panoptic"

    def fingerprint(self) -> str:
        return f"merge_stuff={self.merge_stuff} merge_crowd={self.merge_crowd}"

    @property
    def masks_root(self) -> str:
        return self.masks or os.path.splitext(self.json_path)[0]

    def jobs(self) -> Iterator[Job]:
        import ijson

        categories, images = self._index()
        with open_binary(self.json_path, self.storage_options) as handle:
            try:
                for n, record in enumerate(ijson.items(handle, "annotations.item", use_float=True)):
                    yield self._job(n + 1, record, categories, images)
            except ijson.JSONError as exc:
                raise ManifestError(f"{self.json_path} is not valid JSON ({exc})") from exc

    def _index(self) -> tuple[dict[Any, dict[str, Any]], dict[Any, tuple[Any, Any]]]:
        import ijson

        categories: dict[Any, dict[str, Any]] = {}
        images: dict[Any, tuple[Any, Any]] = {}
        found_categories = ijson.sendable_list()
        found_images = ijson.sendable_list()
        readers = [
            ijson.items_coro(found_categories, "categories.item", use_float=True),
            ijson.items_coro(found_images, "images.item", use_float=True),
        ]
        with open_binary(self.json_path, self.storage_options) as handle:
            try:
                while chunk := handle.read(READ_CHUNK):
                    for reader in readers:
                        reader.send(chunk)
                    for record in found_categories:
                        if isinstance(record, dict) and "id" in record:
                            categories[record["id"]] = record
                    for record in found_images:
                        if isinstance(record, dict) and "id" in record:
                            images[record["id"]] = (record.get("width"), record.get("height"))
                    del found_categories[:], found_images[:]
                for reader in readers:
                    reader.close()
            except ijson.JSONError as exc:
                raise ManifestError(f"{self.json_path} is not valid JSON ({exc})") from exc
        if not categories:
            raise ManifestError(
                f"{self.json_path} has no 'categories'; a COCO panoptic JSON lists its categories"
            )
        return categories, images

    def _job(
        self,
        n: int,
        record: Any,
        categories: dict[Any, dict[str, Any]],
        images: dict[Any, tuple[Any, Any]],
    ) -> Job:
        where = Source(self.json_path, n)
        file_name = record.get("file_name") if isinstance(record, dict) else None
        if not isinstance(file_name, str) or not file_name:
            return Job(
                reference_id=f"annotation-{n}",
                sources=(),
                where=where,
                findings=(
                    ("source-syntax", f"annotation {n} has no file_name; add the PNG's name"),
                ),
            )
        reference_id = os.path.splitext(os.path.basename(file_name))[0]
        size = images.get(record.get("image_id"), (None, None))
        width, height = (v if isinstance(v, int) and v > 0 else None for v in size)
        info = record.get("segments_info")
        used = (
            {s.get("category_id") for s in info if isinstance(s, dict)}
            if isinstance(info, list)
            else set()
        )
        # The worker builds the table (CocoSpec): planning stays a small share of the parent.
        return Job(
            reference_id=reference_id,
            sources=(join(self.masks_root, file_name),),
            where=where,
            spec=(info, {c: categories[c] for c in used if c in categories}),
            width=width,
            height=height,
        )

    def convert(self, job: Job, datas: Sequence[bytes], context: WorkerContext) -> Mapped:
        spec, found = build_spec(
            *job.spec, merge_stuff=self.merge_stuff, merge_crowd=self.merge_crowd
        )
        if spec is None:
            raise SourceError(*found[0])
        name = job.sources[0]
        codes = decode_rgb_codes(datas[0], max_pixels=context.max_pixels, name=name)
        if codes is None:  # not a plain 8-bit RGB PNG: Pillow says what it is
            image = open_source(datas[0], max_pixels=context.max_pixels, name=name)
            codes = rgb_codes(image, name=name)
        job.check_size(codes.shape[1], codes.shape[0], name, "images[] of the JSON")
        candidates = list(spec.candidates)
        void_at = void_candidate(candidates, context.void)
        keys: list[int] = list(spec.ids)
        targets: list[int] = list(spec.positions)
        if void_at < MAX_SEGMENTS:
            keys.append(0)
            targets.append(void_at)
        labels, unknown = lookup(codes, keys, targets, below=1 << 24)
        if unknown:
            stray = unknown_values(codes, keys)
            if stray and stray[0][0] == 0 and 0 not in keys:
                raise SourceError(
                    "too-many-segments",
                    f"{name} has {MAX_SEGMENTS} segments and void pixels, one more than a mask "
                    "holds; use --merge-stuff or --merge-crowd, or --void-into a label",
                )
            raise SourceError(
                "id-not-in-json",
                f"segment ids in {name} that are not in its segments_info: "
                f"{listing([p for p in stray if p[0]])}; the PNG and the JSON do not match "
                "(another export, or a wrong file_name)",
            )

        def verify(counts: list[int]) -> list[tuple[str, str]]:
            return checks(name, spec, id_counts(codes, spec, counts))

        return Mapped(labels=labels, candidates=candidates, verify=verify)
