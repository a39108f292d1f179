"""`segcli --help` and `--version` must not pay for the heavy parts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import SAMPLE

HEAVY = (
    *("numpy", "PIL", "httpx", "fsspec", "s3fs", "gcsfs", "aiohttp", "yaml"),
    *("jinja2", "markupsafe", "matplotlib", "selenium"),  # the --html page, plots, browser tests
    *("dask", "distributed"),  # --scheduler
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
    proc, imported = imports(args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
    assert "segcli" in proc.stdout or "Usage" in proc.stdout


def imports(args: list[str]) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run segcli; the top-level packages its main process imported."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "segcli", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    imported = {
        line.rsplit("|", 1)[-1].strip().split(".")[0]
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    return proc, imported


@pytest.mark.parametrize(
    ("args", "loaded"),
    [
        (["validate", "{sample}/manifest.yaml"], set()),
        (["validate", "{sample}/manifest.yaml", "--html", "{tmp}/r.html"], {"jinja2"}),
        (["stats", "{sample}/manifest.yaml"], set()),
        (["stats", "{sample}/manifest.yaml", "--plot", "{tmp}/s.png"], {"matplotlib"}),
        (["preview", "{sample}/manifest.yaml", "street-0004", "-o", "{tmp}/p.png"], {"matplotlib"}),
        (
            ["validate", "{sample}/manifest.yaml", "--scheduler", "local", "--workers", "1"],
            {"dask", "distributed", "jinja2"},  # distributed imports jinja2 itself
        ),
    ],
)
def test_templates_plots_and_dask_load_only_when_asked_for(
    args: list[str], loaded: set[str], tmp_path: Path
) -> None:
    filled = [a.format(sample=SAMPLE, tmp=tmp_path) for a in [*args, "-q"]]
    if filled[0] == "preview":
        filled.remove("-q")
    proc, imported = imports(filled)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert imported & {"jinja2", "matplotlib", "dask", "distributed"} == loaded


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
