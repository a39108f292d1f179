"""Inspect masks on threads in runs made inside the test process (no worker start-up per run).

inspect_on_threads(monkeypatch)
"""

from __future__ import annotations

from concurrent.futures import Executor, ThreadPoolExecutor

import pytest


def inspect_on_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """validate and upload get their pool from ``segcli.pool.local_pool``: make it threads,
    and check that they do (a patch that stopped reaching them would pass silently)."""
    import segcli.pool
    from segcli.pool import make_executor
    from segcli.workers import open_workers

    def threads(_kind: str, workers: int) -> Executor | None:
        return make_executor("thread", workers)

    monkeypatch.setattr(segcli.pool, "make_executor", threads)
    workers = open_workers("process", 1)
    try:
        assert isinstance(workers.executor, ThreadPoolExecutor)
    finally:
        workers.close()
