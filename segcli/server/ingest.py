"""Checking and storing segmentations and items, the way the service must.

Everything here is synchronous and runs in a worker thread: a request's
checks, mask files and transaction complete together even if the client
goes away, so a write is never left half done.

Each rejected object becomes one error string, the JSON text
``{"annotation": <the object as sent>, "error": "<why>"}`` (items use
``"item"``), the form the service documents for job errors; sync answers
use the same form so a client can tell which object failed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from segcli.defaults import DEFAULT_MAX_PIXELS, REMOTE_SCHEMES
from segcli.server.bodies import UploadedFile
from segcli.server.config import MaskRules
from segcli.server.responses import HttpError
from segcli.server.store import GROUND_TRUTH, NewItem, NewSegmentation, Store

MAX_SEGMENT_INDEX = 255


def error_text(obj: Any, message: str, *, key: str = "annotation") -> str:
    return json.dumps({key: obj, "error": message})


def is_remote(url: str) -> bool:
    return url.lower().startswith(REMOTE_SCHEMES)


@dataclass
class WriteResult:
    processed: int = 0
    ignored: int = 0
    errors: list[str] = field(default_factory=list)
    model_run_id: str | None = None


@dataclass(frozen=True)
class Destination:
    """Where segmentations go: ground truth, or a model (and its run)."""

    dataset_id: str
    model_id: str | None = None
    model_run_id: str | None = None  # None with a model: the model's run, made if needed

    @property
    def key(self) -> str:
        return self.model_id or GROUND_TRUTH


def parse_upload_request(body: Any) -> tuple[list[Any], bool, list[str]]:
    """(segmentations, update, errors) of an annotate/predictions request body."""
    if not isinstance(body, dict):
        raise HttpError(400, "The request must be a JSON object.")
    segmentations = body.get("segmentations", [])
    update = body.get("update", False)
    if not isinstance(segmentations, list) or not isinstance(update, bool):
        raise HttpError(400, "'segmentations' must be a list and 'update' a boolean.")
    errors = []
    others = body.get("annotations") or []
    for other in others if isinstance(others, list) else [others]:
        errors.append(error_text(other, "Only segmentation masks are supported by this server."))
    return segmentations, update, errors


class SegmentsMemo:
    """The last segment list of a request that checked clean without metadata.

    Clients send one table for every segmentation of a batch; a list equal to
    the last one (and with int indices: ``True == 1`` in Python) shares its
    checked copy instead of being checked again.
    """

    __slots__ = ("clean", "raw")

    def __init__(self) -> None:
        self.raw: list[Any] | None = None
        self.clean: list[dict[str, Any]] = []


def check_fields(raw: Any, memo: SegmentsMemo | None = None) -> NewSegmentation | str:
    """A segmentation object as the official client sends it, or why not."""
    if not isinstance(raw, dict):
        return "A segmentation must be a JSON object."
    if raw.get("type", "mask") != "mask":
        return "Only segmentation masks (type 'mask') are supported."
    reference_id = raw.get("reference_id")
    if not isinstance(reference_id, str) or not reference_id:
        return "reference_id must be a non-empty string."
    annotation_id = raw.get("annotation_id")
    if annotation_id is not None and not isinstance(annotation_id, str):
        return "annotation_id must be a string or null."
    mask_url = raw.get("mask_url")
    if not isinstance(mask_url, str) or not mask_url:
        return "mask_url must be a non-empty string."
    segments = raw.get("annotations")
    if not isinstance(segments, list) or not segments:
        return "annotations must be a non-empty list of segments."
    if (
        memo is not None
        and memo.raw is not None
        and segments == memo.raw
        and all(type(segment["index"]) is int for segment in segments)
    ):
        clean = memo.clean
    else:
        checked = _clean_segments(segments)
        if isinstance(checked, str):
            return checked
        clean = checked
        if memo is not None and all(len(segment) == 2 for segment in clean):
            memo.raw, memo.clean = segments, clean
    return NewSegmentation(
        reference_id=reference_id,
        annotation_id=annotation_id,
        mask_url=mask_url,
        annotations=clean,
        raw=raw,
    )


def _clean_segments(segments: list[Any]) -> list[dict[str, Any]] | str:
    """The segments as stored (label, index, metadata if any), or why they are refused.

    A segment as every client sends it (a dict holding a str label, an int
    index in range and no metadata) takes the first branch: exact type tests
    instead of isinstance chains, since this runs for every segment of every
    request. Anything else goes through the full checks, which accept the
    same values and say what is wrong.
    """
    clean: list[dict[str, Any]] = []
    seen: set[int] = set()
    for segment in segments:
        if type(segment) is dict:
            label, index = segment.get("label"), segment.get("index")
            if (
                type(label) is str
                and type(index) is int
                and 0 <= index <= MAX_SEGMENT_INDEX
                and index not in seen
                and segment.get("metadata") is None
            ):
                seen.add(index)
                clean.append({"label": label, "index": index})
                continue
        if not isinstance(segment, dict):
            return "Each segment must be a JSON object."
        label, index = segment.get("label"), segment.get("index")
        if not isinstance(label, str):
            return f"Segment label {label!r} is not a string."
        if isinstance(index, bool) or not isinstance(index, int):
            return f"Segment index {index!r} is not an integer."
        if not 0 <= index <= MAX_SEGMENT_INDEX:
            return f"Segment index {index} is outside 0..{MAX_SEGMENT_INDEX}."
        if index in seen:
            return f"Segment index {index} appears twice."
        seen.add(index)
        metadata = segment.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            return f"Metadata of segment {index} is not an object."
        out: dict[str, Any] = {"label": label, "index": index}
        if metadata is not None:
            out["metadata"] = metadata
        clean.append(out)
    return clean


def check_remote(raw: Any, memo: SegmentsMemo | None = None) -> NewSegmentation | str:
    """A segmentation sent as JSON: its mask must be a URL the service can fetch."""
    seg = check_fields(raw, memo)
    if isinstance(seg, str) or is_remote(seg.mask_url):
        return seg
    return (
        f"mask_url {seg.mask_url!r} is not a URL the server can fetch"
        " (s3://, gs://, http:// or https://); send local masks as multipart files."
    )


def fetch_and_check(
    seg: NewSegmentation,
    storage_options: Mapping[str, Mapping[str, Any]] | None,
    *,
    rules: MaskRules = MaskRules(),
) -> NewSegmentation | str:
    """Read a remote mask the server was given credentials for, and check it."""
    scheme = seg.mask_url.split("://", 1)[0]
    if not storage_options or scheme not in storage_options:
        return seg
    from segcli.storage import MaskReadError, read_mask

    try:
        data = read_mask(seg.mask_url, storage_options=storage_options)
    except MaskReadError as exc:
        return f"Cannot fetch mask_url {seg.mask_url!r}: {exc.message}"
    return checked_upload(data, seg, rules=rules)


def checked_upload(
    data: bytes, seg: NewSegmentation, *, rules: MaskRules = MaskRules()
) -> NewSegmentation | str:
    """The PNG checks the service makes before it accepts a mask.

    A pixel value without a segment is accepted, as the service does (the
    official client's own test uploads a mask holding 0, 1 and 2 with
    segments for 1 and 2 only); ``rules.strict`` refuses it. Without
    ``rules.decode`` only the PNG's chunks and header are checked.
    """
    from segcli.png import MaskFormatError, inspect_png

    if not rules.decode:
        return _checked_header(data, seg)
    try:
        info = inspect_png(data, max_pixels=DEFAULT_MAX_PIXELS)
    except MaskFormatError as exc:
        return f"Mask {seg.mask_url!r} was refused ({exc.code}): {exc.message}"
    if info.mode not in ("L", "P"):
        return (
            f"Mask {seg.mask_url!r} has mode {info.mode}; it must be single-channel 8-bit (L or P)."
        )
    indices = {s["index"] for s in seg.annotations}
    missing = sorted(v for v, n in info.counts.items() if n and v not in indices)
    if missing and rules.strict:
        shown = ", ".join(map(str, missing[:20])) + (" ..." if len(missing) > 20 else "")
        return f"Pixel values {shown} in mask {seg.mask_url!r} have no segment."
    return replace(seg, width=info.width, height=info.height)


def _checked_header(data: bytes, seg: NewSegmentation) -> NewSegmentation | str:
    """A PNG's structure (signature, chunks, CRCs) and header, its pixels not decoded."""
    from segcli.png import MaskFormatError, png_layout

    try:
        width, height, depth, colour, _, _ = png_layout(data)
    except MaskFormatError as exc:
        return f"Mask {seg.mask_url!r} was refused ({exc.code}): {exc.message}"
    if (depth, colour) not in ((8, 0), (8, 3)):  # 8-bit gray (L) or palette (P)
        return (
            f"Mask {seg.mask_url!r} has bit depth {depth} and colour type {colour}; "
            "it must be single-channel 8-bit (L or P)."
        )
    if width * height > DEFAULT_MAX_PIXELS:
        return f"Mask {seg.mask_url!r} has {width * height:,} pixels, over the server's limit."
    return replace(seg, width=width, height=height)


