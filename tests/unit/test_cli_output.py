"""Progress display and the ETA estimate, without a terminal."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from segcli.cli import estimate
from segcli.cli.estimate import estimate_items
from segcli.cli.output import BAR_WIDTH, Progress


def test_plain_progress_logs_a_timestamped_line_per_interval() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=200)
    now = [0.0]
    with Progress(
        console,
        title="upload",
        total=lambda: 1000,
        clock=lambda: now[0],
        stamp=lambda: "2026-12-01T21:00:00+00:00",
    ) as bar:
        for i in range(1, 26):
            now[0] = float(i)
            bar.update(i * 10, retries=i // 10, extra="failed 2" if i > 15 else "")
    lines = buf.getvalue().splitlines()
    # one line every 10 s of the fake clock: at t=10 and t=20
    assert lines == [
        "2026-12-01T21:00:00+00:00 upload: 100/1,000 10% 10.0/s ETA 0:01:30, retries 1",
        "2026-12-01T21:00:00+00:00 upload: 200/1,000 20% 10.0/s ETA 0:01:20, retries 2, failed 2",
    ]


def test_plain_progress_without_a_total_counts_what_is_done() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=200)
    now = [0.0]
    with Progress(console, title="upload", clock=lambda: now[0], stamp=lambda: "T") as bar:
        now[0] = 10.0
        bar.update(5)
    assert buf.getvalue().splitlines() == ["T upload: 5 done 0.5/s, retries 0"]


def test_live_progress_fits_80_columns_on_a_wide_terminal() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=200, color_system=None)
    now = [0.0]
    with Progress(console, title="upload", total=lambda: 123_456, clock=lambda: now[0]) as bar:
        now[0] = 12.0
        bar.update(61_000, note="server unreachable, retrying in 8 s (attempt 3/6)")
        line = bar.describe(width=80 - 1 - len("upload") - 1 - BAR_WIDTH - 1)
        bar.refresh()
    assert line == "server unreachable, retrying in 8 s (attempt 3/6)"  # the count would not fit
    assert bar.describe().startswith("61,000/123,456 server unreachable")  # plain lines say both
    rendered = [ln for ln in buf.getvalue().replace("\r", "\n").split("\n") if "upload" in ln]
    assert rendered, buf.getvalue()
    import re

    visible = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", rendered[-1])
    assert len(visible.rstrip()) <= 80, visible
    assert "server unreachable, retrying in 8 s (attempt 3/6)" in visible


def test_live_progress_shows_rate_and_eta() -> None:
    console = Console(file=io.StringIO(), force_terminal=False)
    now = [0.0]
    bar = Progress(console, title="upload", total=lambda: 100, clock=lambda: now[0])
    now[0] = 5.0
    bar.update(50)
    assert bar.describe() == "50/100 50% 10.0/s ETA 0:00:05"
    bar.update(60, gauge="limit 32")  # upload's current concurrency limit
    assert bar.describe() == "60/100 60% 12.0/s limit 32 ETA 0:00:03"
    assert bar.plain_line().endswith("upload: 60/100 60% 12.0/s limit 32 ETA 0:00:03, retries 0")


def test_a_retry_line_is_plain_off_a_terminal_and_left_to_the_bar_on_one() -> None:
    plain = io.StringIO()
    with Progress(
        Console(file=plain, force_terminal=False), title="upload", stamp=lambda: "T"
    ) as bar:
        bar.say("server unreachable, retrying in 8 s (attempt 3/6)")
    assert plain.getvalue() == "T upload: server unreachable, retrying in 8 s (attempt 3/6)\n"
    live = io.StringIO()
    console = Console(file=live, force_terminal=True, color_system=None)
    with Progress(console, title="upload", stamp=lambda: "T") as bar:
        bar.say("server unreachable")
    assert "T upload: server unreachable" not in live.getvalue()


def test_disabled_progress_prints_nothing() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False)
    now = [0.0]
    with Progress(console, title="x", enabled=False, clock=lambda: now[0]) as bar:
        now[0] = 100.0
        bar.update(1)
        bar.say("retrying")
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
