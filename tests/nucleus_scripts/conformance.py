"""Drive the official Nucleus client against a server; write what it returned.

Run with the official client's Python (0.18.4 or 0.22.3). Reads
NUCLEUS_ENDPOINT and NUCLEUS_API_KEY, writes masks into CONFORMANCE_DIR and
the results, as one JSON object keyed by scenario, to CONFORMANCE_OUT
(stdout is the client's own chatter).

Each scenario makes its own dataset and runs on its own: one that raises is
recorded as ``{"raised": "TypeError: ..."}`` and the others still run, so a
test about one gap fails alone. The calls are the ones the client's own
test-suite makes (tests/test_segmentation.py, test_prediction.py,
test_dataset.py, test_models.py, test_taxonomy.py).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nucleus
import nucleus.async_job
import requests
from nucleus import DatasetItem, Segment, SegmentationAnnotation, SegmentationPrediction
from nucleus.async_job import JobError
from PIL import Image

VERSION = importlib.metadata.version("scale-nucleus")
CURRENT = not VERSION.startswith("0.18.")

# The client polls jobs every 5 s; the server finishes in milliseconds.
nucleus.async_job.JOB_POLLING_INTERVAL = 0.1

# Count the requests the client makes, to see how it batches.
CALLS: list[str] = []
_post_form_data = nucleus.async_utils._post_form_data
_make_request = nucleus.NucleusClient.make_request


async def _counted_post_form_data(*args: Any, **kwargs: Any) -> Any:
    CALLS.append("multipart " + kwargs["route"])
    return await _post_form_data(*args, **kwargs)


def _counted_make_request(self: Any, payload: Any, route: str, *args: Any, **kwargs: Any) -> Any:
    CALLS.append("json " + route)
    return _make_request(self, payload, route, *args, **kwargs)


nucleus.async_utils._post_form_data = _counted_post_form_data
nucleus.NucleusClient.make_request = _counted_make_request

WORK = Path(os.environ["CONFORMANCE_DIR"])
SEGMENTS = [Segment("bg", 0), Segment("car", 1, metadata={"color": "red"})]
CLIENT = nucleus.NucleusClient(
    os.environ["NUCLEUS_API_KEY"], endpoint=os.environ["NUCLEUS_ENDPOINT"]
)


def calls_during(action: Callable[[], Any]) -> tuple[Any, list[str]]:
    start = len(CALLS)
    result = action()
    return result, CALLS[start:]


def ref(i: int) -> str:
    return f"img/{i:03d}"  # a slash: refloc must percent-encode it


def mask(name: str, values: tuple[int, ...] = (0, 1)) -> str:
    """A small mask file (made once) whose rows take each of ``values``."""
    path = WORK / f"{name}.png"
    if not path.exists():
        image = Image.new("L", (8, 4))
        image.putdata([values[(n // 8) % len(values)] for n in range(32)])
        image.save(path)
    return str(path)


def raw_get(route: str) -> Any:
    """A GET through the client's own transport, answered as plain JSON."""
    return CLIENT.make_request({}, route, requests_command=requests.get)


def status_of(job: Any) -> dict[str, Any]:
    """Wait for a job as the client does; a JobError is part of the answer."""
    try:
        job.sleep_until_complete(verbose_std_out=False)
        raised = None
    except JobError as exc:
        raised = str(exc)
    return {"status": job.status(), "errors": job.errors(), "job_error": raised}


def new_dataset(name: str, n: int) -> Any:
    """A dataset holding ``n`` items with remote images, added through a job."""
    dataset = CLIENT.create_dataset(name, is_scene=False)
    if n:
        items = [
            DatasetItem(
                image_location=f"s3://images/{i}.jpg", reference_id=ref(i), metadata={"i": i}
            )
            for i in range(n)
        ]
        job = dataset.append(items, asynchronous=True) if not CURRENT else dataset.append(items)
        job.sleep_until_complete(verbose_std_out=False)
    return dataset


def item_ids(dataset: Any) -> dict[str, str]:
    listed = raw_get(f"dataset/{dataset.id}/datasetItems")["dataset_items"]
    return {i["reference_id"]: i["dataset_item_id"] for i in listed}


def seg_payload(s: Any) -> dict[str, Any]:
    return {
        "mask_url": s.mask_url,
        "annotation_id": s.annotation_id,
        "reference_id": s.reference_id,
        "segments": [x.to_payload() for x in s.annotations],
    }


# -- scenarios ------------------------------------------------------------------


