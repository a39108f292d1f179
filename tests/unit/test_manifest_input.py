"""Manifest input: files and stdin, encodings, line endings, paths, streaming."""

from __future__ import annotations

import io
import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO, cast

import pytest

from segcli.errors import ManifestError
from segcli.manifest import load_manifest
from segcli.model import MaskItem, Segment
from tests.helpers.privileges import python_unprivileged

TABLE = '[{""index"": 0, ""label"": ""bg""}]'
JSON_TABLE = [{"index": 0, "label": "bg"}]


def load(source: str | os.PathLike[str], **kwargs: object) -> list[MaskItem]:
    return list(load_manifest(source, **kwargs))  # type: ignore[arg-type]


def codes(item: MaskItem) -> list[str]:
    return [p.code for p in item.problems]


def line(reference_id: str, mask: str = "m.png") -> str:
    return json.dumps({"reference_id": reference_id, "mask_url": mask, "annotations": JSON_TABLE})


# -- files that cannot be read at all


def test_missing_file_raises_at_the_call(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"nope\.yaml does not exist"):
        load_manifest(tmp_path / "nope.yaml")


def test_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="is a folder"):
        load_manifest(tmp_path)


def test_unreadable_file_raises(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("reference_id,mask\n")
    manifest.chmod(0)
    # In a process that cannot read it even when the tests run as root.
    code = (
        "import sys\n"
        "from segcli.errors import ManifestError\n"
        "from segcli.manifest import load_manifest\n"
        "try:\n"
        "    list(load_manifest(sys.argv[1]))\n"
        "except ManifestError as exc:\n"
        "    print(exc)\n"
    )
    done = python_unprivileged(code, str(manifest))
    assert done.returncode == 0, done.stderr
    assert "permission denied" in done.stdout and str(manifest) in done.stdout


@pytest.mark.parametrize("name", ["m.yaml", "m.csv", "m.jsonl"])
def test_utf16_is_refused(tmp_path: Path, name: str) -> None:
    manifest = tmp_path / name
    manifest.write_text("reference_id,mask\na,a.png\n", encoding="utf-16")
    with pytest.raises(ManifestError, match="not UTF-8 text"):
        load(manifest)


def test_binary_file_is_refused(tmp_path: Path) -> None:
    manifest = tmp_path / "mask.png"
    manifest.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(ManifestError, match="is a PNG image, not a manifest"):
        load(manifest)
    manifest.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xed\x9d")
    with pytest.raises(ManifestError, match="not UTF-8"):
        load(manifest)


# -- empty input


@pytest.mark.parametrize("name", ["m.yaml", "m.csv", "m.jsonl", "m.txt"])
@pytest.mark.parametrize("text", ["", "\n", " \r\n\r\n"])
def test_empty_manifest_yields_nothing(tmp_path: Path, name: str, text: str) -> None:
    manifest = tmp_path / name
    manifest.write_text(text)
    assert load(manifest) == []


def test_empty_stdin_yields_nothing() -> None:
    assert load("-", stdin=io.StringIO("")) == []


# -- BOM, CRLF, quoting


def test_bom_is_ignored_in_every_format(tmp_path: Path) -> None:
    bom = "\ufeff"
    (tmp_path / "m.csv").write_text(f'{bom}reference_id,mask,segments\na,a.png,"{TABLE}"\n')
    (tmp_path / "m.jsonl").write_text(bom + line("a") + "\n")
    (tmp_path / "m.yaml").write_text(
        f"{bom}items:\n  - {{reference_id: a, mask: a.png, segments: [{{index: 0, label: bg}}]}}\n"
    )
    for name in ("m.csv", "m.jsonl", "m.yaml"):
        (item,) = load(tmp_path / name)
        assert (item.reference_id, item.problems, item.source.line) == (
            "a",
            (),
            1 + (name != "m.jsonl"),
        ), name


def test_crlf_line_endings(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_bytes(
        b"reference_id,mask,segments\r\n"
        b'a,a.png,"[{""index"": 0,\r\n""label"": ""bg""}]"\r\n'
        b'b,b.png,"' + TABLE.encode() + b'"\r\n'
    )
    (tmp_path / "m.jsonl").write_bytes((line("a") + "\r\n" + line("b") + "\r\n").encode())
    (tmp_path / "m.yaml").write_bytes(
        b"segments: [{index: 0, label: bg}]\r\nitems:\r\n"
        b"  - reference_id: a\r\n    mask: a.png\r\n  - reference_id: b\r\n    mask: b.png\r\n"
    )
    expected_lines = {"m.csv": [2, 4], "m.jsonl": [1, 2], "m.yaml": [3, 5]}
    for name, lines in expected_lines.items():
        items = load(tmp_path / name)
        assert [i.reference_id for i in items] == ["a", "b"], name
        assert [i.source.line for i in items] == lines, name
        assert all(i.problems == () for i in items), name
        assert all("\r" not in i.mask and i.mask.endswith(".png") for i in items), name
        assert items[0].segments == (Segment(0, "bg"),)


def test_csv_quoted_newlines_keep_line_numbers(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "reference_id,mask,segments\n"
        f'"multi\nline id",a.png,"{TABLE}"\n'
        f'b,"b\nc.png","[\n{{""index"": 0,\n""label"": ""bg""}}\n]"\n'
        f'd,d.png,"{TABLE}"\n'
    )
    a, b, d = load(manifest)
    assert (a.reference_id, a.source.line) == ("multi\nline id", 2)
    assert (b.source.line, b.problems) == (4, ())
    assert b.mask.endswith("b\nc.png")
    assert d.source.line == 9


def test_csv_unterminated_quote_swallows_the_rest_into_one_item(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_text("index,label\n0,bg\n")
    manifest = tmp_path / "m.csv"
    manifest.write_text('reference_id,mask\na,"a.png\nb,b.png\nc,c.png\n')
    (item,) = load(manifest, default_segments=table)
    assert item.reference_id == "a"
    assert item.mask.endswith("a.png\nb,b.png\nc,c.png")  # visibly wrong in any message


# -- bytes that are not UTF-8 in the middle


def test_bad_bytes_in_csv_spoil_one_item(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_bytes(
        b"reference_id,mask,segments\n"
        + f'a,a.png,"{TABLE}"\n'.encode()
        + f'b,b\xff.png,"{TABLE}"\n'.encode("latin-1")
        + f'c,c.png,"{TABLE}"\n'.encode()
    )
    a, b, c = load(manifest)
    assert a.problems == () and c.problems == ()
    assert codes(b) == ["manifest-syntax"]
    assert "line 3" in b.problems[0].message and "0xff" in b.problems[0].message
    assert "\ufffd" in b.mask
    assert c.source.line == 4


def test_bad_bytes_in_jsonl_spoil_one_item(tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(
        (line("a") + "\n").encode()
        + line("b\xe9").encode("latin-1").replace(b"\\u00e9", b"\xe9")
        + b"\n"
        + (line("c") + "\n").encode()
    )
    a, b, c = load(manifest)
    assert a.problems == () and c.problems == ()
    assert codes(b) == ["manifest-syntax"] and "not UTF-8" in b.problems[0].message
    assert b.reference_id == "b\ufffd"


def test_bad_bytes_in_yaml_are_fatal_and_name_the_line(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_bytes(
        b"items:\n  - {reference_id: a, mask: a.png}\n  - {reference_id: b\xff, mask: b.png}\n"
    )
    with pytest.raises(ManifestError, match=r"m\.yaml: line 3 has bytes that are not UTF-8"):
        load(manifest)


def test_bad_bytes_on_stdin(tmp_path: Path) -> None:
    raw = io.BytesIO((line("a") + "\n").encode() + b'{"reference_id": "b\xff"}\n')
    a, b = load("-", stdin=io.TextIOWrapper(raw, encoding="utf-8"))
    assert a.problems == ()
    assert "manifest-syntax" in codes(b)


# -- mask paths


def test_relative_masks_resolve_against_the_manifest_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    project = tmp_path / "project"
    project.mkdir()
    manifest = project / "m.jsonl"
    signed = "https://bucket.example.com/m.png?X-Amz-Credential=a%2Fb%2F&X-Amz-Signature=00ff&x=1+2"
    masks = [
        "masks/a.png",
        "./masks/../b.png",
        "../shared/c.png",
        "/abs/d.png",
        "~/e.png",
        signed,
        "s3://bucket/key with space.png",
        "gs://bucket/f.png",
        "memory://g.png",
        "file:///abs/h%20h.png",
        "http://host/i.png?a=%41",
    ]
    manifest.write_text("".join(line(str(n), mask) + "\n" for n, mask in enumerate(masks)))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    got = [i.mask for i in load(os.path.relpath(manifest))]
    assert got == [
        str(project / "masks" / "a.png"),
        str(project / "b.png"),
        str(tmp_path / "shared" / "c.png"),
        "/abs/d.png",
        str(home / "e.png"),
        signed,
        "s3://bucket/key with space.png",
        "gs://bucket/f.png",
        "memory://g.png",
        "/abs/h h.png",
        "http://host/i.png?a=%41",
    ]


def test_source_path_is_the_path_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("m.jsonl").write_text(line("a") + "\n")
    (item,) = load("m.jsonl")
    assert str(item.source) == "m.jsonl:1"


# -- streaming


class CountingSource(io.RawIOBase):
    """An endless-looking byte stream that makes JSONL lines on demand."""

    def __init__(self, lines: int) -> None:
        self.total = lines
        self.made = 0
        self.bytes_read = 0
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while len(self._pending) < len(buffer) and self.made < self.total:
            self._pending += (
                line(f"img_{self.made:07d}", f"masks/{self.made}.png") + "\n"
            ).encode()
            self.made += 1
        chunk = self._pending[: len(buffer)]
        self._pending = self._pending[len(chunk) :]
        buffer[: len(chunk)] = chunk
        self.bytes_read += len(chunk)
        return len(chunk)


def test_jsonl_is_read_lazily() -> None:
    source = CountingSource(200_000)
    stdin = io.TextIOWrapper(io.BufferedReader(source), encoding="utf-8")
    items = load_manifest("-", stdin=stdin)
    assert source.made == 0  # nothing is read before the first item is asked for
    first = list(itertools.islice(items, 10))
    assert [i.reference_id for i in first] == [f"img_{n:07d}" for n in range(10)]
    # Only a buffer's worth was read: a fraction of the 200,000 lines.
    assert source.made < 2_000
    assert source.bytes_read < 256 * 1024
    more = list(itertools.islice(items, 5_000))
    assert more[-1].reference_id == "img_0005009"
    assert source.made < 10_000


class CountingLines:
    """Text lines served on demand and counted; stands in for sys.stdin."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines
        self.served = 0
        self.chars = 0

    def __iter__(self) -> Iterator[str]:
        for text in self._lines:
            self.served += 1
            self.chars += len(text)
            yield text


def test_yaml_from_stdin_builds_items_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two passes (top-level keys may come after the items), the second over a
    # spooled copy of stdin; the first only walks parser events, so no item is
    # built before it is asked for and memory does not grow with the list.
    from segcli.manifest.items import ItemBuilder

    built = [0]
    build = ItemBuilder.build

    def counting(self: ItemBuilder, raw: Any) -> Any:
        built[0] += 1
        return build(self, raw)

    monkeypatch.setattr(ItemBuilder, "build", counting)
    n = 100_000
    body = (f"  - {{reference_id: r{i}, mask: m{i}.png}}\n" for i in range(n))
    lines = itertools.chain(["items:\n"], body, ["segments: [{index: 0, label: bg}]\n"])
    stdin = CountingLines(lines)
    items = load_manifest("-", stdin=cast(TextIO, stdin), format="yaml")
    first = list(itertools.islice(items, 3))
    assert built[0] == 3
    assert stdin.served == n + 2  # the first pass read it all, to the default at the end
    assert [i.reference_id for i in first] == ["r0", "r1", "r2"]
    assert first[2].source.line == 4
    assert first[0].segments == (Segment(0, "bg"),)  # the default written after the items
    assert 3 + sum(1 for _ in items) == n


def test_long_csv_is_read_lazily() -> None:
    rows = (f"r{n // 3},m{n // 3}.png,{n % 3},label{n % 3}\n" for n in range(600_000))
    stdin = CountingLines(itertools.chain(["reference_id,mask,index,label\n"], rows))
    items = load_manifest("-", stdin=cast(TextIO, stdin), format="csv")
    first = list(itertools.islice(items, 2))
    assert [len(i.segments) for i in first] == [3, 3]
    assert [i.source.line for i in first] == [2, 5]
    assert stdin.served < 20


@pytest.mark.skipif(not os.path.isdir("/dev/fd"), reason="needs /dev/fd")
def test_a_pipe_path_is_read_and_resolves_against_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, (line("a", "masks/a.png") + "\n").encode())
        os.close(write_end)
        (item,) = load(f"/dev/fd/{read_end}")
    finally:
        os.close(read_end)
    assert item.problems == ()
    assert item.mask == str(tmp_path / "masks" / "a.png")


def test_json_extension_is_sniffed(tmp_path: Path) -> None:
    document = tmp_path / "doc.json"
    document.write_text(
        json.dumps(
            {
                "segments": JSON_TABLE,
                "items": [
                    {"reference_id": "a", "mask": "a.png"},
                    {"reference_id": "b", "mask": "b.png"},
                ],
            },
            indent=2,
        )
    )
    lines = tmp_path / "lines.json"
    lines.write_text(line("c") + "\n" + line("d") + "\n")
    assert [(i.reference_id, i.problems) for i in load(document)] == [("a", ()), ("b", ())]
    assert [i.source.line for i in load(document)] == [9, 13]
    assert [i.reference_id for i in load(lines)] == ["c", "d"]
