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

from segcli.convert.job import Job, WorkerContext
from segcli.convert.mapping import MAX_SEGMENTS, Mapped, listing, lookup, unknown_values
from segcli.convert.png import SourceError, decode_rgb_codes, open_source, rgb_codes
from segcli.convert.sources import join, open_binary
from segcli.convert.void import void_candidate
from segcli.errors import ManifestError
from segcli.model import Segment, Source

READ_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class CocoSpec:
    ids: tuple[int, ...]  # the PNG ids of segments_info, in order
    positions: tuple[int, ...]  # each id's place in ``candidates`` (merged ids share one)
    areas: tuple[int | None, ...]
    candidates: tuple[Segment, ...]


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

    def _spec(
        self, info: Any, categories: dict[Any, dict[str, Any]]
    ) -> tuple[CocoSpec | None, list[tuple[str, str]]]:
        if not isinstance(info, list) or not all(
            isinstance(s, dict) and isinstance(s.get("id"), int) for s in info
        ):
            return None, [
                (
                    "source-syntax",
                    "segments_info must be a list of segments, each with an integer id",
                )
            ]
        ids = [s["id"] for s in info]
        if len(set(ids)) != len(ids):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            return None, [
                (
                    "source-syntax",
                    f"segments_info lists the ids {twice} more than once; keep one each",
                )
            ]
        unknown = [s for s in info if s.get("category_id") not in categories]
        if unknown:
            listed = ", ".join(f"id {s['id']}: {s.get('category_id')!r}" for s in unknown[:10])
            return None, [
                (
                    "unknown-category",
                    f"segments with a category_id that is not in categories ({listed}); add the "
                    "categories to the JSON or fix the segments",
                )
            ]
        groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for s in info:
            category = categories[s["category_id"]]
            crowd = bool(s.get("iscrowd"))
            if self.merge_stuff and not category.get("isthing"):
                key: tuple[Any, ...] = ("stuff", s["category_id"])
            elif self.merge_crowd and crowd:
                key = ("crowd", s["category_id"])
            else:
                key = ("one", s["id"])
            groups.setdefault(key, []).append(s)
        if len(groups) > MAX_SEGMENTS:
            return None, [("too-many-segments", self._too_many(info, categories, len(groups)))]
        position = {id(s): n for n, members in enumerate(groups.values()) for s in members}
        candidates = tuple(
            Segment(
                index=n,
                label=str(categories[m[0]["category_id"]].get("name", m[0]["category_id"])),
                metadata=_metadata(m, categories[m[0]["category_id"]]),
            )
            for n, m in enumerate(groups.values())
        )
        spec = CocoSpec(
            ids=tuple(s["id"] for s in info),
            positions=tuple(position[id(s)] for s in info),
            areas=tuple(s["area"] if isinstance(s.get("area"), int) else None for s in info),
            candidates=candidates,
        )
        return spec, []

    def _too_many(self, info: list[dict[str, Any]], categories: dict[Any, Any], count: int) -> str:
        def thing(s: dict[str, Any]) -> bool:
            return bool(categories[s["category_id"]].get("isthing"))

        stuff = [s for s in info if not thing(s)]
        crowd = [s for s in info if thing(s) and s.get("iscrowd")]
        things = len(info) - len(stuff) - len(crowd)
        stuff_kinds = len({s["category_id"] for s in stuff})
        crowd_kinds = len({s["category_id"] for s in crowd})
        return (
            f"the image has {count} segments; a mask holds at most {MAX_SEGMENTS} (void "
            f"included). --merge-stuff (one segment per stuff category) leaves "
            f"{stuff_kinds + things + len(crowd)}, --merge-crowd (one per crowd category) "
            f"{len(stuff) + things + crowd_kinds}, both {stuff_kinds + things + crowd_kinds}"
        )

    def convert(self, job: Job, datas: Sequence[bytes], context: WorkerContext) -> Mapped:
        spec, found = self._spec(*job.spec)
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
            return _checks(name, spec, _id_counts(codes, spec, counts))

        return Mapped(labels=labels, candidates=candidates, verify=verify)


def _checks(name: str, spec: CocoSpec, per_id: list[int]) -> list[tuple[str, str]]:
    """panopticapi's per-image checks that need the pixel counts, and the areas."""
    findings: list[tuple[str, str]] = []
    absent = [i for i, n in zip(spec.ids, per_id, strict=True) if n == 0]
    if absent:
        more = " ..." if len(absent) > 10 else ""
        findings.append(
            (
                "segment-not-in-png",
                f"segments of segments_info with no pixel in {name}: ids "
                f"{', '.join(map(str, absent[:10]))}{more}; "
                "the PNG and the JSON do not match (another export, or a wrong file_name)",
            )
        )
    wrong = [
        (i, a, n)
        for i, a, n in zip(spec.ids, spec.areas, per_id, strict=True)
        if a is not None and n and a != n
    ]
    if wrong:
        shown = ", ".join(f"id {i}: area {a:,}, {n:,} px" for i, a, n in wrong[:5])
        findings.append(
            (
                "area-mismatch",
                f"areas in the JSON differ from the pixel counts ({shown}); "
                "the metadata keeps the JSON's area",
            )
        )
    return findings


def _id_counts(codes: Any, spec: CocoSpec, counts: list[int]) -> list[int]:
    """Pixels of each id; from the mask's histogram unless ids were merged."""
    if list(spec.positions) == list(range(len(spec.ids))):
        return [counts[p] for p in spec.positions]
    import numpy as np

    ids = np.asarray(spec.ids, dtype=np.int64)
    order = np.argsort(ids)
    ordered = ids[order]
    flat = codes.ravel().astype(np.int64)
    pos = np.clip(np.searchsorted(ordered, flat), 0, len(ids) - 1)
    found = np.bincount(pos[ordered[pos] == flat], minlength=len(ids))
    result = np.empty(len(ids), dtype=np.int64)
    result[order] = found
    return [int(v) for v in result]


def _metadata(members: list[dict[str, Any]], category: dict[str, Any]) -> dict[str, Any]:
    first = members[0]
    meta: dict[str, Any] = {
        "category_id": first["category_id"],
        "coco_id": first["id"] if len(members) == 1 else [m["id"] for m in members],
        "isthing": bool(category.get("isthing")),
        "iscrowd": any(bool(m.get("iscrowd")) for m in members),
    }
    areas = [m.get("area") for m in members]
    if all(isinstance(a, (int, float)) for a in areas):
        meta["area"] = sum(areas)
    boxes = [m.get("bbox") for m in members]
    if all(isinstance(b, list) and len(b) == 4 for b in boxes):
        meta["bbox"] = _union(boxes)  # type: ignore[arg-type]
    if "supercategory" in category:
        meta["supercategory"] = category["supercategory"]
    return meta


def _union(boxes: list[list[float]]) -> list[float]:
    if len(boxes) == 1:
        return list(boxes[0])
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes)
    y1 = max(b[1] + b[3] for b in boxes)
    return [x0, y0, x1 - x0, y1 - y0]
