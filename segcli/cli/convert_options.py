"""Options of ``segcli convert`` and ``segcli manifest``, declared once.

Every option also reads a ``SEGCLI_*`` environment variable (``--help`` shows it).
"""

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

# typer needs Optional[...] (not "X | None") on Python 3.10 at runtime.
Out = Annotated[
    str,
    typer.Option(
        "--out",
        help="Where the new masks go: a local folder, s3://bucket/prefix or gs://bucket/prefix.",
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
    ),
]
WriteFormat = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--format",
        help="Manifest format to write: yaml, csv or jsonl. Default: from -o's extension; "
        "jsonl for standard output.",
    ),
]
VoidLabel = Annotated[
    str,
    typer.Option(
        "--void-label",
        help="Label of the segment that void pixels become (COCO id 0, VOC 255, "
        "Cityscapes' ignored classes).",
    ),
]
VoidInto = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--void-into",
        help="Put void pixels into the segment with this label instead (added if the image "
        "has none), e.g. background.",
    ),
]
AnnotationId = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--annotation-id",
        help="annotation_id pattern for the new masks, e.g. '{reference_id}-semantic'.",
    ),
]
Force = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Convert every image again (by default an image whose sources and options are "
        "unchanged since the last run is skipped).",
    ),
]
State = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(
        "--state",
        help="Resume state (SQLite). Default: .segcli-convert.sqlite in a local --out; "
        "for a bucket, .segcli-convert-<digest>.sqlite in the working directory.",
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
        show_default=False,
    ),
]
IdPattern = Annotated[
    str,
    typer.Option(
        "--id",
        help="How a file name gives its reference_id; the rest of the name must match. "
        "Default: the name without .png.",
    ),
]


def with_common_options(fn: Callable[..., int]) -> Callable[..., int]:
    """Give a convert command the options every converter shares (``--out``, ``-o``, void...).

    ``fn`` declares its own arguments and options plus ``options``; Typer sees
    its own ones followed by the shared ones, and ``fn`` receives the shared
    ones as one ``CommonOptions``.
    """
    from segcli.cli import options as o
    from segcli.defaults import DEFAULT_MAX_PIXELS

    shared = [
        ("out", Out, inspect.Parameter.empty),
        ("manifest", ManifestOut, None),
        ("format", WriteFormat, None),
        ("void_label", VoidLabel, "void"),
        ("void_into", VoidInto, None),
        ("annotation_id", AnnotationId, None),
        ("workers", o.Workers, None),
        ("max_pixels", o.MaxPixels, DEFAULT_MAX_PIXELS),
        ("force", Force, False),
        ("state", State, None),
        ("json_output", o.Json, False),
        ("report", o.Report, None),
        ("html", o.Html, None),
        ("html_limit", o.HtmlLimit, 500),
        ("quiet", o.Quiet, False),
        ("verbose", o.Verbose, False),
        ("s3_endpoint_url", o.S3Endpoint, None),
        ("gcs_endpoint_url", o.GcsEndpoint, None),
    ]
    keyword = inspect.Parameter.KEYWORD_ONLY
    common = [inspect.Parameter(n, keyword, default=d, annotation=a) for n, a, d in shared]
    own = [p for p in inspect.signature(fn).parameters.values() if p.name != "options"]

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> int:
        from segcli.cli.convert_run import CommonOptions

        values = {name: kwargs.pop(name) for name, _, _ in shared}
        return fn(*args, options=CommonOptions(**values), **kwargs)

    parameters = [*own, *common]
    wrapper.__signature__ = inspect.Signature(parameters, return_annotation=int)  # type: ignore[attr-defined]
    # Typer also reads the annotations; ``options`` (a name only for type checkers) is not one.
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": int}
    return wrapper
