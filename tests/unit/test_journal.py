from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from segcli.errors import JournalBusyError, JournalError, SegcliError
from segcli.journal import (
    Journal,
    JournalRow,
    Scope,
    default_journal_path,
    fingerprint,
    journal_family,
    journals_beside,
)
from segcli.model import ItemState, MaskItem, Segment, Source

KEY = "sk_live_SEGCLI-CANARY-9f4e2b7d"
ENDPOINT = "http://127.0.0.1:8123/v1/nucleus"
GT = Scope(ENDPOINT, "ds_1", "annotations")
PRED = Scope(ENDPOINT, "ds_1", "model:prj_1")

UPLOADED, IGNORED, FAILED = ItemState.UPLOADED, ItemState.IGNORED, ItemState.FAILED


def item(**changes: object) -> MaskItem:
    fields: dict[str, object] = {
        "reference_id": "img_0",
        "mask": "/data/m0.png",
        "segments": (Segment(0, "bg"), Segment(1, "car", {"color": "red"})),
        "source": Source("m.csv", 2),
        "annotation_id": "ann_0",
    }
    fields.update(changes)
    return MaskItem(**fields)  # type: ignore[arg-type]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "masks.csv.segcli-journal"


# -- fingerprint and paths ------------------------------------------------------


def test_fingerprint_is_stable_and_covers_what_is_sent() -> None:
    base = fingerprint(item(), "d1")
    assert base == fingerprint(item(), "d1")
    assert len(base) == 64 and int(base, 16) >= 0
    changed = [
        fingerprint(item(), "d2"),
        fingerprint(item(), None),
        fingerprint(item(mask="/data/other.png"), "d1"),
        fingerprint(item(segments=(Segment(0, "bg"),)), "d1"),
        fingerprint(item(segments=(Segment(0, "bg"), Segment(1, "truck"))), "d1"),
        fingerprint(item(segments=(Segment(0, "bg"), Segment(2, "car", {"color": "red"}))), "d1"),
        fingerprint(item(segments=(Segment(0, "bg"), Segment(1, "car", {"color": "blue"}))), "d1"),
        fingerprint(item(annotation_id=None), "d1"),
    ]
    assert base not in changed
    assert len(set(changed)) == len(changed)


def test_fingerprint_ignores_where_the_item_was_written() -> None:
    moved = item(source=Source("other.csv", 99), width=10, height=10)
    assert fingerprint(moved, "d1") == fingerprint(item(), "d1")


def test_default_journal_path() -> None:
    assert default_journal_path("data/masks.csv") == Path("data/masks.csv.segcli-journal")
    assert default_journal_path("-") == Path("segcli-stdin.segcli-journal")
    assert default_journal_path("s3://bucket/x/m.jsonl") == Path("m.jsonl.segcli-journal")


def test_each_shard_has_a_default_journal_of_its_own() -> None:
    assert default_journal_path("data/m.csv", (2, 8)) == Path(
        "data/m.csv.shard-2-of-8.segcli-journal"
    )
    assert default_journal_path("-", (0, 2)) == Path("segcli-stdin.shard-0-of-2.segcli-journal")
    assert default_journal_path("gs://b/m.jsonl", (1, 3)) == Path(
        "m.jsonl.shard-1-of-3.segcli-journal"
    )
    assert journal_family(default_journal_path("data/m.csv", (2, 8))) == ("data/m.csv", (2, 8))
    assert journal_family(default_journal_path("data/m.csv")) == ("data/m.csv", None)
    assert journal_family(Path("shard-2.journal")) is None


def test_the_journals_beside_a_manifest_are_found_in_shard_order(tmp_path: Path) -> None:
    manifest = str(tmp_path / "m[1].yaml")  # glob characters in the name are literal
    assert journals_beside(manifest) == []
    made = [default_journal_path(manifest, shard) for shard in [(9, 10), (1, 10), (1, 2)]]
    made.append(default_journal_path(manifest))
    for journal in made:
        journal.write_bytes(b"")
    Path(f"{made[0]}-wal").write_bytes(b"")  # SQLite's side file is not a journal
    (tmp_path / "m[1].yaml.shard-x-of-2.segcli-journal").write_bytes(b"")
    (tmp_path / "other.yaml.shard-0-of-2.segcli-journal").write_bytes(b"")
    assert journals_beside(manifest) == [
        Path(f"{manifest}.segcli-journal"),
        Path(f"{manifest}.shard-1-of-2.segcli-journal"),
        Path(f"{manifest}.shard-1-of-10.segcli-journal"),
        Path(f"{manifest}.shard-9-of-10.segcli-journal"),
    ]


