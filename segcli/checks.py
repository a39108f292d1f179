"""The rules about a mask's content: its size and its pixel values against the segment table.

``inspect_item`` is what a worker process runs for one item: read the mask,
inspect the PNG, apply the rules. It never raises for bad input; everything
wrong with the mask comes back as ``Problem``s with codes from segcli.codes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from segcli.codes import Finding, problem
from segcli.defaults import DEFAULT_MAX_PIXELS
from segcli.model import MaskItem, Problem, Segment
from segcli.png import MaskFormatError, MaskInfo, inspect_png
from segcli.storage import MaskReadError, read_mask

# Messages list at most this many values, then "and N more": enough to see
# the pattern, short enough to read in a terminal.
LISTED_MAX = 10


@dataclass(frozen=True, slots=True)
class PixelFindings:
    """What the pixel values say about the segment table (each sorted ascending)."""

    without_segment: tuple[tuple[int, int], ...]  # (value, pixel count) with no segment
    unused_segments: tuple[int, ...]  # segment indices that never appear in the mask
    missing: tuple[int, ...]  # in 0..N-1 (N = number of distinct values) but absent
    extra: tuple[int, ...]  # present but N or above


def pixel_findings(counts: Mapping[int, int], segments: Iterable[Segment]) -> PixelFindings:
    """Compare the mask's values (value -> pixel count) with the segment table."""
    present = sorted(value for value, n in counts.items() if n > 0)
    # An index outside 0..255 can match no pixel; the manifest checks report it.
    indices = {s.index for s in segments if isinstance(s.index, int) and 0 <= s.index <= 255}
    expected = range(len(present))
    present_set = set(present)
    return PixelFindings(
        without_segment=tuple((v, counts[v]) for v in present if v not in indices),
        unused_segments=tuple(sorted(i for i in indices if i not in present_set)),
        missing=tuple(v for v in expected if v not in present_set),
        extra=tuple(v for v in present if v >= len(present)),
    )


def check_mask(item: MaskItem, info: MaskInfo) -> list[Problem]:
    """The problems of one inspected mask: size, palette and pixel values."""
    found: list[Problem] = []

    def add(code: str, message: str) -> None:
        found.append(problem(code, message, reference_id=item.reference_id, source=item.source))

    size = _size_mismatch(item, info)
    if size:
        add("size-mismatch", size)
    if info.palette:
        add(
            "mask-palette",
            "a palette (P) mask: its colours are ignored, its pixel indices are the values "
            "checked and sent; save it as mode 'L' to silence this",
        )

    # With no table at all the manifest already reported missing-segments;
    # listing every value as unmatched would only repeat it.
    table_missing = not item.segments and any(p.code == "missing-segments" for p in item.problems)
    findings = pixel_findings(info.counts, item.segments)
    declared = [(v, n) for v, n in findings.without_segment if v in item.void]
    undeclared = [(v, n) for v, n in findings.without_segment if v not in item.void]
    unlabelled = (
        (
            "value-without-segment",
            undeclared,
            "add a segment for each to the table or fix the mask",
        ),
        (
            "void-without-segment",
            declared,
            "Nucleus gets them without a label (give them a segment to label them)",
        ),
    )
    for code, pairs, advice in unlabelled:
        if pairs and not table_missing:
            kind = "pixel values" if code == "value-without-segment" else "void values"
            listed = _listing([f"{v} ({n:,} px)" for v, n in pairs])
            add(code, f"{kind} with no segment: {listed}; {advice}")
    if findings.unused_segments and not table_missing:
        labels = _labels(item.segments)
        listed = _listing([f"{i} {labels[i]!r}" for i in findings.unused_segments])
        add(
            "segment-not-in-mask",
            f"segments whose index never appears in the mask: {listed}",
        )
    if findings.missing:
        top = len(info.counts) - 1
        n = top + 1
        add(
            "values-not-contiguous",
            f"Nucleus asks for values in [0, N): this mask's {n} distinct values should be "
            f"0..{top}, but {_listing([str(v) for v in findings.missing])} "
            f"{'is' if len(findings.missing) == 1 else 'are'} missing and "
            f"{_listing([str(v) for v in findings.extra])} "
            f"{'is' if len(findings.extra) == 1 else 'are'} used instead; renumber the mask "
            "and its table if your tools rely on it",
        )
    return found


