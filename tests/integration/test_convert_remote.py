"""Convert to, and list masks from, s3:// and gs:// on real local servers (moto, GCS emulator)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from segcli.cli.root import app
from segcli.convert.coco import CocoPanoptic
from segcli.folder_manifest import Listing, folder_items
from segcli.manifest import load_manifest
from segcli.model import Segment
from segcli.storage import read_mask
from tests.helpers.convert import labels_of, run, write_coco
from tests.helpers.remote_servers import GcsServer, S3Server

runner = CliRunner()


def scene() -> tuple[np.ndarray, dict[int, int]]:
    ids = np.zeros((12, 16), dtype=np.uint32)
    ids[:6] = 300
    ids[6:] = 301
    ids[8:10, 2:6] = 9
    return ids, {300: 7, 301: 8, 9: 1}


@pytest.fixture(params=["s3", "gs"])
def store(request: Any, s3_server: S3Server, gcs_server: GcsServer) -> S3Server | GcsServer:
    return s3_server if request.param == "s3" else gcs_server


def test_converted_masks_land_in_the_bucket_and_resume_there(
    tmp_path: Path, store: S3Server | GcsServer
) -> None:
    scheme = "s3" if isinstance(store, S3Server) else "gs"
    prefix = f"{scheme}://{store.bucket}/{uuid.uuid4().hex[:8]}/masks"
    ids, category_of = scene()
    path = write_coco(tmp_path / "src", [("img-1", ids, category_of), ("img-2", ids, category_of)])
    options = store.storage_options
    state = str(tmp_path / "state.sqlite")
    results = run(CocoPanoptic(str(path)), prefix, storage_options=options, state_path=state)
    assert [r.state for r in results] == ["converted", "converted"]
    item = results[0].item
    assert item is not None and item.mask == f"{prefix}/img-1.png"
    data = read_mask(item.mask, storage_options=options)  # really there, read back by URL
    # An early writer took the URL for a local path and made a "gs:" folder here.
    assert not (Path.cwd() / f"{scheme}:").exists()
    local = tmp_path / "back.png"
    local.write_bytes(data)
    from dataclasses import replace

    assert (labels_of(replace(item, mask=str(local)))[8:10, 2:6] == "person").all()
    again = run(CocoPanoptic(str(path)), prefix, storage_options=options, state_path=state)
    assert [r.state for r in again] == ["skipped", "skipped"]


def test_cli_writes_a_manifest_of_remote_urls(tmp_path: Path, store: S3Server | GcsServer) -> None:
    scheme = "s3" if isinstance(store, S3Server) else "gs"
    prefix = f"{scheme}://{store.bucket}/{uuid.uuid4().hex[:8]}"
    ids, category_of = scene()
    path = write_coco(tmp_path / "src", [("img-1", ids, category_of)])
    endpoint = ["--s3-endpoint-url" if scheme == "s3" else "--gcs-endpoint-url", store.endpoint_url]
    manifest = tmp_path / "remote.jsonl"
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    result = runner.invoke(
        app,
        [
            "convert",
            "coco-panoptic",
            str(path),
            "--out",
            prefix,
            "-o",
            str(manifest),
            *endpoint,
            "--state",
            str(tmp_path / "s.sqlite"),
        ],
        env=env,
    )
    assert result.exit_code == 0, result.stdout + result.stderr
    [item] = load_manifest(manifest)
    assert item.mask == f"{prefix}/img-1.png"
    checked = runner.invoke(app, ["validate", str(manifest), *endpoint], env=env)
    assert checked.exit_code == 0, checked.stdout


def test_manifest_lists_a_bucket_prefix_and_keeps_urls(store: S3Server | GcsServer) -> None:
    folder = uuid.uuid4().hex[:8]
    for name in ("b_mask.png", "a_mask.png", "sub/c_mask.png", "readme.txt"):
        store.put(f"{folder}/{name}", b"\x89PNG\r\n\x1a\n" if name.endswith(".png") else b"x")
    scheme = "s3" if isinstance(store, S3Server) else "gs"
    root = f"{scheme}://{store.bucket}/{folder}"
    listing = Listing()
    items = list(
        folder_items(
            root,
            (Segment(0, "bg"),),
            pattern="{reference_id}_mask.png",
            storage_options=store.storage_options,
            listing=listing,
        )
    )
    assert [(i.reference_id, i.mask) for i in items] == [
        ("a", f"{root}/a_mask.png"),
        ("b", f"{root}/b_mask.png"),
        ("c", f"{root}/sub/c_mask.png"),
    ]
    assert listing.unmatched == []  # readme.txt is no PNG: not a candidate at all
