"""Multipart masks, body limits, malformed bodies, path safety and async jobs."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from segcli.server import LocalServer, ServerConfig
from segcli.server.store import Store
from tests.helpers.server_fixture import (
    SERVER_KEY,
    api,
    multipart,
    new_dataset,
    png,
    segmentation,
    wait_until,
)

# -- multipart masks ----------------------------------------------------------


def test_local_masks_are_paired_by_filename_checked_and_stored(
    nucleus_server: LocalServer,
) -> None:
    names = [f"/data/masks/img {i}.png" for i in range(3)] + ["/data/ünï côde.png"]
    refs = [f"img-{i}" for i in range(4)]
    masks = [png((0, 1)), png((1,)), png((0,), mode="P"), png((1, 0))]
    segs = [segmentation(r, n) for r, n in zip(refs, names, strict=True)]
    with api(nucleus_server) as client:
        dataset = new_dataset(client, refs)
        # parts in a different order than the segmentations: pairing is by name
        files = list(zip(names, masks, strict=True))[::-1]
        body = client.post(f"dataset/{dataset}/annotate", files=multipart(segs, files)).json()
    assert body == {
        "dataset_id": dataset,
        "annotations_processed": 4,
        "annotations_ignored": 0,
        "errors": [],
    }
    rows = {r["reference_id"]: r for r in nucleus_server.store.segmentations(dataset)}
    for ref, name, data in zip(refs, names, masks, strict=True):
        assert rows[ref]["mask_url"] == name  # as given
        stored = Path(rows[ref]["mask_file"])
        assert stored.parent == nucleus_server.config.data_dir / "masks"
        assert stored.read_bytes() == data
        assert (rows[ref]["width"], rows[ref]["height"]) == (8, 4)


def test_unencoded_absolute_file_names_still_pair(nucleus_server: LocalServer) -> None:
    # httpx (unlike aiohttp) sends the file name as is, leading slash and all
    seg = segmentation("a", "/abs/path/a.png")
    request = json.dumps({"segmentations": [seg], "update": False})
    files = [
        ("serialized_request", (None, request, "application/json")),
        ("mask", ("/abs/path/a.png", png(), "image/png")),
    ]
    with api(nucleus_server) as client:
        dataset = new_dataset(client, ["a"])
        body = client.post(f"dataset/{dataset}/annotate", files=files).json()
    assert body["annotations_processed"] == 1, body


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (png((0, 1), mode="RGB"), "(mask-mode)"),
        (png((0, 1, 7)), "Pixel values 7"),
        (b"GIF89a not a png at all", "mask-not-png"),
        (png((0, 1))[:-30], "mask-"),
    ],
    ids=["rgb", "value-without-segment", "not-png", "truncated"],
)
def test_bad_masks_are_named_in_errors_and_not_stored(
    make_nucleus_server: Callable[..., LocalServer], data: bytes, fragment: str
) -> None:
    # strict_masks: a value without a segment is refused too (--strict-masks)
    nucleus_server = make_nucleus_server(strict_masks=True)
    segs = [segmentation("good", "good.png"), segmentation("bad", "bad.png")]
    with api(nucleus_server) as client:
        dataset = new_dataset(client, ["good", "bad"])
        files = multipart(segs, [("good.png", png()), ("bad.png", data)])
        body = client.post(f"dataset/{dataset}/annotate", files=files).json()
    assert body["annotations_processed"] == 1
    assert len(body["errors"]) == 1
    error = json.loads(body["errors"][0])
    assert error["annotation"]["reference_id"] == "bad"
    assert fragment in error["error"]
    assert [r["reference_id"] for r in nucleus_server.store.segmentations(dataset)] == ["good"]
    assert len(list((nucleus_server.config.data_dir / "masks").iterdir())) == 1


def test_a_value_without_a_segment_is_accepted_unless_strict(
    make_nucleus_server: Callable[..., LocalServer], tmp_path: Path
) -> None:
    # As the service: the official client's test mask holds 0, 1, 2 with segments for 1, 2.
    seg = segmentation("a", "a.png", (1, 2))
    for strict, processed in ((False, 1), (True, 0)):
        server = make_nucleus_server(strict_masks=strict, data_dir=tmp_path / str(strict))
        with api(server) as client:
            dataset = new_dataset(client, ["a"])
            body = client.post(
                f"dataset/{dataset}/annotate", files=multipart([seg], [("a.png", png((0, 1, 2)))])
            ).json()
        assert body["annotations_processed"] == processed, (strict, body)
        assert len(body["errors"]) == 1 - processed
        server.stop()


def test_unpaired_files_and_segmentations_are_errors(nucleus_server: LocalServer) -> None:
    segs = [segmentation("a", "a.png"), segmentation("b", "b.png")]
    with api(nucleus_server) as client:
        dataset = new_dataset(client, ["a", "b"])
        files = multipart(segs, [("a.png", png()), ("stray.png", png())])
        body = client.post(f"dataset/{dataset}/annotate", files=files).json()
    assert body["annotations_processed"] == 1
    messages = [json.loads(e)["error"] for e in body["errors"]]
    assert any("No file part is named 'b.png'" in m for m in messages)
    assert any("'stray.png' matches no segmentation" in m for m in messages)


def test_ten_files_pass_and_eleven_are_400_with_nothing_stored(
    nucleus_server: LocalServer,
) -> None:
    refs = [f"r{i}" for i in range(11)]
    segs = [segmentation(r, f"{r}.png") for r in refs]
    files = [(f"{r}.png", png()) for r in refs]
    with api(nucleus_server) as client:
        dataset = new_dataset(client, refs)
        eleven = client.post(f"dataset/{dataset}/annotate", files=multipart(segs, files))
        assert eleven.status_code == 400
        assert "10 files" in eleven.json()["error"]
        assert nucleus_server.store.count("segmentations") == 0
        ten = client.post(f"dataset/{dataset}/annotate", files=multipart(segs[:10], files[:10]))
    assert ten.json()["annotations_processed"] == 10
    assert len(list((nucleus_server.config.data_dir / "masks").iterdir())) == 10


def test_update_replaces_a_local_mask_and_removes_the_old_file(
    nucleus_server: LocalServer,
) -> None:
    with api(nucleus_server) as client:
        dataset = new_dataset(client, ["a"])
        route = f"dataset/{dataset}/annotate"
        client.post(route, files=multipart([segmentation("a", "a.png")], [("a.png", png())]))
        old = Path(nucleus_server.store.segmentations(dataset)[0]["mask_file"])
        seg = segmentation("a", "a.png", (0, 1, 2))
        ignored = client.post(route, files=multipart([seg], [("a.png", png((0, 2)))])).json()
        assert ignored["annotations_ignored"] == 1
        assert nucleus_server.store.segmentations(dataset)[0]["mask_file"] == str(old)
        files = multipart([seg], [("a.png", png((0, 2)))], update=True)
        updated = client.post(route, files=files).json()
    assert updated["annotations_processed"] == 1
    row = nucleus_server.store.segmentations(dataset)[0]
    assert Path(row["mask_file"]).read_bytes() == png((0, 2))
    assert not old.exists()
    assert [p.name for p in (nucleus_server.config.data_dir / "masks").iterdir()] == [
        Path(row["mask_file"]).name
    ]


def test_stored_masks_are_served_by_unguessable_name(nucleus_server: LocalServer) -> None:
    with api(nucleus_server) as client:
        dataset = new_dataset(client, ["a"])
        client.post(
            f"dataset/{dataset}/annotate",
            files=multipart([segmentation("a", "a.png")], [("a.png", png((1, 0)))]),
        )
        held = client.get(f"dataset/{dataset}/refloc/a").json()["annotations"]["segmentation"][0]
    # mask_url reads back as sent; the stored copy has a name the server made
    assert held["mask_url"] == "a.png"
    url = held["stored_mask_url"]
    assert url.startswith(nucleus_server.url + "/_masks/")
    served = httpx.get(url)
    assert served.status_code == 200 and served.content == png((1, 0))
    assert httpx.get(nucleus_server.url + "/_masks/" + "0" * 32 + ".png").status_code == 404
    assert httpx.get(nucleus_server.url + "/_masks/..%2Fnucleus.db").status_code == 404


# -- limits and malformed bodies -----------------------------------------------


@pytest.fixture
def small_server(make_nucleus_server: Callable[..., LocalServer]) -> LocalServer:
    return make_nucleus_server(max_body_bytes=50_000)


def test_a_body_over_the_limit_is_413_and_nothing_is_stored(small_server: LocalServer) -> None:
    big = png() + b"\0" * 60_000
    with api(small_server) as client:
        dataset = new_dataset(client, ["a"])
        files = multipart([segmentation("a", "a.png")], [("a.png", big)])
        reply = client.post(f"dataset/{dataset}/annotate", files=files)
    assert reply.status_code == 413
    assert reply.headers["content-type"].startswith("text/html")
    assert small_server.store.count("segmentations") == 0
    assert list((small_server.config.data_dir / "masks").iterdir()) == []


def test_a_chunked_body_is_counted_as_it_streams(small_server: LocalServer) -> None:
    padding = {"segmentations": [], "padding": "x" * 60_000}
    payload = json.dumps(padding).encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(payload), 4096):
            yield payload[start : start + 4096]

    with api(small_server) as client:
        dataset = new_dataset(client, ["a"])
        reply = client.post(
            f"dataset/{dataset}/annotate",
            content=chunks(),
            headers={"Content-Type": "application/json"},
        )
        assert "content-length" not in reply.request.headers
        assert reply.status_code == 413
        small = json.dumps({"segmentations": [segmentation("a", "s3://a")]}).encode()
        fine = client.post(
            f"dataset/{dataset}/annotate",
            content=iter([small]),
            headers={"Content-Type": "application/json"},
        )
    assert fine.json()["annotations_processed"] == 1


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/json", b"{not json"),
        ("application/json", b"[1, 2]"),
        ("application/json", b'{"segmentations": {"a": 1}}'),
        ("application/json", b'{"segmentations": [], "update": "yes"}'),
        ("application/json", b"\xff\xfe\x00"),
        ("multipart/form-data; boundary=xyz", b"garbage without any boundary"),
        ("multipart/form-data", b"--xyz\r\n\r\n"),
        (
            "multipart/form-data; boundary=xyz",
            b'--xyz\r\nContent-Disposition: form-data; name="mask"; filename="a.png"\r\n\r\nab',
        ),
        (
            "multipart/form-data; boundary=xyz",
            b'--xyz\r\nContent-Disposition: form-data; name="other"\r\n\r\n{}\r\n--xyz--\r\n',
        ),
        (
            "multipart/form-data; boundary=xyz",
            b'--xyz\r\nContent-Disposition: form-data; name="serialized_request"\r\n\r\n'
            b"{oops\r\n--xyz--\r\n",
        ),
    ],
    ids=[
        "bad-json",
        "json-list",
        "segmentations-not-list",
        "update-not-bool",
        "not-utf8",
        "no-boundary-match",
        "no-boundary-param",
        "truncated-part",
        "no-serialized-request",
        "serialized-request-not-json",
    ],
)
def test_malformed_bodies_are_400_never_500(
    nucleus_server: LocalServer, content_type: str, body: bytes
) -> None:
    with api(nucleus_server) as client:
        dataset = new_dataset(client, ["a"])
        reply = client.post(
            f"dataset/{dataset}/annotate", content=body, headers={"Content-Type": content_type}
        )
        assert reply.status_code == 400, reply.text
        assert reply.json()["error"]
        for route in ("dataset/create", "models/add", f"dataset/{dataset}/append"):
            other = client.post(route, content=b"{nope", headers={"Content-Type": content_type})
            assert other.status_code == 400, route
    assert nucleus_server.store.count("segmentations") == 0


# -- path safety --------------------------------------------------------------


def test_hostile_names_never_touch_paths(nucleus_server: LocalServer, tmp_path: Path) -> None:
    hostile = ["../../escape", "/etc/passwd", "..\\..\\win", "a/../../b"]
    files_before = {p for p in tmp_path.rglob("*") if "nucleus" not in p.parts}
    segs = [segmentation(r, f"../../{i}.png") for i, r in enumerate(hostile[:2])]
    segs += [segmentation(r, f"/abs/../{i}.png") for i, r in enumerate(hostile[2:], 2)]
    files = [(s["mask_url"], png()) for s in segs]
    with api(nucleus_server) as client:
        dataset = new_dataset(client, hostile)
        body = client.post(f"dataset/{dataset}/annotate", files=multipart(segs, files)).json()
        found = client.get(f"dataset/{dataset}/refloc/..%2F..%2Fescape").json()
        client.get(f"dataset/{dataset}/signedUrl/..%2F..%2Fx")
    assert body["annotations_processed"] == 4, body
    assert found["item"]["reference_id"] == "../../escape"
    masks_dir = nucleus_server.config.data_dir / "masks"
    for row in nucleus_server.store.segmentations(dataset):
        assert Path(row["mask_file"]).parent == masks_dir
        assert row["mask_url"].startswith(("../../", "/abs/"))  # kept as given
    assert {p for p in tmp_path.rglob("*") if "nucleus" not in p.parts} == files_before
    names = sorted(p.name for p in masks_dir.iterdir())
    assert len(names) == 4 and all(re.fullmatch(r"[0-9a-f]{32}\.png", n) for n in names)


# -- async jobs -----------------------------------------------------------------


def _put_ndjson(client: httpx.Client, dataset: str, request_id: str, objects: list[object]) -> str:
    signed = client.get(f"dataset/{dataset}/signedUrl/{request_id}").json()["signed_url"]
    body = "".join(json.dumps(o) + "\n" for o in objects)
    put = httpx.put(signed, content=body.encode())  # no auth, like a presigned URL
    assert put.status_code == 200, put.text
    return str(signed)


def _wait_for_job(client: httpx.Client, job_id: str) -> dict[str, str]:
    wait_until(lambda: client.get(f"job/{job_id}").json()["status"] != "Running")
    status: dict[str, str] = client.get(f"job/{job_id}").json()
    return status


def test_async_annotate_through_a_signed_url_and_a_job(nucleus_server: LocalServer) -> None:
    refs = [f"r{i}" for i in range(120)]
    segs: list[object] = [segmentation(r, f"s3://m/{r}.png") for r in refs]
    segs.append(segmentation("ghost", "s3://m/ghost.png"))
    with api(nucleus_server) as client:
        dataset = new_dataset(client, refs)
        signed = _put_ndjson(client, dataset, "a" * 32, segs)
        assert signed.startswith(nucleus_server.url + "/_upload/")
        assert httpx.put(signed, content=b"{}\n").status_code == 403  # single use
        started = client.post(
            f"dataset/{dataset}/annotate?async=1", json={"requestId": "a" * 32, "update": False}
        ).json()
        status = _wait_for_job(client, started["job_id"])
        errors = client.get(f"job/{started['job_id']}/errors").json()
        info = client.get(f"job/{started['job_id']}/info").json()
    assert set(started) == {"job_id", "job_last_known_status", "job_type", "job_creation_time"}
    assert started["job_id"].startswith("job_")
    assert started["job_last_known_status"] == "Running"
    assert status == {
        "job_id": started["job_id"],
        # Completed, the failure listed in its errors: the client raises on Errored_*
        "status": "Completed",
        "message": status["message"],
        "job_progress": "1.00",
        "completed_steps": "121",
        "total_steps": "121",
    }
    assert "120 processed" in status["message"]
    assert len(errors) == 1 and isinstance(errors[0], str)
    assert json.loads(errors[0])["annotation"]["reference_id"] == "ghost"
    assert info["job_id"] == started["job_id"] and info["job_last_known_status"] == "Completed"
    assert len(nucleus_server.store.segmentations(dataset)) == 120


def test_async_predictions_and_append_jobs(nucleus_server: LocalServer) -> None:
    with api(nucleus_server) as client:
        dataset = new_dataset(client, [])
        items = [{"reference_id": f"r{i}", "image_url": f"s3://i/{i}.jpg"} for i in range(3)]
        _put_ndjson(client, dataset, "items", list(items))
        job = client.post(f"dataset/{dataset}/append?async=1", json={"requestId": "items"}).json()
        assert _wait_for_job(client, job["job_id"])["status"] == "Completed"
        model = client.post("models/add", json={"name": "m", "reference_id": "m"}).json()
        preds: list[object] = [segmentation(f"r{i}", f"s3://p/{i}.png") for i in range(3)]
        _put_ndjson(client, dataset, "preds", preds)
        route = f"dataset/{dataset}/model/{model['model_id']}/uploadPredictions?async=1"
        job = client.post(route, json={"requestId": "preds", "update": False}).json()
        status = _wait_for_job(client, job["job_id"])
        again = client.post(route, json={"requestId": "preds", "update": False}).json()
        again_status = _wait_for_job(client, again["job_id"])
    assert nucleus_server.store.count("items", dataset_id=dataset) == 3
    assert status["status"] == "Completed"
    assert again_status["status"] == "Completed" and "3 ignored" in again_status["message"]
    rows = nucleus_server.store.segmentations(dataset, target=model["model_id"])
    assert sorted(r["reference_id"] for r in rows) == ["r0", "r1", "r2"]
    assert rows[0]["model_run_id"].startswith("run_")


def test_async_refusals(nucleus_server: LocalServer) -> None:
    with api(nucleus_server) as client:
        dataset = new_dataset(client, ["a"])
        nothing = client.post(f"dataset/{dataset}/annotate?async=1", json={"requestId": "x" * 32})
        bad_id = client.get(f"dataset/{dataset}/signedUrl/has%20space")
        unknown_job = client.get("job/job_nope")
        _put_ndjson(client, dataset, "local", [segmentation("zz", "/local/path.png"), "junk"])
        job = client.post(f"dataset/{dataset}/annotate?async=1", json={"requestId": "local"})
        status = _wait_for_job(client, job.json()["job_id"])
    assert nothing.status_code == 400 and "PUT to the signed URL" in nothing.json()["error"]
    assert bad_id.status_code == 400
    assert unknown_job.status_code == 404
    assert httpx.put(nucleus_server.url + "/_upload/forged-token", content=b"{}").status_code == 403
    assert status["status"] == "Errored_User"


def test_a_restarted_server_resumes_an_unfinished_job(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with Store(data_dir) as store:
        dataset = store.create_dataset("d")
        with store.transaction() as conn:
            from segcli.server.store import NewItem

            store.append_items(
                conn, dataset, [NewItem("a", "s3://a", {}), NewItem("b", "s3://b", {})], False
            )
        lines = [json.dumps(segmentation(r, f"s3://m/{r}")) for r in ("a", "b")]
        (store.uploads_dir / "left.ndjson").write_text("\n".join(lines) + "\n")
        job = store.create_job(
            kind="annotate",
            job_type="uploadAnnotations",
            dataset_id=dataset,
            input_file="left.ndjson",
            total_steps=2,
            update=False,
            status="Running",
        )
    config = ServerConfig(data_dir=data_dir, api_keys=(SERVER_KEY,))
    with LocalServer(config) as server, api(server) as client:
        status = _wait_for_job(client, job["id"])
        rows = server.store.segmentations(dataset)
    assert status["status"] == "Completed"
    assert sorted(r["reference_id"] for r in rows) == ["a", "b"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('form-data; name="mask"; filename="%2Fdata%2Fa%20b.png"', ("mask", "/data/a b.png")),
        ('form-data; name="mask"; filename="/data/a.png"', ("mask", "/data/a.png")),
        ('form-data; name="mask"; filename="100%2541.png"', ("mask", "100%41.png")),
        ("form-data; name=mask; filename*=utf-8''%C3%BC.png", ("mask", "ü.png")),
        ('form-data; name="mask"; filename="say \\"hi\\".png"', ("mask", 'say "hi".png')),
        ('form-data; name="serialized_request"', ("serialized_request", None)),
    ],
)
def test_multipart_file_names_are_decoded_once(
    header: str, expected: tuple[str, str | None]
) -> None:
    from segcli.server.bodies import disposition_name_and_filename

    assert disposition_name_and_filename(header) == expected
