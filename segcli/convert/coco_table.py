"""COCO panoptic tables: one image's segments_info as segcli candidates, and its checks.

Built in the worker from the image's record (the parent only reads the
JSON): which PNG id becomes which segment (``merge_stuff`` and
``merge_crowd`` put several ids in one), each segment's label and metadata,
and the per-image checks panopticapi's evaluator makes once pixels are
counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from segcli.convert.mapping import MAX_SEGMENTS
from segcli.model import Segment


@dataclass(frozen=True, slots=True)
class CocoSpec:
    ids: tuple[int, ...]  # the PNG ids of segments_info, in order
    positions: tuple[int, ...]  # each id's place in ``candidates`` (merged ids share one)
    areas: tuple[int | None, ...]
    candidates: tuple[Segment, ...]


def build_spec(
    info: Any, categories: dict[Any, dict[str, Any]], *, merge_stuff: bool, merge_crowd: bool
) -> tuple[CocoSpec | None, list[tuple[str, str]]]:
    """The table of one image, or None and the one finding that makes it unusable."""
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
        if merge_stuff and not category.get("isthing"):
            key: tuple[Any, ...] = ("stuff", s["category_id"])
        elif merge_crowd and crowd:
            key = ("crowd", s["category_id"])
        else:
            key = ("one", s["id"])
        groups.setdefault(key, []).append(s)
    if len(groups) > MAX_SEGMENTS:
        return None, [("too-many-segments", _too_many(info, categories, len(groups)))]
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


def _too_many(info: list[dict[str, Any]], categories: dict[Any, Any], count: int) -> str:
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


def checks(name: str, spec: CocoSpec, per_id: list[int]) -> list[tuple[str, str]]:
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


def id_counts(codes: Any, spec: CocoSpec, counts: list[int]) -> list[int]:
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
