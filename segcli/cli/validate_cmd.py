"""``segcli validate``: check every mask against its segments, send nothing."""

from typing import TYPE_CHECKING

from segcli.cli import options as o
from segcli.defaults import DEFAULT_MAX_PIXELS
from segcli.exitcodes import ExitCode

if TYPE_CHECKING:
    from rich.console import Console

    from segcli.validation import ValidationSummary


def validate_command(
    manifest: o.Manifest,
    format: o.Format = None,
    segments: o.Segments = None,
    void: o.Void = None,
    workers: o.Workers = None,
    max_pixels: o.MaxPixels = DEFAULT_MAX_PIXELS,
    strict: o.Strict = False,
    json_output: o.Json = False,
    report: o.Report = None,
    quiet: o.Quiet = False,
    verbose: o.Verbose = False,
    s3_endpoint_url: o.S3Endpoint = None,
    gcs_endpoint_url: o.GcsEndpoint = None,
) -> int:
    """Check every item of MANIFEST: ids, segment tables, and every pixel of every mask.

    Nothing is sent. One line per problem, then a summary.

    Exit codes: 0 all valid (warnings allowed unless --strict), 1 some items
    invalid, 2 usage error or unreadable manifest.

    Example:

        segcli validate masks.yaml --report problems.jsonl
        segcli validate voc.csv --void 255
    """
    from segcli.cli.common import ReportWriter, storage_options
    from segcli.cli.output import (
        Progress,
        print_json,
        problem_line,
        stderr_console,
        stdout_console,
    )
    from segcli.manifest import load_manifest
    from segcli.validation import ValidateSettings, ValidationSummary, validate

    settings_kwargs: dict[str, object] = {
        "max_pixels": max_pixels,
        "storage_options": storage_options(s3_endpoint_url, gcs_endpoint_url),
    }
    if workers is not None:
        settings_kwargs["workers"] = workers
    settings = ValidateSettings(**settings_kwargs)  # type: ignore[arg-type]

    err = stderr_console()
    # With --json, stdout carries only the JSON; problem lines move to stderr.
    lines = err if json_output else stdout_console()
    summary = ValidationSummary(strict=strict)
    items = load_manifest(
        manifest, format=format, default_segments=segments, void=void_values(void)
    )
    with (
        ReportWriter(report) as writer,
        Progress(err, title="validate", fields=("checked", "ok", "warnings", "invalid")) as bar,
    ):
        for verdict in validate(items, settings):
            label = summary.add(verdict)
            writer.write(
                {
                    "reference_id": verdict.item.reference_id,
                    "source": str(verdict.item.source),
                    "mask": verdict.item.mask,
                    "verdict": label,
                    "problems": [p.as_dict() for p in verdict.problems],
                }
            )
            for p in verdict.problems:
                if quiet and not p.is_error:
                    continue
                lines.print(problem_line(p, verdict.item), markup=False)
            if verbose and not verdict.problems:
                lines.print(f"{verdict.item.source} {verdict.item.reference_id}: ok", markup=False)
            bar.update(
                {
                    "checked": summary.items,
                    "ok": summary.ok,
                    "warnings": summary.warnings,
                    "invalid": summary.invalid,
                }
            )

    if json_output:
        print_json(summary.as_dict())
    else:
        render_validation_summary(summary, lines)
    return ExitCode.OK if summary.passed else ExitCode.ITEMS_FAILED


def void_values(text: str | None) -> tuple[int, ...]:
    from segcli.errors import UsageError
    from segcli.manifest.void import parse_void

    try:
        return parse_void(text)
    except ValueError as exc:
        raise UsageError(f"--void: {exc}") from exc


def render_validation_summary(summary: "ValidationSummary", console: "Console") -> None:
    verdict = "PASSED" if summary.passed else "FAILED"
    if summary.items == 0:
        console.print("no items in the manifest", markup=False)
    console.print(
        f"{verdict}: {summary.items} items, {summary.ok} ok, "
        f"{summary.warnings} with warnings, {summary.invalid} invalid",
        markup=False,
    )
    for code, count in sorted(summary.codes.items()):
        console.print(f"  {code}: {count}", markup=False)
