"""What the local server keeps: SQLite in ``data_dir/nucleus.db`` plus mask files.

``Store`` is the whole of it; its parts keep one kind of thing each:
``catalog`` (datasets, items, models, runs, taxonomies), ``segmentations``
(ground truth, predictions, their mask files) and ``jobs`` (signed uploads,
async jobs), over the connection and schema in ``base``.
"""

from __future__ import annotations

from segcli.server.store.base import (
    DB_NAME,
    GROUND_TRUTH,
    TABLES,
    Database,
    new_id,
    placeholder_image_url,
)
from segcli.server.store.catalog import AppendResult, Catalog, NewItem
from segcli.server.store.jobs import Jobs
from segcli.server.store.segmentations import ApplyResult, NewSegmentation, Segmentations

__all__ = [
    "DB_NAME",
    "GROUND_TRUTH",
    "TABLES",
    "AppendResult",
    "ApplyResult",
    "Database",
    "NewItem",
    "NewSegmentation",
    "Store",
    "new_id",
    "placeholder_image_url",
]


class Store(Catalog, Segmentations, Jobs):
    """The server's database and mask files under one data dir."""

    def __enter__(self) -> Store:
        return self
