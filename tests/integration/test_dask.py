"""`--scheduler`: masks read and inspected on a real Dask cluster (`dask scheduler` and
`dask worker` processes on 127.0.0.1), with the same verdicts as the local pool.

Each run is a real `segcli` process; the cluster's workers get neither the
Nucleus key nor the parent's storage credentials, so an item they check
proves it was read on a worker.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from segcli.cluster import CONNECT_TIMEOUT_S
from tests.helpers.dask_cluster import DaskCluster
from tests.helpers.gate_server import GateServer
from tests.helpers.paths import REPO, SAMPLE
from tests.helpers.remote_servers import AWS_ENV, S3Server
from tests.helpers.upload import (
    KEY,
    Nucleus,
    make_local_manifest,
    png_bytes,
    upload_args,
    wait_for,
)

RUN_S = 180.0  # a bound on one segcli run on a busy machine: a hang fails, it does not stall
WORKER_NOTE = "read by a Dask worker on"
# What a message says about the worker that could not read a mask.
NOTE = re.compile(r" \(read by a Dask worker on [^)]*\)")


def segcli(
    args: list[str], env: dict[str, str] | None = None, *, timeout: float = RUN_S
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "segcli", *args],
        env={**clean_env(), **(env or {})},
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout,
    )


def clean_env() -> dict[str, str]:
    drop = ("NUCLEUS_", "SEGCLI_", "AWS_", "DASK_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def records(report: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in report.read_text().splitlines()]


def without_worker_notes(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records with the part of a message that says which worker read the mask cut."""
    return [json.loads(NOTE.sub("", json.dumps(record))) for record in found]


def mixed_manifest(folder: Path, gate: GateServer, s3: S3Server | None = None) -> Path:
    """Good and broken local masks, masks shared by many items, and remote masks."""
    shutil.copytree(SAMPLE / "broken", folder / "broken")
    local, _ = make_local_manifest(folder, 24)
    lines = local.read_text().splitlines()
    segments = json.loads(lines[0])["annotations"]
    shared = str(folder / "masks" / "img-00000.png")
    extra = [
        {"reference_id": f"shared-{i}", "mask_url": shared, "annotations": segments}
        for i in range(12)
    ]
    extra.append(
        {
            "reference_id": "http-good",
            "mask_url": gate.put("/good.png", png_bytes(7)),
            "annotations": segments,
        }
    )
    extra.append(
        {"reference_id": "http-404", "mask_url": gate.base_url + "/gone.png", "annotations": []}
    )
    if s3 is not None:
        uri = s3.put(f"dask/{folder.name}/mask.png", png_bytes(8))
        extra.append({"reference_id": "s3-good", "mask_url": uri, "annotations": segments})
    broken = [
        json.dumps({**record, "mask_url": str(folder / "broken" / record["mask_url"])})
        for record in _broken_records()
    ]
    manifest = folder / "mixed.jsonl"
    manifest.write_text("\n".join([*lines, *map(json.dumps, extra), *broken]) + "\n")
    return manifest


def _broken_records() -> list[dict[str, Any]]:
    table = [{"index": i, "label": n} for i, n in enumerate(["bg", "field", "road", "building"])]
    return [
        {"reference_id": "broken-good", "mask_url": "good-a.png", "annotations": table},
        {"reference_id": "broken-rgb", "mask_url": "rgb.png", "annotations": table},
        {"reference_id": "broken-16bit", "mask_url": "deep16.png", "annotations": table},
        {"reference_id": "broken-palette", "mask_url": "palette.png", "annotations": table},
        {"reference_id": "broken-pond", "mask_url": "pond.png", "annotations": table},
        {"reference_id": "broken-missing", "mask_url": "does-not-exist.png", "annotations": table},
        {"reference_id": "broken-notes", "mask_url": "notes.png", "annotations": table},
    ]


