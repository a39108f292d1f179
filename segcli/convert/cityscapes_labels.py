"""The Cityscapes label table, as the dataset's own ``labels.py`` publishes it.

(name, id, category, hasInstances, ignoreInEval) for ids 0..33; the
license plate (id -1) never appears in label images. Classes ignored in
evaluation are Cityscapes' void: segcli's converter makes them void pixels.
"""

from __future__ import annotations

from typing import NamedTuple


class CityscapesLabel(NamedTuple):
    name: str
    id: int
    category: str
    has_instances: bool
    ignore_in_eval: bool


LABELS = tuple(
    CityscapesLabel(*row)
    for row in (
        ("unlabeled", 0, "void", False, True),
        ("ego vehicle", 1, "void", False, True),
        ("rectification border", 2, "void", False, True),
        ("out of roi", 3, "void", False, True),
        ("static", 4, "void", False, True),
        ("dynamic", 5, "void", False, True),
        ("ground", 6, "void", False, True),
        ("road", 7, "flat", False, False),
        ("sidewalk", 8, "flat", False, False),
        ("parking", 9, "flat", False, True),
        ("rail track", 10, "flat", False, True),
        ("building", 11, "construction", False, False),
        ("wall", 12, "construction", False, False),
        ("fence", 13, "construction", False, False),
        ("guard rail", 14, "construction", False, True),
        ("bridge", 15, "construction", False, True),
        ("tunnel", 16, "construction", False, True),
        ("pole", 17, "object", False, False),
        ("polegroup", 18, "object", False, True),
        ("traffic light", 19, "object", False, False),
        ("traffic sign", 20, "object", False, False),
        ("vegetation", 21, "nature", False, False),
        ("terrain", 22, "nature", False, False),
        ("sky", 23, "sky", False, False),
        ("person", 24, "human", True, False),
        ("rider", 25, "human", True, False),
        ("car", 26, "vehicle", True, False),
        ("truck", 27, "vehicle", True, False),
        ("bus", 28, "vehicle", True, False),
        ("caravan", 29, "vehicle", True, True),
        ("trailer", 30, "vehicle", True, True),
        ("train", 31, "vehicle", True, False),
        ("motorcycle", 32, "vehicle", True, False),
        ("bicycle", 33, "vehicle", True, False),
    )
)
BY_ID = {label.id: label for label in LABELS}
