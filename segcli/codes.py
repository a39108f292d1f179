"""Every check segcli makes, by stable code.

Scripts match on these codes (in ``--json`` and ``--report`` output), so a
code is never renamed. ``problem()`` builds a ``Problem`` with the severity
registered here, so no caller can disagree about how bad a finding is.
"""

from __future__ import annotations

from segcli.model import Problem, Severity, Source

E = Severity.ERROR
W = Severity.WARNING

#: code -> (severity, one-line description for docs and ``--help``)
RULES: dict[str, tuple[Severity, str]] = {
    # manifest
    "manifest-syntax": (E, "a manifest line or record cannot be parsed"),
    "missing-reference-id": (E, "an item has no reference_id"),
    "missing-mask": (E, "an item has no mask"),
    "duplicate-reference-id": (E, "the same reference_id appears twice"),
    "missing-segments": (E, "an item has no segment table and there is no default"),
    "bad-segment-index": (E, "a segment index is not an integer in 0..255"),
    "duplicate-segment-index": (E, "the same index appears twice in one segment table"),
    "empty-label": (E, "a segment has an empty label"),
    "bad-metadata": (E, "segment metadata is not a mapping of finite JSON values"),
    "bad-size": (E, "width/height in the manifest are not positive integers"),
    "bad-annotation-id": (E, "annotation_id is not a string"),
    "unknown-field": (W, "the manifest has a field segcli does not use"),
    # mask file
    "mask-unreadable": (E, "the mask cannot be read (missing, no permission, unreachable)"),
    "mask-not-png": (E, "the mask is not a PNG (judged by content)"),
    "mask-corrupt": (E, "the PNG is truncated or corrupt"),
    "mask-too-large": (E, "the mask has more pixels than the limit (decompression bomb guard)"),
    "mask-mode": (E, "the mask is not single-channel 8-bit"),
    "mask-palette": (W, "a palette mask: its colours are ignored, its indices are the values"),
    "size-mismatch": (E, "the mask's size differs from width/height in the manifest"),
    # pixel values
    "value-without-segment": (E, "a pixel value in the mask has no segment"),
    "segment-not-in-mask": (W, "a segment's index never appears in the mask"),
    "values-not-contiguous": (W, "the mask's values do not form 0..N-1"),
    "void-without-segment": (W, "a value declared void (void: / --void) has no segment"),
    # segcli convert: the sources of a conversion
    "source-unreadable": (E, "a source file is missing or cannot be read"),
    "source-corrupt": (E, "a source image is not a PNG, is truncated or is damaged"),
    "source-mode": (E, "a source image has the wrong kind of pixels for its converter"),
    "source-syntax": (E, "a source record (JSON, table) is malformed"),
    "id-not-in-json": (E, "COCO: a segment id in the PNG is not in the image's segments_info"),
    "segment-not-in-png": (E, "COCO: a segment of segments_info has no pixel in the PNG"),
    "unknown-category": (E, "COCO: a segment's category_id is not in categories"),
    "area-mismatch": (W, "COCO: a segment's area differs from its pixel count"),
    "unknown-value": (E, "a source value (class id, palette index, colour) has no label"),
    "too-many-segments": (E, "more than 256 segments in one image"),
    "palette-colour-mismatch": (W, "a palette colour differs from the labels' colour for it"),
    "output-unwritable": (E, "a converted mask cannot be written to --out"),
}


def problem(
    code: str,
    message: str,
    *,
    reference_id: str | None = None,
    source: Source | None = None,
) -> Problem:
    severity, _ = RULES[code]
    return Problem(
        code=code, severity=severity, message=message, reference_id=reference_id, source=source
    )