def append_remote() -> dict[str, Any]:
    dataset = CLIENT.create_dataset("append-remote", is_scene=False)
    items = [
        DatasetItem(image_location=f"s3://images/{i}.jpg", reference_id=ref(i), metadata={"i": i})
        for i in range(25)
    ]
    answer = dataset.append(items)  # 0.18: sync batches of 20; 0.22: a job
    out: dict[str, Any] = {"dataset_id": dataset.id}
    if CURRENT:
        out["job"] = status_of(answer)
    else:
        out["response"] = answer.json()
    info = dataset.info()
    out["info"] = {"length": info.length, "name": info.name}
    out["metadata_7"] = dataset.refloc(ref(7))["item"].metadata
    return out


def append_local() -> dict[str, Any]:
    dataset = CLIENT.create_dataset("append-local", is_scene=False)
    items = []
    for i in range(12):  # > 10: two multipart requests
        path = WORK / f"image {i}.png"
        Image.new("RGB", (8, 4)).save(path)
        items.append(DatasetItem(image_location=str(path), reference_id=f"local-{i}"))
    answer, calls = calls_during(lambda: dataset.append(items))
    out: dict[str, Any] = {"dataset_id": dataset.id, "calls": calls}
    if CURRENT:
        out["job"] = status_of(answer)
        out["get_job"] = CLIENT.get_job(answer.job_id).job_id == answer.job_id
    else:
        out["response"] = answer.json()
    out["size"] = dataset.size
    return out


def annotate_batches() -> dict[str, Any]:
    dataset = new_dataset("annotate-batches", 80)
    out: dict[str, Any] = {"dataset_id": dataset.id}
    groups = {"one": range(0, 1), "over_10": range(1, 13), "over_20": range(13, 36)}
    for kind, offset in (("local", 0), ("remote", 40)):
        for size, span in groups.items():
            annotations = [
                SegmentationAnnotation(
                    mask(f"gt {i + offset:03d}")
                    if kind == "local"
                    else f"s3://masks/{i + offset}.png",
                    SEGMENTS,
                    reference_id=ref(i + offset),
                    annotation_id=f"gt-{i + offset}",
                )
                for i in span
            ]
            answer, calls = calls_during(lambda a=annotations: dataset.annotate(a))
            out[f"{kind}_{size}"] = {"response": answer, "calls": calls}
    return out


def unknown_item() -> dict[str, Any]:
    dataset = new_dataset("unknown-item", 1)
    ghost = [SegmentationAnnotation("s3://masks/ghost.png", SEGMENTS, reference_id="ghost")]
    local_ghost = [SegmentationAnnotation(mask("ghost"), SEGMENTS, reference_id="ghost")]
    return {
        "remote": dataset.annotate(ghost),
        "local": dataset.annotate(local_ghost),
    }


def unlabelled_values() -> dict[str, Any]:
    # As the client's test_single_local_semseg_gt_upload: a mask holding 0, 1
    # and 2 (like tests/testdata/000000000285.png) with segments for 1 and 2 only.
    dataset = new_dataset("unlabelled", 2)
    segments = [Segment("bear", 2), Segment("grass-merged", 1)]
    local = SegmentationAnnotation(
        mask("unlabelled", (0, 1, 2)), segments, reference_id=ref(0), annotation_id="u-0"
    )
    remote = SegmentationAnnotation(
        "https://host/unlabelled.png", segments, reference_id=ref(1), annotation_id="u-1"
    )
    return {"local": dataset.annotate([local]), "remote": dataset.annotate([remote])}


def ignore_and_update() -> dict[str, Any]:
    dataset = new_dataset("ignore-update", 5)
    local = [
        SegmentationAnnotation(
            mask(f"iu {i}"), SEGMENTS, reference_id=ref(i), annotation_id=f"a-{i}"
        )
        for i in range(3)
    ]
    remote = [
        SegmentationAnnotation(
            f"s3://m/{i}.png", SEGMENTS, reference_id=ref(i), annotation_id=f"a-{i}"
        )
        for i in range(3, 5)
    ]
    first = dataset.annotate(local + remote)
    again = dataset.annotate(local + remote)
    changed = [
        SegmentationAnnotation(
            mask(f"iu {i} v2", (0, 1, 2)),
            [*SEGMENTS, Segment("road", 2)],
            reference_id=ref(i),
            annotation_id=f"a-{i}-v2",
        )
        for i in range(3)
    ]
    updated = dataset.annotate(changed, update=True)
    back = dataset.refloc(ref(0))["annotations"]["segmentation"][0]
    return {
        "dataset_id": dataset.id,
        "first": first,
        "ignored": again,
        "updated": updated,
        "readback_equal": back == changed[0],
        "readback": seg_payload(back),
    }


