"""Datasets and their items, models and their runs, taxonomies."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from segcli.server.store.base import Database, new_id


@dataclass(frozen=True)
class NewItem:
    reference_id: str
    image_url: str
    metadata: dict[str, Any]
    width: int | None = None
    height: int | None = None


@dataclass
class AppendResult:
    new_items: int = 0
    updated_items: int = 0
    ignored_items: int = 0


class Catalog(Database):
    # -- datasets and items -------------------------------------------------

    def create_dataset(
        self,
        name: str,
        *,
        dataset_id: str | None = None,
        is_scene: bool = False,
        use_privacy_mode: bool = False,
    ) -> str:
        dataset_id = dataset_id or new_id("ds")
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO datasets (id, name, is_scene, use_privacy_mode, created)"
                " VALUES (?, ?, ?, ?, ?)",
                (dataset_id, name, int(is_scene), int(use_privacy_mode), time.time()),
            )
        return dataset_id

    def dataset(self, dataset_id: str) -> dict[str, Any] | None:
        row = self._row("SELECT * FROM datasets WHERE id = ?", (dataset_id,))
        return dict(row) if row else None

    def datasets(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._rows("SELECT * FROM datasets ORDER BY created, id")]

    def dataset_length(self, dataset_id: str) -> int:
        row = self._row("SELECT COUNT(*) FROM items WHERE dataset_id = ?", (dataset_id,))
        return int(row[0]) if row else 0

    def item(self, dataset_id: str, reference_id: str) -> dict[str, Any] | None:
        row = self._row(
            "SELECT * FROM items WHERE dataset_id = ? AND reference_id = ?",
            (dataset_id, reference_id),
        )
        return item_dict(row) if row else None

    def items(self, dataset_id: str) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT * FROM items WHERE dataset_id = ? ORDER BY created, reference_id",
            (dataset_id,),
        )
        return [item_dict(r) for r in rows]

    def item_by_id(self, item_id: str) -> dict[str, Any] | None:
        """An item by the ``di_`` id the server gave it, with its dataset_id."""
        row = self._row("SELECT * FROM items WHERE item_id = ?", (item_id,))
        return item_dict(row) if row else None

    def append_items(
        self, conn: sqlite3.Connection, dataset_id: str, items: Sequence[NewItem], update: bool
    ) -> AppendResult:
        """Add items; an existing reference_id is ignored, or replaced when ``update``."""
        result = AppendResult()
        now = time.time()
        for item in items:
            old = conn.execute(
                "SELECT 1 FROM items WHERE dataset_id = ? AND reference_id = ?",
                (dataset_id, item.reference_id),
            ).fetchone()
            if old is None:
                insert_item(conn, dataset_id, item, now)
                result.new_items += 1
            elif update:
                conn.execute(
                    "UPDATE items SET image_url = ?, metadata = ?, width = ?, height = ?,"
                    " updated = ? WHERE dataset_id = ? AND reference_id = ?",
                    (
                        item.image_url,
                        json.dumps(item.metadata),
                        item.width,
                        item.height,
                        now,
                        dataset_id,
                        item.reference_id,
                    ),
                )
                result.updated_items += 1
            else:
                result.ignored_items += 1
        return result

    # -- models and runs ----------------------------------------------------

    def create_model(self, name: str, reference_id: str | None, metadata: dict[str, Any]) -> str:
        model_id = new_id("prj")
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO models (id, name, reference_id, metadata, created)"
                " VALUES (?, ?, ?, ?, ?)",
                (model_id, name, reference_id, json.dumps(metadata), time.time()),
            )
        return model_id

    def model(self, model_id: str) -> dict[str, Any] | None:
        row = self._row("SELECT * FROM models WHERE id = ?", (model_id,))
        if row is None:
            return None
        out = dict(row)
        out["metadata"] = json.loads(out["metadata"])
        return out

    def models(self) -> list[dict[str, Any]]:
        rows = self._rows("SELECT id FROM models ORDER BY created, id")
        return [m for m in (self.model(r["id"]) for r in rows) if m is not None]

    def model_by_reference(self, reference_id: str) -> dict[str, Any] | None:
        """The oldest model with this reference_id (how a client names its own model)."""
        row = self._row(
            "SELECT id FROM models WHERE reference_id = ? ORDER BY created, id LIMIT 1",
            (reference_id,),
        )
        return self.model(row["id"]) if row else None

    def delete_model(self, model_id: str) -> list[str]:
        """Remove a model, its runs and its predictions; returns their mask files to remove."""
        with self.transaction() as conn:
            files = [
                r["mask_file"]
                for r in conn.execute(
                    "SELECT mask_file FROM segmentations"
                    " WHERE target = ? AND mask_file IS NOT NULL",
                    (model_id,),
                )
            ]
            conn.execute("DELETE FROM segmentations WHERE target = ?", (model_id,))
            conn.execute("DELETE FROM model_runs WHERE model_id = ?", (model_id,))
            conn.execute("DELETE FROM models WHERE id = ?", (model_id,))
        return files

    def model_run(self, run_id: str) -> dict[str, Any] | None:
        row = self._row("SELECT * FROM model_runs WHERE id = ?", (run_id,))
        return dict(row) if row else None

    def model_runs(self, dataset_id: str) -> list[str]:
        rows = self._rows(
            "SELECT id FROM model_runs WHERE dataset_id = ? ORDER BY created, id", (dataset_id,)
        )
        return [r["id"] for r in rows]

    def create_model_run(self, dataset_id: str | None, model_id: str, name: str | None) -> str:
        run_id = new_id("run")
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO model_runs (id, model_id, dataset_id, name, created)"
                " VALUES (?, ?, ?, ?, ?)",
                (run_id, model_id, dataset_id, name, time.time()),
            )
        return run_id

    def run_for_model(self, conn: sqlite3.Connection, dataset_id: str, model_id: str) -> str:
        """The model's run on this dataset, made on first use (as the service does)."""
        row = conn.execute(
            "SELECT id FROM model_runs WHERE dataset_id = ? AND model_id = ?"
            " ORDER BY created, id LIMIT 1",
            (dataset_id, model_id),
        ).fetchone()
        if row is not None:
            return str(row["id"])
        run_id = new_id("run")
        conn.execute(
            "INSERT INTO model_runs (id, model_id, dataset_id, name, created)"
            " VALUES (?, ?, ?, ?, ?)",
            (run_id, model_id, dataset_id, None, time.time()),
        )
        return run_id

    # -- taxonomies ---------------------------------------------------------

    def add_taxonomy(
        self, dataset_id: str, name: str, kind: str, labels: Sequence[str], update: bool
    ) -> str:
        """The service's status: created, already exists, or updated (labels only grow)."""
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT labels FROM taxonomies WHERE dataset_id = ? AND name = ?",
                (dataset_id, name),
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO taxonomies (dataset_id, name, type, labels, created)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (dataset_id, name, kind, json.dumps(list(labels)), time.time()),
                )
                return "Taxonomy created"
            if not update:
                return "Taxonomy already exists"
            merged = list(dict.fromkeys([*json.loads(row["labels"]), *labels]))
            conn.execute(
                "UPDATE taxonomies SET labels = ? WHERE dataset_id = ? AND name = ?",
                (json.dumps(merged), dataset_id, name),
            )
            return "Taxonomy updated"

    def delete_taxonomy(self, dataset_id: str, name: str) -> bool:
        with self.transaction() as conn:
            cur = conn.execute(
                "DELETE FROM taxonomies WHERE dataset_id = ? AND name = ?", (dataset_id, name)
            )
            return cur.rowcount == 1


def insert_item(conn: sqlite3.Connection, dataset_id: str, item: NewItem, now: float) -> None:
    conn.execute(
        "INSERT INTO items (dataset_id, reference_id, item_id, image_url, metadata,"
        " width, height, created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            dataset_id,
            item.reference_id,
            new_id("di"),
            item.image_url,
            json.dumps(item.metadata),
            item.width,
            item.height,
            now,
            now,
        ),
    )


def item_dict(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    out["metadata"] = json.loads(out["metadata"])
    return out
