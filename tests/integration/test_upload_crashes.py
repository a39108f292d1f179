"""Uploads killed at random moments and interrupted: the journal keeps what landed.

A SIGKILL gives segcli no chance to tidy up. Whatever moment it strikes,
the next run must open the journal (no stale lock, no damage), keep every
state recorded before the kill, and send each item at most once more: only
the items of a batch in flight at the kill, which land as ``ignored`` (or
are replaced with ``--update``), never as a second mask.
"""

from __future__ import annotations

import json
import random
import re
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from segcli.exitcodes import ExitCode
from segcli.server import FaultConfig
from tests.helpers.upload import KEY, Nucleus, make_local_manifest, segcli_process
from tests.helpers.upload import upload_args as shared_upload_args

CONCURRENCY = 2
BATCH = 4
IN_FLIGHT_MAX = CONCURRENCY * BATCH  # items a kill can leave on the server unrecorded
# on the server: uploaded, ignored (it had a mask), or skipped (a later run found it landed)
LANDED = ("uploaded", "ignored", "skipped")


class Row(NamedTuple):
    state: str
    fingerprint: str
    landed_fingerprint: str | None
    attempts: int
    updated_at: float


def journal_rows(path: Path) -> dict[str, Row]:
    """reference_id -> its row, read without taking the run lock."""
    if not path.exists():
        return {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        found = conn.execute(
            "SELECT reference_id, state, fingerprint, landed_fingerprint, attempts, updated_at "
            "FROM items"
        )
        return {ref: Row(*rest) for ref, *rest in found}
    except sqlite3.OperationalError:  # not created yet
        return {}
    finally:
        conn.close()


def landed(rows: dict[str, Row]) -> set[str]:
    return {ref for ref, row in rows.items() if row.state in LANDED}


def same_landing(after: Row, before: Row) -> bool:
    """Still known as landed, with the same version: a later run skipped it, never re-sent it."""
    return (
        after.state in LANDED
        and after.fingerprint == before.fingerprint
        and after.landed_fingerprint == before.landed_fingerprint
    )


def poll(predicate: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def settled(server: Nucleus, quiet_s: float = 0.3) -> set[str]:
    """What the server holds once requests a killed client left behind are done.

    The server finishes a request whose client died (after its latency), so
    read its rows until they stop changing for ``quiet_s``.
    """
    deadline = time.monotonic() + 30
    last = {r["reference_id"] for r in server.rows()}
    while True:
        time.sleep(quiet_s)
        now = {r["reference_id"] for r in server.rows()}
        if now == last:
            return now
        assert time.monotonic() < deadline, "the server never settled"
        last = now


def upload_args(manifest: Path, server: Nucleus, journal: Path, *extra: str) -> list[str]:
    return shared_upload_args(
        manifest,
        server,
        "--journal",
        str(journal),
        "--concurrency",
        str(CONCURRENCY),
        "--local-batch-size",
        str(BATCH),
        *extra,
    )


class Schedule(NamedTuple):
    items: int
    kills: int
    update: bool


@pytest.mark.parametrize(
    "plan",
    [
        pytest.param(Schedule(150, 3, update=False), id="short"),
        pytest.param(Schedule(150, 3, update=True), id="short-update"),
    ],
)
def test_random_kills_lose_nothing_and_send_nothing_twice(tmp_path: Path, plan: Schedule) -> None:
    seed = 20_000 + plan.items + plan.kills + plan.update
    rng = random.Random(seed)  # the same moments every run; the seed names them
    manifest, refs = make_local_manifest(tmp_path / "data", plan.items)
    server = Nucleus(tmp_path, refs, FaultConfig(latency_s=0.05))
    journal = tmp_path / "journal"
    args = upload_args(manifest, server, journal, *(["--update"] if plan.update else []))
    env = {"NUCLEUS_API_KEY": KEY}
    unrecorded: set[str] = set()  # on the server but not in the journal at some kill
    try:
        for kill in range(plan.kills):
            before = journal_rows(journal)
            # A random moment: after a random share of what is left has
            # landed, plus a random part of a request's round trip.
            left = plan.items - len(landed(before))
            target = len(landed(before)) + rng.randint(0, max(0, 2 * left // (plan.kills + 1)))
            extra_s = rng.uniform(0.0, 0.12)
            proc = segcli_process(args, env)
            poll(
                lambda t=target, p=proc: (
                    len(landed(journal_rows(journal))) >= t or p.poll() is not None
                )
            )
            time.sleep(extra_s)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            after = journal_rows(journal)
            # every landed state recorded before this run is still there: the run
            # skipped those items (and may have said so), whatever it was doing when killed
            for ref, row in before.items():
                if row.state in LANDED:
                    assert same_landing(after[ref], row), (seed, kill, ref, after[ref], row)
            in_flight = settled(server) - landed(after)
            fresh = in_flight - unrecorded  # earlier kills' leftovers may still be there
            assert len(fresh) <= IN_FLIGHT_MAX, (seed, kill, sorted(fresh))
            unrecorded |= in_flight

        proc = segcli_process([*args, "--json"], env)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == ExitCode.OK, (seed, err)
        summary = json.loads(out)
        rows = server.rows()
    finally:
        server.stop()

    # every item exactly once on the server, and the journal agrees
    assert sorted(r["reference_id"] for r in rows) == refs
    final = journal_rows(journal)
    assert set(final) == set(refs) and landed(final) == set(refs)
    assert summary["failed"] == summary["invalid"] == 0
    ignored = {ref for ref, row in final.items() if row.state == "ignored"}
    replaced = {r["reference_id"] for r in rows if r["updated"] != r["created"]}
    # A re-sent batch whose counts cannot place each item is read back; an
    # item holding exactly our mask then ends "uploaded", so the checks below
    # bound what was sent twice from above: never outside the in-flight set.
    if plan.update:
        # sent twice only if it was in flight at a kill; replaced, never kept twice
        assert not ignored
        assert replaced <= unrecorded, (seed, sorted(replaced - unrecorded))
    else:
        assert not replaced
        assert ignored <= unrecorded, (seed, sorted(ignored - unrecorded))


def test_a_killed_runs_journal_is_reopened_with_every_recorded_state(tmp_path: Path) -> None:
    manifest, refs = make_local_manifest(tmp_path / "data", 120)
    server = Nucleus(tmp_path, refs, FaultConfig(latency_s=0.05))
    journal = tmp_path / "journal"
    args = upload_args(manifest, server, journal)
    env = {"NUCLEUS_API_KEY": KEY}
    try:
        proc = segcli_process(args, env)
        poll(lambda: len(landed(journal_rows(journal))) >= 30)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
        # what a kill leaves: an open WAL and an unfinished run naming a dead process;
        # no lock file (the lock was on the journal itself and died with the process)
        assert not Path(f"{journal}.lock").exists()
        assert Path(f"{journal}-wal").exists()
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as conn:
            runs = conn.execute("SELECT pid, finished_at FROM runs").fetchall()
        conn.close()
        assert runs == [(proc.pid, None)]
        recorded = journal_rows(journal)
        kept = landed(recorded)
        stored = settled(server)
        assert len(kept) >= 30

        rerun = segcli_process([*args, "--json"], env)
        out, err = rerun.communicate(timeout=120)
        assert rerun.returncode == ExitCode.OK, err  # not 4: the lock died with its process
        summary = json.loads(out)
        assert sorted(r["reference_id"] for r in server.rows()) == refs
    finally:
        server.stop()
    final = journal_rows(journal)
    for ref in kept:
        assert same_landing(final[ref], recorded[ref])  # skipped, not sent again
        assert final[ref].state == "skipped" and final[ref].attempts == recorded[ref].attempts + 1
    assert summary["skipped"] == len(kept)  # read from the journal, not sent again
    assert summary["ignored"] == len(stored - kept) <= IN_FLIGHT_MAX
    with sqlite3.connect(journal) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_stops_within_2_s_records_and_says_what_is_left(
    tmp_path: Path, sig: signal.Signals
) -> None:
    manifest, refs = make_local_manifest(tmp_path / "data", 200)
    server = Nucleus(tmp_path, refs, FaultConfig(latency_s=0.2))
    journal = tmp_path / "journal"
    report = tmp_path / "report.jsonl"
    args = upload_args(manifest, server, journal, "--report", str(report))
    try:
        proc = segcli_process(args, {"NUCLEUS_API_KEY": KEY})
        poll(lambda: len(landed(journal_rows(journal))) >= 4)
        sent_at = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
        stopped_s = time.monotonic() - sent_at
        stored = settled(server)
    finally:
        server.stop()
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert stopped_s < 2.0, stopped_s
    assert "Traceback" not in out + err
    # it says how far it got and what to do; the journal and report hold exactly that
    found = re.search(r"interrupted after (\d+) items", err)
    assert found is not None, err
    finished = int(found.group(1))
    assert "Re-run the same command to send the rest" in err
    assert out.startswith("INTERRUPTED:"), out
    records: list[dict[str, Any]] = [json.loads(x) for x in report.read_text().splitlines()]
    assert len(records) == finished
    rows = journal_rows(journal)
    assert landed(rows) == {r["reference_id"] for r in records if r["state"] == "uploaded"}
    assert 4 <= finished < len(refs)
    # the server holds what the journal says landed, plus at most the batches cut off
    assert landed(rows) <= stored
    assert len(stored - landed(rows)) <= IN_FLIGHT_MAX


def test_ctrl_c_with_json_prints_the_summary_object(tmp_path: Path) -> None:
    manifest, refs = make_local_manifest(tmp_path / "data", 200)
    server = Nucleus(tmp_path, refs, FaultConfig(latency_s=0.2))
    journal = tmp_path / "journal"
    try:
        proc = segcli_process(
            [*upload_args(manifest, server, journal), "--json"], {"NUCLEUS_API_KEY": KEY}
        )
        poll(lambda: len(landed(journal_rows(journal))) >= 4)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        server.stop()
    assert proc.returncode == ExitCode.INTERRUPTED, err
    summary = json.loads(out)  # the one object, even on this exit path
    assert summary["interrupted"] is True and summary["exit_code"] == ExitCode.INTERRUPTED
    assert 4 <= summary["uploaded"] < len(refs)
