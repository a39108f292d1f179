"""Progress display and the ETA estimate, without a terminal."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from segcli.cli import estimate
from segcli.cli.estimate import estimate_items
from segcli.cli.output import Progress


def test_plain_progress_logs_a_line_per_interval() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=200)
    now = [0.0]
    with Progress(
        console, title="upload", fields=("finished", "failed"), clock=lambda: now[0]
    ) as bar:
        for i in range(1, 26):
            now[0] = float(i)
            bar.update({"finished": i * 10, "failed": 0})
    lines = buf.getvalue().splitlines()
    # one line every 10 s of the fake clock: at t=10 and t=20
    assert lines == [
        "upload: finished 100, failed 0, 10.0/s",
        "upload: finished 200, failed 0, 10.0/s",
    ]


def test_disabled_progress_prints_nothing() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False)
    now = [0.0]
    with Progress(console, title="x", fields=("n",), enabled=False, clock=lambda: now[0]) as bar:
        now[0] = 100.0
        bar.update({"n": 1})
    assert buf.getvalue() == ""


@pytest.mark.parametrize("chunk", [3, 7, 1 << 20])
def test_estimate_counts_across_chunk_borders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(estimate, "CHUNK_BYTES", chunk)
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text('{"reference_id": "a"}\n\n{"reference_id": "b"}\n{"reference_id": "c"}')
    assert estimate_items(str(jsonl)) == 3
    yml = tmp_path / "m.yaml"
    yml.write_text("items:\n" + "".join(f"  - reference_id: r{i}\n    mask: x\n" for i in range(9)))
    assert estimate_items(str(yml)) == 9
    wide = tmp_path / "m.csv"
    wide.write_text("reference_id,mask\na,x.png\nb,y.png\n")
    assert estimate_items(str(wide)) == 2
    long = tmp_path / "l.csv"
    long.write_text("reference_id,mask,index,label\na,x.png,0,bg\n")
    assert estimate_items(str(long)) is None
    assert estimate_items("-") is None
    assert estimate_items(str(tmp_path / "missing.jsonl")) is None
