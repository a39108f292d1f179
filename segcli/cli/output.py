"""Everything the CLI shows a person: progress, problem lines, summaries.

Results go to stdout, everything else to stderr. On a terminal, progress is
a live rich bar; otherwise (cron, CI, a pipe) it is a plain line every
``PLAIN_INTERVAL_S`` so mail and logs stay readable.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import IO, Any

from rich.console import Console

PLAIN_INTERVAL_S = 10.0


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def stdout_console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def print_json(data: Any, stream: IO[str] | None = None) -> None:
    out = stream or sys.stdout
    out.write(json.dumps(data, indent=2, sort_keys=False) + "\n")
    out.flush()


def format_rate(count: int, elapsed_s: float) -> str:
    return f"{count / elapsed_s:,.1f}/s" if elapsed_s > 0 else "-"


def format_duration(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def iso_now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


# A live line never wider than this, whatever the terminal says.
LIVE_WIDTH = 80
BAR_WIDTH = 10


class Progress:
    """How far a long command is: a live bar on a terminal, plain lines otherwise.

    ``update(done, ...)`` sets the count of finished items; the total (for
    percent and ETA) comes from ``total()``, a guess that may be None;
    ``gauge`` is a short state shown after the rate (upload's ``limit 32``). On a
    terminal the bar redraws a few times a second and fits 80 columns; off
    one, a line every ``plain_interval_s`` with an ISO timestamp, so cron mail
    and CI logs stay readable. ``note`` replaces rate and ETA while it is
    set (a retry being waited out).
    """

    def __init__(
        self,
        console: Console,
        *,
        title: str,
        total: Callable[[], int | None] = lambda: None,
        enabled: bool = True,
        plain_interval_s: float = PLAIN_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        stamp: Callable[[], str] = iso_now,
    ) -> None:
        self.console = console
        self.title = title
        self.total = total
        self.done = 0
        self.retries = 0
        self.extra = ""
        self.note = ""
        self.gauge = ""
        self._clock = clock
        self._stamp = stamp
        self._start = clock()
        self._last_plain = self._start
        self._interval = plain_interval_s
        self._live = enabled and console.is_terminal
        self._enabled = enabled
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Progress:
        if self._live:
            from rich.progress import BarColumn, TextColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(bar_width=BAR_WIDTH),
                TextColumn("{task.fields[text]}"),
                console=self.console,
                transient=True,
                expand=False,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(self.title, total=None, text="")
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

    def describe(self, *, width: int | None = None) -> str:
        """``1,234/5,000 24% 412.3/s limit 32 ETA 0:00:09`` (or the note), cut to ``width``."""
        elapsed = self._clock() - self._start
        total = self.total()
        if total is not None and total >= self.done:
            parts = [f"{self.done:,}/{total:,}"]
            if not self.note:
                parts.append(f"{100 * self.done // max(total, 1)}%")
        else:
            parts = [f"{self.done:,} done"]
        if self.note:
            parts.append(self.note)
        else:
            parts.append(format_rate(self.done, elapsed))
            if self.gauge:
                parts.append(self.gauge)
            if total is not None and self.done and total > self.done and elapsed > 0:
                parts.append("ETA " + format_duration((total - self.done) * elapsed / self.done))
        text = " ".join(parts)
        if width is not None and len(text) > width and self.note:
            text = self.note  # the bar still shows how far it got
        if width is not None and len(text) > width:
            text = text[: max(0, width - 1)] + "…"
        return text

    def update(
        self,
        done: int,
        *,
        retries: int | None = None,
        extra: str = "",
        note: str | None = None,
        gauge: str | None = None,
    ) -> None:
        self.done = done
        if retries is not None:
            self.retries = retries
        self.extra = extra
        if note is not None:
            self.note = note
        if gauge is not None:
            self.gauge = gauge
        if not self._enabled:
            return
        if self._bar is not None:
            room = LIVE_WIDTH - 1 - len(self.title) - 1 - BAR_WIDTH - 1
            total = self.total()
            self._bar.update(
                self._task, completed=done, total=total, text=self.describe(width=room)
            )
            return
        now = self._clock()
        if now - self._last_plain >= self._interval:
            self._last_plain = now
            self.console.print(self.plain_line(), markup=False)

    def refresh(self) -> None:
        """Redraw the live line now (it redraws on its own a few times a second)."""
        if self._bar is not None:
            self._bar.refresh()

    def plain_line(self) -> str:
        line = f"{self._stamp()} {self.title}: {self.describe()}, retries {self.retries:,}"
        return f"{line}, {self.extra}" if self.extra else line

    def say(self, text: str) -> None:
        """A plain line with a timestamp, off a terminal; on one, the live line says it."""
        if self._enabled and self._bar is None:
            self.console.print(f"{self._stamp()} {self.title}: {text}", markup=False)
