"""A local server that speaks the Nucleus protocol: ``segcli serve``.

Settings are plain dataclasses importable without aiohttp; the server itself
loads on first use of ``LocalServer``, ``serve_forever`` or ``seed_dataset``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from segcli.server.config import ALL_ROUTES, UPLOAD_ROUTES, FaultConfig, ServerConfig

if TYPE_CHECKING:
    from segcli.server.run import LocalServer, serve_forever
    from segcli.server.seed import seed_dataset, seed_model
    from segcli.server.store import Store

_LAZY = {
    "LocalServer": "segcli.server.run",
    "serve_forever": "segcli.server.run",
    "seed_dataset": "segcli.server.seed",
    "seed_model": "segcli.server.seed",
    "Store": "segcli.server.store",
}

__all__ = [
    "ALL_ROUTES",
    "UPLOAD_ROUTES",
    "FaultConfig",
    "LocalServer",
    "ServerConfig",
    "Store",
    "seed_dataset",
    "seed_model",
    "serve_forever",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'segcli.server' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
