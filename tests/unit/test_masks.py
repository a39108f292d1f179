"""segcli.storage and segcli.png: reading local masks and inspecting PNG bytes."""

from __future__ import annotations

import io
import os
import pickle
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from segcli.defaults import DEFAULT_MAX_PIXELS
from segcli.png import MaskFormatError, MaskInfo, inspect_png
from segcli.storage import MaskReadError, read_mask
from tests.helpers.pngs import (
    IEND,
    SIGNATURE,
    assemble,
    chunk,
    find,
    gray_png,
    ihdr,
    interlaced_gray_png,
    interlaced_png,
    palette_png,
    raw_gray_png,
    saved,
    smooth_regions,
    split_idat,
    unique_counts,
)
from tests.helpers.privileges import python_unprivileged


def format_error(data: bytes, **kwargs: int) -> MaskFormatError:
    with pytest.raises(MaskFormatError) as caught:
        inspect_png(data, **kwargs)
    return caught.value


MASK = smooth_regions(96, regions=7, seed=3)


# --------------------------------------------------------------------------
# read_mask, local


def test_reads_a_local_path_and_a_file_uri(tmp_path: Path) -> None:
    data = gray_png(MASK)
    path = tmp_path / "a mask.png"
    path.write_bytes(data)
    assert read_mask(str(path)) == data
    assert read_mask(f"file://{path}") == data
    assert read_mask(f"FILE://{path}") == data


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(MaskReadError) as caught:
        read_mask(str(tmp_path / "nope.png"))
    assert "no such file" in caught.value.message
    assert "nope.png" in caught.value.message


def test_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MaskReadError, match="is a folder"):
        read_mask(str(tmp_path))


def test_symlink_loop_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.png").symlink_to(tmp_path / "b.png")
    (tmp_path / "b.png").symlink_to(tmp_path / "a.png")
    with pytest.raises(MaskReadError, match="symbolic link loop"):
        read_mask(str(tmp_path / "a.png"))


def test_path_through_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(MaskReadError, match="not a folder"):
        read_mask(str(tmp_path / "file" / "mask.png"))


def test_unreadable_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret.png"
    path.write_bytes(gray_png(MASK))
    path.chmod(0)
    # In a process that cannot read it even when the tests run as root.
    code = (
        "import sys\n"
        "from segcli.storage import MaskReadError, read_mask\n"
        "try:\n"
        "    read_mask(sys.argv[1])\n"
        "except MaskReadError as exc:\n"
        "    print(exc.message)\n"
    )
    done = python_unprivileged(code, str(path))
    assert done.returncode == 0, done.stderr
    assert "permission denied; make the file readable" in done.stdout


