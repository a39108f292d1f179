"""Run a converter over every image: plan in the parent, convert on the worker pool.

    results = convert_masks(CocoPanoptic("panoptic.json", "masks/"), ConvertSettings(out="out/"))

Jobs stream from the converter through the same bounded, ordered pool as
``segcli validate`` (``segcli.pool``), a few images per task; results come
back in source order. A worker reads the sources, digests them (resume),
converts, encodes the mask, runs segcli's inspector on the encoded bytes
with the output's segment table (the checks of ``segcli validate``) and
writes the mask only when it passes. No image's problem stops the others.
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from segcli.convert.job import Converter, ImageResult, Job, WorkerContext
from segcli.convert.outputs import check_out, is_remote, output_uri
from segcli.convert.state import ConvertState, default_state_path
from segcli.convert.void import VoidRule
from segcli.convert.worker import convert_group, warm_up
from segcli.defaults import DEFAULT_MAX_PIXELS
from segcli.pool import PoolKind, default_workers, make_executor, ordered_map

IMAGES_PER_TASK = 4  # a 1024x1024 image is ~10 ms of work: hand-offs stay a small share
WINDOW_PER_WORKER = 3
DIGEST_VERSION = "segcli-convert-1"  # bump when the same inputs would give other outputs


@dataclass(frozen=True, slots=True, kw_only=True)
class ConvertSettings:
    out: str  # a local folder, or an s3:// / gs:// prefix
    workers: int = field(default_factory=default_workers)
    pool: PoolKind = "process"
    max_pixels: int = DEFAULT_MAX_PIXELS
    storage_options: Mapping[str, Mapping[str, Any]] | None = None
    void: VoidRule = field(default_factory=VoidRule)
    annotation_id: str | None = None  # a pattern with {reference_id}
    force: bool = False  # convert every image again, whatever the state says
    state_path: str | None = None  # default: in --out (see segcli.convert.state)


@dataclass(slots=True)
class ConvertSummary:
    """Running totals, fed one result at a time."""

    images: int = 0
    converted: int = 0
    skipped: int = 0
    failed: int = 0
    warnings: int = 0
    codes: Counter[str] = field(default_factory=Counter)

    def add(self, result: ImageResult) -> None:
        self.images += 1
        setattr(self, result.state, getattr(self, result.state) + 1)
        if result.ok and result.problems:
            self.warnings += 1
        self.codes.update(p.code for p in result.problems)

    @property
    def passed(self) -> bool:
        return self.failed == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "converted": self.converted,
            "skipped": self.skipped,
            "failed": self.failed,
            "with_warnings": self.warnings,
            "problems_by_code": dict(sorted(self.codes.items())),
        }


def convert_masks(converter: Converter, settings: ConvertSettings) -> Iterator[ImageResult]:
    """Yield one ``ImageResult`` per image, in the converter's order."""
    out = check_out(settings.out)
    settings = replace(settings, out=out)
    state = ConvertState(settings.state_path or default_state_path(out, remote=is_remote(out)))
    context = WorkerContext(void=settings.void, max_pixels=settings.max_pixels)
    fn = functools.partial(
        convert_group,
        converter=converter,
        context=context,
        fingerprint=_fingerprint(converter, settings),
        storage_options=settings.storage_options,
    )
    executor = make_executor(settings.pool, settings.workers)
    if executor is not None:
        # Start every worker now: their imports overlap the parent's first pass over the input.
        for _ in range(settings.workers):
            executor.submit(warm_up)
    try:
        jobs = _planned(converter.jobs(), settings, state)
        window = max(1, settings.workers) * WINDOW_PER_WORKER
        for group, results in ordered_map(fn, _groups(jobs), executor, window=window):
            for job, result in zip(group, results, strict=True):
                yield _settle(job, result, state)
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        state.close()


def _fingerprint(converter: Converter, settings: ConvertSettings) -> str:
    return "|".join((DIGEST_VERSION, converter.name, converter.fingerprint(), repr(settings.void)))


def _planned(jobs: Iterable[Job], settings: ConvertSettings, state: ConvertState) -> Iterator[Job]:
    seen: dict[str, str] = {}
    for job in jobs:
        first = seen.get(job.reference_id)
        if first is not None:
            message = (
                f"reference_id {job.reference_id!r} comes twice (first at {first}); "
                "Nucleus keeps one mask per item, so rename or remove one"
            )
            yield replace(job, findings=(*job.findings, ("duplicate-reference-id", message)))
            continue
        seen[job.reference_id] = str(job.where)
        known = None if settings.force else state.known(job.reference_id)
        output = output_uri(settings.out, job.reference_id)
        annotation_id = job.annotation_id
        if settings.annotation_id:
            annotation_id = settings.annotation_id.format(reference_id=job.reference_id)
        yield replace(
            job,
            output=output,
            annotation_id=annotation_id,
            known_digest=known[0] if known and known[1] == output else None,
        )


def _groups(jobs: Iterable[Job]) -> Iterator[list[Job]]:
    it = iter(jobs)
    while group := list(itertools.islice(it, IMAGES_PER_TASK)):
        yield group


def _settle(job: Job, result: ImageResult, state: ConvertState) -> ImageResult:
    """Record the outcome; a skipped image gets the item the earlier run wrote."""
    if result.state == "skipped":
        item = state.item(job.reference_id, job.where)
        if item is not None:
            return replace(result, item=item)
        result = replace(result, state="failed")  # not reachable unless the state file changed
    if result.state == "converted" and result.item is not None and result.digest:
        state.record(result.item, result.digest)
    elif result.state == "failed":
        state.forget(job.reference_id)
    return result
