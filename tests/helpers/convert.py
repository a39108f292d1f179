"""Build source datasets in a temporary folder and read converted masks back, for convert tests."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from segcli.convert.job import ImageResult
from segcli.convert.run import ConvertSettings, convert_masks
from segcli.manifest import load_manifest
from segcli.model import MaskItem

CATEGORIES = [
    {"id": 1, "name": "person", "isthing": 1, "supercategory": "person"},
    {"id": 2, "name": "car", "isthing": 1, "supercategory": "vehicle"},
    {"id": 7, "name": "sky", "isthing": 0, "supercategory": "sky"},
    {"id": 8, "name": "road", "isthing": 0, "supercategory": "ground"},
]


def rgb_of(ids: np.ndarray) -> Image.Image:
    ids = ids.astype(np.uint32)
    rgb = np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def segments_info(ids: np.ndarray, category_of: dict[int, int]) -> list[dict[str, Any]]:
    """One segment per non-zero id, in ascending id, with its true area and box."""
    out = []
    for segment_id in sorted(int(v) for v in np.unique(ids) if v):
        ys, xs = np.nonzero(ids == segment_id)
        out.append(
            {
                "id": segment_id,
                "category_id": category_of[segment_id],
                "iscrowd": 0,
                "area": len(xs),
                "bbox": [int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1],
            }
        )
    return out


def write_coco(
    root: Path,
    images: Sequence[tuple[str, np.ndarray, dict[int, int]]],
    *,
    categories: Sequence[dict[str, Any]] = CATEGORIES,
    edit: Any = None,
) -> Path:
    """``root/panoptic.json`` and ``root/panoptic/NAME.png`` for (name, ids, {id: category})."""
    (root / "panoptic").mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {"images": [], "annotations": [], "categories": list(categories)}
    for n, (name, ids, category_of) in enumerate(images, 1):
        rgb_of(ids).save(root / "panoptic" / f"{name}.png")
        height, width = ids.shape
        document["images"].append(
            {"id": n, "file_name": f"{name}.jpg", "width": width, "height": height}
        )
        document["annotations"].append(
            {
                "image_id": n,
                "file_name": f"{name}.png",
                "segments_info": segments_info(ids, category_of),
            }
        )
    if edit is not None:
        edit(document)
    path = root / "panoptic.json"
    path.write_text(json.dumps(document))
    return path


def run(converter: Any, out: Path | str, **settings: Any) -> list[ImageResult]:
    settings.setdefault("pool", "inline")
    return list(convert_masks(converter, ConvertSettings(out=str(out), **settings)))


def labels_of(item: MaskItem) -> np.ndarray:
    """The label of every pixel of a converted mask, by its segment table."""
    values = np.asarray(Image.open(item.mask))
    table = {s.index: s.label for s in item.segments}
    lookup = np.array([table.get(v, "?") for v in range(256)], dtype=object)
    return lookup[values]


def manifest_items(path: Path) -> list[MaskItem]:
    return list(load_manifest(path))


def by_ref(results: Sequence[ImageResult]) -> dict[str, ImageResult]:
    return {r.reference_id: r for r in results}


def codes(result: ImageResult) -> list[str]:
    return [p.code for p in result.problems]
