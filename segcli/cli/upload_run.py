"""What ``segcli upload`` shows while it runs and when it ends.

The pipeline reports through three hooks (an item finished, a dry run's
request, a retry); this module turns them into the report file, problem
lines in manifest order, the progress display and the closing summary or
JSON object. It decides nothing about the upload itself.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from segcli.cli.common import ReportWriter
from segcli.cli.estimate import estimate_items
from segcli.cli.lines import CodeCounts, ItemLines, OrderedLines, plural, problem_line, shape, where
from segcli.cli.output import Progress, print_json, stderr_console, stdout_console
from segcli.exitcodes import ExitCode
from segcli.jobs import IN_PROGRESS
from segcli.model import ItemState
from segcli.records import ItemOutcome, JobProgress, PlannedRequest, UploadStats
from segcli.settings import UploadSettings

if TYPE_CHECKING:
    from segcli.client import RetryEvent

# Retry lines off a terminal: one per new attempt number, else one per this long.
RETRY_LINE_INTERVAL_S = 5.0
STATES_SHOWN = ("uploaded", "ignored", "skipped", "rejected", "invalid", "failed")
NEEDS_ATTENTION = (ItemState.REJECTED, ItemState.FAILED)


class UploadScreen:
    def __init__(
        self,
        *,
        manifest: str,
        format: str | None,
        settings: UploadSettings,
        json_output: bool,
        report: Path | None,
        quiet: bool,
        verbose: bool,
        page: Any = None,
    ) -> None:
        from segcli.cli.common import NoPage

        self.settings = settings
        self.page = page if page is not None else NoPage()  # --html
        self.json_output = json_output
        self.quiet = quiet
        self.verbose = verbose
        self.stats = UploadStats()
        self.interrupted = False
        self.err = stderr_console()
        # With --json, stdout carries only the JSON; everything else goes to stderr.
        self.out = self.err if json_output else stdout_console()
        self.writer = ReportWriter(report)
        total = None if settings.shard else estimate_items(manifest, format)
        self.progress = Progress(self.err, title="upload", total=lambda: total, enabled=not quiet)
        self.ordered = OrderedLines(self._print)
        self.codes = CodeCounts()
        self._retry_printed_at = 0.0
        self._retry_attempt = 0

    def __enter__(self) -> UploadScreen:
        self.writer.__enter__()
        self.progress.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.progress.__exit__(exc_type, exc, tb)
        self.writer.__exit__(exc_type, exc, tb)

    def _print(self, text: str) -> None:
        self.out.print(text, markup=False)

    # -- the pipeline's hooks --------------------------------------------

    def outcome(self, outcome: ItemOutcome) -> None:
        # Runs for every item: nothing is built that will not be written.
        if self.writer.active:
            self.writer.write(outcome.as_dict())
        item = outcome.item
        self.codes.add(outcome.problems)
        if outcome.problems or outcome.state in (*NEEDS_ATTENTION, ItemState.INVALID):
            self.page.add(item, outcome.state.value, outcome.problems, message=outcome.message)
        lines: ItemLines | None = None
        for p in outcome.problems:  # errors of invalid items, warnings of the rest
            if p.is_error or not self.quiet:
                lines = lines or ItemLines()
                lines.add(
                    problem_line(p, item),
                    kind=(f"[{p.code}]", shape(p.message, item)),
                    where=where(item, p),
                )
        state = outcome.state
        said: str | None = None
        if state in NEEDS_ATTENTION:
            said = f"{state.value}: {outcome.message}"
        elif state is ItemState.WOULD_SEND:
            said = f"{state.value}" if self.verbose else None
        elif self.verbose or (state is ItemState.IGNORED and not self.quiet):
            suffix = f": {outcome.message}" if outcome.message else ""
            said = f"{state.value}{suffix}"
        if said is not None and state is not ItemState.INVALID:
            lines = lines or ItemLines()
            kind = (state.value, shape(outcome.message or "", item)) if not self.verbose else None
            lines.add(f"{where(item)}: {said}", kind=kind, where=where(item))
        self.ordered.add(outcome.seq, lines)
        self._show_progress()

    def planned(self, request: PlannedRequest) -> None:
        if self.quiet:
            return
        n = len(request.reference_ids)
        if request.kind == "stage":
            self._print(
                f"would stage {request.reference_ids[0]} to {request.url} "
                f"({_size(request.body_bytes)})"
            )
            return
        if request.kind == "job":
            self._print(
                f"would start a job: PUT {n:,} {plural(n, 'item')} as NDJSON "
                f"({_size(request.body_bytes)}) to a signed URL, then POST {request.url}: "
                f"{_some(request.reference_ids)}"
            )
            return
        if request.kind == "poll":
            self._print(
                f"would poll {request.url}, a job an earlier run started, for {n:,} "
                f"{plural(n, 'item')}: {_some(request.reference_ids)}"
            )
            return
        self._print(
            f"would send {request.method} {request.url} ({request.kind}, {n} "
            f"{plural(n, 'item')}, {_size(request.body_bytes)}): {', '.join(request.reference_ids)}"
        )

    def retry(self, event: RetryEvent) -> None:
        note = retry_note(event, self.settings.retries)
        self.progress.update(self.stats.finished, retries=self.stats.retries, note=note)
        if self.quiet:
            return
        now = time.monotonic()
        if event.attempt > self._retry_attempt or now - self._retry_printed_at >= (
            RETRY_LINE_INTERVAL_S
        ):
            self._retry_attempt = max(self._retry_attempt, event.attempt)
            self._retry_printed_at = now
            self.progress.say(f"{note}: {event.route}: {event.error}")

    def job(self, progress: JobProgress) -> None:
        """An async job's status changed: the live line says how far the jobs are."""
        self._show_progress()

    def _show_progress(self) -> None:
        stats = self.stats
        waiting = stats.retrying
        note = "" if waiting is None or waiting[1] <= time.perf_counter() else None
        states = stats.states
        bad = ", ".join(
            f"{name} {states[name]:,}" for name in ("failed", "rejected", "invalid") if states[name]
        )
        gauge = _jobs_gauge(stats) or (f"limit {stats.limit}" if stats.limit else "")
        self.progress.update(
            stats.finished, retries=stats.retries, extra=bad, note=note, gauge=gauge
        )

    # -- the end ----------------------------------------------------------

    def finish(self) -> int:
        """Print what is left, the summary (or the JSON object); return the exit code."""
        self.ordered.finish()
        stats = self.stats
        for line in self.ordered.collapsed(report=self.writer.active):
            self._print(line)
        summary: dict[str, Any] = stats.as_dict()
        summary["dry_run"] = self.settings.dry_run
        summary["interrupted"] = self.interrupted
        summary["problems_by_code"] = dict(sorted(self.codes.by_code.items()))
        if self.settings.journal_path is not None and not self.settings.dry_run:
            summary["journal"] = str(self.settings.journal_path)
        code = self._exit_code()
        if stats.stopped is not None:
            summary["error"] = {
                "code": "server-unavailable",
                "message": stats.stopped.message,
                "hint": "re-run the same command when the server answers",
            }
        summary["exit_code"] = int(code)
        self.page.finish(
            self._headline(),
            [(name.replace("_", " "), stats.states[name]) for name in self._states_shown()],
            failed=code != ExitCode.OK,
        )
        if self.json_output:
            print_json(summary)
        else:
            self._render()
        if self.interrupted:
            self.err.print(
                f"interrupted after {stats.finished:,} {plural(stats.finished, 'item')}; "
                "finished items are in the journal. Re-run the same command to send the rest.",
                markup=False,
            )
        return code

    def _exit_code(self) -> ExitCode:
        if self.interrupted:
            return ExitCode.INTERRUPTED
        return ExitCode.OK if self.stats.ok else ExitCode.ITEMS_FAILED

    def _states_shown(self) -> tuple[str, ...]:
        return ("would_send", "skipped", "invalid") if self.settings.dry_run else STATES_SHOWN

    def _headline(self) -> str:
        """The summary's first line: ``DONE: 7 items: uploaded 7, ...``."""
        stats = self.stats
        states = stats.states
        n = stats.finished
        if self.settings.dry_run:
            parts = ", ".join(
                f"{name.replace('_', ' ')} {states[name]:,}" for name in self._states_shown()
            )
            return f"DRY RUN: nothing was sent. {n:,} {plural(n, 'item')}: {parts}"
        verdict = (
            "INTERRUPTED"
            if self.interrupted
            else "STOPPED"
            if stats.stopped
            else "DONE"
            if stats.ok
            else "DONE WITH FAILURES"
        )
        parts = ", ".join(f"{name} {states[name]:,}" for name in STATES_SHOWN)
        if stats.stopped is not None:
            parts += f", pending {stats.stopped.pending:,}"
        return f"{verdict}: {n:,} {plural(n, 'item')}: {parts}"

    def _render(self) -> None:
        stats, say = self.stats, self._print
        states = stats.states
        n = stats.finished
        if n == 0 and stats.stopped is None:
            say("no items to upload in this shard" if self.settings.shard else "no items to upload")
        say(self._headline())
        if self.settings.dry_run:
            requests = stats.requests
            say(f"  {requests:,} {plural(requests, 'request')} would be made")
        else:
            say(f"  requests {stats.requests:,}, retries {stats.retries:,}{_limits(stats)}")
        for line in _stage_and_jobs(stats):
            say(line)
        for line in self.codes.lines():
            say(line)
        if stats.stopped is not None:
            left = stats.stopped.pending + states["failed"]
            say(f"  {stats.stopped.message}")
            say(
                f"  stopped sending: {left:,} {plural(left, 'item')} remain to upload "
                f"({stats.stopped.pending:,} never tried); re-run the same command when the "
                "server answers"
            )
        elif states["failed"]:
            say(
                f"  {states['failed']:,} failed {plural(states['failed'], 'item')} remain to "
                "upload; re-run the same command to send them"
            )
        if states["ignored"] and not self.settings.dry_run:
            say("  ignored items already had a mask; re-run with --update to replace them")
        journal = self.settings.journal_path
        if journal is not None and not self.settings.dry_run:
            say(f"  journal: {journal} (segcli status --journal {journal})")


