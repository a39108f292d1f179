"""The hostile-input corpus: broken manifests and masks, each beside good items.

Text manifests are committed under ``tests/hostile/``. What cannot be kept
as a small text file (binary masks, BOMs, CRLF, bytes that are not UTF-8, a
10 MB line) is made here at test time. ``build_case`` puts one case in a
folder of its own, next to the good masks its manifest names, so each case
runs alone: one bad case cannot hide another.

Every manifest holds the good items ``good-1`` and ``good-2`` (24x24 masks
with the values 0, 1 and 2; segments background, thing, other) around the
case's own items, so a test can check that the good items still pass.
"""

from __future__ import annotations

import io
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from tests.helpers.paths import TESTS
from tests.helpers.pngs import (
    IEND,
    SIGNATURE,
    assemble,
    chunk,
    find,
    gray_png,
    ihdr,
    interlaced_gray_png,
    raw_gray_png,
)

HERE = TESTS / "hostile"
GOOD = ("good-1", "good-2")
SIZE = 24
TABLE_JSON = (
    '[{"index": 0, "label": "background"}, {"index": 1, "label": "thing"}, '
    '{"index": 2, "label": "other"}]'
)
TABLE_YAML = (
    "segments:\n"
    "  - {index: 0, label: background}\n"
    "  - {index: 1, label: thing}\n"
    "  - {index: 2, label: other}\n"
)