@pytest.fixture()
def cluster(tmp_path: Path) -> Any:
    with DaskCluster(tmp_path / "cluster", workers=2, env=AWS_ENV) as running:
        yield running


def test_validate_on_a_cluster_gives_the_local_pool_s_verdicts(
    tmp_path: Path, cluster: DaskCluster, s3_server: S3Server
) -> None:
    with GateServer() as gate:
        manifest = mixed_manifest(tmp_path, gate, s3_server)
        s3 = ["--s3-endpoint-url", s3_server.endpoint_url]
        here = segcli(
            ["validate", str(manifest), "--report", str(tmp_path / "here.jsonl"), *s3],
            AWS_ENV,
        )
        # No AWS credentials in this process: the workers read the s3:// mask
        # with theirs, and the endpoint URL travels with the task.
        there = segcli(
            [
                "validate",
                str(manifest),
                "--report",
                str(tmp_path / "there.jsonl"),
                "--scheduler",
                cluster.address,
                *s3,
            ]
        )
    assert here.returncode == there.returncode == 1, there.stderr
    assert "Traceback" not in here.stderr + there.stderr
    local, remote = records(tmp_path / "here.jsonl"), records(tmp_path / "there.jsonl")
    assert without_worker_notes(remote) == local
    assert {r["reference_id"]: r["verdict"] for r in remote}["s3-good"] == "ok"
    (missing,) = [r for r in remote if r["reference_id"] == "broken-missing"]
    assert missing["problems"][0]["code"] == "mask-unreadable"
    assert WORKER_NOTE in missing["problems"][0]["message"]
    assert "the workers must see this machine's files" in missing["problems"][0]["message"]
    # The same summary on stdout, and the work was done on the cluster.
    assert NOTE.sub("", there.stdout) == here.stdout
    assert "check_items" in cluster.task_prefixes()


def test_upload_on_a_cluster_lands_what_the_local_pool_lands(
    tmp_path: Path, cluster: DaskCluster
) -> None:
    with GateServer() as gate:
        manifest = mixed_manifest(tmp_path, gate)
        refs = [json.loads(line)["reference_id"] for line in manifest.read_text().splitlines()]
        landed = {}
        for where in ("here", "there"):
            server = Nucleus(tmp_path / where, refs)
            try:
                env = {"NUCLEUS_API_KEY": KEY}
                if where == "there":
                    env["DASK_SCHEDULER_ADDRESS"] = cluster.address  # the variable
                done = segcli(
                    upload_args(
                        manifest,
                        server,
                        "--journal",
                        str(tmp_path / f"{where}.journal"),
                        "--report",
                        str(tmp_path / f"{where}.jsonl"),
                        "--json",
                    ),
                    env,
                )
                assert done.returncode == 1, done.stderr  # the broken items
                assert "Traceback" not in done.stderr
                landed[where] = sorted(
                    (row["reference_id"], row["mask_url"], sha256(row["mask_file"]))
                    for row in server.rows()
                )
                summary = json.loads(done.stdout)
                # Timings and the adaptive limit (it follows the server's latency) vary by run.
                varies = ("journal", "concurrency")
                landed[f"{where}-summary"] = {
                    k: v for k, v in summary.items() if k not in varies and not k.endswith("_s")
                }
            finally:
                server.stop()
    assert landed["here"] == landed["there"] and len(landed["here"]) > 30
    here, there = records(tmp_path / "here.jsonl"), records(tmp_path / "there.jsonl")
    # Upload reports in the order items finish, which differs from run to run.
    assert sorted((r["reference_id"], r["state"]) for r in there) == sorted(
        (r["reference_id"], r["state"]) for r in here
    )
    assert landed["here-summary"] == landed["there-summary"]
    # Local masks were read and inspected on the workers too (inspect_paths),
    # remote ones checked there (check_items); the key never went with them.
    assert {"check_items", "inspect_paths"} <= set(cluster.task_prefixes())
    assert KEY not in cluster.logs()