def test_scope_endpoint_loses_userinfo_query_and_slash() -> None:
    scope = Scope(f"https://{KEY}:pw@api.example.com:8443/v1/nucleus/?key={KEY}#x", "d", "t")
    assert scope.endpoint == "https://api.example.com:8443/v1/nucleus"
    assert Scope(ENDPOINT + "/", "ds_1", "annotations") == GT


# -- record, landed, counts -------------------------------------------------------


def test_record_and_landed_per_scope(path: Path) -> None:
    with Journal(path, GT) as journal:
        journal.record(
            [
                JournalRow("a", "fa", UPLOADED, None, "m.csv:2"),
                JournalRow("b", "fb", IGNORED, "already had a mask", "m.csv:3"),
                JournalRow("c", "fc", FAILED, "HTTP 503: busy", "m.csv:4"),
                JournalRow("d", "fd", ItemState.REJECTED, "no such item", "m.csv:5"),
                JournalRow("e", "fe", ItemState.INVALID, "bad pixel", "m.csv:6"),
            ]
        )
        assert [journal.landed(r) for r in "abcdez"] == ["fa", "fb", None, None, None, None]
        assert journal.counts() == {
            "uploaded": 1,
            "ignored": 1,
            "rejected": 1,
            "invalid": 1,
            "failed": 1,
        }
    with Journal(path, PRED) as journal:
        assert journal.landed("a") is None  # the same id, another target
        assert journal.counts() == {}
        journal.record([JournalRow("a", "pa", UPLOADED)])
        assert journal.landed("a") == "pa"
        assert journal.scopes() == [GT, PRED]
    with Journal(path, GT) as journal:
        assert journal.landed("a") == "fa"
        assert journal.counts(scope=PRED) == {"uploaded": 1}


def test_latest_state_wins_but_the_landed_version_is_remembered(path: Path) -> None:
    with Journal(path, GT) as journal:
        journal.record([JournalRow("a", "v1", UPLOADED)])
        journal.record([JournalRow("a", "v2", FAILED, "HTTP 500: oops")])  # changed, then failed
        assert journal.landed("a") == "v1"
        (row,) = journal.rows()
        assert (row.fingerprint, row.state, row.message, row.attempts) == (
            "v2",
            FAILED,
            "HTTP 500: oops",
            2,
        )
        assert row.updated_at is not None
        journal.record([JournalRow("a", "v2", UPLOADED)])
        assert journal.landed("a") == "v2"
        assert journal.counts() == {"uploaded": 1}


def test_landed_state_needs_the_same_fingerprint(path: Path) -> None:
    with Journal(path, GT) as journal:
        assert journal.landed_state("a", "v1") is None
        journal.record([JournalRow("a", "v1", UPLOADED)])
        assert journal.landed_state("a", "v1") is UPLOADED
        assert journal.landed_state("a", "v2") is None  # changed since: send again
        journal.record([JournalRow("a", "v2", FAILED, "HTTP 503")])
        assert journal.landed_state("a", "v1") is UPLOADED
        assert journal.landed_state("a", "v2") is None
        journal.record([JournalRow("a", "v2", IGNORED, "already had a mask")])
        assert journal.landed_state("a", "v2") is IGNORED  # --update sends it again
        assert journal.landed_state("a", "v1") is None
        journal.record([JournalRow("a", "v2", UPLOADED)])
        assert journal.landed_state("a", "v2") is UPLOADED
        assert journal.landed_state("a", "v2", scope=PRED) is None


def test_the_state_is_the_latest_outcome_and_what_landed_is_kept(path: Path) -> None:
    # uploaded, then a forced re-send failed (server down), then a normal run
    # skipped it: the journal says skipped, as that run did, and still knows
    # what landed, so the next run skips it again.
    with Journal(path, GT) as journal:
        journal.record([JournalRow("a", "v1", UPLOADED, None, "m.csv:2")])
        journal.record([JournalRow("a", "v1", FAILED, "HTTP 503", "m.csv:2")])
        assert journal.counts() == {"failed": 1}
        journal.record([JournalRow("a", "v1", ItemState.SKIPPED, "already uploaded", "m.csv:2")])
        assert journal.counts() == {"skipped": 1}
        assert journal.landed_state("a", "v1") is UPLOADED
        row = next(journal.rows())
        assert (row.state, row.message, row.attempts) == (ItemState.SKIPPED, "already uploaded", 3)


