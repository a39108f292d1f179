"""The `make bench` convert row: COCO panoptic to index masks, segcli against the plain numpy way.

Data: 2,000 COCO-panoptic-shaped images, 1024x1024 RGB id PNGs with ~40
segments each (warped Voronoi cells, ids spread over the three channels) and
their panoptic JSON, generated once into .bench/coco/. The baseline is what
people write: panopticapi's rgb2id on ``np.array(Image.open(p), np.uint32)``,
a loop over segments_info writing ``out[ids == id] = k``, Pillow's save; on a
process pool of the same size as segcli's --workers. Both are timed as whole
processes (start-up, reading the JSON, writing every mask), in turns.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

COUNT = 2000
SIZE = 1024
SEGMENTS = 40
RUNS = 3

BASELINE = textwrap.dedent(
    """
    import json, os, sys
    from concurrent.futures import ProcessPoolExecutor
    import numpy as np
    from PIL import Image

    def rgb2id(color):  # panopticapi.utils.rgb2id
        return color[:, :, 0] + 256 * color[:, :, 1] + 256 * 256 * color[:, :, 2]

    def convert(job):
        src, dst, segments = job
        ids = rgb2id(np.array(Image.open(src), dtype=np.uint32))
        out = np.zeros(ids.shape, dtype=np.uint8)
        for index, segment in enumerate(segments):
            out[ids == segment["id"]] = index
        Image.fromarray(out).save(dst)
        return len(segments)

    if __name__ == "__main__":
        doc = json.load(open(sys.argv[1]))
        masks, out, workers = sys.argv[2], sys.argv[3], int(sys.argv[4])
        os.makedirs(out, exist_ok=True)
        jobs = [
            (os.path.join(masks, a["file_name"]), os.path.join(out, a["file_name"]),
             a["segments_info"])
            for a in doc["annotations"]
        ]
        with ProcessPoolExecutor(workers) as pool:
            print(sum(pool.map(convert, jobs, chunksize=8)))
    """
)


def _image(n: int) -> tuple[bytes, list[dict[str, Any]]]:
    """One COCO panoptic PNG: the validate row's region masks (~40 warped Voronoi cells), as ids."""
    import io

    import numpy as np
    from bench import region_mask
    from PIL import Image

    cells = np.asarray(Image.open(io.BytesIO(region_mask(90_000 + n, SIZE, SEGMENTS))))
    rng = np.random.default_rng(90_000 + n)
    ids = rng.choice(np.arange(1, 1 << 24, dtype=np.uint32), SEGMENTS, replace=False)
    picture = ids[cells]
    rgb = np.stack([picture & 255, (picture >> 8) & 255, picture >> 16], -1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, "PNG")
    counts = np.bincount(cells.ravel(), minlength=SEGMENTS)
    segments = [
        {
            "id": int(ids[k]),
            "category_id": 1 + k % 8,
            "iscrowd": 0,
            "area": int(counts[k]),
            "bbox": [0, 0, SIZE, SIZE],
        }
        for k in range(SEGMENTS)
        if counts[k]
    ]
    return buf.getvalue(), segments


def _write(job: tuple[str, int]) -> list[dict[str, Any]]:
    path, n = job
    data, segments = _image(n)
    Path(path).write_bytes(data)
    return segments


def data(work: Path, workers: int) -> Path:
    root = work / "coco"
    path = root / "panoptic.json"
    if path.exists():
        return path
    (root / "panoptic").mkdir(parents=True, exist_ok=True)
    print(f"  generating {COUNT} COCO panoptic images of {SIZE}x{SIZE} in {root}", flush=True)
    jobs = [(str(root / "panoptic" / f"{n:06d}.png"), n) for n in range(COUNT)]
    with ProcessPoolExecutor(workers) as pool:
        infos = list(pool.map(_write, jobs, chunksize=16))
    categories = [
        {"id": c, "name": f"class-{c}", "isthing": int(c <= 4), "supercategory": "x"}
        for c in range(1, 9)
    ]
    doc = {
        "images": [
            {"id": n, "file_name": f"{n:06d}.jpg", "width": SIZE, "height": SIZE}
            for n in range(COUNT)
        ],
        "annotations": [
            {"image_id": n, "file_name": f"{n:06d}.png", "segments_info": info}
            for n, info in enumerate(infos)
        ],
        "categories": categories,
    }
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(doc))
    temporary.replace(path)
    return path


def _timed(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, cwd=cwd, env=os.environ.copy())
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"bench: {args[:5]} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return elapsed


def bench(work: Path, root: Path, py: str, workers: int, row: Callable[..., Any]) -> Any:
    path = data(work, workers)
    script = work / "baseline_convert.py"
    script.write_text(BASELINE)
    out_base, out_seg = work / "convert-baseline", work / "convert-segcli"
    baseline_args = [
        py,
        str(script),
        str(path),
        str(path.parent / "panoptic"),
        str(out_base),
        str(workers),
    ]
    segcli_args = [
        py, "-m", "segcli", "convert", "coco-panoptic", str(path), "--out", str(out_seg),
        "--workers", str(workers), "--json",
    ]  # fmt: skip
    base: list[float] = []
    seg: list[float] = []
    for _ in range(RUNS):  # in turns, each on an empty output folder
        shutil.rmtree(out_base, ignore_errors=True)
        base.append(_timed(baseline_args, root))
        shutil.rmtree(out_seg, ignore_errors=True)
        seg.append(_timed(segcli_args, root))
    converted = sum(1 for _ in out_seg.glob("*.png"))
    assert converted == COUNT, converted
    base_s, seg_s = statistics.median(base), statistics.median(seg)
    ratio = base_s / seg_s
    return row(
        f"convert {COUNT:,} COCO panoptic {SIZE}x{SIZE}, ~{SEGMENTS} segments",
        "images/s",
        COUNT / seg_s,
        COUNT / base_s,
        ratio,
        ">= 2x",
        ratio >= 2,
        f"baseline: rgb2id + a loop over segments_info + Pillow save on {workers} processes; "
        f"segcli --workers {workers} (every mask checked by the inspector before it is "
        f"written); whole processes, medians of {RUNS} runs in turns",
    )


if __name__ == "__main__":
    sys.exit("run through scripts/bench.py --only convert")
