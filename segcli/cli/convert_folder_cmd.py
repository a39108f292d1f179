"""``segcli convert palette|colour|wide``: folders of masks with a labels table."""

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from segcli.cli import convert_options as c
from segcli.cli.convert_cmd import convert_app

if TYPE_CHECKING:
    from segcli.cli.convert_run import CommonOptions


def _values(text: Optional[str], option: str) -> tuple[int, ...]:  # noqa: UP045
    from segcli.errors import UsageError

    if text is None or text.strip().lower() == "none":
        return ()
    try:
        return tuple(sorted({int(v) for v in text.split(",") if v.strip()}))
    except ValueError:
        raise UsageError(f"{option} {text!r}: give integers separated by commas") from None


@convert_app.command("palette")
@c.with_common_options
def palette_command(
    masks: c.Masks,
    labels: c.Labels,
    void_index: Annotated[
        str,
        typer.Option(
            "--void-index",
            help="Palette indices that are void (VOC's object borders are 255), comma-separated, "
            "or none.",
        ),
    ] = "255",
    pattern: c.IdPattern = "{reference_id}.png",
    *,
    options: "CommonOptions",
) -> int:
    """Palette (mode P) masks, as Pascal VOC and CVAT write them, to index masks.

    The palette indices are read, never the colours; index i is the i-th label of a
    labelmap.txt, or the label with index i in a segment table. An RGB mask is refused
    (use `segcli convert colour`); a palette colour that differs from the labels' is a
    warning.

    Example:

    \b
        segcli convert palette sample_data/voc --out /tmp/voc \\
            --labels sample_data/voc/labelmap.txt
    """
    from segcli.cli.convert_run import run_command
    from segcli.convert.palette import Palette

    return run_command(
        lambda: Palette(
            masks,
            str(labels),
            _values(void_index, "--void-index"),
            pattern,
            options.storage_options(),
        ),
        options,
    )


@convert_app.command("colour")
@c.with_common_options
def colour_command(
    masks: c.Masks,
    labels: c.Labels,
    void_colour: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--void-colour",
            help="A colour R,G,B that is void (repeatable), e.g. 224,224,192 for VOC's borders.",
        ),
    ] = None,
    pattern: c.IdPattern = "{reference_id}.png",
    *,
    options: "CommonOptions",
) -> int:
    """Colour-coded RGB masks to index masks, by the colours of a labels file.

    Each pixel's colour must be a label's colour exactly; other colours fail the image,
    listed with their pixel counts. Opaque RGBA masks are read as RGB.

    Example:

    \b
        segcli convert colour sample_data/colour --out /tmp/colour \\
            --labels sample_data/colour/labelmap.txt
    """
    from segcli.cli.convert_run import run_command
    from segcli.convert.colour import ColourMasks
    from segcli.convert.labels import parse_colour

    return run_command(
        lambda: ColourMasks(
            masks,
            str(labels),
            tuple(parse_colour(v, "--void-colour") for v in void_colour or ()),
            pattern,
            options.storage_options(),
        ),
        options,
    )


@convert_app.command("wide")
@c.with_common_options
def wide_command(
    masks: c.Masks,
    segments: Annotated[
        Path,
        typer.Option(
            "--segments",
            help="Segment table whose index is the class id (YAML, JSON or CSV).",
            show_default=False,
        ),
    ],
    class_divisor: Annotated[
        int,
        typer.Option(
            "--class-divisor",
            min=1,
            help="class = value // this (Mapillary: 256); 1: every value is its own class.",
        ),
    ] = 256,
    void_value: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--void-value",
            help="Raw values that are void, comma-separated.",
        ),
    ] = None,
    pattern: c.IdPattern = "{reference_id}.png",
    *,
    options: "CommonOptions",
) -> int:
    """16- or 32-bit instance masks (at most 256 values an image) to index masks.

    Every distinct value becomes one segment, labelled by its class (value //
    --class-divisor) in the segment table; metadata adds class_id and instance_id.

    Example:

    \b
        segcli convert wide sample_data/wide --out /tmp/wide \\
            --segments sample_data/wide/classes.yaml
    """
    from segcli.cli.convert_run import run_command
    from segcli.convert.wide import WideMasks

    return run_command(
        lambda: WideMasks(
            masks,
            str(segments),
            class_divisor,
            _values(void_value, "--void-value"),
            pattern,
            options.storage_options(),
        ),
        options,
    )
