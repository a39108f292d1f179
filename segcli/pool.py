"""Run a function over a stream with a bounded window of work in flight.

Used for mask inspection: the manifest keeps streaming while worker
processes decode masks, but no more than ``window`` items are ever held, so
memory stays flat on a manifest of any length. Results come back in input
order, which keeps reports and journals deterministic.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
import types
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

T = TypeVar("T")
R = TypeVar("R")

PoolKind = Literal["process", "thread", "inline"]


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on every platform
        return max(1, os.cpu_count() or 1)


PARENT_CHECK_S = 1.0


def _exit_with_parent(parent: int) -> None:
    # A worker holds both ends of its task pipe, so it never sees EOF when the
    # parent is SIGKILLed: without this it would wait for work forever.
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(0)


def init_worker() -> None:
    # Ctrl-C reaches the whole process group. The parent decides how to stop;
    # workers that died of KeyboardInterrupt would only print tracebacks.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watchdog = threading.Thread(
        target=_exit_with_parent, args=(os.getppid(),), name="segcli-parent-watch", daemon=True
    )
    watchdog.start()


def make_executor(kind: PoolKind, workers: int) -> Executor | None:
    if kind == "inline" or workers <= 0:
        return None
    if kind == "thread":
        return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="segcli-inspect")
    # "spawn" rather than the Linux default "fork": the upload pipeline runs
    # an event loop and threads, and forking those is undefined behaviour.
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=init_worker)
    _start_workers(pool, workers)
    return pool


@dataclass(frozen=True, slots=True)
class LocalPool:
    """Worker processes (or threads) on this machine, behind ``segcli.workers.Workers``."""

    executor: Executor | None  # None: inline, in the caller's thread
    slots: int
    #: masks read here are handed to the workers as bytes (they share this machine)
    near_data: bool = False

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)


def local_pool(kind: PoolKind, workers: int) -> LocalPool:
    return LocalPool(make_executor(kind, workers), max(1, workers))


_MAIN_LOCK = threading.Lock()


def _ready() -> None:
    """A first task: it makes the pool start its worker."""


@contextlib.contextmanager
def bare_main() -> Iterator[None]:
    """Processes spawned inside this block do not re-run the caller's ``__main__``.

    A spawned worker normally re-runs the parent's main script (as
    ``__mp_main__``) before it takes work, so a script that calls
    ``segcli.validate`` without an ``if __name__ == "__main__":`` guard would
    run again in each worker and fail, and a script read from standard input
    (``python -``) cannot be re-run at all. segcli's workers need nothing of
    the caller's script, so they are started while ``__main__`` is a bare
    stand-in.
    """
    main = sys.modules.get("__main__")
    with _MAIN_LOCK:
        sys.modules["__main__"] = types.ModuleType("__main__")
        try:
            yield
        finally:
            if main is not None:
                sys.modules["__main__"] = main


def _start_workers(pool: ProcessPoolExecutor, workers: int) -> None:
    """Start every worker now, without the caller's ``__main__`` (see ``bare_main``):
    each ``submit`` starts one worker, there and then, and the pool starts no
    other (a dead worker breaks the pool instead)."""
    with bare_main():
        for _ in range(workers):
            pool.submit(_ready)


def ordered_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    executor: Executor | None,
    *,
    window: int,
) -> Iterator[tuple[T, R]]:
    """Yield ``(item, fn(item))`` in input order with at most ``window`` pending."""
    if executor is None:
        for item in items:
            yield item, fn(item)
        return
    pending: deque[tuple[T, Future[Any]]] = deque()
    try:
        for item in items:
            pending.append((item, executor.submit(fn, item)))
            if len(pending) >= window:
                head, fut = pending.popleft()
                yield head, fut.result()
        while pending:
            head, fut = pending.popleft()
            yield head, fut.result()
    finally:
        # A consumer that stops early (Ctrl-C, an error) must not leave work queued.
        for _, fut in pending:
            fut.cancel()
