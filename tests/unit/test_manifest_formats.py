"""Each manifest format read end to end: fields, defaults, source lines."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from segcli.errors import ManifestError
from segcli.manifest import load_manifest, sniff_format, yaml_nodes
from segcli.model import MaskItem, Segment


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load(source: str | os.PathLike[str], **kwargs: object) -> list[MaskItem]:
    return list(load_manifest(source, **kwargs))  # type: ignore[arg-type]


def codes(item: MaskItem) -> list[str]:
    return [p.code for p in item.problems]


@pytest.fixture(params=["libyaml", "pure-python"])
def yaml_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run YAML tests with both parsers: libyaml is not always compiled in."""
    if request.param == "libyaml" and not yaml_nodes.USE_LIBYAML:
        pytest.skip("PyYAML was built without libyaml")
    monkeypatch.setattr(yaml_nodes, "USE_LIBYAML", request.param == "libyaml")
    yield request.param


PANOPTIC_YAML = """\
# street scene, panoptic
segments:
  - {index: 0, label: background}
  - {index: 1, label: building}
  - index: 2
    label: tree
    metadata: {is_thing: false}
annotation_id: "{reference_id}-gt"
items:
  - reference_id: street_001
    mask: masks/street_001.png
  - reference_id: street_002
    mask: s3://bucket/masks/street_002.png
    annotation_id: custom-002
    width: 640
    height: 480
    segments:
      - {index: 0, label: background}
      - index: 7
        label: bird
        metadata: {instance: 1, confidence: 0.93}
  - reference_id: 1234
    mask: /abs/masks/1234.png
    annotation_id: null
"""


def test_yaml_panoptic_with_defaults(tmp_path: Path, yaml_parser: str) -> None:
    manifest = write(tmp_path / "scene" / "manifest.yaml", PANOPTIC_YAML)
    items = load(manifest)
    assert [i.reference_id for i in items] == ["street_001", "street_002", "1234"]
    assert all(i.problems == () for i in items), [i.problems for i in items]
    first, second, third = items
    assert first.mask == str(tmp_path / "scene" / "masks" / "street_001.png")
    assert first.annotation_id == "street_001-gt"
    assert first.segments == (
        Segment(0, "background"),
        Segment(1, "building"),
        Segment(2, "tree", {"is_thing": False}),
    )
    assert (first.width, first.height) == (None, None)
    assert second.mask == "s3://bucket/masks/street_002.png"
    assert second.annotation_id == "custom-002"
    assert (second.width, second.height) == (640, 480)
    assert second.segments == (
        Segment(0, "background"),
        Segment(7, "bird", {"instance": 1, "confidence": 0.93}),
    )
    assert third.mask == "/abs/masks/1234.png"
    assert third.annotation_id is None  # an explicit null beats the pattern
    assert [(i.source.path, i.source.line) for i in items] == [
        (str(manifest), 10),
        (str(manifest), 12),
        (str(manifest), 22),
    ]


def test_yaml_item_payload_is_the_nucleus_shape(tmp_path: Path, yaml_parser: str) -> None:
    items = load(write(tmp_path / "m.yaml", PANOPTIC_YAML))
    assert items[1].payload() == {
        "type": "mask",
        "mask_url": "s3://bucket/masks/street_002.png",
        "annotations": [
            {"label": "background", "index": 0},
            {"label": "bird", "index": 7, "metadata": {"instance": 1, "confidence": 0.93}},
        ],
        "annotation_id": "custom-002",
        "reference_id": "street_002",
    }


def test_yaml_top_level_list_and_nucleus_field_names(tmp_path: Path, yaml_parser: str) -> None:
    manifest = write(
        tmp_path / "m.yml",
        """\
- reference_id: a
  mask_url: a.png
  annotations: [{index: 0, label: bg}]

-
  reference_id: b
  mask: b.png
  segments: [{index: 0, label: bg}, {index: 1, label: cat}]
""",
    )
    a, b = load(manifest)
    assert a.problems == () and b.problems == ()
    assert a.mask == str(tmp_path / "a.png")
    assert [s.label for s in b.segments] == ["bg", "cat"]
    # An entry whose mapping starts under a bare dash is located at the mapping.
    assert (a.source.line, b.source.line) == (1, 6)


