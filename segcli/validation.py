"""Check every item of a manifest: the library behind ``segcli validate``.

    verdicts = segcli.validate(segcli.load_manifest("masks.yaml"))
    for v in verdicts: ...

Streaming: items flow from the manifest through a pool of workers that read
and inspect the masks, and verdicts come back in manifest order, with a
bounded number of items in flight.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from segcli.defaults import DEFAULT_MAX_PIXELS
from segcli.model import MaskItem, Problem, Verdict
from segcli.pool import PoolKind, default_workers, make_executor, ordered_map

# Items queued per worker: enough to keep every core busy while the
# manifest reader refills, small enough that memory does not grow with it.
WINDOW_PER_WORKER = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidateSettings:
    workers: int = field(default_factory=default_workers)
    pool: PoolKind = "process"
    max_pixels: int = DEFAULT_MAX_PIXELS
    validate_remote: bool = True
    storage_options: Mapping[str, Mapping[str, Any]] | None = None


def needs_inspection(item: MaskItem, settings: ValidateSettings) -> bool:
    if not item.mask:
        return False
    return settings.validate_remote or not item.is_remote


def check_one(
    item: MaskItem,
    data: bytes | None = None,
    *,
    max_pixels: int,
    inspect: bool,
    storage_options: Mapping[str, Mapping[str, Any]] | None,
) -> tuple[Problem, ...]:
    """All problems of one item: the manifest's, then the mask's. Never raises."""
    if not inspect:
        return item.problems
    from segcli.checks import inspect_item

    found = inspect_item(item, data, max_pixels=max_pixels, storage_options=storage_options)
    return item.problems + found


def _check_job(job: tuple[MaskItem, bool], **kwargs: Any) -> tuple[Problem, ...]:
    item, inspect = job
    return check_one(item, None, inspect=inspect, **kwargs)


def validate(
    items: Iterable[MaskItem], settings: ValidateSettings | None = None
) -> Iterator[Verdict]:
    """Yield one ``Verdict`` per item, in manifest order."""
    settings = settings or ValidateSettings()
    fn = functools.partial(
        _check_job, max_pixels=settings.max_pixels, storage_options=settings.storage_options
    )
    jobs = ((item, needs_inspection(item, settings)) for item in items)
    executor = make_executor(settings.pool, settings.workers)
    try:
        window = max(1, settings.workers) * WINDOW_PER_WORKER
        for (item, _), problems in ordered_map(fn, jobs, executor, window=window):
            yield Verdict(item=item, problems=problems)
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


@dataclass(slots=True)
class ValidationSummary:
    """Running totals, fed one verdict at a time."""

    strict: bool = False
    items: int = 0
    ok: int = 0
    warnings: int = 0
    invalid: int = 0
    codes: Counter[str] = field(default_factory=Counter)

    def add(self, verdict: Verdict) -> str:
        label = verdict.label(strict=self.strict)
        self.items += 1
        if label == "invalid":
            self.invalid += 1
        elif label == "warning":
            self.warnings += 1
        else:
            self.ok += 1
        self.codes.update(p.code for p in verdict.problems)
        return label

    @property
    def passed(self) -> bool:
        return self.invalid == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "ok": self.ok,
            "with_warnings": self.warnings,
            "invalid": self.invalid,
            "strict": self.strict,
            "problems_by_code": dict(sorted(self.codes.items())),
        }
