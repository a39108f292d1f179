"""Models, runs made from a model alone, taxonomies and loc, over HTTP (the official
client's side of them is in test_conformance_nucleus.py)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from segcli.server import LocalServer, ServerConfig, seed_model
from segcli.server.store import Store
from tests.helpers.server_fixture import api, multipart, new_dataset, png, segmentation


def test_a_run_of_a_model_alone_takes_predictions_naming_their_items(
    nucleus_server: LocalServer,
) -> None:
    with api(nucleus_server) as client:
        one, two = new_dataset(client, ["a", "b"]), new_dataset(client, ["a"], name="two")
        model = client.post("models/add", json={"name": "m", "reference_id": "m"}).json()
        run = client.post(f"model/{model['model_id']}/modelRun/create", json={"name": "r"})
        run_id = run.json()["model_run_id"]
        items = client.get(f"dataset/{one}/datasetItems").json()["dataset_items"]
        item_a = next(i["dataset_item_id"] for i in items if i["reference_id"] == "a")
        by_id = {**segmentation("", "a.png"), "reference_id": None, "item_id": item_a}
        by_pair = {**segmentation("a", "s3://p/two.png"), "dataset_id": two}
        nameless = segmentation("b", "s3://p/b.png")
        ghost = {**segmentation("", "s3://p/x.png"), "item_id": "di_nope"}
        files = multipart([by_id, by_pair, nameless, ghost], [("a.png", png())])
        body = client.post(f"modelRun/{run_id}/uploadPredictions", files=files).json()
    assert (body["model_run_id"], body["predictions_processed"]) == (run_id, 2)
    errors = {json.loads(e)["error"] for e in body["errors"]}
    assert errors == {
        "Item with id di_nope doesn't exist.",
        "This model run belongs to no dataset: name the prediction's item by item_id "
        "(its dataset_item_id), or by dataset_id and reference_id.",
    }
    store = nucleus_server.store
    (held_one,) = store.segmentations(one, target=model["model_id"])
    (held_two,) = store.segmentations(two, target=model["model_id"])
    assert (held_one["reference_id"], held_one["model_run_id"]) == ("a", run_id)
    assert Path(held_one["mask_file"]).read_bytes() == png()
    assert (held_two["mask_url"], held_two["model_run_id"]) == ("s3://p/two.png", run_id)


def test_deleting_a_model_removes_its_predictions_and_their_files(
    nucleus_server: LocalServer,
) -> None:
    with api(nucleus_server) as client:
        dataset = new_dataset(client, ["a"])
        model = client.post("models/add", json={"name": "m"}).json()["model_id"]
        route = f"dataset/{dataset}/model/{model}/uploadPredictions"
        client.post(route, files=multipart([segmentation("a", "a.png")], [("a.png", png())]))
        assert len(list((nucleus_server.config.data_dir / "masks").iterdir())) == 1
        gone = client.delete(f"model/{model}")
        again = client.delete(f"model/{model}")
        listed = client.get("models/").json()["models"]
        fetched = client.get(f"model/{model}")
    assert gone.json() == {"msg": "Model deletion running in an async job"}
    assert again.status_code == fetched.status_code == 404
    assert listed == []
    assert nucleus_server.store.segmentations(dataset, target=model) == []
    assert list((nucleus_server.config.data_dir / "masks").iterdir()) == []


def test_taxonomy_and_loc_refuse_what_they_cannot_use(nucleus_server: LocalServer) -> None:
    with api(nucleus_server) as client:
        one, two = new_dataset(client, ["a"]), new_dataset(client, ["b"], name="two")
        bad = client.post(f"dataset/{one}/add_taxonomy", json={"taxonomy_name": "t", "type": "x"})
        no_such = client.delete(f"dataset/{one}/taxonomy/none")
        items = client.get(f"dataset/{two}/datasetItems").json()["dataset_items"]
        elsewhere = client.get(f"dataset/{one}/loc/{items[0]['dataset_item_id']}")
        here = client.get(f"dataset/{two}/loc/{items[0]['dataset_item_id']}")
    assert bad.status_code == 400 and "labels" in bad.json()["error"]
    assert no_such.status_code == 404
    assert elsewhere.status_code == 404  # an item of another dataset
    assert here.json()["item"]["reference_id"] == "b"


def test_serve_model_names_give_the_same_id_at_each_start(tmp_path: Path) -> None:
    first = seed_model(tmp_path, "demo")
    assert seed_model(tmp_path, "demo") == first
    assert seed_model(tmp_path, "other") != first


def test_a_data_dir_from_before_dataset_less_runs_is_upgraded(tmp_path: Path) -> None:
    # model_runs.dataset_id used to be NOT NULL; such a store opens and keeps its runs.
    conn = sqlite3.connect(tmp_path / "nucleus.db")
    conn.executescript(
        "CREATE TABLE models (id TEXT PRIMARY KEY, name TEXT NOT NULL, reference_id TEXT,"
        " metadata TEXT NOT NULL DEFAULT '{}', created REAL NOT NULL);"
        "CREATE TABLE datasets (id TEXT PRIMARY KEY, name TEXT NOT NULL,"
        " is_scene INTEGER NOT NULL DEFAULT 0, use_privacy_mode INTEGER NOT NULL DEFAULT 0,"
        " created REAL NOT NULL);"
        "CREATE TABLE model_runs (id TEXT PRIMARY KEY, model_id TEXT NOT NULL REFERENCES"
        " models(id), dataset_id TEXT NOT NULL REFERENCES datasets(id), name TEXT,"
        " created REAL NOT NULL);"
        "INSERT INTO models VALUES ('prj_1', 'm', NULL, '{}', 1);"
        "INSERT INTO datasets VALUES ('ds_1', 'd', 0, 0, 1);"
        "INSERT INTO model_runs VALUES ('run_1', 'prj_1', 'ds_1', 'r', 1);"
    )
    conn.close()
    with Store(tmp_path) as store:
        assert store.model_run("run_1")["dataset_id"] == "ds_1"
        alone = store.create_model_run(None, "prj_1", "alone")
        assert store.model_run(alone)["dataset_id"] is None
    config = ServerConfig(data_dir=tmp_path, api_keys=("k",))
    with LocalServer(config) as server:
        assert server.store.model_runs("ds_1") == ["run_1"]
