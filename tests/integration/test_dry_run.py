"""A dry run is a rehearsal: same preflight, same journal, the exact requests, nothing sent."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from segcli.exitcodes import ExitCode
from tests.helpers.upload import (
    KEY,
    Nucleus,
    free_port,
    make_local_manifest,
    png_bytes,
    segcli_process,
    upload_args,
)


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = segcli_process(list(args), env if env is not None else {"NUCLEUS_API_KEY": KEY})
    out, err = proc.communicate(timeout=120)
    assert "Traceback" not in out + err, err
    assert KEY not in out + err
    return proc.returncode, out, err


@pytest.fixture
def landed(tmp_path: Path) -> Iterator[tuple[Nucleus, Path, list[str]]]:
    """50 items uploaded, then one mask changed: 49 landed as they are, 1 to send again."""
    manifest, refs = make_local_manifest(tmp_path / "data", 50)
    server = Nucleus(tmp_path, refs)
    try:
        code, _, err = run(*upload_args(manifest, server), "-q")
        assert code == ExitCode.OK, err
        (manifest.parent / "masks" / f"{refs[7]}.png").write_bytes(png_bytes(999))
        yield server, manifest, refs
    finally:
        server.stop()


def test_a_dry_run_counts_exactly_what_the_real_run_then_does(
    landed: tuple[Nucleus, Path, list[str]],
) -> None:
    server, manifest, _ = landed
    journal = manifest.parent / "manifest.jsonl.segcli-journal"
    before = journal.read_bytes()
    rows_before = server.rows()

    code, out, err = run(*upload_args(manifest, server, "-n", "--json"))
    assert code == ExitCode.OK, err
    rehearsal: dict[str, Any] = json.loads(out)
    assert (rehearsal["would_send"], rehearsal["skipped"], rehearsal["invalid"]) == (1, 49, 0)
    assert rehearsal["requests"] == 1
    # nothing was sent and nothing was written
    assert server.rows() == rows_before
    assert journal.read_bytes() == before

    code, out, err = run(*upload_args(manifest, server, "--json", "--update"))
    assert code == ExitCode.OK, err
    real: dict[str, Any] = json.loads(out)
    sent = sum(real[s] for s in ("uploaded", "ignored", "rejected", "failed"))
    assert (sent, real["skipped"], real["invalid"]) == (1, 49, 0)
    assert real["requests"] == rehearsal["requests"]


def test_a_dry_run_prints_every_request_it_would_make(
    landed: tuple[Nucleus, Path, list[str]],
) -> None:
    server, manifest, refs = landed
    code, out, err = run(*upload_args(manifest, server, "-n", "--force"))
    assert code == ExitCode.OK, err
    requests = [line for line in out.splitlines() if line.startswith("would send ")]
    assert len(requests) == 5  # 50 local masks, 10 per multipart request
    url = f"{server.url}/dataset/{server.dataset_id}/annotate"
    pattern = re.compile(
        rf"would send POST {re.escape(url)} \(multipart, 10 items, [0-9.]+ kB\): (.+)$"
    )
    named = []
    for line in requests:
        found = pattern.match(line)
        assert found, line
        named += found.group(1).split(", ")
    assert sorted(named) == sorted(refs)
    assert "DRY RUN: nothing was sent. 50 items: would send 50, skipped 0, invalid 0" in out


@pytest.mark.parametrize(
    ("change", "exit_code", "says"),
    [
        ({"NUCLEUS_API_KEY": "not-the-key"}, ExitCode.AUTH, "rejected the key"),
        ({"dataset": "ds_nope"}, ExitCode.AUTH, "dataset ds_nope does not exist"),
        ({"model": "prj_nope"}, ExitCode.AUTH, "model prj_nope does not exist"),
        ({"NUCLEUS_API_KEY": ""}, ExitCode.USAGE, "no API key"),
    ],
    ids=["wrong-key", "unknown-dataset", "unknown-model", "no-key"],
)
def test_a_dry_run_refuses_what_a_real_run_refuses(
    tmp_path: Path, change: dict[str, str], exit_code: ExitCode, says: str
) -> None:
    manifest, refs = make_local_manifest(tmp_path / "data", 3)
    server = Nucleus(tmp_path, refs)
    try:
        env = {"NUCLEUS_API_KEY": KEY}
        if "NUCLEUS_API_KEY" in change:
            env["NUCLEUS_API_KEY"] = change["NUCLEUS_API_KEY"]
        args = [
            "upload",
            str(manifest),
            "--dataset",
            change.get("dataset", server.dataset_id),
            "--endpoint",
            server.url,
        ]
        if "model" in change:
            args += ["--model", change["model"]]
        results = [run(*args, *extra, env=env) for extra in (["-n"], [])]
        (dry_code, _, dry_err), (real_code, _, real_err) = results
        assert dry_code == real_code == exit_code
        assert says in dry_err and says in real_err
        assert server.rows() == []
        assert not (manifest.parent / "manifest.jsonl.segcli-journal").exists()
    finally:
        server.stop()


def test_a_dry_run_against_a_stopped_server_fails_as_a_real_run_does(tmp_path: Path) -> None:
    manifest, _ = make_local_manifest(tmp_path / "data", 3)
    url = f"http://127.0.0.1:{free_port()}/v1/nucleus"
    args = ["upload", str(manifest), "--dataset", "ds_x", "--endpoint", url, "--retries", "0"]
    dry_code, _, dry_err = run(*args, "-n")
    real_code, _, real_err = run(*args)
    assert dry_code == real_code == ExitCode.ITEMS_FAILED
    assert "cannot connect" in dry_err

    def message(err: str) -> list[str]:
        return [line for line in err.splitlines() if line.startswith(("segcli:", "  "))]

    assert message(dry_err) == message(real_err)


def test_a_dry_run_with_a_journal_in_use_still_rehearses(
    landed: tuple[Nucleus, Path, list[str]],
) -> None:
    # It reads the journal without its lock (as `segcli status` does), so a
    # rehearsal can run beside a real run.
    from segcli.journal import Journal, Scope

    server, manifest, _ = landed
    journal = manifest.parent / "manifest.jsonl.segcli-journal"
    with Journal(journal, Scope(server.url, server.dataset_id, "annotations")):
        code, out, err = run(*upload_args(manifest, server, "-n", "--json"))
    assert code == ExitCode.OK, err
    assert json.loads(out)["skipped"] == 49
    assert os.path.exists(journal)
