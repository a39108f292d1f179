"""The `make bench` upload rows: segcli at its defaults against the official client.

- remote: 4,000 ``s3://`` URLs, 100 ms a request, against the official
  client's ``dataset.annotate`` (one 20-item batch at a time); target >= 10x.
- local: 2,000 local 512x512 masks, segcli checking every one, against the
  official client (10 requests in flight, no checks); target >= 2x.
- capped: the server takes at most 32 requests at once (429 above), 4,000
  URLs; against its bound, 32 in flight x 20 items / 0.1 s; target >= 0.8 of
  it with <= 2% of requests answered 429.

The server runs in this process, with its own mask decoding off: it stands in
for a remote service, whose CPU is spent on the service's machines, so it is
charged to neither client. Every run uses a fresh dataset; each row takes the
medians of ``RUNS`` runs, the two clients in turns. ``b`` is the bench script
(``scripts/bench.py``): its ``Row``, its timer and its data makers.
"""

from __future__ import annotations

import json
import math
import resource
import secrets
import shutil
import statistics
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LATENCY_S = 0.1
RUNS = 5
REMOTE_ITEMS = 4000
LOCAL_ITEMS = 2000
CAP = 32  # the capped server's requests in flight
BATCH = 20  # s3:// URLs a request
REFUSED_MAX = 0.02

OFFICIAL_UPLOAD = textwrap.dedent(
    """
    import json, os, sys, time
    import nucleus
    from nucleus import NucleusClient, Segment, SegmentationAnnotation

    manifest, dataset_id = sys.argv[1], sys.argv[2]
    # Timed like segcli's elapsed_s: everything after the imports. The client
    # and get_dataset (its one GET before the uploads, as segcli's preflight),
    # reading the manifest, and the upload itself.
    start = time.perf_counter()
    client = NucleusClient(os.environ["NUCLEUS_API_KEY"], endpoint=os.environ["NUCLEUS_ENDPOINT"])
    dataset = client.get_dataset(dataset_id)
    annotations = []
    for line in open(manifest):
        r = json.loads(line)
        annotations.append(SegmentationAnnotation(
            mask_url=r["mask_url"], reference_id=r["reference_id"], annotation_id=None,
            annotations=[Segment(label=s["label"], index=s["index"]) for s in r["annotations"]],
        ))
    response = dataset.annotate(annotations, update=False)
    elapsed = time.perf_counter() - start
    print(json.dumps({"elapsed_s": elapsed, "response": response}))
    """
)


class BenchServer:
    """The local Nucleus server, 100 ms a request, mask decoding off, in a background thread."""

    def __init__(self, work: Path, name: str, *, max_inflight: int | None = None) -> None:
        from segcli.server import FaultConfig, LocalServer, ServerConfig

        self.key = secrets.token_hex(16)
        self.data_dir = work / f"server-{name}"
        shutil.rmtree(self.data_dir, ignore_errors=True)
        # A capped service asks to come back when a request's time has passed:
        # that is when one of its places frees.
        faults = FaultConfig(latency_s=LATENCY_S, retry_after_s=LATENCY_S, routes=("*",))
        config = ServerConfig(
            data_dir=self.data_dir,
            api_keys=(self.key,),
            faults=faults,
            decode_masks=False,
            max_inflight=max_inflight,
        )
        self.server = LocalServer(config)
        self.url = self.server.start()
        self.env = {"NUCLEUS_API_KEY": self.key, "NUCLEUS_ENDPOINT": self.url}

    def dataset(self, name: str, refs: list[str]) -> str:
        from segcli.server import seed_dataset

        return seed_dataset(self.data_dir, name, refs)

    def stored(self, dataset_id: str) -> int:
        return int(self.server.store.count("segmentations", dataset_id=dataset_id))

    def stop(self) -> None:
        self.server.stop()


@dataclass
class Run:
    segcli_s: float  # segcli's elapsed_s: all of upload(), preflight GET included
    send_s: float  # segcli's send_elapsed_s: first upload request to last reply
    segcli_wall_s: float  # the whole process, interpreter start-up and imports included
    peak_limit: float  # the most requests segcli allowed in flight
    cutbacks: float  # times segcli's limit was cut back
    refused: float  # requests the server answered 429 (over its capacity)
    requests: float  # requests the server received
    segcli_cpu_s: float  # CPU seconds of segcli's process and its workers
    server_cpu_s: float  # CPU seconds of this process meanwhile: the server's
    official_s: float = 0.0  # the official script's timer (see OFFICIAL_UPLOAD)
    official_wall_s: float = 0.0


