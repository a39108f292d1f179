"""Routes that read, and the small writes: datasets, items, taxonomies."""

from __future__ import annotations

from typing import Any

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


def _item_and_annotations(call: Call, item: dict[str, Any]) -> web.StreamResponse:
    rows = call.store.segmentations(item["dataset_id"], GROUND_TRUTH, item["reference_id"])
    return json_response(
        {
            "item": item_json(item),
            "annotations": {"segmentation": [segmentation_json(call, r) for r in rows]},
        }
    )


@ROUTER.add("GET", "dataset/{dataset_id}/refloc/{reference_id*}")
async def refloc(call: Call) -> web.StreamResponse:
    dataset = find_dataset(call)
    item = call.store.item(dataset["id"], call.params["reference_id"])
    if item is None:
        raise HttpError(404, f"No item with reference_id {call.params['reference_id']!r}.")
    return _item_and_annotations(call, item)


@ROUTER.add("GET", "dataset/{dataset_id}/loc/{item_id}")
async def loc(call: Call) -> web.StreamResponse:
    """An item by its ``di_`` id (the official client's ``Dataset.loc``)."""
    dataset = find_dataset(call)
    item = call.store.item_by_id(call.params["item_id"])
    if item is None or item["dataset_id"] != dataset["id"]:
        raise HttpError(404, f"No item with id {call.params['item_id']!r} in this dataset.")
    return _item_and_annotations(call, item)


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


@ROUTER.add("POST", "dataset/{dataset_id}/add_taxonomy")
async def add_taxonomy(call: Call) -> web.StreamResponse:
    """Taxonomies matter to category annotations, not masks; kept so clients that
    make one (the official tests do, for every dataset) get the service's answers."""
    dataset = find_dataset(call)
    body = await object_body(call)
    name, kind = body.get("taxonomy_name"), body.get("type")
    labels, update = body.get("labels"), body.get("update", False)
    if not isinstance(name, str) or not name or not isinstance(kind, str):
        raise HttpError(400, "Send 'taxonomy_name' and 'type' as strings.")
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise HttpError(400, "'labels' must be a list of strings.")
    if not isinstance(update, bool):
        raise HttpError(400, "'update' must be a boolean.")
    status = call.store.add_taxonomy(dataset["id"], name, kind, labels, update)
    return json_response({"dataset_id": dataset["id"], "taxonomy_name": name, "status": status})


@ROUTER.add("DELETE", "dataset/{dataset_id}/taxonomy/{name}")
async def delete_taxonomy(call: Call) -> web.StreamResponse:
    dataset = find_dataset(call)
    name = call.params["name"]
    if not call.store.delete_taxonomy(dataset["id"], name):
        raise HttpError(404, f"No taxonomy named {name!r} in this dataset.")
    return json_response(
        {
            "dataset_id": dataset["id"],
            "taxonomy_name": name,
            "status": "Taxonomy successfully deleted",
        }
    )