def readback() -> dict[str, Any]:
    # test_single_local_semseg_gt_upload / test_batch_local_semseg_gt_upload:
    # what refloc returns equals what was sent (SegmentationAnnotation.__eq__).
    dataset = new_dataset("readback", 2)
    local = SegmentationAnnotation(
        mask("rb local"), SEGMENTS, reference_id=ref(0), annotation_id="r-0"
    )
    remote = SegmentationAnnotation(
        "s3://masks/rb.png", SEGMENTS, reference_id=ref(1), annotation_id="r-1"
    )
    dataset.annotate([local, remote])
    out: dict[str, Any] = {"dataset_id": dataset.id}
    for name, sent in (("local", local), ("remote", remote)):
        found = dataset.refloc(sent.reference_id)
        back = found["annotations"]["segmentation"][0]
        out[name] = {
            "equal": back == sent,
            "segmentation": seg_payload(back),
            "count": len(found["annotations"]["segmentation"]),
            "item": {
                "reference_id": found["item"].reference_id,
                "image_location": found["item"].image_location,
                "metadata": found["item"].metadata,
            },
        }
    # The bytes stay reachable: the server names its stored copy beside mask_url.
    raw = raw_get(f"dataset/{dataset.id}/refloc/{ref(0)}")["annotations"]["segmentation"][0]
    stored = raw.get("stored_mask_url")
    out["stored_mask_url"] = stored
    if stored:
        reply = requests.get(stored, timeout=30)
        sent_bytes = Path(local.mask_url).read_bytes()
        out["served"] = {"status": reply.status_code, "same_bytes": reply.content == sent_bytes}
    return out


def readback_by_item_id() -> dict[str, Any]:
    # dataset.py loc(dataset_item_id): the item and its annotations by its di_ id
    dataset = new_dataset("loc", 1)
    sent = SegmentationAnnotation(mask("loc"), SEGMENTS, reference_id=ref(0), annotation_id="l-0")
    dataset.annotate([sent])
    found = dataset.loc(item_ids(dataset)[ref(0)])
    return {
        "equal": found["annotations"]["segmentation"][0] == sent,
        "reference_id": found["item"].reference_id,
    }


def predictions_for_a_model() -> dict[str, Any]:
    dataset = new_dataset("predictions", 20)
    model = CLIENT.create_model("conformance-model", reference_id="cm-1", metadata={"k": "v"})
    fetched = CLIENT.get_model(model.id)
    predictions = [
        SegmentationPrediction(
            mask(f"pred {i}"), SEGMENTS, reference_id=ref(i), annotation_id=f"p-{i}"
        )
        for i in range(12)
    ] + [
        SegmentationPrediction(
            f"gs://preds/{i}.png", SEGMENTS, reference_id=ref(i), annotation_id=f"p-{i}"
        )
        for i in range(12, 15)
    ]
    out: dict[str, Any] = {
        "dataset_id": dataset.id,
        "model_id": model.id,
        "model": {
            "id": fetched.id,
            "name": fetched.name,
            "reference_id": fetched.reference_id,
            "metadata": fetched.metadata,
        },
        "first": dataset.upload_predictions(model, predictions),
        "ignored": dataset.upload_predictions(model, predictions[:2]),
        "updated": dataset.upload_predictions(model, predictions[:2], update=True),
    }
    # test_segmentation_pred_upload_local: predictions_refloc returns what was sent
    for name, sent in (("local", predictions[0]), ("remote", predictions[12])):
        back = dataset.predictions_refloc(model, sent.reference_id)["segmentation"][0]
        out[f"refloc_{name}"] = {"equal": back == sent, "segmentation": seg_payload(back)}
    run_id = out["first"]["model_run_id"]
    run = nucleus.ModelRun(run_id, dataset.id, CLIENT)  # the legacy modelRun/{id}/predict route
    out["run_predict"] = run.predict(
        [SegmentationPrediction("gs://preds/15.png", SEGMENTS, reference_id=ref(15))]
    )
    if CURRENT:  # dataset/{id}/modelRun/{run}/uploadPredictions; not in 0.18
        out["run_upload"] = dataset.upload_predictions_for_model_run(
            run_id, [SegmentationPrediction("gs://preds/16.png", SEGMENTS, reference_id=ref(16))]
        )
    info = dataset.info()
    out["info"] = {"length": info.length, "model_run_ids": info.model_run_ids}
    return out


