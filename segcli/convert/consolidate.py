"""Consolidate index masks: panoptic to semantic or instance, as the Nucleus guide does.

- ``semantic``: segments with the same label become one (the guide's three
  birds, values 8, 9 and 10, become one ``bird``), in table order.
- ``instance``: every stuff segment (metadata ``isthing: false``, a void
  segment, or a label under ``stuff:`` in the mapping file) joins one
  ``background`` segment, index 0 (the guide's values 0-5); things keep one
  segment each, in table order.

Merged metadata: a key whose value is the same in every merged segment is
kept; other keys follow ``metadata``: ``drop`` (default) leaves them out,
``first`` keeps the first segment's value, ``list`` keeps every value in
table order. The mapping file (YAML) may rename labels first and say what is
stuff::

    labels: {bird: animal}          # renamed before merging
    stuff: [background, building]   # instance: these join the background
    things: [person]                # instance: these stay instances
    background: background          # the merged segment's label
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from segcli.convert.job import Job, WorkerContext
from segcli.convert.mapping import Mapped, listing, lookup, merged_metadata, unknown_values
from segcli.convert.png import SourceError, open_source
from segcli.convert.void import void_candidate
from segcli.errors import UsageError
from segcli.model import MaskItem, Segment

KINDS = ("semantic", "instance")
METADATA_RULES = ("first", "drop", "list")


@dataclass(frozen=True, slots=True)
class Mapping_:
    labels: Mapping[str, str] = field(default_factory=dict)
    stuff: frozenset[str] = frozenset()
    things: frozenset[str] = frozenset()
    background: str = "background"


def read_mapping(path: str | None) -> Mapping_:
    """The mapping file (YAML); raise UsageError when it is not one."""
    if path is None:
        return Mapping_()
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            value = yaml.safe_load(handle) or {}
    except OSError as exc:
        raise UsageError(f"cannot read the mapping {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise UsageError(f"the mapping {path} is not valid YAML: {exc}") from exc
    known = {"labels", "stuff", "things", "background"}
    if not isinstance(value, dict) or not known.issuperset(value):
        raise UsageError(
            f"the mapping {path} must be a mapping with keys among {', '.join(sorted(known))}"
        )
    labels = value.get("labels") or {}
    lists = [value.get("stuff") or [], value.get("things") or []]
    background = value.get("background", "background")
    if (
        not isinstance(labels, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())
        or not all(isinstance(x, list) and all(isinstance(s, str) for s in x) for x in lists)
        or not isinstance(background, str)
        or not background.strip()
    ):
        raise UsageError(
            f"the mapping {path}: labels maps label to label, stuff and things are lists of "
            "labels, background is a label"
        )
    return Mapping_(labels, frozenset(lists[0]), frozenset(lists[1]), background)


@dataclass(frozen=True, slots=True)
class Plan:
    keys: tuple[int, ...]  # input values with a segment
    targets: tuple[int, ...]  # each one's place in ``candidates``
    void: tuple[int, ...]  # input values declared void (the manifest's void:)
    candidates: tuple[Segment, ...]


@dataclass(frozen=True, slots=True)
class Consolidate:
    manifest: str
    to: str = "semantic"
    mapping: str | None = None
    metadata: str = "drop"
    format: str | None = None
    default_segments: str | None = None
    name: ClassVar[str] = "consolidate"

    def __post_init__(self) -> None:
        if self.to not in KINDS:
            raise UsageError(f"--to {self.to!r}: use semantic or instance")
        if self.metadata not in METADATA_RULES:
            raise UsageError(f"--metadata {self.metadata!r}: use first, drop or list")

    def fingerprint(self) -> str:
        return f"to={self.to} metadata={self.metadata} mapping={read_mapping(self.mapping)!r}"

    def jobs(self) -> Iterator[Job]:
        from segcli.manifest import load_manifest

        mapping = read_mapping(self.mapping)
        items = load_manifest(
            self.manifest, format=self.format, default_segments=self.default_segments
        )
        for item in items:
            yield self._job(item, mapping)

    def _job(self, item: MaskItem, mapping: Mapping_) -> Job:
        errors = tuple((p.code, p.message) for p in item.problems if p.is_error)
        plan, found = (None, []) if errors else self._plan(item, mapping)
        return Job(
            reference_id=item.reference_id or f"line-{item.source.line}",
            sources=(item.mask,) if item.mask else (),
            where=item.source,
            spec=plan,
            width=item.width,
            height=item.height,
            findings=errors + tuple(found),
            image=item.image,
        )

    def _plan(self, item: MaskItem, mapping: Mapping_) -> tuple[Plan | None, list[tuple[str, str]]]:
        table = [
            Segment(s.index, mapping.labels.get(s.label, s.label), s.metadata)
            for s in item.segments
        ]
        stuff: list[Segment] = []
        if self.to == "semantic":
            groups: dict[str, list[Segment]] = {}
            for s in table:
                groups.setdefault(s.label, []).append(s)
            members = list(groups.values())
        else:
            neither: list[str] = []
            things: list[list[Segment]] = []
            for s in table:
                kind = _kind(s, mapping)
                if kind == "stuff":
                    stuff.append(s)
                elif kind == "thing":
                    things.append([s])
                else:
                    neither.append(s.label)
            if neither:
                return None, [
                    (
                        "source-syntax",
                        f"segments {', '.join(map(repr, neither[:10]))} say neither isthing "
                        "true nor false; give --map with stuff: [...] and things: [...]",
                    )
                ]
            members = ([stuff] if stuff else []) + things
        merged_stuff = self.to == "instance" and bool(members) and bool(stuff)
        candidates = [
            Segment(
                index=n,
                label=mapping.background if merged_stuff and n == 0 else group[0].label,
                metadata=merged_metadata([s.metadata for s in group], self.metadata),
            )
            for n, group in enumerate(members)
        ]
        position = {s.index: n for n, group in enumerate(members) for s in group}
        keys = tuple(s.index for s in table)
        return Plan(keys, tuple(position[k] for k in keys), tuple(item.void), tuple(candidates)), []

    def convert(self, job: Job, datas: Sequence[bytes], context: WorkerContext) -> Mapped:
        import numpy as np

        plan = job.spec
        assert isinstance(plan, Plan)
        name = job.sources[0]
        image = open_source(datas[0], max_pixels=context.max_pixels, name=name)
        job.check_size(image.width, image.height, name, "the manifest")
        if image.mode not in ("L", "P"):
            raise SourceError(
                "source-mode",
                f"{name} is not a one-channel 8-bit index mask (mode {image.mode}); run "
                "`segcli validate` on the manifest for how to fix it",
            )
        values = np.asarray(image)
        candidates = list(plan.candidates)
        keys, targets = list(plan.keys), list(plan.targets)
        void = [v for v in plan.void if v not in keys]
        if void:
            at = void_candidate(candidates, context.void)
            keys.extend(void)
            targets.extend([at] * len(void))
        labels, unknown = lookup(values, keys, targets)
        if unknown:
            stray = unknown_values(values, keys)
            raise SourceError(
                "unknown-value",
                f"pixel values in {name} with no segment: {listing(stray)}; add them to the "
                "item's table (or declare them under void:) and run again",
            )
        return Mapped(labels=labels, candidates=candidates)


def _kind(segment: Segment, mapping: Mapping_) -> str:
    meta: Mapping[str, Any] = segment.metadata or {}
    if segment.label in mapping.stuff:
        return "stuff"
    if segment.label in mapping.things:
        return "thing"
    if meta.get("void") is True or meta.get("isthing") is False:
        return "stuff"
    if meta.get("isthing") is True:
        return "thing"
    return "unknown"
