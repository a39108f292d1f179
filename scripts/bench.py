"""`make bench`: segcli against baselines measured side by side in this run.

Each workload times segcli and a baseline on the same data in the same run,
so the ratio survives a noisy machine. Data is generated deterministically
into .bench/ (kept out of git) and reused by later runs.

    .venv/bin/python scripts/bench.py [--only NAME,...]
    names: validate, remote, local, capped, memory, startup, convert, dask

The upload rows (remote, local, capped) live in bench_upload.py, the dask row
in bench_dask.py. A row without a target (``passed`` None) is informational.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".bench"
PY = sys.executable
NUCLEUS_PY = os.environ.get("SEGCLI_NUCLEUS_PYTHON", str(ROOT / ".venv-nucleus" / "bin" / "python"))
# segcli's default worker count (segcli.pool): the CPUs this process may use.
# The baselines get as many processes.
WORKERS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
REGIONS = 20


@dataclass
class Row:
    name: str
    unit: str
    segcli: float
    baseline: float
    ratio: float
    target: str
    passed: bool | None  # None: informational, no target to pass or miss
    note: str = ""

    @property
    def result(self) -> str:
        return "INFO" if self.passed is None else "PASS" if self.passed else "MISS"


# -- data -------------------------------------------------------------------


def region_mask(seed: int, size: int, regions: int = REGIONS) -> bytes:
    """~``regions`` smooth regions (warped Voronoi cells), every value 0..regions-1 present."""
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    n = 256
    y, x = np.mgrid[0:n, 0:n].astype(np.float32) / n
    for _ in range(3):  # warp the plane with slow waves: curved, natural borders
        fx, fy, px, py = rng.uniform(1, 4, 4)
        x, y = (
            x + 0.05 * np.sin(2 * np.pi * (fy * y + py)),
            y + 0.05 * np.sin(2 * np.pi * (fx * x + px)),
        )
    seeds = rng.uniform(0, 1, (regions, 2)).astype(np.float32)
    dist = (x[None] - seeds[:, 0, None, None]) ** 2 + (y[None] - seeds[:, 1, None, None]) ** 2
    labels = np.argmin(dist, axis=0).astype(np.uint8)
    # make sure each value appears (a cell can vanish under the warp)
    for v in range(regions):
        labels[v, 0] = v
    image = Image.fromarray(labels, "L").resize((size, size), Image.Resampling.NEAREST)
    if size < n:  # shrinking can drop the one-pixel markers: set them again
        small = np.array(image)
        small[0, :regions] = np.arange(regions, dtype=np.uint8)
        image = Image.fromarray(small, "L")
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


VORONOI_CELLS = 40


def voronoi_mask(seed: int, size: int, cells: int = VORONOI_CELLS) -> bytes:
    """``cells`` Voronoi cells at full resolution: straight borders, every value present.

    Unlike region_mask's upscaled plane, every row crosses borders at fresh
    columns, so the PNG filters and compresses worse and decoding costs more.
    """
    import io

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(10_000 + seed)
    points = rng.uniform(0, size, (cells, 2)).astype(np.float32)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    labels = np.zeros((size, size), np.uint8)
    nearest = np.full((size, size), np.inf, np.float32)
    for value, (px, py) in enumerate(points):
        dist = (x - px) ** 2 + (y - py) ** 2
        closer = dist < nearest
        nearest[closer] = dist[closer]
        labels[closer] = value
    labels[0, :cells] = np.arange(cells, dtype=np.uint8)  # a cell can lose every pixel to a tie
    buf = io.BytesIO()
    Image.fromarray(labels, "L").save(buf, "PNG")
    return buf.getvalue()


MAKERS: dict[str, Callable[[int, int], bytes]] = {"regions": region_mask, "voronoi": voronoi_mask}


def _write_mask(job: tuple[str, int, int, str]) -> None:
    path, seed, size, kind = job
    Path(path).write_bytes(MAKERS[kind](seed, size))


def masks(folder: Path, count: int, size: int, kind: str = "regions") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"m{i:06d}.png" for i in range(count)]
    todo = [(str(p), i, size, kind) for i, p in enumerate(paths) if not p.exists()]
    if todo:
        print(f"  generating {len(todo)} {kind} masks of {size}x{size} in {folder}", flush=True)
        with ProcessPoolExecutor(WORKERS) as pool:
            list(pool.map(_write_mask, todo, chunksize=16))
    return paths


def segments_table(values: int = REGIONS) -> list[dict[str, object]]:
    return [{"index": v, "label": f"class-{v}"} for v in range(values)]


def write_jsonl(path: Path, records: Sequence[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def manifest_for(
    paths: Sequence[Path], out: Path, *, prefix: str, values: int = REGIONS
) -> tuple[Path, list[str]]:
    refs = [f"{prefix}-{i:06d}" for i in range(len(paths))]
    table = segments_table(values)
    records: list[dict[str, object]] = [
        {"reference_id": r, "mask_url": str(p), "annotations": table}
        for r, p in zip(refs, paths, strict=True)
    ]
    return write_jsonl(out, records), refs


# -- measuring ------------------------------------------------------------


def timed(args: Sequence[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(
        list(args), env={**os.environ, **(env or {})}, capture_output=True, text=True, cwd=ROOT
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"bench: {args[:4]} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return elapsed, proc.stdout


def peak_rss_mb(args: Sequence[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """Peak resident memory of a command and all its children, sampled every 20 ms."""
    with tempfile.TemporaryFile("w+") as err:
        # stderr to a file: a pipe nobody reads fills up and blocks the command.
        proc = subprocess.Popen(
            list(args),
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
        )
        peak = 0
        out: list[str] = []
        reader = threading.Thread(
            target=lambda: out.append(proc.stdout.read() if proc.stdout else "")
        )
        reader.start()
        while proc.poll() is None:
            peak = max(peak, _tree_rss(proc.pid))
            time.sleep(0.02)
        reader.join()
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"bench: {args[:4]} exited {proc.returncode}:\n{err.read()[-3000:]}")
    return peak / 1024 / 1024, "".join(out)


def _tree_rss(pid: int) -> int:
    total = 0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
        pids.extend(int(c) for c in children)
    return total


def median_times(
    first: Sequence[str], second: Sequence[str], runs: int = 11
) -> tuple[float, float]:
    """Medians of two commands timed in turns, so a busy moment slows both alike."""
    a: list[float] = []
    b: list[float] = []
    timed(first), timed(second)  # warm the file cache for both
    for _ in range(runs):
        a.append(timed(first)[0])
        b.append(timed(second)[0])
    return statistics.median(a), statistics.median(b)


# -- workloads ------------------------------------------------------------

BASELINE_VALIDATE = textwrap.dedent(
    """
    import sys, json
    from concurrent.futures import ProcessPoolExecutor
    import numpy as np
    from PIL import Image

    def check(path):
        values, counts = np.unique(np.asarray(Image.open(path)), return_counts=True)
        return len(values)

    if __name__ == "__main__":
        paths = [json.loads(line)["mask_url"] for line in open(sys.argv[1])]
        with ProcessPoolExecutor(int(sys.argv[2])) as pool:
            print(sum(pool.map(check, paths, chunksize=8)))
    """
)


VALIDATE_RUNS = 3  # alternating runs per side; medians are reported


def bench_validate() -> list[Row]:
    """Two rows: masks of smooth regions, then of Voronoi cells (harder to decode)."""
    script = WORK / "baseline_validate.py"
    script.write_text(BASELINE_VALIDATE)
    rows = []
    for kind, maker, folder, values in (
        ("smooth regions", "regions", "masks1024", REGIONS),
        ("Voronoi cells", "voronoi", "voronoi1024", VORONOI_CELLS),
    ):
        paths = masks(WORK / folder, 2000, 1024, maker)
        manifest, _ = manifest_for(paths, WORK / f"{folder}.jsonl", prefix="v", values=values)
        ours = [PY, "-m", "segcli", "validate", str(manifest), "--json"]  # at its defaults
        _, out = timed(ours)
        summary = json.loads(out)
        assert summary["items"] == 2000 and summary["ok"] == 2000, summary
        base_s, seg_s = median_times(
            [PY, str(script), str(manifest), str(WORKERS)], ours, VALIDATE_RUNS
        )
        ratio = base_s / seg_s
        rate = 2000 / seg_s
        rows.append(
            Row(
                f"validate 2,000 masks 1024x1024, {kind}",
                "masks/s",
                rate,
                2000 / base_s,
                ratio,
                ">= 2.2x",
                ratio >= 2.2,
                f"baseline: `np.unique(np.asarray(Image.open(p)))` on {WORKERS} processes; "
                f"segcli at its defaults ({WORKERS} workers), {rate:,.0f} masks/s "
                f"(aim: 600); medians of {VALIDATE_RUNS} alternating runs",
            )
        )
    return rows


def _upload_rows(name: str) -> list[Row] | Row:
    """A row of ``bench_upload.py``, which uses this script's helpers and data."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import bench_upload

    rows: list[Row] | Row = getattr(bench_upload, f"bench_{name}")(sys.modules[__name__])
    return rows


