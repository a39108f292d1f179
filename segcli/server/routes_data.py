"""Routes that read, and the small writes: datasets, items, models, runs."""

from __future__ import annotations

from aiohttp import web

from segcli.server.responses import HttpError, json_response
from segcli.server.routing import (
    ROUTER,
    Call,
    find_dataset,
    find_model,
    item_json,
    object_body,
    segmentation_json,
)
from segcli.server.store import GROUND_TRUTH


@ROUTER.add("POST", "dataset/create")
async def create_dataset(call: Call) -> web.StreamResponse:
    body = await object_body(call)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise HttpError(400, "'name' must be a non-empty string.")
    dataset_id = call.store.create_dataset(
        name,
        is_scene=bool(body.get("is_scene")),
        use_privacy_mode=bool(body.get("use_privacy_mode")),
    )
    return json_response({"dataset_id": dataset_id})


@ROUTER.add("GET", "dataset/{dataset_id}/info")
async def dataset_info(call: Call) -> web.StreamResponse:
    dataset = find_dataset(call)
    return json_response(
        {
            "dataset_id": dataset["id"],
            "name": dataset["name"],
            "length": call.store.dataset_length(dataset["id"]),
            "model_run_ids": call.store.model_runs(dataset["id"]),
            "slice_ids": [],
            "annotation_metadata_schema": None,
            "item_metadata_schema": None,
            "tags": [],
        }
    )


@ROUTER.add("GET", "dataset/{dataset_id}/name")
async def dataset_name(call: Call) -> web.StreamResponse:
    return json_response({"name": find_dataset(call)["name"]})


@ROUTER.add("GET", "dataset/{dataset_id}/is_scene")
async def dataset_is_scene(call: Call) -> web.StreamResponse:
    return json_response({"is_scene": bool(find_dataset(call)["is_scene"])})


@ROUTER.add("GET", "dataset/{dataset_id}/use_privacy_mode")
async def dataset_privacy(call: Call) -> web.StreamResponse:
    return json_response({"use_privacy_mode": bool(find_dataset(call)["use_privacy_mode"])})


@ROUTER.add("GET", "dataset/{dataset_id}/size")
async def dataset_size(call: Call) -> web.StreamResponse:
    return json_response({"count": call.store.dataset_length(find_dataset(call)["id"])})


@ROUTER.add("GET", "dataset/{dataset_id}/datasetItems")
async def dataset_items(call: Call) -> web.StreamResponse:
    items = call.store.items(find_dataset(call)["id"])
    return json_response({"dataset_items": [item_json(i) for i in items]})


@ROUTER.add("GET", "dataset/{dataset_id}/refloc/{reference_id*}")
async def refloc(call: Call) -> web.StreamResponse:
    dataset = find_dataset(call)
    item = call.store.item(dataset["id"], call.params["reference_id"])
    if item is None:
        raise HttpError(404, f"No item with reference_id {call.params['reference_id']!r}.")
    rows = call.store.segmentations(dataset["id"], GROUND_TRUTH, item["reference_id"])
    return json_response(
        {
            "item": item_json(item),
            "annotations": {"segmentation": [segmentation_json(call, r) for r in rows]},
        }
    )


@ROUTER.add("GET", "dataset/{dataset_id}/model/{model_id}/referenceId/{reference_id*}")
async def item_predictions(call: Call) -> web.StreamResponse:
    dataset = find_dataset(call)
    model = find_model(call, call.params["model_id"])
    item = call.store.item(dataset["id"], call.params["reference_id"])
    if item is None:
        raise HttpError(404, f"No item with reference_id {call.params['reference_id']!r}.")
    rows = call.store.segmentations(dataset["id"], model["id"], item["reference_id"])
    return json_response(
        {"annotations": {"segmentation": [segmentation_json(call, r) for r in rows]}}
    )


@ROUTER.add("POST", "models/add")
async def add_model(call: Call) -> web.StreamResponse:
    body = await object_body(call)
    name, reference_id = body.get("name"), body.get("reference_id")
    metadata = body.get("metadata") or {}
    if not isinstance(name, str) or not name:
        raise HttpError(400, "'name' must be a non-empty string.")
    if reference_id is not None and not isinstance(reference_id, str):
        raise HttpError(400, "'reference_id' must be a string.")
    if not isinstance(metadata, dict):
        raise HttpError(400, "'metadata' must be an object.")
    return json_response({"model_id": call.store.create_model(name, reference_id, metadata)})


@ROUTER.add("GET", "model/{model_id}")
async def get_model(call: Call) -> web.StreamResponse:
    model_id = call.params["model_id"]
    run = call.store.model_run(model_id)  # the client passes a model or a run id
    model = find_model(call, run["model_id"] if run else model_id)
    return json_response(
        {
            "id": model["id"],
            "name": model["name"],
            "ref_id": model["reference_id"],
            "metadata": model["metadata"],
        }
    )


@ROUTER.add("POST", "dataset/{dataset_id}/modelRun/create")
async def create_model_run(call: Call) -> web.StreamResponse:
    dataset = find_dataset(call)
    body = await object_body(call)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise HttpError(400, "'name' must be a non-empty string.")
    model_id = body.get("model_id")
    if isinstance(model_id, str):
        find_model(call, model_id)
    else:
        reference_id = body.get("reference_id")
        model_id = call.store.create_model(
            name, reference_id if isinstance(reference_id, str) else None, {}
        )
    return json_response(
        {"model_run_id": call.store.create_model_run(dataset["id"], model_id, name)}
    )
