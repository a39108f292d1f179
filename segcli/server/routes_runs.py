"""Predictions sent to a model run by the run's id alone.

``modelRun/{id}/uploadPredictions`` (the official client's 0.22
``ModelRun.add_predictions``) and ``modelRun/{id}/predict`` of a run made
from its model alone: such a run belongs to no dataset, so each prediction
names its item, by ``item_id`` (the item's ``di_`` id) or by ``dataset_id``
and ``reference_id`` (``prediction.py`` ``_add_prediction_target_ids``).
Predictions that name no item go to the run's dataset, if it has one. Each
dataset's share is written in a transaction of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from segcli.server.bodies import UploadedFile
from segcli.server.ingest import Target, error_text
from segcli.server.responses import HttpError, json_response
from segcli.server.routes_uploads import predict_for_run, read_upload, store_segmentations
from segcli.server.routing import ROUTER, Call, find_run, is_async
from segcli.server.store import Store

_NAME_THE_ITEM = (
    "This model run belongs to no dataset: name the prediction's item by item_id "
    "(its dataset_item_id), or by dataset_id and reference_id."
)


def group_by_dataset(
    store: Store, run: dict[str, Any], raws: Sequence[Any]
) -> tuple[dict[str, list[Any]], list[str]]:
    """The predictions of each dataset they name, and errors for those naming none."""
    groups: dict[str, list[Any]] = {}
    errors: list[str] = []
    known: dict[str, bool] = {}
    for raw in raws:
        if not isinstance(raw, dict):
            errors.append(error_text(raw, "A segmentation must be a JSON object."))
            continue
        item_id, dataset_id = raw.get("item_id"), raw.get("dataset_id") or run["dataset_id"]
        if isinstance(item_id, str) and item_id:
            item = store.item_by_id(item_id)
            if item is None:
                errors.append(error_text(raw, f"Item with id {item_id} doesn't exist."))
                continue
            raw, dataset_id = {**raw, "reference_id": item["reference_id"]}, item["dataset_id"]
        if not isinstance(dataset_id, str):
            errors.append(error_text(raw, _NAME_THE_ITEM))
            continue
        if dataset_id not in known:
            known[dataset_id] = store.dataset(dataset_id) is not None
        if not known[dataset_id]:
            errors.append(error_text(raw, f"Dataset {dataset_id} doesn't exist."))
            continue
        groups.setdefault(dataset_id, []).append(raw)
    return groups, errors


def split_files(
    groups: dict[str, list[Any]], files: Sequence[UploadedFile]
) -> tuple[dict[str, list[UploadedFile]], list[str]]:
    """Each dataset's share of the uploaded masks (paired by the name, as ingest pairs them)."""
    wanted: dict[str, list[str]] = {}
    for dataset_id, raws in groups.items():
        for raw in raws:
            wanted.setdefault(str(raw.get("mask_url")), []).append(dataset_id)
    shares: dict[str, list[UploadedFile]] = {dataset_id: [] for dataset_id in groups}
    errors: list[str] = []
    for upload in files:
        owners = wanted.get(upload.filename)
        if owners:
            shares[owners.pop(0)].append(upload)
        else:
            errors.append(error_text(None, f"File {upload.filename!r} matches no segmentation."))
    return shares, errors


async def _predictions_anywhere(call: Call, run: dict[str, Any]) -> web.StreamResponse:
    if is_async(call.request):
        raise HttpError(
            400,
            "A model run sent predictions by its id alone takes them synchronously; "
            "send them to dataset/{dataset_id}/modelRun/{run_id}/uploadPredictions?async=1.",
        )
    raws, update, errors, files = await read_upload(call)
    groups, found = group_by_dataset(call.store, run, raws)
    errors += found
    shares: dict[str, list[UploadedFile]] | None = None
    if files is not None:
        shares, unpaired = split_files(groups, files)
        errors += unpaired
    processed = ignored = 0
    for dataset_id, group in groups.items():
        target = Target(dataset_id, run["model_id"], run["id"])
        share = None if shares is None else shares[dataset_id]
        result = await store_segmentations(call, target, group, update, share)
        processed, ignored = processed + result.processed, ignored + result.ignored
        errors += result.errors
    return json_response(
        {
            "model_run_id": run["id"],
            "predictions_processed": processed,
            "predictions_ignored": ignored,
            "errors": errors,
        }
    )


@ROUTER.add("POST", "modelRun/{run_id}/uploadPredictions")
async def upload_to_run(call: Call) -> web.StreamResponse:
    return await _predictions_anywhere(call, find_run(call, call.params["run_id"]))


@ROUTER.add("POST", "modelRun/{run_id}/predict")
async def run_predict(call: Call) -> web.StreamResponse:
    """The legacy route: a run bound to a dataset takes it as before (jobs included)."""
    run = find_run(call, call.params["run_id"])
    if run["dataset_id"] is None:
        return await _predictions_anywhere(call, run)
    return await predict_for_run(call, run)
