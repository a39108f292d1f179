"""Source-format examples for `segcli convert` and `segcli manifest`, drawn from fixed inputs.

Called by make_sample_data.py (which owns --check): every file is built in
memory from the sample scene and fixed shapes, so two runs give the same
bytes. Each folder holds a small example of one format as its tools write
it; none is downloaded.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

Labels = npt.NDArray[np.uint8]
Files = dict[str, bytes]
Table = list[dict[str, Any]]

CITYSCAPES_SIZE = (2048, 1024)


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _rgb_ids(ids: npt.NDArray[np.uint32]) -> Image.Image:
    """COCO's id2rgb: id = R + 256 G + 256**2 B."""
    rgb = np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb, "RGB")


# --------------------------------------------------------------------------- COCO panoptic


def coco(panoptic: Labels, panoptic_table: Table, street: Labels, street_table: Table) -> Files:
    """The guide's scene (street-0001) and a street scene with a void border (street-0002)."""
    names: list[str] = []
    for label in [s["label"] for s in panoptic_table] + [s["label"] for s in street_table]:
        if label not in names:
            names.append(label)
    things = {"person", "handbag", "bird", "car"}
    categories = [
        {"id": 10 + n, "name": name, "isthing": int(name in things), "supercategory": name}
        for n, name in enumerate(names)
    ]
    category_of = {c["name"]: c["id"] for c in categories}
    files: Files = {}
    images, annotations = [], []
    for image_id, (ref, labels, table) in enumerate(
        [("street-0001", panoptic, panoptic_table), ("street-0002", street, street_table)], 1
    ):
        ids = np.zeros(labels.shape, dtype=np.uint32)
        segments = []
        for s in table:
            where = labels == s["index"]
            if ref == "street-0002":
                where[:6, :] = False  # a void strip along the top: id 0
            if not where.any():
                continue
            # Ids spread over all three channels, as COCO's panoptic converter makes them.
            segment_id = 1 + s["index"] * 65793 + image_id * 4099
            ids[where] = segment_id
            ys, xs = np.nonzero(where)
            segments.append(
                {
                    "id": segment_id,
                    "category_id": category_of[s["label"]],
                    "iscrowd": 0,
                    "area": int(where.sum()),
                    "bbox": [
                        int(xs.min()),
                        int(ys.min()),
                        int(np.ptp(xs)) + 1,
                        int(np.ptp(ys)) + 1,
                    ],
                }
            )
        height, width = labels.shape
        images.append({"id": image_id, "file_name": f"{ref}.jpg", "width": width, "height": height})
        annotations.append(
            {"image_id": image_id, "file_name": f"{ref}.png", "segments_info": segments}
        )
        files[f"coco/panoptic/{ref}.png"] = _png(_rgb_ids(ids))
    document = {"images": images, "annotations": annotations, "categories": categories}
    files["coco/panoptic.json"] = (json.dumps(document, indent=1) + "\n").encode()
    return files


# --------------------------------------------------------------------------- Cityscapes


def _draw(
    size: tuple[int, int], mode: str, paint: Callable[[ImageDraw.ImageDraw], None]
) -> Image.Image:
    image = Image.new(mode, size, 0)
    paint(ImageDraw.Draw(image))
    return image


