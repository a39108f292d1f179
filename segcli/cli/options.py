"""Options shared by several commands, declared once.

Each can also be set from a ``SEGCLI_*`` environment variable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

# typer needs Optional[...] (not "X | None") on Python 3.10 at runtime.
Manifest = Annotated[
    str,
    typer.Argument(
        metavar="MANIFEST",
        help="Manifest file (YAML, CSV or JSONL), or - for standard input.",
        show_default=False,
    ),
]
Format = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--format",
        metavar="yaml|csv|jsonl",
        help="Manifest format: yaml, csv or jsonl. Default: from the extension, else sniffed.",
        envvar="SEGCLI_FORMAT",
    ),
]
Segments = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(
        "--segments",
        metavar="FILE",
        help="Default segment table (YAML, JSON or CSV index,label[,metadata...]).",
        envvar="SEGCLI_SEGMENTS",
        exists=False,
    ),
]
Workers = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option(
        "--workers",
        min=1,
        help="Processes that inspect masks. Default: one per core.",
        envvar="SEGCLI_WORKERS",
    ),
]
_SCHEDULER_HELP = (
    "Read and inspect masks on a Dask cluster: its scheduler's address "
    "(tcp://HOST:8786), whose workers read each mask themselves and send back only "
    "findings; or local, a LocalCluster of --workers processes on this machine. "
    "Needs pip install 'segcli[dask]'."
)
Scheduler = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--scheduler",
        metavar="ADDRESS",
        help=_SCHEDULER_HELP,
        envvar=["SEGCLI_SCHEDULER", "DASK_SCHEDULER_ADDRESS"],
    ),
]
UploadScheduler = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--scheduler",
        metavar="ADDRESS",
        help=_SCHEDULER_HELP + " With --no-validate nothing is read, so no cluster is contacted.",
        envvar=["SEGCLI_SCHEDULER", "DASK_SCHEDULER_ADDRESS"],
    ),
]
MaxPixels = Annotated[
    int,
    typer.Option(
        "--max-pixels",
        min=1,
        help="Refuse masks with more pixels than this (decompression-bomb guard).",
        envvar="SEGCLI_MAX_PIXELS",
    ),
]
Json = Annotated[
    bool,
    typer.Option(
        "--json", help="Print a machine-readable summary on stdout.", envvar="SEGCLI_JSON"
    ),
]
Report = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(
        "--report",
        help="Write one JSON line per item to this file.",
        envvar="SEGCLI_REPORT",
        dir_okay=False,
    ),
]
Quiet = Annotated[
    bool,
    typer.Option("-q", "--quiet", help="Only errors and the summary.", envvar="SEGCLI_QUIET"),
]
Verbose = Annotated[
    bool,
    typer.Option("-v", "--verbose", help="Also list items that passed.", envvar="SEGCLI_VERBOSE"),
]
Strict = Annotated[
    bool,
    typer.Option("--strict", help="Treat warnings as errors.", envvar="SEGCLI_STRICT"),
]
S3Endpoint = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--s3-endpoint-url",
        metavar="URL",
        help="S3-compatible endpoint for s3:// masks (credentials from the usual AWS variables).",
        envvar="SEGCLI_S3_ENDPOINT_URL",
    ),
]
GcsEndpoint = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--gcs-endpoint-url",
        metavar="URL",
        help="GCS endpoint for gs:// masks (for an emulator).",
        envvar="SEGCLI_GCS_ENDPOINT_URL",
    ),
]
Endpoint = Annotated[
    str,
    typer.Option(
        "--endpoint",
        metavar="URL",
        help="Nucleus API base URL.",
        envvar="NUCLEUS_ENDPOINT",
    ),
]
Void = Annotated[
    Optional[str],  # noqa: UP045
    typer.Option(
        "--void",
        help="Pixel values allowed without a segment, e.g. 0,255: reported as warnings "
        "(void-without-segment), not errors. Adds to a YAML manifest's void: list.",
        envvar="SEGCLI_VOID",
    ),
]
JournalPath = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(
        "--journal",
        help="Resume journal (SQLite). Default: MANIFEST.segcli-journal beside the manifest; "
        "with --shard, MANIFEST.shard-K-of-N.segcli-journal.",
        envvar="SEGCLI_JOURNAL",
        dir_okay=False,
    ),
]
BaseDir = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(
        "--base-dir",
        metavar="DIR",
        help="Folder that relative mask and table paths resolve against. Default: the "
        "manifest's folder (the working directory for standard input).",
        file_okay=False,
    ),
]
Ignore = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option(
        "--ignore",
        metavar="CODE[,CODE]",
        help="Drop these warning codes (repeatable).",
    ),
]
ErrorCodes = Annotated[
    Optional[list[str]],  # noqa: UP045
    typer.Option(
        "--error",
        metavar="CODE[,CODE]",
        help="Treat these warning codes as errors (repeatable).",
    ),
]
AllowEmpty = Annotated[
    bool,
    typer.Option(
        "--allow-empty",
        help="Exit 0 on a manifest with no items (by default an error: an empty manifest "
        "usually means an upstream step failed).",
    ),
]
Dataset = Annotated[
    str,
    typer.Option("--dataset", metavar="ID", help="Dataset id (ds_...).", envvar="SEGCLI_DATASET"),
]
Concurrency = Annotated[
    int,
    typer.Option(
        "--concurrency", min=1, max=64, help="Requests in flight.", envvar="SEGCLI_CONCURRENCY"
    ),
]
UploadConcurrency = Annotated[
    Optional[int],  # noqa: UP045
    typer.Option(
        "--concurrency",
        min=1,
        max=256,
        help="Requests in flight, fixed. Default: adaptive, from 10 up to --max-concurrency, "
        "by how the service answers.",
        envvar="SEGCLI_CONCURRENCY",
    ),
]
MaxConcurrency = Annotated[
    int,
    typer.Option(
        "--max-concurrency",
        min=1,
        max=256,
        help="The most requests in flight the adaptive limit may reach.",
        envvar="SEGCLI_MAX_CONCURRENCY",
    ),
]
Retries = Annotated[
    int,
    typer.Option("--retries", min=0, help="Retries per request.", envvar="SEGCLI_RETRIES"),
]
Timeout = Annotated[
    float,
    typer.Option("--timeout", min=1.0, help="Seconds per request.", envvar="SEGCLI_TIMEOUT"),
]
Html = Annotated[
    Optional[Path],  # noqa: UP045
    typer.Option(
        "--html",
        metavar="FILE",
        help="Also write a self-contained HTML page: the summary, then a card per problem "
        "item with its mask drawn, offending pixels lit up.",
        dir_okay=False,
    ),
]
HtmlLimit = Annotated[
    int,
    typer.Option(
        "--html-limit",
        min=1,
        help="Cards on the --html page at most; the page counts the rest (--report lists all).",
    ),
]
