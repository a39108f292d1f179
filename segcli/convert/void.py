"""Void pixels: what a source marks as "no label" (COCO 0, VOC 255, Cityscapes' ignored classes).

Nucleus expects a segment for every value in a mask, so void pixels become a
segment of their own, labelled ``void`` by default (``VoidRule.label``), or
join the first segment labelled ``VoidRule.into`` (a segment with that label
is added when the image has none).
"""

from __future__ import annotations

from dataclasses import dataclass

from segcli.model import Segment

DEFAULT_VOID_LABEL = "void"
VOID_METADATA = {"void": True}


@dataclass(frozen=True, slots=True)
class VoidRule:
    label: str = DEFAULT_VOID_LABEL
    into: str | None = None

    def __post_init__(self) -> None:
        if not (self.into or self.label).strip():
            raise ValueError("the void label must not be empty")


def void_candidate(candidates: list[Segment], rule: VoidRule) -> int:
    """The position void pixels take in ``candidates``, appending a segment if needed."""
    if rule.into is not None:
        for position, segment in enumerate(candidates):
            if segment.label == rule.into:
                return position
        candidates.append(Segment(index=len(candidates), label=rule.into))
        return len(candidates) - 1
    candidates.append(
        Segment(index=len(candidates), label=rule.label, metadata=dict(VOID_METADATA))
    )
    return len(candidates) - 1
