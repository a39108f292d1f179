"""``segcli convert``: masks as datasets ship them, to Nucleus index masks and a manifest.

    from segcli.convert import CocoPanoptic, ConvertSettings, convert_masks

    for result in convert_masks(CocoPanoptic("panoptic.json"), ConvertSettings(out="masks/")):
        print(result.reference_id, result.state, [p.code for p in result.problems])

One converter per source format (``coco``, ``cityscapes``, ``palette``,
``colour``, ``wide``, ``consolidate``), each a frozen dataclass of its
options that plans one ``Job`` per image and turns a job's source bytes into
labels. ``run`` does the rest for all of them on segcli's worker pool: read,
resume, encode (``png``), check with the inspector of ``segcli validate``,
write (``outputs``). Void pixels follow a ``VoidRule`` (``void``).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "convert_masks": "segcli.convert.run",
    "ConvertSettings": "segcli.convert.run",
    "ConvertSummary": "segcli.convert.run",
    "ImageResult": "segcli.convert.job",
    "VoidRule": "segcli.convert.void",
    "CocoPanoptic": "segcli.convert.coco",
    "Cityscapes": "segcli.convert.cityscapes",
    "Palette": "segcli.convert.palette",
    "ColourMasks": "segcli.convert.colour",
    "WideMasks": "segcli.convert.wide",
    "Consolidate": "segcli.convert.consolidate",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    # Loaded on first use, like segcli's own names: importing the package costs nothing.
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'segcli.convert' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
