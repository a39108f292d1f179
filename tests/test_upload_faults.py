"""Uploads under injected faults, kills and Ctrl-C: nothing lost, nothing twice."""

from __future__ import annotations

import json
import signal
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner
from upload_helpers import KEY, Nucleus, make_local_manifest, segcli_process, wait_for

from segcli.cli import app
from segcli.exitcodes import ExitCode
from segcli.server import FaultConfig

runner = CliRunner()


def journal_states(path: Path) -> Counter[str]:
    if not path.exists():
        return Counter()
    with sqlite3.connect(path) as conn:
        try:
            return Counter(dict(conn.execute("SELECT state, count(*) FROM items GROUP BY state")))
        except sqlite3.OperationalError:  # not created yet
            return Counter()


@pytest.fixture
def faulty(tmp_path: Path) -> Iterator[tuple[Nucleus, Path, list[str]]]:
    manifest, refs = make_local_manifest(tmp_path / "data", 300)
    faults = FaultConfig(
        seed=7,
        rate_503=0.06,
        rate_429=0.05,
        retry_after_s=0.05,
        rate_500=0.05,
        rate_504=0.04,
        rate_drop=0.05,
        rate_stall=0.02,
        stall_s=1.5,
    )
    server = Nucleus(tmp_path, refs, faults)
    yield server, manifest, refs
    server.stop()


def test_faults_land_every_item_exactly_once(
    faulty: tuple[Nucleus, Path, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, manifest, refs = faulty
    monkeypatch.setenv("NUCLEUS_API_KEY", KEY)
    report = tmp_path / "report.jsonl"
    result = runner.invoke(
        app,
        [
            "upload",
            str(manifest),
            "--dataset",
            server.dataset_id,
            "--endpoint",
            server.url,
            "--timeout",
            "1",
            "--retries",
            "8",
            "--local-batch-size",
            "5",
            "--json",
            "--report",
            str(report),
        ],
    )
    assert result.exit_code == ExitCode.OK, result.stdout + result.stderr
    summary = json.loads(result.stdout)
    assert summary["uploaded"] == len(refs)
    assert summary["retries"] > 0  # the faults really happened
    rows = server.rows()
    assert sorted(r["reference_id"] for r in rows) == sorted(refs)  # each exactly once
    records = [json.loads(x) for x in report.read_text().splitlines()]
    assert Counter(r["reference_id"] for r in records) == Counter(refs)
    journal = Path(str(manifest) + ".segcli-journal")
    assert journal_states(journal) == Counter({"uploaded": len(refs)})


def test_killed_run_resumes_without_second_masks(tmp_path: Path) -> None:
    manifest, refs = make_local_manifest(tmp_path / "data", 120)
    server = Nucleus(tmp_path, refs, FaultConfig(latency_s=0.05))
    journal = tmp_path / "j.sqlite"
    env = {"NUCLEUS_API_KEY": KEY, "NUCLEUS_ENDPOINT": server.url}
    args = [
        "upload",
        str(manifest),
        "--dataset",
        server.dataset_id,
        "--journal",
        str(journal),
        "--concurrency",
        "2",
        "--local-batch-size",
        "4",
    ]
    try:
        for landed_before_kill in (10, 40, 80):
            proc = segcli_process(args, env)
            wait_for(lambda n=landed_before_kill: journal_states(journal)["uploaded"] >= n)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        proc = segcli_process([*args, "--json"], env)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == ExitCode.OK, err
        summary = json.loads(out)
        assert summary["failed"] == 0 and summary["invalid"] == 0
        # every item once on the server, whatever was in flight at each kill
        assert sorted(r["reference_id"] for r in server.rows()) == sorted(refs)
        states = journal_states(journal)
        assert states["uploaded"] + states["ignored"] == len(refs)
        # only items of a batch in flight at a kill can end "ignored"
        assert states["ignored"] <= 3 * 2 * 4
    finally:
        server.stop()


def test_ctrl_c_stops_fast_records_and_exits_130(tmp_path: Path) -> None:
    manifest, refs = make_local_manifest(tmp_path / "data", 200)
    server = Nucleus(tmp_path, refs, FaultConfig(latency_s=0.2))
    journal = tmp_path / "j.sqlite"
    env = {"NUCLEUS_API_KEY": KEY, "NUCLEUS_ENDPOINT": server.url}
    try:
        proc = segcli_process(
            [
                "upload",
                str(manifest),
                "--dataset",
                server.dataset_id,
                "--journal",
                str(journal),
                "--concurrency",
                "2",
                "--local-batch-size",
                "2",
            ],
            env,
        )
        wait_for(lambda: journal_states(journal)["uploaded"] >= 4)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=2.5)
        assert proc.returncode == ExitCode.INTERRUPTED, err
        assert "Traceback" not in err
        assert "Re-run" in err
        landed = journal_states(journal)["uploaded"]
        assert 4 <= landed < len(refs)
        # what the journal says landed is exactly what the server holds, or the
        # server holds at most one in-flight batch more
        stored = len(server.rows())
        assert landed <= stored <= landed + 2 * 2
    finally:
        server.stop()
