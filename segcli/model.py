"""The values that flow through segcli: segments, items, problems, outcomes.

All frozen: an item read from a manifest is never mutated on its way to the
server, so a worker process or a retry always sees what the user wrote.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from segcli.defaults import REMOTE_SCHEMES


@dataclass(frozen=True, slots=True)
class Source:
    """Where an item came from, for messages: ``manifest.csv:12``."""

    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True, slots=True)
class Segment:
    """One pixel value of a mask and what it means."""

    index: int
    label: str
    metadata: Mapping[str, Any] | None = None

    def payload(self) -> dict[str, Any]:
        # The official client leaves "metadata" out when there is none.
        out: dict[str, Any] = {"label": self.label, "index": self.index}
        if self.metadata:
            out["metadata"] = dict(self.metadata)
        return out


class Severity(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Problem:
    """A finding about one item. ``code`` is stable; scripts may match on it."""

    code: str
    severity: Severity
    message: str
    reference_id: str | None = None
    source: Source | None = None

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "reference_id": self.reference_id,
            "source": str(self.source) if self.source else None,
        }


@dataclass(frozen=True, slots=True)
class MaskItem:
    """One image's mask and its segment table, as the manifest gave it.

    ``mask`` is the URI as written, except that a relative local path has
    been resolved against the manifest's folder. ``problems`` holds what the
    manifest reader already found wrong (a bad index, a duplicate id...); an
    item with an error there is never sent.
    """

    reference_id: str
    mask: str
    segments: tuple[Segment, ...]
    source: Source
    annotation_id: str | None = None
    width: int | None = None
    height: int | None = None
    problems: tuple[Problem, ...] = field(default=())
    #: how a mask path written relative was resolved, for messages (None otherwise)
    base_note: str | None = None
    #: values the manifest declares void: allowed without a segment (a warning)
    void: tuple[int, ...] = ()
    #: the image the mask belongs to (path or URL), for segcli preview and the HTML
    #: report only: never sent (the segmentation routes take no image, see
    #: docs/nucleus-protocol.md; images reach a dataset through its own append)
    image: str | None = None

    def unreadable(self, reason: str) -> str:
        """The message for a mask that cannot be read, saying where a relative path led."""
        if self.base_note and "no such file" in reason:
            return f"cannot read {reason} (a relative path, resolved against {self.base_note})"
        return f"cannot read {reason}"

    @property
    def is_remote(self) -> bool:
        """True when Nucleus itself can fetch the mask (JSON batch route)."""
        return self.mask.startswith(REMOTE_SCHEMES)

    def payload(self) -> dict[str, Any]:
        """The segmentation exactly as the official client serialises it."""
        return {
            "type": "mask",
            "mask_url": self.mask,
            "annotations": [s.payload() for s in self.segments],
            "annotation_id": self.annotation_id,
            "reference_id": self.reference_id,
        }


class ItemState(str, enum.Enum):
    """The one final state of each item after an upload."""

    UPLOADED = "uploaded"
    IGNORED = "ignored"
    REJECTED = "rejected"
    INVALID = "invalid"
    FAILED = "failed"
    SKIPPED = "skipped"
    #: a dry run's verdict: valid and not landed, so a real run would send it
    WOULD_SEND = "would_send"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The result of checking one item."""

    item: MaskItem
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not any(p.is_error for p in self.problems)

    @property
    def has_warnings(self) -> bool:
        return any(not p.is_error for p in self.problems)

    def label(self, *, strict: bool = False) -> str:
        if not self.ok or (strict and self.has_warnings):
            return "invalid"
        return "warning" if self.has_warnings else "ok"