def test_duplicate_lines_count_as_invalid_entries_until_a_run_drops_them(path: Path) -> None:
    dup = JournalRow("a", "", ItemState.INVALID, "already at m.csv:2", "m.csv:5", duplicate=True)
    with Journal(path, GT) as journal:
        journal.record([dup])  # found while reading, before the first copy lands
        journal.record([JournalRow("a", "v1", UPLOADED, None, "m.csv:2")])
        assert journal.counts() == {"uploaded": 1, "invalid": 1}
        invalid = list(journal.rows("invalid"))
        assert [(r.source, r.duplicate) for r in invalid] == [("m.csv:5", True)]
    with Journal(path, GT) as journal:  # the next run: line 5 was removed
        journal.record([JournalRow("a", "v1", ItemState.SKIPPED, None, "m.csv:2")])
        assert journal.counts() == {"skipped": 1}


def test_each_run_leaves_its_pid_and_summary(path: Path) -> None:
    with Journal(path, GT) as journal:
        journal.record([JournalRow("a", "v1", UPLOADED)])
        journal.finish_run({"uploaded": 1})
    with Journal(path, readonly=True) as journal:
        run = journal.last_run(scope=GT)
        assert run is not None
        assert run["pid"] == os.getpid() and run["summary"] == {"uploaded": 1}


def test_held_names_the_ids_the_journal_has_seen(path: Path) -> None:
    with Journal(path, GT) as journal:
        journal.record(JournalRow(f"r{i}", "f", UPLOADED) for i in range(0, 1200, 2))
        held = journal.held([f"r{i}" for i in range(1200)])
        assert held == {f"r{i}" for i in range(0, 1200, 2)}
        assert journal.held(["r0"], scope=PRED) == set()


def test_a_run_that_records_nothing_leaves_no_file(path: Path) -> None:
    journal = Journal(path, GT)
    journal.discard()
    assert list(path.parent.iterdir()) == []
    with Journal(path, GT) as journal:
        journal.record([JournalRow("a", "v1", UPLOADED)])
    journal = Journal(path, GT)
    journal.discard()  # not made by this open: kept
    assert path.exists()


def test_a_version_1_journal_is_read_and_upgraded(path: Path) -> None:
    # What segcli wrote as version 1, frozen here: the journal must keep reading it.
    version_1 = """
    CREATE TABLE scopes (id INTEGER PRIMARY KEY, endpoint TEXT NOT NULL,
        dataset_id TEXT NOT NULL, target TEXT NOT NULL, UNIQUE (endpoint, dataset_id, target));
    CREATE TABLE items (scope_id INTEGER NOT NULL REFERENCES scopes (id),
        reference_id TEXT NOT NULL, fingerprint TEXT NOT NULL, state TEXT NOT NULL,
        message TEXT, source TEXT, landed_fingerprint TEXT, landed_state TEXT,
        attempts INTEGER NOT NULL, updated_at REAL NOT NULL,
        PRIMARY KEY (scope_id, reference_id)) WITHOUT ROWID;
    CREATE INDEX items_by_state ON items (scope_id, state);
    """
    with sqlite3.connect(path, isolation_level=None) as conn:
        for statement in version_1.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute("PRAGMA application_id=1397049162")
        conn.execute("PRAGMA user_version=1")
        conn.execute("INSERT INTO scopes VALUES (1, ?, 'ds_1', 'annotations')", (ENDPOINT,))
        conn.execute(
            "INSERT INTO items VALUES (1, 'a', 'v1', 'uploaded', NULL, NULL, 'v1', 'uploaded', "
            "1, 0)"
        )
    conn.close()
    with Journal(path, readonly=True) as journal:
        assert journal.counts(scope=GT) == {"uploaded": 1}
        assert journal.last_run(scope=GT) is None
    with Journal(path, GT) as journal:
        assert journal.landed_state("a", "v1") is UPLOADED
        journal.record([JournalRow("b", "v1", UPLOADED)])
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (2,)
    conn.close()


def test_rows_filter_by_state_in_reference_order(path: Path) -> None:
    with Journal(path, GT) as journal:
        journal.record(
            JournalRow(f"r{i:04d}", f"f{i}", FAILED if i % 3 else UPLOADED) for i in range(2500)
        )
        failed = list(journal.rows("failed"))
        assert len(failed) == 1666
        assert [r.reference_id for r in failed] == sorted(r.reference_id for r in failed)
        assert {r.state for r in failed} == {FAILED}
        assert len(list(journal.rows())) == 2500
        with pytest.raises(ValueError):
            list(journal.rows("landed"))


def test_a_record_that_fails_midway_stores_nothing(path: Path) -> None:
    def rows() -> Iterator[JournalRow]:
        yield JournalRow("a", "fa", UPLOADED)
        raise RuntimeError("boom")

    with Journal(path, GT) as journal:
        with pytest.raises(RuntimeError):
            journal.record(rows())
        assert journal.landed("a") is None
        assert journal.scopes() == []
        journal.record([JournalRow("b", "fb", UPLOADED)])  # still usable
        assert journal.counts() == {"uploaded": 1}


