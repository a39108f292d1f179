"""Manifests whose --html page has something to show: lit pixels where a test put them,
hostile text, and problems of several codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.helpers.pngs import gray_png

HOSTILE_REF = '<script>alert("ref")</script>'
HOSTILE_LABEL = "\"quoted\" <b>bold</b> & 'single'"
RTL_LABEL = "שלום עולם"
#: the corner item: a 200x100 mask whose value 9 (no segment) fills this box
CORNER_BOX = (170, 75, 190, 90)  # left, top, right, bottom (exclusive)


def report_manifest(folder: Path, *, extra_invalid: int = 0) -> Path:
    """corner-0001 (value-without-segment, bottom right), a hostile item (a warning),
    missing-0001 (mask-unreadable), clean-0001 (no problem) and ``extra_invalid`` more."""
    folder.mkdir(parents=True, exist_ok=True)
    corner = np.zeros((100, 200), np.uint8)
    corner[:, 100:] = 1
    left, top, right, bottom = CORNER_BOX
    corner[top:bottom, left:right] = 9
    (folder / "corner.png").write_bytes(gray_png(corner))
    plain = np.zeros((40, 60), np.uint8)
    plain[20:, :] = 1
    (folder / "plain.png").write_bytes(gray_png(plain))
    table = [{"index": 0, "label": "sky"}, {"index": 1, "label": "road"}]
    hostile = [
        {"index": 0, "label": HOSTILE_LABEL},
        {"index": 1, "label": RTL_LABEL},
        {"index": 2, "label": "</table><img src=x onerror=alert(1)>"},
    ]
    records = [
        {"reference_id": "corner-0001", "mask": "corner.png", "segments": table},
        {"reference_id": HOSTILE_REF, "mask": "plain.png", "segments": hostile},
        {"reference_id": "missing-0001", "mask": "nowhere.png", "segments": table},
        {"reference_id": "clean-0001", "mask": "plain.png", "segments": table},
    ]
    records += [
        {"reference_id": f"bad-{n:04d}", "mask": "corner.png", "segments": table}
        for n in range(extra_invalid)
    ]
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return manifest
