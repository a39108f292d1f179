"""segcli.checks: the mask and pixel-value rules, and inspect_item at the worker boundary."""

from __future__ import annotations

import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import segcli.checks
from segcli.checks import LISTED_MAX, check_mask, inspect_item, pixel_findings
from segcli.codes import RULES, problem
from segcli.model import MaskItem, Problem, Segment, Severity, Source
from segcli.png import MaskInfo
from tests.helpers.pngs import gray_png, palette_png, saved, smooth_regions, unique_counts

SOURCE = Source("masks.yaml", 12)


def table(*indices: int) -> tuple[Segment, ...]:
    return tuple(Segment(i, f"class{i}") for i in indices)


def item(
    segments: tuple[Segment, ...] = table(0, 1, 2),
    *,
    mask: str = "mask.png",
    width: int | None = None,
    height: int | None = None,
    problems: tuple[Problem, ...] = (),
) -> MaskItem:
    return MaskItem(
        reference_id="img_1",
        mask=mask,
        segments=segments,
        source=SOURCE,
        width=width,
        height=height,
        problems=problems,
    )


def info(
    counts: dict[int, int], *, width: int = 4, height: int = 4, palette: bool = False
) -> MaskInfo:
    return MaskInfo(
        width=width, height=height, mode="P" if palette else "L", counts=counts, palette=palette
    )


def codes(problems: list[Problem] | tuple[Problem, ...]) -> list[str]:
    return [p.code for p in problems]


def only(problems: list[Problem] | tuple[Problem, ...], code: str) -> Problem:
    found = [p for p in problems if p.code == code]
    assert len(found) == 1, codes(problems)
    return found[0]


# --------------------------------------------------------------------------
# check_mask


def test_clean_mask_has_no_problems() -> None:
    assert check_mask(item(), info({0: 10, 1: 5, 2: 1})) == []


def test_value_without_segment_lists_values_and_pixel_counts_sorted() -> None:
    found = check_mask(item(table(0, 1)), info({0: 10, 7: 1234, 3: 2, 1: 1}))
    p = only(found, "value-without-segment")
    assert p.severity is Severity.ERROR
    assert "3 (2 px), 7 (1,234 px);" in p.message
    assert "add a segment" in p.message


def test_value_without_segment_is_capped_with_and_n_more() -> None:
    counts = {v: v + 1 for v in range(0, 40)}
    p = only(check_mask(item(table(0)), info(counts)), "value-without-segment")
    listed = [str(v) for v in range(1, 1 + LISTED_MAX)]
    assert ", ".join(f"{v} ({int(v) + 1} px)" for v in listed) in p.message
    assert f"and {39 - LISTED_MAX} more" in p.message
    assert f"{LISTED_MAX + 1} ({LISTED_MAX + 2} px)" not in p.message


def test_segment_not_in_mask_names_index_and_label() -> None:
    segments = (Segment(0, "background"), Segment(1, "road"), Segment(2, "bird"))
    p = only(check_mask(item(segments), info({0: 4, 1: 12})), "segment-not-in-mask")
    assert p.severity is Severity.WARNING
    assert "2 'bird'" in p.message
    assert "road" not in p.message


def test_values_not_contiguous_says_what_is_missing_and_beyond() -> None:
    found = check_mask(item(table(0, 1, 5)), info({0: 4, 1: 4, 5: 8}))
    p = only(found, "values-not-contiguous")
    assert p.severity is Severity.WARNING
    assert "0..2, but 2 is missing and 5 is used instead;" in p.message
    assert codes(found) == ["values-not-contiguous"]


def test_values_not_starting_at_zero() -> None:
    p = only(check_mask(item(table(1, 2)), info({1: 4, 2: 4})), "values-not-contiguous")
    assert "should be 0..1, but 0 is missing and 2 is used instead;" in p.message


def test_palette_mask_is_a_warning() -> None:
    p = only(check_mask(item(), info({0: 1, 1: 1, 2: 1}, palette=True)), "mask-palette")
    assert p.severity is Severity.WARNING
    assert "colours are ignored" in p.message


@pytest.mark.parametrize(
    ("width", "height", "says"),
    [
        (5, 4, "the mask is 4x4 but the manifest says 5x4"),
        (4, 3, "the mask is 4x4 but the manifest says 4x3"),
        (8, None, "the mask is 4 px wide but the manifest says 8 px wide"),
        (None, 2, "the mask is 4 px high but the manifest says 2 px high"),
    ],
)
def test_size_mismatch(width: int | None, height: int | None, says: str) -> None:
    p = only(
        check_mask(item(width=width, height=height), info({0: 16, 1: 0, 2: 0})), "size-mismatch"
    )
    assert p.severity is Severity.ERROR
    assert says in p.message


@pytest.mark.parametrize(("width", "height"), [(4, 4), (4, None), (None, 4), (None, None)])
def test_matching_size_is_fine(width: int | None, height: int | None) -> None:
    found = check_mask(item(width=width, height=height), info({0: 8, 1: 4, 2: 4}))
    assert found == []


def test_every_problem_carries_the_item_and_the_registered_severity() -> None:
    found = check_mask(item(table(0, 1, 9), width=3), info({0: 1, 2: 1, 4: 1}, palette=True))
    assert set(codes(found)) == {
        "size-mismatch",
        "mask-palette",
        "value-without-segment",
        "segment-not-in-mask",
        "values-not-contiguous",
    }
    for p in found:
        assert p.reference_id == "img_1"
        assert p.source == SOURCE
        assert p.severity is RULES[p.code][0]