def predictions_through_a_run() -> dict[str, Any]:
    dataset = new_dataset("model-run", 3)
    model = CLIENT.create_model("run-model", reference_id="rm-1")
    ids = item_ids(dataset)
    if CURRENT:
        # Model.create_run -> model/{id}/modelRun/create; ModelRun.add_predictions ->
        # modelRun/{id}/uploadPredictions, each prediction naming its item by id.
        run, made = calls_during(lambda: model.create_run("run-1"))
        local = SegmentationPrediction(
            mask("run local"), SEGMENTS, annotation_id="rp-0", dataset_item_id=ids[ref(0)]
        )
        remote = SegmentationPrediction(
            "s3://preds/run.png", SEGMENTS, reference_id=ref(1), dataset_id=dataset.id
        )
        answer, calls = calls_during(lambda: run.add_predictions([local, remote]))
    else:
        # 0.18: Model.create_run(name, dataset, predictions) -> dataset/{id}/modelRun/create
        # then modelRun/{id}/predict.
        preds = [SegmentationPrediction(mask("run local"), SEGMENTS, reference_id=ref(0))]
        run, calls = calls_during(lambda: model.create_run("run-1", dataset, preds))
        answer, made = None, calls[:1]
    back = dataset.predictions_refloc(model, ref(0))["segmentation"]
    return {
        "dataset_id": dataset.id,
        "model_id": model.id,
        "run_id": run.model_run_id,
        "response": answer,
        "created_by": made,
        "calls": calls,
        "held": [seg_payload(s) for s in back],
    }


def async_with_a_bad_item() -> dict[str, Any]:
    # test_annotate_async_with_error: one bad reference_id among good ones;
    # the job ends Completed and job.errors() names it.
    dataset = new_dataset("async", 10)
    good = [
        SegmentationAnnotation(
            f"https://host/m/{i}.png", SEGMENTS, reference_id=ref(i), annotation_id=f"g-{i}"
        )
        for i in range(4)
    ]
    bad = SegmentationAnnotation("https://host/m/x.png", SEGMENTS, reference_id="fake_garbage")
    out: dict[str, Any] = {"dataset_id": dataset.id}
    out["annotate_clean"] = status_of(dataset.annotate(good[:2], asynchronous=True))
    out["annotate"] = status_of(dataset.annotate([*good[2:], bad], asynchronous=True))
    model = CLIENT.create_model("async-model", reference_id="am-1")
    preds = [
        SegmentationPrediction(f"https://host/p/{i}.png", SEGMENTS, reference_id=ref(i))
        for i in range(5, 8)
    ]
    bad_pred = SegmentationPrediction("https://host/p/x.png", SEGMENTS, reference_id="fake_garbage")
    out["model_id"] = model.id
    out["predictions"] = status_of(
        dataset.upload_predictions(model, [*preds, bad_pred], asynchronous=True)
    )
    nobody = [SegmentationAnnotation("s3://masks/nope.png", SEGMENTS, reference_id="nobody")]
    out["all_bad"] = status_of(dataset.annotate(nobody, asynchronous=True))
    return out


def models_and_deletion() -> dict[str, Any]:
    before = {m.id for m in CLIENT.list_models()}
    model = CLIENT.create_model("doomed", reference_id="doomed-1")
    listed = {m.id for m in CLIENT.list_models()}
    deleted = CLIENT.delete_model(model.id)
    after = {m.id for m in CLIENT.list_models()}
    try:
        CLIENT.get_model(model.id)
        found_after = True
    except Exception:
        found_after = False
    return {
        "model_id": model.id,
        "listed": model.id in listed and not before & {model.id},
        "deleted": deleted,
        "still_listed": model.id in after,
        "found_after": found_after,
        "others_kept": before <= after,
    }


def taxonomy() -> dict[str, Any]:
    dataset = CLIENT.create_dataset("taxonomy", is_scene=False)
    labels = ["t1", "t2"]
    return {
        "dataset_id": dataset.id,
        "created": dataset.add_taxonomy("tax", "category", labels),
        "exists": dataset.add_taxonomy("tax", "category", [*labels, "t3"], False),
        "updated": dataset.add_taxonomy("tax", "category", [*labels, "t3"], True),
        "deleted": dataset.delete_taxonomy("tax"),
    }


def reopened() -> dict[str, Any]:
    # A dataset fetched by id asks the server what create_dataset already knew.
    dataset = new_dataset("reopened", 4)
    again = CLIENT.get_dataset(dataset.id)
    return {
        "name": again.name,
        "is_scene": again.is_scene,
        "size": again.size,
        "items": sorted(i.reference_id for i in again.items),
    }


SCENARIOS = [
    append_remote,
    append_local,
    annotate_batches,
    unknown_item,
    unlabelled_values,
    ignore_and_update,
    readback,
    readback_by_item_id,
    predictions_for_a_model,
    predictions_through_a_run,
    async_with_a_bad_item,
    models_and_deletion,
    taxonomy,
    reopened,
]


def main() -> None:
    out: dict[str, Any] = {"version": VERSION}
    for scenario in SCENARIOS:
        try:
            out[scenario.__name__] = scenario()
        except Exception as exc:  # recorded: the test of this scenario fails, not the others
            out[scenario.__name__] = {
                "raised": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=6),
            }
    Path(os.environ["CONFORMANCE_OUT"]).write_text(json.dumps(out, default=str))


if __name__ == "__main__":
    sys.exit(main())