def _jobs_gauge(stats: UploadStats) -> str:
    """``jobs 2 running, 1 done: 12,000/30,000 objects`` while async jobs run."""
    if not stats.jobs:
        return ""
    jobs = list(stats.jobs.values())
    running = sum(1 for j in jobs if j.status in IN_PROGRESS)
    steps = sum(j.completed_steps for j in jobs)
    total = sum(j.total_steps or j.items for j in jobs)
    return f"jobs {running} running, {len(jobs) - running} done: {steps:,}/{total:,} objects"


def _stage_and_jobs(stats: UploadStats) -> list[str]:
    """Summary lines: what --stage copied, and each async job's end."""
    lines = []
    if stats.stage is not None:
        st = stats.stage
        verb = "would stage" if stats.dry_run else "staged"
        lines.append(
            f"  {verb} {st.copied:,} {plural(st.copied, 'mask')} to {st.prefix} "
            f"({_size(st.bytes_copied)}); {st.already:,} already there with the same bytes"
        )
    for job in stats.jobs.values():
        how = "resumed from an earlier run, " if job.resumed else ""
        lines.append(
            f"  job {job.job_id}: {how}{job.status}, {job.items:,} {plural(job.items, 'item')}"
        )
    return lines


def _some(refs: tuple[str, ...], shown: int = 5) -> str:
    head = ", ".join(refs[:shown])
    return f"{head} and {len(refs) - shown:,} more" if len(refs) > shown else head


def _limits(stats: UploadStats) -> str:
    """``, in flight: limit 32 (adaptive: peak 40, max 64, cut back 1 time)``."""
    if not stats.limit_max:
        return ""
    if not stats.adaptive:
        return f", in flight: limit {stats.limit} (fixed)"
    cuts = stats.cutbacks
    return (
        f", in flight: limit {stats.limit} (adaptive: peak {stats.limit_peak}, "
        f"max {stats.limit_max}, cut back {cuts} {plural(cuts, 'time')})"
    )


def retry_note(event: RetryEvent, retries: int) -> str:
    """``server unreachable, retrying in 8 s (attempt 3/6)``."""
    if event.status is None:
        what = "server unreachable"
    elif event.status == 429:
        what = "rate limited (HTTP 429)"
    else:
        what = f"server error (HTTP {event.status})"
    wait = f"{event.delay_s:.0f} s" if event.delay_s >= 1 else f"{event.delay_s:.1f} s"
    return f"{what}, retrying in {wait} (attempt {event.attempt}/{retries})"


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} kB"
    return f"{n / 1024 / 1024:.1f} MB"
