"""Masks read from real local servers: S3 (moto), GCS (emulator), signed HTTP URLs, memory://."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import fsspec
import numpy as np
import pytest

from segcli.checks import inspect_item
from segcli.model import MaskItem, Problem, Segment, Source
from segcli.png import inspect_png
from segcli.storage import MaskReadError, read_mask
from tests.helpers.pngs import gray_png, smooth_regions, unique_counts
from tests.helpers.remote_servers import GcsServer, S3Server, SignedUrlServer

ARRAY = smooth_regions(64, regions=5, seed=4)
PNG = gray_png(ARRAY)
SEGMENTS = tuple(Segment(i, f"class{i}") for i in range(5))


def item_for(uri: str) -> MaskItem:
    return MaskItem(reference_id="img", mask=uri, segments=SEGMENTS, source=Source("m.jsonl", 1))


def unique(name: str) -> str:
    """A fresh object name: the servers live for the whole session."""
    return f"{uuid.uuid4().hex[:8]}/{name}"


def only(problems: tuple[Problem, ...]) -> Problem:
    assert len(problems) == 1, problems
    return problems[0]


# --------------------------------------------------------------------------
# S3


def test_s3_mask_is_read_through_the_endpoint(s3_server: S3Server) -> None:
    uri = s3_server.put(unique("mask.png"), PNG)
    data = read_mask(uri, storage_options=s3_server.storage_options)
    assert data == PNG
    assert inspect_png(data).counts == unique_counts(ARRAY)


def test_s3_mask_checks_clean_through_inspect_item(s3_server: S3Server) -> None:
    uri = s3_server.put(unique("mask.png"), PNG)
    assert inspect_item(item_for(uri), None, storage_options=s3_server.storage_options) == ()


def test_s3_missing_key_is_mask_unreadable(s3_server: S3Server) -> None:
    uri = f"s3://{s3_server.bucket}/{unique('absent.png')}"
    p = only(inspect_item(item_for(uri), None, storage_options=s3_server.storage_options))
    assert p.code == "mask-unreadable"
    assert "not found" in p.message
    assert uri in p.message


def test_s3_missing_bucket_is_mask_unreadable(s3_server: S3Server) -> None:
    uri = "s3://no-such-bucket-segcli/mask.png"
    with pytest.raises(MaskReadError, match="not found"):
        read_mask(uri, storage_options=s3_server.storage_options)


def test_s3_prefix_is_a_folder(s3_server: S3Server) -> None:
    folder = unique("dir")
    s3_server.put(f"{folder}/mask.png", PNG)
    with pytest.raises(MaskReadError, match="is a folder"):
        read_mask(f"s3://{s3_server.bucket}/{folder}", storage_options=s3_server.storage_options)


def test_s3_object_over_max_bytes(s3_server: S3Server) -> None:
    uri = s3_server.put(unique("mask.png"), PNG)
    with pytest.raises(MaskReadError, match="more than the 100 a mask may be"):
        read_mask(uri, storage_options=s3_server.storage_options, max_bytes=100)


def test_s3_html_object_is_not_png(s3_server: S3Server) -> None:
    uri = s3_server.put(unique("mask.png"), b"<!doctype html><html>Access denied</html>")
    p = only(inspect_item(item_for(uri), None, storage_options=s3_server.storage_options))
    assert p.code == "mask-not-png"
    assert "HTML page" in p.message


# --------------------------------------------------------------------------
# GCS


def test_gcs_mask_is_read_through_the_emulator(gcs_server: GcsServer) -> None:
    uri = gcs_server.put(unique("mask.png"), PNG)
    data = read_mask(uri, storage_options=gcs_server.storage_options)
    assert data == PNG


def test_gcs_alias_and_inspect_item(gcs_server: GcsServer) -> None:
    uri = gcs_server.put(unique("mask.png"), PNG)
    assert inspect_item(item_for(uri), None, storage_options=gcs_server.storage_options) == ()
    # gcs:// is the same filesystem; its options may be keyed either way.
    gcs_uri = "gcs://" + uri.removeprefix("gs://")
    assert read_mask(gcs_uri, storage_options=gcs_server.storage_options) == PNG


def test_gcs_missing_object_is_mask_unreadable(gcs_server: GcsServer) -> None:
    uri = f"gs://{gcs_server.bucket}/{unique('absent.png')}"
    p = only(inspect_item(item_for(uri), None, storage_options=gcs_server.storage_options))
    assert p.code == "mask-unreadable"
    assert "not found" in p.message


def test_gcs_folder_is_refused(gcs_server: GcsServer) -> None:
    folder = unique("dir")
    gcs_server.put(f"{folder}/mask.png", PNG)
    with pytest.raises(MaskReadError, match="is a folder"):
        read_mask(f"gs://{gcs_server.bucket}/{folder}", storage_options=gcs_server.storage_options)


# --------------------------------------------------------------------------
# Signed HTTP URLs

SIGNED_QUERY = "?X-Amz-Signature=abc%2Fdef&X-Amz-Expires=60&a=b%20c"


def test_signed_url_is_requested_byte_for_byte_with_one_get(
    signed_url_server: SignedUrlServer,
) -> None:
    path = f"/{unique('mask.png')}"
    url = signed_url_server.put(path + SIGNED_QUERY, PNG)
    assert read_mask(url) == PNG
    lines = signed_url_server.lines_for(path)
    # Exactly one request: a GET of the target as written (%2F and %20 kept
    # as they were), and never a HEAD, which a presigned GET URL refuses.
    assert lines == [f"GET {path}{SIGNED_QUERY} HTTP/1.1\r\n".encode()]


def test_signed_url_through_inspect_item_is_clean(signed_url_server: SignedUrlServer) -> None:
    path = f"/{unique('mask.png')}"
    url = signed_url_server.put(path + SIGNED_QUERY, PNG)
    assert inspect_item(item_for(url), None) == ()
    assert [line.split(b" ")[0] for line in signed_url_server.lines_for(path)] == [b"GET"]


def test_altered_query_would_be_refused(signed_url_server: SignedUrlServer) -> None:
    # The fixture itself: a re-encoded query (%2F -> /) does not match.
    path = f"/{unique('mask.png')}"
    signed_url_server.put(path + SIGNED_QUERY, PNG)
    altered = signed_url_server.base_url + path + SIGNED_QUERY.replace("%2F", "/")
    p = only(inspect_item(item_for(altered), None))
    assert p.code == "mask-unreadable"
    assert "HTTP 403" in p.message


@pytest.mark.parametrize(
    ("status", "says"),
    [
        (403, "a signed URL may have expired"),
        (404, "nothing at this URL"),
        (500, "try again later"),
        (410, "refused the request"),
    ],
)
def test_http_error_statuses_are_clean_problems(
    signed_url_server: SignedUrlServer, status: int, says: str
) -> None:
    path = f"/{unique('mask.png')}"
    url = signed_url_server.put(path + SIGNED_QUERY, b"<Error/>", status=status)
    p = only(inspect_item(item_for(url), None))
    assert p.code == "mask-unreadable"
    assert f"HTTP {status}" in p.message
    assert says in p.message
    # The signature is a credential: it stays out of messages and reports.
    assert "abc%2Fdef" not in p.message
    assert path in p.message


def test_html_body_is_not_png(signed_url_server: SignedUrlServer) -> None:
    path = f"/{unique('mask.png')}"
    page = b"<!DOCTYPE html>\n<html><body>Please sign in</body></html>"
    url = signed_url_server.put(path + SIGNED_QUERY, page, content_type="text/html")
    p = only(inspect_item(item_for(url), None))
    assert p.code == "mask-not-png"
    assert "HTML page" in p.message


def test_http_body_over_max_bytes(signed_url_server: SignedUrlServer) -> None:
    url = signed_url_server.put(f"/{unique('big.png')}", PNG)
    with pytest.raises(MaskReadError, match="more than the 10 a mask may be"):
        read_mask(url, max_bytes=10)


def test_unreachable_host_is_mask_unreadable() -> None:
    with socket.socket() as s:  # a port that was free a moment ago: nobody listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/mask.png{SIGNED_QUERY}"
    p = only(inspect_item(item_for(url), None))
    assert p.code == "mask-unreadable"
    assert "cannot reach" in p.message
    assert "abc%2Fdef" not in p.message


# --------------------------------------------------------------------------
# memory://


@pytest.fixture
def memory_root() -> Iterator[str]:
    root = f"/segcli-tests-{uuid.uuid4().hex[:8]}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_memory_mask(memory_root: str) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe(f"{memory_root}/mask.png", PNG)
    uri = f"memory://{memory_root}/mask.png"
    assert read_mask(uri) == PNG
    assert inspect_item(item_for(uri), None) == ()


def test_memory_missing_and_folder(memory_root: str) -> None:
    fsspec.filesystem("memory").pipe(f"{memory_root}/d/mask.png", PNG)
    p = only(inspect_item(item_for(f"memory://{memory_root}/nope.png"), None))
    assert p.code == "mask-unreadable"
    with pytest.raises(MaskReadError, match="is a folder"):
        read_mask(f"memory://{memory_root}/d")


def test_memory_bad_bytes_get_their_code(memory_root: str) -> None:
    fsspec.filesystem("memory").pipe(f"{memory_root}/mask.png", gray_png(np.full((3, 3), 9)))
    found = inspect_item(item_for(f"memory://{memory_root}/mask.png"), None)
    assert [p.code for p in found] == [
        "value-without-segment",
        "segment-not-in-mask",
        "values-not-contiguous",
    ]
    assert "9 (9 px)" in found[0].message
