"""A manifest from a folder of masks: the library behind ``segcli manifest``.

    for item in folder_items("masks/", segments, pattern="{reference_id}_mask.png"): ...

Lists the PNGs under a local folder or an ``s3://`` / ``gs://`` prefix in
sorted order, takes each reference_id from the file name by a pattern, and
yields one ``MaskItem`` per mask with the given segment table. Remote masks
keep their URLs (Nucleus reads them where they are). Files whose name does
not match the pattern and repeated reference_ids are counted in ``Listing``.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from segcli.convert.sources import is_png, list_files, pattern_regex
from segcli.model import MaskItem, Segment, Source

DEFAULT_PATTERN = "{reference_id}.png"


@dataclass(slots=True)
class Listing:
    """What a listing passed over: names that did not match, reference_ids seen twice."""

    unmatched: list[str] = field(default_factory=list)
    repeated: list[tuple[str, str, str]] = field(default_factory=list)  # (id, first, again)


def folder_items(
    root: str,
    segments: Sequence[Segment],
    *,
    pattern: str = DEFAULT_PATTERN,
    storage_options: Mapping[str, Mapping[str, Any]] | None = None,
    listing: Listing | None = None,
) -> Iterator[MaskItem]:
    """Yield an item per PNG under ``root`` whose name matches ``pattern``.

    A pattern with a ``/`` is matched against the path below ``root``,
    otherwise against the file name.
    """
    regex = pattern_regex(pattern)
    listing = listing if listing is not None else Listing()
    table = tuple(segments)
    first: dict[str, str] = {}
    for number, (uri, relative) in enumerate(list_files(root, is_png, storage_options), 1):
        name = relative if "/" in pattern else posixpath.basename(relative)
        match = regex.fullmatch(name)
        if match is None or not match.group("reference_id").strip():
            listing.unmatched.append(relative)
            continue
        reference_id = match.group("reference_id")
        if reference_id in first:
            listing.repeated.append((reference_id, first[reference_id], relative))
            continue
        first[reference_id] = relative
        yield MaskItem(
            reference_id=reference_id, mask=uri, segments=table, source=Source(root, number)
        )
