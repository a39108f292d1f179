"""Masks read and inspected on a Dask cluster (``--scheduler``; the ``segcli[dask]`` extra).

    cluster = connect("tcp://10.0.0.5:8786", workers=4)   # or connect("local", workers=4)
    loop.run_in_executor(cluster.executor, check_items, items)
    cluster.close()

A ``Cluster`` is a ``segcli.workers.Workers``: the same worker functions the
local pool runs go to the cluster's workers, which read each mask where it
lives (near the data) and send back findings and digests only. The API key
never goes: a task carries its items, the pixel limit and the storage options.
Dask itself reschedules the tasks of a worker that dies. Dask is imported
here only, when a scheduler is asked for, so ``segcli --help`` stays light.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future, InvalidStateError
from typing import Any, TypeVar

from segcli.errors import ClusterError
from segcli.pool import bare_main, init_worker

#: ``--scheduler local``: a LocalCluster of ``--workers`` processes on this machine
LOCAL = "local"
#: How long reaching the scheduler, and its first worker, may take: a scheduler
#: that accepts the connection but never answers would otherwise hang the run.
CONNECT_TIMEOUT_S = 10.0
DEFAULT_PORT = 8786
#: How long a LocalCluster's worker may take to finish its task when the run
#: stops (Ctrl-C, an error) before it is killed: Dask's own grace is 4 s.
LOCAL_STOP_S = 0.5
INSTALL_HINT = "install the extra: pip install 'segcli[dask]'"

T = TypeVar("T")


class Cluster:
    """A Dask client (and the LocalCluster it owns, for ``local``) as ``Workers``."""

    near_data = True

    def __init__(self, client: Any, address: str, *, owned: Any = None, quiet: Any = None) -> None:
        self._client = client
        self._owned = owned
        self._quiet = quiet or contextlib.ExitStack()
        self.address = address
        self.slots = max(1, sum(client.nthreads().values()))
        self.executor: Executor = _OnCluster(client, address)

    def close(self) -> None:
        try:
            self._client.close()
            if self._owned is not None:
                _stop_local(self._owned)
        finally:
            self._quiet.close()


def connect(address: str, *, workers: int) -> Cluster:
    """The cluster at ``address`` (``tcp://host:port``, ``host:port``, ``tls://...``),
    or a new LocalCluster of ``workers`` processes for ``"local"``. Raises
    ``ClusterError`` when Dask is not installed, the scheduler cannot be reached
    within ``CONNECT_TIMEOUT_S``, or it has no worker."""
    try:
        import distributed as dask_distributed
    except ImportError:
        raise ClusterError(
            f"--scheduler {address}: Dask is not installed", hint=INSTALL_HINT
        ) from None
    distributed: Any = dask_distributed  # untyped: its calls are checked by the tests
    address = address.strip()
    # The core reports through return values and errors, never on stderr: what
    # Dask's client would log there (a lost scheduler's reconnect tracebacks)
    # reaches the caller as a ClusterError. Its handlers are restored on close.
    quiet = contextlib.ExitStack()
    quiet.enter_context(distributed.utils.silence_logging_cmgr(logging.CRITICAL))
    try:
        client, owned = (
            _local(distributed, workers) if address == LOCAL else _remote(distributed, address)
        )
    except BaseException:
        quiet.close()
        raise
    return Cluster(client, address, owned=owned, quiet=quiet)


def _remote(distributed: Any, address: str) -> tuple[Any, None]:
    _probe(address)
    client = _within(
        CONNECT_TIMEOUT_S,
        lambda: distributed.Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False),
        address,
    )
    try:
        client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
    except Exception:
        client.close()
        raise ClusterError(
            f"the Dask scheduler at {address} has no workers (none joined within "
            f"{CONNECT_TIMEOUT_S:g} s)",
            hint=f"start some where the masks are: dask worker {address}",
        ) from None
    return client, None


def _local(distributed: Any, workers: int) -> tuple[Any, Any]:
    # Worker processes are spawned: they must not re-run the caller's script.
    with bare_main():
        cluster = distributed.LocalCluster(
            n_workers=max(1, workers),
            threads_per_worker=1,  # decoding holds the GIL: processes, not threads
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            # What goes wrong in a task comes back to the run as its error; Dask's own
            # lines (a heartbeat that races the close) would only be noise on stderr.
            silence_logs=logging.CRITICAL,
            preload=[__name__],  # dask_setup below, in each worker process
        )
    client = distributed.Client(cluster, set_as_default=False)
    return client, cluster


def _stop_local(cluster: Any) -> None:
    """Close a LocalCluster without waiting out a task that is still running.

    A worker asked to close waits for its running task (a mask being read can
    take long) for Dask's default 4 s before its nanny kills it; nothing of
    that task is wanted any more, and Ctrl-C must stop the run within 2 s.
    An idle worker closes in well under ``LOCAL_STOP_S``.
    """

    async def stop_workers() -> None:
        nannies = list(cluster.workers.values())
        await asyncio.gather(*(n.close(timeout=LOCAL_STOP_S) for n in nannies))

    with contextlib.suppress(Exception):  # whatever is left, cluster.close ends
        cluster.sync(stop_workers)
    cluster.close()


def dask_setup(worker: Any) -> None:
    """Run by each worker process of a LocalCluster as it starts (Dask's preload hook).

    As the local pool's workers do: Ctrl-C, which reaches the whole process
    group, is the parent's to handle (it closes the cluster), and a worker
    whose parent was SIGKILLed exits instead of waiting for work forever.
    """
    init_worker()


def _probe(address: str) -> None:
    """Fail at once, naming the address, when nothing listens there or the host is unknown
    (Dask itself would keep retrying until its timeout)."""
    scheme, _, rest = address.rpartition("://")
    if scheme not in ("", "tcp", "tls"):
        return  # websockets, UCX...: Dask's own connect decides
    host, port = _host_port(address, rest)
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except ConnectionRefusedError:
        why = "nothing listens there (connection refused)"
    except socket.gaierror:
        why = f"cannot resolve the host {host!r}"
    except TimeoutError:
        why = f"no answer within {CONNECT_TIMEOUT_S:g} s"
    except OSError as exc:
        why = exc.strerror or str(exc)
    else:
        return
    raise _unreachable(address, why)


def _host_port(address: str, rest: str) -> tuple[str, int]:
    host, sep, port_text = rest.rpartition(":")
    if not sep or "]" in port_text:  # no port, or a bare IPv6 address in brackets
        host, port_text = rest, str(DEFAULT_PORT)
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not host or not 0 < port < 65536:
        raise ClusterError(
            f"--scheduler {address}: not a scheduler address",
            hint="write tcp://HOST:PORT (Dask's default port is 8786), or local",
        )
    return host, port


def _unreachable(address: str, why: str) -> ClusterError:
    return ClusterError(
        f"cannot reach the Dask scheduler at {address}: {why}",
        hint="check the address (--scheduler, DASK_SCHEDULER_ADDRESS) and that "
        "`dask scheduler` runs there; --scheduler local runs a cluster on this machine",
    )


def _within(seconds: float, make: Callable[[], T], address: str) -> T:
    """``make()``, given ``seconds`` (plus a second) before it counts as unreachable.

    Dask's connect bounds the TCP connection but not the handshake after it: a
    listener that never speaks (a wrong port, a stuck scheduler) would block
    forever. The attempt runs on a thread of its own; one that succeeds after
    the deadline closes what it made.
    """
    done = threading.Event()
    lock = threading.Lock()
    got: dict[str, Any] = {}

    def attempt() -> None:
        try:
            value: Any = make()
        except BaseException as exc:
            got["error"] = exc
        else:
            with lock:
                if got.get("late"):
                    value.close()
                    return
                got["value"] = value
        finally:
            done.set()

    threading.Thread(target=attempt, name="segcli-dask-connect", daemon=True).start()
    finished = done.wait(seconds + 1.0)
    with lock:
        if not finished or ("value" not in got and "error" not in got):
            got["late"] = True
            raise _unreachable(address, f"no answer within {seconds:g} s")
    if "error" in got:
        error = got["error"]
        raise _unreachable(address, str(error) or type(error).__name__) from None
    value: T = got["value"]
    return value


class _OnCluster(Executor):
    """``concurrent.futures`` on a Dask client, which is what ``run_in_executor`` needs.

    Dask's own ``ClientExecutor`` reports a task lost with the scheduler as a
    cancellation, which asyncio would take for Ctrl-C; here it fails with a
    ``ClusterError`` naming the cluster, and so does a task that killed its
    workers or that the workers cannot unpickle (segcli missing there).
    """

    def __init__(self, client: Any, address: str) -> None:
        self._client = client
        self._address = address

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        done: Future[T] = Future()
        task = self._client.submit(fn, *args, pure=False, **kwargs)

        def settle(task: Any) -> None:  # on a thread of the Dask client
            if done.cancelled():
                return
            try:
                if task.status == "finished":
                    done.set_result(task.result())
                elif task.status == "cancelled":
                    done.set_exception(self._lost())
                else:
                    done.set_exception(self._failed(task.exception()))
            except InvalidStateError:  # cancelled meanwhile: nobody waits for it
                pass
            except Exception as exc:  # fetching the result failed: the cluster went away
                done.set_exception(self._failed(exc))

        def cancel(future: Future[T]) -> None:
            if future.cancelled():
                task.cancel()

        done.add_done_callback(cancel)
        task.add_done_callback(settle)
        return done

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """The client is closed by ``Cluster.close``."""

    def _lost(self) -> ClusterError:
        return ClusterError(
            f"lost the Dask scheduler at {self._address} during the run",
            hint="check the scheduler, then re-run the same command",
        )

    def _failed(self, exc: BaseException) -> BaseException:
        name = type(exc).__name__
        if name == "KilledWorker":
            return ClusterError(
                f"Dask workers kept dying on one task ({exc})",
                hint="a worker may lack the memory for these masks: check the workers' logs",
            )
        if isinstance(exc, ImportError) and "segcli" in str(exc):
            return ClusterError(
                f"the Dask workers at {self._address} cannot import segcli ({exc})",
                hint="install segcli, the same version as here, on every worker: "
                "pip install 'segcli[dask]'",
            )
        if isinstance(exc, (OSError, TimeoutError)) or name == "CancelledError":
            return self._lost()
        return exc
