"""How many requests an upload keeps in flight, end to end against `segcli serve`.

At the defaults the limit adapts: it grows on a server that answers fast and
without refusals, and finds the capacity of one capped with ``--max-inflight``.
``--concurrency N`` fixes it. The server counts what it saw in flight.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from segcli.cli.root import app
from segcli.exitcodes import ExitCode
from segcli.server import ALL_ROUTES, FaultConfig
from tests.helpers.upload import KEY, Nucleus, upload_args

LATENCY_S = 0.05
runner = CliRunner()


def remote_manifest(folder: Path, n: int) -> tuple[Path, list[str]]:
    """``n`` items with s3:// masks: 20 a request, nothing read or decoded."""
    folder.mkdir(parents=True, exist_ok=True)
    refs = [f"img-{i:05d}" for i in range(n)]
    segments = [{"index": 0, "label": "bg"}]
    lines = [
        json.dumps({"reference_id": r, "mask_url": f"s3://bucket/{r}.png", "annotations": segments})
        for r in refs
    ]
    manifest = folder / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest, refs


def upload_to_server(
    tmp_path: Path, items: int, *extra: str, max_inflight: int | None = None
) -> tuple[dict[str, Any], Any]:
    """Upload ``items`` URLs at 50 ms a request: (the --json summary, the server's capacity).

    Every item must land once, refusals retried.
    """
    manifest, refs = remote_manifest(tmp_path / "data", items)
    faults = FaultConfig(latency_s=LATENCY_S, retry_after_s=LATENCY_S, routes=ALL_ROUTES)
    server = Nucleus(tmp_path, refs, faults, max_inflight=max_inflight)
    try:
        args = upload_args(manifest, server, "--json", "--no-validate-remote", *extra)
        result = runner.invoke(app, args, env={"NUCLEUS_API_KEY": KEY})
        assert "Traceback" not in result.stdout + result.stderr
        assert result.exit_code == ExitCode.OK, result.stdout + result.stderr
        assert sorted(r["reference_id"] for r in server.rows()) == refs
        return json.loads(result.stdout), server.capacity
    finally:
        server.stop()


def test_at_the_defaults_the_limit_grows_while_answers_come_back_fine(tmp_path: Path) -> None:
    summary, capacity = upload_to_server(tmp_path, 2000)  # 100 requests
    concurrency = summary["concurrency"]
    assert concurrency["adaptive"] is True and concurrency["max"] == 64
    # It starts at 10 and grows by half a round trip: 15, 22, 33 in 100 requests.
    assert concurrency["peak"] >= 22, concurrency  # two round trips of growth at least
    assert capacity.peak > 10  # the server saw more than the start in flight at once
    assert summary["retries"] == 0 and concurrency["cutbacks"] == 0


def test_at_the_defaults_it_finds_the_capacity_of_a_capped_server(tmp_path: Path) -> None:
    summary, capacity = upload_to_server(tmp_path, 3000, max_inflight=12)  # 150 requests
    concurrency = summary["concurrency"]
    assert concurrency["cutbacks"] >= 1
    assert concurrency["limit"] <= 12  # it settled at or under the server's capacity
    # Refusals come in a burst or two, not every round trip.
    assert 1 <= capacity.refused <= 0.1 * capacity.admitted, vars(capacity)
    assert capacity.refused == summary["retries"]


def test_concurrency_n_fixes_the_limit(tmp_path: Path) -> None:
    summary, capacity = upload_to_server(tmp_path, 600, "--concurrency", "3")  # 30 requests
    assert summary["concurrency"] == {
        "adaptive": False,
        "limit": 3,
        "peak": 3,
        "max": 3,
        "cutbacks": 0,
    }
    assert capacity.peak == 3


def test_max_concurrency_caps_the_adaptive_limit(tmp_path: Path) -> None:
    summary, capacity = upload_to_server(tmp_path, 2000, "--max-concurrency", "12")
    assert summary["concurrency"]["peak"] == 12
    assert summary["concurrency"]["max"] == 12
    assert capacity.peak <= 12
