"""`segcli convert cityscapes | palette | colour | wide`: round trips and each bad input."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from segcli.convert.cityscapes import Cityscapes
from segcli.convert.cityscapes_labels import BY_ID
from segcli.convert.colour import ColourMasks
from segcli.convert.palette import Palette
from segcli.convert.wide import WideMasks
from segcli.errors import UsageError
from tests.helpers.convert import by_ref, codes, labels_of, run
from tests.helpers.paths import SAMPLE

FRAME = SAMPLE / "cityscapes/gtFine/val/ulm/ulm_000000_000019_gtFine"


# -- Cityscapes ---------------------------------------------------------------


def city_label(value: int) -> str:
    label = BY_ID[value // 1000 if value >= 1000 else value]
    return "void" if label.ignore_in_eval else label.name


def test_cityscapes_semantic_round_trip(tmp_path: Path) -> None:
    results = run(Cityscapes(str(SAMPLE / "cityscapes")), tmp_path)
    assert [r.reference_id for r in results] == ["ulm_000000_000019", "ulm_000000_000020"]
    item = results[0].item
    assert item is not None and results[0].problems == ()
    source = np.asarray(Image.open(f"{FRAME}_labelIds.png"))
    expected = np.vectorize(city_label, otypes=[object])(source)
    assert (labels_of(item) == expected).all()
    assert [s.label for s in item.segments] == [
        "road",
        "sidewalk",
        "building",
        "pole",
        "vegetation",
        "sky",
        "person",
        "car",
        "void",
    ]
    assert item.segments[7].metadata == {
        "cityscapes_id": 26,
        "category": "vehicle",
        "isthing": True,
    }


def test_cityscapes_instance_and_panoptic_tables(tmp_path: Path) -> None:
    [instance, _] = run(Cityscapes(str(SAMPLE / "cityscapes"), "instance"), tmp_path / "i")
    [panoptic, _] = run(Cityscapes(str(SAMPLE / "cityscapes"), "panoptic"), tmp_path / "p")
    assert instance.item is not None and panoptic.item is not None
    assert [s.label for s in instance.item.segments] == [
        "background",
        "person",
        "person",
        "person",
        "car",
        "car",
        "car",
        "void",
    ]
    crowd, first = instance.item.segments[1].metadata, instance.item.segments[2].metadata
    assert crowd == {"cityscapes_id": 24, "category": "human", "isthing": True, "iscrowd": True}
    assert first == {
        "cityscapes_id": 24,
        "category": "human",
        "isthing": True,
        "iscrowd": False,
        "instance_id": 0,
    }
    assert [s.label for s in panoptic.item.segments] == [
        "road",
        "sidewalk",
        "building",
        "pole",
        "vegetation",
        "sky",
        "person",
        "person",
        "person",
        "car",
        "car",
        "car",
        "void",
    ]
    source = np.asarray(Image.open(f"{FRAME}_instanceIds.png"))
    expected = np.vectorize(city_label, otypes=[object])(source)
    assert (labels_of(panoptic.item) == expected).all()
    ids = np.asarray(Image.open(panoptic.item.mask))
    assert len(np.unique(ids[source == 26001])) == 1  # one instance, one index
    assert np.unique(ids[source == 26001]) != np.unique(ids[source == 26002])


def test_cityscapes_keep_ignored_and_size(tmp_path: Path) -> None:
    [kept, _] = run(Cityscapes(str(SAMPLE / "cityscapes"), keep_ignored=True), tmp_path / "k")
    assert kept.item is not None
    assert kept.item.segments[0].label == "ego vehicle"
    [wrong, _] = run(Cityscapes(str(SAMPLE / "cityscapes"), size=(1024, 512)), tmp_path / "s")
    assert codes(wrong) == ["size-mismatch"]
    assert "2048x1024" in wrong.problems[0].message and "1024x512" in wrong.problems[0].message


def test_cityscapes_rgb_and_unknown_ids(tmp_path: Path) -> None:
    root = tmp_path / "cs"
    root.mkdir()
    Image.new("RGB", (2048, 1024)).save(root / "a_000000_000001_gtFine_labelIds.png")
    Image.new("L", (2048, 1024), 99).save(root / "b_000000_000001_gtFine_labelIds.png")
    Image.new("L", (2048, 1024), 7).save(root / "c_000000_000001_gtFine_labelIds.png")
    results = by_ref(run(Cityscapes(str(root)), tmp_path / "out"))
    assert codes(results["a_000000_000001"]) == ["source-mode"]
    assert codes(results["b_000000_000001"]) == ["unknown-value"]
    assert results["c_000000_000001"].state == "converted"


# -- palette ------------------------------------------------------------------


def write_palette(path: Path, indices: np.ndarray, colours: list[tuple[int, int, int]]) -> None:
    image = Image.fromarray(indices.astype(np.uint8), "L").convert("P")
    image = Image.frombytes("P", image.size, indices.astype(np.uint8).tobytes())
    flat = [c for colour in colours for c in colour]
    image.putpalette(flat + [0] * (768 - len(flat)))
    image.save(path)


def labelmap(path: Path, names: list[str], colours: list[tuple[int, int, int]]) -> Path:
    lines = ["# label:color_rgb:parts:actions"]
    lines += [f"{n}:{r},{g},{b}::" for n, (r, g, b) in zip(names, colours, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_voc_sample_round_trip_reads_indices_not_colours(tmp_path: Path) -> None:
    labels = SAMPLE / "voc" / "labelmap.txt"
    names = [line.split(":")[0] for line in labels.read_text().splitlines()[1:]]
    results = run(Palette(str(SAMPLE / "voc"), str(labels)), tmp_path)
    for result in results:
        assert result.state == "converted" and result.problems == (), result.problems
        source = np.asarray(Image.open(SAMPLE / "voc" / f"{result.reference_id}.png"))
        expected = np.array([*names, *["?"] * 234, "void"], dtype=object)[source]
        assert (labels_of(result.item) == expected).all()
        assert result.item.segments[-1].label == "void"  # 255, the object borders


@st.composite
def palette_masks(draw: Any) -> tuple[np.ndarray, list[int]]:
    indices = draw(st.lists(st.integers(0, 254), min_size=1, max_size=8, unique=True))
    height, width = draw(st.integers(1, 16)), draw(st.integers(1, 16))
    picks = draw(
        st.lists(st.sampled_from([*indices, 255]), min_size=height * width, max_size=height * width)
    )
    return np.array(picks, dtype=np.uint8).reshape(height, width), sorted(indices)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(palette_masks(), st.randoms(use_true_random=False))
def test_hypothesis_random_palettes_round_trip(tmp_path: Path, case: Any, rnd: Any) -> None:
    indices, used = case
    root = tmp_path / uuid.uuid4().hex
    root.mkdir()
    top = max(used) + 1
    names = [f"class-{i}" for i in range(top)]
    # Colours unrelated to the indices: a reader of RGB would get every label wrong.
    colours = [(rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)) for _ in range(256)]
    write_palette(root / "m.png", indices, colours)
    table = labelmap(root / "labelmap.txt", names, colours[:top])
    [result] = run(Palette(str(root), str(table)), root / "out")
    assert result.state == "converted", result.problems
    expected = np.array([*names, *["?"] * (255 - top), "void"], dtype=object)[indices]
    assert (labels_of(result.item) == expected).all()


def test_rgb_where_palette_indices_were_expected(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    Image.new("RGB", (4, 4), (128, 0, 0)).save(tmp_path / "src" / "rgb.png")
    write_palette(tmp_path / "src" / "ok.png", np.zeros((4, 4)), [(0, 0, 0)])
    table = labelmap(tmp_path / "labels.txt", ["background", "aeroplane"], [(0, 0, 0), (128, 0, 0)])
    results = by_ref(run(Palette(str(tmp_path / "src"), str(table)), tmp_path / "out"))
    assert codes(results["rgb"]) == ["source-mode"]
    assert "segcli convert colour" in results["rgb"].problems[0].message
    assert results["ok"].state == "converted"


def test_palette_index_without_label_and_colour_mismatch(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    write_palette(tmp_path / "src" / "a.png", np.array([[0, 1, 7]]), [(0, 0, 0), (1, 2, 3)])
    write_palette(tmp_path / "src" / "b.png", np.array([[0, 1]]), [(0, 0, 0), (9, 9, 9)])
    table = labelmap(tmp_path / "labels.txt", ["bg", "cat"], [(0, 0, 0), (1, 2, 3)])
    results = by_ref(run(Palette(str(tmp_path / "src"), str(table)), tmp_path / "out"))
    assert codes(results["a"]) == ["unknown-value"]
    assert "7 (1 px)" in results["a"].problems[0].message
    assert results["b"].state == "converted"
    assert codes(results["b"]) == ["palette-colour-mismatch"]


# -- colour -------------------------------------------------------------------


def test_colour_sample_round_trip(tmp_path: Path) -> None:
    table = SAMPLE / "colour" / "labelmap.txt"
    rows = [line.split(":") for line in table.read_text().splitlines()[1:]]
    by_colour = {tuple(int(c) for c in row[1].split(",")): row[0] for row in rows}
    for result in run(ColourMasks(str(SAMPLE / "colour"), str(table)), tmp_path):
        assert result.state == "converted" and result.problems == ()
        rgb = np.asarray(Image.open(SAMPLE / "colour" / f"{result.reference_id}.png"))
        expected = np.array(
            [[by_colour[tuple(px)] for px in row] for row in rgb.tolist()], dtype=object
        )
        assert (labels_of(result.item) == expected).all()


def test_unknown_colours_are_listed_with_pixel_counts(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    rgb = np.zeros((4, 4, 3), dtype=np.uint8)
    rgb[0, :3] = (1, 2, 3)
    rgb[1, 0] = (250, 0, 0)
    Image.fromarray(rgb, "RGB").save(tmp_path / "src" / "bad.png")
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(tmp_path / "src" / "glass.png")
    Image.new("RGBA", (4, 4), (0, 0, 0, 255)).save(tmp_path / "src" / "opaque.png")
    table = labelmap(tmp_path / "labels.txt", ["background"], [(0, 0, 0)])
    results = by_ref(run(ColourMasks(str(tmp_path / "src"), str(table)), tmp_path / "out"))
    assert codes(results["bad"]) == ["unknown-value"]
    assert "(1,2,3) (3 px), (250,0,0) (1 px)" in results["bad"].problems[0].message
    assert codes(results["glass"]) == ["source-mode"]  # transparent: what colour is it?
    assert "transparent" in results["glass"].problems[0].message
    assert results["opaque"].state == "converted"  # alpha 255 everywhere: read as RGB


def test_colour_labels_need_distinct_colours(tmp_path: Path) -> None:
    table = labelmap(tmp_path / "labels.txt", ["a", "b"], [(1, 1, 1), (1, 1, 1)])
    with pytest.raises(UsageError, match="share the colour"):
        list(ColourMasks(str(tmp_path), str(table)).jobs())


# -- wide ---------------------------------------------------------------------


def test_wide_sample_round_trip(tmp_path: Path) -> None:
    classes = {0: "unlabeled", 1: "road", 2: "car", 3: "person"}
    for result in run(
        WideMasks(str(SAMPLE / "wide"), str(SAMPLE / "wide" / "classes.yaml")), tmp_path
    ):
        assert result.state == "converted" and result.problems == ()
        source = np.asarray(Image.open(SAMPLE / "wide" / f"{result.reference_id}.png"))
        expected = np.vectorize(lambda v: classes[v // 256], otypes=[object])(source)
        assert (labels_of(result.item) == expected).all()
        values = np.asarray(Image.open(result.item.mask))
        assert len(np.unique(values)) == len(np.unique(source))  # one segment per instance
        car = next(s for s in result.item.segments if s.label == "car")
        assert car.metadata == {"isthing": True, "class_id": 2, "instance_id": 0}


def test_wide_too_many_values_and_unknown_class(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    many = np.arange(300, dtype=np.uint16).reshape(15, 20)
    Image.fromarray(many).save(tmp_path / "src" / "many.png")
    Image.fromarray(np.array([[5 * 256]], dtype=np.uint16)).save(tmp_path / "src" / "odd.png")
    (tmp_path / "t.yaml").write_text("- {index: 0, label: a}\n- {index: 1, label: b}\n")
    results = by_ref(
        run(WideMasks(str(tmp_path / "src"), str(tmp_path / "t.yaml")), tmp_path / "o")
    )
    assert codes(results["many"]) == ["too-many-segments"]
    assert codes(results["odd"]) == ["unknown-value"]
    [one] = run(
        WideMasks(str(tmp_path / "src"), str(tmp_path / "t.yaml"), class_divisor=1000),
        tmp_path / "o2",
        force=True,
    )[:1]
    assert codes(one) == ["too-many-segments"]
