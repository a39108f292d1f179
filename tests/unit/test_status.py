"""segcli.status over several journals: globs, and an item several journals hold counted once."""

from __future__ import annotations

from pathlib import Path

import pytest

from segcli.errors import UsageError
from segcli.journal import Journal, JournalRow, Scope, default_journal_path
from segcli.model import ItemState
from segcli.settings import shard_of
from segcli.status import expand_journals, read_status

SCOPE = Scope("http://127.0.0.1:8123/v1/nucleus", "ds_1", "annotations")


def write(path: Path, refs: list[str], state: ItemState, *, finished: bool = True) -> Path:
    with Journal(path, SCOPE) as journal:
        journal.record(JournalRow(r, f"fp-{r}", state, message=f"{state.value} {r}") for r in refs)
        if finished:
            journal.finish_run({state.value: len(refs)})
    return path


def test_a_pattern_is_expanded_in_natural_order_without_sqlite_side_files(tmp_path: Path) -> None:
    manifest = str(tmp_path / "m.yaml")
    paths = [
        write(default_journal_path(manifest, (k, 11)), [f"r{k}"], ItemState.UPLOADED)
        for k in range(11)
    ]
    Path(f"{paths[3]}-wal").write_bytes(b"x")  # as a running upload leaves it
    Path(f"{paths[3]}-shm").write_bytes(b"x")
    found = expand_journals([f"{manifest}.shard-*"])
    assert found == paths  # shard 10 after shard 9, no -wal or -shm
    # a journal named twice, by a pattern and by its path, is read once
    assert expand_journals([f"{manifest}.shard-*-of-11.segcli-journal", str(paths[0])]) == paths


def test_a_pattern_that_matches_nothing_says_so(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        expand_journals([str(tmp_path / "m.yaml.shard-*.segcli-journal")])
    assert "matches no journal" in caught.value.message
    assert "MANIFEST.shard-K-of-N.segcli-journal" in str(caught.value.hint)


def test_an_existing_file_with_glob_characters_is_taken_as_named(tmp_path: Path) -> None:
    path = write(tmp_path / "run[1].journal", ["r0"], ItemState.UPLOADED)
    assert expand_journals([str(path)]) == [path]


def test_shard_journals_sum_to_the_manifest(tmp_path: Path) -> None:
    manifest = str(tmp_path / "m.yaml")
    refs = [f"r{i}" for i in range(30)]
    journals = [
        write(
            default_journal_path(manifest, (k, 3)),
            [r for r in refs if shard_of(r, 3) == k],
            ItemState.UPLOADED,
        )
        for k in range(3)
    ]
    report = read_status(journals, manifest=refs)
    (scope,) = report.scopes
    assert dict(scope.counts) == {"uploaded": 30}
    assert (scope.pending, scope.overlap) == (0, 0)
    assert (scope.journals, scope.unfinished) == (3, 0)
    assert not report.needs_attention and report.warnings == []
    # a shard that never ran: its items are pending
    (scope,) = read_status(journals[1:], manifest=refs).scopes
    assert scope.pending == sum(shard_of(r, 3) == 0 for r in refs) > 0
    assert scope.counts["uploaded"] + scope.pending == 30


def test_a_shard_whose_run_did_not_finish_is_counted(tmp_path: Path) -> None:
    manifest = str(tmp_path / "m.yaml")
    done = write(default_journal_path(manifest, (0, 2)), ["r0"], ItemState.UPLOADED)
    killed = write(
        default_journal_path(manifest, (1, 2)), ["r1"], ItemState.UPLOADED, finished=False
    )
    (scope,) = read_status([done, killed]).scopes
    assert (scope.journals, scope.unfinished) == (2, 1)
    assert scope.as_dict()["unfinished"] == 1


def test_an_item_several_journals_hold_counts_once_by_its_latest_outcome(tmp_path: Path) -> None:
    manifest = str(tmp_path / "m.yaml")
    refs = [f"r{i}" for i in range(10)]
    first = [r for r in refs if shard_of(r, 2) == 0]
    rest = [r for r in refs if r not in first]
    assert first and rest
    # an unsharded run failed every item; later, shard 0 of 2 uploaded its share
    whole = write(default_journal_path(manifest), refs, ItemState.FAILED)
    shard = write(default_journal_path(manifest, (0, 2)), first, ItemState.UPLOADED)

    report = read_status([whole, shard], manifest=[*refs, "r10"])
    (scope,) = report.scopes
    assert dict(+scope.counts) == {"uploaded": len(first), "failed": len(rest)}
    assert (scope.pending, scope.overlap) == (1, len(first))
    # the failures the shard's uploads replaced are not listed either
    assert [row.reference_id for row in scope.listed["failed"]] == sorted(rest)
    assert scope.as_dict()["overlap"] == len(first)

    # the other way round: the later outcome is the failure
    retried = write(tmp_path / "retry.journal", first[:1], ItemState.FAILED)
    (scope,) = read_status([shard, retried], manifest=first).scopes
    assert dict(+scope.counts) == {"uploaded": len(first) - 1, "failed": 1}
    assert [row.reference_id for row in scope.listed["failed"]] == first[:1]


def test_without_a_manifest_journals_of_runs_split_differently_are_flagged(
    tmp_path: Path,
) -> None:
    manifest = str(tmp_path / "m.yaml")
    whole = write(default_journal_path(manifest), ["r0", "r1"], ItemState.UPLOADED)
    shard = write(default_journal_path(manifest, (0, 2)), ["r0"], ItemState.UPLOADED)
    report = read_status([whole, shard])
    assert dict(report.scopes[0].counts) == {"uploaded": 3}  # summed, as asked
    (warning,) = report.warnings
    assert "unsharded, 2 shards" in warning and f"--manifest {manifest}" in warning
    assert report.as_dict()["warnings"] == [warning]
    # one job array's journals hold disjoint items: nothing to flag
    other = write(default_journal_path(manifest, (1, 2)), ["r1"], ItemState.UPLOADED)
    assert read_status([shard, other]).warnings == []
