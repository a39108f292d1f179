"""``segcli verify``: read back what landed and compare it with the manifest."""

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from segcli.cli import options as o
from segcli.defaults import DEFAULT_ENDPOINT
from segcli.exitcodes import ExitCode

if TYPE_CHECKING:
    from rich.console import Console

    from segcli.compare import ItemCheck, VerifyStats
    from segcli.model import MaskItem

#: Items that did not match, shown in the --json summary (all are in --report).
JSON_SHOWN = 100


def verify_command(
    manifest: o.Manifest,
    dataset: o.Dataset,
    model: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--model",
            help="Compare with this model's predictions (prj_...) instead of the ground truth.",
            envvar="SEGCLI_MODEL",
        ),
    ] = None,
    sample: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            "--sample",
            min=1,
            help="Check N items picked at random (uniformly, in one pass).",
            envvar="SEGCLI_SAMPLE",
        ),
    ] = None,
    seed: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            "--seed", help="With --sample: pick the same items each run.", envvar="SEGCLI_SEED"
        ),
    ] = None,
    all_items: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Also report dataset items holding a mask that the manifest does not name.",
            envvar="SEGCLI_ALL",
        ),
    ] = False,
    stage: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--stage",
            metavar="s3://BUCKET/PREFIX",
            help="The masks were uploaded with `upload --stage` to this prefix: a local mask "
            "is expected at its staged URL.",
            envvar="SEGCLI_STAGE",
        ),
    ] = None,
    endpoint: o.Endpoint = DEFAULT_ENDPOINT,
    concurrency: o.Concurrency = 8,
    retries: o.Retries = 6,
    timeout: o.Timeout = 60.0,
    format: o.Format = None,
    segments: o.Segments = None,
    json_output: o.Json = False,
    report: o.Report = None,
    html: o.Html = None,
    html_limit: o.HtmlLimit = 500,
    quiet: o.Quiet = False,
    verbose: o.Verbose = False,
) -> int:
    """Check that what a dataset holds is what MANIFEST says, item by item.

    Reads back each item's ground truth (or, with --model, its prediction) and
    reports match, missing, different-segments (labels, indices, metadata or
    annotation_id), different-mask (by content where the server serves the
    mask it stored, else by mask_url) and, with --all, extra items. The API key
    comes from NUCLEUS_API_KEY (or NUCLEUS_LIMITED_ACCESS_KEY).

    Exit codes: 0 every item matches; 1 some do not (or could not be checked);
    2 usage or manifest error; 3 bad key or unknown dataset/model.

    Example:

    \b
        segcli verify sample_data/manifest.yaml --dataset ds_demo --report verify.jsonl
    """
    from segcli.cli.common import ReportWriter, html_page
    from segcli.cli.output import Progress, print_json, stderr_console, stdout_console
    from segcli.compare import Check, ItemCheck, VerifyStats
    from segcli.manifest import load_manifest
    from segcli.readback import VerifySettings, verify
    from segcli.settings import Credentials
    from segcli.target import Target

    credentials = Credentials.from_env()
    settings = VerifySettings(
        target=Target(dataset_id=dataset, model_id=model),
        endpoint=endpoint.rstrip("/"),
        concurrency=concurrency,
        retries=retries,
        timeout_s=timeout,
        sample=sample,
        seed=seed,
        all_items=all_items,
        stage=stage,
    )
    err = stderr_console()
    lines = err if json_output else stdout_console()
    stats = VerifyStats()
    shown: list[dict[str, object]] = []
    page = html_page(html, f"segcli verify {manifest}", limit=html_limit, report=report)
    with (
        ReportWriter(report) as writer,
        page,
        Progress(err, title="verify", enabled=not quiet) as bar,
    ):

        def on_check(check: ItemCheck) -> None:
            record = check.as_dict()
            writer.write(record)
            if check.state is not Check.MATCH:
                page.add(check.item or extra_item(check), check.state.value, message=check.message)
                if len(shown) < JSON_SHOWN:
                    shown.append(record)
                lines.print(
                    f"{check.source or '-'} {check.reference_id}: {check.state.value}: "
                    f"{check.message}",
                    markup=False,
                )
            elif verbose:
                lines.print(f"{check.source} {check.reference_id}: match", markup=False)
            differ = ", ".join(
                f"{name} {n:,}" for name, n in stats.counts.items() if n and name != "match"
            )
            bar.update(stats.checked, extra=differ)

        items = load_manifest(manifest, format=format, default_segments=segments)
        verify(items, settings, credentials, on_check=on_check, stats=stats)
        page.finish(
            verify_headline(stats),
            list(stats.counts.items()),
            failed=not stats.ok,
        )

    if json_output:
        summary = {
            "dataset_id": dataset,
            "model_id": model,
            **stats.as_dict(),
            "sample": sample,
            "all": all_items,
            "report": str(report) if report else None,
            "not_matching": shown,
        }
        code = ExitCode.OK if stats.ok else ExitCode.ITEMS_FAILED
        print_json({**summary, "exit_code": int(code)})
    else:
        render_verify_summary(stats, lines)
    return ExitCode.OK if stats.ok else ExitCode.ITEMS_FAILED


def render_verify_summary(stats: "VerifyStats", console: "Console") -> None:
    if stats.checked == 0:
        console.print("no items to verify", markup=False)
    console.print(verify_headline(stats), markup=False)
    if not stats.ok:
        console.print(
            "  each line above names the item and how it differs; re-upload the items "
            "that differ with segcli upload --update",
            markup=False,
        )


def verify_headline(stats: "VerifyStats") -> str:
    from segcli.cli.lines import plural

    verdict = "MATCH" if stats.ok else "DIFFERENCES"
    parts = ", ".join(f"{name} {n:,}" for name, n in stats.counts.items())
    return f"{verdict}: {stats.checked:,} {plural(stats.checked, 'item')}: {parts}"


def extra_item(check: "ItemCheck") -> "MaskItem":
    """A card's item for a dataset item the manifest does not name (``--all``)."""
    from segcli.model import MaskItem, Source

    return MaskItem(check.reference_id, "", (), Source("(dataset)", 0))