def _dry_run_peak(
    count: int, small: list[Path], table: list[dict[str, object]], dataset: str, env: dict[str, str]
) -> float:
    path = WORK / f"memory-{count}.jsonl"
    if not path.exists():
        with path.open("w") as fh:
            for i in range(count):
                rec = {
                    "reference_id": f"m-{i:07d}",
                    "mask_url": str(small[i % 200]),
                    "annotations": table,
                }
                fh.write(json.dumps(rec) + "\n")
    peak, out = peak_rss_mb(
        [
            PY,
            "-m",
            "segcli",
            "upload",
            str(path),
            "--dataset",
            dataset,
            "--dry-run",
            "--json",
            "--workers",
            str(WORKERS),
        ],
        env=env,
    )
    summary = json.loads(out)
    assert summary["invalid"] == 0 and summary["items"] == count, summary
    return peak


def bench_memory() -> list[Row]:
    import bench_upload

    small = masks(WORK / "masks64", 200, 64)
    table = segments_table()
    peaks = {}
    # A dry run checks the key and the dataset with the service first (one GET).
    server = bench_upload.BenchServer(WORK, "memory")
    try:
        dataset = server.dataset("dry", [])
        for count in (20_000, 200_000):
            peaks[count] = _dry_run_peak(count, small, table, dataset, server.env)
    finally:
        server.stop()
    growth = peaks[200_000] / peaks[20_000]
    return [
        Row(
            "dry run 200,000 items: peak RSS",
            "MB",
            peaks[200_000],
            300.0,
            peaks[200_000] / 300.0,
            "<= 300 MB",
            peaks[200_000] <= 300,
            "process tree, workers included",
        ),
        Row(
            "  peak RSS 200,000 / 20,000 items",
            "MB",
            peaks[200_000],
            peaks[20_000],
            growth,
            "<= 1.5x",
            growth <= 1.5,
        ),
    ]


