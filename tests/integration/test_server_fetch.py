"""A server given an S3 endpoint fetches s3:// masks and checks them like uploads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from segcli.server import LocalServer, ServerConfig, seed_dataset
from tests.helpers.paths import SAMPLE
from tests.helpers.pngs import gray_png
from tests.helpers.upload import KEY


@pytest.fixture(params=[False, True], ids=["lenient", "strict"])
def fetching(
    request: pytest.FixtureRequest, tmp_path: Path, s3_server: Any
) -> Iterator[tuple[str, str, Any]]:
    data_dir = tmp_path / "server"
    dataset_id = seed_dataset(data_dir, "fetch", ["good", "rgb", "gone", "value"])
    config = ServerConfig(
        data_dir=data_dir,
        api_keys=(KEY,),
        storage_options=s3_server.storage_options,
        strict_masks=request.param,
    )
    with LocalServer(config) as server:
        yield server.url, dataset_id, server


def test_remote_masks_are_fetched_and_checked(
    fetching: tuple[str, str, Any], s3_server: Any
) -> None:
    url, dataset_id, server = fetching
    strict = server.config.strict_masks
    mask = gray_png(np.array([[0, 1], [1, 0]]))
    segments = [{"label": "bg", "index": 0}, {"label": "fg", "index": 1}]
    urls = {
        "good": s3_server.put("fetch/good.png", mask),
        "rgb": s3_server.put("fetch/rgb.png", (SAMPLE / "broken" / "rgb.png").read_bytes()),
        "gone": f"s3://{s3_server.bucket}/fetch/missing.png",
        "value": s3_server.put("fetch/value.png", gray_png(np.array([[0, 2], [1, 0]]))),
    }
    body = {
        "update": False,
        "segmentations": [
            {
                "type": "mask",
                "mask_url": u,
                "annotations": segments,
                "annotation_id": None,
                "reference_id": ref,
            }
            for ref, u in urls.items()
        ],
    }
    reply = httpx.post(f"{url}/dataset/{dataset_id}/annotate", json=body, auth=(KEY, ""))
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    # A value without a segment (2 in value.png) is accepted, as the service does,
    # unless the server is strict.
    assert answer["annotations_processed"] == (1 if strict else 2)
    errors = "\n".join(answer["errors"])
    assert len(answer["errors"]) == (3 if strict else 2)
    assert "missing.png" in errors and "rgb.png" in errors
    assert ("value.png" in errors) is strict
    rows = server.store.segmentations(dataset_id)
    held = [("good", urls["good"])] + ([] if strict else [("value", urls["value"])])
    assert [(r["reference_id"], r["mask_url"]) for r in rows] == held
