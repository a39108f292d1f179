"""What a cluster's worker sends back for the masks it read: findings and digests, never pixels.

``check_items`` and ``inspect_paths`` are the tasks ``--scheduler`` runs on the
workers (tests/integration/test_dask.py checks that they ran there); their
results, pickled as Dask sends them, stay small however large the masks are.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from segcli.defaults import DEFAULT_MAX_PIXELS
from segcli.inspector import check_items, inspect_paths
from segcli.model import MaskItem, Segment, Source

SIZE = 512
RESULT_MAX_BYTES = 1000  # per item: a few problems, or a digest and at most 256 counts


def noisy_masks(folder: Path, n: int) -> list[Path]:
    """Masks of random pixels (values 0..2): their PNGs compress badly and stay large."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"noise-{i}.png"
        Image.fromarray(rng.integers(0, 3, (SIZE, SIZE), dtype=np.uint8), "L").save(path)
        paths.append(path)
    return paths


def test_a_worker_sends_back_findings_and_digests_not_the_masks(tmp_path: Path) -> None:
    paths = noisy_masks(tmp_path, 4)
    assert min(p.stat().st_size for p in paths) > 50_000
    # Value 2 has no segment: every item has a finding to send back.
    segments = (Segment(0, "background"), Segment(1, "car"))
    items = [
        MaskItem(reference_id=f"r{i}", mask=str(p), segments=segments, source=Source("m", i))
        for i, p in enumerate(paths)
    ]
    checked = check_items(
        items, max_pixels=DEFAULT_MAX_PIXELS, storage_options=None, on_cluster=True
    )
    assert [[p.code for p in problems] for problems in checked] == [
        ["value-without-segment"]
    ] * len(items)
    read = inspect_paths(
        [str(p) for p in paths], max_pixels=DEFAULT_MAX_PIXELS, storage_options=None
    )
    assert [answer[0] for answer in read] == [
        hashlib.sha256(p.read_bytes()).hexdigest() for p in paths
    ]
    for result in (checked, read):
        assert len(pickle.dumps(result)) < RESULT_MAX_BYTES * len(items)