def bench_startup() -> list[Row]:
    heavy = {"numpy", "PIL", "httpx", "fsspec", "s3fs", "gcsfs", "aiohttp", "yaml"}
    heavy |= {"dask", "distributed"}  # only with --scheduler
    rows = []
    for flag in ("--help", "--version"):
        proc = subprocess.run(
            [PY, "-X", "importtime", "-m", "segcli", flag], capture_output=True, text=True
        )
        loaded = {
            line.rsplit("|", 1)[-1].strip().split(".")[0]
            for line in proc.stderr.splitlines()
            if line.startswith("import time:")
        }
        bad = sorted(loaded & heavy)
        ours, typer_s = median_times([PY, "-m", "segcli", flag], [PY, "-c", "import typer"])
        ratio = ours / typer_s
        rows.append(
            Row(
                f"segcli {flag} start-up",
                "ms",
                ours * 1000,
                typer_s * 1000,
                ratio,
                "<= 1.5x",
                ratio <= 1.5 and not bad,
                "baseline: python -c 'import typer'; medians of 11, run in turns; heavy imports: "
                + (", ".join(bad) or "none"),
            )
        )
    return rows


def bench_dask() -> Row:
    sys.path.insert(0, str(ROOT / "scripts"))
    import bench_dask

    result: Row = bench_dask.bench(sys.modules[__name__])
    return result


def bench_convert() -> Row:
    sys.path.insert(0, str(ROOT / "scripts"))
    import bench_convert

    result: Row = bench_convert.bench(WORK, ROOT, PY, WORKERS, Row)
    return result


WORKLOADS: dict[str, Callable[[], Row | list[Row]]] = {
    "validate": bench_validate,
    "remote": lambda: _upload_rows("remote"),
    "local": lambda: _upload_rows("local"),
    "capped": lambda: _upload_rows("capped"),
    "memory": bench_memory,
    "startup": bench_startup,
    "convert": bench_convert,
    "dask": bench_dask,
}


def render(rows: list[Row]) -> str:
    lines = [
        "| workload | segcli | baseline | ratio | target | result |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.segcli:,.1f} {r.unit} | {r.baseline:,.1f} {r.unit} | "
            f"{r.ratio:.2f} | {r.target} | {r.result} |"
        )
    notes = [f"- {r.name.strip()}: {r.note}" for r in rows if r.note]
    return "\n".join([_machine(), "", *lines, "", *notes])


def _machine() -> str:
    import platform

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"Measured {time.strftime('%Y-%m-%d')} on {cpus} cores "
        f"({platform.machine()}, Linux {platform.release().split('-')[0]}), "
        f"Python {platform.python_version()}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--only", default=",".join(WORKLOADS), help=f"rows to run, of {','.join(WORKLOADS)}"
    )
    args = parser.parse_args()
    unknown = sorted(set(args.only.split(",")) - set(WORKLOADS))
    if unknown:
        parser.error(f"--only: no such rows: {', '.join(unknown)}")
    WORK.mkdir(exist_ok=True)
    # Byte-compile segcli as an installed package would be (pip compiles the
    # official client's modules when it installs them); an editable install
    # where bytecode is never written would compile every module on every run.
    subprocess.run([PY, "-m", "compileall", "-q", str(ROOT / "segcli")], check=True)
    rows: list[Row] = []
    for name in args.only.split(","):
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        result = WORKLOADS[name]()
        rows.extend(result if isinstance(result, list) else [result])
        print(f"   {time.perf_counter() - start:.1f} s", flush=True)
    table = render(rows)
    print()
    print(table)
    (WORK / "results.md").write_text(table + "\n")
    sys.exit(0 if all(r.passed is not False for r in rows) else 1)


if __name__ == "__main__":
    main()
