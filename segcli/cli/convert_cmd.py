"""``segcli convert FORMAT ...``: masks as datasets ship them, to index masks and a manifest."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from segcli.cli import convert_options as c
from segcli.cli import options as o

if TYPE_CHECKING:
    from segcli.cli.convert_run import CommonOptions


def _group_class() -> type:
    from segcli.cli.base import SegcliGroup

    return SegcliGroup


convert_app = typer.Typer(
    name="convert",
    cls=_group_class(),
    help=(
        "Turn masks as datasets ship them into Nucleus index masks plus a manifest.\n\n"
        "Every new mask is a one-channel 8-bit PNG with values 0..N-1, checked by the "
        "checks of `segcli validate` before it is written. A second run skips images whose "
        "sources and options are unchanged. Exit codes: 0 every image converted, 1 some "
        "images failed (each named, the others converted), 2 usage error or unreadable "
        "input.\n\n"
        "Example:\n\n\b\n"
        "    segcli convert coco-panoptic sample_data/coco/panoptic.json --out /tmp/coco"
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)


@convert_app.command("coco-panoptic")
@c.with_common_options
def coco_panoptic_command(
    panoptic_json: Annotated[
        str,
        typer.Argument(metavar="PANOPTIC_JSON", help="The COCO panoptic JSON.", show_default=False),
    ],
    masks: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--masks",
            help="Folder (or s3:// / gs:// prefix) of the RGB id PNGs. Default: the JSON's "
            "path without .json, as panopticapi expects.",
        ),
    ] = None,
    merge_stuff: Annotated[
        bool,
        typer.Option(
            "--merge-stuff",
            help="One segment per stuff category (for images with more than 256 segments).",
        ),
    ] = False,
    merge_crowd: Annotated[
        bool,
        typer.Option(
            "--merge-crowd",
            help="One segment per category for its crowd regions.",
        ),
    ] = False,
    *,
    options: "CommonOptions",
) -> int:
    """COCO panoptic (RGB id PNGs + segments_info) to index masks.

    Labels are category names; each segment's metadata holds category_id, coco_id,
    isthing, iscrowd, area, bbox and supercategory. Id 0 is void. A PNG id missing from
    segments_info, a segment missing from the PNG, an unknown category_id and a PNG of
    another size than images[] says fail that image (areas that differ from the pixel
    counts are warnings).

    Example:

    \b
        segcli convert coco-panoptic sample_data/coco/panoptic.json --out /tmp/coco
    """
    from segcli.cli.convert_run import run_command
    from segcli.convert.coco import CocoPanoptic

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


@convert_app.command("cityscapes")
@c.with_common_options
def cityscapes_command(
    root: Annotated[
        str,
        typer.Argument(
            metavar="ROOT",
            help="Folder (or prefix) below which the *_gtFine_labelIds.png / "
            "*_gtFine_instanceIds.png images are (e.g. gtFine/val).",
            show_default=False,
        ),
    ],
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            help="semantic (labelIds: one segment per class), instance (instanceIds: one per "
            "instance, stuff as background) or panoptic (instanceIds: stuff classes and "
            "instances).",
        ),
    ] = "semantic",
    keep_ignored: Annotated[
        bool,
        typer.Option(
            "--keep-ignored",
            help="Keep the classes Cityscapes ignores in evaluation (unlabeled, ego vehicle...) "
            "as their own segments instead of void.",
        ),
    ] = False,
    size: Annotated[
        str,
        typer.Option(
            "--size",
            help="The images' size, WxH (any other size fails the image), or 'any'.",
        ),
    ] = "2048x1024",
    *,
    options: "CommonOptions",
) -> int:
    """Cityscapes label images (labelIds, instanceIds) to index masks.

    The Cityscapes label table is built in: labels are class names, metadata holds
    cityscapes_id, category, isthing and, for instances, instance_id and iscrowd (a
    class id below 1000 in instanceIds is a crowd group). Ignored classes are void. The
    reference_id is {city}_{seq}_{frame} from the file name.

    Example:

    \b
        segcli convert cityscapes sample_data/cityscapes --kind panoptic --out /tmp/cs
    """
    from segcli.cli.convert_run import parse_size, run_command
    from segcli.convert.cityscapes import Cityscapes

    return run_command(
        lambda: Cityscapes(
            root,
            kind,
            keep_ignored=keep_ignored,
            size=parse_size(size),
            storage_options=options.storage_options(),
        ),
        options,
    )


@convert_app.command("consolidate")
@c.with_common_options
def consolidate_command(
    source: o.Manifest,
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="semantic: segments with the same label become one; instance: every stuff "
            "segment (isthing: false, void, or --map's stuff) becomes one background.",
            show_default=False,
        ),
    ],
    mapping: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(
            "--map",
            help="YAML with labels: {old: new} (renamed first), stuff: [...], things: [...] and "
            "background: LABEL.",
            dir_okay=False,
        ),
    ] = None,
    metadata: Annotated[
        str,
        typer.Option(
            "--metadata",
            help="Metadata keys whose values differ between merged segments: drop them, keep "
            "the first segment's, or keep the list of every value.",
        ),
    ] = "drop",
    source_format: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--source-format",
            help="MANIFEST's format: yaml, csv or jsonl. Default: from the extension, else "
            "sniffed.",
        ),
    ] = None,
    segments: o.Segments = None,
    *,
    options: "CommonOptions",
) -> int:
    """Consolidate index masks: panoptic to semantic or to instance, as the Nucleus guide does.

    Semantic: the guide's three birds (values 8, 9, 10) become one bird. Instance: its
    background, building, tree, fence, wall and pavement (values 0-5, isthing: false)
    become one background. Metadata equal across merged segments is kept; see --metadata
    for the rest.

    Example:

    \b
        segcli convert consolidate sample_data/manifest_panoptic.yaml --to semantic --out /tmp/sem
    """
    from segcli.cli.convert_run import run_command
    from segcli.convert.consolidate import Consolidate

    return run_command(
        lambda: Consolidate(
            source,
            to,
            str(mapping) if mapping else None,
            metadata,
            format=source_format,
            default_segments=str(segments) if segments else None,
        ),
        options,
    )
