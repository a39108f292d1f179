"""Routes that upload: items, ground truth, predictions, signed URLs and jobs.

A sync upload is checked and stored by one worker-thread call (ingest.py);
``?async=1`` starts a job over what the client PUT to its signed URL.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import secrets
from typing import Any

from aiohttp import web

from segcli.server.bodies import UploadedFile, parse_json, read_body, read_json, read_multipart
from segcli.server.ingest import (
    Destination,
    WriteResult,
    parse_upload_request,
    write_items,
    write_segmentations,
)
from segcli.server.jobs import (
    JOB_TYPES,
    RUNNING,
    creation_payload,
    read_lines,
    status_payload,
)
from segcli.server.responses import HttpError, json_response
from segcli.server.routing import (
    ROUTER,
    Call,
    find_dataset,
    find_job,
    find_model,
    find_run,
    is_async,
    is_multipart,
    object_body,
)
from segcli.server.store import Store

MAX_FILES_PER_REQUEST = 10
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_MASK_NAME = re.compile(r"^[0-9a-f]{32}\.png$")


async def read_upload(call: Call) -> tuple[list[Any], bool, list[str], list[UploadedFile] | None]:
    """(segmentations, update, errors, files) of a sync annotate/predictions request."""
    limit = call.config.max_body_bytes
    if not is_multipart(call.request):
        raws, update, errors = parse_upload_request(await read_json(call.request, limit))
        return raws, update, errors, None
    body = await read_multipart(call.request, limit, MAX_FILES_PER_REQUEST)
    serialized = body.fields.get("serialized_request")
    if serialized is None:
        raise HttpError(400, "The multipart body has no serialized_request part.")
    raws, update, errors = parse_upload_request(parse_json(serialized, "serialized_request"))
    return raws, update, errors, body.files


def _resolve_run(store: Store, target: Destination) -> str | None:
    if target.model_id is None or target.model_run_id is not None:
        return target.model_run_id
    with store.transaction() as conn:
        return store.run_for_model(conn, target.dataset_id, target.model_id)


async def _start_job(call: Call, kind: str, target: Destination) -> web.StreamResponse:
    """Start processing what the client PUT to its signed URL (``?async=1``)."""
    body = await object_body(call)
    request_id, update = body.get("requestId"), body.get("update", False)
    if not isinstance(request_id, str) or not isinstance(update, bool):
        raise HttpError(400, "Send 'requestId' (a string) and 'update' (a boolean).")
    upload = call.store.uploaded_body(target.dataset_id, request_id)
    if upload is None:
        raise HttpError(
            400, f"Nothing was uploaded for requestId {request_id!r}; PUT to the signed URL first."
        )
    lines = await asyncio.to_thread(read_lines, upload)
    run_id = await asyncio.to_thread(_resolve_run, call.store, target)
    return _new_job(call, kind, target, upload.name, len(lines), update, run_id)


def _new_job(
    call: Call,
    kind: str,
    target: Destination,
    input_file: str,
    total: int,
    update: bool,
    run_id: str | None,
) -> web.StreamResponse:
    job = call.store.create_job(
        kind=kind,
        job_type=JOB_TYPES[kind],
        dataset_id=target.dataset_id,
        input_file=input_file,
        total_steps=total,
        update=update,
        target=target.model_id,
        model_run_id=run_id,
        status=RUNNING,
    )
    call.state.jobs.start(job["id"])
    return json_response(creation_payload(job))


async def store_segmentations(
    call: Call,
    target: Destination,
    raws: list[Any],
    update: bool,
    files: list[UploadedFile] | None,
) -> WriteResult:
    """Check and store one request's segmentations for one target (ingest.py)."""
    write = functools.partial(
        write_segmentations,
        call.store,
        target,
        raws,
        update=update,
        auto_items=call.config.auto_items,
        files=files,
        storage_options=call.config.storage_options,
        rules=call.config.mask_rules,
    )
    # Checks, files and transaction run as one call with no await inside, so
    # a client that goes away cannot leave the write half done. Masks go to
    # a worker thread: decoding them releases the GIL and would otherwise
    # hold up every other request. A JSON batch is a millisecond of Python
    # that a thread hop would only slow down (and make it fight the event
    # loop for the GIL).
    # Fetching remote masks is network I/O: that goes to a thread too.
    inline = files is None and not call.config.storage_options
    return write() if inline else await asyncio.to_thread(write)


async def _annotate_like(call: Call, target: Destination, kind: str) -> web.StreamResponse:
    if is_async(call.request):
        return await _start_job(call, kind, target)
    raws, update, errors, files = await read_upload(call)
    result = await store_segmentations(call, target, raws, update, files)
    if kind == "annotate":
        return json_response(
            {
                "dataset_id": target.dataset_id,
                "annotations_processed": result.processed,
                "annotations_ignored": result.ignored,
                "errors": errors + result.errors,
            }
        )
    return json_response(
        {
            "dataset_id": target.dataset_id,
            "model_run_id": result.model_run_id,
            "predictions_processed": result.processed,
            "predictions_ignored": result.ignored,
            "errors": errors + result.errors,
        }
    )


