"""Manifest-level checks: every code, its severity, location and advice."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segcli.codes import RULES
from segcli.errors import ManifestError
from segcli.manifest import load_manifest, load_segment_table
from segcli.model import MaskItem, Segment, Severity

GOOD_TABLE = [{"index": 0, "label": "bg"}, {"index": 1, "label": "car"}]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(tmp_path: Path, *records: object) -> list[MaskItem]:
    text = "\n".join(json.dumps(r) for r in records) + "\n"
    return list(load_manifest(write(tmp_path / "m.jsonl", text)))


def one_jsonl(tmp_path: Path, **fields: object) -> MaskItem:
    record: dict[str, object] = {"reference_id": "a", "mask_url": "a.png"}
    record["annotations"] = GOOD_TABLE
    record.update(fields)
    (item,) = jsonl(tmp_path, record)
    return item


def yaml_item(tmp_path: Path, text: str) -> MaskItem:
    (item,) = load_manifest(write(tmp_path / "m.yaml", text))
    return item


def codes(item: MaskItem) -> list[str]:
    return [p.code for p in item.problems]


def segments(*entries: object) -> list[object]:
    return list(entries)


def test_missing_reference_id(tmp_path: Path) -> None:
    for value in (None, "", "   "):
        item = one_jsonl(tmp_path, reference_id=value)
        assert codes(item) == ["missing-reference-id"]
        assert item.reference_id == ""
        assert item.problems[0].reference_id is None
        assert "reference_id" in item.problems[0].message
    (missing,) = jsonl(tmp_path, {"mask_url": "a.png", "annotations": GOOD_TABLE})
    assert codes(missing) == ["missing-reference-id"]


def test_reference_id_number_is_coerced_other_types_are_not(tmp_path: Path) -> None:
    assert one_jsonl(tmp_path, reference_id=123).reference_id == "123"
    assert one_jsonl(tmp_path, reference_id=123).problems == ()
    for value in ([1], 1.5, True):
        item = one_jsonl(tmp_path, reference_id=value)
        assert codes(item) == ["manifest-syntax"], value


def test_missing_mask(tmp_path: Path) -> None:
    for value in (None, "", " "):
        item = one_jsonl(tmp_path, mask_url=value)
        assert codes(item) == ["missing-mask"]
        assert "path or URL" in item.problems[0].message
    item = one_jsonl(tmp_path, mask_url=["a.png"])
    assert codes(item) == ["manifest-syntax"]


def test_duplicate_reference_id_marks_the_second(tmp_path: Path) -> None:
    record = {"reference_id": "img", "mask_url": "a.png", "annotations": GOOD_TABLE}
    other = {"reference_id": "other", "mask_url": "o.png", "annotations": GOOD_TABLE}
    first, middle, second = jsonl(tmp_path, record, other, record)
    assert first.problems == () and middle.problems == ()
    assert codes(second) == ["duplicate-reference-id"]
    (dup,) = second.problems
    assert dup.severity is Severity.ERROR
    assert dup.reference_id == "img"
    assert str(dup.source) == f"{tmp_path / 'm.jsonl'}:3"
    assert f"{tmp_path / 'm.jsonl'}:1" in dup.message
    assert "one mask per item" in dup.message


def test_missing_segments(tmp_path: Path) -> None:
    (item,) = jsonl(tmp_path, {"reference_id": "a", "mask_url": "a.png"})
    assert codes(item) == ["missing-segments"]
    assert "--segments" in item.problems[0].message
    assert codes(one_jsonl(tmp_path, annotations=[])) == ["missing-segments"]


def test_missing_segments_in_yaml_suggests_a_default(tmp_path: Path) -> None:
    item = yaml_item(tmp_path, "items:\n  - {reference_id: a, mask: a.png}\n")
    assert codes(item) == ["missing-segments"]
    assert "top-level 'segments:'" in item.problems[0].message


@pytest.mark.parametrize(
    ("index", "advice"),
    [
        (300, "outside 0..255"),
        (256, "outside 0..255"),
        (-1, "outside 0..255"),
        (3.0, "write it as 3"),
        (2.5, "not an integer"),
        ("3", "without quotes"),
        (True, "not an integer"),
        (None, "no index"),
        ([1], "not an integer"),
    ],
)
def test_bad_segment_index(tmp_path: Path, index: object, advice: str) -> None:
    item = one_jsonl(
        tmp_path, annotations=[{"index": 0, "label": "bg"}, {"index": index, "label": "x"}]
    )
    assert codes(item) == ["bad-segment-index"]
    assert advice in item.problems[0].message
    assert "segment 2" in item.problems[0].message
    # The bad segment is dropped, the good one stays.
    assert item.segments == (Segment(0, "bg"),)


def test_index_message_explains_uint8(tmp_path: Path) -> None:
    item = one_jsonl(tmp_path, annotations=[{"index": 300, "label": "x"}])
    assert item.problems[0].message == (
        "segment 1: segment index 300 is outside 0..255; a uint8 mask can only hold values 0..255"
    )


def test_nan_index_from_json(tmp_path: Path) -> None:
    text = '{"reference_id": "a", "mask": "a.png", "segments": [{"index": NaN, "label": "x"}]}\n'
    (item,) = load_manifest(write(tmp_path / "m.jsonl", text))
    assert codes(item) == ["bad-segment-index"]


def test_index_text_is_fine_in_csv_only(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "m.csv",
        "reference_id,mask,index,label\na,a.png, 3 ,car\nb,b.png,3.0,car\nc,c.png,x,car\n",
    )
    a, b, c = load_manifest(manifest)
    assert a.problems == () and a.segments == (Segment(3, "car"),)
    assert codes(b) == ["bad-segment-index"] and "line 3" in b.problems[0].message
    assert codes(c) == ["bad-segment-index"]


def test_duplicate_segment_index(tmp_path: Path) -> None:
    item = yaml_item(
        tmp_path,
        """\
