"""`segcli convert consolidate`: the Nucleus guide's 11-segment example, both ways, exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from segcli.convert.consolidate import Consolidate
from segcli.convert.mapping import merged_metadata
from segcli.errors import UsageError
from tests.helpers.convert import codes, run
from tests.helpers.paths import SAMPLE

PANOPTIC = SAMPLE / "manifest_panoptic.yaml"

STUFF = {"isthing": False}

# What the guide's scene becomes, index by index (metadata: the default rule, drop).
SEMANTIC = [
    (0, "background", STUFF),
    (1, "building", STUFF),
    (2, "tree", STUFF),
    (3, "fence", STUFF),
    (4, "wall", STUFF),
    (5, "pavement", STUFF),
    (6, "person", {"instance_id": 1, "isthing": True}),
    (7, "handbag", {"instance_id": 1, "isthing": True}),
    (8, "bird", {"isthing": True}),  # three birds: their instance_ids 1, 2, 3 differ
]
INSTANCE = [
    (0, "background", STUFF),  # background, building, tree, fence, wall, pavement
    (1, "person", {"instance_id": 1, "isthing": True}),
    (2, "handbag", {"instance_id": 1, "isthing": True}),
    (3, "bird", {"instance_id": 1, "isthing": True}),
    (4, "bird", {"instance_id": 2, "isthing": True}),
    (5, "bird", {"instance_id": 3, "isthing": True}),
]


def table(result: Any) -> list[tuple[int, str, Any]]:
    return [(s.index, s.label, s.metadata) for s in result.item.segments]


def pixels(path: str | Path) -> np.ndarray:
    return np.asarray(Image.open(path))


@pytest.mark.parametrize(
    ("to", "expected", "mask"),
    [
        ("semantic", SEMANTIC, "street-0001_semantic.png"),
        ("instance", INSTANCE, "street-0001_instance.png"),
    ],
)
def test_the_guides_example_exactly(tmp_path: Path, to: str, expected: Any, mask: str) -> None:
    [result] = run(Consolidate(str(PANOPTIC), to), tmp_path)
    assert result.state == "converted", result.problems
    assert result.problems == ()
    assert table(result) == expected
    # Pixel for pixel the sample's own semantic / instance mask.
    assert (pixels(result.item.mask) == pixels(SAMPLE / "masks" / mask)).all()
    # And every pixel's label is the panoptic source's label (birds stay birds).
    source = pixels(SAMPLE / "masks" / "street-0001_panoptic.png")
    panoptic = ["background", "building", "tree", "fence", "wall", "pavement", "person"]
    panoptic += ["handbag", "bird", "bird", "bird"]
    labels = np.array([s.label for s in result.item.segments], dtype=object)
    source_labels = np.array(panoptic, dtype=object)[source]
    if to == "semantic":
        assert (labels[pixels(result.item.mask)] == source_labels).all()
    else:
        stuff = source <= 5
        assert (labels[pixels(result.item.mask)][stuff] == "background").all()
        assert (labels[pixels(result.item.mask)][~stuff] == source_labels[~stuff]).all()


def test_metadata_rules_for_the_three_birds(tmp_path: Path) -> None:
    birds = {}
    for rule in ("first", "drop", "list"):
        [result] = run(Consolidate(str(PANOPTIC), "semantic", metadata=rule), tmp_path / rule)
        birds[rule] = result.item.segments[8].metadata
    assert birds == {
        "first": {"instance_id": 1, "isthing": True},
        "drop": {"isthing": True},
        "list": {"instance_id": [1, 2, 3], "isthing": True},
    }


def test_merged_metadata_rule_keeps_equal_values_only() -> None:
    parts = [{"confidence": 0.9, "model": "m"}, {"confidence": 0.7, "model": "m"}, None]
    assert merged_metadata(parts, "drop") is None  # the third has neither key
    assert merged_metadata(parts, "first") == {"confidence": 0.9, "model": "m"}
    assert merged_metadata(parts, "list") == {
        "confidence": [0.9, 0.7, None],
        "model": ["m", "m", None],
    }
    assert merged_metadata([{"a": 1}, {"a": 1}], "drop") == {"a": 1}


def test_mapping_file_renames_and_says_what_is_stuff(tmp_path: Path) -> None:
    mapping = tmp_path / "map.yaml"
    mapping.write_text(
        "labels: {bird: animal, person: human}\n"
        "stuff: [handbag]\n"
        "things: [building]\n"
        "background: scenery\n"
    )
    [semantic] = run(Consolidate(str(PANOPTIC), "semantic", str(mapping)), tmp_path / "s")
    assert [s.label for s in semantic.item.segments][6:] == ["human", "handbag", "animal"]
    [instance] = run(Consolidate(str(PANOPTIC), "instance", str(mapping)), tmp_path / "i")
    assert [s.label for s in instance.item.segments] == [
        "scenery",  # background, tree, fence, wall, pavement and the handbag
        "building",
        "human",
        "animal",
        "animal",
        "animal",
    ]


def test_instance_needs_to_know_what_is_stuff(tmp_path: Path) -> None:
    # street-0002's table (street.csv) says nothing of isthing.
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        f"segments: {SAMPLE / 'tables' / 'street.csv'}\n"
        f"items:\n  - {{reference_id: s2, mask: {SAMPLE / 'masks' / 'street-0002.png'}}}\n"
    )
    [result] = run(Consolidate(str(manifest), "instance"), tmp_path / "out")
    assert result.state == "failed"
    assert codes(result) == ["source-syntax"]
    assert "--map" in result.problems[0].message
    [semantic] = run(Consolidate(str(manifest), "semantic"), tmp_path / "sem")
    assert semantic.state == "converted"


def test_a_value_without_segment_fails_and_a_declared_void_value_becomes_void(
    tmp_path: Path,
) -> None:
    mask = tmp_path / "m.png"
    Image.fromarray(np.array([[0, 1, 255]], dtype=np.uint8), "L").save(mask)
    body = f"items:\n  - {{reference_id: a, mask: {mask}}}\n"
    table = "segments: [{index: 0, label: bg}, {index: 1, label: car}]\n"
    plain = tmp_path / "plain.yaml"
    plain.write_text(table + body)
    [failed] = run(Consolidate(str(plain), "semantic"), tmp_path / "o1")
    assert codes(failed) == ["unknown-value"]
    assert "255 (1 px)" in failed.problems[0].message
    declared = tmp_path / "void.yaml"
    declared.write_text("void: [255]\n" + table + body)
    [result] = run(Consolidate(str(declared), "semantic"), tmp_path / "o2")
    assert [s.label for s in result.item.segments] == ["bg", "car", "void"]


def test_bad_options_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="semantic or instance"):
        Consolidate(str(PANOPTIC), "panoptic")
    with pytest.raises(UsageError, match="first, drop or list"):
        Consolidate(str(PANOPTIC), "semantic", metadata="mean")
