"""The shortcuts taken for speed give exactly what the plain way gives.

Each cache or hand-built encoding below has a slow, obvious twin; these
tests hold them equal, including the inputs that look equal in Python but
are not the same JSON (``True == 1 == 1.0``).
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest

from segcli.batching import Batch, Entry
from segcli.journal import fingerprint
from segcli.manifest import load_manifest
from segcli.model import MaskItem, Segment, Source
from segcli.server.bodies import parse_multipart
from segcli.server.ingest import SegmentsMemo, check_fields
from segcli.wire import RequestBodies

# -- journal fingerprint ----------------------------------------------------


def _fingerprint_v1(item: MaskItem, digest: str | None) -> str:
    """The fingerprint as version 1 first wrote it: one json.dumps of the whole dict."""
    canonical = json.dumps(
        {
            "v": 1,
            "mask": item.mask,
            "mask_digest": digest,
            "segments": [s.payload() for s in item.segments],
            "annotation_id": item.annotation_id,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _random_items(seed: int, count: int) -> list[MaskItem]:
    rng = random.Random(seed)
    labels = ["bg", "café", "\U0001f697 car", 'q"uote\\', "tab\tx"]
    metadata = [None, {"b": 1, "a": [1.5, True, None, "ü"]}, {"z": {"y": "x"}}]
    items = []
    for n in range(count):
        segments = tuple(
            Segment(i, rng.choice(labels), rng.choice(metadata)) for i in range(rng.randint(0, 4))
        )
        items.append(
            MaskItem(
                reference_id=rng.choice(["r", "ü/1", 'a"b']) + str(n),
                mask=rng.choice(["s3://b/x.png", "/tmp/ä b.png", "https://h/m.png?sig=a%2Fb"]),
                segments=segments,
                source=Source("m.jsonl", n + 1),
                annotation_id=rng.choice([None, "ann", "é"]),
            )
        )
    return items


def test_fingerprint_bytes_are_those_version_1_wrote() -> None:
    # A journal written before must still recognise what already landed.
    for item in _random_items(1, 300):
        for digest in (None, "ab" * 32):
            assert fingerprint(item, digest) == _fingerprint_v1(item, digest)


# -- request bodies ------------------------------------------------------------


@pytest.mark.parametrize("remote", [True, False])
@pytest.mark.parametrize("update", [True, False])
def test_request_json_is_what_json_dumps_writes(remote: bool, update: bool) -> None:
    bodies = RequestBodies(update=update, trained_slice_id="slc_ü")
    items = _random_items(2, 20)
    batch = Batch(remote=remote, entries=[Entry(item, "fp") for item in items])
    segmentations = [item.payload() for item in items]
    body: dict[str, object] = (
        {"update": update, "segmentations": segmentations}
        if remote
        else {"segmentations": segmentations, "update": update}
    )
    body["trained_slice_id"] = "slc_ü"
    assert bodies.json(batch) == json.dumps(body).encode()


# -- manifest: tables shared by content ----------------------------------------


def test_equal_tables_are_shared_but_true_and_1_0_are_not_1(tmp_path: Path) -> None:
    table = [{"index": 0, "label": "bg"}, {"index": 1, "label": "car"}]
    lines = [
        {"reference_id": "a", "mask_url": "s3://b/a.png", "annotations": table},
        {"reference_id": "b", "mask_url": "s3://b/b.png", "annotations": table},
        {
            "reference_id": "c",
            "mask_url": "s3://b/c.png",
            "annotations": [{"index": 0, "label": "bg"}, {"index": True, "label": "car"}],
        },
        {
            "reference_id": "d",
            "mask_url": "s3://b/d.png",
            "annotations": [{"index": 0, "label": "bg"}, {"index": 1.0, "label": "car"}],
        },
    ]
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    a, b, c, d = load_manifest(str(path))
    assert a.segments is b.segments  # one checked tuple for equal tables
    assert not a.problems and not b.problems
    for item in (c, d):
        assert [p.code for p in item.problems] == ["bad-segment-index"], item.problems
        assert item.segments == (Segment(0, "bg"),)


# -- server: one table checked once per request --------------------------------


def _seg(ref: str, segments: list[dict[str, object]]) -> dict[str, object]:
    return {
        "type": "mask",
        "mask_url": f"s3://b/{ref}.png",
        "annotations": segments,
        "annotation_id": None,
        "reference_id": ref,
    }


@pytest.mark.parametrize("bad_index", [True, 1.0])
def test_a_table_equal_to_a_checked_one_is_still_refused_when_its_types_differ(
    bad_index: object,
) -> None:
    memo = SegmentsMemo()
    good = check_fields(
        _seg("a", [{"label": "bg", "index": 0}, {"label": "car", "index": 1}]), memo
    )
    assert not isinstance(good, str)
    same = check_fields(
        _seg("b", [{"label": "bg", "index": 0}, {"label": "car", "index": 1}]), memo
    )
    assert not isinstance(same, str) and same.annotations is good.annotations
    sneaky = [{"label": "bg", "index": 0}, {"label": "car", "index": bad_index}]
    assert check_fields(_seg("c", sneaky), memo) == check_fields(_seg("c", sneaky))
    assert isinstance(check_fields(_seg("c", sneaky), memo), str)


def test_metadata_tables_are_never_shared() -> None:
    memo = SegmentsMemo()
    first = check_fields(_seg("a", [{"label": "bg", "index": 0, "metadata": {"n": 1}}]), memo)
    second = check_fields(_seg("b", [{"label": "bg", "index": 0, "metadata": {"n": True}}]), memo)
    assert not isinstance(first, str) and not isinstance(second, str)
    assert first.annotations[0]["metadata"] == {"n": 1}
    assert second.annotations[0]["metadata"] == {"n": True}
    assert json.dumps(second.annotations) != json.dumps(first.annotations)


# -- server: multipart bodies --------------------------------------------------


def _part(headers: str, data: bytes) -> bytes:
    return b"--xyz\r\n" + headers.encode() + b"\r\n\r\n" + data + b"\r\n"


def test_multipart_parts_fields_files_preamble_and_epilogue() -> None:
    body = (
        b"a preamble to ignore\r\n"
        + _part('Content-Disposition: form-data; name="serialized_request"', b'{"a": 1}')
        + _part(
            'content-disposition: form-data; name="mask";\r\n filename="%2Fa%20b.png"\r\n'
            "Content-Type: image/png",
            b"\x89PNG\r\n--xy not a delimiter\r\n",
        )
        + _part('Content-Disposition: form-data; name="mask"; filename="e.png"', b"")
        + b"--xyz--\r\nan epilogue\r\n"
    )
    parsed = parse_multipart(body, "xyz", max_files=10)
    assert parsed.fields == {"serialized_request": b'{"a": 1}'}
    assert [(f.filename, f.data) for f in parsed.files] == [
        ("/a b.png", b"\x89PNG\r\n--xy not a delimiter\r\n"),
        ("e.png", b""),
    ]


@pytest.mark.parametrize(
    "body",
    [
        b"no delimiter at all",
        _part('Content-Disposition: form-data; name="a"', b"x"),  # never closed
        b"--xyz\r\nContent-Disposition: form-data; name=a\r\nx\r\n--xyz--\r\n",  # no blank line
        b"--xyzjunk\r\n\r\nx\r\n--xyz--\r\n",  # a delimiter line with trailing junk
        b"--xyz\r\nno colon here\r\n\r\nx\r\n--xyz--\r\n",
    ],
)
def test_malformed_multipart_is_an_http_400(body: bytes) -> None:
    from segcli.server.responses import HttpError

    with pytest.raises(HttpError) as caught:
        parse_multipart(body, "xyz", max_files=10)
    assert caught.value.status == 400


def test_nested_multipart_and_too_many_files_are_refused() -> None:
    from segcli.server.responses import HttpError

    nested = _part(
        'Content-Disposition: form-data; name="x"\r\nContent-Type: multipart/mixed; boundary=q',
        b"--q--",
    )
    with pytest.raises(HttpError, match="Nested"):
        parse_multipart(nested + b"--xyz--\r\n", "xyz", max_files=10)
    files = b"".join(
        _part(f'Content-Disposition: form-data; name="mask"; filename="{n}.png"', b"p")
        for n in range(3)
    )
    with pytest.raises(HttpError, match="At most 2 files"):
        parse_multipart(files + b"--xyz--\r\n", "xyz", max_files=2)


# -- client: the fixed auth header stays secret -----------------------------------


@pytest.mark.parametrize("which", ["api_key", "limited_access_key"])
def test_the_auth_header_never_shows_in_a_repr(which: str) -> None:
    import asyncio
    import base64

    from segcli.client import NucleusClient

    key = "k-3f9a-never-shown"
    keys: dict[str, Any] = {which: key}
    client = NucleusClient("http://127.0.0.1:1", **keys)
    shown = repr(client) + repr(vars(client))
    assert key not in shown
    assert base64.b64encode(f"{key}:".encode()).decode() not in shown
    asyncio.run(client.aclose())