def test_permission_error_is_explained(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Root (as in CI containers) reads any file, so the error is raised by hand.
    def refuse(path: str, flags: int) -> int:
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(MaskReadError, match="permission denied; make the file readable"):
        read_mask(str(tmp_path / "m.png"))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    # Without O_NONBLOCK this open would wait forever for a writer.
    with pytest.raises(MaskReadError, match="not a regular file"):
        read_mask(str(fifo))


def test_file_over_max_bytes_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(b"\0" * 1000)
    assert len(read_mask(str(path), max_bytes=1000)) == 1000
    with pytest.raises(MaskReadError, match="1,000 bytes, more than the 999"):
        read_mask(str(path), max_bytes=999)


def test_unknown_scheme_is_a_read_error() -> None:
    with pytest.raises(MaskReadError, match=r"unknown scheme nosuchproto://"):
        read_mask("nosuchproto://bucket/mask.png")


def test_local_reads_import_neither_fsspec_nor_pillow(tmp_path: Path) -> None:
    path = tmp_path / "m.png"
    path.write_bytes(gray_png(MASK))
    code = (
        "import sys\n"
        "from segcli.storage import read_mask\n"
        "import segcli.checks\n"
        f"assert read_mask({str(path)!r})[:8] == b'\\x89PNG\\r\\n\\x1a\\n'\n"
        f"assert read_mask({'file://' + str(path)!r})\n"
        "heavy = {'fsspec', 'PIL', 'numpy', 'aiohttp'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------
# inspect_png, accepted masks


def test_gray_mask_counts_every_value() -> None:
    info = inspect_png(gray_png(MASK))
    assert info == MaskInfo(
        width=96, height=96, mode="L", counts=unique_counts(MASK), palette=False
    )
    assert sum(info.counts.values()) == 96 * 96


@pytest.mark.parametrize("kind", ["regions", "noise", "one value"])
def test_large_gray_masks_count_as_numpy_does(kind: str) -> None:
    # Regions are counted run by run, noise pixel by pixel: both must agree with numpy.
    rng = np.random.default_rng(5)
    if kind == "regions":
        rows, cols = np.indices((512, 640))
        array = ((rows // 37 * 7 + cols // 53) % 23).astype(np.uint8)
    elif kind == "noise":
        array = rng.integers(0, 256, (512, 640), dtype=np.uint8)
    else:
        array = np.full((512, 640), 200, np.uint8)
    info = inspect_png(gray_png(array))
    assert info.counts == unique_counts(array)
    assert (info.width, info.height) == (640, 512)


def test_non_square_mask_keeps_width_and_height_apart() -> None:
    array = np.zeros((3, 5), np.uint8)
    array[2, 4] = 9
    info = inspect_png(gray_png(array))
    assert (info.width, info.height) == (5, 3)
    assert info.counts == {0: 14, 9: 1}


def test_palette_mask_counts_indices_not_colours() -> None:
    info = inspect_png(palette_png(MASK))
    assert info.mode == "P"
    assert info.palette is True
    # The palette draws index i as gray 255 - i: the counts must be of i.
    assert info.counts == unique_counts(MASK)


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_low_bit_depth_palette_indices_are_unscaled(depth: int) -> None:
    array = (np.arange(96 * 96).reshape(96, 96) % (1 << depth)).astype(np.uint8)
    info = inspect_png(raw_gray_png(array, depth=depth, colour=3))
    assert info.counts == unique_counts(array)
    assert max(info.counts) == (1 << depth) - 1


def test_pillow_four_bit_palette_mask() -> None:
    array = (MASK % 16).astype(np.uint8)
    data = palette_png(array, bits=4)
    assert data[24] == 4  # IHDR bit depth: Pillow really wrote 4 bits
    assert inspect_png(data).counts == unique_counts(array)


def test_interlaced_mask_matches_the_plain_one() -> None:
    data = interlaced_gray_png(MASK)
    assert data[28] == 1  # IHDR interlace method: Adam7
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), MASK)
    assert inspect_png(data).counts == unique_counts(MASK)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (9, 13)])
def test_interlaced_tiny_masks_with_empty_passes(shape: tuple[int, int]) -> None:
    array = np.arange(shape[0] * shape[1], dtype=np.uint8).reshape(shape)
    assert inspect_png(interlaced_gray_png(array)).counts == unique_counts(array)


@pytest.mark.parametrize("depth", [1, 2, 4, 8])
@pytest.mark.parametrize("shape", [(13, 11), (1, 5), (3, 17)])
def test_interlaced_palette_masks_of_every_depth(depth: int, shape: tuple[int, int]) -> None:
    array = np.random.default_rng(depth).integers(0, 1 << depth, shape).astype(np.uint8)
    info = inspect_png(interlaced_png(array, depth=depth, colour=3))
    assert info.counts == unique_counts(array)
    assert info.palette


def test_image_data_split_over_many_chunks() -> None:
    data = split_idat(gray_png(MASK), 17)
    assert len([1 for i in range(len(data)) if data[i : i + 4] == b"IDAT"]) > 5
    assert inspect_png(data).counts == unique_counts(MASK)


def test_bytes_after_the_end_chunk_are_ignored() -> None:
    assert inspect_png(gray_png(MASK) + b"trailing junk").counts == unique_counts(MASK)


def test_does_not_depend_on_pillows_global_pixel_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a DecompressionBombWarning would fail here
        assert inspect_png(gray_png(MASK)).counts == unique_counts(MASK)