def test_yaml_anchors_and_merge_keys(tmp_path: Path, yaml_parser: str) -> None:
    manifest = write(
        tmp_path / "m.yaml",
        """\
items:
  - &base
    reference_id: a
    mask: a.png
    segments: &table
      - {index: 0, label: bg}
      - {index: 1, label: car}
  - <<: *base
    reference_id: b
    mask: b.png
  - reference_id: c
    mask: c.png
    segments: *table
""",
    )
    a, b, c = load(manifest)
    assert [codes(i) for i in (a, b, c)] == [[], [], []]
    assert a.segments == b.segments == c.segments
    assert b.mask == str(tmp_path / "b.png")
    assert (a.source.line, b.source.line, c.source.line) == (2, 8, 11)


def test_yaml_segments_from_table_files(tmp_path: Path, yaml_parser: str) -> None:
    write(tmp_path / "tables" / "street.yaml", "- {index: 0, label: road}\n")
    write(tmp_path / "tables" / "birds.csv", "index,label\n0,sky\n3,bird\n")
    manifest = write(
        tmp_path / "m.yaml",
        """\
segments: tables/street.yaml
items:
  - {reference_id: a, mask: a.png}
  - {reference_id: b, mask: b.png, segments: tables/birds.csv}
""",
    )
    a, b = load(manifest)
    assert a.segments == (Segment(0, "road"),)
    assert b.segments == (Segment(0, "sky"), Segment(3, "bird"))
    assert (a.source.line, b.source.line) == (3, 4)


def test_command_line_table_wins_over_the_yaml_default(tmp_path: Path, yaml_parser: str) -> None:
    table = write(tmp_path / "flag.yaml", "- {index: 0, label: from-flag}\n")
    manifest = write(
        tmp_path / "m.yaml",
        """\
segments: [{index: 0, label: from-manifest}]
items:
  - {reference_id: a, mask: a.png}
  - {reference_id: b, mask: b.png, segments: [{index: 0, label: own}]}
""",
    )
    a, b = load(manifest, default_segments=table)
    assert a.segments == (Segment(0, "from-flag"),)
    assert b.segments == (Segment(0, "own"),)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("items:\n  - {reference_id: a, mask: a.png}\nsegments: []\n", "table is empty"),
        ("items: {reference_id: a}\n", "'items' must be a list"),
        ("just a string\n", "not a mapping"),
        ("42\n", "not a mapping"),
        ("items: []\nitems: []\n", "appears twice"),
        ("- {reference_id: a, mask: a.png}\n---\n- {reference_id: b}\n", "second YAML document"),
        ("annotation_id: '{image}-gt'\nitems: []\n", "{reference_id} is the only name"),
        ("annotation_id: 7\nitems: []\n", "pattern string"),
        ("segments: [{index: 300, label: x}]\nitems: []\n", "0..255"),
        ("segments: []\nitems: []\n", "is empty"),
        ("reference_id: a\nmask: a.png\n", "under 'items:'"),
        ("segments: [{index: 0, label: a}, {index: 0, label: a, label: b}]\nitems: []\n", "twice"),
    ],
)
def test_yaml_fatal_shapes(tmp_path: Path, yaml_parser: str, text: str, expected: str) -> None:
    with pytest.raises(ManifestError, match=r"m\.yaml") as caught:
        load(write(tmp_path / "m.yaml", text))
    assert expected in str(caught.value)


def test_yaml_syntax_error_names_the_line(tmp_path: Path, yaml_parser: str) -> None:
    manifest = write(
        tmp_path / "m.yaml",
        "items:\n  - reference_id: a\n    mask: a.png\n  - reference_id: [b\n    mask: b.png\n",
    )
    with pytest.raises(ManifestError, match=r"m\.yaml:\d+: not valid YAML"):
        load(manifest)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n", "items:\n"])
