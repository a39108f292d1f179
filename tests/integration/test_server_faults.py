"""Fault injection: deterministic with a seed, and a faulted write stores nothing."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from segcli.server import ALL_ROUTES, FaultConfig, LocalServer
from tests.helpers.server_fixture import api, multipart, png, seeded_dataset, segmentation

MIXED = {"rate_503": 0.2, "rate_429": 0.15, "rate_500": 0.15, "rate_504": 0.1}


def _statuses(server: LocalServer, n: int) -> tuple[list[int], str, list[str]]:
    """Send n one-item annotate requests in order; return their statuses."""
    refs = [f"r{i:02d}" for i in range(n)]
    with api(server) as client:
        dataset = seeded_dataset(server, refs)
        statuses = []
        for ref in refs:
            seg = segmentation(ref, f"{ref}.png")
            reply = client.post(
                f"dataset/{dataset}/annotate", files=multipart([seg], [(f"{ref}.png", png())])
            )
            statuses.append(reply.status_code)
    return statuses, dataset, refs


def test_the_same_seed_gives_the_same_faults(
    make_nucleus_server: Callable[..., LocalServer], tmp_path_factory: pytest.TempPathFactory
) -> None:
    runs = []
    for seed in (11, 11, 12):
        server = make_nucleus_server(
            data_dir=tmp_path_factory.mktemp("seed"),
            faults=FaultConfig(seed=seed, retry_after_s=0.5, **MIXED),
        )
        runs.append(_statuses(server, 40)[0])
        server.stop()
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    assert {200, 503, 429, 500, 504} <= set(runs[0])


def test_a_request_answered_with_an_error_stored_nothing(
    make_nucleus_server: Callable[..., LocalServer],
) -> None:
    server = make_nucleus_server(faults=FaultConfig(seed=5, **MIXED))
    statuses, dataset, refs = _statuses(server, 40)
    stored = {r["reference_id"] for r in server.store.segmentations(dataset)}
    assert stored == {ref for ref, status in zip(refs, statuses, strict=True) if status == 200}
    assert 0 < len(stored) < len(refs)
    masks = list((server.config.data_dir / "masks").iterdir())
    assert len(masks) == len(stored)  # no file left behind by a faulted request


def test_429_carries_retry_after(make_nucleus_server: Callable[..., LocalServer]) -> None:
    server = make_nucleus_server(faults=FaultConfig(rate_429=1.0, retry_after_s=0.25))
    with api(server) as client:
        reply = client.post("dataset/ds_any/annotate", json={"segmentations": []})
    assert reply.status_code == 429
    assert reply.headers["Retry-After"] == "0.25"
    assert reply.json()["error"]


def test_faults_hit_upload_routes_only_unless_told(
    make_nucleus_server: Callable[..., LocalServer], tmp_path_factory: pytest.TempPathFactory
) -> None:
    server = make_nucleus_server(faults=FaultConfig(rate_503=1.0))
    with api(server) as client:
        assert client.post("dataset/create", json={"name": "n"}).status_code == 200
        for route in ("annotate", "append", "model/prj_x/uploadPredictions"):
            assert client.post(f"dataset/ds_x/{route}", json={}).status_code == 503, route
        assert client.post("modelRun/run_x/predict", json={}).status_code == 503
    everywhere = make_nucleus_server(
        data_dir=tmp_path_factory.mktemp("all"), faults=FaultConfig(rate_503=1.0, routes=ALL_ROUTES)
    )
    with api(everywhere) as client:
        assert client.post("dataset/create", json={"name": "n"}).status_code == 503
    only_info = make_nucleus_server(
        data_dir=tmp_path_factory.mktemp("info"), faults=FaultConfig(rate_500=1.0, routes=("info",))
    )
    with api(only_info) as client:
        dataset = client.post("dataset/create", json={"name": "n"}).json()["dataset_id"]
        assert client.get(f"dataset/{dataset}/info").status_code == 500


def test_a_dropped_connection_cuts_the_response_and_stores_nothing(
    make_nucleus_server: Callable[..., LocalServer],
) -> None:
    server = make_nucleus_server(faults=FaultConfig(rate_drop=1.0))
    with api(server) as client:
        dataset = seeded_dataset(server, ["a"])
        seg = segmentation("a", "a.png")
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.post(f"dataset/{dataset}/annotate", files=multipart([seg], [("a.png", png())]))
        # the server itself is fine afterwards
        assert client.get(f"dataset/{dataset}/info").status_code == 200
    assert server.store.count("segmentations") == 0
    assert list((server.config.data_dir / "masks").iterdir()) == []


def test_a_lost_answer_cuts_the_connection_after_the_write_landed(
    make_nucleus_server: Callable[..., LocalServer],
) -> None:
    server = make_nucleus_server(faults=FaultConfig(rate_lost=1.0))
    with api(server) as client:
        dataset = seeded_dataset(server, ["a"])
        seg = segmentation("a", "a.png")
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.post(f"dataset/{dataset}/annotate", files=multipart([seg], [("a.png", png())]))
        # a retry (its answer lost as well) finds the first copy in place
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.post(f"dataset/{dataset}/annotate", files=multipart([seg], [("a.png", png())]))
    (row,) = server.store.segmentations(dataset)
    assert row["reference_id"] == "a"
    assert len(list((server.config.data_dir / "masks").iterdir())) == 1


def test_a_stall_outlasts_the_client_timeout_and_stores_nothing(
    make_nucleus_server: Callable[..., LocalServer],
) -> None:
    server = make_nucleus_server(faults=FaultConfig(rate_stall=1.0, stall_s=0.4))
    with api(server) as client:
        dataset = seeded_dataset(server, ["a"])
        route = f"dataset/{dataset}/annotate"
        body = {"segmentations": [segmentation("a", "s3://m/a.png")]}
        with pytest.raises(httpx.ReadTimeout):
            client.post(route, json=body, timeout=0.1)
        started = time.monotonic()
        patient = client.post(route, json=body)
        waited = time.monotonic() - started
    assert patient.status_code == 504
    assert waited >= 0.4
    assert server.store.count("segmentations") == 0


def test_latency_delays_upload_routes(make_nucleus_server: Callable[..., LocalServer]) -> None:
    server = make_nucleus_server(faults=FaultConfig(latency_s=0.3, latency_jitter_s=0.1))
    with api(server) as client:
        started = time.monotonic()
        reply = client.post("dataset/ds_x/annotate", json={})
        slow = time.monotonic() - started
        started = time.monotonic()
        client.get("dataset/ds_x/info")
        fast = time.monotonic() - started
    assert reply.status_code == 404  # delayed, then handled normally
    assert slow >= 0.3
    assert fast < 0.3


def test_fault_settings_are_checked() -> None:
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        FaultConfig(rate_503=1.5)
    with pytest.raises(ValueError, match="more than 1"):
        FaultConfig(rate_503=0.6, rate_500=0.6)
    with pytest.raises(ValueError, match="negative"):
        FaultConfig(stall_s=-1)


def test_stop_does_not_wait_for_a_stalled_request(
    make_nucleus_server: Callable[..., LocalServer],
) -> None:
    server = make_nucleus_server(faults=FaultConfig(rate_stall=1.0, stall_s=120.0))
    with api(server) as client, pytest.raises(httpx.ReadTimeout):
        client.post("dataset/ds_x/annotate", json={}, timeout=0.2)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 1.5
