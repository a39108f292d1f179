"""``segcli serve --max-inflight N`` and ``--no-decode-masks``: a service's capacity and CPU."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from segcli.server import ALL_ROUTES, FaultConfig, LocalServer
from tests.helpers.pngs import chunk, chunks, find
from tests.helpers.server_fixture import (
    SERVER_KEY,
    api,
    multipart,
    png,
    seeded_dataset,
    segmentation,
)


async def _concurrent_annotates(server: LocalServer, dataset: str, refs: list[str]) -> list[int]:
    """One JSON annotate per reference_id, all sent at once; their statuses."""
    async with httpx.AsyncClient(
        base_url=server.url + "/", auth=(SERVER_KEY, ""), timeout=30
    ) as client:
        replies = await asyncio.gather(
            *(
                client.post(
                    f"dataset/{dataset}/annotate",
                    json={"segmentations": [segmentation(r, f"s3://b/{r}.png")]},
                )
                for r in refs
            )
        )
    for reply in replies:
        if reply.status_code == 429:
            assert reply.headers["Retry-After"] == "0.4"
            assert "takes 2 at once" in reply.json()["error"]
    return [reply.status_code for reply in replies]


def test_above_max_inflight_requests_are_refused_with_retry_after(
    make_nucleus_server: Callable[..., LocalServer],
) -> None:
    # Each request takes 0.5 s, so the first two are still in flight when
    # the other three arrive.
    server = make_nucleus_server(
        max_inflight=2, faults=FaultConfig(latency_s=0.5, retry_after_s=0.4, routes=ALL_ROUTES)
    )
    refs = [f"r{i}" for i in range(5)]
    dataset = seeded_dataset(server, refs)
    statuses = asyncio.run(_concurrent_annotates(server, dataset, refs))
    assert sorted(statuses) == [200, 200, 429, 429, 429]
    stored = {row["reference_id"] for row in server.store.segmentations(dataset)}
    assert len(stored) == 2  # a refused request stored nothing
    capacity = server.capacity
    assert (capacity.peak, capacity.admitted, capacity.refused, capacity.in_flight) == (2, 2, 3, 0)
    # Once they are answered, there is room again.
    with api(server) as client:
        assert client.get(f"dataset/{dataset}/info").status_code == 200


def test_without_max_inflight_nothing_is_refused(
    make_nucleus_server: Callable[..., LocalServer],
) -> None:
    server = make_nucleus_server(faults=FaultConfig(latency_s=0.3, routes=ALL_ROUTES))
    refs = [f"r{i}" for i in range(12)]
    dataset = seeded_dataset(server, refs)
    assert asyncio.run(_concurrent_annotates(server, dataset, refs)) == [200] * 12
    assert server.capacity.peak == 12


def _undecodable(data: bytes) -> bytes:
    """The PNG with its pixel data replaced by bytes that do not inflate, CRC still right."""
    start, length = find(data, b"IDAT")
    return data[:start] + chunk(b"IDAT", b"\x78\x9c" + b"\xff" * 30) + data[start + 12 + length :]


def _upload(server: LocalServer, mask: bytes) -> httpx.Response:
    dataset = seeded_dataset(server, ["a"])
    with api(server) as client:
        return client.post(
            f"dataset/{dataset}/annotate",
            files=multipart([segmentation("a", "a.png")], [("a.png", mask)]),
        )


@pytest.mark.parametrize("decode", [True, False], ids=["decoding", "not-decoding"])
def test_no_decode_masks_checks_the_header_but_not_the_pixels(
    make_nucleus_server: Callable[..., LocalServer], tmp_path: Path, decode: bool
) -> None:
    server = make_nucleus_server(data_dir=tmp_path / str(decode), decode_masks=decode)
    good = png((0, 1), size=(6, 4))
    assert [kind for _, kind, _ in chunks(good)].count(b"IDAT") == 1
    reply = _upload(server, _undecodable(good))
    assert reply.status_code == 200
    errors = reply.json()["errors"]
    if decode:
        assert len(errors) == 1 and "mask-corrupt" in errors[0]
    else:
        assert errors == []  # its pixels were never looked at
        (row,) = server.store.segmentations(reply.json()["dataset_id"])
        assert (row["width"], row["height"]) == (6, 4)  # the header's


@pytest.mark.parametrize(
    ("mask", "needle"),
    [
        (b"not a png at all", "mask-not-png"),
        (png((0, 1), mode="RGB"), "colour type 2"),
    ],
    ids=["not-png", "rgb"],
)
def test_no_decode_masks_still_refuses_what_the_header_shows(
    make_nucleus_server: Callable[..., LocalServer], mask: bytes, needle: str
) -> None:
    server = make_nucleus_server(decode_masks=False)
    reply = _upload(server, mask)
    (error,) = reply.json()["errors"]
    assert needle in error


def test_strict_masks_needs_decoding(tmp_path: Path) -> None:
    from segcli.server import ServerConfig

    with pytest.raises(ValueError, match="decode"):
        ServerConfig(data_dir=tmp_path, api_keys=("k",), strict_masks=True, decode_masks=False)