def test_yaml_without_items_yields_nothing(tmp_path: Path, yaml_parser: str, text: str) -> None:
    assert load(write(tmp_path / "m.yaml", text)) == []


def test_yaml_repeated_key_is_a_problem_on_that_item_only(tmp_path: Path, yaml_parser: str) -> None:
    manifest = write(
        tmp_path / "m.yaml",
        """\
segments: [{index: 0, label: bg}]
items:
  - reference_id: a
    mask: a.png
    mask: other.png
  - {reference_id: b, mask: b.png}
""",
    )
    a, b = load(manifest)
    assert codes(a) == ["manifest-syntax"]
    assert "line 5" in a.problems[0].message and "first at line 4" in a.problems[0].message
    assert b.problems == ()


def test_yaml_non_mapping_item(tmp_path: Path, yaml_parser: str) -> None:
    manifest = write(
        tmp_path / "m.yaml",
        "segments: [{index: 0, label: bg}]\n"
        "items:\n  - just-a-path.png\n  - {reference_id: b, mask: b.png}\n",
    )
    bad, good = load(manifest)
    assert codes(bad) == ["manifest-syntax"] and bad.source.line == 3
    assert good.problems == ()


WIDE_CSV = """\
reference_id,mask,annotation_id,segments,width,height
street_001,masks/street_001.png,,,640,480
street_002,gs://bucket/street_002.png,gt-2,"[{""index"": 0, ""label"": ""bg""},
 {""index"": 5, ""label"": ""car"", ""metadata"": {""color"": ""red""}}]",,
street_003,masks/street_003.png,,tables/street.yaml,,

street_004, masks/street_004.png ,,,,
"""


def test_csv_wide(tmp_path: Path) -> None:
    write(tmp_path / "tables" / "street.yaml", "segments:\n  - {index: 0, label: road}\n")
    default = write(tmp_path / "default.csv", "index,label\n0,background\n1,building\n")
    manifest = write(tmp_path / "m.csv", WIDE_CSV)
    items = load(manifest, default_segments=default)
    assert [i.reference_id for i in items] == [
        "street_001",
        "street_002",
        "street_003",
        "street_004",
    ]
    assert all(i.problems == () for i in items), [i.problems for i in items]
    one, two, three, four = items
    assert one.segments == (Segment(0, "background"), Segment(1, "building"))
    assert (one.width, one.height) == (640, 480)
    assert one.annotation_id is None
    assert two.mask == "gs://bucket/street_002.png"
    assert two.annotation_id == "gt-2"
    assert two.segments == (Segment(0, "bg"), Segment(5, "car", {"color": "red"}))
    assert three.segments == (Segment(0, "road"),)
    assert four.mask == str(tmp_path / "masks" / "street_004.png")  # cell spaces stripped
    # street_002's quoted cell spans lines 3-4; a blank line precedes street_004.
    assert [i.source.line for i in items] == [2, 3, 5, 7]


def test_csv_unknown_column_warns_once(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "m.csv",
        "reference_id,mask,notes,segments\n"
        'a,a.png,x,"[{""index"": 0, ""label"": ""bg""}]"\n'
        'b,b.png,y,"[{""index"": 0, ""label"": ""bg""}]"\n',
    )
    a, b = load(manifest)
    assert codes(a) == ["unknown-field"]
    assert "'notes'" in a.problems[0].message
    assert a.problems[0].severity.value == "warning"
    assert b.problems == ()


def test_csv_extra_cells_and_mask_url_column(tmp_path: Path) -> None:
    table = write(tmp_path / "t.csv", "index,label\n0,bg\n")
    manifest = write(tmp_path / "m.csv", "reference_id,mask_url\na,a.png,oops\nb,b.png\n")
    a, b = load(manifest, default_segments=table)
    assert codes(a) == ["manifest-syntax"] and "quote" in a.problems[0].message
    assert b.problems == () and b.mask == str(tmp_path / "b.png")