def _pair_files(
    store: Store,
    raws: Sequence[Any],
    files: Sequence[UploadedFile],
    written: list[str],
    rules: MaskRules,
) -> tuple[list[NewSegmentation], list[str]]:
    """Match each segmentation with the file named like its mask_url; write the good ones.

    Names of the mask files written are added to ``written`` as they land,
    so the caller can remove them if anything fails later.
    """
    by_name: dict[str, list[bytes]] = {}
    for upload in files:
        by_name.setdefault(upload.filename, []).append(upload.data)
    ready: list[NewSegmentation] = []
    errors: list[str] = []
    memo = SegmentsMemo()
    for raw in raws:
        seg = check_fields(raw, memo)
        if isinstance(seg, str):
            errors.append(error_text(raw, seg))
            continue
        waiting = by_name.get(seg.mask_url)
        if waiting:
            data = waiting.pop(0)
            checked = checked_upload(data, seg, rules=rules)
            if isinstance(checked, str):
                errors.append(error_text(raw, checked))
                continue
            name = store.new_mask_name()
            written.append(name)
            with open(store.mask_path(name), "xb") as out:
                out.write(data)
            ready.append(replace(checked, mask_file=name))
        elif is_remote(seg.mask_url):
            ready.append(seg)
        else:
            errors.append(error_text(raw, f"No file part is named {seg.mask_url!r}."))
    for name, left in by_name.items():
        for _ in left:
            errors.append(error_text(None, f"File {name!r} matches no segmentation."))
    return ready, errors


