"""Where the official Nucleus client (scale-nucleus) lives for the tests that drive it.

Each version runs in a virtualenv of its own (``make nucleus-venv`` makes
them; its pins clash with ours), as a subprocess. A missing or wrong client
fails the test with how to install it: these tests never skip.
"""

from __future__ import annotations

import functools
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.paths import REPO


@dataclass(frozen=True)
class OfficialClient:
    version: str
    venv: str  # relative to the repository
    variable: str  # the environment variable that may point at its Python

    @property
    def python(self) -> str:
        """The client's Python, checked to hold exactly this version."""
        return _checked_python(self)


CURRENT = OfficialClient("0.22.3", ".venv-nucleus", "SEGCLI_NUCLEUS_PYTHON")
LEGACY = OfficialClient("0.18.4", ".venv-nucleus-0.18", "SEGCLI_NUCLEUS_018_PYTHON")
VERSIONS = (LEGACY, CURRENT)


@functools.cache
def _checked_python(client: OfficialClient) -> str:
    python = os.environ.get(client.variable) or str(REPO / client.venv / "bin" / "python")
    how = (
        f"run `make nucleus-venv` (it makes {client.venv} with scale-nucleus=={client.version}), "
        f"or point {client.variable} at a Python with scale-nucleus=={client.version} installed"
    )
    if not Path(python).exists():
        pytest.fail(f"the official Nucleus client {client.version} is not installed: {how}")
    done = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.version('scale-nucleus'))"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = done.stdout.strip()
    if done.returncode != 0 or found != client.version:
        pytest.fail(
            f"{python} does not hold scale-nucleus {client.version} "
            f"(found {found or 'none'}): {how}"
        )
    return python
