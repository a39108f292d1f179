"""The pieces of --async and --stage that need no server: errors to items, keys, the journal."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from segcli.cli.root import app
from segcli.errors import UsageError
from segcli.journal import Journal, JournalRow, Scope
from segcli.model import ItemState, MaskItem, Segment, Source
from segcli.outcomes import job_errors
from segcli.staging import StagePrefix

SCOPE = Scope("http://127.0.0.1:1/v1/nucleus", "ds_1", "annotations")


def item(ref: str, mask: str = "/data/m.png") -> MaskItem:
    return MaskItem(ref, mask, (Segment(0, "bg"),), Source("m.yaml", 1))


def test_job_errors_name_items_by_the_failed_object_s_reference_id() -> None:
    refs = ["img-1", "img-10", "a"]
    errors = [
        json.dumps({"annotation": {"reference_id": "img-1"}, "error": "Item with id img-1 x"}),
        json.dumps({"annotation": {"referenceId": "img-10"}, "error": "bad mask"}),
        "a plain error about 'a'",
        json.dumps({"annotation": {"reference_id": "not-ours"}, "error": "not a png"}),
    ]
    named = job_errors(errors, refs)
    assert set(named) == {"img-1", "img-10", "a"}
    assert "Item with id img-1" in named["img-1"] and "img-10" not in named["img-1"]
    assert job_errors([], refs) == {} and job_errors(None, refs) == {}


def test_stage_keys_are_deterministic_safe_and_apart() -> None:
    prefix = StagePrefix.parse("s3://bucket/some/prefix/")
    assert str(prefix) == "s3://bucket/some/prefix"
    one = prefix.key_for(item("img/../1 ü", "/data/a.png"))
    assert one == prefix.key_for(item("img/../1 ü", "/data/a.png"))
    assert re.fullmatch(r"some/prefix/img_.._1-[0-9a-f]{16}\.png", one), one
    # another mask file (predictions beside ground truth) is another key
    assert prefix.key_for(item("img/../1 ü", "/data/b.png")) != one
    assert prefix.key_for(item("img_.._1", "/data/b.png")) != one
    assert StagePrefix.parse("gs://b").url_for(item("x", "file:///d/x.png")).startswith("gs://b/x-")
    for bad in ("https://h/p", "/local", "s3://", "memory://b/p", "s3://b/p?x=1"):
        with pytest.raises(UsageError):
            StagePrefix.parse(bad)


def test_the_journal_keeps_chunks_until_they_are_collected(tmp_path: Path) -> None:
    path = tmp_path / "j"
    with Journal(path, SCOPE) as journal:
        first = journal.add_job("a" * 32, [("r1", "fp1"), ("r2", "fp2")])
        second = journal.add_job("b" * 32, [("r3", "fp3")])
        journal.job_started(first, "job_1")
    # a later run (or a reader) finds both, one with its job id
    with Journal(path, readonly=True) as reader:
        jobs = reader.unfinished_jobs(scope=SCOPE)
    assert [(j.request_id, j.job_id, j.items) for j in jobs] == [
        ("a" * 32, "job_1", {"r1": "fp1", "r2": "fp2"}),
        ("b" * 32, None, {"r3": "fp3"}),
    ]
    with Journal(path, SCOPE) as journal:
        journal.drop_job(second)
        rows = [
            JournalRow("r1", "fp1", ItemState.UPLOADED),
            JournalRow("r2", "fp2", ItemState.IGNORED),
        ]
        journal.record(rows, collected_job=first)
        assert journal.unfinished_jobs() == []
        assert journal.counts() == {"uploaded": 1, "ignored": 1}


def test_upload_help_tells_what_async_and_stage_do() -> None:
    result = CliRunner().invoke(app, ["upload", "--help"], env={"COLUMNS": "200"})
    text = " ".join(result.output.split())
    assert result.exit_code == 0
    for said in (
        "--async Hand remote masks (s3://, gs://, https://) to the service as async jobs",
        "Local masks need --stage.",
        "[env var: SEGCLI_ASYNC]",
        "--job-size N --async: items per job (a job's errors list holds its latest 10,000).",
        "SEGCLI_JOB_SIZE; default: 10000; 1<=x<=10000]",
        "--max-jobs N --async: jobs started or running at once.",
        "SEGCLI_MAX_JOBS; default: 4; x>=1]",
        "--stage s3://BUCKET/PREFIX Copy local masks to this s3:// or gs:// prefix",
        "[env var: SEGCLI_STAGE]",
        "a killed run polls its jobs again",
    ):
        assert said in text, said


class _Answer:
    def __init__(self, body: object) -> None:
        self.body = body
        self.uncertain = False


class _Service:
    """A fake of the client's GETs: a job's errors, and what each item holds."""

    def __init__(self, errors: list[str], held: dict[str, dict[str, object]]) -> None:
        self.errors = errors
        self.held = held

    async def get(self, route: str) -> _Answer:
        if route.endswith("/errors"):
            return _Answer(self.errors)
        ref = route.rsplit("/", 1)[1]
        segmentation = self.held.get(ref)
        return _Answer(
            {"item": {}, "annotations": {"segmentation": [segmentation] if segmentation else []}}
        )


def _settle(status: str, service: _Service, *, update: bool = False) -> dict[str, tuple[str, str]]:
    import asyncio

    from segcli.batching import Batch, Entry
    from segcli.jobs import JobSender
    from segcli.records import JobProgress, UploadStats
    from segcli.send import Sender
    from segcli.target import Target
    from segcli.wire import RequestBodies

    target, stats, bodies = Target("ds_1"), UploadStats(), RequestBodies(update=update)
    sender = Sender(service, target, bodies, stats, endpoint="http://h", update=update)  # type: ignore[arg-type]
    jobs = JobSender(service, target, bodies, stats, sender, endpoint="http://h", update=update)  # type: ignore[arg-type]
    batch = Batch(
        True, [Entry(item(r, f"s3://b/{r}.png"), "fp") for r in ("mine", "other", "none")]
    )
    progress = JobProgress("job_1", 3, status=status, message="the job broke")
    result = asyncio.run(jobs.settle(batch, progress))
    return {ref: (state.value, message or "") for ref, (state, message) in result.states.items()}


def test_a_job_s_unnamed_items_are_read_back_whatever_its_end() -> None:
    mine = item("mine", "s3://b/mine.png").payload()
    other = {**item("other", "s3://b/elsewhere.png").payload()}
    service = _Service([], {"mine": mine, "other": other})
    for status in ("Completed", "Errored_Server", "Cancelled"):
        states = _settle(status, service)
        assert states["mine"][0] == "uploaded"
        assert states["other"][0] == "ignored" and "--update" in states["other"][1]
        assert states["none"][0] == "failed" and "re-run to send it again" in states["none"][1]
        if status != "Completed":
            assert f"ended {status} (the job broke)" in states["none"][1]
    # with --update a completed job replaced what each item held: nothing to read back
    assert set(_settle("Completed", _Service([], {}), update=True).values()) == {("uploaded", "")}
    # ... but an errored one is read back, and another mask in place is a failure
    failed = _settle("Errored_Server", service, update=True)
    assert failed["mine"][0] == "uploaded" and failed["other"][0] == "failed"


def test_a_job_s_errors_reject_the_items_they_name() -> None:
    error = json.dumps(
        {"annotation": {"reference_id": "none"}, "error": "Item with id none doesn't exist."}
    )
    states = _settle(
        "Completed", _Service([error], {"mine": item("mine", "s3://b/mine.png").payload()})
    )
    assert states["none"][0] == "rejected" and "doesn't exist" in states["none"][1]
    assert states["mine"][0] == "uploaded"