def _segcli(
    b: Any, server: BenchServer, name: str, manifest: Path, refs: list[str], extra: list[str]
) -> Run:
    """One run of segcli at its defaults (plus ``extra``); checks that every item landed."""
    ours = server.dataset(f"segcli-{name}", refs)
    journal = b.WORK / f"{name}.journal"
    journal.unlink(missing_ok=True)
    capacity = server.server.capacity
    before = (capacity.refused, capacity.admitted)
    args = ["upload", str(manifest), "--dataset", ours, "--json", "--journal", str(journal)]
    cpu = _cpu()
    wall_s, out = b.timed([b.PY, "-m", "segcli", *args, *extra], env=server.env)
    segcli_cpu_s, server_cpu_s = (after - before for after, before in zip(_cpu(), cpu, strict=True))
    summary = json.loads(out)
    assert summary["uploaded"] == len(refs), summary
    assert server.stored(ours) == len(refs)
    refused = capacity.refused - before[0]
    return Run(
        segcli_s=float(summary["elapsed_s"]),
        send_s=float(summary["send_elapsed_s"]),
        segcli_wall_s=wall_s,
        peak_limit=summary["concurrency"]["peak"],
        cutbacks=summary["concurrency"]["cutbacks"],
        refused=refused,
        requests=refused + capacity.admitted - before[1],
        segcli_cpu_s=segcli_cpu_s,
        server_cpu_s=server_cpu_s,
    )


def _cpu() -> tuple[float, float]:
    """(CPU seconds of waited-for children, their own children included; of this process)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = resource.getrusage(resource.RUSAGE_SELF)
    return children.ru_utime + children.ru_stime, own.ru_utime + own.ru_stime


def _runs(
    b: Any,
    name: str,
    manifest: Path,
    refs: list[str],
    *,
    official: bool,
    max_inflight: int | None = None,
    extra: tuple[str, ...] = (),
) -> Run:
    """Medians of RUNS runs on one server (the official client first in each turn)."""
    bench = BenchServer(b.WORK, name, max_inflight=max_inflight)
    if extra:
        print(f"  segcli {' '.join(extra)}:", flush=True)
    runs: list[Run] = []
    try:
        for n in range(RUNS):
            official_s = official_wall_s = 0.0
            if official:
                script = b.WORK / "official_upload.py"
                script.write_text(OFFICIAL_UPLOAD)
                theirs = bench.dataset(f"official-{n}", refs)
                official_wall_s, out = b.timed(
                    [b.NUCLEUS_PY, str(script), str(manifest), theirs], env=bench.env
                )
                assert bench.stored(theirs) == len(refs)
                official_s = float(json.loads(out)["elapsed_s"])
            run = _segcli(b, bench, f"{name}-{n}", manifest, refs, list(extra))
            run.official_s, run.official_wall_s = official_s, official_wall_s
            runs.append(run)
            print(
                f"  run {n + 1}: segcli {run.segcli_s:.2f} s (sending {run.send_s:.2f} s, "
                f"limit peak {run.peak_limit:.0f}, cut back {run.cutbacks:.0f} times, "
                f"{run.refused:.0f} of {run.requests:.0f} "
                f"requests refused)" + (f", official {official_s:.2f} s" if official else ""),
                flush=True,
            )
    finally:
        bench.stop()
    columns = zip(*(vars(r).values() for r in runs), strict=True)
    return Run(*(statistics.median(column) for column in columns))


def _remote_manifest(b: Any, count: int) -> tuple[Path, list[str]]:
    refs = [f"r-{i:06d}" for i in range(count)]
    table = b.segments_table()
    records = [
        {"reference_id": r, "mask_url": f"s3://bench-bucket/masks/{r}.png", "annotations": table}
        for r in refs
    ]
    return b.write_jsonl(b.WORK / f"remote-{count}.jsonl", records), refs


def _wall(run: Run) -> str:
    return (
        f"medians of {RUNS} runs each; whole process (start-up and imports included): "
        f"segcli {run.segcli_wall_s:.2f} s, official {run.official_wall_s:.2f} s"
    )


# The s3:// URLs name no real object (the official client never reads them
# either), so segcli does not read them: --no-validate-remote.
URLS = ("--no-validate-remote",)


def bench_remote(b: Any) -> Any:
    manifest, refs = _remote_manifest(b, REMOTE_ITEMS)
    run = _runs(b, "remote", manifest, refs, official=True, extra=URLS)
    ratio = run.official_s / run.segcli_s
    return b.Row(
        f"upload {len(refs):,} s3:// URLs, 100 ms a request",
        "items/s",
        len(refs) / run.segcli_s,
        len(refs) / run.official_s,
        ratio,
        ">= 10x",
        ratio >= 10,
        "baseline: official client dataset.annotate; both timed after their imports, "
        "each timer covering its client's set-up, one GET before uploading (segcli's "
        "preflight, the official get_dataset), reading the manifest and the upload; "
        f"segcli at its defaults (limit peak {run.peak_limit:.0f}), --no-validate-remote "
        "(the URLs name no real object); " + _wall(run),
    )


def bench_local(b: Any) -> Any:
    paths = b.masks(b.WORK / "masks512", LOCAL_ITEMS, 512)
    manifest, refs = b.manifest_for(paths, b.WORK / "local.jsonl", prefix="l")
    run = _runs(b, "local", manifest, refs, official=True)
    # Where the time goes: the same upload without checking the masks.
    unchecked = _runs(b, "unchecked", manifest, refs, official=False, extra=("--no-validate",))
    ratio = run.official_s / run.segcli_s
    return b.Row(
        f"upload {len(refs):,} local masks 512x512, 100 ms a request",
        "items/s",
        len(refs) / run.segcli_s,
        len(refs) / run.official_s,
        ratio,
        ">= 2x",
        ratio >= 2,
        "segcli validates every mask, the official client none; the server checks each "
        "PNG's header, not its pixels (--no-decode-masks); segcli at its defaults (limit "
        f"peak {run.peak_limit:.0f}), the official client keeps 10 requests in flight; "
        + _wall(run)
        + f"; the same upload with --no-validate: {unchecked.segcli_s:.2f} s "
        f"({run.official_s / unchecked.segcli_s:.2f}x); " + _cpu_note(b, run),
    )


def _cpu_note(b: Any, run: Run) -> str:
    """What the CPU allows: segcli and the server share this machine's cores."""
    floor_s = (run.segcli_cpu_s + run.server_cpu_s) / b.WORKERS
    return (
        f"CPU: segcli {run.segcli_cpu_s:.2f} s (its process and workers), the server "
        f"{run.server_cpu_s:.2f} s; on {b.WORKERS} cores no run of the two takes less "
        f"than {floor_s:.2f} s, {run.official_s / floor_s:.2f}x the official client at best"
    )