def inspect_item(
    item: MaskItem,
    data: bytes | None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    storage_options: Mapping[str, Mapping[str, Any]] | None = None,
    inspect: Callable[[bytes], MaskInfo | Finding] | None = None,
    reader: str | None = None,
) -> tuple[Problem, ...]:
    """Read (unless ``data`` is given) and check one item's mask; never raises for bad input.

    Returns the mask's problems only: ``item.problems`` (the manifest's) are
    not repeated. ``inspect`` replaces ``inspect_data`` (a caller that keeps
    what masks hold by content). ``reader`` says who read the mask (a Dask
    worker), for the message when it cannot. Top-level so worker processes can
    pickle it.
    """
    if data is None:
        try:
            data = read_mask(item.mask, storage_options=storage_options)
        except MaskReadError as exc:
            reason = exc.message if reader is None else f"{exc.message} ({reader})"
            return mask_problems(item, ("mask-unreadable", item.unreadable(reason)))
        except Exception as exc:
            return mask_problems(item, _undecodable(exc))
    if inspect is None:
        return mask_problems(item, inspect_data(data, max_pixels=max_pixels))
    return mask_problems(item, inspect(data))


def inspect_data(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> MaskInfo | Finding:
    """What is in a mask's bytes, or the (code, message) of why it is refused.

    Depends on the bytes alone, so a caller may keep the result for other
    items whose mask has the same bytes. Never raises for bad input.
    """
    try:
        return inspect_png(data, max_pixels=max_pixels)
    except MaskFormatError as exc:
        return (exc.code, exc.message)
    except Exception as exc:
        # The bytes are untrusted and Pillow's decoder can fail in ways no
        # list covers; one hostile file must become one problem, not a
        # traceback that takes down a worker pool and the run with it.
        return _undecodable(exc)


def _undecodable(exc: Exception) -> Finding:
    return (
        "mask-corrupt",
        f"the mask cannot be decoded ({type(exc).__name__}: {exc}); "
        "the file is damaged or not a valid PNG",
    )


def inspect_all(
    datas: Sequence[bytes], *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> list[MaskInfo | Finding]:
    """``inspect_data`` of each mask: several masks per call to a worker process."""
    return [inspect_data(data, max_pixels=max_pixels) for data in datas]


def warm_up() -> None:
    """Load what inspecting a mask needs, so a worker's first mask is not its slowest:
    Pillow, and numpy with libspng for the 8-bit masks (segcli.png)."""
    import numpy  # noqa: F401
    import pyspng  # noqa: F401
    from PIL import Image, PngImagePlugin  # noqa: F401


def mask_problems(item: MaskItem, found: MaskInfo | Finding) -> tuple[Problem, ...]:
    """The problems of ``item`` given what ``inspect_data`` found in its mask."""
    if isinstance(found, MaskInfo):
        return tuple(check_mask(item, found))
    code, message = found
    return (problem(code, message, reference_id=item.reference_id, source=item.source),)


def _size_mismatch(item: MaskItem, info: MaskInfo) -> str | None:
    wrong_w = item.width is not None and item.width != info.width
    wrong_h = item.height is not None and item.height != info.height
    if not (wrong_w or wrong_h):
        return None
    if item.width is not None and item.height is not None:
        said = f"{item.width}x{item.height}"
        real = f"{info.width}x{info.height}"
    elif item.width is not None:
        said, real = f"{item.width} px wide", f"{info.width} px wide"
    else:
        said, real = f"{item.height} px high", f"{info.height} px high"
    return f"the mask is {real} but the manifest says {said}; a mask must have its image's size"


def _labels(segments: Iterable[Segment]) -> dict[int, str]:
    labels: dict[int, str] = {}
    for s in segments:
        labels.setdefault(s.index, s.label)
    return labels


def _listing(parts: list[str]) -> str:
    if len(parts) <= LISTED_MAX:
        return ", ".join(parts)
    return f"{', '.join(parts[:LISTED_MAX])} and {len(parts) - LISTED_MAX} more"
