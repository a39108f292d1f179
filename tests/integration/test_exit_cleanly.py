"""Two hundred short runs, and not one traceback at exit.

A process pool left to the interpreter's exit hooks could write to a closed
pipe once in a while ("Exception ignored in: <module 'threading'> ... Bad file
descriptor"); only many runs show it, so this makes many.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.helpers.paths import REPO
from tests.helpers.upload import KEY, Nucleus, make_local_manifest

RUNS = 200
AT_ONCE = 4


def test_two_hundred_short_runs_end_without_a_traceback(tmp_path: Path) -> None:
    manifest, refs = make_local_manifest(tmp_path / "data", 6)
    server = Nucleus(tmp_path, refs)
    env = {**os.environ, "NUCLEUS_API_KEY": KEY, "NUCLEUS_ENDPOINT": server.url}
    commands = [
        ["validate", str(manifest), "-q", "--workers", "2"],
        ["upload", str(manifest), "--dataset", server.dataset_id, "-n", "-q", "--workers", "2"],
    ]

    def once(n: int) -> tuple[int, str]:
        done = subprocess.run(
            [sys.executable, "-m", "segcli", *commands[n % 2]],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return done.returncode, done.stderr

    try:
        with ThreadPoolExecutor(AT_ONCE) as pool:
            results = list(pool.map(once, range(RUNS)))
    finally:
        server.stop()
    codes = [code for code, _ in results]
    assert codes == [0] * RUNS
    noisy = [err for _, err in results if err.strip()]
    assert noisy == [], noisy[0]