def _ramp_note(items: int) -> str:
    """The best a limit that starts low can do here, counted in round trips.

    The limit starts at INITIAL_LIMIT and grows by SLOW_START_STEP of itself
    each round trip until the cap; each round trip carries at most the limit's
    requests. Even without any overhead, the rounds spent growing cost
    whole round trips at the end.
    """
    from segcli.limiter import INITIAL_LIMIT, SLOW_START_STEP

    requests = math.ceil(items / BATCH)
    limit, sent, rounds = float(INITIAL_LIMIT), 0, 0
    while sent < requests:
        sent += min(CAP, int(limit))
        limit *= 1 + SLOW_START_STEP
        rounds += 1
    ideal = items / (rounds * LATENCY_S) / (CAP * BATCH / LATENCY_S)
    return (
        f"starting at {INITIAL_LIMIT} and growing x{1 + SLOW_START_STEP:g} a round trip, "
        f"the {requests} requests need {rounds} round trips at least: "
        f"{ideal:.2f} of the bound with no overhead at all"
    )


def bench_capped(b: Any) -> list[Any]:
    manifest, refs = _remote_manifest(b, REMOTE_ITEMS)
    run = _runs(b, "capped", manifest, refs, official=False, max_inflight=CAP, extra=URLS)
    # Where the time goes: the same run with the capacity known in advance.
    known = _runs(
        b,
        "capped-known",
        manifest,
        refs,
        official=False,
        max_inflight=CAP,
        extra=(*URLS, "--concurrency", str(CAP)),
    )
    bound = CAP * BATCH / LATENCY_S
    rate = len(refs) / run.send_s
    share = run.refused / run.requests
    return [
        b.Row(
            f"server capped at {CAP} in flight (429 above), {len(refs):,} URLs",
            "items/s",
            rate,
            bound,
            rate / bound,
            ">= 0.8",
            rate / bound >= 0.8,
            f"bound = {CAP} in flight x {BATCH} items / {LATENCY_S:.1f} s; rate from the first "
            f"upload request to the last reply; segcli at its defaults (limit peak "
            f"{run.peak_limit:.0f}); the server answers 429 with Retry-After: {LATENCY_S:g} "
            f"(a request's time); medians of {RUNS} runs; with the capacity known "
            f"(--concurrency {CAP}): {len(refs) / known.send_s / bound:.2f} of the bound; "
            + _ramp_note(len(refs)),
        ),
        b.Row(
            "  same run, requests answered 429",
            "%",
            100 * share,
            100 * REFUSED_MAX,
            share / REFUSED_MAX,
            f"<= {100 * REFUSED_MAX:.0f}%",
            share <= REFUSED_MAX,
            f"median {run.refused:.0f} of {run.requests:.0f} requests the server received",
        ),
    ]
