"""The local Nucleus server through real HTTP: auth, routes, response shapes, semantics."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from segcli.server import LocalServer, ServerConfig, seed_dataset
from segcli.server.routing import ROUTER
from tests.helpers.server_fixture import SERVER_KEY, api, new_dataset, png, segmentation

# -- auth ---------------------------------------------------------------------


def test_basic_auth_with_the_key_as_username_is_accepted(nucleus_server: LocalServer) -> None:
    with api(nucleus_server) as client:
        dataset = new_dataset(client, ["a"])
        reply = client.get(f"dataset/{dataset}/info")
    assert reply.status_code == 200
    assert reply.json()["dataset_id"] == dataset


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic " + base64.b64encode(b"wrong-key:").decode()},
        {"Authorization": "Basic " + base64.b64encode(b":" + SERVER_KEY.encode()).decode()},
        {"Authorization": "Bearer " + SERVER_KEY},
        {"Authorization": "Basic not-base64!"},
        {"x-limited-access-key": "wrong-key"},
    ],
    ids=["none", "wrong-key", "key-as-password", "bearer", "garbage", "wrong-limited-key"],
)
def test_missing_or_wrong_credentials_are_401_with_a_json_error(
    nucleus_server: LocalServer, headers: dict[str, str]
) -> None:
    reply = httpx.get(f"{nucleus_server.url}/dataset/ds_x/info", headers=headers)
    assert reply.status_code == 401
    assert isinstance(reply.json()["error"], str) and reply.json()["error"]
    assert SERVER_KEY not in reply.text


def test_the_limited_access_key_header_is_accepted(nucleus_server: LocalServer) -> None:
    with api(nucleus_server) as client:
        dataset = new_dataset(client, ["a"])
    reply = httpx.get(
        f"{nucleus_server.url}/dataset/{dataset}/info",
        headers={"x-limited-access-key": SERVER_KEY},
    )
    assert reply.status_code == 200
    assert reply.json()["length"] == 1


def test_basic_auth_and_limited_access_key_together_are_400(nucleus_server: LocalServer) -> None:
    reply = httpx.get(
        f"{nucleus_server.url}/dataset/ds_x/info",
        auth=(SERVER_KEY, ""),
        headers={"x-limited-access-key": SERVER_KEY},
    )
    assert reply.status_code == 400
    assert "not both" in reply.json()["error"]


def test_any_of_several_keys_is_accepted(
    make_nucleus_server: Callable[..., LocalServer],
) -> None:
    server = make_nucleus_server(api_keys=("first", "second"))
    for key, status in (("first", 404), ("second", 404), ("third", 401)):
        reply = httpx.get(f"{server.url}/dataset/ds_none/info", auth=(key, ""))
        assert reply.status_code == status, key


def test_every_route_requires_auth(nucleus_server: LocalServer) -> None:
    checked = 0
    with httpx.Client(base_url=nucleus_server.url + "/") as client:
        for route in ROUTER.routes:
            if not route.auth:
                continue
            path = "/".join("x" if p.startswith("{") else p for p in route.parts)
            reply = client.request(route.method, path, json={})
            assert reply.status_code == 401, (route.method, path)
            checked += 1
    assert checked >= 20


def test_a_server_without_keys_refuses_to_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="API key"):
        LocalServer(ServerConfig(data_dir=tmp_path))


# -- routing ------------------------------------------------------------------


def test_unknown_route_is_404_and_wrong_method_is_405(nucleus_server: LocalServer) -> None:
    with api(nucleus_server) as client:
        assert client.get("no/such/route").status_code == 404
        assert client.get("dataset/create").status_code == 405
    assert httpx.get(nucleus_server.url.replace("/v1/nucleus", "/elsewhere")).status_code == 404


def test_an_endpoint_with_a_trailing_slash_still_routes(nucleus_server: LocalServer) -> None:
    # The official client joins "{endpoint}/{route}" and sends //dataset/...
    with api(nucleus_server) as client:
        dataset = new_dataset(client, ["a"])
    reply = httpx.get(f"{nucleus_server.url}//dataset/{dataset}/info", auth=(SERVER_KEY, ""))
    assert reply.status_code == 200
    assert reply.json()["name"] == "ds"


# -- datasets and items -------------------------------------------------------


def test_dataset_create_and_info_shapes(nucleus_server: LocalServer) -> None:
    with api(nucleus_server) as client:
        created = client.post(
            "dataset/create", json={"name": "roads", "is_scene": False, "use_privacy_mode": False}
        )
        assert created.status_code == 200
        assert set(created.json()) == {"dataset_id"}
        dataset = created.json()["dataset_id"]
        assert dataset.startswith("ds_")
        info = client.get(f"dataset/{dataset}/info").json()
        assert client.get(f"dataset/{dataset}/name").json() == {"name": "roads"}
        assert client.get(f"dataset/{dataset}/is_scene").json() == {"is_scene": False}
        privacy = client.get(f"dataset/{dataset}/use_privacy_mode").json()
        assert privacy == {"use_privacy_mode": False}
        assert client.get(f"dataset/{dataset}/size").json() == {"count": 0}
        assert client.post("dataset/create", json={"name": ""}).status_code == 400
    assert info == {
        "dataset_id": dataset,
        "name": "roads",
        "length": 0,
        "model_run_ids": [],
        "slice_ids": [],
        "annotation_metadata_schema": None,
        "item_metadata_schema": None,
        "tags": [],
    }
    assert nucleus_server.store.dataset(dataset)["name"] == "roads"


def test_unknown_dataset_is_404_on_every_dataset_route(nucleus_server: LocalServer) -> None:
    with api(nucleus_server) as client:
        for method, path in [
            ("GET", "dataset/ds_nope/info"),
            ("GET", "dataset/ds_nope/refloc/a"),
            ("POST", "dataset/ds_nope/append"),
            ("POST", "dataset/ds_nope/annotate"),
            ("GET", "dataset/ds_nope/signedUrl/" + "0" * 32),
        ]:
            reply = client.request(method, path, json={"items": [], "segmentations": []})
            assert reply.status_code == 404, path
            assert "ds_nope" in reply.json()["error"]


def test_append_adds_ignores_and_with_update_replaces_items(nucleus_server: LocalServer) -> None:
    with api(nucleus_server) as client:
        dataset = new_dataset(client, [])
        first = client.post(
            f"dataset/{dataset}/append",
            json={
                "items": [
                    {"reference_id": "a", "image_url": "s3://b/a.jpg", "metadata": {"k": 1}},
                    {"reference_id": "b", "image_url": "s3://b/b.jpg", "width": 8, "height": 4},
                    {"reference_id": "", "image_url": "s3://b/x.jpg"},
                ],
                "update": False,
            },
        ).json()
        again = client.post(
            f"dataset/{dataset}/append",
            json={"items": [{"reference_id": "a", "image_url": "s3://b/new.jpg"}]},
        ).json()
        updated = client.post(
            f"dataset/{dataset}/append",
            json={"items": [{"reference_id": "a", "image_url": "s3://b/new.jpg"}], "update": True},
        ).json()
        listed = client.get(f"dataset/{dataset}/datasetItems").json()["dataset_items"]
    assert first["new_items"] == 2 and first["ignored_items"] == 0
    # upload_errors counts (the official client adds it up as an int); error_payload says which
    assert first["upload_errors"] == 1
    assert first["error_payload"] == [
        {
            "item": {"reference_id": "", "image_url": "s3://b/x.jpg"},
            "error": "reference_id must be a non-empty string.",
        }
    ]
    assert set(first) == {
        "dataset_id",
        "new_items",
        "updated_items",
        "ignored_items",
        "upload_errors",
        "error_payload",
    }
    assert (again["upload_errors"], again["error_payload"]) == (0, [])
    assert (again["new_items"], again["ignored_items"], again["updated_items"]) == (0, 1, 0)
    assert (updated["new_items"], updated["updated_items"]) == (0, 1)
    assert nucleus_server.store.item(dataset, "a")["image_url"] == "s3://b/new.jpg"
    assert {i["reference_id"] for i in listed} == {"a", "b"}
    assert next(i for i in listed if i["reference_id"] == "b")["width"] == 8


def test_refloc_returns_the_item_and_its_ground_truth(nucleus_server: LocalServer) -> None:
    with api(nucleus_server) as client:
        dataset = new_dataset(client, ["img/1"])
        seg = segmentation("img/1", "s3://masks/1.png", annotation_id="ann-1")
        seg["annotations"][1]["metadata"] = {"color": "red"}
        client.post(f"dataset/{dataset}/annotate", json={"segmentations": [seg]})
        # the official client percent-encodes the reference_id with safe=""
        found = client.get(f"dataset/{dataset}/refloc/img%2F1").json()
        missing = client.get(f"dataset/{dataset}/refloc/nope")
    assert found["item"]["reference_id"] == "img/1"
    assert found["item"]["image_url"] == "s3://images/0.jpg"
    assert found["item"]["dataset_item_id"].startswith("di_")
    assert found["annotations"] == {"segmentation": [seg]}
    assert missing.status_code == 404


# -- ground truth semantics ---------------------------------------------------


def test_annotate_json_processes_then_ignores_then_updates(nucleus_server: LocalServer) -> None:
    with api(nucleus_server) as client:
        dataset = new_dataset(client, ["a", "b"])
        segs = [segmentation(r, f"s3://m/{r}.png") for r in ("a", "b")]
        first = client.post(f"dataset/{dataset}/annotate", json={"segmentations": segs})
        second = client.post(f"dataset/{dataset}/annotate", json={"segmentations": segs})
        changed = [segmentation("a", "s3://m/a-v2.png", (0, 1, 2))]
        third = client.post(
            f"dataset/{dataset}/annotate", json={"segmentations": changed, "update": True}
        )
    assert first.json() == {
        "dataset_id": dataset,
        "annotations_processed": 2,
        "annotations_ignored": 0,
        "errors": [],
    }
    assert second.json()["annotations_processed"] == 0
    assert second.json()["annotations_ignored"] == 2
    assert third.json()["annotations_processed"] == 1
    rows = {r["reference_id"]: r for r in nucleus_server.store.segmentations(dataset)}
    assert len(rows) == 2
    assert rows["a"]["mask_url"] == "s3://m/a-v2.png"
    assert [s["index"] for s in rows["a"]["annotations"]] == [0, 1, 2]
    assert rows["b"]["mask_url"] == "s3://m/b.png"
    assert rows["a"]["mask_file"] is None


def test_an_unknown_reference_id_is_named_in_errors_and_not_stored(
    nucleus_server: LocalServer,
) -> None:
    with api(nucleus_server) as client:
        dataset = new_dataset(client, ["known"])
        segs = [segmentation("known", "s3://m/k.png"), segmentation("ghost", "s3://m/g.png")]
        body = client.post(f"dataset/{dataset}/annotate", json={"segmentations": segs}).json()
    assert body["annotations_processed"] == 1
    assert len(body["errors"]) == 1
    error = json.loads(body["errors"][0])
    assert error["annotation"]["reference_id"] == "ghost"
    assert error["error"] == "Item with id ghost doesn't exist."  # the service's words
    refs = [r["reference_id"] for r in nucleus_server.store.segmentations(dataset)]
    assert refs == ["known"]


def test_auto_items_makes_missing_items(make_nucleus_server: Callable[..., LocalServer]) -> None:
    server = make_nucleus_server(auto_items=True)
    with api(server) as client:
        dataset = new_dataset(client, [])
        body = client.post(
            f"dataset/{dataset}/annotate", json={"segmentations": [segmentation("new", "s3://m")]}
        ).json()
        item = client.get(f"dataset/{dataset}/refloc/new").json()["item"]
    assert body["annotations_processed"] == 1 and body["errors"] == []
    assert item["reference_id"] == "new"
    assert server.store.count("items", dataset_id=dataset) == 1


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"mask_url": "/home/me/mask.png"}, "not a URL the server can fetch"),
        ({"reference_id": None}, "reference_id"),
        ({"annotations": []}, "non-empty list"),
        ({"annotations": [{"label": "a", "index": "1"}]}, "not an integer"),
        ({"annotations": [{"label": "a", "index": 256}]}, "outside 0..255"),
        ({"annotations": [{"label": "a", "index": 1}, {"label": "b", "index": 1}]}, "twice"),
        ({"type": "box"}, "type 'mask'"),
    ],
)
def test_bad_segmentation_objects_are_errors_not_rows(
    nucleus_server: LocalServer, change: dict[str, object], fragment: str
) -> None:
    with api(nucleus_server) as client:
        dataset = new_dataset(client, ["a"])
        seg = {**segmentation("a", "s3://m/a.png"), **change}
        body = client.post(f"dataset/{dataset}/annotate", json={"segmentations": [seg]}).json()
    assert body["annotations_processed"] == 0
    assert fragment in json.loads(body["errors"][0])["error"]
    assert nucleus_server.store.count("segmentations") == 0


# -- models and predictions ---------------------------------------------------


def test_models_add_and_get(nucleus_server: LocalServer) -> None:
    with api(nucleus_server) as client:
        added = client.post(
            "models/add", json={"name": "unet", "reference_id": "unet-v1", "metadata": {"lr": 0.1}}
        ).json()
        model = client.get(f"model/{added['model_id']}").json()
        assert client.get("model/prj_nope").status_code == 404
        assert client.post("models/add", json={"reference_id": "x"}).status_code == 400
    assert set(added) == {"model_id"} and added["model_id"].startswith("prj_")
    assert model == {
        "id": added["model_id"],
        "name": "unet",
        "ref_id": "unet-v1",
        "metadata": {"lr": 0.1},
    }


def test_predictions_by_model_are_kept_per_model_with_ignore_and_update(
    nucleus_server: LocalServer,
) -> None:
    with api(nucleus_server) as client:
        dataset = new_dataset(client, ["a", "b"])
        model = client.post("models/add", json={"name": "m", "reference_id": "m"}).json()
        other = client.post("models/add", json={"name": "o", "reference_id": "o"}).json()
        route = f"dataset/{dataset}/model/{model['model_id']}/uploadPredictions"
        segs = [segmentation("a", "s3://p/a.png"), segmentation("ghost", "s3://p/g.png")]
        first = client.post(route, json={"segmentations": segs}).json()
        again = client.post(route, json={"segmentations": segs[:1]}).json()
        update = [segmentation("a", "s3://p/a2.png")]
        updated = client.post(route, json={"segmentations": update, "update": True}).json()
        other_route = f"dataset/{dataset}/model/{other['model_id']}/uploadPredictions"
        client.post(other_route, json={"segmentations": segs[:1]})
        read = client.get(f"dataset/{dataset}/model/{model['model_id']}/referenceId/a").json()
        none = client.get(f"dataset/{dataset}/model/{model['model_id']}/referenceId/b").json()
        unknown = client.post(f"dataset/{dataset}/model/prj_nope/uploadPredictions", json={})
        info = client.get(f"dataset/{dataset}/info").json()
    assert set(first) == {
        "dataset_id",
        "model_run_id",
        "predictions_processed",
        "predictions_ignored",
        "errors",
    }
    assert first["model_run_id"].startswith("run_")
    assert (first["predictions_processed"], first["predictions_ignored"]) == (1, 0)
    assert "ghost" in first["errors"][0]
    assert (again["predictions_processed"], again["predictions_ignored"]) == (0, 1)
    assert updated["predictions_processed"] == 1
    assert updated["model_run_id"] == first["model_run_id"]
    assert read == {"annotations": {"segmentation": update}}
    assert none == {"annotations": {"segmentation": []}}
    assert unknown.status_code == 404
    assert len(info["model_run_ids"]) == 2
    rows = nucleus_server.store.segmentations(dataset, target=model["model_id"])
    assert [(r["reference_id"], r["mask_url"]) for r in rows] == [("a", "s3://p/a2.png")]
    assert rows[0]["model_run_id"] == first["model_run_id"]
    assert len(nucleus_server.store.segmentations(dataset, target=other["model_id"])) == 1
    assert nucleus_server.store.segmentations(dataset) == []  # ground truth untouched


def test_model_run_routes(nucleus_server: LocalServer) -> None:
    with api(nucleus_server) as client:
        dataset = new_dataset(client, ["a", "b"])
        run = client.post(
            f"dataset/{dataset}/modelRun/create", json={"name": "run", "reference_id": "r"}
        ).json()["model_run_id"]
        by_run = client.post(
            f"dataset/{dataset}/modelRun/{run}/uploadPredictions",
            json={"segmentations": [segmentation("a", "s3://p/a.png")]},
        ).json()
        legacy = client.post(
            f"modelRun/{run}/predict", json={"segmentations": [segmentation("b", "s3://p/b.png")]}
        ).json()
        model = client.get(f"model/{run}").json()
        missing = client.post("modelRun/run_nope/predict", json={"segmentations": []})
    assert by_run["model_run_id"] == run and by_run["predictions_processed"] == 1
    assert legacy["model_run_id"] == run and legacy["predictions_processed"] == 1
    assert legacy["dataset_id"] == dataset
    assert model["name"] == "run" and model["ref_id"] == "r"
    assert missing.status_code == 404
    rows = nucleus_server.store.segmentations(dataset, target=model["id"])
    assert sorted(r["reference_id"] for r in rows) == ["a", "b"]


# -- persistence ---------------------------------------------------------------


def test_a_restart_on_the_same_data_dir_keeps_everything(tmp_path: Path) -> None:
    config = ServerConfig(data_dir=tmp_path / "data", api_keys=(SERVER_KEY,))
    with LocalServer(config) as server, api(server) as client:
        dataset = new_dataset(client, ["a", "b"])
        model = client.post("models/add", json={"name": "m", "reference_id": "m"}).json()
        files = [
            (
                "serialized_request",
                (
                    None,
                    json.dumps({"segmentations": [segmentation("a", "a.png")]}),
                    "application/json",
                ),
            ),
            ("mask", ("a.png", png(), "image/png")),
        ]
        assert client.post(f"dataset/{dataset}/annotate", files=files).json()["errors"] == []
        route = f"dataset/{dataset}/model/{model['model_id']}/uploadPredictions"
        client.post(route, json={"segmentations": [segmentation("b", "s3://p/b.png")]})
        before = client.get(f"dataset/{dataset}/refloc/a").json()
        rows_before = server.store.segmentations(dataset)
    with LocalServer(config) as server, api(server) as client:
        after = client.get(f"dataset/{dataset}/refloc/a").json()
        info = client.get(f"dataset/{dataset}/info").json()
        model_after = client.get(f"model/{model['model_id']}").json()
        again = client.post(
            f"dataset/{dataset}/annotate", json={"segmentations": [segmentation("b", "s3://x")]}
        ).json()
        mask = httpx.get(after["annotations"]["segmentation"][0]["stored_mask_url"]).content
        rows_after = server.store.segmentations(dataset)
    assert after["item"] == before["item"]
    assert (
        after["annotations"]["segmentation"][0]["annotations"]
        == segmentation("a", "")["annotations"]
    )
    assert info["length"] == 2 and len(info["model_run_ids"]) == 1
    assert model_after["name"] == "m"
    assert again["annotations_processed"] == 1
    assert rows_after[0] == rows_before[0]
    assert mask == png()


def test_seed_dataset_makes_items_once_and_reuses_a_given_id(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = seed_dataset(data_dir, "demo", ["a", "b", "a"], dataset_id="ds_demo")
    again = seed_dataset(data_dir, "demo", ["b", "c"], dataset_id="ds_demo")
    fresh = seed_dataset(data_dir, "other", ["x"])
    assert first == again == "ds_demo"
    assert fresh.startswith("ds_") and fresh != first
    config = ServerConfig(data_dir=data_dir, api_keys=(SERVER_KEY,))
    with LocalServer(config) as server, api(server) as client:
        info = client.get("dataset/ds_demo/info").json()
        item = client.get("dataset/ds_demo/refloc/c").json()["item"]
    assert (info["name"], info["length"]) == ("demo", 3)
    assert item["image_url"].startswith("placeholder://")