def test_a_local_mask_the_workers_see_otherwise_is_not_sent(
    tmp_path: Path, cluster: DaskCluster
) -> None:
    # /proc/self/cwd is each process's own working directory: one path, and the
    # workers (started in the cluster's folder) read other bytes there than segcli.
    here = tmp_path / "here"
    here.mkdir()
    (here / "mask.png").write_bytes(png_bytes(1))
    (cluster.folder / "mask.png").write_bytes(png_bytes(2))
    segments = [{"index": v, "label": f"class-{v}"} for v in range(3)]
    record = {
        "reference_id": "img-0",
        "mask_url": "/proc/self/cwd/mask.png",
        "annotations": segments,
    }
    manifest = here / "manifest.jsonl"
    manifest.write_text(json.dumps(record) + "\n")
    server = Nucleus(tmp_path, ["img-0"])
    args = upload_args(manifest, server, "--scheduler", cluster.address, "--report", "r.jsonl")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "segcli", *args],
            env={**clean_env(), "NUCLEUS_API_KEY": KEY},
            capture_output=True,
            text=True,
            cwd=here,
            timeout=RUN_S,
        )
        stored = server.rows()
    finally:
        server.stop()
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    (line,) = records(here / "r.jsonl")
    assert line["state"] == "invalid"
    assert "a Dask worker read other bytes at this path than this machine" in line["message"]
    assert stored == []  # what the workers did not check is not sent


