"""Every check segcli makes, by stable code.

Scripts match on these codes (in ``--json`` and ``--report`` output), so a
code is never renamed. ``problem()`` builds a ``Problem`` with the severity
registered here, so no caller can disagree about how bad a finding is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from segcli.errors import UsageError
from segcli.model import MaskItem, Problem, Severity, Source

#: what a check found, before it is a Problem on an item: (code, message)
Finding = tuple[str, str]

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
    "image-unreadable": (W, "an item's image (used by preview and reports only) is not there"),
    # upload
    "local-mask-async": (E, "upload --async: a local mask (the service fetches each mask)"),
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


@dataclass(frozen=True, slots=True)
class CodePolicy:
    """Which warning codes to drop (``--ignore``) and which to treat as errors (``--error``).

    Like a linter's rule selection, by stable code. Errors cannot be
    ignored: an item with one would be refused by the service or break in it.
    """

    ignore: frozenset[str] = frozenset()
    error: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, ignore: Iterable[str] = (), error: Iterable[str] = ()) -> CodePolicy:
        """From ``--ignore``/``--error`` values, each a code or a comma-separated list."""
        ignored = _codes("--ignore", ignore)
        errors = _codes("--error", error)
        refused = sorted(c for c in ignored if RULES[c][0] is Severity.ERROR)
        if refused:
            raise UsageError(
                f"--ignore {', '.join(refused)}: only warnings can be ignored; "
                f"{'that is an error' if len(refused) == 1 else 'those are errors'}",
                hint="fix the input, or leave the code out of --ignore",
            )
        both = sorted(ignored & errors)
        if both:
            raise UsageError(f"{', '.join(both)} is given to both --ignore and --error; choose one")
        return cls(frozenset(ignored), frozenset(errors))

    @property
    def active(self) -> bool:
        return bool(self.ignore or self.error)

    def apply(self, problems: tuple[Problem, ...]) -> tuple[Problem, ...]:
        if not self.active or not problems:
            return problems
        out = []
        for p in problems:
            if p.code in self.ignore:
                continue
            if p.code in self.error and not p.is_error:
                p = replace(p, severity=Severity.ERROR)
            out.append(p)
        return tuple(out)

    def item(self, item: MaskItem) -> MaskItem:
        """The item with its manifest problems under this policy."""
        if not self.active or not item.problems:
            return item
        problems = self.apply(item.problems)
        return item if problems == item.problems else replace(item, problems=problems)


def _codes(flag: str, values: Iterable[str]) -> set[str]:
    found = {code.strip() for value in values for code in value.split(",") if code.strip()}
    unknown = sorted(found - set(RULES))
    if unknown:
        raise UsageError(
            f"{flag}: unknown code {', '.join(unknown)}",
            hint="codes are listed in README and in `segcli validate --help`: "
            + ", ".join(sorted(RULES)),
        )
    return found
