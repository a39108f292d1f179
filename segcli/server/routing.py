"""Routing for the local server: its own small router over the raw path.

aiohttp's router is not used for the API: the dispatcher (app.py) merges
repeated slashes (the official client sends ``//dataset/...`` when the
endpoint ends in a slash) and percent-decodes each path segment on its own,
so a reference_id holding ``%2F`` stays one segment. Also here: the lookups
and JSON shapes every handler module shares.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from aiohttp import web

from segcli.server.bodies import media_type, read_json
from segcli.server.capacity import Capacity
from segcli.server.config import ServerConfig
from segcli.server.faults import FaultInjector
from segcli.server.jobs import JobRunner
from segcli.server.responses import HttpError
from segcli.server.store import Store

PREFIX = ("v1", "nucleus")


@dataclass
class ServerState:
    config: ServerConfig
    store: Store
    faults: FaultInjector
    jobs: JobRunner
    capacity: Capacity


STATE = web.AppKey("segcli_server_state", ServerState)


@dataclass(frozen=True)
class Call:
    """One routed request."""

    request: web.Request
    params: dict[str, str]
    state: ServerState

    @property
    def store(self) -> Store:
        return self.state.store

    @property
    def config(self) -> ServerConfig:
        return self.state.config

    def base_url(self) -> str:
        return f"{self.request.scheme}://{self.request.host}/" + "/".join(PREFIX)


Handler = Callable[[Call], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    parts: tuple[str, ...]
    handler: Handler
    auth: bool = True

    @property
    def name(self) -> str:
        """The last fixed word of the pattern: how fault settings name a route."""
        return next(p for p in reversed(self.parts) if not p.startswith("{")).lstrip("_")

    def match(self, segments: list[str]) -> dict[str, str] | None:
        greedy = self.parts[-1].endswith("*}")
        if len(segments) != len(self.parts) and not (greedy and len(segments) > len(self.parts)):
            return None
        params = {}
        for n, part in enumerate(self.parts):
            if part.endswith("*}"):
                # A trailing "{name*}" takes the rest of the path: some client
                # calls put a reference_id into the path without encoding "/".
                params[part[1:-2]] = "/".join(segments[n:])
            elif part.startswith("{"):
                params[part[1:-1]] = segments[n]
            elif part != segments[n]:
                return None
        return params


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, pattern: str, *, auth: bool = True) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.append(Route(method, tuple(pattern.split("/")), handler, auth))
            return handler

        return register

    def resolve(self, method: str, segments: list[str]) -> tuple[Route, dict[str, str]]:
        allowed = False
        for route in self.routes:
            params = route.match(segments)
            if params is None:
                continue
            if route.method == method:
                return route, params
            allowed = True
        if allowed:
            raise HttpError(405, f"Method {method} is not allowed here.")
        raise HttpError(404, "No such route.")


ROUTER = Router()


def path_segments(raw_path: str) -> list[str]:
    path = raw_path.split("?", 1)[0].split("#", 1)[0]
    return [unquote(s) for s in path.split("/") if s]


def find_dataset(call: Call, key: str = "dataset_id") -> dict[str, Any]:
    dataset = call.store.dataset(call.params[key])
    if dataset is None:
        raise HttpError(404, f"Dataset {call.params[key]!r} not found.")
    return dataset


def find_model(call: Call, model_id: str) -> dict[str, Any]:
    model = call.store.model(model_id)
    if model is None:
        raise HttpError(404, f"Model {model_id!r} not found.")
    return model


def find_run(call: Call, run_id: str) -> dict[str, Any]:
    run = call.store.model_run(run_id)
    if run is None:
        raise HttpError(404, f"Model run {run_id!r} not found.")
    return run


def find_job(call: Call) -> dict[str, Any]:
    job = call.store.job(call.params["job_id"])
    if job is None:
        raise HttpError(404, f"Job {call.params['job_id']!r} not found.")
    return job


def is_async(request: web.Request) -> bool:
    return request.query.get("async", "").lower() in ("1", "true", "yes")


def is_multipart(request: web.Request) -> bool:
    return media_type(request) == "multipart/form-data"


async def object_body(call: Call) -> dict[str, Any]:
    body = await read_json(call.request, call.config.max_body_bytes)
    if not isinstance(body, dict):
        raise HttpError(400, "The request body must be a JSON object.")
    return body


#: The key this server adds to a segmentation it holds the bytes of: where to GET them.
STORED_MASK_KEY = "stored_mask_url"


def segmentation_json(call: Call, row: dict[str, Any]) -> dict[str, Any]:
    """A stored segmentation as the service returns it: ``mask_url`` as the
    client sent it (the official client's tests compare it with what they
    uploaded). For an uploaded mask, ``stored_mask_url`` says where this
    server serves the bytes it kept; clients that do not know it ignore it."""
    out = {
        "type": "mask",
        "mask_url": row["mask_url"],
        "annotations": row["annotations"],
        "annotation_id": row["annotation_id"],
        "reference_id": row["reference_id"],
    }
    if row["mask_file"] is not None:
        out[STORED_MASK_KEY] = f"{call.base_url()}/_masks/{Path(row['mask_file']).name}"
    return out


def item_json(item: dict[str, Any]) -> dict[str, Any]:
    out = {
        "reference_id": item["reference_id"],
        "image_url": item["image_url"],
        "metadata": item["metadata"],
        "dataset_item_id": item["item_id"],
    }
    for key in ("width", "height"):
        if item[key] is not None:
            out[key] = item[key]
    return out
