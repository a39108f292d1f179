"""Property tests: what segcli reports about pixels equals what numpy computes directly."""

from __future__ import annotations

import re

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from segcli.checks import LISTED_MAX, inspect_item, pixel_findings
from segcli.model import MaskItem, Problem, Segment, Source
from segcli.png import inspect_png
from tests.helpers.pngs import gray_png, interlaced_gray_png, palette_png, saved, split_idat

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ENCODINGS = ("gray", "palette", "interlaced", "split", "stored", "best")


def encode(array: np.ndarray, how: str) -> bytes:
    if how == "gray":
        return gray_png(array)
    if how == "palette":
        return palette_png(array)
    if how == "interlaced":
        return interlaced_gray_png(array)
    if how == "split":
        return split_idat(gray_png(array), 7)
    level = 0 if how == "stored" else 9  # deflate's stored blocks, then its hardest work
    return saved(Image.fromarray(array, "L"), compress_level=level)


@st.composite
def masks(draw: st.DrawFn) -> np.ndarray:
    height = draw(st.integers(1, 24))
    width = draw(st.integers(1, 24))
    values = draw(st.lists(st.integers(0, 255), min_size=1, max_size=14, unique=True))
    return draw(hnp.arrays(np.uint8, (height, width), elements=st.sampled_from(values)))


@st.composite
def tables(draw: st.DrawFn, array: np.ndarray) -> tuple[Segment, ...]:
    present = np.unique(array).tolist()
    # Some of the mask's values and some others, so every rule fires sometimes.
    kept = draw(st.lists(st.sampled_from(present), unique=True))
    others = draw(st.lists(st.integers(0, 255), max_size=5, unique=True))
    indices = draw(st.permutations(sorted(set(kept) | set(others))))
    return tuple(Segment(i, f"label{i}") for i in indices)


def numpy_counts(array: np.ndarray) -> dict[int, int]:
    values, counts = np.unique(array, return_counts=True)
    return dict(zip(values.tolist(), counts.tolist(), strict=True))


PX = r"(\d+) \(([\d,]+) px\)"  # "7 (1,234 px)"


def numbers(text: str) -> list[int]:
    return [int(v) for v in re.findall(r"\d+", text)]


def check_listing(text: str, expected: list[int], shown: list[int]) -> None:
    """``shown`` are the values a message lists: all, or the first LISTED_MAX and a count."""
    if len(expected) <= LISTED_MAX:
        assert shown == expected
        assert " more" not in text
    else:
        assert shown == expected[:LISTED_MAX]
        assert f"and {len(expected) - LISTED_MAX} more" in text


@SETTINGS
@given(array=masks(), how=st.sampled_from(ENCODINGS))
def test_counts_equal_numpy_unique(array: np.ndarray, how: str) -> None:
    info = inspect_png(encode(array, how))
    assert info.counts == numpy_counts(array)
    assert (info.height, info.width) == array.shape
    assert info.palette is (how == "palette")


@SETTINGS
@given(data=st.data(), how=st.sampled_from(ENCODINGS))
def test_reported_problems_equal_numpy(data: st.DataObject, how: str) -> None:
    array = data.draw(masks())
    segments = data.draw(tables(array))
    height, width = array.shape
    said_w = data.draw(st.sampled_from([None, width, width + 1]))
    said_h = data.draw(st.sampled_from([None, height, max(1, height - 1)]))
    item = MaskItem(
        reference_id="r",
        mask="mask.png",
        segments=segments,
        source=Source("m.yaml", 3),
        width=said_w,
        height=said_h,
    )
    problems = inspect_item(item, encode(array, how))

    # What numpy says.
    values, counts = np.unique(array, return_counts=True)
    indices = {s.index for s in segments}
    unmatched = [(int(v), int(c)) for v, c in zip(values, counts, strict=True) if v not in indices]
    unused = sorted(indices - set(values.tolist()))
    n = len(values)
    missing = sorted(set(range(n)) - set(values.tolist()))
    beyond = sorted(set(values.tolist()) - set(range(n)))
    wrong_size = (said_w not in (None, width)) or (said_h not in (None, height))
    expected = {
        "value-without-segment": bool(unmatched),
        "segment-not-in-mask": bool(unused),
        "values-not-contiguous": bool(missing),
        "mask-palette": how == "palette",
        "size-mismatch": wrong_size,
    }
    by_code: dict[str, Problem] = {p.code: p for p in problems}
    assert len(by_code) == len(problems), "one problem per code"
    assert set(by_code) == {code for code, fires in expected.items() if fires}

    # The same sets, as segcli computes them...
    findings = pixel_findings(inspect_png(encode(array, how)).counts, segments)
    assert list(findings.without_segment) == unmatched
    assert list(findings.unused_segments) == unused
    assert list(findings.missing) == missing
    assert list(findings.extra) == beyond

    # ...and as its messages show them.
    if unmatched:
        text = by_code["value-without-segment"].message
        shown = [(int(v), int(c.replace(",", ""))) for v, c in re.findall(PX, text)]
        check_listing(text, [v for v, _ in unmatched], [v for v, _ in shown])
        assert shown == unmatched[: len(shown)]
    if unused:
        text = by_code["segment-not-in-mask"].message
        check_listing(text, unused, [int(v) for v in re.findall(r"(\d+) 'label\d+'", text)])
    if missing:
        text = by_code["values-not-contiguous"].message
        gaps = text.split(f"should be 0..{n - 1}, but ", 1)[1].split(" missing and ", 1)[0]
        check_listing(gaps, missing, numbers(gaps)[:LISTED_MAX])
        over = text.split(" missing and ", 1)[1].split(" used instead", 1)[0]
        check_listing(over, beyond, numbers(over)[:LISTED_MAX])
