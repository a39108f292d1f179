"""`segcli --help` and `--version` must not pay for the heavy parts."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("numpy", "PIL", "httpx", "fsspec", "s3fs", "gcsfs", "aiohttp", "yaml")


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        ["upload", "--help"],
        ["validate", "--help"],
        ["manifest", "--help"],
        ["convert", "--help"],
        ["convert", "coco-panoptic", "--help"],
    ],
)
def test_help_and_version_import_nothing_heavy(args: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "segcli", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {
        line.rsplit("|", 1)[-1].strip().split(".")[0]
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
    assert "segcli" in proc.stdout or "Usage" in proc.stdout


def test_a_pool_worker_loads_what_inspecting_needs_and_no_event_loop() -> None:
    # A worker starts by importing segcli.checks and running warm_up(); every
    # worker of every run pays for what that pulls in.
    code = (
        "import sys, segcli.checks as c; c.warm_up(); "
        "print(' '.join(m for m in ('asyncio', 'numpy', 'pyspng', 'PIL.PngImagePlugin') "
        "if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["numpy", "pyspng", "PIL.PngImagePlugin"]
