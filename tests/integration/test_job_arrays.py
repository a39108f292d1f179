"""Job arrays: README's Kubernetes Indexed Job and Slurm array, every task a real segcli process.

Both are read from README (the YAML block marked ``not a manifest:`` and the
shell block holding ``#SBATCH --array=``), so README cannot drift from what
is tested. Every task starts at once, as the scheduler starts them, with the
environment the scheduler would give it: for a pod, the container's ``env``
(the Secret's key resolved) plus the ``JOB_COMPLETION_INDEX`` the control plane
adds, in the ``workingDir`` the volume is mounted at; for a Slurm task, the
``SLURM_ARRAY_*`` variables its ``--array`` makes, in the folder ``sbatch`` was
run from. The one thing swapped is where the service is: ``NUCLEUS_ENDPOINT``
points at ``segcli serve``, seeded with the dataset README names.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from segcli.exitcodes import ExitCode
from segcli.journal import Journal
from segcli.model import ItemState
from segcli.settings import shard_of
from tests.helpers.readme import blocks
from tests.helpers.upload import KEY, Nucleus, make_local_manifest

ITEMS = 60
# Variables of a scheduler or of segcli that the machine running the tests may
# have set itself (CI inside a Kubernetes Job, say): a task sees only its own.
FOREIGN = ("NUCLEUS_", "SEGCLI_", "SLURM_", "AWS_BATCH_", "BATCH_TASK_", "JOB_COMPLETION_INDEX")
SECRETS = {("nucleus", "api-key"): KEY}  # the Secret README's Job reads the key from


def machine_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # segcli on PATH
    return env


def readme_job() -> dict[str, Any]:
    (job,) = [yaml.safe_load(b.body) for b in blocks() if b.lang == "yaml" and b.not_a_manifest]
    assert job["kind"] == "Job" and job["spec"]["completionMode"] == "Indexed"
    return dict(job)


def readme_sbatch() -> str:
    (script,) = [b.body for b in blocks() if b.lang == "sh" and "#SBATCH --array=" in b.body]
    return str(script)


def upload_words(command: list[str]) -> tuple[str, str]:
    """The manifest and the dataset id a ``segcli upload`` command names."""
    at = command.index("upload")
    assert command[:at] == ["segcli"] and "--shard" in command
    assert command[command.index("--shard") + 1] == "auto"
    return command[at + 1], command[command.index("--dataset") + 1]


def pod_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's env as the kubelet sets it: values, and keys of Secrets."""
    env: dict[str, str] = {}
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = SECRETS[(ref["name"], ref["key"])]
    return env


def slurm_array(spec: str) -> tuple[list[int], int]:
    """The task ids ``--array=SPEC`` makes, and the SLURM_ARRAY_TASK_STEP Slurm reports."""
    parts = spec.split("%")[0].split(",")  # a %limit throttles, it changes no id
    ids: list[int] = []
    step = 1
    for part in parts:
        span, _, by = part.partition(":")
        first, _, last = span.partition("-")
        ids += range(int(first), int(last or first) + 1, int(by or 1))
        if len(parts) == 1:
            step = int(by or 1)
    return sorted(set(ids)), step


def sbatch_option(script: str, name: str) -> str:
    found = re.search(rf"^#SBATCH --{name}=(\S+)", script, re.MULTILINE)
    assert found, f"#SBATCH --{name}= is not in README's script"
    return found.group(1)


