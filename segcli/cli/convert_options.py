"""Options of ``segcli convert`` and ``segcli manifest``, declared once.

Every option also reads a ``SEGCLI_*`` environment variable (``--help`` shows it).
"""

from pathlib import Path
from typing import Annotated, Optional

import typer

# typer needs Optional[...] (not "X | None") on Python 3.10 at runtime.
Out = Annotated[
    str,
    typer.Option(
        "--out",
        help="Where the new masks go: a local folder, s3://bucket/prefix or gs://bucket/prefix.",
        envvar="SEGCLI_OUT",
        show_default=False,
    ),
]
ManifestOut = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "-o",
        "--manifest",
        help="Manifest to write (.yaml, .csv or .jsonl), or - for standard output (JSONL). "
        "Default: manifest.yaml in a local --out.",
        envvar="SEGCLI_MANIFEST",
    ),
]
WriteFormat = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--format",
        help="Manifest format to write: yaml, csv or jsonl. Default: from -o's extension; "
        "jsonl for standard output.",
        envvar="SEGCLI_FORMAT",
    ),
]
VoidLabel = Annotated[
    str,
    typer.Option(
        "--void-label",
        help="Label of the segment that void pixels become (COCO id 0, VOC 255, "
        "Cityscapes' ignored classes).",
        envvar="SEGCLI_VOID_LABEL",
    ),
]
VoidInto = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--void-into",
        help="Put void pixels into the segment with this label instead (added if the image "
        "has none), e.g. background.",
        envvar="SEGCLI_VOID_INTO",
    ),
]
AnnotationId = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--annotation-id",
        help="annotation_id pattern for the new masks, e.g. '{reference_id}-semantic'.",
        envvar="SEGCLI_ANNOTATION_ID",
    ),
]
Force = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Convert every image again (by default an image whose sources and options are "
        "unchanged since the last run is skipped).",
        envvar="SEGCLI_FORCE",
    ),
]
State = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(
        "--state",
        help="Resume state (SQLite). Default: .segcli-convert.sqlite in a local --out; "
        "for a bucket, .segcli-convert-<digest>.sqlite in the working directory.",
        envvar="SEGCLI_STATE",
        dir_okay=False,
    ),
]
Masks = Annotated[
    str,
    typer.Argument(
        metavar="MASKS",
        help="Folder (or s3:// / gs:// prefix) of the source PNGs; every *.png below it is read.",
        show_default=False,
    ),
]
Labels = Annotated[
    Path,
    typer.Option(
        "--labels",
        help="labelmap.txt (name:R,G,B::, as CVAT and Pascal VOC write it) or a segment table "
        "(YAML, JSON or CSV of index, label[, metadata]).",
        envvar="SEGCLI_LABELS",
        show_default=False,
    ),
]
IdPattern = Annotated[
    str,
    typer.Option(
        "--id",
        help="How a file name gives its reference_id; the rest of the name must match. "
        "Default: the name without .png.",
        envvar="SEGCLI_ID",
    ),
]
