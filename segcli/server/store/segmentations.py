"""Segmentations (ground truth and predictions) and the mask files they keep.

Mask files live in ``data_dir/masks/`` under random names the server makes.
No name that reaches the disk is ever derived from what a client sent, so a
reference_id or filename like ``../x`` cannot escape the data dir.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segcli.server.store.base import GROUND_TRUTH, Database, placeholder_image_url, select_in
from segcli.server.store.catalog import NewItem, insert_item


@dataclass(frozen=True)
class NewSegmentation:
    """One checked segmentation, ready to store. ``raw`` is what the client sent."""

    reference_id: str
    annotation_id: str | None
    mask_url: str
    annotations: list[dict[str, Any]]
    raw: Any
    mask_file: str | None = None  # a name in masks/, made by the server
    width: int | None = None
    height: int | None = None

    def payload(self) -> dict[str, Any]:
        return {
            "type": "mask",
            "mask_url": self.mask_url,
            "annotations": self.annotations,
            "annotation_id": self.annotation_id,
            "reference_id": self.reference_id,
        }


@dataclass
class ApplyResult:
    """What one write did. Files are names in masks/, removed by the caller."""

    processed: int = 0
    ignored: int = 0
    errors: list[tuple[Any, str]] = field(default_factory=list)
    unused_files: list[str] = field(default_factory=list)
    replaced_files: list[str] = field(default_factory=list)


class Segmentations(Database):
    def mask_path(self, name: str) -> Path:
        return self.masks_dir / name

    def new_mask_name(self) -> str:
        return secrets.token_hex(16) + ".png"

    def remove_masks(self, names: Sequence[str]) -> None:
        for name in names:
            self.mask_path(name).unlink(missing_ok=True)

    # -- segmentations ------------------------------------------------------

    def apply_segmentations(
        self,
        conn: sqlite3.Connection,
        dataset_id: str,
        target: str,
        segmentations: Sequence[NewSegmentation],
        *,
        update: bool,
        auto_items: bool,
        model_run_id: str | None = None,
    ) -> ApplyResult:
        """Store segmentations, in order, inside the caller's transaction.

        One per item and target: a second is ignored unless ``update``, then
        it replaces the first. A reference_id that is not an item is an error
        (or, with ``auto_items``, makes the item).
        """
        result = ApplyResult()
        now = time.time()
        refs = list(dict.fromkeys(seg.reference_id for seg in segmentations))
        # One query each for the items and the segmentations already held,
        # rather than two per segmentation; ``held`` then follows the writes
        # of this call, so a reference_id sent twice sees its first copy.
        sizes: dict[str, tuple[int | None, int | None]] = {
            row[0]: (row[1], row[2])
            for row in select_in(
                conn,
                "SELECT reference_id, width, height FROM items"
                " WHERE dataset_id = ? AND reference_id IN ({})",
                (dataset_id,),
                refs,
            )
        }
        # reference_id -> (mask_file, created) of the segmentation held for it
        held: dict[str, tuple[str | None, float]] = {
            row[0]: (row[1], row[2])
            for row in select_in(
                conn,
                "SELECT reference_id, mask_file, created FROM segmentations"
                " WHERE dataset_id = ? AND target = ? AND reference_id IN ({})",
                (dataset_id, target),
                refs,
            )
        }
        texts: dict[int, tuple[list[dict[str, Any]], str]] = {}
        rows: list[tuple[Any, ...]] = []
        for seg in segmentations:
            size = sizes.get(seg.reference_id)
            if size is None and auto_items:
                insert_item(
                    conn,
                    dataset_id,
                    NewItem(seg.reference_id, placeholder_image_url(seg.reference_id), {}),
                    now,
                )
                sizes[seg.reference_id] = (None, None)
            elif size is None:
                # The service's words: its clients match on them
                # ("Item with id fake_garbage doesn" in the official tests).
                result.errors.append((seg.raw, f"Item with id {seg.reference_id} doesn't exist."))
                _collect(result.unused_files, seg.mask_file)
                continue
            elif (
                seg.width is not None
                and size[0] is not None
                and size[1] is not None
                and (seg.width, seg.height) != size
            ):
                result.errors.append(
                    (
                        seg.raw,
                        f"Mask is {seg.width}x{seg.height} but item {seg.reference_id!r}"
                        f" is {size[0]}x{size[1]}.",
                    )
                )
                _collect(result.unused_files, seg.mask_file)
                continue
            created = now
            if seg.reference_id in held:
                if not update:
                    result.ignored += 1
                    _collect(result.unused_files, seg.mask_file)
                    continue
                replaced, created = held[seg.reference_id]  # a replacement keeps its creation
                _collect(result.replaced_files, replaced)
            held[seg.reference_id] = (seg.mask_file, created)
            rows.append(
                (
                    dataset_id,
                    seg.reference_id,
                    target,
                    seg.annotation_id,
                    seg.mask_url,
                    seg.mask_file,
                    _annotations_text(seg.annotations, texts),
                    model_run_id,
                    seg.width,
                    seg.height,
                    created,
                    now,
                )
            )
            result.processed += 1
        # In order: a reference_id written twice keeps the later row.
        conn.executemany(
            "INSERT OR REPLACE INTO segmentations (dataset_id, reference_id, target,"
            " annotation_id, mask_url, mask_file, annotations, model_run_id, width, height,"
            " created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        return result

    def segmentations(
        self, dataset_id: str, target: str = GROUND_TRUTH, reference_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Stored rows, oldest first; ``mask_file`` is an absolute path or None."""
        sql = "SELECT * FROM segmentations WHERE dataset_id = ? AND target = ?"
        params: list[Any] = [dataset_id, target]
        if reference_id is not None:
            sql += " AND reference_id = ?"
            params.append(reference_id)
        rows = self._rows(sql + " ORDER BY created, reference_id", params)
        out = []
        for row in rows:
            seg = dict(row)
            seg["annotations"] = json.loads(seg["annotations"])
            if seg["mask_file"] is not None:
                seg["mask_file"] = str(self.mask_path(seg["mask_file"]))
            out.append(seg)
        return out


def _annotations_text(
    annotations: list[dict[str, Any]], texts: dict[int, tuple[list[dict[str, Any]], str]]
) -> str:
    """The JSON stored for a segment list, dumped once per list object in a call.

    Segmentations of one request that share a table share the checked list
    (see ``ingest.SegmentsMemo``); the entry keeps the list, so its id stays its own.
    """
    known = texts.get(id(annotations))
    if known is not None and known[0] is annotations:
        return known[1]
    text = json.dumps(annotations)
    texts[id(annotations)] = (annotations, text)
    return text


def _collect(names: list[str], name: str | None) -> None:
    if name is not None:
        names.append(name)
