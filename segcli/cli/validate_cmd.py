"""``segcli validate``: check every mask against its segments, send nothing."""

from collections.abc import Callable
from typing import TYPE_CHECKING

from segcli.cli import options as o
from segcli.defaults import DEFAULT_MAX_PIXELS
from segcli.exitcodes import ExitCode

if TYPE_CHECKING:
    from segcli.cli.lines import CodeCounts
    from segcli.validation import ValidationSummary


def validate_command(
    manifest: o.Manifest,
    format: o.Format = None,
    segments: o.Segments = None,
    void: o.Void = None,
    base_dir: o.BaseDir = None,
    ignore: o.Ignore = None,
    error: o.ErrorCodes = None,
    allow_empty: o.AllowEmpty = False,
    workers: o.Workers = None,
    scheduler: o.Scheduler = None,
    max_pixels: o.MaxPixels = DEFAULT_MAX_PIXELS,
    strict: o.Strict = False,
    json_output: o.Json = False,
    report: o.Report = None,
    html: o.Html = None,
    html_limit: o.HtmlLimit = 500,
    quiet: o.Quiet = False,
    verbose: o.Verbose = False,
    s3_endpoint_url: o.S3Endpoint = None,
    gcs_endpoint_url: o.GcsEndpoint = None,
) -> int:
    """Check every item of MANIFEST: ids, segment tables, and every pixel of every mask.

    Nothing is sent. One line per problem, in manifest order (the same problem
    on many items is shown a few times, then counted), then a summary.

    Exit codes: 0 all valid (warnings allowed unless --strict), 1 some items
    invalid, 2 usage error, unreadable or empty manifest.

    Example:

    \b
        segcli validate sample_data/manifest.yaml --report problems.jsonl
        segcli validate sample_data/manifest.yaml --void 255
        segcli validate sample_data/manifest.yaml --html report.html
    """
    from segcli.cli.common import ReportWriter, html_page, storage_options
    from segcli.cli.lines import CodeCounts, ItemLines, OrderedLines, problem_line, shape, where
    from segcli.cli.output import Progress, print_json, stderr_console, stdout_console
    from segcli.codes import CodePolicy
    from segcli.errors import ManifestError
    from segcli.manifest import load_manifest
    from segcli.records import item_record
    from segcli.validation import ValidateSettings, ValidationSummary, validate

    settings_kwargs: dict[str, object] = {
        "max_pixels": max_pixels,
        "storage_options": storage_options(s3_endpoint_url, gcs_endpoint_url),
        "policy": CodePolicy.parse(ignore or (), error or ()),
    }
    if workers is not None:
        settings_kwargs["workers"] = workers
    if scheduler:
        settings_kwargs["scheduler"] = scheduler
    settings = ValidateSettings(**settings_kwargs)  # type: ignore[arg-type]

    err = stderr_console()
    # With --json, stdout carries only the JSON; problem lines move to stderr.
    lines = err if json_output else stdout_console()

    def say(text: str) -> None:
        lines.print(text, markup=False)

    summary = ValidationSummary(strict=strict)
    codes = CodeCounts()
    ordered = OrderedLines(say)
    items = load_manifest(
        manifest,
        format=format,
        default_segments=segments,
        base_dir=base_dir,
        void=void_values(void),
    )
    title = f"segcli validate {items.label}"
    page = html_page(html, title, limit=html_limit, report=report, settings=settings)
    with (
        ReportWriter(report) as writer,
        page,
        Progress(err, title="validate", enabled=not quiet) as bar,
    ):
        for seq, verdict in enumerate(validate(items, settings)):
            label = summary.add(verdict)
            codes.add(verdict.problems)
            writer.write(item_record(verdict.item, verdict.problems, verdict=label))
            if verdict.problems:
                page.add(verdict.item, label, verdict.problems)
            item = verdict.item
            found = ItemLines()
            for p in verdict.problems:
                if quiet and not p.is_error:
                    continue
                kind = (f"[{p.code}]", shape(p.message, item))
                found.add(problem_line(p, item), kind=kind, where=where(item, p))
            if verbose and not verdict.problems:
                found.add(f"{where(item)}: ok")
            ordered.add(seq, found)
            bad = f"invalid {summary.invalid:,}" if summary.invalid else ""
            bar.update(summary.items, extra=bad)
        page.finish(
            validation_headline(summary),
            [
                ("items", summary.items),
                ("ok", summary.ok),
                ("with warnings", summary.warnings),
                ("invalid", summary.invalid),
            ],
            failed=not summary.passed,
        )
    ordered.finish()
    for line in ordered.collapsed(report=writer.active):
        say(line)
    if summary.items == 0 and not allow_empty:
        raise ManifestError(
            f"{items.label} holds no items, so there is nothing to validate",
            hint="an empty manifest usually means a step before this one failed; "
            "pass --allow-empty if an empty manifest is expected",
        )
    code = ExitCode.OK if summary.passed else ExitCode.ITEMS_FAILED
    if json_output:
        print_json({**summary.as_dict(), "exit_code": int(code)})
    else:
        render_validation_summary(summary, codes, say)
    return code


def void_values(text: str | None) -> tuple[int, ...]:
    from segcli.errors import UsageError
    from segcli.manifest.void import parse_void

    try:
        return parse_void(text)
    except ValueError as exc:
        raise UsageError(f"--void: {exc}") from exc


def render_validation_summary(
    summary: "ValidationSummary", codes: "CodeCounts", say: Callable[[str], None]
) -> None:

    if summary.items == 0:
        say("no items in the manifest")
    say(validation_headline(summary))
    for line in codes.lines():
        say(line)


def validation_headline(summary: "ValidationSummary") -> str:
    from segcli.cli.lines import plural

    verdict = "PASSED" if summary.passed else "FAILED"
    n = summary.items
    return (
        f"{verdict}: {n:,} {plural(n, 'item')}, {summary.ok:,} ok, "
        f"{summary.warnings:,} with warnings, {summary.invalid:,} invalid"
    )