def cityscapes() -> Files:
    """Two frames of one city: labelIds (8-bit) and instanceIds (16-bit, class * 1000 + k)."""
    w, h = CITYSCAPES_SIZE
    files: Files = {}
    for frame, shift in (("000019", 0), ("000020", 180)):

        def paint(d: ImageDraw.ImageDraw, instances: bool, shift: int = shift) -> None:
            d.rectangle((0, 0, w, 380), fill=23)  # sky
            d.polygon([(0, 120), (700, 220), (700, 560), (0, 600)], fill=11)  # building
            d.polygon([(1400, 200), (w, 100), (w, 600), (1400, 560)], fill=11)
            d.rectangle((700, 300, 1400, 560), fill=21)  # vegetation
            d.polygon([(0, 600), (w, 600), (w, 900), (0, 900)], fill=7)  # road
            d.polygon([(0, 560), (w, 560), (w, 600), (0, 600)], fill=8)  # sidewalk
            d.rectangle((1000 + shift, 380, 1012 + shift, 600), fill=17)  # pole
            for k, x in enumerate((200 + shift, 620 + shift, 1500 - shift)):
                value = 26 * 1000 + k if instances else 26  # cars, one instance each
                d.rounded_rectangle((x, 640, x + 300, 820), radius=40, fill=value)
            for k, x in enumerate((950, 1120)):
                value = 24 * 1000 + k if instances else 24  # people
                d.ellipse((x + shift, 470, x + 40 + shift, 510), fill=value)
                d.rectangle((x + 5 + shift, 510, x + 35 + shift, 640), fill=value)
            d.rectangle((1650, 480, 1800, 600), fill=24)  # a crowd: the class id alone
            d.rectangle((0, 900, w, h), fill=1)  # ego vehicle: ignored in evaluation

        name = f"cityscapes/gtFine/val/ulm/ulm_000000_{frame}_gtFine"
        files[f"{name}_labelIds.png"] = _png(_draw((w, h), "L", lambda d: paint(d, False)))
        wide = _draw((w, h), "I", lambda d: paint(d, True))
        files[f"{name}_instanceIds.png"] = _png(Image.fromarray(np.asarray(wide).astype(np.uint16)))
    return files


# --------------------------------------------------------------------------- VOC, colour, wide

VOC_CLASSES = (
    *("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat"),
    *("chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant"),
    *("sheep", "sofa", "train", "tvmonitor"),
)


def voc_colour(index: int) -> tuple[int, int, int]:
    """Pascal VOC's colour map (bit-interleaved index)."""
    r = g = b = 0
    for shift in range(8):
        r |= ((index >> 0) & 1) << (7 - shift)
        g |= ((index >> 1) & 1) << (7 - shift)
        b |= ((index >> 2) & 1) << (7 - shift)
        index >>= 3
    return r, g, b


def _labelmap(names: Sequence[str], colours: Sequence[tuple[int, int, int]]) -> bytes:
    lines = ["# label:color_rgb:parts:actions"]
    lines += [f"{n}:{r},{g},{b}::" for n, (r, g, b) in zip(names, colours, strict=True)]
    return ("\n".join(lines) + "\n").encode()


def _scene(
    size: tuple[int, int], values: dict[str, int], seed: int, border: int | None
) -> Image.Image:
    rng = np.random.default_rng(seed)
    image = Image.new("L", size, values["background"])
    d = ImageDraw.Draw(image)
    w, h = size
    for name in [n for n in values if n != "background"]:
        x, y = int(rng.integers(10, w - 120)), int(rng.integers(10, h - 100))
        box = (x, y, x + int(rng.integers(50, 110)), y + int(rng.integers(40, 90)))
        outline = border if border is not None else values[name]
        d.ellipse(box, fill=values[name], outline=outline, width=3)
    return image


def voc() -> Files:
    files: Files = {"voc/labelmap.txt": _labelmap(VOC_CLASSES, [voc_colour(i) for i in range(21)])}
    palette = [v for i in range(256) for v in voc_colour(i)]
    for n, (ref, names) in enumerate(
        [
            ("2007_000032", ("aeroplane", "person")),
            ("2007_000039", ("tvmonitor", "person", "chair")),
        ]
    ):
        values = {"background": 0, **{name: VOC_CLASSES.index(name) for name in names}}
        image = _scene((320, 240), values, 7000 + n, border=255).convert("P")
        image.putpalette(palette)
        files[f"voc/{ref}.png"] = _png(image)
    return files


COLOUR_LABELS = ("background", "road", "lane marking", "car", "pedestrian")
COLOUR_RGB = ((0, 0, 0), (128, 64, 128), (255, 255, 255), (0, 0, 142), (220, 20, 60))


