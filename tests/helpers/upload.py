"""Shared pieces of the upload tests: a seeded local server and generated masks."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from segcli.server import FaultConfig, LocalServer, ServerConfig, seed_dataset
from tests.helpers.paths import REPO

KEY = "test-key-5f1e2d"


class Nucleus:
    """A running local server with one dataset seeded with ``refs``."""

    def __init__(
        self,
        tmp: Path,
        refs: list[str],
        faults: FaultConfig | None = None,
        *,
        port: int = 0,
        start: bool = True,
        max_inflight: int | None = None,
        dataset_id: str | None = None,
        **config: Any,
    ) -> None:
        data_dir = tmp / "server"
        self.dataset_id = seed_dataset(data_dir, "test", refs, dataset_id=dataset_id)
        server_config = ServerConfig(
            data_dir=data_dir,
            port=port,
            api_keys=(KEY,),
            faults=faults or FaultConfig(),
            max_inflight=max_inflight,
            **config,
        )
        self.server = LocalServer(server_config)
        self.url = f"http://127.0.0.1:{port}/v1/nucleus"  # where it will serve
        if start:
            self.start()

    def start(self) -> str:
        """Start serving (``start=False`` seeds the dataset now and serves later)."""
        self.url = self.server.start()
        return self.url

    @property
    def store(self) -> Any:
        return self.server.store

    @property
    def capacity(self) -> Any:
        return self.server.capacity

    def rows(self, target: str | None = None) -> list[dict[str, Any]]:
        if target is None:
            return list(self.store.segmentations(self.dataset_id))
        return list(self.store.segmentations(self.dataset_id, target=target))

    def create_model(self, name: str = "m") -> str:
        reply = httpx.post(
            f"{self.url}/models/add",
            json={"name": name, "reference_id": name, "metadata": {}},
            auth=(KEY, ""),
        )
        reply.raise_for_status()
        model_id: str = reply.json()["model_id"]
        return model_id

    def stop(self) -> None:
        self.server.stop()

    def point_at(self, monkeypatch: Any) -> Nucleus:
        """Make segcli, run in this process, talk to this server with KEY."""
        monkeypatch.setenv("NUCLEUS_API_KEY", KEY)
        monkeypatch.delenv("NUCLEUS_LIMITED_ACCESS_KEY", raising=False)
        monkeypatch.setenv("NUCLEUS_ENDPOINT", self.url)
        return self


def png_bytes(seed: int, size: int = 24, values: int = 3) -> bytes:
    rng = np.random.default_rng(seed)
    # a few horizontal bands: every value present, cheap to decode
    bands = np.sort(rng.integers(0, values, size))
    bands[:values] = np.arange(values)
    arr = np.repeat(np.sort(bands)[:, None], size, axis=1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, "L").save(buf, "PNG")
    return buf.getvalue()


def make_local_manifest(folder: Path, n: int, *, values: int = 3) -> tuple[Path, list[str]]:
    """``n`` masks in ``folder/masks`` and a JSONL manifest describing them."""
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    refs = [f"img-{i:05d}" for i in range(n)]
    segments = [{"index": v, "label": f"class-{v}"} for v in range(values)]
    lines = []
    for i, ref in enumerate(refs):
        (folder / "masks" / f"{ref}.png").write_bytes(png_bytes(i, values=values))
        record = {"reference_id": ref, "mask_url": f"masks/{ref}.png", "annotations": segments}
        lines.append(json.dumps(record))
    manifest = folder / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest, refs


def segcli_process(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "segcli", *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def free_port() -> int:
    """A port nothing listens on now (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def wait_for(predicate: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def upload_args(manifest: Path, server: Nucleus, *extra: str) -> list[str]:
    """``segcli upload`` of ``manifest`` to the server's dataset, at its URL."""
    return [
        "upload",
        str(manifest),
        "--dataset",
        server.dataset_id,
        "--endpoint",
        server.url,
        *extra,
    ]