LONG_CSV = """\
reference_id,mask,index,label,metadata,confidence
street_001,masks/street_001.png,0,background,,
street_001,,1,car,"{""color"": ""red""}",0.93
street_001,,2,"person, walking",,
street_002,masks/street_002.png,0,background,,
street_002,masks/street_002.png,3,tree,,0.5
"""


def test_csv_long_groups_rows(tmp_path: Path) -> None:
    manifest = write(tmp_path / "m.csv", LONG_CSV)
    one, two = load(manifest)
    assert one.problems == () and two.problems == ()
    assert one.mask == str(tmp_path / "masks" / "street_001.png")
    assert one.segments == (
        Segment(0, "background"),
        Segment(1, "car", {"color": "red", "confidence": "0.93"}),
        Segment(2, "person, walking"),
    )
    assert two.segments == (Segment(0, "background"), Segment(3, "tree", {"confidence": "0.5"}))
    assert (one.source.line, two.source.line) == (2, 5)


def test_csv_long_non_consecutive_rows_are_a_duplicate(tmp_path: Path) -> None:
    manifest = write(tmp_path / "m.csv", LONG_CSV + "street_001,masks/street_001.png,9,late,,\n")
    *_, late = load(manifest)
    assert late.source.line == 7
    assert codes(late) == ["duplicate-reference-id"]
    assert "m.csv:2" in late.problems[0].message


def test_csv_long_rows_must_agree(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "m.csv",
        "reference_id,mask,index,label\na,a.png,0,bg\na,other.png,1,car\n",
    )
    (item,) = load(manifest)
    assert codes(item) == ["manifest-syntax"]
    assert "line 3" in item.problems[0].message and "other.png" in item.problems[0].message
    assert len(item.segments) == 2


def test_csv_long_row_without_segment_uses_default(tmp_path: Path) -> None:
    table = write(tmp_path / "t.yaml", "[{index: 0, label: bg}]\n")
    manifest = write(tmp_path / "m.csv", "reference_id,mask,index,label\na,a.png,,\n")
    (item,) = load(manifest, default_segments=table)
    assert item.problems == () and item.segments == (Segment(0, "bg"),)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("reference_id,segments\n", "no mask column"),
        ("id,mask\n", "no reference_id column"),
        ("reference_id;mask\n", "';' or tabs"),
        ("reference_id,mask,mask\n", "twice"),
        ("reference_id,mask,mask_url\n", "both mask and mask_url"),
        ("reference_id,mask,index\n", "only one of index and label"),
        ("reference_id,mask,index,label,segments\n", "use one layout"),
    ],
)
def test_csv_bad_header(tmp_path: Path, header: str, expected: str) -> None:
    with pytest.raises(ManifestError, match=r"m\.csv") as caught:
        load(write(tmp_path / "m.csv", header + "a,b,c,d,e\n"))
    assert expected in str(caught.value)


def test_csv_only_header_yields_nothing(tmp_path: Path) -> None:
    assert load(write(tmp_path / "m.csv", "reference_id,mask,segments\n")) == []


def nucleus_line(reference_id: str, mask: str, **extra: object) -> str:
    record: dict[str, object] = {
        "type": "mask",
        "mask_url": mask,
        "annotations": [
            {"label": "background", "index": 0},
            {"label": "car", "index": 1, "metadata": {"color": "red"}},
        ],
        "annotation_id": None,
        "reference_id": reference_id,
    }
    record.update(extra)
    return json.dumps(record)


def test_jsonl_round_trips_the_nucleus_payload(tmp_path: Path) -> None:
    lines = [
        nucleus_line("a", "https://example.com/a.png?X-Amz-Signature=ab%2Fcd&X-Amz-Expires=60"),
        nucleus_line("b", "s3://bucket/b.png", annotation_id="ann-b"),
        nucleus_line("c", str(tmp_path / "c.png")),
    ]
    manifest = write(tmp_path / "export.ndjson", "\n".join(lines) + "\n")
    items = load(manifest)
    assert all(i.problems == () for i in items)
    assert [json.dumps(i.payload()) for i in items] == lines
    assert [i.source.line for i in items] == [1, 2, 3]