def test_leaves_pillow_globals_alone() -> None:
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    inspect_png(gray_png(MASK))
    with pytest.raises(MaskFormatError):
        inspect_png(gray_png(MASK)[:-30])
    assert before == (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


# --------------------------------------------------------------------------
# inspect_png, refused modes


@pytest.mark.parametrize(
    ("mode", "says"),
    [
        ("RGB", "map each colour to its class index"),
        ("RGBA", "alpha is dropped"),
        ("LA", "getchannel('L')"),
        ("I;16", "16-bit"),
        ("1", "1-bit"),
    ],
)
def test_multi_channel_and_odd_depth_masks_say_what_to_do(mode: str, says: str) -> None:
    data = saved(Image.new(mode, (8, 4)))
    error = format_error(data)
    assert error.code == "mask-mode"
    assert says in error.message
    assert "one 8-bit channel" in error.message


def test_sixteen_bit_gray_from_numpy() -> None:
    array = np.full((4, 4), 300, np.uint16)
    error = format_error(saved(Image.fromarray(array)))
    assert error.code == "mask-mode"
    assert "astype(np.uint8)" in error.message


@pytest.mark.parametrize(("depth", "colour"), [(2, 0), (4, 0), (16, 2), (16, 4), (16, 6)])
def test_crafted_modes_pillow_would_misread(depth: int, colour: int) -> None:
    data = SIGNATURE + ihdr(4, 4, depth, colour) + chunk(b"IDAT", zlib.compress(b"")) + IEND
    assert format_error(data).code == "mask-mode"


def test_rgb_colour_coded_mask_message_names_convert() -> None:
    error = format_error(saved(Image.new("RGB", (2, 2), (255, 0, 0))))
    assert "Image.open(p).convert('L')" in error.message


# --------------------------------------------------------------------------
# inspect_png, not a PNG


def test_zero_bytes_is_not_a_png() -> None:
    error = format_error(b"")
    assert error.code == "mask-not-png"
    assert "empty" in error.message


def test_jpeg_is_named_as_such() -> None:
    error = format_error(saved(Image.fromarray(MASK), "JPEG"))
    assert error.code == "mask-not-png"
    assert "JPEG" in error.message
    assert "judged by content" in error.message


def test_jpeg_named_png_is_judged_by_content(tmp_path: Path) -> None:
    path = tmp_path / "mask.png"
    path.write_bytes(saved(Image.fromarray(MASK), "JPEG"))
    assert "JPEG" in format_error(read_mask(str(path))).message


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"\n  <!DOCTYPE html><html><body>Sign in</body></html>", "HTML page"),
        (b"<?xml version='1.0'?><Error><Code>AccessDenied</Code></Error>", "XML"),
        (b'{"error": "expired"}', "JSON"),
        (b"\x93NUMPY\x01\x00v\x00{'descr'", "NumPy"),
        (b"GIF89a\x01\x00\x01\x00", "GIF"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "WebP"),
        (b"\x00\x01\x02\x03", "unknown content (first bytes: 00 01 02 03)"),
    ],
)
def test_other_content_is_described(data: bytes, kind: str) -> None:
    error = format_error(data)
    assert error.code == "mask-not-png"
    assert kind in error.message


def test_gif_bmp_tiff_from_pillow_are_not_png() -> None:
    for fmt in ("GIF", "BMP", "TIFF"):
        error = format_error(saved(Image.fromarray(MASK), fmt))
        assert error.code == "mask-not-png"
        assert fmt in error.message


def test_text_mode_transfer_is_a_damaged_signature() -> None:
    data = gray_png(MASK).replace(b"\r\n", b"\n", 1)
    error = format_error(data)
    assert error.code == "mask-corrupt"
    assert "text-mode" in error.message


# --------------------------------------------------------------------------
# inspect_png, damaged PNGs


@pytest.mark.parametrize("cut", [10, 33, 40, -40, -13, -1])
def test_truncated_png_is_corrupt(cut: int) -> None:
    data = gray_png(MASK)
    error = format_error(data[:cut])
    assert error.code == "mask-corrupt"
    assert "truncated" in error.message


def test_flipped_crc_byte_is_caught_even_though_pillow_loads_it() -> None:
    data = bytearray(gray_png(MASK))
    pos, length = find(bytes(data), b"IDAT")
    data[pos + 8 + length] ^= 0x01  # first byte of the IDAT chunk's CRC
    # Pillow alone decodes this file happily: the check is segcli's own.
    Image.open(io.BytesIO(bytes(data))).load()
    error = format_error(bytes(data))
    assert error.code == "mask-corrupt"
    assert "CRC mismatch in the IDAT chunk" in error.message


def test_flipped_header_crc_is_caught() -> None:
    data = bytearray(gray_png(MASK))
    data[30] ^= 0xFF
    assert "IHDR" in format_error(bytes(data)).message


def test_damaged_zlib_stream_with_valid_crc_is_corrupt() -> None:
    data = gray_png(MASK)
    pos, length = find(data, b"IDAT")
    garbage = bytes((i * 151 + 7) % 256 for i in range(length))
    damaged = data[:pos] + chunk(b"IDAT", garbage) + data[pos + 12 + length :]
    error = format_error(damaged)
    assert error.code == "mask-corrupt"
    assert "cannot be decoded" in error.message


def test_too_few_rows_of_image_data_is_corrupt() -> None:
    # A complete zlib stream holding 3 of the 8 rows the header promises:
    # Pillow alone pads the rest silently.
    rows = b"".join(b"\x00" + bytes([7] * 8) for _ in range(3))
    data = assemble(ihdr(8, 8), rows)
    Image.open(io.BytesIO(data)).load()
    error = format_error(data)
    assert error.code == "mask-corrupt"
    assert "ends before the last row" in error.message


