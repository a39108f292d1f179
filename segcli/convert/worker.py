"""What a worker process does with one image: read, convert, check, write.

``convert_group`` is the task the runner (``segcli.convert.run``) hands the
pool: a few jobs at a time, each turned into an ``ImageResult`` and never an
exception, whatever the input. Top-level functions, so the pool can pickle them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from segcli.codes import problem
from segcli.convert.job import Converter, ImageResult, Job, WorkerContext
from segcli.convert.outputs import output_exists, write_output
from segcli.model import MaskItem, Problem


def warm_up() -> None:
    """Load what converting needs, so a worker's first image is not its slowest."""
    import numpy  # noqa: F401
    from PIL import Image  # noqa: F401

    import segcli.checks
    import segcli.convert.png  # noqa: F401


def convert_group(jobs: list[Job], **kwargs: Any) -> list[ImageResult]:
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
    from segcli.png import MaskInfo

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
        image=job.image,
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
    from segcli.storage import MaskReadError, read_mask

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
