"""``segcli manifest``: a manifest from a folder (or bucket prefix) of masks."""

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from segcli.cli import convert_options as c
from segcli.cli import options as o
from segcli.exitcodes import ExitCode


def manifest_command(
    root: Annotated[
        str,
        typer.Argument(
            metavar="DIR_OR_PREFIX",
            help="Folder, s3://bucket/prefix or gs://bucket/prefix of index masks (*.png).",
            show_default=False,
        ),
    ],
    segments: Annotated[
        Path,
        typer.Option(
            "--segments",
            help="Segment table for every mask (YAML, JSON or CSV index,label[,metadata...]).",
            show_default=False,
        ),
    ],
    pattern: c.IdPattern = "{reference_id}.png",
    manifest: Annotated[
        str,
        typer.Option(
            "-o",
            "--manifest",
            help="Manifest to write (.yaml, .csv or .jsonl), or - for standard output (YAML).",
        ),
    ] = "-",
    format: c.WriteFormat = None,
    void: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--void",
            help="Pixel values the masks leave without a segment on purpose, e.g. 255: written "
            "as the manifest's void: key (YAML), so validate reports them as warnings.",
        ),
    ] = None,
    json_output: o.Json = False,
    quiet: o.Quiet = False,
    s3_endpoint_url: o.S3Endpoint = None,
    gcs_endpoint_url: o.GcsEndpoint = None,
) -> int:
    """List the masks under DIR_OR_PREFIX and write a manifest for them.

    Each reference_id comes from a file name by --id (default: the name without .png);
    files that do not match are listed and left out. Local mask paths are written
    relative to the manifest (absolute on standard output); s3:// and gs:// masks keep
    their URLs. Nothing is checked here: run `segcli validate` on the result.

    Exit codes: 0 written; 1 written, but some files did not match or repeat a
    reference_id; 2 usage error, unreadable table or no masks found.

    Example:

    \b
        segcli manifest sample_data/folder --segments sample_data/folder/classes.json \\
            --id '{reference_id}_mask.png' -o /tmp/folder.yaml
    """
    from segcli.cli.common import storage_options
    from segcli.cli.convert_run import emit_error
    from segcli.cli.output import print_json, stderr_console
    from segcli.cli.validate_cmd import void_values
    from segcli.errors import SegcliError, UsageError
    from segcli.folder_manifest import Listing, folder_items
    from segcli.manifest import load_segment_table
    from segcli.manifest.writer import ManifestWriter

    json_stream = sys.stderr if manifest == "-" else sys.stdout
    err = stderr_console()
    try:
        table = load_segment_table(segments)
        declared = void_values(void)
        listing = Listing()
        items = folder_items(
            root,
            table,
            pattern=pattern,
            storage_options=storage_options(s3_endpoint_url, gcs_endpoint_url),
            listing=listing,
        )
        kind = format or ("yaml" if manifest == "-" else None)
        with ManifestWriter(
            manifest,
            format=kind,
            default_segments=table,
            void=declared,
            comment=f"Masks under {root}.",
        ) as writer:
            if declared and writer.format != "yaml":
                raise UsageError("--void is written as a YAML manifest's void: key; use .yaml")
            for item in items:
                writer.write(item)
            if writer.count == 0:
                raise UsageError(
                    f"no masks under {root} match {pattern!r} "
                    f"({len(listing.unmatched)} PNGs did not); check the folder and --id"
                )
    except SegcliError as exc:
        if not (json_output and manifest == "-"):
            raise  # segcli's command wrapper says it, and prints the JSON object on stdout
        return emit_error(exc, json_stream)
    for name in listing.unmatched if not quiet else ():
        err.print(f"{root}: skipped {name}: its name does not match {pattern!r}", markup=False)
    for ref, first, again in listing.repeated:
        err.print(
            f"{root}: skipped {again}: reference_id {ref!r} already from {first}", markup=False
        )
    where = "standard output" if manifest == "-" else manifest
    code = ExitCode.ITEMS_FAILED if listing.unmatched or listing.repeated else ExitCode.OK
    summary = {
        "masks": writer.count,
        "unmatched": len(listing.unmatched),
        "repeated": len(listing.repeated),
        "manifest": where,
        "exit_code": int(code),
    }
    if json_output:
        print_json(summary, json_stream)
    else:
        err.print(
            f"wrote {writer.count} items to {where}; {len(listing.unmatched)} files did not match, "
            f"{len(listing.repeated)} repeated a reference_id",
            markup=False,
        )
    return code