def colour() -> Files:
    files: Files = {"colour/labelmap.txt": _labelmap(COLOUR_LABELS, COLOUR_RGB)}
    lut = np.zeros((256, 3), dtype=np.uint8)
    lut[: len(COLOUR_RGB)] = COLOUR_RGB
    values = {name: n for n, name in enumerate(COLOUR_LABELS)}
    for n in range(2):
        index = np.asarray(_scene((320, 240), values, 7100 + n, border=None))
        files[f"colour/frame-{n + 1:04d}.png"] = _png(Image.fromarray(lut[index], "RGB"))
    return files


WIDE_CLASSES: Table = [
    {"index": 0, "label": "unlabeled"},
    {"index": 1, "label": "road", "metadata": {"isthing": False}},
    {"index": 2, "label": "car", "metadata": {"isthing": True}},
    {"index": 3, "label": "person", "metadata": {"isthing": True}},
]


def wide() -> Files:
    """Mapillary-style 16-bit instance masks: value = class * 256 + instance."""
    import yaml

    files: Files = {
        "wide/classes.yaml": yaml.safe_dump(WIDE_CLASSES, sort_keys=False).encode(),
    }
    for n in range(2):
        rng = np.random.default_rng(7200 + n)
        image = Image.new("I", (320, 240), 0)
        d = ImageDraw.Draw(image)
        d.rectangle((0, 140, 320, 240), fill=1 * 256)
        for k in range(3 + n):
            x = int(rng.integers(0, 260))
            d.rectangle((x, 120, x + 50, 170), fill=2 * 256 + k)
        for k in range(2):
            x = int(rng.integers(0, 300))
            d.rectangle((x, 90, x + 12, 150), fill=3 * 256 + k)
        files[f"wide/frame-{n + 1:04d}.png"] = _png(
            Image.fromarray(np.asarray(image).astype(np.uint16))
        )
    return files


def folder(masks: dict[str, bytes], aerial_table: bytes) -> Files:
    """Index masks named {reference_id}_mask.png plus their one table, for `segcli manifest`."""
    files = {
        f"folder/{ref}_mask.png": masks[f"masks/{ref}.png"]
        for ref in ("aerial-0001", "aerial-0002")
    }
    files["folder/classes.json"] = aerial_table
    return files


def build(
    panoptic: Labels,
    panoptic_table: Table,
    street: Labels,
    street_table: Table,
    files: Files,
    aerial_yaml: bytes,
) -> Files:
    out: Files = {}
    out.update(coco(panoptic, panoptic_table, street, street_table))
    out.update(cityscapes())
    out.update(voc())
    out.update(colour())
    out.update(wide())
    out.update(folder(files, aerial_yaml))
    return out


README = """
## Sources for `segcli convert` and `segcli manifest`

Small examples of the formats masks come in, drawn like the rest (nothing is
downloaded). `segcli convert` turns each into index masks and a manifest.

| folder | format | converter |
|---|---|---|
| `coco/` | COCO panoptic: `panoptic.json` and RGB id PNGs in `panoptic/`; street-0001 is the guide's scene (11 segments), street-0002 a street scene with a 6-pixel void strip (id 0) | `coco-panoptic` |
| `cityscapes/gtFine/val/ulm/` | two frames, 2048x1024: `*_gtFine_labelIds.png` (8-bit) and `*_gtFine_instanceIds.png` (16-bit, class * 1000 + instance; a crowd of people as the class id alone; the ego vehicle, an ignored class) | `cityscapes --kind semantic, instance, panoptic` |
| `voc/` | Pascal VOC palette PNGs (mode P, VOC colour map, 255 on object borders) and `labelmap.txt` | `palette` |
| `colour/` | RGB colour-coded masks and a CVAT `labelmap.txt` with their colours | `colour` |
| `wide/` | 16-bit instance masks, value = class * 256 + instance (Mapillary's rule), and `classes.yaml` | `wide` |
| `folder/` | index masks named `{reference_id}_mask.png` and their table `classes.json` | `segcli manifest --id '{reference_id}_mask.png'` |

`manifest_panoptic.yaml` holds street-0001's panoptic mask alone, for
`segcli convert consolidate --to semantic|instance`, which gives exactly
`masks/street-0001_semantic.png` and `masks/street-0001_instance.png`.
"""  # noqa: E501 - markdown table rows