items:
  - reference_id: a
    mask: a.png
    segments:
      - {index: 0, label: bg}
      - {index: 1, label: car}
      - {index: 1, label: truck}
""",
    )
    assert codes(item) == ["duplicate-segment-index"]
    message = item.problems[0].message
    assert "segment at line 7" in message and "segment at line 6" in message
    assert item.segments == (Segment(0, "bg"), Segment(1, "car"))


@pytest.mark.parametrize("label", ["", "   ", None])
def test_empty_label(tmp_path: Path, label: object) -> None:
    item = one_jsonl(tmp_path, annotations=[{"index": 0, "label": label}])
    assert codes(item) == ["empty-label"]
    assert item.segments == ()


def test_label_without_key_is_empty_label(tmp_path: Path) -> None:
    item = one_jsonl(tmp_path, annotations=[{"index": 0, "name": "car"}])
    assert codes(item) == ["empty-label", "unknown-field"]
    assert "'name'" in item.problems[1].message


def test_number_labels_become_strings_booleans_do_not(tmp_path: Path) -> None:
    item = yaml_item(
        tmp_path,
        "items:\n  - reference_id: a\n    mask: a.png\n"
        "    segments: [{index: 0, label: 5}, {index: 1, label: 2.5}, {index: 2, label: no}]\n",
    )
    assert item.segments == (Segment(0, "5"), Segment(1, "2.5"))
    assert codes(item) == ["manifest-syntax"]
    assert "quotes" in item.problems[0].message


@pytest.mark.parametrize(
    ("metadata", "advice"),
    [
        ([1, 2], "must be a mapping"),
        ("red", "must be a mapping"),
        ({"score": float("nan")}, "NaN and infinity"),
        ({"score": float("inf")}, "NaN and infinity"),
        ({"deep": {"list": [1, float("-inf")]}}, "metadata.deep.list[1]"),
    ],
)
def test_bad_metadata(tmp_path: Path, metadata: object, advice: str) -> None:
    item = one_jsonl(tmp_path, annotations=[{"index": 0, "label": "bg", "metadata": metadata}])
    assert codes(item) == ["bad-metadata"]
    assert advice in item.problems[0].message
    assert item.segments == ()


def test_bad_metadata_yaml_values(tmp_path: Path) -> None:
    text = """\
