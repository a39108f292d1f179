"""``segcli convert FORMAT ...``: masks as datasets ship them, to index masks and a manifest."""

from typing import Annotated, Optional

import typer

from segcli.cli import convert_options as c
from segcli.cli import options as o
from segcli.defaults import DEFAULT_MAX_PIXELS

convert_app = typer.Typer(
    name="convert",
    help=(
        "Turn masks as datasets ship them into Nucleus index masks plus a manifest.\n\n"
        "Every new mask is a one-channel 8-bit PNG with values 0..N-1, checked by the "
        "checks of `segcli validate` before it is written. A second run skips images whose "
        "sources and options are unchanged. Exit codes: 0 every image converted, 1 some "
        "images failed (each named, the others converted), 2 usage error or unreadable "
        "input.\n\n"
        "Example:\n\n"
        "    segcli convert coco-panoptic panoptic.json --out masks/ -o masks.yaml"
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)


@convert_app.command("coco-panoptic")
def coco_panoptic_command(
    panoptic_json: Annotated[
        str,
        typer.Argument(metavar="PANOPTIC_JSON", help="The COCO panoptic JSON.", show_default=False),
    ],
    out: c.Out,
    masks: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--masks",
            help="Folder (or s3:// / gs:// prefix) of the RGB id PNGs. Default: the JSON's "
            "path without .json, as panopticapi expects.",
            envvar="SEGCLI_MASKS",
        ),
    ] = None,
    merge_stuff: Annotated[
        bool,
        typer.Option(
            "--merge-stuff",
            help="One segment per stuff category (for images with more than 256 segments).",
            envvar="SEGCLI_MERGE_STUFF",
        ),
    ] = False,
    merge_crowd: Annotated[
        bool,
        typer.Option(
            "--merge-crowd",
            help="One segment per category for its crowd regions.",
            envvar="SEGCLI_MERGE_CROWD",
        ),
    ] = False,
    manifest: c.ManifestOut = None,
    format: c.WriteFormat = None,
    void_label: c.VoidLabel = "void",
    void_into: c.VoidInto = None,
    annotation_id: c.AnnotationId = None,
    workers: o.Workers = None,
    max_pixels: o.MaxPixels = DEFAULT_MAX_PIXELS,
    force: c.Force = False,
    state: c.State = None,
    json_output: o.Json = False,
    report: o.Report = None,
    quiet: o.Quiet = False,
    verbose: o.Verbose = False,
    s3_endpoint_url: o.S3Endpoint = None,
    gcs_endpoint_url: o.GcsEndpoint = None,
) -> int:
    """COCO panoptic (RGB id PNGs + segments_info) to index masks.

    Labels are category names; each segment's metadata holds category_id, coco_id,
    isthing, iscrowd, area, bbox and supercategory. Id 0 is void. A PNG id missing from
    segments_info, a segment missing from the PNG, an unknown category_id and a PNG of
    another size than images[] says fail that image (areas that differ from the pixel
    counts are warnings).

    Example:

        segcli convert coco-panoptic sample_data/sources/coco/panoptic.json --out /tmp/coco
    """
    from segcli.cli.convert_run import CommonOptions, run_command
    from segcli.convert.coco import CocoPanoptic

    options = CommonOptions.pick(locals())
    return run_command(
        lambda: CocoPanoptic(
            panoptic_json,
            masks,
            merge_stuff=merge_stuff,
            merge_crowd=merge_crowd,
            storage_options=options.storage_options(),
        ),
        options,
    )
