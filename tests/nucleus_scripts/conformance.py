"""Drive the official Nucleus client against a server; write what it returned.

Run with the official client's Python. Reads NUCLEUS_ENDPOINT and
NUCLEUS_API_KEY, writes masks into CONFORMANCE_DIR and the results, as one
JSON object, to CONFORMANCE_OUT (stdout is the client's own chatter).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nucleus
import nucleus.async_job
import requests
from nucleus import DatasetItem, Segment, SegmentationAnnotation, SegmentationPrediction
from nucleus.async_job import JobError
from PIL import Image

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


def calls_during(action: Callable[[], Any]) -> tuple[Any, list[str]]:
    start = len(CALLS)
    result = action()
    return result, CALLS[start:]


WORK = Path(os.environ["CONFORMANCE_DIR"])
N_ITEMS = 50
LOCAL = range(0, 12)  # > 10: two multipart batches
REMOTE = range(12, 37)  # > 20: two JSON batches
ASYNC = range(37, 42)
SEGMENTS = [Segment("bg", 0), Segment("car", 1, metadata={"color": "red"})]


def ref(i: int) -> str:
    return f"img/{i:03d}"  # a slash: refloc must percent-encode it


def mask(i: int, values: tuple[int, ...] = (0, 1), tag: str = "gt") -> str:
    """A mask file made once; ``tag`` keeps ground truth, its update and predictions apart."""
    path = WORK / f"{tag} {i:03d}.png"
    if not path.exists():
        image = Image.new("L", (8, 4))
        image.putdata([values[(n // 8) % len(values)] for n in range(32)])
        image.save(path)
    return str(path)


def main() -> None:
    out: dict = {}
    client = nucleus.NucleusClient(
        os.environ["NUCLEUS_API_KEY"], endpoint=os.environ["NUCLEUS_ENDPOINT"]
    )
    dataset = client.create_dataset("conformance", is_scene=False)
    out["dataset_id"] = dataset.id

    items = [
        DatasetItem(image_location=f"s3://images/{i}.jpg", reference_id=ref(i), metadata={"i": i})
        for i in range(N_ITEMS)
    ]
    job = dataset.append(items)
    job.sleep_until_complete(verbose_std_out=False)
    out["append_status"] = job.status()["status"]
    info = dataset.info()
    out["info_after_append"] = {"length": info.length, "name": info.name}

    local = [
        SegmentationAnnotation(mask(i), SEGMENTS, reference_id=ref(i), annotation_id=f"gt-{i}")
        for i in LOCAL
    ]
    out["annotate_local"], out["calls_local"] = calls_during(lambda: dataset.annotate(local))

    remote = [
        SegmentationAnnotation(
            f"s3://masks/{i}.png", SEGMENTS, reference_id=ref(i), annotation_id=f"gt-{i}"
        )
        for i in REMOTE
    ]
    out["annotate_remote"], out["calls_remote"] = calls_during(lambda: dataset.annotate(remote))

    ghost = [SegmentationAnnotation("s3://masks/ghost.png", SEGMENTS, reference_id="ghost")]
    out["annotate_unknown"] = dataset.annotate(ghost)

    # Re-upload: ignored without update, replaced with it.
    out["reannotate_ignored"] = dataset.annotate(local[:3] + remote[:2])
    changed = [
        SegmentationAnnotation(
            mask(i, (0, 1, 2), tag="gt-v2"),
            [*SEGMENTS, Segment("road", 2)],
            reference_id=ref(i),
            annotation_id=f"gt-{i}-v2",
        )
        for i in LOCAL[:3]
    ]
    out["reannotate_updated"] = dataset.annotate(changed, update=True)

    model = client.create_model("conformance-model", reference_id="cm-1", metadata={"k": "v"})
    out["model_id"] = model.id
    fetched = client.get_model(model.id)
    out["model"] = {
        "id": fetched.id,
        "name": fetched.name,
        "reference_id": fetched.reference_id,
        "metadata": fetched.metadata,
    }
    predictions = [
        SegmentationPrediction(
            mask(i, tag="pred"), SEGMENTS, reference_id=ref(i), annotation_id=f"p-{i}"
        )
        for i in LOCAL
    ] + [
        SegmentationPrediction(
            f"gs://preds/{i}.png", SEGMENTS, reference_id=ref(i), annotation_id=f"p-{i}"
        )
        for i in REMOTE[:3]
    ]
    out["predictions"] = dataset.upload_predictions(model, predictions)
    out["predictions_ignored"] = dataset.upload_predictions(model, predictions[:2])
    out["predictions_updated"] = dataset.upload_predictions(model, predictions[:2], update=True)
    read = dataset.predictions_refloc(model, ref(0))
    out["predictions_refloc"] = [
        {"mask_url": p.mask_url, "annotation_id": p.annotation_id, "reference_id": p.reference_id}
        for p in read["segmentation"]
    ]

    run_id = out["predictions"]["model_run_id"]
    run = nucleus.ModelRun(run_id, dataset.id, client)  # the legacy modelRun/{id}/predict route
    out["run_predict"] = run.predict(
        [SegmentationPrediction("gs://preds/40.png", SEGMENTS, reference_id=ref(40))]
    )
    out["run_upload"] = dataset.upload_predictions_for_model_run(
        run_id, [SegmentationPrediction("gs://preds/41.png", SEGMENTS, reference_id=ref(41))]
    )

    async_annotations = [
        SegmentationAnnotation(
            f"https://host/masks/{i}.png", SEGMENTS, reference_id=ref(i), annotation_id=f"gt-{i}"
        )
        for i in ASYNC
    ]
    job = dataset.annotate(async_annotations, asynchronous=True)
    job.sleep_until_complete(verbose_std_out=False)
    out["async_status"] = job.status()
    out["async_errors"] = job.errors()

    bad_job = dataset.annotate(
        [SegmentationAnnotation("s3://masks/nope.png", SEGMENTS, reference_id="nobody")],
        asynchronous=True,
    )
    try:
        bad_job.sleep_until_complete(verbose_std_out=False)
        out["bad_job_raised"] = False
    except JobError:
        out["bad_job_raised"] = True
    out["bad_job_errors"] = bad_job.errors()

    out["refloc"] = {}
    for i in (0, 5, 12, 37):
        found = dataset.refloc(ref(i))
        item = found["item"]
        segmentations = found["annotations"]["segmentation"]
        first = segmentations[0]
        served: dict = {}
        if i in LOCAL:  # an uploaded mask is served back by the server
            reply = requests.get(first.mask_url, timeout=30)
            expected = Path(mask(i, tag="gt-v2" if i < 3 else "gt")).read_bytes()
            served = {"status": reply.status_code, "same_bytes": reply.content == expected}
        out["refloc"][ref(i)] = {
            "item": {
                "reference_id": item.reference_id,
                "image_location": item.image_location,
                "metadata": item.metadata,
            },
            "count": len(segmentations),
            "mask_url": first.mask_url,
            "annotation_id": first.annotation_id,
            "reference_id": first.reference_id,
            "segments": [s.to_payload() for s in first.annotations],
            "served": served,
        }
    # A dataset fetched by id asks the server what create_dataset already knew.
    again = client.get_dataset(dataset.id)
    out["reopened"] = {
        "name": again.name,
        "is_scene": again.is_scene,
        "size": again.size,
        "items": len(again.items),
    }
    image = Image.new("RGB", (8, 4))
    image.save(WORK / "local image.png")
    job = again.append(
        [DatasetItem(image_location=str(WORK / "local image.png"), reference_id="local-img")]
    )
    job.sleep_until_complete(verbose_std_out=False)
    out["local_append"] = {
        "status": job.status()["status"],
        "job_id": job.job_id,
        "get_job": client.get_job(job.job_id).job_id,
    }
    info = dataset.info()
    out["info"] = {"length": info.length, "model_run_ids": info.model_run_ids}

    Path(os.environ["CONFORMANCE_OUT"]).write_text(json.dumps(out, default=str))


if __name__ == "__main__":
    sys.exit(main())
