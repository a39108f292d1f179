"""``segcli upload --async``: remote masks handed to the service as jobs, against real servers.

The local Nucleus server fetches every s3:// mask from the moto S3 server and
checks it, as the service would; segcli starts jobs through the signed-URL
route, polls them, and maps each job's errors back to its items.
"""

from __future__ import annotations

import json
import math
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from segcli.exitcodes import ExitCode
from tests.helpers.remote_servers import S3Server
from tests.helpers.upload import KEY, Nucleus, png_bytes, segcli_process, upload_args, wait_for

SEGMENTS = [{"index": v, "label": f"class-{v}"} for v in range(3)]


def remote_manifest(
    folder: Path, s3: S3Server, refs: list[str], *, name: str = "manifest.jsonl", seed: int = 0
) -> Path:
    """Masks put in the S3 server, and a JSONL manifest naming them by s3:// URL."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, ref in enumerate(refs):
        url = s3.put(f"{folder.name}/{seed}/{ref}.png", png_bytes(seed * 10_000 + i))
        lines.append(json.dumps({"reference_id": ref, "mask_url": url, "annotations": SEGMENTS}))
    manifest = folder / name
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def run(args: list[str], timeout_s: float = 120) -> tuple[int, str, str]:
    proc = segcli_process(args, {"NUCLEUS_API_KEY": KEY})
    out, err = proc.communicate(timeout=timeout_s)
    assert "Traceback" not in out + err, err
    assert KEY not in out + err
    return proc.returncode, out, err


def server_for(tmp_path: Path, refs: list[str], s3: S3Server, **config: Any) -> Nucleus:
    return Nucleus(tmp_path, refs, storage_options=s3.storage_options, **config)


def journal_states(path: Path) -> dict[str, str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT reference_id, state FROM items"))
    finally:
        conn.close()


def test_chunks_become_jobs_and_each_item_ends_in_its_state(
    tmp_path: Path, s3_server: S3Server
) -> None:
    refs = [f"img-{i:03d}" for i in range(45)]
    manifest = remote_manifest(tmp_path / "async-basic", s3_server, [*refs, "ghost"])
    # Jobs take a while at the server, so that jobs in flight overlap there.
    server = server_for(tmp_path, refs, s3_server, job_step_s=0.5)
    report = tmp_path / "report.jsonl"
    try:
        args = upload_args(manifest, server, "--async", "--job-size", "10", "--max-jobs", "2")
        args += ["--s3-endpoint-url", s3_server.endpoint_url, "--json", "--report", str(report)]
        code, out, err = run(args)
        summary = json.loads(out)
        jobs = server.store.count("jobs")
        uploads = server.store.count("signed_uploads")
        rows = server.rows()
        with server.store.transaction() as conn:
            spans = [tuple(r) for r in conn.execute("SELECT created, updated FROM jobs")]
    finally:
        server.stop()
    assert code == ExitCode.ITEMS_FAILED, err
    # --max-jobs 2: never more than two of the five jobs at work at once
    assert max(sum(1 for a, b in spans if a <= t <= b) for t, _ in spans) <= 2
    assert (summary["uploaded"], summary["rejected"], summary["failed"]) == (45, 1, 0)
    # 46 items in chunks of 10: five jobs, each started once, through its own signed URL
    assert jobs == uploads == math.ceil(46 / 10) == len(summary["jobs"])
    assert {j["status"] for j in summary["jobs"]} == {"Completed"}
    assert sum(j["items"] for j in summary["jobs"]) == 46
    assert summary["requests"] == 3 * jobs
    # the server fetched and checked every mask: each item held once, by its URL
    assert sorted(r["reference_id"] for r in rows) == refs
    assert all(r["mask_url"].startswith(f"s3://{s3_server.bucket}/async-basic/") for r in rows)
    lines = {r["reference_id"]: r for r in map(json.loads, report.read_text().splitlines())}
    ghost = lines["ghost"]
    assert ghost["state"] == "rejected"
    assert "Item with id ghost doesn't exist" in ghost["message"]
    assert json.loads(ghost["server_error"])["annotation"]["reference_id"] == "ghost"
    states = journal_states(manifest.parent / "manifest.jsonl.segcli-journal")
    assert states == {**dict.fromkeys(refs, "uploaded"), "ghost": "rejected"}


def test_items_that_had_a_mask_are_read_back_and_update_replaces_them(
    tmp_path: Path, s3_server: S3Server
) -> None:
    refs = [f"img-{i:03d}" for i in range(12)]
    first = remote_manifest(tmp_path / "async-old", s3_server, refs[:5], seed=1)
    manifest = remote_manifest(tmp_path / "async-new", s3_server, refs, seed=2)
    server = server_for(tmp_path, refs, s3_server)
    s3 = ["--s3-endpoint-url", s3_server.endpoint_url, "--json"]
    try:
        code, _, err = run(upload_args(first, server, *s3))  # other masks, the sync way
        assert code == ExitCode.OK, err
        code, out, err = run(upload_args(manifest, server, "--async", "--job-size", "5", *s3))
        held = {r["reference_id"]: r["mask_url"] for r in server.rows()}
        code_update, out_update, err_update = run(
            upload_args(manifest, server, "--async", "--update", "--force", *s3)
        )
        replaced = {r["reference_id"]: r["mask_url"] for r in server.rows()}
    finally:
        server.stop()
    assert code == ExitCode.OK, err
    plain = json.loads(out)
    # the job's status does not say which items it ignored: each is read back
    assert (plain["uploaded"], plain["ignored"]) == (7, 5)
    assert all("async-old" in held[r] for r in refs[:5])
    assert code_update == ExitCode.OK, err_update
    assert json.loads(out_update)["uploaded"] == 12
    assert all("async-new" in replaced[r] for r in refs)


def test_predictions_go_as_jobs_too(tmp_path: Path, s3_server: S3Server) -> None:
    refs = [f"img-{i:03d}" for i in range(8)]
    manifest = remote_manifest(tmp_path / "async-preds", s3_server, refs)
    server = server_for(tmp_path, refs, s3_server)
    try:
        model = server.create_model("async-model")
        args = upload_args(manifest, server, "--async", "--model", model, "--json")
        code, out, err = run([*args, "--s3-endpoint-url", s3_server.endpoint_url])
        rows = server.rows(target=model)
        ground_truth = server.rows()
    finally:
        server.stop()
    assert code == ExitCode.OK, err
    assert json.loads(out)["uploaded"] == 8
    assert sorted(r["reference_id"] for r in rows) == refs and ground_truth == []


def test_a_run_killed_while_its_jobs_run_polls_them_again(
    tmp_path: Path, s3_server: S3Server
) -> None:
    refs = [f"img-{i:03d}" for i in range(30)]
    manifest = remote_manifest(tmp_path / "async-kill", s3_server, refs)
    # Each job takes at least 3 s at the server: the kill comes while they run.
    server = server_for(tmp_path, refs, s3_server, job_step_s=3.0)
    journal = tmp_path / "kill.journal"
    args = upload_args(manifest, server, "--async", "--job-size", "10", "--max-jobs", "3")
    args += ["--journal", str(journal), "--s3-endpoint-url", s3_server.endpoint_url]

    try:
        proc = segcli_process(args, {"NUCLEUS_API_KEY": KEY})
        try:
            wait_for(lambda: _started_jobs(journal) == 3)
            running = [j for j in _server_jobs(server) if j["status"] == "Running"]
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
        assert len(running) == 3  # killed while the service still worked on every job
        assert journal_states(journal) == {}  # nothing settled before the kill
        # status says where the items are, and that they are not final yet
        status_code, status_out, _ = run(["status", "--journal", str(journal)])
        assert status_code == ExitCode.ITEMS_FAILED
        said = " ".join(status_out.split())
        assert "in async jobs: 30 items in 3 jobs an upload started and did not collect" in said
        assert "re-run the same upload to collect them" in said
        # a rehearsal says it would poll those jobs, and starts none
        dry_code, dry_out, _ = run([*args, "-n"])
        assert dry_code == ExitCode.OK
        polls = [line for line in dry_out.splitlines() if line.startswith("would poll ")]
        assert len(polls) == 3 and all(
            ", a job an earlier run started, for 10 items: " in line for line in polls
        )
        assert not [line for line in dry_out.splitlines() if line.startswith("would start")]
        assert "DRY RUN: nothing was sent. 30 items: would send 30" in dry_out
        code, out, err = run([*args, "--json"])
        summary = json.loads(out)
        jobs_after = _server_jobs(server)
        uploads = server.store.count("signed_uploads")
        rows = server.rows()
    finally:
        server.stop()
    assert code == ExitCode.OK, err
    # no second submission: the re-run polled the three jobs the first one started
    assert len(jobs_after) == uploads == 3
    assert {j["job_id"] for j in summary["jobs"]} == {j["id"] for j in jobs_after}
    assert all(j["resumed"] for j in summary["jobs"])
    assert summary["uploaded"] == 30 and summary["requests"] == 0
    assert sorted(r["reference_id"] for r in rows) == refs
    assert journal_states(journal) == dict.fromkeys(refs, "uploaded")


def _server_jobs(server: Nucleus) -> list[dict[str, Any]]:
    with server.store.transaction() as conn:
        return [dict(r) for r in conn.execute("SELECT id, status FROM jobs ORDER BY created")]


def test_local_masks_are_not_eligible_and_the_message_points_to_stage(
    tmp_path: Path, s3_server: S3Server
) -> None:
    from tests.helpers.upload import make_local_manifest

    local, local_refs = make_local_manifest(tmp_path / "local", 4)
    remote = remote_manifest(tmp_path / "async-mixed", s3_server, ["remote-1", "remote-2"])
    mixed = tmp_path / "mixed.jsonl"
    lines = [
        json.dumps(
            {**json.loads(line), "mask_url": str(local.parent / json.loads(line)["mask_url"])}
        )
        for line in local.read_text().splitlines()
    ]
    mixed.write_text("\n".join(lines + remote.read_text().splitlines()) + "\n")
    server = server_for(tmp_path, [*local_refs, "remote-1", "remote-2"], s3_server)
    try:
        args = upload_args(mixed, server, "--async", "--s3-endpoint-url", s3_server.endpoint_url)
        code, out, err = run(args)
        held = sorted(r["reference_id"] for r in server.rows())
    finally:
        server.stop()
    assert code == ExitCode.ITEMS_FAILED
    said = out + err
    assert "[local-mask-async]" in said and "--stage s3://BUCKET/PREFIX" in said
    assert f"{mixed}:1 {local_refs[0]}" in said  # the item, by manifest line
    assert "local-mask-async: 4 of 6 items" in said
    assert held == ["remote-1", "remote-2"]  # the other items still went


def test_async_needs_update_for_a_model_run(tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        json.dumps({"reference_id": "a", "mask_url": "s3://b/a.png", "annotations": SEGMENTS})
        + "\n"
    )
    code, _, err = run(
        [
            "upload",
            str(manifest),
            "--dataset",
            "ds_x",
            "--model-run",
            "run_x",
            "--async",
            "--endpoint",
            "http://127.0.0.1:9/v1/nucleus",
        ]
    )
    assert code == ExitCode.USAGE
    assert "--async with --model-run needs --update" in err


@pytest.mark.parametrize("size", ["0", "10001"])
def test_job_size_is_bounded(tmp_path: Path, size: str) -> None:
    code, _, err = run(["upload", "m.yaml", "--dataset", "ds_x", "--async", "--job-size", size])
    assert code == ExitCode.USAGE and "--job-size" in err


def test_a_dry_run_says_which_jobs_it_would_start_and_sends_nothing(
    tmp_path: Path, s3_server: S3Server
) -> None:
    refs = [f"img-{i:03d}" for i in range(12)]
    manifest = remote_manifest(tmp_path / "async-dry", s3_server, refs)
    server = server_for(tmp_path, refs, s3_server)
    try:
        args = upload_args(manifest, server, "--async", "--job-size", "5", "-n")
        code, out, err = run([*args, "--s3-endpoint-url", s3_server.endpoint_url])
        code_json, out_json, _ = run([*args, "--s3-endpoint-url", s3_server.endpoint_url, "--json"])
        touched = (server.store.count("jobs"), server.store.count("signed_uploads"), server.rows())
    finally:
        server.stop()
    assert code == code_json == ExitCode.OK, err
    starts = [line for line in out.splitlines() if line.startswith("would start a job: ")]
    assert len(starts) == 3
    url = f"{server.url}/dataset/{server.dataset_id}/annotate?async=1"
    assert all(f"to a signed URL, then POST {url}: " in line for line in starts)
    assert "PUT 5 items as NDJSON" in starts[0] and "PUT 2 items as NDJSON" in starts[2]
    summary = json.loads(out_json)
    assert (summary["would_send"], summary["requests"]) == (12, 9)
    assert touched == (0, 0, [])
    assert not (manifest.parent / "manifest.jsonl.segcli-journal").exists()


def test_a_server_gone_while_jobs_run_leaves_them_to_the_next_run(
    tmp_path: Path, s3_server: S3Server
) -> None:
    from tests.helpers.upload import free_port

    refs = [f"img-{i:03d}" for i in range(20)]
    manifest = remote_manifest(tmp_path / "async-outage", s3_server, refs)
    port = free_port()
    server = server_for(tmp_path, refs, s3_server, job_step_s=2.0, port=port)
    journal = tmp_path / "outage.journal"
    args = upload_args(manifest, server, "--async", "--job-size", "10", "--retries", "1")
    args += ["--journal", str(journal), "--s3-endpoint-url", s3_server.endpoint_url, "--json"]
    proc = segcli_process(args, {"NUCLEUS_API_KEY": KEY})
    try:
        wait_for(lambda: _started_jobs(journal) == 2)
        server.stop()
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert "Traceback" not in err
    assert proc.returncode == ExitCode.ITEMS_FAILED, err
    stopped = json.loads(out)
    # nothing failed: the items wait in their jobs, which the next run collects
    assert (stopped["failed"], stopped["pending"]) == (0, 20)
    assert stopped["error"]["code"] == "server-unavailable"
    again = server_for(tmp_path, refs, s3_server, port=port, dataset_id=server.dataset_id)
    try:
        code, out, err = run(args)
        jobs = again.store.count("jobs")
        rows = again.rows()
    finally:
        again.stop()
    assert code == ExitCode.OK, err
    summary = json.loads(out)
    assert summary["uploaded"] == 20 and jobs == 2
    assert all(job["resumed"] for job in summary["jobs"])
    assert sorted(r["reference_id"] for r in rows) == refs


def _started_jobs(journal: Path) -> int:
    if not journal.exists():
        return 0
    conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        found = conn.execute("SELECT count(*) FROM jobs WHERE job_id IS NOT NULL").fetchone()
        return int(found[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


def test_the_signed_put_carries_no_key_no_content_type_and_the_url_as_given() -> None:
    import asyncio
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from segcli.client import NucleusClient

    seen: list[tuple[str, dict[str, str], bytes]] = []

    class Bucket(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.append((self.path, dict(self.headers), body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Bucket)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    target = "/up/tok?X-Amz-Signature=a%2Fb%3D&X-Amz-Expires=60"

    async def put() -> None:
        async with NucleusClient("http://127.0.0.1:1/v1/nucleus", api_key=KEY) as client:
            await client.put_signed(f"http://127.0.0.1:{httpd.server_address[1]}{target}", b"{}\n")

    try:
        asyncio.run(put())
    finally:
        httpd.shutdown()
        httpd.server_close()
    ((path, headers, body),) = seen
    assert path == target and body == b"{}\n"  # the signature's encoding untouched
    lowered = {k.lower() for k in headers}
    assert not lowered & {"authorization", "x-limited-access-key", "content-type"}
    assert KEY not in json.dumps(headers)
