"""sample_data/ is exactly what scripts/make_sample_data.py draws (it must stay deterministic)."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers.paths import REPO


def test_sample_data_is_current() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_sample_data.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
