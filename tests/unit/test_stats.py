"""segcli stats: per label masks, segments and area; sizes; segment counts; the plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from segcli.cli.root import app
from segcli.manifest import load_manifest
from segcli.model import MaskItem, Segment, Source
from segcli.stats import SetStats, collect
from segcli.stats_plot import segment_buckets, write_plot
from segcli.validation import ValidateSettings
from tests.helpers.pngs import gray_png

runner = CliRunner()


def sample_set(folder: Path) -> Path:
    """Two good masks, one value without a segment, a missing mask and a duplicate id."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.png").write_bytes(gray_png(np.array([[0, 0, 1, 1], [0, 2, 2, 9]], np.uint8)))
    (folder / "b.png").write_bytes(gray_png(np.zeros((3, 3), np.uint8)))
    manifest = folder / "m.yaml"
    manifest.write_text(
        "segments: [{index: 0, label: bg}, {index: 1, label: car}, {index: 2, label: car}]\n"
        "items:\n"
        "  - {reference_id: a, mask: a.png}\n"
        "  - {reference_id: b, mask: b.png}\n"
        "  - {reference_id: gone, mask: gone.png}\n"
        "  - {reference_id: a, mask: b.png}\n"
    )
    return manifest


def test_counts_per_label_size_and_segment_count(tmp_path: Path) -> None:
    stats = collect(load_manifest(sample_set(tmp_path)), ValidateSettings(pool="inline", workers=1))
    assert (stats.items, stats.masks, stats.pixels) == (4, 2, 8 + 9)
    assert {s.label: (s.masks, s.segments, s.pixels) for s in stats.ranked()} == {
        "bg": (2, 2, 3 + 9),
        "car": (1, 2, 4),  # two instances in one mask
    }
    assert [s.label for s in stats.ranked()] == ["bg", "car"]
    assert (stats.unlabelled.masks, stats.unlabelled.pixels) == (1, 1)
    assert dict(stats.sizes) == {(4, 2): 1, (3, 3): 1}
    assert dict(stats.segment_counts) == {3: 1, 1: 1}
    assert dict(stats.left_out) == {"mask-unreadable": 1, "duplicate-reference-id": 1}
    assert stats.first_left_out["mask-unreadable"].endswith(" gone")


def test_the_command_prints_a_table_and_the_same_in_json(tmp_path: Path) -> None:
    manifest = sample_set(tmp_path)
    plain = runner.invoke(app, ["stats", str(manifest), "--workers", "1"])
    assert plain.exit_code == 1, plain.output  # two items could not be counted
    lines = plain.stdout.splitlines()
    assert lines[0] == "2 masks, 17 pixels, 2 labels"
    assert lines[1].split() == ["label", "masks", "segments", "pixels", "area"]
    assert lines[2].split() == ["bg", "2", "2", "12", "70.6%"]
    assert lines[3].split() == ["car", "1", "2", "4", "23.5%"]
    assert lines[4].split() == ["(no", "segment)", "1", "1", "1", "5.9%"]
    assert "left out: 2 items that could not be counted:" in plain.stdout
    assert "  mask-unreadable: 1 (first: " in plain.stdout
    done = runner.invoke(app, ["stats", str(manifest), "--workers", "1", "--json"])
    record = json.loads(done.stdout)
    assert record["exit_code"] == 1 and record["masks"] == 2
    assert record["labels"][0] == {"label": "bg", "masks": 2, "segments": 2, "pixels": 12}
    assert record["left_out"] == {"duplicate-reference-id": 1, "mask-unreadable": 1}


def test_sample_data_counts_every_mask(tmp_path: Path) -> None:
    plot = tmp_path / "stats.png"
    done = runner.invoke(
        app, ["stats", "sample_data/manifest.yaml", "--workers", "1", "--plot", str(plot), "--json"]
    )
    assert done.exit_code == 0, done.output
    record = json.loads(done.stdout)
    assert record["masks"] == 7 and record["left_out"] == {}
    assert {"width": 512, "height": 384, "masks": 6} in record["sizes"]
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.width >= 1000


def test_bad_input_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("items: []\n")
    done = runner.invoke(app, ["stats", str(empty), "--json"])
    assert done.exit_code == 2 and json.loads(done.stdout)["error"]["code"] == "manifest"
    assert "holds no items" in done.stderr
    wrong = runner.invoke(app, ["stats", "sample_data/manifest.yaml", "--plot", "x.jpg"])
    assert wrong.exit_code == 2 and "--plot x.jpg: the plot is a PNG" in wrong.stderr
    missing = runner.invoke(app, ["stats", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "Traceback" not in missing.output


def test_a_long_tailed_hostile_label_set_stays_readable(tmp_path: Path) -> None:
    stats = SetStats()
    hostile = ["<script>alert(1)</script>", "$x^2$ and $", "שלום עולם", 'quote"s', "a\x1b[31mred"]
    labels = hostile + [f"class-{n:04d}" for n in range(2000)]
    rng = np.random.default_rng(0)
    for n, label in enumerate(labels):
        item = MaskItem(f"i{n}", "m.png", (Segment(0, label),), Source("m", n))
        stats.add(item, 64, 48, {0: int(10**6 / (n + 1)) + int(rng.integers(1, 5))})
    plot = tmp_path / "tail.png"
    write_plot(stats, str(plot), top=40)
    with Image.open(plot) as image:
        # 40 bars, one for the 1,965 others, however many labels there are
        assert image.height < 2200, image.size


def test_hostile_labels_are_printed_as_text(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(gray_png(np.array([[0, 1, 2]], np.uint8)))
    table = [{"index": 0, "label": "a\x1b[31mred"}, {"index": 1, "label": "\u202eevil"},
             {"index": 2, "label": "שלום"}]  # fmt: skip
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"reference_id": "a", "mask": "a.png", "segments": table}))
    done = runner.invoke(app, ["stats", str(manifest), "--workers", "1"])
    assert done.exit_code == 0, done.output
    assert "\x1b" not in done.stdout and "\u202e" not in done.stdout
    assert "a\\u001b[31mred" in done.stdout and "\\u202eevil" in done.stdout
    assert "שלום" in done.stdout


def test_many_distinct_segment_counts_are_bucketed() -> None:
    counts = {k: 1 for k in range(1, 200)}
    buckets = dict(segment_buckets(counts))
    assert buckets["1"] == 1 and buckets["2-3"] == 2 and buckets["128-255"] == 72
    assert sum(buckets.values()) == 199


def test_each_mask_is_decoded_once_and_a_shared_one_once_for_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import segcli.checks

    decoded: list[bytes] = []
    inspect = segcli.checks.inspect_data

    def counted(data: bytes, **kwargs: Any) -> Any:
        decoded.append(data)
        return inspect(data, **kwargs)

    monkeypatch.setattr(segcli.checks, "inspect_data", counted)
    (tmp_path / "a.png").write_bytes(gray_png(np.array([[0, 1]], np.uint8)))
    (tmp_path / "b.png").write_bytes(gray_png(np.array([[1, 1]], np.uint8)))
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "segments: [{index: 0, label: bg}, {index: 1, label: car}]\n"
        "items:\n"
        "  - {reference_id: a, mask: a.png}\n"
        "  - {reference_id: b, mask: b.png}\n"
        "  - {reference_id: c, mask: a.png}\n"  # the same file as a
    )
    stats = collect(load_manifest(manifest), ValidateSettings(pool="inline", workers=1))
    assert stats.masks == 3 and stats.labels["car"].pixels == 1 + 2 + 1
    assert len(decoded) == 2 and len(set(decoded)) == 2
