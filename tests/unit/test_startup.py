"""`segcli --help` and `--version` must not pay for the heavy parts."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = (
    *("numpy", "PIL", "httpx", "fsspec", "s3fs", "gcsfs", "aiohttp", "yaml"),
    *("jinja2", "markupsafe", "matplotlib", "selenium"),  # the --html page, plots, browser tests
)


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
        ["preview", "--help"],
        ["stats", "--help"],
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
