"""``segcli upload``: check and send masks as ground truth or predictions."""

from typing import Annotated, Optional

import typer

from segcli.cli import options as o
from segcli.defaults import DEFAULT_ENDPOINT, DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_PIXELS


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
    concurrency: o.UploadConcurrency = None,
    max_concurrency: o.MaxConcurrency = DEFAULT_MAX_CONCURRENCY,
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
            metavar="K/N|auto",
            help="K/N: only items whose reference_id hashes to shard K (0..N-1) of N. auto: "
            "K and N from the job array's scheduler (Kubernetes Indexed Job, AWS Batch, "
            "Slurm, Google Batch). Each shard has its own default journal.",
            envvar="SEGCLI_SHARD",
        ),
    ] = None,
    shard_count: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            "--shard-count",
            min=1,
            help="With --shard auto in a Kubernetes Indexed Job, which gives only the index: "
            "the number of shards (the Job's spec.completions).",
        ),
    ] = None,
    asynchronous: Annotated[
        bool,
        typer.Option(
            "--async",
            help="Hand remote masks (s3://, gs://, https://) to the service as async jobs: "
            "NDJSON to a signed URL, the job polled until it ends. Local masks need --stage.",
            envvar="SEGCLI_ASYNC",
        ),
    ] = False,
    job_size: Annotated[
        int,
        typer.Option(
            "--job-size",
            min=1,
            max=10_000,
            help="--async: items per job (a job's errors list holds its latest 10,000).",
        ),
    ] = 10_000,
    max_jobs: Annotated[
        int, typer.Option("--max-jobs", min=1, help="--async: jobs started or running at once.")
    ] = 4,
    stage: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--stage",
            metavar="s3://BUCKET/PREFIX",
            help="Copy local masks to this s3:// or gs:// prefix (skipping objects that "
            "already hold the same bytes), then upload their URLs. The service must be able "
            "to read the bucket.",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Send every item again, ignoring the journal.")
    ] = False,
    journal: o.JournalPath = None,
    trained_slice_id: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--trained-slice-id",
            metavar="ID",
            help="Predictions (--model or --model-run): the slice the model trained on.",
        ),
    ] = None,
    format: o.Format = None,
    segments: o.Segments = None,
    base_dir: o.BaseDir = None,
    ignore: o.Ignore = None,
    error: o.ErrorCodes = None,
    allow_empty: o.AllowEmpty = False,
    workers: o.Workers = None,
    scheduler: o.UploadScheduler = None,
    max_pixels: o.MaxPixels = DEFAULT_MAX_PIXELS,
    json_output: o.Json = False,
    report: o.Report = None,
    html: o.Html = None,
    html_limit: o.HtmlLimit = 500,
    quiet: o.Quiet = False,
    verbose: o.Verbose = False,
    s3_endpoint_url: o.S3Endpoint = None,
    gcs_endpoint_url: o.GcsEndpoint = None,
) -> int:
    """Upload the masks of MANIFEST to a dataset, as ground truth or as predictions.

    The API key comes from NUCLEUS_API_KEY (or NUCLEUS_LIMITED_ACCESS_KEY), never
    from a flag. Every mask is checked first; invalid items are reported and not
    sent. A journal beside the manifest makes re-runs skip what already landed.

    --async hands remote masks to the service as jobs (NDJSON to a signed URL,
    each job polled until it ends; a killed run polls its jobs again). --stage
    s3://BUCKET/PREFIX (or gs://) copies local masks there first and sends their
    URLs; local masks need it with --async.

    Exit codes: 0 every item uploaded, ignored or skipped; 1 some items invalid,
    rejected or failed; 2 usage or manifest error; 3 bad key or unknown
    dataset/model (nothing sent); 4 another run holds the journal; 130 interrupted.

    Example:

    \b
        segcli upload sample_data/manifest.yaml --dataset ds_demo --report out.jsonl
    """
    from segcli.cli.common import html_page, quiet_collector, storage_options
    from segcli.cli.output import stderr_console
    from segcli.cli.upload_run import UploadScreen
    from segcli.codes import CodePolicy
    from segcli.errors import UsageError
    from segcli.journal import default_journal_path
    from segcli.manifest import load_manifest
    from segcli.pipeline import check_settings, upload
    from segcli.settings import Credentials, UploadSettings
    from segcli.shards import AUTO, resolve_shard
    from segcli.target import Target

    if model and model_run:
        raise UsageError("give --model or --model-run, not both")
    if trained_slice_id and not (model or model_run):
        raise UsageError(
            "--trained-slice-id is for predictions",
            hint="add --model ID (or --model-run ID), or leave --trained-slice-id out",
        )
    policy = CodePolicy.parse(ignore or (), error or ())
    chosen = resolve_shard(shard, count=shard_count)
    credentials = Credentials.from_env()
    settings_kwargs: dict[str, object] = {}
    if workers is not None:
        settings_kwargs["workers"] = workers
    if scheduler:
        settings_kwargs["scheduler"] = scheduler
    settings = UploadSettings(
        target=Target(dataset_id=dataset, model_id=model, model_run_id=model_run),
        endpoint=endpoint.rstrip("/"),
        update=update,
        dry_run=dry_run,
        force=force,
        concurrency=concurrency,
        max_concurrency=max_concurrency,
        remote_batch=remote_batch,
        local_batch=local_batch,
        retries=retries,
        timeout_s=timeout,
        validate=validate,
        validate_remote=validate_remote,
        shard=chosen.pair if chosen else None,
        journal_path=journal or default_journal_path(manifest, chosen.pair if chosen else None),
        max_pixels=max_pixels,
        storage_options=storage_options(s3_endpoint_url, gcs_endpoint_url),
        trained_slice_id=trained_slice_id,
        allow_empty=allow_empty,
        policy=policy,
        asynchronous=asynchronous,
        job_size=job_size,
        max_jobs=max_jobs,
        stage=stage,
        **settings_kwargs,  # type: ignore[arg-type]
    )
    check_settings(settings)  # flags before the manifest: a usage error names the flag
    items = load_manifest(manifest, format=format, default_segments=segments, base_dir=base_dir)
    title = f"segcli upload {items.label}"
    page = html_page(html, title, limit=html_limit, report=report, settings=settings)
    screen = UploadScreen(
        manifest=manifest,
        format=format,
        settings=settings,
        json_output=json_output,
        report=report,
        quiet=quiet,
        verbose=verbose,
        page=page,
    )
    if chosen is not None and shard and shard.strip().lower() == AUTO and not quiet:
        # A job array's log then says which task this was and why.
        stderr_console().print(
            f"{chosen.describe()}; journal {settings.journal_path}", markup=False
        )
    with page:
        with screen:
            quiet_collector()
            try:
                upload(
                    items,
                    settings,
                    credentials,
                    on_outcome=screen.outcome,
                    on_plan=screen.planned,
                    on_retry=screen.retry,
                    on_job=screen.job,
                    stats=screen.stats,
                )
            except KeyboardInterrupt:
                screen.interrupted = True
        return screen.finish()
