"""The README's runnable examples, run as written by bash.

Blocks marked ``<!-- tests/test_readme.py runs this block ... -->`` run
with ``set -e`` in a folder holding a copy of sample_data/, with segcli on
PATH; only the port and the server's data folder are swapped for free
ones, so the run never meets another server on this machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from upload_helpers import free_port

ROOT = Path(__file__).resolve().parent.parent
MARK = "<!-- tests/test_readme.py runs this block"
BLOCK = re.compile(re.escape(MARK) + r"[^\n]*-->\n```sh\n(.*?)```", re.DOTALL)


def runnable_blocks() -> list[str]:
    return BLOCK.findall((ROOT / "README.md").read_text())


def test_the_serve_and_verify_examples_run_as_written(tmp_path: Path) -> None:
    verify_block, serve_block = runnable_blocks()  # in README order
    assert "segcli serve" in serve_block and "--model" in serve_block
    assert "segcli verify" in verify_block
    shutil.copytree(ROOT / "sample_data", tmp_path / "sample_data")
    port = str(free_port())
    script = (
        "set -euo pipefail\n"
        # the server goes when the script ends, whichever line ends it
        + "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n"
        + serve_block.replace("8765", port).replace("/tmp/nucleus", str(tmp_path / "nucleus"))
        + verify_block
        + "kill %1\nwait %1 || true\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUCLEUS_", "SEGCLI_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    done = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
    )
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert "Traceback" not in said, said
    assert "model 'demo-model': prj_" in (tmp_path / "serve.err").read_text()
    # the predictions example ends with every prediction read back as sent
    assert "MATCH: 7 items: match 7" in done.stdout
    report = [json.loads(x) for x in (tmp_path / "verify.jsonl").read_text().splitlines()]
    assert len(report) == 7 and {r["state"] for r in report} == {"match"}
    sampled = json.loads(done.stdout[done.stdout.index("{") :])
    assert (sampled["checked"], sampled["ok"], sampled["sample"]) == (3, True, 3)
