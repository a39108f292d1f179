"""A manifest item's optional ``image``: read by every format, checked, never sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segcli.journal import fingerprint
from segcli.manifest import load_manifest
from tests.helpers.paths import REPO

SAMPLE = REPO / "sample_data"
TABLE = '[{"index": 0, "label": "bg"}]'


def write(folder: Path, name: str, text: str) -> Path:
    (folder / "pics").mkdir(exist_ok=True)
    (folder / "pics" / "a.jpg").write_bytes(b"\xff\xd8\xff")
    path = folder / name
    path.write_text(text)
    return path


WIDE_CSV_TABLE = TABLE.replace('"', '""')


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (
            "m.yaml",
            f"segments: {TABLE}\nitems:\n  - {{reference_id: a, mask: a.png, image: pics/a.jpg}}\n",
        ),
        ("m.csv", f'reference_id,mask,segments,image\na,a.png,"{WIDE_CSV_TABLE}",pics/a.jpg\n'),
        ("long.csv", "reference_id,mask,index,label,image\na,a.png,0,bg,pics/a.jpg\na,,1,car,\n"),
        (
            "m.jsonl",
            json.dumps(
                {
                    "reference_id": "a",
                    "mask_url": "a.png",
                    "annotations": json.loads(TABLE),
                    "image": "pics/a.jpg",
                }
            )
            + "\n",
        ),
    ],
)
def test_every_format_reads_the_image_relative_to_the_manifest(
    tmp_path: Path, name: str, text: str
) -> None:
    (item,) = load_manifest(write(tmp_path, name, text))
    assert item.image == str(tmp_path / "pics" / "a.jpg")
    assert item.problems == ()


def test_a_missing_image_is_a_warning_that_says_where_it_looked(tmp_path: Path) -> None:
    manifest = write(
        tmp_path,
        "m.yaml",
        f"segments: {TABLE}\nitems:\n  - {{reference_id: a, mask: a.png, image: pics/gone.jpg}}\n"
        "  - {reference_id: b, mask: a.png, image: pics}\n"
        "  - {reference_id: c, mask: a.png, image: 42}\n"
        "  - {reference_id: d, mask: a.png, image: 'https://example.invalid/d.jpg'}\n",
    )
    a, b, c, d = load_manifest(manifest)
    (missing,) = a.problems
    assert (missing.code, missing.severity.value) == ("image-unreadable", "warning")
    assert str(tmp_path / "pics" / "gone.jpg") in missing.message
    assert "resolved against the manifest's folder" in missing.message
    assert "never sent" in missing.message
    assert [p.code for p in b.problems] == ["image-unreadable"] and "is a folder" in b.problems[
        0
    ].message
    assert [p.code for p in c.problems] == ["manifest-syntax"] and c.image is None
    assert d.problems == () and d.image == "https://example.invalid/d.jpg"  # remote: not fetched


def test_the_image_is_never_sent_nor_changes_what_is_sent() -> None:
    items = list(load_manifest(SAMPLE / "manifest.yaml"))
    assert all(i.image for i in items)
    for item in items:
        assert "image" not in json.dumps(item.payload())
    # a re-run with another image sends nothing again: the fingerprint ignores it
    from dataclasses import replace

    first = items[0]
    assert fingerprint(first, "d") == fingerprint(replace(first, image="other.jpg"), "d")


def test_the_four_sample_formats_name_the_same_images() -> None:
    names = ["manifest.yaml", "manifest.csv", "manifest_long.csv", "manifest.jsonl"]
    images = [[i.image for i in load_manifest(SAMPLE / n)] for n in names]
    assert images[0] == images[1] == images[2] == images[3]
    assert all(Path(i).is_file() for i in images[0] if i)