def sha256(path: str | None) -> str | None:
    return None if path is None else hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_a_killed_worker_s_tasks_are_run_again_and_every_item_gets_one_verdict(
    tmp_path: Path,
) -> None:
    with (
        DaskCluster(tmp_path / "cluster", workers=1) as cluster,
        GateServer() as gate,
    ):
        manifest = mixed_manifest(tmp_path, gate)
        held = gate.put("/held.png", png_bytes(9))
        lines = manifest.read_text().splitlines()
        segments = json.loads(lines[0])["annotations"]
        record = {"reference_id": "held", "mask_url": held, "annotations": segments}
        lines.insert(len(lines) // 2, json.dumps(record))
        manifest.write_text("\n".join(lines) + "\n")
        expected = segcli(["validate", str(manifest), "--report", str(tmp_path / "here.jsonl")])
        gate.hold("/held.png")
        report = tmp_path / "there.jsonl"
        run = subprocess.Popen(
            [sys.executable, "-m", "segcli", "validate", str(manifest), "--report", str(report)],
            env={**clean_env(), "SEGCLI_SCHEDULER": cluster.address},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        try:
            # The one worker is now inside the task that reads the held mask
            # (the local run above made the first request, this is the second).
            gate.wait_for_request("/held.png", n=2, timeout_s=RUN_S)
            first = cluster.workers[0]
            cluster.add_worker()
            cluster.kill(first)
            out, err = run.communicate(timeout=RUN_S)
        finally:
            if run.poll() is None:
                run.kill()
                run.communicate()
    assert run.returncode == expected.returncode == 1, err
    assert "Traceback" not in err
    # The killed worker's task ran again, on the new worker, which read the mask.
    assert gate.count("/held.png") == 3
    ids = [r["reference_id"] for r in records(report)]
    assert sorted(ids) == sorted(json.loads(line)["reference_id"] for line in lines)
    assert len(ids) == len(set(ids))
    assert without_worker_notes(records(report)) == records(tmp_path / "here.jsonl")
    assert NOTE.sub("", out) == expected.stdout


def held_mask_manifest(tmp_path: Path, gate: GateServer) -> Path:
    """One item, whose mask the gate holds: the run waits inside a worker's task."""
    segments = [{"index": v, "label": f"class-{v}"} for v in range(3)]
    held = gate.put("/held.png", png_bytes(9))
    gate.hold("/held.png")
    manifest = tmp_path / "held.jsonl"
    record = {"reference_id": "img-00000", "mask_url": held, "annotations": segments}
    manifest.write_text(json.dumps(record) + "\n")
    return manifest


@pytest.mark.parametrize("lost", ["scheduler", "worker"])
def test_a_cluster_lost_mid_run_is_exit_2_naming_it(lost: str, tmp_path: Path) -> None:
    # No second chance for a task whose worker died: the death is the failure.
    env = {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}
    with (
        DaskCluster(tmp_path / "cluster", workers=1, env=env) as cluster,
        GateServer() as gate,
    ):
        manifest = held_mask_manifest(tmp_path, gate)
        run = subprocess.Popen(
            [sys.executable, "-m", "segcli", "validate", str(manifest), "--json"],
            env={**clean_env(), "DASK_SCHEDULER_ADDRESS": cluster.address},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        try:
            gate.wait_for_request("/held.png", timeout_s=RUN_S)
            cluster.kill(cluster.processes[0] if lost == "scheduler" else cluster.workers[0])
            out, err = run.communicate(timeout=RUN_S)
        finally:
            if run.poll() is None:
                run.kill()
                run.communicate()
    assert run.returncode == 2, err
    assert "Traceback" not in err
    error = json.loads(out)["error"]
    assert error["code"] == "cluster"
    if lost == "scheduler":
        assert error["message"] == f"lost the Dask scheduler at {cluster.address} during the run"
    else:
        assert error["message"].startswith("Dask workers kept dying on one task")
        assert "memory" in error["hint"]


def test_local_cluster_gives_the_local_pool_s_verdicts(tmp_path: Path) -> None:
    broken = SAMPLE / "broken" / "manifest.yaml"
    here = segcli(["validate", str(broken), "--report", str(tmp_path / "here.jsonl")])
    there = segcli(
        [
            "validate",
            str(broken),
            "--scheduler",
            "local",
            "--workers",
            "2",
            "--report",
            str(tmp_path / "there.jsonl"),
        ]
    )
    assert here.returncode == there.returncode == 1, there.stderr
    assert "Traceback" not in there.stderr
    assert without_worker_notes(records(tmp_path / "there.jsonl")) == records(
        tmp_path / "here.jsonl"
    )
    assert NOTE.sub("", there.stdout) == here.stdout


LOCAL_WORKERS = 3  # not the default, one per core of a 2-core machine


def held_run(
    command: str, tmp_path: Path, gate: GateServer, server: Nucleus | None
) -> subprocess.Popen[str]:
    """``segcli COMMAND --scheduler local`` in a session of its own (as a shell runs a
    job: Ctrl-C reaches the whole group), its one mask held by the gate."""
    manifest = held_mask_manifest(tmp_path, gate)
    args = [command, str(manifest), "--scheduler", "local", "--workers", str(LOCAL_WORKERS)]
    env = {"NUCLEUS_API_KEY": KEY}
    if server is not None:
        args = upload_args(manifest, server, "--journal", str(tmp_path / "j"), *args[2:])
    run = subprocess.Popen(
        [sys.executable, "-m", "segcli", *args],
        env={**clean_env(), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        start_new_session=True,
    )
    return run


@pytest.mark.parametrize(
    ("command", "how"),
    [("validate", "ctrl-c"), ("upload", "ctrl-c"), ("validate", "sigkill")],
)
def test_local_cluster_workers_end_with_the_run(command: str, how: str, tmp_path: Path) -> None:
    import psutil  # a dependency of distributed

    server = Nucleus(tmp_path, ["img-00000"]) if command == "upload" else None
    with GateServer() as gate:
        run = held_run(command, tmp_path, gate, server)
        try:
            gate.wait_for_request("/held.png", timeout_s=RUN_S)  # a worker is inside a task
            children = psutil.Process(run.pid).children(recursive=True)
            tracker = [p for p in children if "resource_tracker" in " ".join(p.cmdline())]
            # --workers processes (not one per core), and multiprocessing's tracker
            assert len(children) - len(tracker) == LOCAL_WORKERS
            sent = time.monotonic()
            if how == "ctrl-c":
                os.killpg(run.pid, signal.SIGINT)
            else:
                run.kill()
            out, err = run.communicate(timeout=RUN_S)
            took = time.monotonic() - sent
        finally:
            if run.poll() is None:
                run.kill()
                run.communicate()
            if server is not None:
                server.stop()

    def ended(proc: psutil.Process) -> bool:
        try:
            return proc.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    # A worker outliving its run would hold memory and a task forever.
    wait_for(lambda: all(ended(p) for p in children), RUN_S)
    if how == "ctrl-c":
        # The workers ignore it; the run stops them, within the 2 s Ctrl-C promises.
        assert run.returncode == 130, err
        assert took < 2.0, took
        assert "Traceback" not in out + err and "KeyboardInterrupt" not in err, err
    else:
        assert run.returncode == -signal.SIGKILL


@pytest.mark.parametrize("command", ["validate", "upload"])
def test_a_refused_scheduler_is_exit_2_naming_the_address(command: str, tmp_path: Path) -> None:
    address = "tcp://127.0.0.1:1"
    args = [command, str(SAMPLE / "manifest.yaml"), "--scheduler", address]
    if command == "upload":
        args += ["--dataset", "ds_x", "--journal", str(tmp_path / "j"), "-n"]
    env = {"NUCLEUS_API_KEY": KEY}
    start = time.monotonic()
    plain = segcli(args, env)
    as_json = segcli([*args, "--json"], env)
    assert time.monotonic() - start < 2 * CONNECT_TIMEOUT_S
    assert plain.returncode == as_json.returncode == 2
    assert f"cannot reach the Dask scheduler at {address}" in plain.stderr
    assert "--scheduler local" in plain.stderr  # the fix
    assert "Traceback" not in plain.stderr + as_json.stderr
    error = json.loads(as_json.stdout)
    assert error["exit_code"] == 2 and error["error"]["code"] == "cluster"
    assert address in error["error"]["message"]


def test_a_scheduler_that_never_answers_is_exit_2_within_the_timeout(tmp_path: Path) -> None:
    import socket

    with socket.socket() as silent:  # accepts connections (the backlog), never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        runs = [
            ["validate", str(SAMPLE / "manifest.yaml"), "--scheduler", address, "--json"],
            upload_args_for(address, tmp_path),
        ]
        start = time.monotonic()
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "segcli", *args],
                env={**clean_env(), "NUCLEUS_API_KEY": KEY},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=REPO,
            )
            for args in runs
        ]
        outs = [proc.communicate(timeout=RUN_S) for proc in procs]
        took = time.monotonic() - start
    assert took < CONNECT_TIMEOUT_S + 15, took
    assert [proc.returncode for proc in procs] == [2, 2]
    (json_out, json_err), (_, plain_err) = outs
    assert json.loads(json_out)["error"]["code"] == "cluster"
    assert f"cannot reach the Dask scheduler at {address}: no answer within" in plain_err
    assert "Traceback" not in json_err + plain_err