def start(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(tasks: list[subprocess.Popen[str]]) -> list[tuple[int, str, str]]:
    done = []
    for task in tasks:
        out, err = task.communicate(timeout=300)
        assert "Traceback" not in out + err, err
        done.append((task.returncode, out, err))
    return done


def volume(tmp_path: Path, manifest_name: str) -> tuple[Path, list[str]]:
    """The folder the tasks share, holding the manifest (under README's name) and masks."""
    folder = tmp_path / "volume"
    manifest, refs = make_local_manifest(folder, ITEMS)
    manifest.rename(folder / manifest_name)
    return folder, refs


def segcli(folder: Path, *args: str) -> tuple[int, str]:
    done = subprocess.run(
        ["segcli", *args], env=machine_env(), cwd=folder, capture_output=True, text=True
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done.returncode, done.stdout


def check_every_item_sent_once(
    folder: Path, manifest: str, refs: list[str], server: Nucleus, shards: int
) -> None:
    held = Counter(row["reference_id"] for row in server.rows())
    assert set(held) == set(refs) and set(held.values()) == {1}  # each item once on the server

    journals = sorted(p.name for p in folder.glob("*.segcli-journal"))
    assert journals == sorted(
        f"{manifest}.shard-{k}-of-{shards}.segcli-journal" for k in range(shards)
    )
    seen: set[str] = set()
    for k in range(shards):
        with Journal(
            folder / f"{manifest}.shard-{k}-of-{shards}.segcli-journal", readonly=True
        ) as j:
            (scope,) = j.scopes()
            rows = list(j.rows(scope=scope))
        mine = {row.reference_id for row in rows}
        # each shard sent its own share, once: an item sent twice would be in two journals
        assert {row.state for row in rows} <= {ItemState.UPLOADED}
        assert {row.attempts for row in rows} <= {1}
        assert mine == {r for r in refs if shard_of(r, shards) == k}
        assert not mine & seen
        seen |= mine
    assert seen == set(refs)

    pattern = f"{manifest}.shard-*.segcli-journal"  # one argument: segcli expands it
    for args in (("--journal", pattern, "--manifest", manifest), (manifest,)):
        code, out = segcli(folder, "status", *args, "--json")
        status = json.loads(out)
        assert code == ExitCode.OK, out
        assert len(status["journals"]) == shards
        (scope,) = status["scopes"]
        assert scope["counts"] == {"uploaded": len(refs)}
        assert (scope["pending"], scope["overlap"]) == (0, 0)
        assert (scope["journal_count"], scope["unfinished"]) == (shards, 0)
    code, out = segcli(folder, "status", "--journal", pattern, "--manifest", manifest)
    assert code == ExitCode.OK
    assert f"{len(refs)} items: uploaded {len(refs)}, pending 0" in out
    assert f"runs: {shards} journals, the last run started " in out and "all finished" in out


def test_the_readme_kubernetes_indexed_job(tmp_path: Path) -> None:
    job = readme_job()
    spec = job["spec"]
    completions, parallelism = spec["completions"], spec.get("parallelism", 1)
    (container,) = spec["template"]["spec"]["containers"]
    command = [*container["command"], *container.get("args", [])]
    manifest, dataset = upload_words(command)
    folder, refs = volume(tmp_path, manifest)  # mounted at the container's workingDir
    server = Nucleus(tmp_path, refs, dataset_id=dataset)
    try:
        done: list[tuple[int, str, str]] = []
        for wave in range(0, completions, parallelism):
            pods = [
                start(
                    command,
                    {
                        **machine_env(),
                        **pod_env(container),
                        "JOB_COMPLETION_INDEX": str(index),  # set by the Job controller
                        "NUCLEUS_ENDPOINT": server.url,
                    },
                    folder,
                )
                for index in range(wave, min(wave + parallelism, completions))
            ]
            done += finish(pods)
        for index, (code, _, err) in enumerate(done):
            assert code == ExitCode.OK, err
            assert f"shard {index} of {completions} (Kubernetes Indexed Job: " in err
            assert f"JOB_COMPLETION_INDEX={index}" in err
        check_every_item_sent_once(folder, manifest, refs, server, completions)
    finally:
        server.stop()


def test_the_readme_slurm_array(tmp_path: Path) -> None:
    script = readme_sbatch()
    ids, step = slurm_array(sbatch_option(script, "array"))
    assert min(ids) > 0  # README's array shows that ids need not start at 0
    (line,) = [x for x in script.splitlines() if x.startswith("segcli upload")]
    manifest, dataset = upload_words(shlex.split(line))
    folder, refs = volume(tmp_path, manifest)  # the folder sbatch was run from
    (folder / "upload.sh").write_text(script)
    server = Nucleus(tmp_path, refs, dataset_id=dataset)
    submitted = {**machine_env(), "NUCLEUS_API_KEY": KEY, "NUCLEUS_ENDPOINT": server.url}
    try:
        tasks = [
            start(
                ["bash", "upload.sh"],
                {
                    **submitted,  # sbatch passes on the environment it was run in
                    "SLURM_JOB_NAME": sbatch_option(script, "job-name"),
                    "SLURM_SUBMIT_DIR": str(folder),
                    "SLURM_ARRAY_JOB_ID": "7000",
                    "SLURM_JOB_ID": str(7001 + n),
                    "SLURM_ARRAY_TASK_ID": str(task_id),
                    "SLURM_ARRAY_TASK_MIN": str(min(ids)),
                    "SLURM_ARRAY_TASK_MAX": str(max(ids)),
                    "SLURM_ARRAY_TASK_STEP": str(step),
                    "SLURM_ARRAY_TASK_COUNT": str(len(ids)),
                },
                folder,
            )
            for n, task_id in enumerate(ids)
        ]
        done = finish(tasks)
        for rank, (code, _, err) in enumerate(done):
            assert code == ExitCode.OK, err
            assert f"shard {rank} of {len(ids)} (Slurm job array: " in err
            assert f"SLURM_ARRAY_TASK_ID={ids[rank]} - SLURM_ARRAY_TASK_MIN={min(ids)}" in err
        check_every_item_sent_once(folder, manifest, refs, server, len(ids))
    finally:
        server.stop()


def test_shard_auto_outside_a_job_array_is_a_usage_error(tmp_path: Path) -> None:
    folder, _ = volume(tmp_path, "manifest.jsonl")
    cases = [
        ({}, "none of JOB_COMPLETION_INDEX, AWS_BATCH_JOB_ARRAY_INDEX, SLURM_ARRAY_TASK_ID"),
        ({"JOB_COMPLETION_INDEX": "1"}, "Kubernetes does not say how many indexes"),
        (
            {
                "SLURM_ARRAY_TASK_ID": "3",
                "SLURM_ARRAY_TASK_MIN": "1",
                "SLURM_ARRAY_TASK_MAX": "8",
                "SLURM_ARRAY_TASK_COUNT": "3",
            },
            "not one evenly spaced range",
        ),
        ({"BATCH_TASK_INDEX": "4", "BATCH_TASK_COUNT": "4"}, "BATCH_TASK_INDEX=4"),
    ]
    for scheduler, said in cases:
        env = {**machine_env(), **scheduler, "NUCLEUS_API_KEY": KEY}
        args = ["segcli", "upload", "manifest.jsonl", "--dataset", "ds_x", "--shard", "auto"]
        done = subprocess.run(
            [*args, "--json"], env=env, cwd=folder, capture_output=True, text=True
        )
        assert done.returncode == ExitCode.USAGE, done.stderr
        assert "Traceback" not in done.stdout + done.stderr
        error = json.loads(done.stdout)["error"]
        assert error["code"] == "usage" and said in error["message"], error
        assert error["hint"]
        assert not list(folder.glob("*.segcli-journal"))  # nothing started
