"""The `make bench` dask row: validate on 4 local Dask workers against the local pool.

The same 2,000 masks as the first validate row (1024x1024, smooth regions),
checked by ``segcli validate --scheduler local --workers 4`` (a LocalCluster
of 4 one-thread worker processes, each reading and inspecting its masks) and
by ``segcli validate`` at its defaults (the local pool, one process a core).
Both are timed as whole processes, the cluster's start-up included, in turns.

The row is informational: on a machine with fewer cores than workers the
cluster cannot be faster than the pool, and pays for its scheduler and the
hand-offs. What it shows is that the cluster path checks every mask at full
size and what that costs; the gain of ``--scheduler`` comes from workers on
other machines, near the data. ``b`` is the bench script (``scripts/bench.py``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

DASK_WORKERS = 4
RUNS = 3  # alternating runs per side; medians are reported
COUNT = 2000
FEW = 8


def _commands(b: Any, manifest: Path) -> tuple[list[str], list[str]]:
    """``segcli validate`` on the local pool at its defaults, and on the LocalCluster."""
    pool = [b.PY, "-m", "segcli", "validate", str(manifest), "--json"]
    return pool, [*pool, "--scheduler", "local", "--workers", str(DASK_WORKERS)]


def _lines(manifest: Path, n: int) -> list[dict[str, object]]:
    with manifest.open() as fh:
        return [json.loads(next(fh)) for _ in range(n)]


def bench(b: Any) -> Any:
    # Both sides choose where masks go from their flags alone.
    for name in ("DASK_SCHEDULER_ADDRESS", "SEGCLI_SCHEDULER", "SEGCLI_WORKERS"):
        os.environ.pop(name, None)
    paths = b.masks(b.WORK / "masks1024", COUNT, 1024, "regions")
    manifest, _ = b.manifest_for(paths, b.WORK / "masks1024.jsonl", prefix="v", values=b.REGIONS)
    pool, cluster = _commands(b, manifest)
    for command in (pool, cluster):
        summary = json.loads(b.timed(command)[1])
        assert summary["items"] == COUNT and summary["ok"] == COUNT, summary
    pool_s, cluster_s = b.median_times(pool, cluster, RUNS)
    # What the cluster costs before its first mask: the same runs on a few masks.
    few = b.write_jsonl(b.WORK / "masks1024-few.jsonl", _lines(manifest, FEW))
    few_pool_s, few_cluster_s = b.median_times(*_commands(b, few), RUNS)
    return b.Row(
        f"validate 2,000 masks 1024x1024 on {DASK_WORKERS} local Dask workers",
        "masks/s",
        COUNT / cluster_s,
        COUNT / pool_s,
        pool_s / cluster_s,
        "none (info)",
        None,
        f"baseline: the local pool at its defaults ({b.WORKERS} processes), the same masks; "
        f"--scheduler local --workers {DASK_WORKERS}, the LocalCluster's start-up included; "
        f"medians of {RUNS} alternating runs; on {FEW} masks (start-up, Dask's imports, "
        f"the cluster's scheduler and workers) the cluster takes {few_cluster_s:.2f} s, "
        f"the pool {few_pool_s:.2f} s. Informational, no target: {DASK_WORKERS} "
        f"workers on {b.WORKERS} cores cannot beat a pool that already uses every core; "
        "the row shows the cluster path checking every mask at full size and its cost, "
        "the gain of --scheduler being workers on more machines, near the data",
    )
