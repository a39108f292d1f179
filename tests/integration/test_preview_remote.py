"""segcli preview with the item's image (and mask) on real storage servers: S3 (moto) and a
signed HTTP URL; the image panel holds the image's pixels, the blend half of each."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from segcli.picture import label_colour
from segcli.preview import PAD_PX
from tests.helpers.pngs import gray_png
from tests.helpers.remote_servers import S3Server, SignedUrlServer

runner = CliRunner()
IMAGE_RGB = (30, 200, 90)
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def image_bytes(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, IMAGE_RGB).save(out, "PNG")  # lossless: the exact colour is drawn
    return out.getvalue()


def mask() -> np.ndarray:
    values = np.zeros((120, 160), np.uint8)
    values[:, 80:] = 1
    return values


def panels(path: Path) -> tuple[int, int, int]:
    """Pixels of the three panels (left of the legend, whose swatches share the colours) in:
    the image's own colour, the left label's colour, their blend."""
    with Image.open(path) as opened:
        pixels = np.asarray(opened.convert("RGB")).astype(int)
    pixels = pixels[:, : PAD_PX + 3 * (160 + PAD_PX)]
    blend = (np.array(label_colour("sky")) * 0.5 + np.array(IMAGE_RGB) * 0.5).astype(int)

    def count(colour: object) -> int:
        return int(np.all(np.abs(pixels - np.asarray(colour)) <= 1, axis=2).sum())

    return count(IMAGE_RGB), count(label_colour("sky")), count(blend)


def preview(tmp_path: Path, manifest: str, *extra: str) -> Path:
    from segcli.cli.root import app

    (tmp_path / "m.yaml").write_text(manifest)
    out = tmp_path / "p.png"
    done = runner.invoke(
        app, ["preview", str(tmp_path / "m.yaml"), "remote-1", "-o", str(out), *extra], env=AWS
    )
    assert done.exit_code == 0, done.output
    assert "warning" not in done.output and "error" not in done.output
    return out


def test_mask_and_image_both_in_s3(tmp_path: Path, s3_server: S3Server) -> None:
    folder = uuid.uuid4().hex[:8]
    mask_uri = s3_server.put(f"{folder}/m.png", gray_png(mask()))
    image_uri = s3_server.put(f"{folder}/i.png", image_bytes((160, 120)))
    out = preview(
        tmp_path,
        "segments: [{index: 0, label: sky}, {index: 1, label: road}]\n"
        f"items: [{{reference_id: remote-1, mask: '{mask_uri}', image: '{image_uri}'}}]\n",
        "--s3-endpoint-url",
        s3_server.endpoint_url,
    )
    image, sky, blend = panels(out)
    assert image == 160 * 120  # the image panel, drawn 1:1
    assert sky == 80 * 120 and blend == 80 * 120  # the left half, as itself and blended


def test_a_local_mask_with_its_image_at_a_signed_url(
    tmp_path: Path, signed_url_server: SignedUrlServer
) -> None:
    (tmp_path / "m.png").write_bytes(gray_png(mask()))
    target = f"/{uuid.uuid4().hex[:8]}/i.png?X-Amz-Signature=ab%2Fcd&X-Amz-Expires=60"
    # half the mask's size: stretched to it, and said so
    url = signed_url_server.put(target, image_bytes((80, 60)))
    (tmp_path / "m.yaml").write_text(
        "segments: [{index: 0, label: sky}, {index: 1, label: road}]\n"
        f"items: [{{reference_id: remote-1, mask: m.png, image: '{url}'}}]\n"
    )
    from segcli.cli.root import app

    out = tmp_path / "p.png"
    done = runner.invoke(app, ["preview", str(tmp_path / "m.yaml"), "remote-1", "-o", str(out)])
    assert done.exit_code == 0, done.output
    assert "warning [size-mismatch] the image is 80x60 but the mask 160x120" in done.stdout
    image, sky, blend = panels(out)
    assert image == 160 * 120 and sky == 80 * 120 and blend == 80 * 120
    assert signed_url_server.lines_for(target.split("?")[0]) == [
        f"GET {target} HTTP/1.1\r\n".encode()  # byte for byte, as signed
    ]
