"""Worker processes never outlive a killed segcli."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.helpers.upload import make_local_manifest, segcli_process, wait_for


def children(pid: int) -> set[int]:
    """The process's children, whichever of its threads started them."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purpose
    stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}/stat").exists() else ""
    return bool(stat) and stat.split(")")[-1].split()[0] != "Z"


def workers_ready(pid: int) -> set[int]:
    """The pool workers that finished starting (their parent watch thread runs)."""
    ready = set()
    for child in children(pid):
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        tasks = Path(f"/proc/{child}/task").iterdir() if alive(child) else iter(())
        if b"spawn_main" in cmdline and len(list(tasks)) >= 2:
            ready.add(child)
    return ready


def test_workers_exit_when_segcli_is_killed(tmp_path: Path) -> None:
    manifest, _ = make_local_manifest(tmp_path / "data", 4_000)
    proc = segcli_process(["validate", str(manifest), "--workers", "2"], {})
    try:
        wait_for(lambda: len(workers_ready(proc.pid)) == 2, timeout_s=60)
        workers = children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        wait_for(lambda: not any(alive(w) for w in workers), timeout_s=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
