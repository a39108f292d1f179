"""What every ``segcli convert`` command does around its converter.

Build the settings, run the conversion, write the manifest and the report
as results come, show progress, print one line per problem and a summary,
and map the outcome to an exit code. With ``--json`` one JSON object is
printed on every exit path: the summary, or ``{"error": ..., "exit_code"}``.
It goes to standard output, or to standard error when ``-o -`` puts the
manifest there.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from segcli.exitcodes import ExitCode

if TYPE_CHECKING:
    from segcli.convert.job import Converter, ImageResult
    from segcli.convert.run import ConvertSummary
    from segcli.model import MaskItem


@dataclass(frozen=True, slots=True, kw_only=True)
class CommonOptions:
    out: str
    manifest: str | None
    format: str | None
    void_label: str
    void_into: str | None
    annotation_id: str | None
    workers: int | None
    max_pixels: int
    force: bool
    state: Path | None
    json_output: bool
    report: Path | None
    html: Path | None
    html_limit: int
    quiet: bool
    verbose: bool
    s3_endpoint_url: str | None
    gcs_endpoint_url: str | None

    def storage_options(self) -> dict[str, dict[str, Any]] | None:
        from segcli.cli.common import storage_options

        return storage_options(self.s3_endpoint_url, self.gcs_endpoint_url)

    def manifest_target(self, out: str) -> str:
        from segcli.convert.outputs import is_remote
        from segcli.errors import UsageError

        if self.manifest:
            return self.manifest
        if is_remote(self.out):
            raise UsageError(
                "give -o FILE (or -o - for standard output) for the manifest: --out is a bucket"
            )
        return os.path.join(out, "manifest.yaml")


def run_command(build: Any, options: CommonOptions) -> int:
    """Run ``build() -> Converter`` and the conversion; every error becomes an exit code.

    Errors reach segcli's command wrapper (message, hint, exit code, and the
    JSON object on stdout with ``--json``), except with ``-o -``: stdout is
    the manifest then, so the JSON object goes to stderr.
    """
    from segcli.errors import SegcliError

    json_stream = sys.stderr if options.manifest == "-" else sys.stdout
    try:
        return _run(build(), options, json_stream)
    except SegcliError as exc:
        if not (options.json_output and options.manifest == "-"):
            raise
        return emit_error(exc, json_stream)


def emit_error(exc: Exception, stream: Any) -> int:
    """The message on stderr and segcli's ``{"error": ..., "exit_code"}`` on ``stream``."""
    from segcli.cli.errors import describe, error_record

    kind, message, hint = describe(exc)
    sys.stderr.write(f"segcli: {kind.title}: {message}\n  {hint}\n")
    _json(error_record(kind, message, hint), stream)
    return int(kind.exit_code)


def parse_size(text: str) -> tuple[int, int] | None:
    """``WxH`` as (width, height); ``any`` as None (no size check)."""
    from segcli.errors import UsageError

    if text.strip().lower() == "any":
        return None
    width, sep, height = text.lower().partition("x")
    if not (sep and width.strip().isdigit() and height.strip().isdigit()):
        raise UsageError(f"--size {text!r}: give WxH, e.g. 2048x1024, or any")
    return int(width), int(height)


def _json(data: Any, stream: Any) -> None:
    from segcli.cli.output import print_json

    print_json(data, stream)


def _run(converter: Converter, options: CommonOptions, json_stream: Any) -> int:
    from segcli.cli.common import ReportWriter, html_page
    from segcli.cli.output import Progress, stderr_console, stdout_console
    from segcli.convert.outputs import check_out
    from segcli.convert.run import ConvertSettings, ConvertSummary, convert_masks
    from segcli.convert.void import VoidRule
    from segcli.errors import UsageError
    from segcli.manifest.writer import ManifestWriter

    kwargs: dict[str, Any] = {}
    if options.workers is not None:
        kwargs["workers"] = options.workers
    out = check_out(options.out)  # made before the manifest is opened inside it
    settings = ConvertSettings(
        out=out,
        max_pixels=options.max_pixels,
        storage_options=options.storage_options(),
        void=VoidRule(label=options.void_label, into=options.void_into),
        annotation_id=options.annotation_id,
        force=options.force,
        state_path=str(options.state) if options.state else None,
        **kwargs,
    )
    target = options.manifest_target(out)
    err = stderr_console()
    quiet_stdout = options.json_output or target == "-"
    lines = err if quiet_stdout else stdout_console()
    summary = ConvertSummary()
    title = f"segcli convert {converter.name} --out {settings.out}"
    page = html_page(
        options.html, title, limit=options.html_limit, report=options.report, settings=settings
    )
    with (
        ReportWriter(options.report) as report,
        page,
        ManifestWriter(target, format=options.format) as manifest,
        Progress(err, title=f"convert {converter.name}", enabled=not options.quiet) as bar,
    ):
        for result in convert_masks(converter, settings):
            summary.add(result)
            if report.active:
                report.write(result.as_dict())
            if result.item is not None:
                manifest.write(result.item)
            _print_problems(result, lines, options)
            if result.problems:
                page.add(result.item or failed_item(result), result.state, result.problems)
            skipped = f"unchanged {summary.skipped:,}" if summary.skipped else ""
            failed = f"failed {summary.failed:,}" if summary.failed else ""
            bar.update(summary.images, extra=", ".join(p for p in (skipped, failed) if p))
        page.finish(
            convert_headline(summary, "standard output" if target == "-" else target),
            [("images", summary.images), ("converted", summary.converted),
             ("unchanged", summary.skipped), ("failed", summary.failed)],
            failed=not summary.passed,
        )  # fmt: skip
    if summary.images == 0:
        raise UsageError(
            f"no images found for {converter.name}; check the paths and patterns given"
        )
    where = "standard output" if target == "-" else target
    code = ExitCode.OK if summary.passed else ExitCode.ITEMS_FAILED
    if options.json_output:
        record = {**summary.as_dict(), "out": settings.out, "manifest": where}
        _json({**record, "exit_code": int(code)}, json_stream)
    else:
        _render(summary, where, lines)
    return code


def _print_problems(result: ImageResult, console: Any, options: CommonOptions) -> None:
    for p in result.problems:
        if options.quiet and not p.is_error:
            continue
        where = f"{p.source or result.where} {result.reference_id}"
        console.print(f"{where}: {p.severity.value} [{p.code}] {p.message}", markup=False)
    if options.verbose and not result.problems:
        console.print(f"{result.where} {result.reference_id}: {result.state}", markup=False)


def convert_headline(summary: ConvertSummary, where: str) -> str:
    verdict = "CONVERTED" if summary.passed else "FAILED"
    return (
        f"{verdict}: {summary.images} images, {summary.converted} converted, "
        f"{summary.skipped} unchanged, {summary.failed} failed; manifest: {where}"
    )


def failed_item(result: ImageResult) -> MaskItem:
    """A card's item for an image that was not converted: no mask to draw, only its problems."""
    from segcli.model import MaskItem

    return MaskItem(result.reference_id, "", (), result.where)


def _render(summary: ConvertSummary, where: str, console: Any) -> None:
    console.print(convert_headline(summary, where), markup=False)
    for code, count in sorted(summary.codes.items()):
        console.print(f"  {code}: {count}", markup=False)
