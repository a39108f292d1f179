"""``python -m segcli.server``: run the local server without the segcli CLI.

Prints the base URL as the first line of stdout once listening; stops
cleanly (exit 0) on SIGINT or SIGTERM. The API key comes from ``--api-key``
or the ``NUCLEUS_API_KEY`` environment variable.

Example:
    python -m segcli.server --data-dir /tmp/nucleus --api-key demo --rate-503 0.1
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from segcli.server.config import UPLOAD_ROUTES, FaultConfig, ServerConfig


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m segcli.server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--api-key", action="append", default=[])
    parser.add_argument("--auto-items", action="store_true")
    parser.add_argument("--max-body-bytes", type=int, default=64 * 1024 * 1024)
    parser.add_argument("--dataset", help="make this dataset (with --reference-id items)")
    parser.add_argument("--dataset-id", help="id for --dataset")
    parser.add_argument("--reference-id", action="append", default=[])
    faults = parser.add_argument_group("faults")
    faults.add_argument("--fault-seed", type=int, default=0)
    faults.add_argument("--latency", type=float, default=0.0)
    faults.add_argument("--latency-jitter", type=float, default=0.0)
    for code in ("503", "429", "500", "504", "drop", "stall"):
        faults.add_argument(f"--rate-{code}", type=float, default=0.0)
    faults.add_argument("--retry-after", type=float, default=1.0)
    faults.add_argument("--stall", type=float, default=130.0)
    faults.add_argument("--fault-route", action="append", default=[])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    keys = tuple(args.api_key) or tuple(filter(None, [os.environ.get("NUCLEUS_API_KEY")]))
    if not keys:
        print("error: give --api-key or set NUCLEUS_API_KEY", file=sys.stderr)
        return 2
    fault_config = FaultConfig(
        seed=args.fault_seed,
        latency_s=args.latency,
        latency_jitter_s=args.latency_jitter,
        rate_503=args.rate_503,
        rate_429=args.rate_429,
        retry_after_s=args.retry_after,
        rate_500=args.rate_500,
        rate_504=args.rate_504,
        rate_drop=args.rate_drop,
        rate_stall=args.rate_stall,
        stall_s=args.stall,
        routes=tuple(args.fault_route) or UPLOAD_ROUTES,
    )
    config = ServerConfig(
        data_dir=args.data_dir,
        host=args.host,
        port=args.port,
        api_keys=keys,
        auto_items=args.auto_items,
        max_body_bytes=args.max_body_bytes,
        faults=fault_config,
    )
    from segcli.server.run import serve_forever
    from segcli.server.seed import seed_dataset

    if args.dataset:
        dataset_id = seed_dataset(
            args.data_dir, args.dataset, args.reference_id, dataset_id=args.dataset_id
        )
        print(f"dataset {dataset_id}", file=sys.stderr)
    serve_forever(config, on_ready=lambda url: print(url, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
