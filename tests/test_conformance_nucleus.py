"""The official Nucleus client (scale-nucleus) against the local server.

The client runs in its own virtualenv (its pins clash with ours) as a
subprocess driving tests/nucleus_scripts/conformance.py; this test checks
every result it returned and every row the server stored.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from server_fixture import SERVER_KEY

from segcli.server import LocalServer

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "nucleus_scripts" / "conformance.py"
SEGMENTS = [
    {"label": "bg", "index": 0},
    {"label": "car", "index": 1, "metadata": {"color": "red"}},
]

pytestmark = pytest.mark.nucleus


def nucleus_python() -> str:
    configured = os.environ.get("SEGCLI_NUCLEUS_PYTHON")
    if configured:
        return configured
    default = ROOT / ".venv-nucleus" / "bin" / "python"
    if not default.exists():
        pytest.fail(
            f"The official Nucleus client is not installed ({default} is missing): "
            "run `make nucleus-venv`, or point SEGCLI_NUCLEUS_PYTHON at a Python with "
            "scale-nucleus installed."
        )
    return str(default)


def run_official_client(url: str, work: Path) -> dict[str, Any]:
    work.mkdir()
    out = work / "results.json"
    env = {
        **os.environ,
        "NUCLEUS_ENDPOINT": url,
        "NUCLEUS_API_KEY": SERVER_KEY,
        "CONFORMANCE_DIR": str(work),
        "CONFORMANCE_OUT": str(out),
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    env.pop("NUCLEUS_LIMITED_ACCESS_KEY", None)
    done = subprocess.run(
        [nucleus_python(), str(SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=work,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    results: dict[str, Any] = json.loads(out.read_text())
    return results


def ref(i: int) -> str:
    return f"img/{i:03d}"


def test_the_official_client_round_trips_through_the_local_server(
    nucleus_server: LocalServer, tmp_path: Path
) -> None:
    r = run_official_client(nucleus_server.url, tmp_path / "work")
    store = nucleus_server.store
    dataset = r["dataset_id"]

    # dataset and items (append goes through a signed URL and a job)
    assert dataset.startswith("ds_")
    assert r["append_status"] == "Completed"
    assert r["info_after_append"] == {"length": 50, "name": "conformance"}
    assert store.count("items", dataset_id=dataset) == 51  # 50 + one local image at the end
    assert store.item(dataset, ref(7))["metadata"] == {"i": 7}

    # ground truth: 12 local masks (two multipart batches), 25 remote (two JSON batches)
    def counts(body: dict[str, Any]) -> tuple[int, int, int]:
        return body["annotations_processed"], body["annotations_ignored"], len(body["errors"])

    assert r["annotate_local"]["dataset_id"] == dataset
    assert counts(r["annotate_local"]) == (12, 0, 0)
    assert counts(r["annotate_remote"]) == (25, 0, 0)
    route = f"dataset/{dataset}/annotate"
    assert r["calls_local"] == [f"multipart {route}"] * 2
    assert r["calls_remote"] == [f"json {route}"] * 2
    assert counts(r["annotate_unknown"]) == (0, 0, 1)
    assert json.loads(r["annotate_unknown"]["errors"][0])["annotation"]["reference_id"] == "ghost"
    assert counts(r["reannotate_ignored"]) == (0, 5, 0)
    assert counts(r["reannotate_updated"]) == (3, 0, 0)

    rows = {row["reference_id"]: row for row in store.segmentations(dataset)}
    assert set(rows) == {ref(i) for i in range(42)}  # local, remote and async; no ghost
    for i in range(12):
        row = rows[ref(i)]
        tag = "gt-v2" if i < 3 else "gt"
        assert row["mask_url"] == str(tmp_path / "work" / f"{tag} {i:03d}.png")
        assert Path(row["mask_file"]).read_bytes() == Path(row["mask_url"]).read_bytes()
        assert row["annotation_id"] == (f"gt-{i}-v2" if i < 3 else f"gt-{i}")
    assert rows[ref(0)]["annotations"] == [*SEGMENTS, {"label": "road", "index": 2}]
    assert rows[ref(5)]["annotations"] == SEGMENTS
    for i in range(12, 37):
        assert rows[ref(i)]["mask_url"] == f"s3://masks/{i}.png"
        assert rows[ref(i)]["mask_file"] is None
    masks_on_disk = len(list((nucleus_server.config.data_dir / "masks").iterdir()))
    assert masks_on_disk == 12 + 12  # ground truth + predictions; replaced files removed

    # model and predictions
    model = r["model_id"]
    assert r["model"] == {
        "id": model,
        "name": "conformance-model",
        "reference_id": "cm-1",
        "metadata": {"k": "v"},
    }
    predictions = r["predictions"]
    assert predictions["dataset_id"] == dataset
    assert predictions["model_run_id"].startswith("run_")
    assert (predictions["predictions_processed"], predictions["predictions_ignored"]) == (15, 0)
    assert (
        r["predictions_ignored"]["predictions_processed"],
        r["predictions_ignored"]["predictions_ignored"],
    ) == (0, 2)
    assert r["predictions_updated"]["predictions_processed"] == 2
    assert r["predictions_updated"]["model_run_id"] == predictions["model_run_id"]
    for key in ("run_predict", "run_upload"):
        assert r[key]["model_run_id"] == predictions["model_run_id"], key
        assert (r[key]["predictions_processed"], r[key]["predictions_ignored"]) == (1, 0), key
    prediction_rows = store.segmentations(dataset, target=model)
    assert len(prediction_rows) == 17
    assert {p["model_run_id"] for p in prediction_rows} == {predictions["model_run_id"]}
    assert r["predictions_refloc"][0]["annotation_id"] == "p-0"
    assert r["predictions_refloc"][0]["reference_id"] == ref(0)
    assert r["predictions_refloc"][0]["mask_url"].startswith(nucleus_server.url + "/_masks/")

    # async annotate with a job, and a job that fails
    status = r["async_status"]
    assert status["status"] == "Completed"
    assert (status["completed_steps"], status["total_steps"], status["job_progress"]) == (
        "5",
        "5",
        "1.00",
    )
    assert r["async_errors"] == []
    for i in range(37, 42):
        assert rows[ref(i)]["mask_url"] == f"https://host/masks/{i}.png"
    assert r["bad_job_raised"] is True
    assert len(r["bad_job_errors"]) == 1
    assert json.loads(r["bad_job_errors"][0])["annotation"]["reference_id"] == "nobody"

    # read back with refloc
    first = r["refloc"][ref(0)]
    assert first["item"] == {
        "reference_id": ref(0),
        "image_location": "s3://images/0.jpg",
        "metadata": {"i": 0},
    }
    assert first["count"] == 1
    assert (first["annotation_id"], first["reference_id"]) == ("gt-0-v2", ref(0))
    assert first["segments"] == [*SEGMENTS, {"label": "road", "index": 2}]
    assert first["served"] == {"status": 200, "same_bytes": True}
    assert r["refloc"][ref(5)]["served"] == {"status": 200, "same_bytes": True}
    assert r["refloc"][ref(12)]["mask_url"] == "s3://masks/12.png"
    assert r["refloc"][ref(12)]["segments"] == SEGMENTS
    assert r["refloc"][ref(37)]["annotation_id"] == "gt-37"
    assert r["reopened"] == {"name": "conformance", "is_scene": False, "size": 50, "items": 50}
    assert r["local_append"]["status"] == "Completed"
    assert r["local_append"]["get_job"] == r["local_append"]["job_id"]
    local_item = store.item(dataset, "local-img")
    assert local_item["image_url"] == str(tmp_path / "work" / "local image.png")
    assert r["info"]["length"] == 51
    assert r["info"]["model_run_ids"] == [predictions["model_run_id"]]
