"""The server as a process: URL on the first stdout line, clean exit on signals."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.helpers.paths import REPO

KEY = "process-key-31f9"


def _first_line(process: subprocess.Popen[str], timeout_s: float = 20.0) -> str:
    """The first stdout line, read on a thread so a hung server fails the test."""
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout_s)
    except queue.Empty:
        process.kill()
        raise AssertionError("the server printed no URL in time") from None


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_segcli_serve_prints_its_url_and_stops_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "segcli",
            "serve",
            "--data-dir",
            str(tmp_path / "data"),
            "--dataset",
            "demo",
            "--dataset-id",
            "ds_demo",
            "--reference-id",
            "a",
        ],
        env={**os.environ, "NUCLEUS_API_KEY": KEY},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        url = _first_line(process).strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1/nucleus", url), url
        info = httpx.get(f"{url}/dataset/ds_demo/info", auth=(KEY, ""))
        assert info.status_code == 200 and info.json()["length"] == 1
        process.send_signal(sig)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert out == ""  # nothing after the URL line
    assert "Traceback" not in err
    assert KEY not in out + err
    assert (tmp_path / "data" / "nucleus.db").exists()


def test_segcli_serve_without_a_key_is_a_usage_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NUCLEUS_API_KEY"}
    done = subprocess.run(
        [sys.executable, "-m", "segcli", "serve", "--data-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
    assert done.returncode == 2
    assert "NUCLEUS_API_KEY" in done.stderr
    assert done.stdout == ""
