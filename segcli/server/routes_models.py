"""Models and their runs: create, get, list, delete; runs for a dataset or for a model alone."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from segcli.server.responses import HttpError, json_response
from segcli.server.routing import ROUTER, Call, find_dataset, find_model, object_body


def model_json(model: dict[str, Any]) -> dict[str, Any]:
    """A model as ``GET model/{id}`` and ``GET models/`` answer it (``ref_id``, as the
    official client's ``Model.from_json`` and ``NucleusClient.models`` read it)."""
    return {
        "id": model["id"],
        "name": model["name"],
        "ref_id": model["reference_id"],
        "metadata": model["metadata"],
    }


def _optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise HttpError(400, f"'{key}' must be a string.")
    return value


def _name(body: dict[str, Any]) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise HttpError(400, "'name' must be a non-empty string.")
    return name


@ROUTER.add("POST", "models/add")
async def add_model(call: Call) -> web.StreamResponse:
    body = await object_body(call)
    name, reference_id = _name(body), _optional_str(body, "reference_id")
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise HttpError(400, "'metadata' must be an object.")
    return json_response({"model_id": call.store.create_model(name, reference_id, metadata)})


@ROUTER.add("GET", "models")
async def list_models(call: Call) -> web.StreamResponse:
    return json_response({"models": [model_json(m) for m in call.store.models()]})


@ROUTER.add("GET", "model/{model_id}")
async def get_model(call: Call) -> web.StreamResponse:
    model_id = call.params["model_id"]
    run = call.store.model_run(model_id)  # the client passes a model or a run id
    return json_response(model_json(find_model(call, run["model_id"] if run else model_id)))


@ROUTER.add("DELETE", "model/{model_id}")
async def delete_model(call: Call) -> web.StreamResponse:
    """The service deletes in a job and answers at once; here the job is done by then."""
    model = find_model(call, call.params["model_id"])
    files = call.store.delete_model(model["id"])
    call.store.remove_masks(files)
    return json_response({"msg": "Model deletion running in an async job"})


@ROUTER.add("POST", "dataset/{dataset_id}/modelRun/create")
async def create_model_run(call: Call) -> web.StreamResponse:
    """A run of a model on one dataset. The official client names the model by
    ``model_id`` or, from ``Model.create_run``, by the model's ``reference_id``."""
    dataset = find_dataset(call)
    body = await object_body(call)
    name = _name(body)
    model_id = _optional_str(body, "model_id")
    reference_id = _optional_str(body, "reference_id")
    if model_id is not None:
        find_model(call, model_id)
    else:
        known = call.store.model_by_reference(reference_id) if reference_id else None
        model_id = known["id"] if known else call.store.create_model(name, reference_id, {})
    return json_response(
        {"model_run_id": call.store.create_model_run(dataset["id"], model_id, name)}
    )


@ROUTER.add("POST", "model/{model_id}/modelRun/create")
async def create_run_of_model(call: Call) -> web.StreamResponse:
    """A run of its model alone (``Model.create_run`` without a dataset): its
    predictions name their items, which may lie in any dataset."""
    model = find_model(call, call.params["model_id"])
    body = await object_body(call)
    name = _name(body)
    _optional_str(body, "reference_id")
    if not isinstance(body.get("metadata") or {}, dict):
        raise HttpError(400, "'metadata' must be an object.")
    return json_response({"model_run_id": call.store.create_model_run(None, model["id"], name)})
