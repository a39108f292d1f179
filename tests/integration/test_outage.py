"""The service going away mid-run stops the run: one message, the rest pending, nothing lost."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from segcli.cli.upload_run import retry_note
from segcli.client import RetryEvent
from segcli.exitcodes import ExitCode
from segcli.server import FaultConfig
from tests.helpers.upload import (
    KEY,
    Nucleus,
    free_port,
    make_local_manifest,
    segcli_process,
    upload_args,
    wait_for,
)

ITEMS = 400
CONCURRENCY = 4
BATCH = 10


def journal_count(path: Path) -> int:
    if not path.exists():
        return 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM items").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def test_a_server_gone_mid_run_stops_the_run_and_a_rerun_finishes(tmp_path: Path) -> None:
    manifest, refs = make_local_manifest(tmp_path / "data", ITEMS)
    port = free_port()
    server = Nucleus(tmp_path, refs, FaultConfig(latency_s=0.05), port=port)
    journal = tmp_path / "journal"
    args = upload_args(
        manifest, server, "--journal", str(journal), "--concurrency", str(CONCURRENCY)
    )
    args += ["--retries", "2"]
    proc = segcli_process([*args, "--json"], {"NUCLEUS_API_KEY": KEY})
    try:
        wait_for(lambda: journal_count(journal) >= 60)
        server.stop()
        gone = time.monotonic()
        out, err = proc.communicate(timeout=120)
        stopped_after_s = time.monotonic() - gone
    finally:
        proc.kill()
    assert "Traceback" not in err
    assert proc.returncode == ExitCode.ITEMS_FAILED, err
    summary = json.loads(out)
    # it stopped: only the requests on the wire failed, the rest was never tried
    assert summary["failed"] <= CONCURRENCY * BATCH
    assert summary["pending"] > 0
    assert summary["uploaded"] + summary["failed"] + summary["pending"] == ITEMS
    assert summary["error"]["code"] == "server-unavailable"
    assert f"127.0.0.1:{port}" in summary["stopped"]
    # a short retry budget, not a minute of failing items one by one
    assert stopped_after_s < 20, stopped_after_s
    # it said it was retrying, and it named at most a few failed items
    assert "server unreachable, retrying in" in err
    assert len([line for line in err.splitlines() if ": failed: " in line]) <= 3
    # items never tried are not in the journal: the re-run picks them up
    assert journal_count(journal) == summary["uploaded"] + summary["failed"]

    again = Nucleus(tmp_path, refs, port=port)
    try:
        proc = segcli_process([*args, "--json"], {"NUCLEUS_API_KEY": KEY})
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == ExitCode.OK, err
        rerun = json.loads(out)
        assert rerun["skipped"] == summary["uploaded"]
        assert rerun["uploaded"] == summary["failed"] + summary["pending"]
        rows = again.store.segmentations(server.dataset_id)
        assert sorted(r["reference_id"] for r in rows) == refs  # each once
    finally:
        again.stop()


def test_the_stopped_summary_says_what_remains(tmp_path: Path) -> None:
    manifest, refs = make_local_manifest(tmp_path / "data", 60)
    server = Nucleus(tmp_path, refs, FaultConfig(rate_503=1.0))
    try:
        args = upload_args(manifest, server, "--retries", "0", "--concurrency", "1")
        proc = segcli_process(args, {"NUCLEUS_API_KEY": KEY})
        out, _ = proc.communicate(timeout=60)
    finally:
        server.stop()
    assert proc.returncode == ExitCode.ITEMS_FAILED
    assert "\nSTOPPED: 10 items: uploaded 0," in out
    assert "pending 50" in out
    assert "stopped sending: 60 items remain to upload (50 never tried)" in out
    assert "re-run the same command when the server answers" in out


def test_retry_notes_say_what_failed_and_how_long_the_wait_is() -> None:
    def event(status: int | None, delay: float, attempt: int = 3) -> RetryEvent:
        return RetryEvent("dataset/d/annotate", attempt, status, "boom", delay)

    assert retry_note(event(None, 8.2), 6) == "server unreachable, retrying in 8 s (attempt 3/6)"
    assert retry_note(event(503, 0.4, 1), 6) == (
        "server error (HTTP 503), retrying in 0.4 s (attempt 1/6)"
    )
    assert retry_note(event(429, 2.0, 2), 10) == (
        "rate limited (HTTP 429), retrying in 2 s (attempt 2/10)"
    )
