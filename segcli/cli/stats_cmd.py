"""``segcli stats``: what the masks of a manifest hold, per label, size and segment count."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from segcli.cli import options as o
from segcli.defaults import DEFAULT_MAX_PIXELS
from segcli.exitcodes import ExitCode

if TYPE_CHECKING:
    from collections.abc import Sequence

    from segcli.stats import SetStats

#: sizes listed in the table before the rest are counted (--json lists all)
SIZES_LISTED = 10


def stats_command(
    manifest: o.Manifest,
    plot: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--plot",
            metavar="FILE",
            help="Also draw class balance, mask sizes and segments per mask into this PNG.",
            dir_okay=False,
        ),
    ] = None,
    top: Annotated[
        int,
        typer.Option(
            "--top",
            min=1,
            help="Labels the plot draws one by one (the largest); the rest share one bar.",
        ),
    ] = 40,
    format: o.Format = None,
    segments: o.Segments = None,
    void: o.Void = None,
    base_dir: o.BaseDir = None,
    workers: o.Workers = None,
    max_pixels: o.MaxPixels = DEFAULT_MAX_PIXELS,
    json_output: o.Json = False,
    quiet: o.Quiet = False,
    s3_endpoint_url: o.S3Endpoint = None,
    gcs_endpoint_url: o.GcsEndpoint = None,
) -> int:
    """Count what the masks of MANIFEST hold: per label, the masks it appears in, its
    segments (instances) and its pixel area; masks per size; masks per segment count.

    Every mask is read and decoded once, on the worker pool validate uses.
    Items that cannot be counted (manifest errors, a mask that cannot be read or
    decoded) are left out and counted; segcli validate says why.

    Exit codes: 0 every item counted; 1 some left out; 2 usage error,
    unreadable or empty manifest.

    Example:

    \b
        segcli stats sample_data/manifest.yaml --plot stats.png
    """
    from segcli.cli.common import storage_options
    from segcli.cli.output import Progress, print_json, stderr_console, stdout_console
    from segcli.cli.validate_cmd import void_values
    from segcli.errors import ManifestError, UsageError
    from segcli.manifest import load_manifest
    from segcli.stats import collect
    from segcli.validation import ValidateSettings

    if plot is not None and plot.suffix.lower() != ".png":
        raise UsageError(f"--plot {plot}: the plot is a PNG; name it FILE.png")
    kwargs: dict[str, object] = {
        "max_pixels": max_pixels,
        "storage_options": storage_options(s3_endpoint_url, gcs_endpoint_url),
    }
    if workers is not None:
        kwargs["workers"] = workers
    settings = ValidateSettings(**kwargs)  # type: ignore[arg-type]
    items = load_manifest(
        manifest, format=format, default_segments=segments, base_dir=base_dir,
        void=void_values(void),
    )  # fmt: skip
    err = stderr_console()
    with Progress(err, title="stats", enabled=not quiet) as bar:
        stats = collect(items, settings, progress=lambda s: bar.update(s.items))
    if stats.items == 0:
        raise ManifestError(
            f"{items.label} holds no items, so there is nothing to count",
            hint="an empty manifest usually means a step before this one failed",
        )
    if plot is not None:
        from segcli.stats_plot import write_plot

        try:
            write_plot(stats, str(plot), top=top, title=f"segcli stats {items.label}")
        except OSError as exc:
            raise UsageError(
                f"cannot write the plot {plot}: {exc.strerror or exc}; choose another --plot"
            ) from exc
    code = ExitCode.ITEMS_FAILED if stats.left_out else ExitCode.OK
    if json_output:
        print_json({**stats.as_dict(), "plot": str(plot) if plot else None, "exit_code": int(code)})
        return code
    out = stdout_console()
    for line in stats_lines(stats):
        out.print(line, markup=False, highlight=False)
    if plot is not None:
        out.print(f"plot: {plot}", markup=False)
    return code


def stats_lines(stats: "SetStats") -> list[str]:
    """The table: a headline, one row per label by area, then sizes and segment counts."""
    from segcli.cli.lines import plural

    lines = [
        f"{stats.masks:,} {plural(stats.masks, 'mask')}, {stats.pixels:,} pixels, "
        f"{len(stats.labels):,} {plural(len(stats.labels), 'label')}"
    ]
    rows = [("label", "masks", "segments", "pixels", "area")]
    total = stats.pixels or 1
    for s in [*stats.ranked(), stats.unlabelled, stats.void]:
        if s.pixels or s in stats.labels.values():
            share = f"{100 * s.pixels / total:.1f}%"
            rows.append((s.label, f"{s.masks:,}", f"{s.segments:,}", f"{s.pixels:,}", share))
    lines += _table(rows, right=(False, True, True, True, True))
    sizes = sorted(stats.sizes.items(), key=lambda x: (-x[1], x[0]))
    if sizes:
        lines.append("masks per size:")
        listed = [("size", "masks")]
        listed += [(f"{w}x{h}", f"{n:,}") for (w, h), n in sizes[:SIZES_LISTED]]
        lines += _table(listed, right=(False, True), indent="  ")
        if len(sizes) > SIZES_LISTED:
            more = sum(n for _, n in sizes[SIZES_LISTED:])
            lines.append(f"  ... and {len(sizes) - SIZES_LISTED:,} more sizes ({more:,} masks)")
    if stats.segment_counts:
        from segcli.stats_plot import segment_buckets

        lines.append("masks per segment count:")
        buckets = segment_buckets(dict(stats.segment_counts))
        counted = [("segments", "masks"), *((k, f"{n:,}") for k, n in buckets)]
        lines += _table(counted, right=(True, True), indent="  ")
    if stats.left_out:
        n = sum(stats.left_out.values())
        lines.append(f"left out: {n:,} {plural(n, 'item')} that could not be counted:")
        for code_name, count in sorted(stats.left_out.items()):
            first = stats.first_left_out[code_name]
            lines.append(f"  {code_name}: {count:,} (first: {first})")
        lines.append("  segcli validate names each one and says what to do")
    return lines


def _table(
    rows: "Sequence[tuple[str, ...]]", *, right: tuple[bool, ...], indent: str = ""
) -> list[str]:
    from rich.cells import cell_len

    from segcli.cli.lines import printable

    cells = [[printable(c) for c in row] for row in rows]
    widths = [max(cell_len(r[i]) for r in cells) for i in range(len(right))]
    out = []
    for row in cells:
        parts: list[str] = []
        for cell, width, flush_right in zip(row, widths, right, strict=True):
            pad = " " * (width - cell_len(cell))
            parts.append(pad + cell if flush_right else cell + pad)
        out.append(indent + "  ".join(parts).rstrip())
    return out
