"""`segcli status` says what the last runs said: the journal keeps each item's latest outcome."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from segcli.exitcodes import ExitCode
from segcli.server import FaultConfig
from tests.helpers.upload import (
    KEY,
    Nucleus,
    free_port,
    make_local_manifest,
    segcli_process,
    upload_args,
)


def run(*args: str) -> tuple[int, str, str]:
    proc = segcli_process(list(args), {"NUCLEUS_API_KEY": KEY})
    out, err = proc.communicate(timeout=180)
    assert "Traceback" not in out + err, err
    return proc.returncode, out, err


def run_json(*args: str) -> tuple[int, dict[str, Any]]:
    code, out, err = run(*args, "--json")
    assert out.strip(), err
    return code, json.loads(out)


def test_after_a_failed_forced_run_a_good_run_clears_the_failures(tmp_path: Path) -> None:
    manifest, refs = make_local_manifest(tmp_path / "data", 30)
    port = free_port()  # one endpoint throughout, so one journal scope

    def serve(faults: FaultConfig | None = None) -> Nucleus:
        return Nucleus(tmp_path, refs, faults, port=port)

    server = serve()
    try:
        args = upload_args(manifest, server)
        assert run_json(*args)[1]["uploaded"] == 30
    finally:
        server.stop()
    server = serve(FaultConfig(rate_503=1.0))  # every upload request fails
    try:
        code, failed_run = run_json(*args, "--force", "--update", "--retries", "0")
        assert code == ExitCode.ITEMS_FAILED
        assert failed_run["failed"] > 0
    finally:
        server.stop()
    code, status = run_json("status", str(manifest))
    assert status["scopes"][0]["counts"]["failed"] == failed_run["failed"]
    assert code == ExitCode.ITEMS_FAILED

    server = serve()  # back: every item had landed before, so all are skipped
    try:
        code, summary = run_json(*args)
        assert code == ExitCode.OK
    finally:
        server.stop()
    assert summary["skipped"] == 30
    code, status = run_json("status", str(manifest))
    (scope,) = status["scopes"]
    assert scope["counts"] == {"skipped": 30}
    assert scope["pending"] == 0
    assert scope["last_run"]["summary"]["skipped"] == 30
    assert code == ExitCode.OK
    code, out, _ = run("status", str(manifest))
    assert "30 items: skipped 30, pending 0" in out
    assert "skipped: already on the server" in out


def test_status_counts_the_items_no_shard_has_tried(tmp_path: Path) -> None:
    manifest, refs = make_local_manifest(tmp_path / "data", 40)
    server = Nucleus(tmp_path, refs)
    journals = [tmp_path / f"shard-{k}.journal" for k in range(3)]
    try:
        for k in (0, 1):  # shard 2 of 3 never ran
            code, _ = run_json(
                *upload_args(manifest, server, "--shard", f"{k}/3", "--journal", str(journals[k]))
            )
            assert code == ExitCode.OK
        done = {r["reference_id"] for r in server.rows()}
    finally:
        server.stop()
    args = ["status", "--manifest", str(manifest)]
    for journal in journals[:2]:
        args += ["--journal", str(journal)]
    code, status = run_json(*args)
    (scope,) = status["scopes"]
    assert scope["counts"] == {"uploaded": len(done)}
    assert scope["pending"] == len(refs) - len(done) > 0
    assert code == ExitCode.ITEMS_FAILED  # not everything is up yet
    code, out, _ = run(*args)
    assert f"pending {len(refs) - len(done)}" in out
    assert "never tried" in out


def test_status_says_how_many_more_it_did_not_list(tmp_path: Path) -> None:
    manifest, refs = make_local_manifest(tmp_path / "data", 12)
    server = Nucleus(tmp_path, refs[:4])  # 8 items are not in the dataset: rejected
    journal = tmp_path / "j"
    try:
        code, summary = run_json(*upload_args(manifest, server, "--journal", str(journal)))
        assert code == ExitCode.ITEMS_FAILED
        assert summary["rejected"] == 8
    finally:
        server.stop()
    code, out, _ = run("status", "--journal", str(journal), "--limit", "3")
    assert code == ExitCode.ITEMS_FAILED
    assert len([line for line in out.splitlines() if line.startswith("  rejected: ")]) == 3
    assert "... and 5 more rejected items" in out
    code, status = run_json("status", "--journal", str(journal), "--limit", "3")
    assert status["scopes"][0]["more"] == {"rejected": 5}


def test_duplicate_lines_are_counted_alike_by_the_run_the_report_and_status(
    tmp_path: Path,
) -> None:
    manifest, refs = make_local_manifest(tmp_path / "data", 4)
    lines = manifest.read_text().splitlines()
    # line 5 repeats line 1's reference_id, line 6 repeats line 2's
    manifest.write_text("\n".join([*lines, lines[0], lines[1]]) + "\n")
    server = Nucleus(tmp_path, refs)
    report = tmp_path / "report.jsonl"
    journal = tmp_path / "j"
    try:
        code, summary = run_json(
            *upload_args(manifest, server, "--journal", str(journal), "--report", str(report))
        )
        _, out, _ = run(*upload_args(manifest, server, "--journal", str(tmp_path / "j2")))
    finally:
        server.stop()
    assert code == ExitCode.ITEMS_FAILED
    assert (summary["items"], summary["uploaded"], summary["invalid"]) == (6, 4, 2)
    records = [json.loads(line) for line in report.read_text().splitlines()]
    by_state: dict[str, int] = {}
    for record in records:
        by_state[record["state"]] = by_state.get(record["state"], 0) + 1
    assert by_state == {"uploaded": 4, "invalid": 2}
    _, status = run_json("status", "--journal", str(journal))
    assert status["scopes"][0]["counts"] == {"uploaded": 4, "invalid": 2}
    # each duplicate names the line of its first copy
    assert f"{manifest}:5 {refs[0]}: error [duplicate-reference-id]" in out
    assert f"already appears at {manifest}:1" in out
    assert f"already appears at {manifest}:2" in out