@ROUTER.add("POST", "dataset/{dataset_id}/append")
async def append(call: Call) -> web.StreamResponse:
    dataset = find_dataset(call)
    target = Destination(dataset["id"])
    if is_multipart(call.request):
        return await _append_multipart(call, target)
    if is_async(call.request):
        return await _start_job(call, "append", target)
    body = await object_body(call)
    items, update = body.get("items"), body.get("update", False)
    if not isinstance(items, list) or not isinstance(update, bool):
        raise HttpError(400, "Send 'items' (a list) and 'update' (a boolean).")
    outcome = await asyncio.to_thread(write_items, call.store, dataset["id"], items, update=update)
    return json_response(outcome.payload(dataset["id"]))


async def _append_multipart(call: Call, target: Destination) -> web.StreamResponse:
    """Local images, as the official client sends them: an ``items`` JSON part
    and one ``image`` part each. The images are not kept (only masks matter
    here). With ``?async=1`` (0.22) the items are processed as a job; without
    it (0.18: ``dataset_item_uploader.py`` builds an UploadResponse from the
    answer) they are stored at once and counted like a JSON append."""
    body = await read_multipart(call.request, call.config.max_body_bytes, MAX_FILES_PER_REQUEST)
    items = parse_json(body.fields.get("items", b""), "The items part")
    if not isinstance(items, list) or not items:
        raise HttpError(400, "The multipart body needs an 'items' part holding a list.")
    update = any(isinstance(i, dict) and i.get("update") is True for i in items)
    if not is_async(call.request):
        outcome = await asyncio.to_thread(
            write_items, call.store, target.dataset_id, items, update=update
        )
        return json_response(outcome.payload(target.dataset_id))
    lines = [_json_line(i) for i in items]
    name = secrets.token_hex(16) + ".ndjson"
    path = call.store.uploads_dir / name
    await asyncio.to_thread(path.write_text, "".join(lines), "utf-8")
    return _new_job(call, "append", target, name, len(lines), update, None)


def _json_line(obj: Any) -> str:
    return json.dumps(obj) + "\n"


@ROUTER.add("POST", "dataset/{dataset_id}/annotate")
async def annotate(call: Call) -> web.StreamResponse:
    return await _annotate_like(call, Destination(find_dataset(call)["id"]), "annotate")


@ROUTER.add("POST", "dataset/{dataset_id}/model/{model_id}/uploadPredictions")
async def upload_predictions(call: Call) -> web.StreamResponse:
    dataset = find_dataset(call)
    model = find_model(call, call.params["model_id"])
    return await _annotate_like(call, Destination(dataset["id"], model["id"]), "predictions")


@ROUTER.add("POST", "dataset/{dataset_id}/modelRun/{run_id}/uploadPredictions")
async def upload_run_predictions(call: Call) -> web.StreamResponse:
    dataset = find_dataset(call)
    run = find_run(call, call.params["run_id"])
    target = Destination(dataset["id"], run["model_id"], run["id"])
    return await _annotate_like(call, target, "predictions")


async def predict_for_run(call: Call, run: dict[str, Any]) -> web.StreamResponse:
    """``modelRun/{id}/predict`` of a run bound to a dataset."""
    return await _annotate_like(
        call, Destination(run["dataset_id"], run["model_id"], run["id"]), "predictions"
    )


@ROUTER.add("GET", "dataset/{dataset_id}/signedUrl/{request_id}")
async def signed_url(call: Call) -> web.StreamResponse:
    dataset = find_dataset(call)
    request_id = call.params["request_id"]
    if not _REQUEST_ID.match(request_id):
        raise HttpError(400, "request_id must be 1-128 letters, digits, '-' or '_'.")
    token = call.store.create_signed_upload(dataset["id"], request_id)
    return json_response({"signed_url": f"{call.base_url()}/_upload/{token}"})


@ROUTER.add("PUT", "_upload/{token}", auth=False)
async def signed_put(call: Call) -> web.StreamResponse:
    """The signed URL: no auth header, one PUT per token, like a presigned S3 URL."""
    token = call.params["token"]
    if not call.store.claim_signed_upload(token):
        raise HttpError(403, "This signed URL is unknown or was already used.")
    try:
        data = await read_body(call.request, call.config.max_body_bytes)
        name = secrets.token_hex(16) + ".ndjson"
        await asyncio.to_thread((call.store.uploads_dir / name).write_bytes, data)
        call.store.complete_signed_upload(token, name)
    except BaseException:
        call.store.release_signed_upload(token)
        raise
    return web.Response(status=200)


@ROUTER.add("GET", "_masks/{name}", auth=False)
async def mask_file(call: Call) -> web.StreamResponse:
    """An uploaded mask, under the unguessable name the server gave it."""
    name = call.params["name"]
    path = call.store.mask_path(name)
    if not _MASK_NAME.match(name) or not path.is_file():
        raise HttpError(404, "No such mask.")
    return web.FileResponse(path, headers={"Content-Type": "image/png"})


@ROUTER.add("GET", "job/{job_id}")
async def job_status(call: Call) -> web.StreamResponse:
    return json_response(status_payload(find_job(call)))


@ROUTER.add("GET", "job/{job_id}/info")
async def job_info(call: Call) -> web.StreamResponse:
    return json_response(creation_payload(find_job(call)))


@ROUTER.add("GET", "job/{job_id}/errors")
async def job_errors(call: Call) -> web.StreamResponse:
    return json_response(call.store.job_errors(find_job(call)["id"]))