def good_array(seed: int = 0) -> np.ndarray:
    """Three horizontal bands: every value of the table present."""
    arr = np.zeros((SIZE, SIZE), np.uint8)
    arr[SIZE // 3 :] = 1
    arr[2 * SIZE // 3 :] = 2
    return np.roll(arr, seed, axis=0)


def write_good_masks(folder: Path) -> None:
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    for i, ref in enumerate(GOOD):
        (folder / "masks" / f"{ref}.png").write_bytes(gray_png(good_array(i)))


# -- masks that are broken in one way each --------------------------------------


def _saved(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _mode(mode: str) -> bytes:
    arr = good_array()
    if mode in ("RGB", "RGBA", "LA"):
        return _saved(Image.fromarray(arr, "L").convert(mode))
    raise ValueError(mode)


def _palette() -> bytes:
    image = Image.frombytes("P", (SIZE, SIZE), good_array().tobytes())
    image.putpalette([c for i in range(256) for c in (255 - i, (i * 7) % 256, 3)])
    return _saved(image)


def _bad_crc() -> bytes:
    data = bytearray(gray_png(good_array()))
    pos, length = find(bytes(data), b"IDAT")
    crc_at = pos + 8 + length
    data[crc_at : crc_at + 4] = struct.pack(">I", ~zlib.crc32(data[pos + 4 : crc_at]) & 0xFFFFFFFF)
    return bytes(data)


def _bomb() -> bytes:
    # A header claiming 100000 x 100000 pixels over a few bytes of data: 10
    # gigapixels if anything believed it.
    return assemble(ihdr(100_000, 100_000), b"\x00" * 64)


def _undeclared_value() -> bytes:
    arr = good_array()
    arr[0, :4] = 7  # 7 has no segment in the table
    return gray_png(arr)


MASKS: dict[str, Callable[[], bytes]] = {
    "zero-bytes": lambda: b"",
    "jpeg-named-png": lambda: _saved(Image.fromarray(good_array() * 100, "L"), "JPEG"),
    "truncated": lambda: gray_png(good_array())[:60],
    "bad-crc": _bad_crc,
    "bomb-header": _bomb,
    "interlaced": lambda: interlaced_gray_png(good_array()),
    "16-bit": lambda: raw_gray_png(good_array().astype(np.uint16) * 1000, depth=16),
    "rgb": lambda: _mode("RGB"),
    "rgba": lambda: _mode("RGBA"),
    "gray-alpha": lambda: _mode("LA"),
    "1-bit": lambda: raw_gray_png(good_array() > 0, depth=1),
    "palette": _palette,
    "html-named-png": lambda: b"<!DOCTYPE html><html><body>Sign in</body></html>",
    "undeclared-value": _undeclared_value,
    "header-only": lambda: SIGNATURE + ihdr(SIZE, SIZE) + IEND,
    "garbage-chunk": lambda: SIGNATURE + ihdr(SIZE, SIZE) + chunk(b"IDAT", b"\xff" * 40) + IEND,
}


def mask_manifest(mask: str, reference_id: str, extra: str = "") -> str:
    """A YAML manifest: good-1, the case's item (line 7), good-2."""
    return (
        TABLE_YAML
        + "items:\n"
        + "  - {reference_id: good-1, mask: masks/good-1.png}\n"
        + f"  - {{reference_id: {reference_id}, mask: '{mask}'{extra}}}\n"
        + "  - {reference_id: good-2, mask: masks/good-2.png}\n"
    )


MASK_LINE = 7  # the line of the case's item in mask_manifest()


# -- manifests that need exact bytes ------------------------------------------------


def _jsonl_line(ref: str, mask: str | None = None) -> str:
    mask = mask or f"masks/{ref}.png"
    return (
        f'{{"reference_id": "{ref}", "mask_url": "{mask}", "annotations": {TABLE_JSON}, '
        '"annotation_id": null, "type": "mask"}'
    )


def _csv_rows() -> list[str]:
    table = TABLE_JSON.replace('"', '""')
    return [
        "reference_id,mask,segments",
        f'good-1,masks/good-1.png,"{table}"',
        f'good-2,masks/good-2.png,"{table}"',
    ]


def _yaml_lines() -> list[str]:
    return [
        *TABLE_YAML.splitlines(),
        "items:",
        "  - {reference_id: good-1, mask: masks/good-1.png}",
        "  - {reference_id: good-2, mask: masks/good-2.png}",
    ]


def _jsonl_lines() -> list[str]:
    return [_jsonl_line(ref) for ref in GOOD]


GENERATED: dict[str, Callable[[], bytes]] = {
    "bom.csv": lambda: b"\xef\xbb\xbf" + "\n".join(_csv_rows()).encode() + b"\n",
    "bom.yaml": lambda: b"\xef\xbb\xbf" + "\n".join(_yaml_lines()).encode() + b"\n",
    "bom.jsonl": lambda: b"\xef\xbb\xbf" + "\n".join(_jsonl_lines()).encode() + b"\n",
    "crlf.csv": lambda: "\r\n".join(_csv_rows()).encode() + b"\r\n",
    "crlf.yaml": lambda: "\r\n".join(_yaml_lines()).encode() + b"\r\n",
    "crlf.jsonl": lambda: "\r\n".join(_jsonl_lines()).encode() + b"\r\n",
    # line 3 holds a Latin-1 "é" (0xe9): one bad line, not a bad manifest
    "latin1-line.csv": lambda: (
        "\n".join(_csv_rows()[:2]).encode()
        + b'\ncaf\xe9-1,masks/good-1.png,"'
        + TABLE_JSON.replace('"', '""').encode()
        + b'"\n'
        + _csv_rows()[2].encode()
        + b"\n"
    ),
    "latin1-line.jsonl": lambda: (
        _jsonl_line("good-1").encode()
        + b"\n"
        + _jsonl_line("caf\udce9-2").encode("utf-8", "surrogateescape")
        + b"\n"
        + _jsonl_line("good-2").encode()
        + b"\n"
    ),
    "latin1.yaml": lambda: (
        "\n".join(_yaml_lines()).encode() + b"\n  - {reference_id: caf\xe9, mask: m.png}\n"
    ),
    # one line of 10 MB: a JSON object whose label string never ends
    "long-line.jsonl": lambda: (
        _jsonl_line("good-1").encode()
        + b'\n{"reference_id": "long", "mask_url": "masks/good-1.png", "annotations": '
        + b'[{"index": 0, "label": "'
        + b"x" * (10 * 1024 * 1024)
        + b"\n"
        + _jsonl_line("good-2").encode()
        + b"\n"
    ),
    # a 10 MB cell without a closing quote or line break
    "long-line.csv": lambda: (
        "\n".join(_csv_rows()[:2]).encode()
        + b"\nlong,masks/good-1.png,"
        + b"y" * (10 * 1024 * 1024)
        + b"\n"
        + _csv_rows()[2].encode()
        + b"\n"
    ),
    "utf16.csv": lambda: "\n".join(_csv_rows()).encode("utf-16"),
    "nul-bytes.jsonl": lambda: b"\x00" * 64 + b"\n" + _jsonl_line("good-1").encode() + b"\n",
}


# -- building one case ----------------------------------------------------------------


def build_case(
    folder: Path,
    *,
    manifest: str | None = None,
    mask: str | None = None,
    reference_id: str = "bad",
    extra: str = "",
    url: Callable[[str], str] | None = None,
) -> Path:
    """Make one case in ``folder`` and return its manifest.

    ``manifest`` names a committed file in tests/hostile/ or a GENERATED one;
    ``mask`` names a MASKS entry or a special one (``symlink-loop``,
    ``directory``, ``missing``, ``no-permission``, ``url:NAME``), put in a
    YAML manifest between the good items.
    """
    folder.mkdir(parents=True, exist_ok=True)
    write_good_masks(folder)
    if manifest is not None:
        path = folder / manifest
        if manifest in GENERATED:
            path.write_bytes(GENERATED[manifest]())
        else:
            shutil.copyfile(HERE / manifest, path)
        return path
    assert mask is not None
    masks = folder / "masks"
    written = f"masks/{mask}.png"
    if mask in MASKS:
        (masks / f"{mask}.png").write_bytes(MASKS[mask]())
    elif mask == "symlink-loop":
        (masks / "loop-a.png").symlink_to(masks / "loop-b.png")
        (masks / "loop-b.png").symlink_to(masks / "loop-a.png")
        written = "masks/loop-a.png"
    elif mask == "directory":
        (masks / "directory.png").mkdir()
    elif mask == "no-permission":
        path = masks / "no-permission.png"
        path.write_bytes(gray_png(good_array()))
        path.chmod(0)
    elif mask.startswith("url:"):
        assert url is not None, "a URL case needs the url() of a local HTTP server"
        written = url(mask.removeprefix("url:"))
    elif mask != "missing":
        raise ValueError(f"unknown mask case {mask!r}")
    path = folder / "manifest.yaml"
    path.write_text(mask_manifest(written, reference_id, extra), encoding="utf-8")
    return path
