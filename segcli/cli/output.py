"""Everything the CLI shows a person: progress, problem lines, summaries.

Results go to stdout, everything else to stderr. On a terminal, progress is
a live rich bar; otherwise (cron, CI, a pipe) it is a plain line every
``PLAIN_INTERVAL_S`` so mail and logs stay readable.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from segcli.model import MaskItem, Problem

PLAIN_INTERVAL_S = 10.0


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def stdout_console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def print_json(data: Any, stream: IO[str] | None = None) -> None:
    out = stream or sys.stdout
    out.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
    out.flush()


def problem_line(problem: Problem, item: MaskItem) -> str:
    """``FILE:LINE REFERENCE_ID: SEVERITY [CODE] MESSAGE``, the one shape scripts grep."""
    where = f"{problem.source or item.source} {item.reference_id or '-'}"
    return f"{where}: {problem.severity.value} [{problem.code}] {problem.message}"


def format_rate(count: int, elapsed_s: float) -> str:
    return f"{count / elapsed_s:.1f}/s" if elapsed_s > 0 else "-"


class Progress:
    """Counters shown while a long command runs.

    ``fields`` names the counters in display order; ``update`` sets them and
    redraws at most a few times a second (rich) or every interval (plain).
    """

    def __init__(
        self,
        console: Console,
        *,
        title: str,
        fields: tuple[str, ...],
        total: Callable[[], int | None] = lambda: None,
        enabled: bool = True,
        plain_interval_s: float = PLAIN_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console
        self.title = title
        self.fields = fields
        self.total = total
        self.counts: dict[str, int] = dict.fromkeys(fields, 0)
        self._clock = clock
        self._start = clock()
        self._last_plain = self._start
        self._interval = plain_interval_s
        self._live = enabled and console.is_terminal
        self._enabled = enabled
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        if self._live:
            from rich.progress import (
                BarColumn,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[counts]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(self.title, total=None, counts="")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.__exit__(exc_type, exc, tb)
            self._bar = None

    def print(self, text: str) -> None:
        """A line above the bar (or plain on stderr)."""
        self.console.print(escape(text))

    def describe(self) -> str:
        elapsed = self._clock() - self._start
        parts = [f"{name} {self.counts[name]}" for name in self.fields]
        done = self.counts[self.fields[0]]
        parts.append(format_rate(done, elapsed))
        return ", ".join(parts)

    def update(self, counts: Mapping[str, int]) -> None:
        self.counts.update(counts)
        if not self._enabled:
            return
        if self._bar is not None:
            total = self.total()
            self._bar.update(
                self._task,
                completed=self.counts[self.fields[0]],
                total=total,
                counts=self.describe(),
            )
            return
        now = self._clock()
        if now - self._last_plain >= self._interval:
            self._last_plain = now
            self.console.print(f"{self.title}: {self.describe()}", markup=False)
