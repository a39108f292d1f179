"""Fixtures for tests that need the local Nucleus server (``segcli serve``).

``nucleus_server`` is a running ``LocalServer`` on a free port with its own
data dir; ``nucleus_url`` is its base URL; ``make_nucleus_server(**config)``
starts more (faults, auto_items, a shared data dir...). All stop at teardown.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from segcli.server import LocalServer, ServerConfig

SERVER_KEY = "server-test-key-8d2c"


@pytest.fixture
def make_nucleus_server(tmp_path: Path) -> Iterator[Callable[..., LocalServer]]:
    servers: list[LocalServer] = []

    def make(**config: Any) -> LocalServer:
        config.setdefault("data_dir", tmp_path / "nucleus")
        config.setdefault("api_keys", (SERVER_KEY,))
        server = LocalServer(ServerConfig(**config))
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def nucleus_server(make_nucleus_server: Callable[..., LocalServer]) -> LocalServer:
    return make_nucleus_server()


@pytest.fixture
def nucleus_url(nucleus_server: LocalServer) -> str:
    return nucleus_server.url


def api(server: LocalServer, **kwargs: Any) -> httpx.Client:
    """An httpx client for the server's routes, authenticated with SERVER_KEY."""
    kwargs.setdefault("auth", (SERVER_KEY, ""))
    kwargs.setdefault("timeout", 30.0)
    return httpx.Client(base_url=server.url + "/", **kwargs)


def png(
    values: Sequence[int] = (0, 1), *, mode: str = "L", size: tuple[int, int] = (8, 4)
) -> bytes:
    """A small PNG whose pixels take each of ``values`` (in row bands)."""
    from PIL import Image

    width, height = size
    image = Image.new(mode, size)
    pixels = [values[(y * len(values)) // height] for y in range(height) for _ in range(width)]
    if mode == "RGB":
        image.putdata([(v, v, v) for v in pixels])
    else:
        image.putdata(pixels)
    if mode == "P":
        image.putpalette([c for i in range(256) for c in (i, 255 - i, 0)])
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def segmentation(
    reference_id: str,
    mask_url: str,
    indices: Sequence[int] = (0, 1),
    *,
    annotation_id: str | None = None,
) -> dict[str, Any]:
    """A segmentation exactly as the official client serialises one."""
    return {
        "type": "mask",
        "mask_url": mask_url,
        "annotations": [{"label": f"class-{i}", "index": i} for i in indices],
        "annotation_id": annotation_id,
        "reference_id": reference_id,
    }


def multipart(
    segmentations: Sequence[dict[str, Any]],
    masks: Sequence[tuple[str, bytes]],
    *,
    update: bool = False,
) -> list[tuple[str, tuple[str | None, bytes | str, str]]]:
    """httpx ``files=`` for a multipart upload; file names percent-encoded like aiohttp."""
    from urllib.parse import quote

    request = json.dumps({"segmentations": list(segmentations), "update": update})
    parts: list[tuple[str, tuple[str | None, bytes | str, str]]] = [
        ("serialized_request", (None, request, "application/json"))
    ]
    parts += [("mask", (quote(name, safe=""), data, "image/png")) for name, data in masks]
    return parts


def new_dataset(client: httpx.Client, reference_ids: Sequence[str], name: str = "ds") -> str:
    """A dataset holding items with these reference_ids, made through the API."""
    reply = client.post("dataset/create", json={"name": name, "is_scene": False})
    reply.raise_for_status()
    dataset_id: str = reply.json()["dataset_id"]
    items = [
        {"reference_id": r, "image_url": f"s3://images/{i}.jpg"}
        for i, r in enumerate(reference_ids)
    ]
    if items:
        client.post(
            f"dataset/{dataset_id}/append", json={"items": items, "update": False}
        ).raise_for_status()
    return dataset_id


def wait_until(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def seeded_dataset(server: LocalServer, reference_ids: Sequence[str]) -> str:
    """A dataset made in the server's store directly: no request, so no fault."""
    from segcli.server.store import NewItem, placeholder_image_url

    dataset_id = server.store.create_dataset("seeded")
    items = [NewItem(r, placeholder_image_url(r), {}) for r in reference_ids]
    with server.store.transaction() as conn:
        server.store.append_items(conn, dataset_id, items, update=False)
    return dataset_id
