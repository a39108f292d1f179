"""``segcli status``: what journals say about earlier uploads."""

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from segcli.cli import options as o
from segcli.exitcodes import ExitCode

if TYPE_CHECKING:
    from segcli.status import ScopeStatus

JOURNALS_SHOWN = 3  # journals named on the first line; a job array's hundreds are not
STATE_NOTES = {
    "skipped": "already on the server when the last run came to them",
    "ignored": "the item already had another mask; --update replaces it",
}


def status_command(
    manifest: Annotated[
        Optional[str],  # noqa: UP045
        typer.Argument(
            metavar="MANIFEST",
            help="The manifest that was uploaded: its journal is the one beside it, and its "
            "items that no journal holds are counted as pending.",
            show_default=False,
        ),
    ] = None,
    journal: Annotated[
        Optional[list[Path]],  # noqa: UP045
        typer.Option(
            "--journal",
            metavar="FILE",
            help="A journal to read, or a quoted glob pattern segcli expands "
            "('m.yaml.shard-*.segcli-journal'); repeatable, counts summed (in the variable, "
            "separated by ':'). Default: the journals beside MANIFEST, MANIFEST.segcli-journal "
            "and each shard's MANIFEST.shard-K-of-N.segcli-journal.",
            dir_okay=False,
        ),
    ] = None,
    manifest_option: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--manifest",
            metavar="FILE",
            help="Count this manifest's items that no journal holds as pending, and those "
            "several journals hold once (with --journal, e.g. one journal per shard).",
        ),
    ] = None,
    limit: Annotated[
        int,
        typer.Option("--limit", min=0, help="List at most this many items per state."),
    ] = 50,
    json_output: o.Json = False,
) -> int:
    """Show each item's latest state in journals, and list the items that need attention.

    Counts are per endpoint, dataset and target, summed over the journals (one
    per shard of a job array). With MANIFEST, its items that no journal holds
    (never tried, e.g. other shards) are counted as pending. Journals are read
    without the run lock, so status works during an upload.

    Exit codes: 0 nothing failed, rejected, invalid or pending; 1 some items
    are; 2 no journal there.

    Example:

    \b
        segcli status sample_data/manifest.yaml --limit 10
    """
    from segcli.cli.output import print_json
    from segcli.errors import UsageError
    from segcli.journal import default_journal_path, journals_beside
    from segcli.manifest import load_manifest
    from segcli.status import expand_journals, read_status

    if manifest is not None and manifest_option is not None and manifest != manifest_option:
        raise UsageError("give the manifest once: as MANIFEST or as --manifest")
    manifest = manifest or manifest_option
    if journal:
        journals = expand_journals(journal)
    elif manifest is None:
        raise UsageError("give the MANIFEST that was uploaded, or --journal PATH")
    else:
        # Every run's default journal, the shards' too; none: the unsharded
        # one's path, so the message says where the journal was looked for.
        journals = journals_beside(manifest) or [default_journal_path(manifest)]
    ids = None
    if manifest is not None:
        ids = (item.reference_id for item in load_manifest(manifest))
    report = read_status(journals, manifest=ids, limit=limit)
    if json_output:
        print_json({**report.as_dict(), "exit_code": int(_code(report.needs_attention))})
        return _code(report.needs_attention)
    _render(report, manifest, limit)
    return _code(report.needs_attention)


def _code(bad: bool) -> ExitCode:
    return ExitCode.ITEMS_FAILED if bad else ExitCode.OK


def _render(report: Any, manifest: str | None, limit: int) -> None:
    from segcli.cli.output import stdout_console

    out = stdout_console()

    def say(text: str) -> None:
        out.print(text, markup=False)

    say(_journals_line(report.journals))
    for warning in report.warnings:
        say(f"  warning: {warning}")
    if not report.scopes:
        say("  (no item recorded yet)")
    if report.untouched:
        say(f"  pending {report.untouched:,}: every item of {manifest} is still to upload")
    for status in report.scopes:
        _render_scope(status, say, limit)


def _journals_line(journals: list[str]) -> str:
    if len(journals) <= JOURNALS_SHOWN:
        return "journal " + ", ".join(journals)
    return (
        f"journals {journals[0]}, {journals[1]}, ... {journals[-1]} "
        f"({len(journals):,} in all; --json lists them)"
    )


def _render_scope(status: "ScopeStatus", say: Any, limit: int) -> None:
    from segcli.cli.lines import plural

    scope = status.scope
    say(f"{scope.target} of dataset {scope.dataset_id} at {scope.endpoint}")
    counts = [(state, n) for state, n in status.as_dict()["counts"].items()]
    if status.pending is not None:
        counts.append(("pending", status.pending))
    total = sum(n for _, n in counts)
    say(f"  {total:,} {plural(total, 'item')}: " + ", ".join(f"{s} {n:,}" for s, n in counts))
    for state, note in STATE_NOTES.items():
        if status.counts[state]:
            say(f"  {state}: {note}")
    if status.pending:
        say("  pending: in the manifest but never tried (another shard's, or not reached yet)")
    if status.jobs:
        n = sum(job["items"] for job in status.jobs)
        ids = ", ".join(str(job["job_id"] or "not started") for job in status.jobs[:5])
        others = f" and {len(status.jobs) - 5:,} more" if len(status.jobs) > 5 else ""
        say(
            f"  in async jobs: {n:,} {plural(n, 'item')} in {len(status.jobs):,} "
            f"{plural(len(status.jobs), 'job')} an upload started and did not collect "
            f"({ids}{others}); re-run the same upload to collect them"
        )
    if status.overlap:
        n = status.overlap
        say(
            f"  {n:,} {plural(n, 'item')} in more than one journal (runs split differently): "
            "each counted once, by the outcome recorded last"
        )
    run = status.last_run
    if run is not None and status.journals > 1:
        # One journal a shard: the last run alone would speak for one shard.
        started = datetime.fromtimestamp(float(run["started_at"])).isoformat(timespec="seconds")
        unfinished = status.unfinished
        ended = (
            "all finished"
            if not unfinished
            else f"{unfinished:,} not finished (still running, or stopped before the end)"
        )
        say(f"  runs: {status.journals:,} journals, the last run started {started}; {ended}")
    elif run is not None:
        started = datetime.fromtimestamp(float(run["started_at"])).isoformat(timespec="seconds")
        if run["finished_at"] is None:
            say(f"  last run: started {started} (pid {run['pid']}), not finished")
        else:
            summary = run["summary"] or {}
            parts = ", ".join(f"{k} {summary[k]:,}" for k in summary if k in _STATES and summary[k])
            say(f"  last run: started {started}: {parts or 'nothing to do'}")
    for state, rows in status.listed.items():
        for row in rows:
            where = f"{row.source or '-'} {row.reference_id}"
            say(f"  {state}: {where}: {row.message}")
        more = status.counts[state] - len(rows)
        if more > 0:
            say(
                f"  ... and {more:,} more {state} {plural(more, 'item')} "
                f"(--limit {limit} shows {limit}; --json with a larger --limit lists them)"
            )


_STATES = ("uploaded", "ignored", "skipped", "rejected", "invalid", "failed", "pending")