@pytest.mark.parametrize("shape", [(8, 8), (9, 5), (1, 9), (1, 1)])
def test_interlaced_image_data_that_ends_early_is_corrupt(shape: tuple[int, int]) -> None:
    full = interlaced_gray_png(np.full(shape, 9, np.uint8))
    pos, length = find(full, b"IDAT")
    scanlines = zlib.decompress(full[pos + 8 : pos + 8 + length])
    data = assemble(ihdr(shape[1], shape[0], interlace=1), scanlines[:-2])
    error = format_error(data)
    assert error.code == "mask-corrupt"
    assert "truncated" in error.message


def test_stream_cut_inside_deflate_data_is_corrupt() -> None:
    data = gray_png(MASK)
    pos, length = find(data, b"IDAT")
    short = data[pos + 8 : pos + 8 + length // 2]
    damaged = data[:pos] + chunk(b"IDAT", short) + data[pos + 12 + length :]
    error = format_error(damaged)
    assert error.code == "mask-corrupt"
    assert "not enough image data" in error.message


@pytest.mark.parametrize("last", [0, 255])
@pytest.mark.parametrize("interlaced", [False, True])
def test_masks_whose_last_row_is_uniform_are_fine(last: int, interlaced: bool) -> None:
    array = MASK.copy()
    array[-2:] = last
    data = interlaced_gray_png(array) if interlaced else gray_png(array)
    assert inspect_png(data).counts == unique_counts(array)


def test_one_pixel_masks_of_every_value_are_fine() -> None:
    for value in (0, 1, 254, 255):
        one = np.full((1, 1), value, np.uint8)
        assert inspect_png(gray_png(one)).counts == {value: 1}
        assert inspect_png(interlaced_gray_png(one)).counts == {value: 1}


def test_no_image_data_is_corrupt() -> None:
    data = SIGNATURE + ihdr(4, 4) + IEND
    assert "no image data" in format_error(data).message


def test_palette_without_palette_chunk_is_corrupt() -> None:
    data = assemble(ihdr(2, 2, 8, 3), b"\x00\x00\x00" * 2)
    assert "PLTE" in format_error(data).message


@pytest.mark.parametrize(
    "header",
    [
        ihdr(4, 4, 3, 0),  # bit depth 3 does not exist
        ihdr(4, 4, 8, 5),  # nor does colour type 5
        ihdr(0, 4),  # empty image
        ihdr(4, 4, interlace=2),
        chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 0, 1, 0, 0)),  # compression 1
        chunk(b"IHDX", struct.pack(">IIBBBBB", 4, 4, 8, 0, 0, 0, 0)),
    ],
)
def test_invalid_headers_are_corrupt(header: bytes) -> None:
    data = SIGNATURE + header + chunk(b"IDAT", zlib.compress(b"\0" * 20)) + IEND
    assert format_error(data).code == "mask-corrupt"


def test_damaged_chunk_header_is_corrupt() -> None:
    data = gray_png(MASK)
    pos, _ = find(data, b"IDAT")
    damaged = data[:pos] + b"\x00\x00\x00\x01\x00\x00\x00\x00" + data[pos + 8 :]
    assert "damaged chunk header" in format_error(damaged).message


# --------------------------------------------------------------------------
# inspect_png, size limit


def huge_header_png(width: int, height: int) -> bytes:
    # A valid header and a tiny valid IDAT: only the claimed size is large.
    return SIGNATURE + ihdr(width, height) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + IEND


def test_header_claiming_ten_billion_pixels_is_refused_before_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("the pixel data must not be decoded")

    monkeypatch.setattr(Image, "frombytes", no_decoding)
    monkeypatch.setattr(Image, "new", no_decoding)
    error = format_error(huge_header_png(100_000, 100_000))
    assert error.code == "mask-too-large"
    assert "100000x100000 = 10,000,000,000 pixels" in error.message
    assert f"{DEFAULT_MAX_PIXELS:,}" in error.message


def test_pixel_limit_is_configurable() -> None:
    data = gray_png(np.zeros((10, 10), np.uint8))
    assert inspect_png(data, max_pixels=100).counts == {0: 100}
    assert format_error(data, max_pixels=99).code == "mask-too-large"


def test_limit_applies_to_width_times_height() -> None:
    assert format_error(huge_header_png(1, DEFAULT_MAX_PIXELS + 1)).code == "mask-too-large"
    assert format_error(huge_header_png(2**31 - 1, 2**31 - 1)).code == "mask-too-large"


def test_format_error_survives_pickling() -> None:
    error = format_error(b"")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.code, copy.message) == (error.code, error.message)
    read_error = pickle.loads(pickle.dumps(MaskReadError("gone")))
    assert read_error.message == "gone"
