"""A real Dask cluster on 127.0.0.1 for tests: `dask scheduler` and `dask worker` processes.

    with DaskCluster(tmp_path, workers=2) as cluster:
        run segcli with --scheduler cluster.address
        cluster.kill(cluster.workers[0])       # SIGKILL: a machine lost mid-task
        cluster.add_worker()

Workers run without a nanny, so a killed worker stays dead (a nanny would
restart it) and its process is the one that ran the tasks. Their logs are
kept (``logs()``) for the tests that look for secrets in them. Every wait has
a deadline; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from tests.helpers.upload import wait_for

DASK = str(Path(sys.executable).parent / "dask")
START_S = 60.0  # a busy 2-core machine can take a while to import distributed
STOP_S = 20.0


class DaskCluster:
    def __init__(self, folder: Path, *, workers: int = 2, env: dict[str, str] | None = None):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        # The workers get no Nucleus key: they never need one.
        base = {k: v for k, v in os.environ.items() if not k.startswith(("NUCLEUS_", "SEGCLI_"))}
        base.pop("DASK_SCHEDULER_ADDRESS", None)
        self.env = {**base, **(env or {})}
        self.initial = workers
        self.processes: list[subprocess.Popen[bytes]] = []
        self.workers: list[subprocess.Popen[bytes]] = []
        self._logs: list[Path] = []
        self.address = ""
        self._client: Any = None

    def __enter__(self) -> DaskCluster:
        try:
            self._start_scheduler()
            for _ in range(self.initial):
                self.add_worker()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = self.folder / f"{name}.log"
        self._logs.append(log)
        out: IO[bytes] = log.open("wb")
        proc = subprocess.Popen(
            [DASK, *args], stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=self.folder
        )
        out.close()
        self.processes.append(proc)
        return proc

    def _start_scheduler(self) -> None:
        info = self.folder / "scheduler.json"
        self._spawn(
            "scheduler",
            [
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(info),
            ],
        )
        wait_for(lambda: _address(info) is not None, START_S)
        self.address = str(_address(info))

    def add_worker(self) -> subprocess.Popen[bytes]:
        n = len(self.workers)
        proc = self._spawn(
            f"worker-{n}",
            [
                "worker",
                self.address,
                "--name",
                f"w{n}",
                "--nthreads",
                "1",
                "--no-nanny",
                "--no-dashboard",
                "--host",
                "127.0.0.1",
            ],
        )
        self.workers.append(proc)
        self.wait_for_workers(self.alive())
        return proc

    def alive(self) -> int:
        return sum(1 for w in self.workers if w.poll() is None)

    @property
    def client(self) -> Any:
        """A Dask client of the test's own, to ask the scheduler what it knows."""
        if self._client is None:
            from distributed import Client

            self._client = Client(self.address, timeout=START_S, set_as_default=False)
        return self._client

    def wait_for_workers(self, n: int) -> None:
        wait_for(lambda: len(self.client.scheduler_info(n_workers=-1)["workers"]) == n, START_S)

    def kill(self, worker: subprocess.Popen[bytes]) -> None:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=START_S)

    def task_prefixes(self) -> list[str]:
        """The kinds of task the scheduler has run (``check_items``, ``inspect_paths``...)."""

        def prefixes(dask_scheduler: Any) -> list[str]:
            return sorted(dask_scheduler.task_prefixes)

        found: list[str] = self.client.run_on_scheduler(prefixes)
        return found

    def logs(self) -> str:
        return "\n".join(log.read_text(errors="replace") for log in self._logs if log.exists())

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        # Workers first, while their scheduler is there to hear them leave:
        # a worker whose scheduler went first waits for it a long while.
        workers = [p for p in self.processes if p in self.workers]
        others = [p for p in self.processes if p not in self.workers]
        for group in (workers, others):
            for proc in group:
                if proc.poll() is None:
                    proc.terminate()
            for proc in group:
                try:
                    proc.wait(timeout=STOP_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _address(info: Path) -> str | None:
    try:
        address = json.loads(info.read_text())["address"]
    except (OSError, ValueError, KeyError):
        return None  # not written yet, or half written
    return str(address)
