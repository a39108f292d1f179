"""``segcli upload``: check and send masks as ground truth or predictions."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from segcli.cli import options as o
from segcli.defaults import DEFAULT_ENDPOINT, DEFAULT_MAX_PIXELS
from segcli.exitcodes import ExitCode

if TYPE_CHECKING:
    from rich.console import Console

    from segcli.pipeline import UploadStats


def upload_command(
    manifest: o.Manifest,
    dataset: o.Dataset,
    model: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--model", metavar="ID", help="Upload as predictions of this model id (prj_...)."
        ),
    ] = None,
    model_run: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--model-run", metavar="ID", help="Upload as predictions of this model run id."
        ),
    ] = None,
    update: Annotated[
        bool, typer.Option("--update", help="Replace masks that items already have.")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option("-n", "--dry-run", help="Validate and show the requests; send nothing."),
    ] = False,
    endpoint: o.Endpoint = DEFAULT_ENDPOINT,
    concurrency: o.Concurrency = 8,
    remote_batch: Annotated[
        int,
        typer.Option("--remote-batch-size", min=1, max=20, help="URL masks per JSON request."),
    ] = 20,
    local_batch: Annotated[
        int,
        typer.Option(
            "--local-batch-size", min=1, max=10, help="Local masks per multipart request."
        ),
    ] = 10,
    retries: o.Retries = 6,
    timeout: o.Timeout = 60.0,
    validate: Annotated[
        bool,
        typer.Option("--validate/--no-validate", help="Check masks before sending."),
    ] = True,
    validate_remote: Annotated[
        bool,
        typer.Option(
            "--validate-remote/--no-validate-remote",
            help="Also read and check s3://, gs:// and https:// masks.",
        ),
    ] = True,
    shard: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--shard",
            metavar="K/N",
            help="K/N: only items whose reference_id hashes to shard K (0..N-1) of N.",
            envvar="SEGCLI_SHARD",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Send every item again, ignoring the journal.")
    ] = False,
    journal: o.JournalPath = None,
    trained_slice_id: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--trained-slice-id", metavar="ID", help="Predictions: the slice the model trained on."
        ),
    ] = None,
    format: o.Format = None,
    segments: o.Segments = None,
    workers: o.Workers = None,
    max_pixels: o.MaxPixels = DEFAULT_MAX_PIXELS,
    json_output: o.Json = False,
    report: o.Report = None,
    quiet: o.Quiet = False,
    verbose: o.Verbose = False,
    s3_endpoint_url: o.S3Endpoint = None,
    gcs_endpoint_url: o.GcsEndpoint = None,
) -> int:
    """Upload the masks of MANIFEST to a dataset, as ground truth or as predictions.

    The API key comes from NUCLEUS_API_KEY (or NUCLEUS_LIMITED_ACCESS_KEY), never
    from a flag. Every mask is checked first; invalid items are reported and not
    sent. A journal beside the manifest makes re-runs skip what already landed.

    Exit codes: 0 every item uploaded, ignored or skipped; 1 some items invalid,
    rejected or failed; 2 usage or manifest error; 3 bad key or unknown
    dataset/model (nothing sent); 4 another run holds the journal; 130 interrupted.

    Example:

    \b
        NUCLEUS_API_KEY=... segcli upload masks.yaml --dataset ds_123 --report out.jsonl
    """
    from segcli.cli.common import ReportWriter, quiet_collector, storage_options
    from segcli.cli.estimate import estimate_items
    from segcli.cli.output import (
        Progress,
        print_json,
        problem_line,
        stderr_console,
        stdout_console,
    )
    from segcli.errors import UsageError
    from segcli.journal import default_journal_path
    from segcli.manifest import load_manifest
    from segcli.model import ItemState
    from segcli.pipeline import (
        Credentials,
        ItemOutcome,
        UploadSettings,
        UploadStats,
        parse_shard,
        upload,
    )
    from segcli.target import Target

    if model and model_run:
        raise UsageError("give --model or --model-run, not both")
    credentials = None if dry_run else Credentials.from_env()
    settings_kwargs: dict[str, object] = {}
    if workers is not None:
        settings_kwargs["workers"] = workers
    settings = UploadSettings(
        target=Target(dataset_id=dataset, model_id=model, model_run_id=model_run),
        endpoint=endpoint.rstrip("/"),
        update=update,
        dry_run=dry_run,
        force=force,
        concurrency=concurrency,
        remote_batch=remote_batch,
        local_batch=local_batch,
        retries=retries,
        timeout_s=timeout,
        validate=validate,
        validate_remote=validate_remote,
        shard=parse_shard(shard) if shard else None,
        journal_path=None if dry_run else (journal or default_journal_path(manifest)),
        max_pixels=max_pixels,
        storage_options=storage_options(s3_endpoint_url, gcs_endpoint_url),
        trained_slice_id=trained_slice_id,
        **settings_kwargs,  # type: ignore[arg-type]
    )

    err = stderr_console()
    lines = err if json_output else stdout_console()
    stats = UploadStats()
    fields = (
        "finished",
        "validated",
        "sent",
        "uploaded",
        "ignored",
        "skipped",
        "failed",
        "invalid",
    )
    noisy = {ItemState.INVALID, ItemState.REJECTED, ItemState.FAILED}

    total = estimate_items(manifest, format)
    if total is not None and shard:
        total = None  # a shard holds an unknown share
    with (
        ReportWriter(report) as writer,
        Progress(err, title="upload", fields=fields, total=lambda: total) as bar,
    ):

        def on_outcome(outcome: ItemOutcome) -> None:
            # Runs for every item: nothing is built that will not be written.
            if writer.active:
                writer.write(outcome.as_dict())
            item = outcome.item
            for p in outcome.problems:  # errors of invalid items, warnings of the rest
                if p.is_error or not quiet:
                    lines.print(problem_line(p, item), markup=False)
            said: str | None = None
            if outcome.state in noisy and outcome.state is not ItemState.INVALID:
                said = f"{outcome.state.value}: {outcome.message}"
            elif verbose or (outcome.state is ItemState.IGNORED and not quiet):
                suffix = f": {outcome.message}" if outcome.message else ""
                said = f"{outcome.state.value}{suffix}"
            if said is not None:
                lines.print(f"{item.source} {item.reference_id or '-'}: {said}", markup=False)
            states = stats.states
            bar.update(
                {
                    "finished": stats.finished,
                    "validated": stats.validated,
                    "sent": stats.sent_items,
                    "uploaded": states["uploaded"],
                    "ignored": states["ignored"],
                    "skipped": states["skipped"],
                    "failed": states["failed"] + states["rejected"],
                    "invalid": states["invalid"],
                }
            )

        items = load_manifest(manifest, format=format, default_segments=segments)
        quiet_collector()
        try:
            upload(items, settings, credentials, on_outcome=on_outcome, stats=stats)
        except KeyboardInterrupt:
            interrupted = True
        else:
            interrupted = False

    summary = stats.as_dict()
    summary["dry_run"] = dry_run
    summary["interrupted"] = interrupted
    if settings.journal_path is not None:
        summary["journal"] = str(settings.journal_path)
    if json_output:
        print_json(summary)
    else:
        render_upload_summary(
            stats, lines, dry_run=dry_run, journal=settings.journal_path, interrupted=interrupted
        )
    if interrupted:
        err.print(
            f"interrupted after {stats.finished} items; finished items are in the journal. "
            "Re-run the same command to send the rest.",
            markup=False,
        )
        return ExitCode.INTERRUPTED
    return ExitCode.OK if stats.ok else ExitCode.ITEMS_FAILED


def render_upload_summary(
    stats: "UploadStats",
    console: "Console",
    *,
    dry_run: bool,
    journal: Path | None,
    interrupted: bool = False,
) -> None:
    states = stats.states
    if stats.read == 0 and stats.finished == 0:
        # An empty manifest (or shard) is often an upstream step that failed: say so.
        console.print("no items to upload", markup=False)
    if dry_run:
        console.print("DRY RUN: nothing was sent.", markup=False)
        for route, plan in stats.plan.items():
            first = ", ".join(plan["first_items"])
            console.print(
                f"  {route}: {plan['requests']} requests, {plan['items']} items (first: {first})",
                markup=False,
            )
        console.print(f"  invalid (would not be sent): {states['invalid']}", markup=False)
        return
    verdict = "INTERRUPTED" if interrupted else "DONE" if stats.ok else "DONE WITH FAILURES"
    parts = ", ".join(
        f"{name} {states[name]}"
        for name in ("uploaded", "ignored", "skipped", "rejected", "invalid", "failed")
    )
    console.print(f"{verdict}: {stats.finished} items: {parts}", markup=False)
    console.print(f"  requests {stats.requests}, retries {stats.retries}", markup=False)
    if states["ignored"]:
        console.print(
            "  ignored items already had a mask; re-run with --update to replace them",
            markup=False,
        )
    if states["failed"]:
        console.print(
            f"  {states['failed']} failed items remain to upload; re-run the same command "
            "to send them",
            markup=False,
        )
    if journal is not None:
        console.print(f"  journal: {journal} (segcli status --journal {journal})", markup=False)
