"""``segcli serve``: the Nucleus-compatible local server."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from segcli.exitcodes import ExitCode


def serve_command(
    host: Annotated[
        str, typer.Option("--host", metavar="ADDRESS", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, help="Port; 0 picks a free one.")] = 0,
    data_dir: Annotated[
        Path,
        typer.Option(
            "--data-dir", help="Where the SQLite store and mask files live.", file_okay=False
        ),
    ] = Path("segcli-server-data"),
    api_key: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--api-key",
            metavar="KEY",
            envvar="NUCLEUS_API_KEY",
            help="An API key the server accepts (repeatable; in the variable, "
            "several separated by spaces).",
        ),
    ] = None,
    auto_items: Annotated[
        bool,
        typer.Option("--auto-items", help="Create missing dataset items on first use (demos)."),
    ] = False,
    dataset: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--dataset",
            metavar="NAME",
            help="Create (or reuse) a dataset with this name at start-up.",
        ),
    ] = None,
    dataset_id: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--dataset-id",
            metavar="ID",
            help="With --dataset: the id to give it (default: random).",
        ),
    ] = None,
    items_from: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--items-from",
            metavar="MANIFEST",
            help="With --dataset: add the reference_ids of this manifest.",
        ),
    ] = None,
    reference_id: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--reference-id", metavar="ID", help="With --dataset: add this item (repeatable)."
        ),
    ] = None,
    model: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--model",
            metavar="NAME",
            help="Create (or reuse) a model with this name at start-up and print its id "
            "on stderr (repeatable).",
        ),
    ] = None,
    strict_masks: Annotated[
        bool,
        typer.Option(
            "--strict-masks",
            help="Refuse masks with a pixel value that has no segment (the service accepts them).",
        ),
    ] = False,
    decode_masks: Annotated[
        bool,
        typer.Option(
            "--decode-masks/--no-decode-masks",
            help="Decode each uploaded mask to check its pixels. --no-decode-masks checks only "
            "its PNG structure and header: for benchmarks, where this server stands in for a "
            "remote service whose CPU is not the client's.",
        ),
    ] = True,
    max_inflight: Annotated[
        Optional[int],  # noqa: UP045
        typer.Option(
            "--max-inflight",
            metavar="N",
            min=1,
            help="Take at most N requests at once; answer 429 with Retry-After (--retry-after) "
            "above that, like a service with a fixed capacity.",
        ),
    ] = None,
    max_body_mb: Annotated[
        float,
        typer.Option("--max-body-mb", min=0.001, help="Refuse request bodies over this (413)."),
    ] = 64.0,
    fault_seed: Annotated[int, typer.Option("--fault-seed", help="Seed for fault injection.")] = 0,
    latency: Annotated[
        float, typer.Option("--latency", min=0.0, help="Seconds added to every request.")
    ] = 0.0,
    latency_jitter: Annotated[
        float, typer.Option("--latency-jitter", min=0.0, help="Random extra seconds, 0..this.")
    ] = 0.0,
    rate_503: Annotated[
        float,
        typer.Option("--rate-503", min=0.0, max=1.0, help="Share of upload requests answered 503."),
    ] = 0.0,
    rate_429: Annotated[
        float,
        typer.Option("--rate-429", min=0.0, max=1.0, help="Share answered 429 with Retry-After."),
    ] = 0.0,
    retry_after: Annotated[
        float,
        typer.Option(
            "--retry-after",
            min=0.0,
            help="Retry-After seconds on a 429 (--rate-429, --max-inflight).",
        ),
    ] = 1.0,
    rate_500: Annotated[
        float, typer.Option("--rate-500", min=0.0, max=1.0, help="Share answered 500.")
    ] = 0.0,
    rate_504: Annotated[
        float, typer.Option("--rate-504", min=0.0, max=1.0, help="Share answered 504.")
    ] = 0.0,
    rate_drop: Annotated[
        float,
        typer.Option(
            "--rate-drop", min=0.0, max=1.0, help="Share of connections dropped mid-response."
        ),
    ] = 0.0,
    rate_stall: Annotated[
        float, typer.Option("--rate-stall", min=0.0, max=1.0, help="Share of requests that stall.")
    ] = 0.0,
    stall_seconds: Annotated[
        float,
        typer.Option("--stall-seconds", min=0.0, help="How long a stall lasts before its 504."),
    ] = 130.0,
    rate_lost: Annotated[
        float,
        typer.Option(
            "--rate-lost",
            min=0.0,
            max=1.0,
            help="Share of requests whose write is applied but whose answer is cut off.",
        ),
    ] = 0.0,
    s3_endpoint_url: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--s3-endpoint-url",
            metavar="URL",
            help="Fetch and check s3:// masks from this S3-compatible endpoint "
            "(credentials from the usual AWS variables). Default: store s3:// URLs unchecked.",
        ),
    ] = None,
    gcs_endpoint_url: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--gcs-endpoint-url",
            metavar="URL",
            help="Fetch and check gs:// masks from this GCS endpoint (an emulator).",
        ),
    ] = None,
    fault_route: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option(
            "--fault-route",
            metavar="ROUTE",
            help="Route names faults apply to (repeatable; '*' for all). Default: upload routes.",
        ),
    ] = None,
) -> int:
    """Run a Nucleus-compatible server on this machine, backed by SQLite.

    Prints its base URL (http://HOST:PORT/v1/nucleus) on the first line of
    stdout once it listens; stops cleanly on Ctrl-C or SIGTERM. Faults apply
    to upload requests only, and a request answered with a fault stores nothing.

    Example:

    \b
        segcli serve --port 8765 --dataset demo --dataset-id ds_demo \\
            --items-from sample_data/manifest.yaml --model demo-model
    """
    import sys

    from segcli.cli.common import storage_options
    from segcli.errors import UsageError
    from segcli.server import FaultConfig, ServerConfig, seed_dataset, seed_model, serve_forever

    keys = tuple(api_key or ())
    if not keys:
        raise UsageError("the server needs a key: pass --api-key KEY or set NUCLEUS_API_KEY")
    if (items_from or reference_id or dataset_id) and not dataset:
        raise UsageError("--items-from, --reference-id and --dataset-id need --dataset NAME")
    if strict_masks and not decode_masks:
        raise UsageError(
            "--strict-masks and --no-decode-masks exclude each other",
            hint="--strict-masks judges pixel values, which takes decoding: drop one of them",
        )

    data_dir.mkdir(parents=True, exist_ok=True)
    if dataset:
        refs: list[str] = list(reference_id or ())
        if items_from:
            from segcli.manifest import load_manifest

            refs += [i.reference_id for i in load_manifest(items_from) if i.reference_id]
        made = seed_dataset(data_dir, dataset, refs, dataset_id=dataset_id)
        sys.stderr.write(f"dataset {dataset!r}: {made} ({len(refs)} items)\n")
    for name in dict.fromkeys(model or ()):
        sys.stderr.write(f"model {name!r}: {seed_model(data_dir, name)}\n")

    config = ServerConfig(
        host=host,
        port=port,
        data_dir=data_dir,
        api_keys=keys,
        auto_items=auto_items,
        strict_masks=strict_masks,
        decode_masks=decode_masks,
        max_inflight=max_inflight,
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        storage_options=storage_options(s3_endpoint_url, gcs_endpoint_url),
        faults=FaultConfig(
            seed=fault_seed,
            latency_s=latency,
            latency_jitter_s=latency_jitter,
            rate_503=rate_503,
            rate_429=rate_429,
            retry_after_s=retry_after,
            rate_500=rate_500,
            rate_504=rate_504,
            rate_drop=rate_drop,
            rate_stall=rate_stall,
            rate_lost=rate_lost,
            stall_s=stall_seconds,
            **({"routes": tuple(fault_route)} if fault_route else {}),
        ),
    )

    def ready(url: str) -> None:
        print(url, flush=True)

    serve_forever(config, on_ready=ready)
    return ExitCode.OK
