"""Where masks are read and inspected: worker processes here, or a Dask cluster.

    workers = open_workers("process", 4, scheduler=None)   # or "tcp://host:8786", "local"
    loop.run_in_executor(workers.executor, check_items, items)
    workers.close()

``validate``, ``upload`` and ``convert`` see only ``Workers``: an
``Executor`` that runs the worker functions of ``inspector``, how many tasks
run at once (the windows of work in flight follow it), and whether the
workers are near the data rather than beside this process (a cluster reads
each mask itself, and only findings and digests come back). The sending, and
the journal, stay in this process either way.
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Protocol

from segcli.pool import PoolKind, local_pool


class Workers(Protocol):
    @property
    def executor(self) -> Executor | None:
        """Runs the worker functions; ``None`` runs them inline, in the caller's thread."""

    @property
    def slots(self) -> int:
        """Tasks that run at once (at least 1)."""

    @property
    def near_data(self) -> bool:
        """True when the workers read every mask themselves (no bytes are sent to them)."""

    def close(self) -> None: ...


def open_workers(kind: PoolKind, workers: int, scheduler: str | None = None) -> Workers:
    """The local pool of ``workers`` (``kind``), or, given ``scheduler``, a Dask cluster:
    a scheduler's address, or ``"local"`` for a ``LocalCluster`` of ``workers`` processes.
    Raises ``ClusterError`` (exit 2) when the cluster cannot be used."""
    if scheduler:
        from segcli.cluster import connect

        return connect(scheduler, workers=workers)
    return local_pool(kind, workers)
