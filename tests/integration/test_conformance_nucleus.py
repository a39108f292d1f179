"""The official Nucleus client (scale-nucleus 0.18.4 and 0.22.3) against the local server.

Each version runs in its own virtualenv (its pins clash with ours) as one
subprocess driving tests/nucleus_scripts/conformance.py; each test here
checks one scenario's results and the rows the server stored. Every
expectation names the client line it follows; paths are in the public
repository scaleapi/nucleus-python-client (tag v0.18.4, and the 0.22.3
release).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from segcli.server import LocalServer, ServerConfig
from tests.helpers.official_client import CURRENT, LEGACY, VERSIONS, OfficialClient
from tests.helpers.paths import REPO
from tests.helpers.server_fixture import SERVER_KEY

SCRIPT = REPO / "tests" / "nucleus_scripts" / "conformance.py"
SEGMENTS = [
    {"label": "bg", "index": 0},
    {"label": "car", "index": 1, "metadata": {"color": "red"}},
]

pytestmark = pytest.mark.nucleus


class Run:
    """One run of the conformance script: its results and the server it talked to."""

    def __init__(self, client: OfficialClient, server: LocalServer, work: Path) -> None:
        self.client = client
        self.server = server
        self.work = work
        out = work / "results.json"
        env = {
            **os.environ,
            "NUCLEUS_ENDPOINT": server.url,
            "NUCLEUS_API_KEY": SERVER_KEY,
            "CONFORMANCE_DIR": str(work),
            "CONFORMANCE_OUT": str(out),
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
        env.pop("NUCLEUS_LIMITED_ACCESS_KEY", None)
        done = subprocess.run(
            [client.python, str(SCRIPT)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=work,
        )
        assert done.returncode == 0, done.stderr[-4000:]
        self.results: dict[str, Any] = json.loads(out.read_text())
        assert self.results["version"] == client.version

    def __getitem__(self, scenario: str) -> dict[str, Any]:
        found: dict[str, Any] = self.results[scenario]
        assert "raised" not in found, f"{scenario} raised {found['raised']}\n{found['traceback']}"
        return found

    @property
    def store(self) -> Any:
        return self.server.store


def _run(client: OfficialClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    base = tmp_path_factory.mktemp(f"conformance-{client.version}")
    config = ServerConfig(data_dir=base / "server", api_keys=(SERVER_KEY,))
    with LocalServer(config) as server:
        work = base / "work"
        work.mkdir()
        yield Run(client, server, work)


@pytest.fixture(scope="module", params=VERSIONS, ids=lambda c: c.version)
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    yield from _run(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    yield from _run(LEGACY, tmp_path_factory)


@pytest.fixture(scope="module")
def current(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    yield from _run(CURRENT, tmp_path_factory)


def errors_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(e) for e in body["errors"]]


# -- items --------------------------------------------------------------------


def test_sync_append_counts_upload_errors_as_an_int(legacy: Run) -> None:
    # 0.18.4 nucleus/upload_response.py, update_response():
    #   self.upload_errors += json.get(ERROR_ITEMS, 0)   (ERROR_ITEMS = "upload_errors")
    # and tests/test_dataset.py test_dataset_append: resp_json[ERROR_ITEMS] == 0,
    # ERROR_PAYLOAD not in resp_json.
    r = legacy["append_remote"]
    assert r["response"] == {
        "dataset_id": r["dataset_id"],
        "new_items": 25,
        "updated_items": 0,
        "ignored_items": 0,
        "upload_errors": 0,
    }
    assert r["info"] == {"length": 25, "name": "append-remote"}
    assert r["metadata_7"] == {"i": 7}


def test_async_append_of_remote_items_is_a_job(current: Run) -> None:
    # 0.22.3 nucleus/dataset.py append(): remote items go through a signed URL and
    # dataset/{id}/append?async=1, answered with a job (AsyncJob.from_json).
    r = current["append_remote"]
    assert r["job"]["status"]["status"] == "Completed"
    assert r["job"]["errors"] == []
    assert r["info"] == {"length": 25, "name": "append-remote"}


def test_local_images_appended_without_async_are_answered_at_once(legacy: Run) -> None:
    # 0.18.4 nucleus/dataset_item_uploader.py: multipart to dataset/{id}/append (no
    # ?async=1), each answer fed to UploadResponse.update_response (new_items...).
    r = legacy["append_local"]
    route = f"dataset/{r['dataset_id']}/append"
    assert r["calls"] == [f"multipart {route}"] * 2
    assert r["response"] == {
        "dataset_id": r["dataset_id"],
        "new_items": 12,
        "updated_items": 0,
        "ignored_items": 0,
        "upload_errors": 0,
    }
    assert r["size"] == 12
    assert legacy.store.item(r["dataset_id"], "local-3")["image_url"] == str(
        legacy.work / "image 3.png"
    )


def test_local_images_appended_with_async_are_a_job(current: Run) -> None:
    # 0.22.3 nucleus/dataset_item_uploader.py upload_local_async():
    # multipart to dataset/{id}/append?async=1, each answer a job.
    r = current["append_local"]
    route = f"dataset/{r['dataset_id']}/append?async=1"
    assert r["calls"][:2] == [f"multipart {route}"] * 2
    assert r["job"]["status"]["status"] == "Completed"
    assert r["get_job"] is True
    assert r["size"] == 12


def test_a_dataset_reopened_by_id_knows_its_items(run: Run) -> None:
    # nucleus/__init__.py get_dataset(), dataset.py name/is_scene/size/items
    assert run["reopened"] == {
        "name": "reopened",
        "is_scene": False,
        "size": 4,
        "items": [f"img/{i:03d}" for i in range(4)],
    }


# -- ground truth ---------------------------------------------------------------


def test_annotate_batches_local_and_remote_masks_as_the_client_does(run: Run) -> None:
    # nucleus/annotation_uploader.py: local masks 10 per multipart request,
    # remote ones 20 per JSON request (remote_files_per_upload_request=20).
    r = run["annotate_batches"]
    dataset = r["dataset_id"]
    route = f"dataset/{dataset}/annotate"
    expected_requests = {"one": 1, "over_10": 2, "over_20": 3}
    sizes = {"one": 1, "over_10": 12, "over_20": 23}
    for size, n in sizes.items():
        local, remote = r[f"local_{size}"], r[f"remote_{size}"]
        assert local["calls"] == [f"multipart {route}"] * expected_requests[size], size
        assert remote["calls"] == [f"json {route}"] * -(-n // 20), size
        for body in (local["response"], remote["response"]):
            assert body["dataset_id"] == dataset
            assert (body["annotations_processed"], body["annotations_ignored"]) == (n, 0)
            assert body["errors"] == []
    rows = {row["reference_id"]: row for row in run.store.segmentations(dataset)}
    assert len(rows) == 72
    for i in range(36):
        local_row, remote_row = rows[f"img/{i:03d}"], rows[f"img/{i + 40:03d}"]
        assert local_row["mask_url"] == str(run.work / f"gt {i:03d}.png")
        assert Path(local_row["mask_file"]).read_bytes() == Path(local_row["mask_url"]).read_bytes()
        assert remote_row["mask_url"] == f"s3://masks/{i + 40}.png"
        assert remote_row["mask_file"] is None
        assert local_row["annotations"] == SEGMENTS
        assert local_row["annotation_id"] == f"gt-{i}"


def test_an_unknown_item_is_named_with_the_services_words(run: Run) -> None:
    # tests/test_dataset.py test_annotate_async_with_error:
    #   assert "Item with id fake_garbage doesn" in str(job.errors())
    # and tests/test_segmentation.py test_batch_local_semseg_gt_upload:
    #   assert bad_reference_id in response["errors"][0]
    for kind in ("remote", "local"):
        body = run["unknown_item"][kind]
        assert (body["annotations_processed"], body["annotations_ignored"]) == (0, 0), kind
        (error,) = errors_of(body)
        assert error["annotation"]["reference_id"] == "ghost"
        assert error["error"] == "Item with id ghost doesn't exist."
        assert "ghost" in body["errors"][0]


def test_pixel_values_without_a_segment_are_accepted(run: Run) -> None:
    # tests/test_segmentation.py test_single_local_semseg_gt_upload: the client's
    # tests/testdata/000000000285.png holds 0, 1, 2 with segments for 1 and 2
    # (tests/helpers.py TEST_SEGMENTATION_ANNOTATIONS); annotations_processed == 1.
    r = run["unlabelled_values"]
    for kind in ("local", "remote"):
        assert r[kind]["annotations_processed"] == 1, (kind, r[kind])
        assert r[kind]["annotations_ignored"] == 0
        assert r[kind]["errors"] == []


def test_a_second_mask_is_ignored_and_replaced_with_update(run: Run) -> None:
    # tests/test_segmentation.py test_batch_semseg_gt_upload_ignore / _update
    r = run["ignore_and_update"]
    assert (r["first"]["annotations_processed"], r["first"]["annotations_ignored"]) == (5, 0)
    assert (r["ignored"]["annotations_processed"], r["ignored"]["annotations_ignored"]) == (0, 5)
    assert (r["updated"]["annotations_processed"], r["updated"]["annotations_ignored"]) == (3, 0)
    assert r["readback_equal"] is True
    assert r["readback"]["segments"] == [*SEGMENTS, {"label": "road", "index": 2}]
    files = {Path(row["mask_file"]).name for row in run.store.segmentations(r["dataset_id"])[:3]}
    on_disk = {p.name for p in (run.server.config.data_dir / "masks").iterdir()}
    assert files <= on_disk  # the replaced files went, the new ones stay


def test_a_local_mask_reads_back_as_it_was_sent(run: Run) -> None:
    # tests/test_segmentation.py test_single_local_semseg_gt_upload:
    #   assert response_annotation == request_annotation
    # where nucleus/annotation.py SegmentationAnnotation.__eq__ compares mask_url.
    r = run["readback"]
    local, remote = r["local"], r["remote"]
    assert local["equal"] is True, local["segmentation"]
    assert local["segmentation"]["mask_url"] == str(run.work / "rb local.png")
    assert local["count"] == 1
    assert local["item"] == {
        "reference_id": "img/000",
        "image_location": "s3://images/0.jpg",
        "metadata": {"i": 0},
    }
    assert remote["equal"] is True
    assert remote["segmentation"]["mask_url"] == "s3://masks/rb.png"
    # the server still serves the bytes it stored, under the name it gives beside mask_url
    assert r["stored_mask_url"].startswith(run.server.url + "/_masks/")
    assert r["served"] == {"status": 200, "same_bytes": True}


def test_an_item_reads_back_by_its_dataset_item_id(run: Run) -> None:
    # nucleus/dataset.py loc(dataset_item_id): GET dataset/{id}/loc/{di_...}
    r = run["readback_by_item_id"]
    assert r == {"equal": True, "reference_id": "img/000"}


# -- predictions ----------------------------------------------------------------


def test_predictions_for_a_model_land_and_read_back(run: Run) -> None:
    # tests/test_prediction.py test_segmentation_pred_upload_local:
    #   response = dataset.predictions_refloc(model, ref)["segmentation"][0]; response == prediction
    r = run["predictions_for_a_model"]
    model = r["model_id"]
    assert r["model"] == {
        "id": model,
        "name": "conformance-model",
        "reference_id": "cm-1",
        "metadata": {"k": "v"},
    }
    first = r["first"]
    assert first["dataset_id"] == r["dataset_id"]
    run_id = first["model_run_id"]
    assert run_id.startswith("run_")
    assert (first["predictions_processed"], first["predictions_ignored"]) == (15, 0)
    ignored, updated = r["ignored"], r["updated"]
    assert (ignored["predictions_processed"], ignored["predictions_ignored"]) == (0, 2)
    assert updated["predictions_processed"] == 2 and updated["model_run_id"] == run_id
    uploads = ("run_predict", "run_upload") if run.client is CURRENT else ("run_predict",)
    for key in uploads:
        assert r[key]["model_run_id"] == run_id, key
        assert (r[key]["predictions_processed"], r[key]["predictions_ignored"]) == (1, 0), key
    for key in ("refloc_local", "refloc_remote"):
        assert r[key]["equal"] is True, r[key]
    assert r["refloc_local"]["segmentation"]["mask_url"] == str(run.work / "pred 0.png")
    rows = run.store.segmentations(r["dataset_id"], target=model)
    assert len(rows) == 15 + len(uploads)
    assert {p["model_run_id"] for p in rows} == {run_id}
    assert run.store.segmentations(r["dataset_id"]) == []  # ground truth untouched
    assert r["info"] == {"length": 20, "model_run_ids": [run_id]}


def test_predictions_through_a_run_made_from_the_model(current: Run) -> None:
    # 0.22.3 nucleus/model.py create_run(): POST model/{id}/modelRun/create -> model_run_id;
    # nucleus/model_run.py add_predictions() -> PredictionUploader(model_run_id=...) posts to
    # modelRun/{id}/uploadPredictions; each prediction names its item by "item_id"
    # (dataset_item_id) or dataset_id + reference_id (prediction.py _add_prediction_target_ids).
    r = current["predictions_through_a_run"]
    run_id = r["run_id"]
    assert run_id.startswith("run_")
    route = f"modelRun/{run_id}/uploadPredictions"
    assert r["created_by"] == [f"json model/{r['model_id']}/modelRun/create"]
    assert r["calls"] == [f"multipart {route}", f"json {route}"]  # local, then remote
    body = r["response"]
    assert body["model_run_id"] == run_id
    assert (body["predictions_processed"], body["predictions_ignored"]) == (2, 0)
    assert body["errors"] == []
    rows = {
        p["reference_id"]: p
        for p in current.store.segmentations(r["dataset_id"], target=r["model_id"])
    }
    assert set(rows) == {"img/000", "img/001"}
    assert {p["model_run_id"] for p in rows.values()} == {run_id}
    assert rows["img/001"]["mask_url"] == "s3://preds/run.png"
    assert r["held"][0]["mask_url"] == str(current.work / "run local.png")


def test_predictions_through_a_run_made_for_a_dataset(legacy: Run) -> None:
    # 0.18.4 nucleus/model.py create_run(name, dataset, predictions):
    # dataset/{id}/modelRun/create, then modelRun/{id}/predict.
    r = legacy["predictions_through_a_run"]
    routes = [c.split(" ", 1)[1] for c in r["calls"]]
    assert routes == [
        f"dataset/{r['dataset_id']}/modelRun/create",
        f"modelRun/{r['run_id']}/predict",
    ]
    assert r["held"][0]["mask_url"] == str(legacy.work / "run local.png")


# -- async jobs -------------------------------------------------------------------


def test_an_async_job_with_one_bad_item_completes_and_lists_it(run: Run) -> None:
    # tests/test_dataset.py test_annotate_async_with_error: status "Completed",
    # job_progress "1.00", and "Item with id fake_garbage doesn" in str(job.errors());
    # nucleus/async_job.py sleep_until_complete() raises JobError on any Errored_* status.
    r = run["async_with_a_bad_item"]
    for key, processed in (("annotate", 2), ("predictions", 3)):
        job = r[key]
        assert job["job_error"] is None, (key, job)
        assert job["status"]["status"] == "Completed"
        assert job["status"]["job_progress"] == "1.00"
        assert (job["status"]["completed_steps"], job["status"]["total_steps"]) == (
            str(processed + 1),
            str(processed + 1),
        )
        assert "Item with id fake_garbage doesn" in str(job["errors"])
        (error,) = [json.loads(e) for e in job["errors"]]
        assert error["annotation"]["reference_id"] == "fake_garbage"
    assert r["annotate_clean"]["status"]["status"] == "Completed"
    assert r["annotate_clean"]["errors"] == []
    rows = run.store.segmentations(r["dataset_id"])
    assert sorted(row["reference_id"] for row in rows) == [f"img/{i:03d}" for i in range(4)]
    preds = run.store.segmentations(r["dataset_id"], target=r["model_id"])
    assert sorted(p["reference_id"] for p in preds) == [f"img/{i:03d}" for i in range(5, 8)]
    # A job none of whose items landed is a user error, and sleep_until_complete says so.
    assert r["all_bad"]["status"]["status"] == "Errored_User"
    assert r["all_bad"]["job_error"] is not None
    assert json.loads(r["all_bad"]["errors"][0])["annotation"]["reference_id"] == "nobody"


# -- models and taxonomies --------------------------------------------------------


def test_models_are_listed_and_deleted(run: Run) -> None:
    # nucleus/__init__.py models / list_models: GET models/ -> {"models": [{"id","name",
    # "ref_id","metadata"}]}; delete_model: DELETE model/{id}; and
    # tests/validate/test_scenario_test.py:
    #   response["msg"] == "Model deletion running in an async job";
    # tests/test_models.py test_model_creation_and_listing: the model is gone from list_models.
    r = run["models_and_deletion"]
    assert r["listed"] is True
    assert r["deleted"] == {"msg": "Model deletion running in an async job"}
    assert r["still_listed"] is False
    assert r["found_after"] is False
    assert r["others_kept"] is True
    assert run.store.model(r["model_id"]) is None


def test_taxonomies_are_created_kept_updated_and_deleted(run: Run) -> None:
    # tests/test_taxonomy.py: status "Taxonomy created", "Taxonomy already exists",
    # "Taxonomy updated", "Taxonomy successfully deleted".
    r = run["taxonomy"]
    for key, status in (
        ("created", "Taxonomy created"),
        ("exists", "Taxonomy already exists"),
        ("updated", "Taxonomy updated"),
        ("deleted", "Taxonomy successfully deleted"),
    ):
        assert r[key] == {"dataset_id": r["dataset_id"], "taxonomy_name": "tax", "status": status}
