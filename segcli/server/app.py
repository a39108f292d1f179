"""The local Nucleus server's aiohttp application: one dispatcher for all requests.

Order for each request: capacity (429 above ``--max-inflight``), route
(404/405), auth (401/400), fault, handler.
Handlers live in the routes_*.py modules; importing them registers their
routes.
"""

from __future__ import annotations

import logging

from aiohttp import web

from segcli.server import auth, routes_data, routes_models, routes_runs, routes_uploads
from segcli.server.capacity import Capacity
from segcli.server.config import ServerConfig
from segcli.server.faults import FaultInjector
from segcli.server.jobs import JobRunner
from segcli.server.responses import HttpError, error_response
from segcli.server.routing import PREFIX, ROUTER, STATE, Call, ServerState, path_segments
from segcli.server.store import Store

# Imported for their side effect: each handler registers itself on ROUTER.
_HANDLER_MODULES = (routes_data, routes_models, routes_runs, routes_uploads)

log = logging.getLogger("segcli.server")


async def dispatch(request: web.Request) -> web.StreamResponse:
    capacity = request.app[STATE].capacity
    if not capacity.admit():
        return capacity.refusal()
    try:
        return await _dispatch(request)
    finally:
        capacity.release()


async def _dispatch(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    try:
        segments = path_segments(request.raw_path)
        if tuple(segments[: len(PREFIX)]) != PREFIX:
            raise HttpError(404, "No such route; the API lives under /v1/nucleus.")
        route, params = ROUTER.resolve(request.method, segments[len(PREFIX) :])
        if route.auth:
            refusal = auth.check(request.headers, state.config.api_keys)
            if refusal is not None:
                status, message = refusal
                headers = {"WWW-Authenticate": 'Basic realm="nucleus"'} if status == 401 else None
                return error_response(status, message, headers=headers)
        fault = state.faults.draw(route.name)
        if fault is None:
            return await route.handler(Call(request, params, state))
        answer = await state.faults.act(fault, request)
        if answer is None:
            try:
                answer = await route.handler(Call(request, params, state))
            except HttpError as exc:
                # An error answer travels back too (and can be lost).
                refused = error_response(exc.status, exc.message, headers=exc.headers)
                return await state.faults.way_back(fault, request, refused)
        return await state.faults.way_back(fault, request, answer)
    except HttpError as exc:
        return error_response(exc.status, exc.message, headers=exc.headers)
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, "Internal server error.")


def build_app(config: ServerConfig, store: Store) -> web.Application:
    state = ServerState(
        config=config,
        store=store,
        faults=FaultInjector(config.faults),
        capacity=Capacity(config.max_inflight, config.faults.retry_after_s),
        jobs=JobRunner(
            store,
            auto_items=config.auto_items,
            storage_options=config.storage_options,
            rules=config.mask_rules,
            step_s=config.job_step_s,
        ),
    )
    # client_max_size bounds aiohttp's own readers; ours are bounded too.
    app = web.Application(client_max_size=config.max_body_bytes)
    app[STATE] = state
    app.router.add_route("*", "/{tail:.*}", dispatch)

    async def on_startup(_app: web.Application) -> None:
        state.jobs.resume()

    async def on_shutdown(_app: web.Application) -> None:
        state.faults.close()
        await state.jobs.close()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    return app