items:
  - reference_id: a
    mask: a.png
    segments:
      - {index: 0, label: bg, metadata: {taken: 2024-05-01}}
      - {index: 1, label: car, metadata: {1: one}}
      - {index: 2, label: ok, metadata: {nested: {list: [1, null, true]}, empty: {}}}
      - index: 3
        label: loop
        metadata: &loop {self: *loop}
"""
    item = yaml_item(tmp_path, text)
    assert codes(item) == ["bad-metadata", "bad-metadata", "bad-metadata"]
    first, second, third = (p.message for p in item.problems)
    assert "date" in first and "quote it" in first
    assert "key 1" in second
    assert "itself" in third
    assert item.segments == (Segment(2, "ok", {"nested": {"list": [1, None, True]}, "empty": {}}),)


def test_empty_metadata_is_none(tmp_path: Path) -> None:
    item = one_jsonl(tmp_path, annotations=[{"index": 0, "label": "bg", "metadata": {}}])
    assert item.problems == () and item.segments == (Segment(0, "bg", None),)


def test_csv_metadata_cell_must_be_json(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "m.csv",
        "reference_id,mask,index,label,metadata\n"
        "a,a.png,0,bg,{oops}\n"
        "b,b.png,0,bg,NaN\n"
        'c,c.png,0,bg,"{""x"": Infinity}"\n',
    )
    a, b, c = load_manifest(manifest)
    assert codes(a) == ["bad-metadata"] and "not valid JSON" in a.problems[0].message
    assert codes(b) == ["bad-metadata"]
    assert codes(c) == ["bad-metadata"] and "infinity" in c.problems[0].message


@pytest.mark.parametrize("value", [0, -5, "640", 640.0, True])
def test_bad_size(tmp_path: Path, value: object) -> None:
    item = one_jsonl(tmp_path, width=value, height=10)
    assert codes(item) == ["bad-size"]
    assert "width" in item.problems[0].message
    assert (item.width, item.height) == (None, 10)


def test_size_text_is_fine_in_csv_only(tmp_path: Path) -> None:
    table = write(tmp_path / "t.csv", "index,label\n0,bg\n")
    manifest = write(
        tmp_path / "m.csv",
        "reference_id,mask,width,height\na,a.png,640,480\nb,b.png,abc,\nc,c.png,0,1\n",
    )
    a, b, c = load_manifest(manifest, default_segments=table)
    assert (a.width, a.height, a.problems) == (640, 480, ())
    assert codes(b) == ["bad-size"] and b.height is None
    assert codes(c) == ["bad-size"]


@pytest.mark.parametrize("value", [1.5, True, ["x"], {"a": 1}, ""])
def test_bad_annotation_id(tmp_path: Path, value: object) -> None:
    item = one_jsonl(tmp_path, annotation_id=value)
    assert codes(item) == ["bad-annotation-id"]
    assert item.annotation_id is None


def test_annotation_id_number_becomes_a_string(tmp_path: Path) -> None:
    item = one_jsonl(tmp_path, annotation_id=7)
    assert (item.annotation_id, item.problems) == ("7", ())


def test_every_problem_carries_id_source_and_registered_severity(tmp_path: Path) -> None:
    item = one_jsonl(
        tmp_path,
        width=-1,
        annotations=[{"index": 999, "label": ""}, {"index": 0, "label": "x", "metadata": 1}],
    )
    assert set(codes(item)) == {"bad-size", "bad-segment-index", "empty-label", "bad-metadata"}
    for found in item.problems:
        assert found.reference_id == "a"
        assert found.source == item.source
        assert found.severity is RULES[found.code][0]


def test_unknown_segment_field_in_default_table_warns_on_first_item(tmp_path: Path) -> None:
    table = write(tmp_path / "t.yaml", "- {index: 0, label: bg, colour: red}\n")
    manifest = write(
        tmp_path / "m.jsonl",
        '{"reference_id": "a", "mask": "a.png"}\n{"reference_id": "b", "mask": "b.png"}\n',
    )
    a, b = load_manifest(manifest, default_segments=table)
    assert codes(a) == ["unknown-field"] and "'colour'" in a.problems[0].message
    assert b.problems == ()


def test_per_item_table_file_problems_and_missing_file(tmp_path: Path) -> None:
    write(tmp_path / "bad.csv", "index,label\n0,bg\n999,sky\n")
    manifest = write(
        tmp_path / "m.csv",
        "reference_id,mask,segments\na,a.png,bad.csv\nb,b.png,bad.csv\nc,c.png,nope.yaml\n",
    )
    a, b, c = load_manifest(manifest)
    for item in (a, b):
        assert codes(item) == ["bad-segment-index"]
        assert "bad.csv:3" in item.problems[0].message
        assert item.segments == (Segment(0, "bg"),)
    assert codes(c) == ["missing-segments"] and "does not exist" in c.problems[0].message


def test_inline_json_segments_syntax_error(tmp_path: Path) -> None:
    manifest = write(tmp_path / "m.csv", 'reference_id,mask,segments\na,a.png,"[{""index"": 0,"\n')
    (item,) = load_manifest(manifest)
    assert codes(item) == ["manifest-syntax"] and "not valid JSON" in item.problems[0].message


def test_segments_of_the_wrong_shape(tmp_path: Path) -> None:
    item = one_jsonl(tmp_path, annotations={"index": 0, "label": "bg"})
    assert codes(item) == ["manifest-syntax"]
    item = one_jsonl(tmp_path, annotations=["bg"])
    assert codes(item) == ["manifest-syntax"] and "mapping" in item.problems[0].message


class TestLoadSegmentTable:
    def test_yaml_json_and_csv(self, tmp_path: Path) -> None:
        expected = (Segment(0, "bg"), Segment(1, "car", {"color": "red"}))
        yaml_file = write(
            tmp_path / "t.yaml",
            "segments:\n  - {index: 0, label: bg}\n"
            "  - {index: 1, label: car, metadata: {color: red}}\n",
        )
        json_file = write(
            tmp_path / "t.json",
            json.dumps(
                [
                    {"index": 0, "label": "bg"},
                    {"index": 1, "label": "car", "metadata": {"color": "red"}},
                ]
            ),
        )
        csv_file = write(tmp_path / "t.csv", "index,label,color\n0,bg,\n1,car,red\n")
        csv_json = write(
            tmp_path / "t2.csv", 'index,label,metadata\n0,bg,\n1,car,"{""color"": ""red""}"\n'
        )
        for path in (yaml_file, json_file, csv_file, csv_json):
            assert load_segment_table(path) == expected, path

    def test_errors_name_file_and_line(self, tmp_path: Path) -> None:
        path = write(tmp_path / "t.yaml", "- {index: 0, label: bg}\n- {index: 300, label: sky}\n")
        with pytest.raises(ManifestError, match=r"t\.yaml:2: segment index 300"):
            load_segment_table(path)

    @pytest.mark.parametrize(
        ("name", "text", "expected"),
        [
            ("missing.yaml", None, "does not exist"),
            ("empty.yaml", "", "no segments"),
            ("t.json", "[{", "not valid JSON"),
            ("t.csv", "idx,name\n0,bg\n", "'index' and 'label'"),
            ("t.yaml", "{index: 0, label: bg}\n", "must be a list"),
            ("t.yaml", "- {index: 0, label: bg, index: 1}\n", "twice"),
            ("t.yaml", "- [unclosed\n", "not valid YAML"),
        ],
    )
    def test_unusable_tables(
        self, tmp_path: Path, name: str, text: str | None, expected: str
    ) -> None:
        path = tmp_path / name
        if text is not None:
            write(path, text)
        with pytest.raises(ManifestError) as caught:
            load_segment_table(path)
        assert expected in str(caught.value)
        assert name in str(caught.value)

    def test_bad_default_table_fails_before_reading(self, tmp_path: Path) -> None:
        table = write(tmp_path / "t.csv", "index,label\n0,\n")
        manifest = write(tmp_path / "m.jsonl", '{"reference_id": "a", "mask": "a.png"}\n')
        with pytest.raises(ManifestError, match="label is empty"):
            load_manifest(manifest, default_segments=table)  # raises at the call, not later
