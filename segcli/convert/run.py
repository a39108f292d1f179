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
import hashlib
import itertools
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from segcli.codes import problem
from segcli.convert.job import Converter, ImageResult, Job, WorkerContext
from segcli.convert.outputs import check_out, is_remote, output_exists, output_uri, write_output
from segcli.convert.state import ConvertState, default_state_path
from segcli.convert.void import VoidRule
from segcli.defaults import DEFAULT_MAX_PIXELS
from segcli.model import MaskItem, Problem
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
        _convert_group,
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


# -- in the worker ----------------------------------------------------------


def warm_up() -> None:
    """Load what converting needs, so a worker's first image is not its slowest."""
    import numpy  # noqa: F401
    from PIL import Image  # noqa: F401

    import segcli.checks
    import segcli.convert.png  # noqa: F401


def _convert_group(jobs: list[Job], **kwargs: Any) -> list[ImageResult]:
    return [convert_job(job, **kwargs) for job in jobs]


def convert_job(
    job: Job,
    *,
    converter: Converter,
    context: WorkerContext,
    fingerprint: str,
    storage_options: Mapping[str, Mapping[str, Any]] | None,
) -> ImageResult:
    """Read, convert, check and write one image. Never raises for bad input."""
    from segcli.convert.png import SourceError

    def failed(findings: Iterable[tuple[str, str]]) -> ImageResult:
        return _result(job, "failed", None, _problems(job, findings))

    errors = [f for f in job.findings if _is_error(f[0])]
    if errors:
        return failed(errors)
    datas, unreadable = _read_sources(job, storage_options)
    if unreadable:
        return failed(unreadable)
    digest = _digest(fingerprint, job, datas)
    if job.known_digest == digest and output_exists(job.output, storage_options):
        return _result(job, "skipped", None, (), digest)
    try:
        mapped = converter.convert(job, datas, context)
    except SourceError as exc:
        return failed([exc.finding])
    return _finish(job, mapped, context, digest, storage_options)


def _finish(
    job: Job,
    mapped: Any,
    context: WorkerContext,
    digest: str,
    storage_options: Mapping[str, Mapping[str, Any]] | None,
) -> ImageResult:
    from segcli.checks import inspect_data, mask_problems
    from segcli.convert.mapping import finish
    from segcli.convert.png import encode_mask
    from segcli.masks import MaskInfo

    findings = [*job.findings, *mapped.findings]
    if any(_is_error(code) for code, _ in findings):
        return _result(job, "failed", None, _problems(job, findings))
    data = found = None
    if mapped.verify is not None and mapped.counts is None:
        # Encode first: the inspector's pixel counts (it counts anyway) serve the
        # converter's own checks, which saves a pass over the labels.
        data = encode_mask(mapped.labels)
        found = inspect_data(data, max_pixels=context.max_pixels)
        if isinstance(found, MaskInfo):
            mapped.counts = [found.counts.get(value, 0) for value in range(256)]
            findings += mapped.verify(mapped.counts)
            if any(_is_error(code) for code, _ in findings):
                return _result(job, "failed", None, _problems(job, findings))
    labels, segments = finish(mapped)
    if data is None or labels is not mapped.labels:  # renumbered: encode what is final
        data = encode_mask(labels)
        found = inspect_data(data, max_pixels=context.max_pixels)
    height, width = labels.shape
    item = MaskItem(
        reference_id=job.reference_id,
        mask=job.output,
        segments=segments,
        source=job.where,
        annotation_id=job.annotation_id,
        width=width,
        height=height,
    )
    # The checks of `segcli validate`, on the very bytes about to be written.
    assert found is not None
    checked = mask_problems(item, found)
    problems = _problems(job, findings) + checked
    if any(p.is_error for p in checked):
        return _result(job, "failed", None, problems)
    try:
        write_output(job.output, data, storage_options)
    except Exception as exc:  # a full disk, a refused PUT: this image fails, the run goes on
        message = f"cannot write {job.output}: {type(exc).__name__}: {exc}; check --out"
        unwritable = _problems(job, [("output-unwritable", message)])
        return _result(job, "failed", None, (*problems, *unwritable))
    return _result(job, "converted", item, problems, digest)


def _read_sources(
    job: Job, storage_options: Mapping[str, Mapping[str, Any]] | None
) -> tuple[list[bytes], list[tuple[str, str]]]:
    from segcli.masks import MaskReadError, read_mask

    datas: list[bytes] = []
    for uri in job.sources:
        try:
            datas.append(read_mask(uri, storage_options=storage_options))
        except MaskReadError as exc:
            return [], [("source-unreadable", f"{exc.message}; every other image goes on")]
        except Exception as exc:
            return [], [
                ("source-unreadable", f"{uri}: cannot read it: {type(exc).__name__}: {exc}")
            ]
    return datas, []


def _digest(fingerprint: str, job: Job, datas: list[bytes]) -> str:
    h = hashlib.sha256(fingerprint.encode())
    h.update(repr((job.spec, job.width, job.height, job.annotation_id, job.output)).encode())
    for data in datas:
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def _is_error(code: str) -> bool:
    from segcli.codes import RULES
    from segcli.model import Severity

    return RULES[code][0] is Severity.ERROR


def _problems(job: Job, findings: Iterable[tuple[str, str]]) -> tuple[Problem, ...]:
    return tuple(
        problem(code, message, reference_id=job.reference_id, source=job.where)
        for code, message in findings
    )


def _result(
    job: Job,
    state: str,
    item: MaskItem | None,
    problems: tuple[Problem, ...],
    digest: str | None = None,
) -> ImageResult:
    return ImageResult(
        reference_id=job.reference_id,
        where=job.where,
        state=state,
        item=item,
        problems=problems,
        digest=digest,
        sources=job.sources,
    )
