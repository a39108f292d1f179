"""``segcli status``: what a journal says about earlier uploads."""

import itertools
from pathlib import Path
from typing import Annotated, Optional

import typer

from segcli.cli import options as o
from segcli.exitcodes import ExitCode

LISTED_STATES = ("failed", "rejected", "invalid")


def status_command(
    manifest: Annotated[
        Optional[str],  # noqa: UP045
        typer.Argument(
            metavar="MANIFEST",
            help="The manifest that was uploaded (its journal sits beside it).",
            show_default=False,
        ),
    ] = None,
    journal: o.JournalPath = None,
    limit: Annotated[
        int, typer.Option("--limit", min=0, help="List at most this many items per state.")
    ] = 50,
    json_output: o.Json = False,
) -> int:
    """Show the counts per state in a journal and list the items that need attention.

    Exit codes: 0 nothing failed, rejected or invalid; 1 some items did;
    2 no journal there.

    Example:

    \b
        segcli status masks.yaml
    """
    from segcli.cli.output import print_json, stdout_console
    from segcli.errors import UsageError
    from segcli.journal import Journal, default_journal_path

    if journal is None:
        if manifest is None:
            raise UsageError("give the MANIFEST that was uploaded, or --journal PATH")
        journal = default_journal_path(manifest)
    report: list[dict[str, object]] = []
    bad = False
    with Journal(Path(journal), readonly=True) as jr:
        for scope in jr.scopes():
            counts = jr.counts(scope=scope)
            listed = {
                state: [
                    {"reference_id": r.reference_id, "source": r.source, "message": r.message}
                    for r in itertools.islice(jr.rows(state, scope=scope), limit)
                ]
                for state in LISTED_STATES
                if counts.get(state)
            }
            bad = bad or bool(listed)
            report.append(
                {
                    "endpoint": scope.endpoint,
                    "dataset_id": scope.dataset_id,
                    "target": scope.target,
                    "counts": counts,
                    "items": listed,
                }
            )
    if json_output:
        print_json({"journal": str(journal), "scopes": report})
    else:
        out = stdout_console()
        out.print(f"journal {journal}", markup=False)
        if not report:
            out.print("  (empty)", markup=False)
        for entry in report:
            out.print(
                f"{entry['target']} of dataset {entry['dataset_id']} at {entry['endpoint']}",
                markup=False,
            )
            totals = entry["counts"]
            assert isinstance(totals, dict)
            out.print("  " + ", ".join(f"{k} {v}" for k, v in sorted(totals.items())), markup=False)
            items = entry["items"]
            assert isinstance(items, dict)
            for state, rows in items.items():
                for row in rows:
                    where = f"{row['source'] or '-'} {row['reference_id']}"
                    out.print(f"  {state}: {where}: {row['message']}", markup=False)
    return ExitCode.ITEMS_FAILED if bad else ExitCode.OK