def test_readonly_view_while_a_run_holds_the_journal(path: Path) -> None:
    with pytest.raises(JournalError, match="no journal"):
        Journal(path, readonly=True)
    with Journal(path, GT) as writer:
        writer.record([JournalRow("a", "fa", UPLOADED)])
        with Journal(path, readonly=True) as reader:
            assert reader.scopes() == [GT]
            assert reader.counts(scope=GT) == {"uploaded": 1}
            with pytest.raises(JournalError, match="read-only"):
                reader.record([])
        writer.record([JournalRow("b", "fb", FAILED)])


# -- locking and crashes --------------------------------------------------------

_HOLDER = textwrap.dedent(
    """
    import sys
    from segcli.journal import Journal, JournalRow, Scope
    from segcli.model import ItemState

    path, mode = sys.argv[1], sys.argv[2]
    journal = Journal(path, Scope("http://127.0.0.1:8123/v1/nucleus", "ds_1", "annotations"))
    journal.record(JournalRow(f"done{i}", f"f{i}", ItemState.UPLOADED) for i in range(50))

    def half_then_block():
        for i in range(10):
            yield JournalRow(f"half{i}", "h", ItemState.UPLOADED)
        print("mid-transaction", flush=True)
        sys.stdin.readline()  # parked inside record(): the transaction is open
        yield JournalRow("never", "n", ItemState.UPLOADED)

    if mode == "block-mid":
        journal.record(half_then_block())
    else:
        print("holding", flush=True)
        sys.stdin.readline()
    """
)


def start_holder(path: Path, mode: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()  # blocks until the child is in place
    assert line, f"holder exited early with {proc.wait()}"
    return proc, line


def test_a_second_run_in_another_process_is_refused_at_once(path: Path) -> None:
    proc, line = start_holder(path, "hold")
    try:
        assert line == "holding"
        with pytest.raises(JournalBusyError) as caught:
            Journal(path, GT)
        message = str(caught.value)
        assert f"pid {proc.pid}" in message
        assert str(path) in message and "--journal" in str(caught.value.hint)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    with Journal(path, GT) as journal:  # released when the holder exits
        assert journal.counts() == {"uploaded": 50}


def test_a_second_open_in_the_same_process_is_refused(path: Path) -> None:
    with Journal(path, GT), pytest.raises(JournalBusyError):
        Journal(path, PRED)
    Journal(path, PRED).close()  # free again once the first is closed


def test_sigkilled_mid_transaction_keeps_every_committed_row(path: Path) -> None:
    proc, line = start_holder(path, "block-mid")
    assert line == "mid-transaction"
    assert Path(f"{path}-wal").exists()  # the open transaction is in the WAL
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    with Journal(path, GT) as journal:  # not locked: flock died with the process
        assert journal.counts() == {"uploaded": 50}
        assert all(journal.landed(f"done{i}") == f"f{i}" for i in range(50))
        assert journal.landed("half0") is None
        journal.record([JournalRow("after", "fa", UPLOADED)])
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


# -- bad files --------------------------------------------------------------------


def test_a_non_sqlite_file_is_a_clear_error(path: Path) -> None:
    path.write_bytes(b"reference_id,mask\n" * 200)
    with pytest.raises(JournalError) as caught:
        Journal(path, GT)
    message = str(caught.value)
    assert isinstance(caught.value, SegcliError)
    assert str(path) in message and "--journal" in message and "delete it" in message
    Journal(path.with_name("other"), GT).close()  # the lock was let go


def test_another_programs_database_is_refused(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE photos (id INTEGER)")
    conn.close()
    with pytest.raises(JournalError, match="not a segcli journal"):
        Journal(path, GT)
    with sqlite3.connect(path) as conn:  # and left untouched
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("photos",)]
    conn.close()


def test_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="folder exists"):
        Journal(tmp_path / "nope" / "j", GT)


def test_the_key_is_never_stored(path: Path) -> None:
    scope = Scope(f"https://{KEY}:@api.example.com/v1/nucleus?api_key={KEY}", "ds_1", "annotations")
    with Journal(path, scope) as journal:
        journal.record([JournalRow("a", "fa", UPLOADED, "ok", "m.csv:2")])
        assert KEY not in repr(journal)
        on_disk = [p for p in path.parent.iterdir() if p.is_file()]
        assert len(on_disk) >= 2  # journal and its WAL
        for file in on_disk:
            assert KEY.encode() not in file.read_bytes(), file
    with Journal(path, readonly=True) as journal:
        assert journal.scopes() == [
            Scope("https://api.example.com/v1/nucleus", "ds_1", "annotations")
        ]
