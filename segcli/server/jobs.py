"""Async jobs: the NDJSON a client PUT to a signed URL, processed in the background.

A job works through its lines in steps; each step's rows, errors and the
job's progress commit in one transaction, so a server restarted on the same
data dir resumes a job exactly where it stopped.

Jobs start in ``Running`` at once (no queue): the official client's
``sleep_until_complete`` stops waiting on any status but ``Running``.
A job whose objects partly failed ends ``Completed`` with the failures in
its errors, as the service's do (the client raises JobError on any
``Errored_*``); only a job none of whose objects landed is ``Errored_User``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from segcli.server.config import MaskRules
from segcli.server.ingest import check_item, check_remote, error_text, fetch_and_check
from segcli.server.store import GROUND_TRUTH, NewItem, NewSegmentation, Store

STEP_LINES = 50

RUNNING = "Running"
COMPLETED = "Completed"
ERRORED_USER = "Errored_User"
ERRORED_SERVER = "Errored_Server"

#: kind -> job_type reported to clients
JOB_TYPES = {
    "annotate": "uploadAnnotations",
    "predictions": "uploadPredictions",
    "append": "uploadDatasetItems",
}


def read_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8", errors="replace") as handle:
        return [line for line in handle.read().splitlines() if line.strip()]


def iso_time(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp)) + ".000Z"


def creation_payload(job: dict[str, Any]) -> dict[str, Any]:
    """What starting a job answers (and ``job/{id}/info``)."""
    return {
        "job_id": job["id"],
        "job_last_known_status": job["status"],
        "job_type": job["job_type"],
        "job_creation_time": iso_time(job["created"]),
    }


def status_payload(job: dict[str, Any]) -> dict[str, Any]:
    """``job/{id}``. Progress and step counts are strings, as the client documents."""
    total, done = job["total_steps"], job["completed_steps"]
    progress = done / total if total else 1.0
    return {
        "job_id": job["id"],
        "status": job["status"],
        "message": job["message"] or _summary(job),
        "job_progress": f"{progress:.2f}",
        "completed_steps": str(done),
        "total_steps": str(total),
    }


def _summary(job: dict[str, Any]) -> str:
    return (
        f"{job['completed_steps']} of {job['total_steps']} objects read:"
        f" {job['processed']} processed, {job['ignored']} ignored, {job['errors']} errors."
    )


class JobRunner:
    """Runs jobs as tasks on the server's event loop."""

    def __init__(
        self,
        store: Store,
        *,
        auto_items: bool,
        storage_options: Mapping[str, Mapping[str, Any]] | None = None,
        rules: MaskRules = MaskRules(),
        step_s: float = 0.0,
    ) -> None:
        self.store = store
        self.step_s = step_s  # a step's least duration (ServerConfig.job_step_s)
        self.auto_items = auto_items
        self.storage_options = storage_options
        self.rules = rules
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, job_id: str) -> None:
        task = asyncio.get_running_loop().create_task(self._run(job_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def resume(self) -> None:
        """Pick up jobs a previous server left running."""
        for job_id in self.store.unfinished_jobs():
            self.start(job_id)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _run(self, job_id: str) -> None:
        job = self.store.job(job_id)
        if job is None:
            return
        try:
            lines = await asyncio.to_thread(read_lines, self.store.uploads_dir / job["input_file"])
            done = job["completed_steps"]
            while done < len(lines):
                step = lines[done : done + STEP_LINES]
                done += len(step)
                if self.step_s:
                    await asyncio.sleep(self.step_s)
                await asyncio.to_thread(self._step, job, step, done)
        except asyncio.CancelledError:
            raise  # server shutting down: the job resumes on the next start
        except Exception as exc:
            self.store.set_job_status(job_id, ERRORED_SERVER, f"The job failed: {exc}")
            return
        final = self.store.job(job_id)
        assert final is not None
        landed = final["processed"] + final["ignored"]
        status = ERRORED_USER if final["errors"] and not landed else COMPLETED
        self.store.set_job_status(job_id, status, _summary(final))

    def _step(self, job: dict[str, Any], lines: list[str], completed: int) -> None:
        errors: list[str] = []
        objects: list[Any] = []
        for line in lines:
            try:
                objects.append(json.loads(line))
            except ValueError:
                errors.append(error_text(line, "This line is not valid JSON."))
        if job["kind"] == "append":
            self._append_step(job, objects, errors, completed)
        else:
            self._segmentation_step(job, objects, errors, completed)

    def _append_step(
        self, job: dict[str, Any], objects: list[Any], errors: list[str], completed: int
    ) -> None:
        items: list[NewItem] = []
        for raw in objects:
            item = check_item(raw)
            if isinstance(item, str):
                errors.append(error_text(raw, item, key="item"))
            else:
                items.append(item)
        with self.store.transaction() as conn:
            result = self.store.append_items(conn, job["dataset_id"], items, bool(job["do_update"]))
            self.store.record_job_step(
                conn,
                job["id"],
                completed_steps=completed,
                processed=result.new_items + result.updated_items,
                ignored=result.ignored_items,
                errors=errors,
            )

    def _segmentation_step(
        self, job: dict[str, Any], objects: list[Any], errors: list[str], completed: int
    ) -> None:
        ready: list[NewSegmentation] = []
        for raw in objects:
            seg = check_remote(raw)
            if not isinstance(seg, str):
                seg = fetch_and_check(seg, self.storage_options, rules=self.rules)
            if isinstance(seg, str):
                errors.append(error_text(raw, seg))
            else:
                ready.append(seg)
        with self.store.transaction() as conn:
            applied = self.store.apply_segmentations(
                conn,
                job["dataset_id"],
                job["target"] or GROUND_TRUTH,
                ready,
                update=bool(job["do_update"]),
                auto_items=self.auto_items,
                model_run_id=job["model_run_id"],
            )
            errors.extend(error_text(raw, message) for raw, message in applied.errors)
            self.store.record_job_step(
                conn,
                job["id"],
                completed_steps=completed,
                processed=applied.processed,
                ignored=applied.ignored,
                errors=errors,
            )
        self.store.remove_masks(applied.unused_files + applied.replaced_files)
