"""What goes on the wire: the JSON of a batch and its multipart encoding.

Bodies are byte for byte what the official client sends (see
``docs/nucleus-protocol.md``): ``json.dumps`` of its request dict, keys in its
order. They are put together from each segment table's JSON, kept per
table, rather than encoding every segment of every item again: most
manifests have one table, and encoding is most of a remote batch's cost.
The same cache gives the journal its canonical text of each table.
"""

from __future__ import annotations

import json
import urllib.parse
import uuid
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from segcli.batching import Batch
from segcli.model import MaskItem, Segment

TABLE_TEXTS_CACHE = 64  # segment tables whose JSON is kept (most runs have one)


class TableTexts:
    """(journal fingerprint JSON, request JSON) of segment tables, cached per table.

    Keyed by identity: the manifest reader gives items with equal tables one
    shared tuple, and the entry holds the tuple so its id stays its own.
    """

    def __init__(self, size: int = TABLE_TEXTS_CACHE) -> None:
        self._size = size
        self._known: OrderedDict[int, tuple[tuple[Segment, ...], str, str]] = OrderedDict()

    def __call__(self, segments: tuple[Segment, ...]) -> tuple[str, str]:
        entry = self._known.get(id(segments))
        if entry is not None and entry[0] is segments:
            return entry[1], entry[2]
        from segcli.journal import segments_json

        texts = (segments_json(segments), json.dumps([s.payload() for s in segments]))
        self._known[id(segments)] = (segments, *texts)
        if len(self._known) > self._size:
            self._known.popitem(last=False)
        return texts


class RequestBodies:
    """The request body of a batch for one run's settings."""

    def __init__(
        self, *, update: bool, trained_slice_id: str | None = None, tables: TableTexts | None = None
    ) -> None:
        self.update = update
        self.trained_slice_id = trained_slice_id
        self.tables = tables if tables is not None else TableTexts()

    def json(self, batch: Batch) -> bytes:
        """The batch's JSON (a multipart batch's ``serialized_request`` part)."""
        items = ", ".join(self.segmentation(e.item) for e in batch.entries)
        parts = [f'"update": {"true" if self.update else "false"}', f'"segmentations": [{items}]']
        if not batch.remote:
            # Key order as the official client writes it: a JSON batch leads
            # with "update", a multipart serialized_request with "segmentations".
            parts.reverse()
        if self.trained_slice_id:
            parts.append(f'"trained_slice_id": {json.dumps(self.trained_slice_id)}')
        return ("{" + ", ".join(parts) + "}").encode("ascii")

    def segmentation(self, item: MaskItem) -> str:
        """``json.dumps(item.payload())``, with the table's part from the cache."""
        annotations = self.tables(item.segments)[1]
        return (
            f'{{"type": "mask", "mask_url": {json.dumps(item.mask)}, '
            f'"annotations": {annotations}, "annotation_id": {json.dumps(item.annotation_id)}, '
            f'"reference_id": {json.dumps(item.reference_id)}}}'
        )

    def files(self, batch: Batch) -> list[tuple[str, bytes]]:
        """A local batch's files: (path as written in ``mask_url``, the bytes inspected)."""
        return [(e.item.mask, e.data or b"") for e in batch.entries]

    def size(self, batch: Batch) -> tuple[str, int]:
        """The body's kind and its length in bytes, as it would be sent."""
        body = self.json(batch)
        if batch.remote:
            return "json", len(body)
        return "multipart", len(encode_multipart(body, self.files(batch))[0])


def encode_multipart(
    serialized_request: Mapping[str, Any] | bytes,
    files: Sequence[tuple[str, bytes]],
    *,
    boundary: str | None = None,
) -> tuple[bytes, str]:
    """The multipart body the official client sends, and its Content-Type.

    Built by hand rather than with aiohttp ``FormData`` so the part headers
    match the official client's byte for byte whatever aiohttp version is
    installed: the filename
    is the path percent-encoded as UTF-8 with no safe characters
    (``/a b.png`` -> ``%2Fa%20b.png``), and the server pairs each mask with
    its segmentation by that name.
    """
    boundary = boundary or uuid.uuid4().hex
    chunks: list[bytes] = []

    def part(headers: str, data: bytes) -> None:
        chunks.append(f"--{boundary}\r\n{headers}\r\n\r\n".encode())
        chunks.append(data)
        chunks.append(b"\r\n")

    part(
        "Content-Type: application/json\r\n"
        'Content-Disposition: form-data; name="serialized_request"',
        serialized_request
        if isinstance(serialized_request, bytes)
        else json.dumps(serialized_request).encode("utf-8"),
    )
    for path, data in files:
        filename = urllib.parse.quote(path, safe="", encoding="utf-8")
        part(
            "Content-Type: image/png\r\n"
            f'Content-Disposition: form-data; name="mask"; filename="{filename}"',
            data,
        )
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"
