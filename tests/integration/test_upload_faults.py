"""Uploads through a misbehaving network and server: nothing lost, nothing twice.

Short versions run in ``make test``; tests/soak/ runs the same tests with the
long sizes (``make soak``). Each compares three records of the run row for row:
what the server holds, what the journal says and what the report says.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from segcli.exitcodes import ExitCode
from segcli.server import FaultConfig
from segcli.server.store import GROUND_TRUTH, NewSegmentation
from tests.helpers.recording_proxy import RecordingProxy, split_multipart
from tests.helpers.upload import (
    KEY,
    Nucleus,
    free_port,
    make_local_manifest,
    segcli_process,
    upload_args,
)


def sizes(short: Any, soak: Any) -> list[Any]:
    """Parameters for a test: the short run here, in ``make test``; tests/soak/ runs the
    same test with the long one (``soak``, kept beside it to be read together)."""
    return [pytest.param(short, id="short")]


def journal_states(path: Path) -> dict[str, str]:
    """reference_id -> state, as the journal holds them."""
    if not path.exists():
        return {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)  # never in a run's way
    try:
        return dict(conn.execute("SELECT reference_id, state FROM items"))
    except sqlite3.OperationalError:  # not created yet
        return {}
    finally:
        conn.close()


def report_states(path: Path) -> dict[str, str]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    states = {r["reference_id"]: r["state"] for r in records}
    assert len(states) == len(records), "an item was reported twice"
    return states


def run(args: list[str], timeout_s: float = 600) -> tuple[int, dict[str, Any], str]:
    """segcli in its own process, with --json: (exit code, summary, stderr)."""
    code, out, err = run_text([*args, "--json"], timeout_s)
    return code, (json.loads(out) if out.strip() else {}), err


def run_text(args: list[str], timeout_s: float = 600) -> tuple[int, str, str]:
    """segcli in its own process: (exit code, stdout, stderr)."""
    proc = segcli_process(args, {"NUCLEUS_API_KEY": KEY})
    out, err = proc.communicate(timeout=timeout_s)
    assert "Traceback" not in out + err, err
    return proc.returncode, out, err


def run_recorded(
    tmp_path: Path, manifest: Path, server: Nucleus, *extra: str
) -> tuple[int, dict[str, Any], str, Path, Path]:
    """An upload with ten retries that keeps a report and a journal in ``tmp_path``:
    (exit code, summary, stderr, report path, journal path)."""
    report = tmp_path / "report.jsonl"
    journal = tmp_path / "journal"
    code, summary, err = run(
        upload_args(
            manifest,
            server,
            "--retries",
            "10",
            *extra,
            "--report",
            str(report),
            "--journal",
            str(journal),
        )
    )
    return code, summary, err, report, journal


# -- faults ---------------------------------------------------------------------------

# A fifth of upload requests answered with an error, one in twenty cut off
# mid-answer, one in fifty stalled past the client's timeout, one in twenty
# applied with its answer lost.
FAULTS = FaultConfig(
    seed=11,
    rate_503=0.05,
    rate_429=0.05,
    retry_after_s=0.2,
    rate_500=0.05,
    rate_504=0.05,
    rate_drop=0.05,
    rate_stall=0.02,
    stall_s=2.0,
    rate_lost=0.05,
)


@pytest.mark.parametrize("n", sizes(500, 5000))
def test_faults_land_every_item_exactly_once(tmp_path: Path, n: int) -> None:
    manifest, refs = make_local_manifest(tmp_path / "data", n)
    server = Nucleus(tmp_path, refs, FAULTS)
    try:
        code, summary, err, report, journal = run_recorded(
            tmp_path, manifest, server, "--timeout", "1"
        )
        assert code == ExitCode.OK, err
        assert summary["uploaded"] == n and summary["retries"] > n // 100  # faults happened
        rows = server.rows()
    finally:
        server.stop()
    # every item once on the server, with the very bytes of its mask
    assert sorted(r["reference_id"] for r in rows) == refs
    for row in rows:
        mask = manifest.parent / "masks" / f"{row['reference_id']}.png"
        assert Path(row["mask_file"]).read_bytes() == mask.read_bytes()
    # server, journal and report agree row for row; "uploaded", never "ignored":
    # a second copy reaching the server would have come back ignored
    on_server = {r["reference_id"]: "uploaded" for r in rows}
    assert report_states(report) == on_server
    assert journal_states(journal) == on_server


# -- answers lost on the way back -----------------------------------------------------


def test_a_write_whose_answer_was_lost_is_reported_uploaded_not_ignored(
    tmp_path: Path,
) -> None:
    # A third of requests land and lose their answer: the retry then finds the
    # batch's masks in place and the server counts them ignored.
    manifest, refs = make_local_manifest(tmp_path / "data", 200)
    server = Nucleus(tmp_path, refs, FaultConfig(seed=5, rate_lost=0.3))
    # Someone else's masks already sit on a few items, spread over the batches:
    # those stay "ignored" even when their batch's answer was lost.
    others = set(refs[::17])
    store = server.store
    with store.transaction() as conn:
        store.apply_segmentations(
            conn,
            server.dataset_id,
            GROUND_TRUTH,
            [
                NewSegmentation(
                    reference_id=ref,
                    annotation_id="someone-else",
                    mask_url="s3://elsewhere/mask.png",
                    annotations=[{"label": "other", "index": 0}],
                    raw={},
                )
                for ref in sorted(others)
            ],
            update=False,
            auto_items=False,
        )
    try:
        code, summary, err, report, journal = run_recorded(tmp_path, manifest, server)
        rows = server.rows()
    finally:
        server.stop()
    assert code == ExitCode.OK, err
    assert summary["retries"] >= 3  # answers were lost
    expected = {ref: "ignored" if ref in others else "uploaded" for ref in refs}
    assert summary["uploaded"] == len(refs) - len(others) and summary["ignored"] == len(others)
    assert report_states(report) == expected
    assert journal_states(journal) == expected
    # one mask per item: ours where it was free, the other one where it was not
    assert sorted(r["reference_id"] for r in rows) == refs
    for row in rows:
        if row["reference_id"] in others:
            assert row["annotation_id"] == "someone-else"
        else:
            mask = manifest.parent / "masks" / f"{row['reference_id']}.png"
            assert Path(row["mask_file"]).read_bytes() == mask.read_bytes()


# -- the server is down at the start ------------------------------------------------------


@pytest.mark.parametrize("down_s", sizes(3.0, 10.0))
def test_a_server_that_comes_up_late_is_waited_for(tmp_path: Path, down_s: float) -> None:
    manifest, refs = make_local_manifest(tmp_path / "data", 60)
    server = Nucleus(tmp_path, refs, port=free_port(), start=False)
    started = time.monotonic()
    # Backoff doubles up to 30 s a wait: 10 retries ride out any outage of
    # these lengths whatever the jitter draws.
    proc = segcli_process(
        [*upload_args(manifest, server, "--retries", "10"), "--json"], {"NUCLEUS_API_KEY": KEY}
    )
    try:
        time.sleep(down_s)  # the outage itself: nothing listens on the port
        assert proc.poll() is None, "segcli gave up while the server was down"
        server.start()
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == ExitCode.OK, err
        assert time.monotonic() - started >= down_s
        assert json.loads(out)["uploaded"] == len(refs)
        assert sorted(r["reference_id"] for r in server.rows()) == refs
    finally:
        proc.kill()
        server.stop()


def test_a_server_down_past_the_retries_fails_clearly_then_a_rerun_finishes(
    tmp_path: Path,
) -> None:
    manifest, refs = make_local_manifest(tmp_path / "data", 40)
    server = Nucleus(tmp_path, refs, port=free_port(), start=False)
    args = upload_args(manifest, server, "--retries", "1")
    try:
        code, summary, err = run(args)
        assert code == ExitCode.ITEMS_FAILED
        # stopped before any item: the one JSON object is the error
        assert summary["exit_code"] == 1 and summary["error"]["code"] == "server-unavailable"
        message = " ".join(err.split())
        assert server.url in message  # where it tried
        assert "failed after 2 tries" in message and "cannot connect" in message  # what happened
        assert "Nothing was sent in this run" in message  # what is left
        assert "re-run the same command" in message  # what to do
        assert not (manifest.parent / "manifest.jsonl.segcli-journal").exists()  # nothing left
        assert "unexpected error" not in message

        server.start()
        code, summary, err = run(args)
        assert code == ExitCode.OK, err
        assert summary["uploaded"] == len(refs)
        assert sorted(r["reference_id"] for r in server.rows()) == refs
    finally:
        server.stop()


@pytest.mark.parametrize("down_s", sizes(2.0, 10.0))
def test_a_server_restarted_mid_run_loses_nothing(tmp_path: Path, down_s: float) -> None:
    manifest, refs = make_local_manifest(tmp_path / "data", 200)
    server = Nucleus(tmp_path, refs, FaultConfig(latency_s=0.05), port=free_port())
    journal = tmp_path / "journal"
    proc = segcli_process(
        [
            *upload_args(manifest, server, "--retries", "10", "--concurrency", "2"),
            "--local-batch-size",
            "4",
            "--journal",
            str(journal),
            "--json",
        ],
        {"NUCLEUS_API_KEY": KEY},
    )
    try:
        deadline = time.monotonic() + 60
        while len(journal_states(journal)) < 40:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        server.stop()  # requests in flight are cut off; new ones are refused
        time.sleep(down_s)
        server.start()
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == ExitCode.OK, err
        summary = json.loads(out)
        rows = server.rows()
    finally:
        proc.kill()
        server.stop()
    assert sorted(r["reference_id"] for r in rows) == refs
    states = journal_states(journal)
    # a batch cut off by the stop may have landed unseen: its retry finds the
    # masks in place, reads them back and knows them for its own
    assert states == dict.fromkeys(refs, "uploaded")
    assert summary["uploaded"] == len(refs) and summary["ignored"] == 0


# -- a whole batch refused with a 400 --------------------------------------------------------

REFUSAL = "Segmentation batch refused: annotation schema check failed"


class RefusingProxy(RecordingProxy):
    """Forwards to the server, but answers the ``nth`` upload request with a 400."""

    def __init__(self, upstream: str, nth: int) -> None:
        super().__init__(upstream)
        self.nth = nth
        self.uploads_seen = 0
        self.refused: list[str] = []  # reference_ids of the refused batch

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.path.endswith("/annotate"):
            self.uploads_seen += 1
            if self.uploads_seen == self.nth:
                body = await request.read()
                parts = split_multipart(request.headers["Content-Type"], body)
                serialized = json.loads(parts[0].data)
                self.refused = [s["reference_id"] for s in serialized["segmentations"]]
                return web.json_response({"error": REFUSAL}, status=400)
        return await super()._handle(request)


@pytest.fixture
def refusing(tmp_path: Path) -> Iterator[tuple[Nucleus, RefusingProxy, Path, list[str]]]:
    manifest, refs = make_local_manifest(tmp_path / "data", 50)
    server = Nucleus(tmp_path, refs)
    proxy = RefusingProxy(server.url.removesuffix("/v1/nucleus"), nth=3)
    proxy.start()
    yield server, proxy, manifest, refs
    proxy.stop()
    server.stop()


def test_a_batch_refused_with_400_fails_only_its_items(
    refusing: tuple[Nucleus, RefusingProxy, Path, list[str]], tmp_path: Path
) -> None:
    server, proxy, manifest, refs = refusing
    report = tmp_path / "report.jsonl"
    journal = tmp_path / "journal"
    args = [
        "upload",
        str(manifest),
        "--dataset",
        server.dataset_id,
        "--endpoint",
        proxy.url + "/v1/nucleus",
        "--local-batch-size",
        "5",
        "--journal",
        str(journal),
    ]
    code, out, err = run_text([*args, "--report", str(report)])
    assert code == ExitCode.ITEMS_FAILED, err
    refused = set(proxy.refused)
    assert len(refused) == 5
    assert f"uploaded {len(refs) - 5}," in out and "failed 5" in out
    assert "5 failed items remain to upload; re-run the same command" in out
    # every other batch landed; the refused one did not
    assert {r["reference_id"] for r in server.rows()} == set(refs) - refused
    records = [json.loads(line) for line in report.read_text().splitlines()]
    for record in records:
        if record["reference_id"] in refused:
            assert record["state"] == "failed"
            assert REFUSAL in record["message"] and "HTTP 400" in record["message"]
        else:
            assert record["state"] == "uploaded"
    states = journal_states(journal)
    assert {ref for ref, state in states.items() if state == "failed"} == refused
    # the first failed items are named with the server's words; the rest of
    # the same failure is counted (every one is in the report, checked above)
    named = [x for x in out.splitlines() if ": failed: " in x]
    assert len(named) == 3 and all(REFUSAL in x for x in named)
    assert {x.split()[1].rstrip(":") for x in named} <= refused
    assert "... and 2 more items failed the same way as" in out

    # a re-run sends only those five, and they land
    proxy.requests.clear()
    code, summary, err = run(args)
    assert code == ExitCode.OK, err
    assert summary["uploaded"] == 5 and summary["skipped"] == len(refs) - 5
    assert sorted(r["reference_id"] for r in server.rows()) == refs