def write_segmentations(
    store: Store,
    target: Destination,
    raws: Sequence[Any],
    *,
    update: bool,
    auto_items: bool,
    files: Sequence[UploadedFile] | None = None,
    storage_options: Mapping[str, Mapping[str, Any]] | None = None,
    rules: MaskRules = MaskRules(),
) -> WriteResult:
    """Check and store one request's segmentations in one transaction.

    ``files`` is None for a JSON request (remote masks only) and the
    uploaded parts for a multipart one. Remote masks of a scheme in
    ``storage_options`` are fetched and checked before anything is stored.
    """
    written: list[str] = []
    try:
        if files is None:
            ready: list[NewSegmentation] = []
            errors: list[str] = []
            memo = SegmentsMemo()
            for raw in raws:
                seg = check_remote(raw, memo)
                if not isinstance(seg, str):
                    seg = fetch_and_check(seg, storage_options, rules=rules)
                if isinstance(seg, str):
                    errors.append(error_text(raw, seg))
                else:
                    ready.append(seg)
        else:
            ready, errors = _pair_files(store, raws, files, written, rules)
        with store.transaction() as conn:
            run_id = target.model_run_id
            if target.model_id is not None and run_id is None:
                run_id = store.run_for_model(conn, target.dataset_id, target.model_id)
            applied = store.apply_segmentations(
                conn,
                target.dataset_id,
                target.key,
                ready,
                update=update,
                auto_items=auto_items,
                model_run_id=run_id,
            )
    except BaseException:
        store.remove_masks(written)
        raise
    # Only after the commit: a replaced mask's file goes once nothing points at it.
    store.remove_masks(applied.unused_files + applied.replaced_files)
    errors.extend(error_text(raw, message) for raw, message in applied.errors)
    return WriteResult(applied.processed, applied.ignored, errors, run_id)


def check_item(raw: Any) -> NewItem | str:
    """A dataset item as the official client serialises it."""
    if not isinstance(raw, dict):
        return "An item must be a JSON object."
    reference_id = raw.get("reference_id")
    if not isinstance(reference_id, str) or not reference_id:
        return "reference_id must be a non-empty string."
    image_url = raw.get("image_url")
    if not isinstance(image_url, str) or not image_url:
        return "image_url must be a non-empty string."
    metadata = raw.get("metadata") or {}
    if not isinstance(metadata, dict):
        return "metadata must be an object."
    size: list[int | None] = []
    for key in ("width", "height"):
        value = raw.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            return f"{key} must be a positive integer."
        if value is not None and value <= 0:
            return f"{key} must be a positive integer."
        size.append(value)
    return NewItem(reference_id, image_url, metadata, size[0], size[1])


@dataclass
class AppendOutcome:
    new_items: int = 0
    updated_items: int = 0
    ignored_items: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    def payload(self, dataset_id: str) -> dict[str, Any]:
        """A sync append's answer: ``upload_errors`` counts, ``error_payload`` says which.

        The official client adds ``upload_errors`` up as an int
        (``UploadResponse.update_response``); the details go in ``error_payload``.
        """
        return {
            "dataset_id": dataset_id,
            "new_items": self.new_items,
            "updated_items": self.updated_items,
            "ignored_items": self.ignored_items,
            "upload_errors": len(self.errors),
            "error_payload": self.errors,
        }


def write_items(
    store: Store, dataset_id: str, raws: Sequence[Any], *, update: bool
) -> AppendOutcome:
    items: list[NewItem] = []
    outcome = AppendOutcome()
    seen: set[str] = set()
    for raw in raws:
        item = check_item(raw)
        if isinstance(item, str):
            outcome.errors.append({"item": raw, "error": item})
        elif item.reference_id in seen:
            outcome.errors.append({"item": raw, "error": "reference_id appears twice."})
        else:
            seen.add(item.reference_id)
            items.append(item)
    with store.transaction() as conn:
        result = store.append_items(conn, dataset_id, items, update)
    outcome.new_items = result.new_items
    outcome.updated_items = result.updated_items
    outcome.ignored_items = result.ignored_items
    return outcome