def test_jsonl_aliases_blank_lines_and_sizes(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "m.jsonl",
        "\n"
        '{"reference_id": "a", "mask": "a.png", "segments": [{"index": 0, "label": "bg"}]}\n'
        "   \n"
        '{"reference_id": "b", "mask_url": "b.png", "annotations": [{"index": 0, "label": "bg"}],'
        ' "width": 32, "height": 16}\n',
    )
    a, b = load(manifest)
    assert a.problems == () and b.problems == ()
    assert a.mask == str(tmp_path / "a.png")
    assert (b.width, b.height) == (32, 16)
    assert (a.source.line, b.source.line) == (2, 4)


def test_jsonl_bad_lines_do_not_stop_the_others(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "m.jsonl",
        "\n".join(
            [
                nucleus_line("a", "a.png"),
                '{"reference_id": "broken", "mask_url": "b.png", "annotations": [',
                "[1, 2]",
                nucleus_line("d", "d.png", type="box"),
                nucleus_line("e", "e.png"),
            ]
        )
        + "\n",
    )
    a, broken, array, box, e = load(manifest)
    assert a.problems == () and e.problems == ()
    assert broken.reference_id == "broken"
    assert codes(broken) == ["manifest-syntax"]
    assert "line 2 is not valid JSON" in broken.problems[0].message
    assert array.reference_id == "" and codes(array) == ["manifest-syntax"]
    assert codes(box) == ["manifest-syntax"] and "'box'" in box.problems[0].message
    assert [i.source.line for i in (a, broken, array, box, e)] == [1, 2, 3, 4, 5]


def test_jsonl_unknown_field_warns_once_per_name(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "m.jsonl",
        "\n".join(
            [
                nucleus_line("a", "a.png", score=1),
                nucleus_line("b", "b.png", score=2, extra=True),
                nucleus_line("c", "c.png", score=3),
            ]
        ),
    )
    a, b, c = load(manifest)
    assert codes(a) == ["unknown-field"] and "'score'" in a.problems[0].message
    assert codes(b) == ["unknown-field"] and "'extra'" in b.problems[0].message
    assert c.problems == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (nucleus_line("a", "a.png") + "\n", "jsonl"),
        ("\n\n  " + nucleus_line("a", "a.png") + "\n", "jsonl"),
        ("reference_id,mask\na,a.png\n", "csv"),
        ("mask,Reference_ID,index,label\n", "csv"),
        ("items:\n  - reference_id: a, b\n", "yaml"),
        ("- {reference_id: a, mask: a.png}\n", "yaml"),
        ('{\n  "items": []\n}\n', "yaml"),
        ("# reference_id, mask\nitems: []\n", "yaml"),
        ("", "yaml"),
    ],
)
def test_sniff_format(text: str, expected: str) -> None:
    first = next((line for line in text.splitlines() if line.strip()), None)
    assert sniff_format(first) == expected


def test_stdin_is_sniffed_and_paths_resolve_against_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    jsonl = io.StringIO("\n" + nucleus_line("a", "masks/a.png") + "\n")
    (item,) = load("-", stdin=jsonl)
    assert item.source.path == "<stdin>" and item.source.line == 2
    assert item.mask == str(tmp_path / "masks" / "a.png")

    csv_text = io.StringIO(
        'reference_id,mask,segments\nb,b.png,"[{""index"": 0, ""label"": ""x""}]"\n'
    )
    (item,) = load("-", stdin=csv_text)
    assert (item.reference_id, item.source.line, item.problems) == ("b", 2, ())

    yaml_text = io.StringIO(
        "items:\n  - {reference_id: c, mask: c.png, segments: [{index: 0, label: x}]}\n"
    )
    (item,) = load("-", stdin=yaml_text)
    assert (item.reference_id, item.source.line, item.problems) == ("c", 2, ())


