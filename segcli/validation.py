"""Check every item of a manifest: the library behind ``segcli validate``.

    verdicts = segcli.validate(segcli.load_manifest("masks.yaml"))
    for v in verdicts: ...

Streaming: items flow from the manifest through a pool of workers that read
and inspect the masks, and verdicts come back in manifest order, with a
bounded number of items in flight.
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from segcli.codes import CodePolicy
from segcli.defaults import DEFAULT_MAX_PIXELS
from segcli.model import MaskItem, Problem, Verdict
from segcli.pool import PoolKind, default_workers, make_executor, ordered_map

# Items per task sent to a worker: a task costs a few hundred microseconds of
# pickling and queue hand-offs in the parent, as much as decoding a small mask.
ITEMS_PER_TASK = 8
# Tasks queued per worker: enough to keep every core busy while the
# manifest reader refills, small enough that memory does not grow with it.
WINDOW_PER_WORKER = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidateSettings:
    workers: int = field(default_factory=default_workers)
    pool: PoolKind = "process"
    max_pixels: int = DEFAULT_MAX_PIXELS
    validate_remote: bool = True
    storage_options: Mapping[str, Mapping[str, Any]] | None = None
    policy: CodePolicy = field(default_factory=CodePolicy)  # --ignore / --error


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


def _check_jobs(jobs: list[tuple[MaskItem, bool]], **kwargs: Any) -> list[tuple[Problem, ...]]:
    return [check_one(item, None, inspect=inspect, **kwargs) for item, inspect in jobs]


def _groups(jobs: Iterable[tuple[MaskItem, bool]]) -> Iterator[list[tuple[MaskItem, bool]]]:
    it = iter(jobs)
    while group := list(itertools.islice(it, ITEMS_PER_TASK)):
        yield group


def validate(
    items: Iterable[MaskItem], settings: ValidateSettings | None = None
) -> Iterator[Verdict]:
    """Yield one ``Verdict`` per item, in manifest order."""
    settings = settings or ValidateSettings()
    fn = functools.partial(
        _check_jobs, max_pixels=settings.max_pixels, storage_options=settings.storage_options
    )
    policy = settings.policy
    if policy.active:
        items = (policy.item(item) for item in items)
    jobs = ((item, needs_inspection(item, settings)) for item in items)
    executor = make_executor(settings.pool, settings.workers)
    try:
        window = max(1, settings.workers) * WINDOW_PER_WORKER
        for group, found in ordered_map(fn, _groups(jobs), executor, window=window):
            for (item, _), problems in zip(group, found, strict=True):
                yield Verdict(item=item, problems=policy.apply(problems))
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
