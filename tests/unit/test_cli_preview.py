"""segcli preview: the chosen items drawn, as PNG files or in a terminal that shows pictures."""

from __future__ import annotations

import base64
import io
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from segcli.cli.root import app
from segcli.model import MaskItem, Segment, Source
from segcli.picture import NO_SEGMENT_RGB, ColourKey, label_colour, thumbnail
from segcli.plot_text import plot_label
from tests.helpers.paths import REPO, SAMPLE
from tests.helpers.pngs import gray_png

runner = CliRunner()
MANIFEST = str(SAMPLE / "manifest.yaml")


def rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def has_colour(pixels: np.ndarray, colour: tuple[int, int, int]) -> int:
    return int(np.all(pixels == colour, axis=2).sum())


def test_one_item_with_its_image_in_one_png(tmp_path: Path) -> None:
    out = tmp_path / "p.png"
    done = runner.invoke(app, ["preview", MANIFEST, "aerial-0003", "-o", str(out)])
    assert done.exit_code == 0, done.output
    assert f"wrote {out}" in done.stdout
    pixels = rgb(out)
    # mask, image and blend side by side (512 px each) and the legend
    assert pixels.shape[1] > 3 * 512
    for label in ("field", "road", "building"):  # aerial-0003's table, drawn in its colours
        assert has_colour(pixels[:, :520], label_colour(label)) > 500, label


def test_a_wrong_ref_is_named_with_near_ones_and_the_others_are_drawn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    done = runner.invoke(app, ["preview", MANIFEST, "stret-0002", "street-0004"])
    assert done.exit_code == 1
    assert "stret-0002: error [not-found] no item has this reference_id (7 items read)" in (
        done.stdout
    )
    assert "did you mean 'street-0002'" in done.stdout
    # not a terminal that shows pictures: one PNG per item, here
    assert sorted(p.name for p in tmp_path.iterdir()) == ["street-0004.preview.png"]


def test_a_folder_gets_one_png_per_item_and_json_says_so(tmp_path: Path) -> None:
    folder = tmp_path / "out/"
    done = runner.invoke(
        app, ["preview", MANIFEST, "street-0001", "aerial-0001", "-o", f"{folder}/", "--json"]
    )
    assert done.exit_code == 0, done.output
    record = json.loads(done.stdout)
    assert record["written"] == [
        str(folder / "street-0001.preview.png"),
        str(folder / "aerial-0001.preview.png"),
    ]
    first = record["items"][0]
    assert first["drawn"] and first["image"].endswith("images/street-0001.jpg")
    assert {r["label"] for r in first["legend"]} >= {"bird", "person", "handbag"}
    assert all(Path(p).is_file() for p in record["written"])


def test_the_pixels_without_a_segment_are_lit_where_they_are(tmp_path: Path) -> None:
    values = np.zeros((300, 400), np.uint8)
    values[250:270, 350:370] = 9  # bottom right
    (tmp_path / "m.png").write_bytes(gray_png(values))
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "segments: [{index: 0, label: bg}]\n"
        "items: [{reference_id: stray, mask: m.png, image: gone.jpg}]\n"
    )
    out = tmp_path / "stray.png"
    done = runner.invoke(app, ["preview", str(manifest), "stray", "-o", str(out)])
    # the image is missing: said once, as a warning, and the mask is drawn alone
    assert done.exit_code == 0, done.output
    assert done.stdout.count("[image-unreadable]") == 1
    assert "error" not in done.stdout
    pixels = rgb(out)
    # the mask's panel is the mask drawn 1:1: its label's colour, the 20x20 box lit, ringed
    stray = MaskItem("stray", "m.png", (Segment(0, "bg"),), Source("m", 1))
    key = ColourKey.of(stray, values, dim=False)
    top, left = located(pixels, thumbnail(values, key, max_side=1024))
    lit = np.argwhere(np.all(pixels[top : top + 300, left : left + 400] == NO_SEGMENT_RGB, axis=2))
    assert (lit.min(axis=0).tolist(), lit.max(axis=0).tolist()) == ([250, 350], [269, 369])
    assert len(lit) == 400


def located(pixels: np.ndarray, expected: np.ndarray) -> tuple[int, int]:
    """Where ``expected`` appears exactly in ``pixels`` (top, left), near the top left."""
    height, width = expected.shape[:2]
    for top in range(80):
        for left in range(40):
            if np.array_equal(pixels[top : top + height, left : left + width], expected):
                return top, left
    raise AssertionError("the mask is not drawn 1:1 near the top left")