def test_stdin_bytes_with_bom_and_the_stream_stays_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "t.csv", "index,label\n0,bg\n")
    raw = io.BytesIO(b"\xef\xbb\xbfreference_id,mask,segments\r\na,a.png,t.csv\r\n")
    stdin = io.TextIOWrapper(raw, encoding="utf-8")
    (item,) = load("-", stdin=stdin)
    assert (item.reference_id, item.problems) == ("a", ())
    assert item.mask == str(tmp_path / "a.png")
    assert item.segments == (Segment(0, "bg"),)
    assert not raw.closed  # segcli must not close the caller's stdin


def test_explicit_format_beats_extension(tmp_path: Path) -> None:
    manifest = write(tmp_path / "list.txt", nucleus_line("a", "a.png") + "\n")
    assert load(manifest)[0].reference_id == "a"  # sniffed
    assert load(manifest, format="ndjson")[0].reference_id == "a"
    with pytest.raises(ManifestError, match="unknown manifest format 'xml'"):
        load(manifest, format="xml")


def test_yaml_items_may_be_an_alias(tmp_path: Path, yaml_parser: str) -> None:
    manifest = write(
        tmp_path / "m.yaml",
        """\
segments: [{index: 0, label: bg}]
annotation_id: &list
  - {reference_id: a, mask: a.png}
items: *list
""",
    )
    with pytest.raises(ManifestError, match="pattern string"):
        load(manifest)
    manifest = write(
        tmp_path / "m.yaml",
        """\
segments: &list
  - {index: 0, label: bg}
items: *list
""",
    )
    (item,) = load(manifest)  # the table's entries read as items: visibly wrong
    assert set(codes(item)) == {"missing-reference-id", "missing-mask", "unknown-field"}
    assert item.source.line == 2


# -- YAML mappings are unordered ----------------------------------------------------


def test_a_manifest_written_by_yaml_safe_dump_reads_like_any_other(tmp_path: Path) -> None:
    # safe_dump sorts keys: annotation_id, items, segments. Every item must
    # still get the default table and the annotation_id pattern.
    doc = {
        "segments": [{"index": 0, "label": "background"}, {"index": 1, "label": "car"}],
        "annotation_id": "{reference_id}-gt",
        "items": [{"reference_id": f"img-{i}", "mask": f"m{i}.png"} for i in range(5)],
    }
    path = tmp_path / "dumped.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert path.read_text().index("items:") < path.read_text().index("segments:")
    items = list(load_manifest(path))
    assert [i.reference_id for i in items] == [f"img-{i}" for i in range(5)]
    assert all(i.segments == (Segment(0, "background"), Segment(1, "car")) for i in items)
    assert [i.annotation_id for i in items] == [f"img-{i}-gt" for i in range(5)]
    assert all(not i.problems for i in items)
    assert [i.source.line for i in items] == [3, 5, 7, 9, 11]


def test_a_syntax_error_at_the_end_stops_before_any_item_is_reported(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from segcli.cli.root import app

    lines = ["items:"] + [f"  - {{reference_id: r{i}, mask: m{i}.png}}" for i in range(50)]
    path = tmp_path / "broken-at-end.yaml"
    path.write_text("\n".join([*lines, "segments: [{index: 0, label: bg}", ""]))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    # one fatal message, none of the 50 missing-mask / missing-segments lines
    assert "r0" not in result.output and "missing" not in result.output
    assert f"{path}:5" in result.output  # where the parser stopped, at the end


def test_a_tab_that_yaml_refuses_is_named_as_a_tab(tmp_path: Path) -> None:
    # libyaml says "found character that cannot start any token": the line holds the tab
    path = tmp_path / "tabbed.yaml"
    path.write_text("items:\n\t- reference_id: a\n\t  mask: a.png\n")
    with pytest.raises(ManifestError) as caught:
        list(load_manifest(path))
    message = str(caught.value)
    assert f"{path}:2" in message
    assert "indented with a tab" in message and "replace the tab with spaces" in message
