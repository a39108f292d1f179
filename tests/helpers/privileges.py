"""Run a command for which a file without read permission really cannot be read.

Tests often run as root (CI containers), and root reads any file whatever
its mode, so ``chmod 0`` alone proves nothing there. Rather than skip,
``unprivileged(cmd)`` starts the command without the two capabilities that
let root ignore file modes (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH): it stays
uid 0, so the virtualenv and the test's own files stay reachable, but a
file with mode 000 is refused as it is for anyone else. A trampoline drops
the capabilities from the bounding set and then execs the command, so the
kernel computes the new process's capabilities without them. Not root: the
command runs as it is.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

_DROP_THEN_EXEC = textwrap.dedent(
    """
    import ctypes, os, sys
    PR_CAPBSET_DROP = 24
    CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            sys.exit(f"cannot drop capability {cap}: {os.strerror(ctypes.get_errno())}")
    os.execv(sys.argv[1], sys.argv[1:])
    """
)


def unprivileged(cmd: list[str]) -> list[str]:
    """``cmd`` made to run without root's power to read any file."""
    if os.geteuid() != 0:
        return cmd
    return [sys.executable, "-c", _DROP_THEN_EXEC, *cmd]


def run_unprivileged(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("timeout", 120)
    return subprocess.run(unprivileged(cmd), check=False, **kwargs)


def python_unprivileged(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run Python ``code`` (with ``args`` in sys.argv[1:]) without root's read-anything power."""
    return run_unprivileged([sys.executable, "-c", code, *args])