def test_a_tiny_mask_is_drawn_large_enough_to_see(tmp_path: Path) -> None:
    values = np.array([[0, 1, 0], [1, 9, 1]], np.uint8)
    (tmp_path / "m.png").write_bytes(gray_png(values))
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "segments: [{index: 0, label: bg}, {index: 1, label: fg}]\n"
        "items: [{reference_id: tiny, mask: m.png}]\n"
    )
    out = tmp_path / "tiny.png"
    done = runner.invoke(app, ["preview", str(manifest), "tiny", "-o", str(out)])
    assert done.exit_code == 0, done.output
    panel = rgb(out)[:, : 3 * 42 + 20]  # left of the legend, whose swatches share the colours
    # 128 px // 3 = 42 screen pixels a mask pixel; the ring stays inside the lit one's
    # neighbours, which still show their own colour
    assert has_colour(panel, NO_SEGMENT_RGB) == 42 * 42
    assert has_colour(panel, label_colour("bg")) == 2 * (42 * 42 - 2 * 2)  # a corner ringed


def test_a_right_to_left_label_keeps_its_legend_line_in_order() -> None:
    import matplotlib

    # matplotlib 3.11 on applies the bidi rules: isolated, "(3, 10 px)" is not turned around
    bidi = tuple(matplotlib.__version_info__[:2]) >= (3, 11)
    assert bidi or sys.version_info < (3, 11)  # pyproject asks for 3.11 where it installs
    isolated = "\N{FIRST STRONG ISOLATE}שלום\N{POP DIRECTIONAL ISOLATE}"
    assert plot_label("שלום") == (isolated if bidi else "שלום")
    assert plot_label("road $5") == r"road \$5"  # and a $ starts no mathtext


def test_a_mask_that_cannot_be_drawn_says_why(tmp_path: Path) -> None:
    broken = str(SAMPLE / "broken" / "manifest.yaml")
    out = tmp_path / "x.png"
    done = runner.invoke(app, ["preview", broken, "rgb-0001", "-o", str(out)])
    assert done.exit_code == 1
    assert "rgb-0001: error [mask-mode] an RGB mask" in done.stdout
    assert "nothing to draw" in done.stdout and not out.exists()


def test_an_output_that_is_not_a_png_is_a_usage_error(tmp_path: Path) -> None:
    done = runner.invoke(app, ["preview", MANIFEST, "street-0001", "-o", "x.jpg", "--json"])
    assert done.exit_code == 2
    assert json.loads(done.stdout)["error"]["code"] == "usage"
    assert "give a .png file" in done.stderr


def run_in_terminal(env: dict[str, str], tmp: Path) -> bytes:
    """Run a preview with a pseudo-terminal as stdout; return all it wrote there."""
    leader, follower = pty.openpty()
    full = {k: v for k, v in os.environ.items() if k not in ("TERM_PROGRAM", "LC_TERMINAL")}
    full.pop("KITTY_WINDOW_ID", None)
    full.update(env)
    proc = subprocess.Popen(
        [sys.executable, "-m", "segcli", "preview", MANIFEST, "street-0004"],
        stdout=follower,
        stderr=subprocess.PIPE,
        cwd=tmp,
        env=full,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the other end closed
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
    os.close(leader)
    return b"".join(chunks)


def test_kitty_draws_inline_and_writes_no_file(tmp_path: Path) -> None:
    said = run_in_terminal({"TERM": "xterm-kitty"}, tmp_path)
    payload = re.findall(rb"\x1b_G([^;]*);([A-Za-z0-9+/=]*)\x1b\\", said)
    assert payload and payload[0][0].startswith(b"a=T,f=100")
    assert payload[-1][0].endswith(b"m=0")
    png = base64.b64decode(b"".join(chunk for _, chunk in payload))
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG" and image.width > 512
    assert list(tmp_path.iterdir()) == []


def test_iterm2_draws_inline(tmp_path: Path) -> None:
    said = run_in_terminal({"TERM": "xterm-256color", "TERM_PROGRAM": "iTerm.app"}, tmp_path)
    found = re.search(rb"\x1b\]1337;File=inline=1;size=(\d+);[^:]*:([A-Za-z0-9+/=]+)\x07", said)
    assert found is not None
    assert len(base64.b64decode(found.group(2))) == int(found.group(1))


def test_a_pipe_gets_files_even_in_kitty(tmp_path: Path) -> None:
    env = {**os.environ, "TERM": "xterm-kitty"}
    done = subprocess.run(
        [sys.executable, "-m", "segcli", "preview", MANIFEST, "street-0004"],
        capture_output=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0
    assert b"\x1b_G" not in done.stdout
    assert (tmp_path / "street-0004.preview.png").is_file()
    assert str(REPO)  # the manifest path given is absolute