def test_a_scheduler_without_workers_is_exit_2_saying_to_start_some(tmp_path: Path) -> None:
    with DaskCluster(tmp_path / "cluster", workers=0) as empty:
        start = time.monotonic()
        done = segcli(
            ["validate", str(SAMPLE / "manifest.yaml"), "--scheduler", empty.address, "--json"]
        )
        took = time.monotonic() - start
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    error = json.loads(done.stdout)["error"]
    assert error["code"] == "cluster"
    assert f"the Dask scheduler at {empty.address} has no workers" in error["message"]
    assert f"dask worker {empty.address}" in error["hint"]
    # It waits for a first worker (one may be starting), then gives up.
    assert CONNECT_TIMEOUT_S <= took < CONNECT_TIMEOUT_S + 30, took


def upload_args_for(address: str, tmp_path: Path) -> list[str]:
    return [
        "upload",
        str(SAMPLE / "manifest.yaml"),
        "--dataset",
        "ds_x",
        "--journal",
        str(tmp_path / "j"),
        "--scheduler",
        address,
    ]


@pytest.mark.parametrize("variable", ["SEGCLI_SCHEDULER", "DASK_SCHEDULER_ADDRESS"])
def test_the_scheduler_comes_from_either_variable(variable: str) -> None:
    address = "tcp://127.0.0.1:1"
    done = segcli(["validate", str(SAMPLE / "manifest.yaml")], {variable: address})
    assert done.returncode == 2
    assert f"cannot reach the Dask scheduler at {address}" in done.stderr


