"""Making datasets, items and models before the server starts (demos, tests)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from segcli.server.store import NewItem, Store, placeholder_image_url


def seed_dataset(
    data_dir: Path | str,
    name: str,
    reference_ids: Iterable[str],
    *,
    dataset_id: str | None = None,
) -> str:
    """Create a dataset (or reuse ``dataset_id`` if it exists) holding these items.

    Items that already exist are kept as they are, so seeding twice is
    harmless. Returns the dataset id.
    """
    with Store(Path(data_dir)) as store:
        if dataset_id is None or store.dataset(dataset_id) is None:
            dataset_id = store.create_dataset(name, dataset_id=dataset_id)
        items = [NewItem(r, placeholder_image_url(r), {}) for r in dict.fromkeys(reference_ids)]
        with store.transaction() as conn:
            store.append_items(conn, dataset_id, items, update=False)
    return dataset_id


def seed_model(data_dir: Path | str, name: str) -> str:
    """The id of a model named ``name`` (its reference_id too), made if there is none.

    Reusing it makes ``segcli serve --model NAME`` give the same id at each
    start on the same data dir.
    """
    with Store(Path(data_dir)) as store:
        known = store.model_by_reference(name)
        if known is not None:
            return str(known["id"])
        return store.create_model(name, name, {})