def test_no_table_reported_once_not_per_value() -> None:
    missing = problem("missing-segments", "no segments", reference_id="img_1", source=SOURCE)
    found = check_mask(item((), problems=(missing,)), info({0: 3, 1: 3}))
    assert "value-without-segment" not in codes(found)
    # Without that manifest problem, an empty table means every value is unmatched.
    assert "value-without-segment" in codes(check_mask(item(()), info({0: 3, 1: 3})))


def test_pixel_findings_ignore_zero_counts() -> None:
    findings = pixel_findings({0: 3, 1: 0, 2: 5}, table(0, 2))
    assert findings.without_segment == ()
    assert findings.missing == (1,)
    assert findings.extra == (2,)


# --------------------------------------------------------------------------
# inspect_item


def test_inspect_item_checks_given_bytes_without_reading() -> None:
    array = smooth_regions(32, regions=3, seed=1)
    found = inspect_item(item(mask="/nonexistent/never-read.png"), gray_png(array))
    assert found == ()


def test_inspect_item_reads_the_mask_when_no_bytes_are_given(tmp_path: Path) -> None:
    array = np.array([[0, 1], [1, 7]], np.uint8)
    path = tmp_path / "m.png"
    path.write_bytes(gray_png(array))
    found = inspect_item(item(mask=str(path), width=2, height=2), None)
    assert codes(found) == ["value-without-segment", "segment-not-in-mask", "values-not-contiguous"]
    assert "7 (1 px)" in found[0].message


def test_unreadable_mask_is_one_problem(tmp_path: Path) -> None:
    found = inspect_item(item(mask=str(tmp_path / "gone.png")), None)
    assert codes(found) == ["mask-unreadable"]
    assert found[0].reference_id == "img_1"
    assert found[0].source == SOURCE
    assert "gone.png" in found[0].message


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "mask-not-png"),
        (saved(Image.new("L", (4, 4)), "JPEG"), "mask-not-png"),
        (gray_png(np.zeros((8, 8), np.uint8))[:-20], "mask-corrupt"),
        (saved(Image.new("RGB", (4, 4))), "mask-mode"),
        (b"<html><body>login</body></html>", "mask-not-png"),
    ],
)
def test_bad_bytes_become_their_code(data: bytes, code: str) -> None:
    found = inspect_item(item(), data)
    assert codes(found) == [code]
    assert found[0].is_error


def test_pixel_limit_reaches_inspection() -> None:
    data = gray_png(np.zeros((10, 10), np.uint8))
    assert codes(inspect_item(item(table(0)), data, max_pixels=99)) == ["mask-too-large"]
    assert inspect_item(item(table(0)), data, max_pixels=100) == ()


def test_unexpected_decoder_failure_becomes_mask_corrupt(monkeypatch: pytest.MonkeyPatch) -> None:
    def hostile(data: bytes, *, max_pixels: int) -> MaskInfo:
        raise SystemError("decoder state went wrong")

    monkeypatch.setattr(segcli.checks, "inspect_png", hostile)
    found = inspect_item(item(), gray_png(np.zeros((2, 2), np.uint8)))
    assert codes(found) == ["mask-corrupt"]
    assert "SystemError: decoder state went wrong" in found[0].message


def test_palette_mask_through_inspect_item() -> None:
    array = np.array([[0, 1], [2, 2]], np.uint8)
    found = inspect_item(item(), palette_png(array))
    assert codes(found) == ["mask-palette"]


# --------------------------------------------------------------------------
# crossing process boundaries


def full_item() -> MaskItem:
    return MaskItem(
        reference_id="img_7",
        mask="s3://bucket/masks/img_7.png",
        segments=(Segment(0, "background"), Segment(1, "car", {"color": "red", "n": [1, 2.5]})),
        source=Source("m.csv", 8),
        annotation_id="ann_7",
        width=640,
        height=480,
        problems=(problem("unknown-field", "x", reference_id="img_7", source=Source("m.csv", 8)),),
    )


def test_model_values_pickle_round_trip() -> None:
    value = full_item()
    copy = pickle.loads(pickle.dumps(value))
    assert copy == value
    assert copy.segments[1].metadata == {"color": "red", "n": [1, 2.5]}
    assert copy.problems[0].severity is Severity.WARNING
    mask_info = info({0: 1, 3: 15})
    assert pickle.loads(pickle.dumps(mask_info)) == mask_info
    assert pickle.loads(pickle.dumps(inspect_item)) is inspect_item


def test_inspect_item_runs_in_a_worker_process() -> None:
    array = smooth_regions(64, regions=4, seed=2)
    data = gray_png(array)
    items = [item(table(0, 1, 2, 3)), item(table(0, 1)), item(table(0, 1, 2, 3))]
    payloads = [data, data, b"not a png"]
    # spawn: a fresh interpreter, so everything really crosses by pickle.
    with ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        remote = list(pool.map(inspect_item, items, payloads))
    assert remote == [inspect_item(i, d) for i, d in zip(items, payloads, strict=True)]
    assert codes(remote[1]) == ["value-without-segment"]
    assert sorted(unique_counts(array)) == [0, 1, 2, 3]
