"""README's `segcli manifest` and `segcli convert` examples run as written, from the repo root.

Every fenced ``sh`` block of those two sections that uses sample_data is run
with bash (``set -e``: each command must succeed), with the ``segcli`` of this
environment first on PATH; ``/tmp/`` is moved into the test's own folder so
runs do not meet.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import REPO

SECTIONS = ("## `segcli manifest`", "## `segcli convert`")


def blocks() -> list[str]:
    text = (REPO / "README.md").read_text()
    found = []
    for part in re.split(r"(?m)^(?=## )", text):
        if part.startswith(SECTIONS):
            found += [b for b in re.findall(r"```sh\n(.*?)```", part, re.S) if "sample_data" in b]
    return found


def test_the_sections_have_examples() -> None:
    assert len(blocks()) >= 7  # manifest, and each converter


@pytest.mark.parametrize("block", blocks(), ids=lambda b: b.split()[2] if len(b.split()) > 2 else b)
def test_readme_example_runs(tmp_path: Path, block: str) -> None:
    script = "set -euo pipefail\n" + block.replace("/tmp/", f"{tmp_path}/")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        ["bash", "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"{block}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    assert "Traceback" not in proc.stdout + proc.stderr


def _convert_help_examples() -> list[tuple[str, str]]:
    import textwrap

    import typer.main

    from segcli.cli.root import app

    root = typer.main.get_command(app)
    group = root.commands["convert"]  # type: ignore[attr-defined]
    found = []
    for name, command in [("convert", group), *group.commands.items()]:
        example = textwrap.dedent((command.help or "").split("Example:", 1)[1].replace("\b", ""))
        found.append((name, example.replace("\\\n", " ").strip()))
    return found


@pytest.mark.parametrize(("name", "example"), _convert_help_examples(), ids=lambda v: v)
def test_convert_help_examples_run(tmp_path: Path, name: str, example: str) -> None:
    assert example.startswith("segcli convert"), example
    test_readme_example_runs(tmp_path, example + "\n")