def test_the_flag_wins_over_the_variable(cluster: DaskCluster) -> None:
    done = segcli(
        ["validate", str(SAMPLE / "manifest.yaml"), "--scheduler", cluster.address],
        {"DASK_SCHEDULER_ADDRESS": "tcp://127.0.0.1:1"},
    )
    assert done.returncode == 0, done.stderr
    assert "check_items" in cluster.task_prefixes()


def test_upload_without_checks_contacts_no_cluster(tmp_path: Path) -> None:
    # As its --help says: --no-validate reads no mask, so even a scheduler
    # that refuses every connection (a DASK_SCHEDULER_ADDRESS set for the
    # whole machine, say) changes nothing.
    manifest, refs = make_local_manifest(tmp_path, 5)
    server = Nucleus(tmp_path / "server", refs)
    try:
        done = segcli(
            upload_args(
                manifest, server, "--no-validate", "--journal", str(tmp_path / "j"), "--json"
            ),
            {"NUCLEUS_API_KEY": KEY, "DASK_SCHEDULER_ADDRESS": "tcp://127.0.0.1:1"},
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["uploaded"] == 5
        assert len(server.rows()) == 5
    finally:
        server.stop()


@pytest.mark.parametrize("command", ["validate", "upload"])
def test_help_says_what_the_scheduler_takes(command: str) -> None:
    done = segcli([command, "--help"], {"COLUMNS": "240"})
    text = " ".join(done.stdout.split())
    assert done.returncode == 0
    # Each promise is tested: the address, local with --workers, the extra and both
    # variables here, what the workers send back in tests/unit/test_worker_results.py.
    for promise in (
        "--scheduler ADDRESS",
        "Dask cluster: its scheduler's address (tcp://HOST:8786)",
        "send back only findings",
        "local, a LocalCluster of --workers processes on this machine",
        "pip install 'segcli[dask]'",
        "[env var: SEGCLI_SCHEDULER, DASK_SCHEDULER_ADDRESS]",
    ):
        assert promise in text, (promise, text)
    # tested by test_upload_without_checks_contacts_no_cluster
    no_checks = "With --no-validate nothing is read, so no cluster is contacted."
    assert (no_checks in text) == (command == "upload"), text


BLOCK_DASK = (
    # What Python does for a package that is not installed: `import dask` fails.
    "import sys; sys.modules['dask'] = sys.modules['distributed'] = None; "
    "from segcli.cli.root import main; sys.argv[0] = 'segcli'; main()"
)


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_without_the_extra_the_scheduler_says_how_to_install_it(json_flag: list[str]) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            BLOCK_DASK,
            "validate",
            str(SAMPLE / "manifest.yaml"),
            "--scheduler",
            "local",
            *json_flag,
        ],
        env=clean_env(),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=RUN_S,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "pip install 'segcli[dask]'" in done.stderr
    if json_flag:
        error = json.loads(done.stdout)["error"]
        assert error["code"] == "cluster" and "segcli[dask]" in error["hint"]
