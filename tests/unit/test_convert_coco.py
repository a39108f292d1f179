"""`segcli convert coco-panoptic`: round trips, panopticapi's checks, bad inputs, resume."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from segcli.checks import inspect_data, mask_problems
from segcli.convert.coco import CocoPanoptic
from segcli.convert.void import VoidRule
from tests.helpers.convert import by_ref, codes, labels_of, png_bytes, rgb_of, run, write_coco

NAMES = {1: "person", 2: "car", 7: "sky", 8: "road"}


def scene() -> tuple[np.ndarray, dict[int, int]]:
    ids = np.zeros((30, 40), dtype=np.uint32)
    ids[:10] = 0x0A0B0C  # sky: an id using all three channels
    ids[10:, :] = 5000  # road
    ids[15:25, 5:15] = 77  # person
    ids[15:25, 20:35] = 78  # car
    ids[0, 0] = 0  # one void pixel
    return ids, {0x0A0B0C: 7, 5000: 8, 77: 1, 78: 2}


def source_labels(ids: np.ndarray, category_of: dict[int, int], void: str = "void") -> np.ndarray:
    lookup = {0: void, **{i: NAMES[c] for i, c in category_of.items()}}
    return np.vectorize(lookup.__getitem__, otypes=[object])(ids)


def test_round_trip_every_pixel_keeps_its_label_and_metadata(tmp_path: Path) -> None:
    ids, category_of = scene()
    path = write_coco(tmp_path / "src", [("img-1", ids, category_of)])
    [result] = run(CocoPanoptic(str(path)), tmp_path / "out")
    assert result.state == "converted", result.problems
    assert result.problems == ()
    item = result.item
    assert item is not None
    assert (labels_of(item) == source_labels(ids, category_of)).all()
    # segments_info's order (the helper lists ids ascending), void last
    assert [(s.index, s.label) for s in item.segments] == [
        (0, "person"),
        (1, "car"),
        (2, "road"),
        (3, "sky"),
        (4, "void"),
    ]
    person = item.segments[0].metadata
    assert person == {
        "category_id": 1,
        "coco_id": 77,
        "isthing": True,
        "iscrowd": False,
        "area": 100,
        "bbox": [5, 15, 10, 10],
        "supercategory": "person",
    }
    assert item.segments[4].metadata == {"void": True}
    assert (item.width, item.height) == (40, 30)
    image = Image.open(item.mask)
    assert image.mode == "L"  # one 8-bit channel, values 0..N-1
    assert sorted(np.unique(np.asarray(image)).tolist()) == [0, 1, 2, 3, 4]


def test_void_into_a_named_segment_and_a_custom_void_label(tmp_path: Path) -> None:
    ids, category_of = scene()
    path = write_coco(tmp_path / "src", [("img-1", ids, category_of)])
    [into] = run(CocoPanoptic(str(path)), tmp_path / "a", void=VoidRule(into="road"))
    assert into.item is not None
    assert [s.label for s in into.item.segments] == ["person", "car", "road", "sky"]
    assert (labels_of(into.item) == source_labels(ids, category_of, void="road")).all()
    [named] = run(CocoPanoptic(str(path)), tmp_path / "b", void=VoidRule(label="unlabeled"))
    assert named.item is not None
    assert named.item.segments[-1].label == "unlabeled"
    [new] = run(CocoPanoptic(str(path)), tmp_path / "c", void=VoidRule(into="background"))
    assert new.item is not None
    assert [s.label for s in new.item.segments][-1] == "background"  # added: no such segment


@st.composite
def panoptic_images(draw: Any) -> tuple[np.ndarray, dict[int, int]]:
    count = draw(st.integers(1, 12))
    ids = draw(st.lists(st.integers(1, 2**24 - 1), min_size=count, max_size=count, unique=True))
    height, width = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    choice = draw(st.lists(st.integers(0, count), min_size=height * width, max_size=height * width))
    palette = np.array([0, *ids], dtype=np.uint32)  # 0: void
    array = palette[np.array(choice)].reshape(height, width)
    present = sorted({int(v) for v in np.unique(array) if v})
    category_of = {i: draw(st.sampled_from(sorted(NAMES))) for i in present}
    return array, category_of


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(panoptic_images())
def test_hypothesis_random_ids_round_trip(tmp_path: Path, image: Any) -> None:
    ids, category_of = image
    root = tmp_path / uuid.uuid4().hex  # one folder per example: no resume between them
    path = write_coco(root, [("img", ids, category_of)])
    [result] = run(CocoPanoptic(str(path)), root / "out", state_path=str(root / "state"))
    assert result.state == "converted", result.problems
    assert result.item is not None
    assert (labels_of(result.item) == source_labels(ids, category_of)).all()
    values = np.asarray(Image.open(result.item.mask))
    assert sorted(np.unique(values).tolist()) == list(range(len(result.item.segments)))


def convert_one(tmp_path: Path, **kwargs: Any) -> Any:
    ids, category_of = scene()
    images = [("bad", ids, category_of), ("good", ids, category_of)]
    path = write_coco(tmp_path / "src", images, **kwargs)
    return path, by_ref(run(CocoPanoptic(str(path)), tmp_path / "out"))


def test_png_id_absent_from_json_fails_that_image_only(tmp_path: Path) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["annotations"][0]["segments_info"].pop(1)  # id 78 stays in the PNG

    _, results = convert_one(tmp_path, edit=edit)
    assert results["bad"].state == "failed"
    assert codes(results["bad"]) == ["id-not-in-json"]
    message = results["bad"].problems[0].message
    assert "78 (150 px)" in message and "bad.png" in message
    assert results["good"].state == "converted"
    assert not (tmp_path / "out" / "bad.png").exists()  # nothing half-right is written


def test_json_segment_absent_from_png(tmp_path: Path) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["annotations"][0]["segments_info"].append(
            {"id": 999, "category_id": 1, "iscrowd": 0, "area": 5, "bbox": [0, 0, 1, 1]}
        )

    _, results = convert_one(tmp_path, edit=edit)
    assert codes(results["bad"]) == ["segment-not-in-png"]
    assert "999" in results["bad"].problems[0].message
    assert results["good"].state == "converted"


def test_unknown_category_names_the_segment(tmp_path: Path) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["annotations"][0]["segments_info"][0]["category_id"] = 4242

    _, results = convert_one(tmp_path, edit=edit)
    assert codes(results["bad"]) == ["unknown-category"]
    assert "4242" in results["bad"].problems[0].message
    assert results["good"].state == "converted"


def test_area_that_differs_is_a_warning_and_the_image_converts(tmp_path: Path) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["annotations"][0]["segments_info"][0]["area"] = 101  # the person's

    _, results = convert_one(tmp_path, edit=edit)
    assert results["bad"].state == "converted"
    assert codes(results["bad"]) == ["area-mismatch"]
    assert "area 101, 100 px" in results["bad"].problems[0].message


def test_size_other_than_images_says(tmp_path: Path) -> None:
    def edit(doc: dict[str, Any]) -> None:
        doc["images"][0]["width"] = 41

    _, results = convert_one(tmp_path, edit=edit)
    assert codes(results["bad"]) == ["size-mismatch"]
    assert "40x30" in results["bad"].problems[0].message
    assert "41x30" in results["bad"].problems[0].message


@pytest.mark.parametrize(
    ("damage", "code", "words"),
    [
        (lambda p: p.unlink(), "source-unreadable", "no such file"),
        (lambda p: p.write_bytes(p.read_bytes()[:-30]), "source-corrupt", "truncated"),
        (
            lambda p: p.write_bytes(png_bytes(Image.open(p).convert("RGBA"))),
            "source-mode",
            "RGBA",
        ),
        (
            lambda p: p.write_bytes(png_bytes(Image.open(p).convert("L"))),
            "source-mode",
            "8-bit gray",
        ),
        (lambda p: p.write_bytes(b"not a png"), "source-corrupt", "not a PNG"),
    ],
    ids=["missing", "truncated", "four-channels", "gray", "not-png"],
)
def test_bad_png_is_one_message_and_the_others_convert(
    tmp_path: Path, damage: Any, code: str, words: str
) -> None:
    ids, category_of = scene()
    path = write_coco(tmp_path / "src", [("bad", ids, category_of), ("good", ids, category_of)])
    damage(tmp_path / "src" / "panoptic" / "bad.png")
    results = by_ref(run(CocoPanoptic(str(path)), tmp_path / "out"))
    assert results["bad"].state == "failed"
    assert codes(results["bad"]) == [code]
    assert words in results["bad"].problems[0].message
    assert "bad.png" in results["bad"].problems[0].message
    assert results["good"].state == "converted"


def test_more_than_256_segments_names_the_options_that_fix_it(tmp_path: Path) -> None:
    ids = np.arange(1, 301, dtype=np.uint32).reshape(15, 20)  # 300 segments
    stuff = {i: (7 if i % 2 else 8) for i in range(1, 301)}  # all stuff, two categories
    path = write_coco(tmp_path / "src", [("crowded", ids, stuff)])
    [failed] = run(CocoPanoptic(str(path)), tmp_path / "out")
    assert codes(failed) == ["too-many-segments"]
    message = failed.problems[0].message
    assert "300 segments" in message and "--merge-stuff" in message and "leaves 2" in message
    [merged] = run(CocoPanoptic(str(path), merge_stuff=True), tmp_path / "out2")
    assert merged.state == "converted", merged.problems
    assert merged.item is not None
    assert [s.label for s in merged.item.segments] == ["sky", "road"]
    sky = merged.item.segments[0].metadata
    assert sky is not None and sky["coco_id"] == list(range(1, 301, 2))
    assert sky["area"] == 150
    assert (labels_of(merged.item) == np.where(ids % 2 == 1, "sky", "road")).all()


def test_merge_crowd_keeps_one_segment_per_crowd_category(tmp_path: Path) -> None:
    ids = np.array([[1, 2, 3, 4]], dtype=np.uint32)
    category_of = {1: 1, 2: 1, 3: 1, 4: 7}

    def edit(doc: dict[str, Any]) -> None:
        for s in doc["annotations"][0]["segments_info"]:
            s["iscrowd"] = int(s["id"] in (2, 3))

    path = write_coco(tmp_path / "src", [("img", ids, category_of)], edit=edit)
    [result] = run(CocoPanoptic(str(path), merge_crowd=True), tmp_path / "out")
    assert result.item is not None
    labels = [(s.label, (s.metadata or {})["iscrowd"]) for s in result.item.segments]
    assert labels == [("person", False), ("person", True), ("sky", False)]


def test_every_output_passes_the_validate_checks(tmp_path: Path) -> None:
    ids, category_of = scene()
    path = write_coco(tmp_path / "src", [("img", ids, category_of)])
    [result] = run(CocoPanoptic(str(path)), tmp_path / "out")
    assert result.item is not None
    data = Path(result.item.mask).read_bytes()
    assert mask_problems(result.item, inspect_data(data)) == ()


def test_second_run_skips_unchanged_sources_and_redoes_changed_ones(tmp_path: Path) -> None:
    ids, category_of = scene()
    images = [("a", ids, category_of), ("b", ids, category_of)]
    path = write_coco(tmp_path / "src", images)
    first = run(CocoPanoptic(str(path)), tmp_path / "out")
    assert [r.state for r in first] == ["converted", "converted"]
    second = run(CocoPanoptic(str(path)), tmp_path / "out")
    assert [r.state for r in second] == ["skipped", "skipped"]
    assert [r.item for r in second] == [r.item for r in first]  # the manifest stays whole
    changed = ids.copy()
    changed[15:25, 5:15] = 78  # the person becomes car
    rgb_of(changed).save(tmp_path / "src" / "panoptic" / "b.png")
    doc = json.loads(path.read_text())
    doc["annotations"][1]["segments_info"] = [
        s for s in doc["annotations"][1]["segments_info"] if s["id"] != 77
    ]
    for s in doc["annotations"][1]["segments_info"]:
        if s["id"] == 78:
            s["area"] = 250
    path.write_text(json.dumps(doc))
    third = run(CocoPanoptic(str(path)), tmp_path / "out")
    assert [r.state for r in third] == ["skipped", "converted"]
    (tmp_path / "out" / "a.png").unlink()  # an output gone: made again
    assert [r.state for r in run(CocoPanoptic(str(path)), tmp_path / "out")] == [
        "converted",
        "skipped",
    ]
    forced = run(CocoPanoptic(str(path)), tmp_path / "out", force=True)
    assert [r.state for r in forced] == ["converted", "converted"]
    other = run(CocoPanoptic(str(path), merge_stuff=True), tmp_path / "out")
    assert [r.state for r in other] == ["converted", "converted"]  # options changed


def test_duplicate_file_names_are_reported(tmp_path: Path) -> None:
    ids, category_of = scene()
    path = write_coco(tmp_path / "src", [("a", ids, category_of), ("a", ids, category_of)])
    results = run(CocoPanoptic(str(path)), tmp_path / "out")
    assert [r.state for r in results] == ["converted", "failed"]
    assert codes(results[1]) == ["duplicate-reference-id"]


def test_id_png_whose_pixel_data_stops_early_is_refused(tmp_path: Path) -> None:
    from tests.helpers.pngs import assemble, ihdr

    ids, category_of = scene()
    path = write_coco(tmp_path / "src", [("short", ids, category_of)])
    rgb = np.asarray(rgb_of(ids))
    rows = b"".join(b"\x00" + rgb[y].tobytes() for y in range(rgb.shape[0] - 1))  # a row short
    png = assemble(ihdr(rgb.shape[1], rgb.shape[0], 8, 2), rows)
    (tmp_path / "src" / "panoptic" / "short.png").write_bytes(png)
    [result] = run(CocoPanoptic(str(path)), tmp_path / "out")
    assert codes(result) == ["source-corrupt"]
    assert "truncated" in result.problems[0].message


def test_a_second_run_on_the_same_state_stops_at_once(tmp_path: Path) -> None:
    from segcli.convert.state import ConvertState
    from segcli.errors import JournalBusyError

    first = ConvertState(str(tmp_path / "state.sqlite"))
    try:
        with pytest.raises(JournalBusyError, match="another segcli convert"):
            ConvertState(str(tmp_path / "state.sqlite"))
    finally:
        first.close()
    ConvertState(str(tmp_path / "state.sqlite")).close()  # free again once the first closed
